//! Issue 11, item 2: the chain as the Certificate Wizard checks it. Every
//! certificate signed by the next, a leaf never silently without its
//! issuer, and a `trust_bundle` that makes "does not chain to a trusted
//! root" an error for the types that set it.

use crate::util::*;

fn chain_of(env: &Env, thumb: &str) -> Vec<serde_json::Value> {
    let certs = env.ok(&["certs", "--json"]).json();
    let c = certs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["thumbprint"] == thumb)
        .unwrap_or_else(|| panic!("{thumb} not stored: {certs}"))
        .clone();
    c["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["thumbprint"].clone())
        .collect()
}

#[test]
fn a_leaf_without_its_issuer_needs_force_and_one_with_it_in_the_store_gets_its_chain() {
    let env = Env::new();
    let before = env.snapshot();
    let r = env.import_with_key(
        "oauth1.crt.pem",
        "oauth1.key.pem",
        &["--type", "OAuthTokenIssuer"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "rule chain: certificate 133FF843 (oauth1.contoso.com) was issued by 'CN=certroll Test Issuing CA, O=Contoso', which is neither in the file nor in the store"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("need --force"), "{}", r.stderr);
    assert_eq!(env.snapshot(), before, "a refused import changed the store");

    // With the CA's certificates in the store, the leaf gets its chain.
    env.import_test_cas();
    let r = env.import_with_key(
        "oauth1.crt.pem",
        "oauth1.key.pem",
        &["--type", "OAuthTokenIssuer"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "chain completed from the store: certroll Test Issuing CA, certroll Test Root CA"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        chain_of(&env, &thumbprint("oauth1.crt.pem")),
        [thumbprint("int.crt.pem"), thumbprint("root.crt.pem")]
    );

    // --force takes the leaf alone, and says why.
    let env = Env::new();
    let r = env.import_with_key("oauth1.crt.pem", "oauth1.key.pem", &["--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("warning: rule chain"), "{}", r.stderr);
    assert!(chain_of(&env, &thumbprint("oauth1.crt.pem")).is_empty());
}

/// A certificate whose signature its issuer's key did not make is refused,
/// --force or not.
#[test]
fn a_broken_signature_in_the_chain_is_refused() {
    let env = Env::new();
    env.import_test_cas();
    let before = env.snapshot();
    let mut der = std::fs::read(fixture("oauth1.crt.der")).unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01; // the last byte of the signature
    let bad = env.path("tampered.der");
    std::fs::write(&bad, &der).unwrap();
    let key = fixture("oauth1.key.pem");
    for force in [false, true] {
        let mut args = vec![
            "import",
            "--path",
            bad.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ];
        if force {
            args.push("--force");
        }
        env.run(&args).assert_one_line_error(
            1,
            &[
                "rule chain-signature",
                "is not signed by the key of certroll Test Issuing CA",
            ],
        );
    }
    assert_eq!(env.snapshot(), before);
}

#[test]
fn a_trust_bundle_refuses_a_chain_that_ends_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let roots = tmp.path().join("roots");
    std::fs::create_dir(&roots).unwrap();
    std::fs::copy(fixture("root.crt.pem"), roots.join("contoso-root.pem")).unwrap();
    std::fs::write(roots.join("README"), "not a certificate\n").unwrap();
    let env = Env::with_config(&format!(
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\ntrust_bundle = \"{}\"\n",
        roots.display()
    ));
    // The fixtures' chain ends at the bundle's root.
    env.ok(&[
        "import",
        "--path",
        fixture("oauth1-openssl3.pfx").to_str().unwrap(),
        "--password-file",
        password_file().to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
    ]);

    // A self-signed one does not, for this type only.
    let selfsigned = short_lived_pem(tmp.path(), "self", 400);
    let before = env.snapshot();
    let r = env.run(&[
        "import",
        "--path",
        selfsigned.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--force",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("OAuthTokenIssuer policy, rule trusted-root")
            && r.stderr.contains(&format!(
                "does not chain to a trusted root of {}",
                roots.display()
            )),
        "{}",
        r.stderr
    );
    assert_eq!(env.snapshot(), before);
    let r = env.run(&["import", "--path", selfsigned.to_str().unwrap(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let thumb = r.json()["certificate"]["thumbprint"]
        .as_str()
        .unwrap()
        .to_string();
    env.run(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &thumb])
        .assert_one_line_error(1, &["rule trusted-root"]);
    env.ok(&[
        "set",
        "--type",
        "Default",
        "--thumbprint",
        &thumb,
        "--force",
    ]);

    // A bundle that is not there is a configuration error.
    let env = Env::with_config("[policy.Default]\ntrust_bundle = \"/nonexistent/roots.pem\"\n");
    env.run(&["get"])
        .assert_one_line_error(2, &["trust_bundle", "/nonexistent/roots.pem"]);
}
