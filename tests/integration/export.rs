//! Issue 5: `certroll export` writes a PFX that openssl and certroll read.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::util::*;

#[test]
fn an_exported_pfx_reimports_with_openssl_and_certroll() {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let t = thumbprint("oauth1.crt.pem");
    let pw = env.path("export.pw");
    std::fs::write(&pw, "Exp0rt!\n").unwrap();
    for (name, extra) in [("modern.pfx", vec![]), ("legacy.pfx", vec!["--legacy"])] {
        let out = env.path(name);
        let mut args = vec![
            "export",
            "--thumbprint",
            &t[..10],
            "--path",
            out.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ];
        args.extend(extra.iter().copied());
        let r = env.ok(&args);
        assert!(
            r.stdout
                .contains("with its private key and 2 chain certificate(s)"),
            "{}",
            r.stdout
        );
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // OpenSSL reads it: the certificate, the key, and the chain.
        let o = Command::new("openssl")
            .args([
                "pkcs12",
                "-in",
                out.to_str().unwrap(),
                "-passin",
                "pass:Exp0rt!",
                "-nodes",
                "-info",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let info = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {info}");
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 3, "{name}");
        assert!(text.contains("BEGIN PRIVATE KEY"), "{name}");
        if name == "legacy.pfx" {
            assert!(
                info.contains("MAC: sha1") && info.contains("TripleDES"),
                "{info}"
            );
        } else {
            assert!(
                info.contains("MAC: sha256") && info.contains("AES-256"),
                "{info}"
            );
        }

        // certroll reads it back into another store: same certificate, with its key.
        let other = Env::new();
        let r = other.ok(&[
            "import",
            "--path",
            out.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
            "--json",
        ]);
        let v = r.json();
        assert_eq!(v["certificate"]["thumbprint"], t);
        assert_eq!(v["certificate"]["has_private_key"], true);
        assert_eq!(v["certificate"]["chain"].as_array().unwrap().len(), 2);
    }
    // Not over an existing file without --force; not without a key.
    let out = env.path("modern.pfx");
    env.run(&[
        "export",
        "--thumbprint",
        &t,
        "--path",
        out.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ])
    .assert_one_line_error(1, &["modern.pfx", "exists", "--force"]);
    let crt = fixture("oauth2.crt.pem");
    env.ok(&["import", "--path", crt.to_str().unwrap()]);
    let t2 = thumbprint("oauth2.crt.pem");
    env.run(&[
        "export",
        "--thumbprint",
        &t2,
        "--path",
        env.path("x.pfx").to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ])
    .assert_one_line_error(1, &["has no private key"]);
}
