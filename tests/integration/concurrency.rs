//! Several certroll processes on one store: every change lands once, none
//! is lost to "database is locked", and the audit trail has one row each.

use std::process::Stdio;

use crate::util::*;

#[test]
fn concurrent_processes_each_apply_their_change() {
    let env = Env::any_scope();
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    assert_eq!(env.import("oauth2-windows.pfx", &[]).code, 0);
    let (t1, t2) = (thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem"));

    // 12 processes at once, each assigning to its own pool, alternating certs.
    let children: Vec<_> = (0..12u32)
        .map(|i| {
            let scope = format!("pool:fe{i:02}.contoso.com");
            let t = if i.is_multiple_of(2) { &t1 } else { &t2 };
            env.command(&[
                "set",
                "--type",
                "OAuthTokenIssuer,Default",
                "--scope",
                &scope,
                "--thumbprint",
                t,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let slots = env.get_json();
    assert_eq!(slots.as_array().unwrap().len(), 24);
    for s in slots.as_array().unwrap() {
        let n: usize = s["scope"].as_str().unwrap()[7..9].parse().unwrap();
        let want = if n.is_multiple_of(2) { &t1 } else { &t2 };
        assert_eq!(&s["current"]["thumbprint"], want, "{s}");
    }
    // 2 imports + 24 assignments, 24 events.
    assert_eq!(env.count("audit_log"), 26);
    assert_eq!(env.count("outbox"), 24);
}

#[test]
fn concurrent_first_use_creates_one_store() {
    let env = Env::new();
    let children: Vec<_> = (0..10u32)
        .map(|i| {
            let pfx = fixture(if i.is_multiple_of(2) {
                "oauth1-openssl3.pfx"
            } else {
                "oauth2-windows.pfx"
            });
            env.command(&[
                "import",
                "--path",
                pfx.to_str().unwrap(),
                "--password-file",
                password_file().to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Two certificates, each imported once; one master key sealed both.
    assert_eq!(env.count("certificates"), 2);
    assert_eq!(env.count("audit_log"), 2);
    let mut store = certroll::store::Store::open(&env.data).unwrap();
    for t in [thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem")] {
        assert!(store.private_key(&t).unwrap().is_some());
    }
}
