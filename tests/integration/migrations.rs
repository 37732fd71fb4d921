//! Issue bullet 3: a store made by an older schema opens with the current
//! code and upgrades in place; a store from a newer certroll is refused.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::*;

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["certroll.db", "master.key"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
        std::fs::set_permissions(to.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn a_schema_v1_store_opens_and_upgrades_in_place() {
    let env = Env::new();
    copy_store(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schema-v1"),
        &env.data,
    );

    let slots = env.get_json();
    let slots = slots.as_array().unwrap();
    assert_eq!(slots.len(), 3);
    let find = |t: &str, s: &str| {
        slots
            .iter()
            .find(|x| x["type"] == t && x["scope"] == s)
            .unwrap_or_else(|| panic!("no slot {t}@{s}"))
    };
    let (t1, t2, t3) = (
        thumbprint("oauth1.crt.pem"),
        thumbprint("oauth2.crt.pem"),
        thumbprint("ec1.crt.pem"),
    );
    assert_eq!(
        find("OAuthTokenIssuer", "global")["current"]["thumbprint"],
        t2
    );
    assert_eq!(
        find("OAuthTokenIssuer", "global")["previous"]["thumbprint"],
        t1
    );
    assert_eq!(find("Default", "global")["current"]["thumbprint"], t2);
    assert_eq!(
        find("OAuthTokenIssuer", "pool:fe01.contoso.com")["current"]["thumbprint"],
        t3
    );

    let history = env.ok(&["history", "--json"]).json();
    assert_eq!(history.as_array().unwrap().len(), 7);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["actor"] == "cli:fixture")
    );

    // The sealed keys still open with the store's master key.
    let mut store = certroll::store::Store::open(&env.data).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        certroll::store::SCHEMA_VERSION
    );
    for t in [&t1, &t2, &t3] {
        assert!(store.private_key(t).unwrap().is_some(), "key of {t}");
    }
    drop(store);

    // And the upgraded store takes new changes.
    env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t1]);
    assert_eq!(env.get_json()[1]["current"]["thumbprint"], t1);

    // The certificates stored before v5 got their public key's fingerprint:
    // oauth1 renewed with the same key finds its private key.
    let renewed = renewed_oauth1(env.dir.path());
    let r = env.ok(&["import", "--path", renewed.to_str().unwrap(), "--json"]);
    assert!(
        r.stderr
            .contains("it takes that private key (renewed with the same key)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&t1[..8]), "{}", r.stderr);
    assert_eq!(r.json()["certificate"]["has_private_key"], true);
}

#[test]
fn a_store_from_a_newer_certroll_is_refused() {
    let env = Env::new();
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    {
        let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    env.run(&["get"])
        .assert_one_line_error(1, &["schema v99", "upgrade certroll"]);
}
