//! Issue bullet 4: import of PFX (three styles), PEM, DER; key checks,
//! chain order, friendly names, password sources, idempotence.

use crate::util::*;

fn imported_cert(env: &Env, thumb: &str) -> serde_json::Value {
    let certs = env.ok(&["certs", "--json"]).json();
    certs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["thumbprint"] == thumb)
        .cloned()
        .unwrap_or_else(|| panic!("{thumb} not in the store: {certs}"))
}

#[test]
fn openssl3_default_pfx_imports_with_key_chain_and_friendly_name() {
    let env = Env::new();
    let r = env.import("oauth1-openssl3.pfx", &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v = r.json();
    assert_eq!(v["status"], "imported");
    assert_eq!(v["format"], "PKCS#12");
    let c = imported_cert(&env, &thumbprint("oauth1.crt.pem"));
    assert_eq!(c["has_private_key"], true);
    assert_eq!(c["friendly_name"], "OAuth 2026");
    assert_eq!(c["key_algorithm"], "RSA");
    assert_eq!(c["key_bits"], 2048);
    assert_eq!(c["source_file"], "oauth1-openssl3.pfx");
    // Leaf first, then its issuers in order.
    let chain: Vec<_> = c["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["thumbprint"].clone())
        .collect();
    assert_eq!(
        chain,
        [thumbprint("int.crt.pem"), thumbprint("root.crt.pem")]
    );
}

#[test]
fn openssl_legacy_pfx_imports() {
    let env = Env::new();
    let r = env.import("oauth1-legacy.pfx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("imported: "), "{}", r.stdout);
    assert_eq!(
        imported_cert(&env, &thumbprint("oauth1.crt.pem"))["has_private_key"],
        true
    );
}

#[test]
fn windows_style_3des_pfx_imports() {
    let env = Env::new();
    let r = env.import("oauth2-windows.pfx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c = imported_cert(&env, &thumbprint("oauth2.crt.pem"));
    assert_eq!(c["has_private_key"], true);
    assert_eq!(c["key_bits"], 3072);
    assert_eq!(c["friendly_name"], "OAuth 2027");
}

#[test]
fn ec_p384_pfx_imports_with_exact_curve() {
    let env = Env::new();
    env.import("ec384.pfx", &["--type", "OAuthTokenIssuer"]);
    let c = imported_cert(&env, &thumbprint("ec384.crt.pem"));
    assert_eq!(c["key_algorithm"], "EC P-384");
    assert_eq!(c["key_bits"], 384);
}

#[test]
fn pfx_without_mac_is_refused() {
    let env = Env::new();
    let before = env.snapshot();
    env.import("nomac.pfx", &[])
        .assert_one_line_error(1, &["nomac.pfx", "no MAC"]);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn several_keys_take_the_one_that_fits_the_type() {
    let env = Env::new();
    // multi.pfx holds ec1 (contoso.com) and fabrikam (www.fabrikam.com):
    // only ec1 carries the SIP domain OAuthTokenIssuer requires.
    let r = env.import("multi.pfx", &["--type", "OAuthTokenIssuer", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.json()["certificate"]["thumbprint"],
        thumbprint("ec1.crt.pem")
    );
}

#[test]
fn several_keys_without_a_use_are_refused_and_listed() {
    let env = Env::new();
    let before = env.snapshot();
    env.import("multi.pfx", &[]).assert_one_line_error(
        1,
        &[
            "multi.pfx",
            "2 certificates with private keys",
            "--entry",
            "'ec1'",
            "'fabrikam'",
        ],
    );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn several_fitting_keys_are_refused_even_with_a_type() {
    let env = Env::new();
    env.import("multi-both.pfx", &["--type", "OAuthTokenIssuer"])
        .assert_one_line_error(1, &["multi-both.pfx", "'ec1'", "'oauth2'"]);
}

#[test]
fn entry_picks_by_friendly_name_or_thumbprint() {
    let env = Env::new();
    let r = env.import("multi.pfx", &["--entry", "fabrikam", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.json()["certificate"]["thumbprint"],
        thumbprint("fabrikam.crt.pem")
    );
    let ec1 = thumbprint("ec1.crt.pem");
    let r = env.import("multi.pfx", &["--entry", &ec1[..10], "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["certificate"]["thumbprint"], ec1);
    env.import("multi.pfx", &["--entry", "nobody"])
        .assert_one_line_error(1, &["no entry 'nobody'"]);
}

#[test]
fn pem_bundle_out_of_order_is_reordered_leaf_first() {
    let env = Env::new();
    let path = fixture("oauth1-bundle.pem");
    let r = env.ok(&["import", "--path", path.to_str().unwrap()]);
    assert!(
        r.stderr.contains("chain reordered leaf first"),
        "{}",
        r.stderr
    );
    let c = imported_cert(&env, &thumbprint("oauth1.crt.pem"));
    assert_eq!(c["has_private_key"], true);
    let chain: Vec<_> = c["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["thumbprint"].clone())
        .collect();
    assert_eq!(
        chain,
        [thumbprint("int.crt.pem"), thumbprint("root.crt.pem")]
    );
}

/// The certificate in PEM or DER with its key in every supported form.
#[test]
fn separate_key_files_in_every_format() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("oauth1.crt.pem", "oauth1.key.pem", &[]),
        ("oauth1.crt.pem", "oauth1.pkcs1.pem", &[]),
        ("oauth1.crt.der", "oauth1.key.der", &[]),
        ("ec1.crt.pem", "ec1.sec1.pem", &[]),
        ("ec384.crt.pem", "ec384.sec1.pem", &[]),
        (
            "oauth1.crt.pem",
            "oauth1.pkcs8-enc.pem",
            &["--password-file", "PW"],
        ),
    ];
    for (crt, key, extra) in cases {
        let env = Env::new();
        env.import_test_cas();
        let crt_path = fixture(crt);
        let key_path = fixture(key);
        let pw = password_file();
        let mut args = vec![
            "import",
            "--path",
            crt_path.to_str().unwrap(),
            "--key",
            key_path.to_str().unwrap(),
            "--type",
            "OAuthTokenIssuer",
        ];
        for e in *extra {
            args.push(if *e == "PW" { pw.to_str().unwrap() } else { e });
        }
        let r = env.run(&args);
        assert_eq!(r.code, 0, "{crt} + {key}: {}", r.stderr);
        assert!(
            r.stdout.contains("private key"),
            "{crt} + {key}: {}",
            r.stdout
        );
        let slots = env.get_json();
        assert_eq!(
            slots[0]["current"]["has_private_key"], true,
            "{crt} + {key}"
        );
    }
}

#[test]
fn encrypted_key_without_password_and_no_terminal_asks_for_flags() {
    let env = Env::new();
    env.import_with_key("oauth1.crt.pem", "oauth1.pkcs8-enc.pem", &[])
        .assert_one_line_error(1, &["oauth1.crt.pem", "--password-file"]);
}

#[test]
fn legacy_encrypted_pem_key_is_refused_with_advice() {
    let env = Env::new();
    env.import_with_key("oauth1.crt.pem", "oauth1.legacy-enc.pem", &[])
        .assert_one_line_error(1, &["Proc-Type", "openssl pkcs8 -topk8"]);
}

#[test]
fn key_that_does_not_match_is_refused() {
    let env = Env::new();
    let before = env.snapshot();
    env.import_with_key("oauth1.crt.pem", "fabrikam.key.pem", &[])
        .assert_one_line_error(1, &["oauth1.crt.pem", "does not match"]);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn password_from_environment_and_stdin() {
    let env = Env::new();
    let pfx = fixture("oauth1-openssl3.pfx");
    let r = env
        .command(&[
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--password-env",
            "PFX_PW",
        ])
        .env("PFX_PW", PASSWORD)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let env = Env::new();
    let r = env.run_with_stdin(
        &[
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    let env = Env::new();
    env.run(&[
        "import",
        "--path",
        pfx.to_str().unwrap(),
        "--password-env",
        "NOT_SET_ANYWHERE",
    ])
    .assert_one_line_error(2, &["NOT_SET_ANYWHERE", "not set"]);
}

#[test]
fn password_is_not_accepted_on_the_command_line() {
    let env = Env::new();
    let pfx = fixture("oauth1-openssl3.pfx");
    let r = env.run(&[
        "import",
        "--path",
        pfx.to_str().unwrap(),
        "--password",
        PASSWORD,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn unicode_and_empty_passwords() {
    let env = Env::new();
    env.import_test_cas();
    let pfx = fixture("oauth1-unicode.pfx");
    let pw = fixture("password-unicode.txt");
    env.ok(&[
        "import",
        "--path",
        pfx.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ]);

    // A PFX exported with an empty password needs no password at all.
    let env = Env::new();
    env.import_test_cas();
    let pfx = fixture("oauth1-nopass.pfx");
    env.ok(&["import", "--path", pfx.to_str().unwrap()]);
}

/// An *absent* password (OpenSSL's PKCS12_create(NULL, ...), Windows'
/// exports without one) is not the empty one: OpenSSL tries both, and so
/// does certroll, with no password given or an empty one.
#[test]
fn pfx_files_with_an_absent_password_import() {
    let empty = tempfile::NamedTempFile::new().unwrap();
    for file in ["oauth1-absent-aes.pfx", "oauth1-absent-3des.pfx"] {
        let pfx = fixture(file);
        let env = Env::new();
        let r = env.run(&[
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--type",
            "OAuthTokenIssuer",
        ]);
        assert_eq!(r.code, 0, "{file}: {}", r.stderr);
        let c = imported_cert(&env, &thumbprint("oauth1.crt.pem"));
        assert_eq!(c["has_private_key"], true, "{file}");
        assert_eq!(c["friendly_name"], "absent", "{file}");

        let env = Env::new();
        let r = env.run(&[
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--password-file",
            empty.path().to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{file} with an empty password: {}", r.stderr);

        // A real password is still checked against the MAC.
        let env = Env::new();
        env.import(file, &[])
            .assert_one_line_error(1, &[file, "wrong password"]);
    }
}

/// PBES2 whose PBKDF2 PRF is HMAC-SHA-1, with AES-256-CBC: OpenSSL 1.1,
/// Java and .NET exports; and a PKCS#8 key encrypted the same way.
#[test]
fn pbes2_with_an_hmac_sha1_prf_imports() {
    let env = Env::new();
    let r = env.import("oauth1-pbes2-sha1.pfx", &["--type", "OAuthTokenIssuer"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c = imported_cert(&env, &thumbprint("oauth1.crt.pem"));
    assert_eq!(c["has_private_key"], true);
    assert_eq!(c["chain"].as_array().unwrap().len(), 2);

    let env = Env::new();
    env.import_test_cas();
    let pw = password_file();
    let r = env.import_with_key(
        "oauth1.crt.pem",
        "oauth1.pkcs8-sha1.pem",
        &["--password-file", pw.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// An encrypted key that asks for more key-derivation work than certroll
/// allows is refused at once, naming the key file, as a PFX would be.
#[test]
fn an_encrypted_key_beyond_the_kdf_limit_is_refused() {
    let env = Env::new();
    let before = env.snapshot();
    let pw = password_file();
    env.import_with_key(
        "oauth1.crt.pem",
        "oauth1.pkcs8-2m-iter.pem",
        &["--password-file", pw.to_str().unwrap()],
    )
    .assert_one_line_error(
        1,
        &[
            "oauth1.pkcs8-2m-iter.pem",
            "2000000 iterations",
            "1,000,000",
        ],
    );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn password_protected_pfx_without_password_and_no_terminal() {
    let env = Env::new();
    let pfx = fixture("oauth1-openssl3.pfx");
    env.run(&["import", "--path", pfx.to_str().unwrap()])
        .assert_one_line_error(
            1,
            &[
                "oauth1-openssl3.pfx",
                "protected by a password",
                "--password-stdin",
            ],
        );
}

/// On a terminal, certroll prompts instead of failing.
#[test]
fn prompts_for_the_password_on_a_terminal() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let env = Env::new();
    let pfx = fixture("oauth1-openssl3.pfx");
    // `script` gives the command a pseudo-terminal and types our stdin into it.
    let cmdline = format!(
        "{} --config {} --data-dir {} import --path {}",
        bin().display(),
        env.config.display(),
        env.data.display(),
        pfx.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // Answer only once the prompt is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("Password for") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => panic!("no prompt within 30 s: {}", String::from_utf8_lossy(&seen)),
        }
    }
    stdin.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    reader.join().unwrap();
    seen.extend(rx.try_iter().flatten());
    let text = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{text}");
    assert!(text.contains("imported: "), "{text}");
    assert_eq!(
        imported_cert(&env, &thumbprint("oauth1.crt.pem"))["has_private_key"],
        true
    );
}

#[test]
fn importing_again_is_idempotent_and_says_so() {
    let env = Env::new();
    env.import("oauth1-openssl3.pfx", &[]);
    let before = env.snapshot();
    let r = env.import("oauth1-legacy.pfx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("already in the store, unchanged"),
        "{}",
        r.stdout
    );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn importing_with_a_key_adds_the_missing_key() {
    let env = Env::new();
    let crt = fixture("oauth1.crt.pem");
    // The leaf alone: its issuer is neither in the file nor in the store.
    let r = env.run(&["import", "--path", crt.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("neither in the file nor in the store"),
        "{}",
        r.stderr
    );
    env.ok(&["import", "--path", crt.to_str().unwrap(), "--force"]);
    let t = thumbprint("oauth1.crt.pem");
    assert_eq!(imported_cert(&env, &t)["has_private_key"], false);
    let r = env.import("oauth1-openssl3.pfx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("private key added: "), "{}", r.stdout);
    assert_eq!(imported_cert(&env, &t)["has_private_key"], true);
    let history = env.ok(&["history", "--json"]).json();
    let actions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].clone())
        .collect();
    assert_eq!(actions, ["import", "key-added", "chain-added"]);
}

#[test]
fn a_key_file_given_as_the_certificate_gets_advice() {
    let env = Env::new();
    let key = fixture("oauth1.key.der");
    env.run(&["import", "--path", key.to_str().unwrap()])
        .assert_one_line_error(1, &["oauth1.key.der", "--key"]);
    let key = fixture("oauth1.key.pem");
    env.run(&["import", "--path", key.to_str().unwrap()])
        .assert_one_line_error(1, &["oauth1.key.pem", "--key"]);
}
