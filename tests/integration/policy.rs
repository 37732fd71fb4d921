//! Issue bullet 6: policy per usage type, errors that name the rule and the
//! certificate, warnings that need --force, --force never beating an error.

use crate::util::*;

#[test]
fn oauth_refuses_a_weak_rsa_key_naming_rule_and_certificate() {
    let env = Env::new();
    let t = thumbprint("weak.crt.pem");
    let before = env.snapshot();
    env.import("weak.pfx", &["--type", "OAuthTokenIssuer"])
        .assert_one_line_error(
            1,
            &[
                "OAuthTokenIssuer policy",
                "key-strength",
                &t[..8],
                "1024-bit RSA",
                "2048",
            ],
        );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn force_never_overrides_an_error() {
    let env = Env::new();
    env.import("weak.pfx", &["--type", "OAuthTokenIssuer", "--force"])
        .assert_one_line_error(1, &["key-strength"]);
}

#[test]
fn ec_p256_is_strong_enough_for_oauth() {
    let env = Env::new();
    let r = env.import("ec1.pfx", &["--type", "OAuthTokenIssuer"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn oauth_needs_the_sip_domain_when_one_is_configured() {
    let env = Env::new();
    env.import("fabrikam.pfx", &["--type", "OAuthTokenIssuer"])
        .assert_one_line_error(1, &["required-name", "'contoso.com'", "www.fabrikam.com"]);

    // Without a SIP domain in the configuration the same certificate is fine.
    let env = Env::with_config("");
    let r = env.import("fabrikam.pfx", &["--type", "OAuthTokenIssuer"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn names_match_wildcards_as_tls_does() {
    // *.contoso.com covers sip.contoso.com but not contoso.com itself.
    let env = Env::new();
    env.import("wildcard.pfx", &["--type", "OAuthTokenIssuer"])
        .assert_one_line_error(1, &["required-name", "'contoso.com'"]);

    let env = Env::with_config("[policy.Default]\nrequired_names = [\"sip.contoso.com\"]\n");
    let r = env.import("wildcard.pfx", &["--type", "Default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = env.import("oauth1-openssl3.pfx", &["--type", "Default"]);
    r.assert_one_line_error(1, &["Default policy", "'sip.contoso.com'"]);
}

#[test]
fn a_pfx_exported_without_its_key_cannot_serve_a_type_that_needs_one() {
    let env = Env::new();
    env.import("oauth1-nokey.pfx", &["--type", "OAuthTokenIssuer"])
        .assert_one_line_error(1, &["private-key", "has no private key"]);

    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n[policy.Default]\nrequire_private_key = false\n",
    );
    let r = env.import("oauth1-nokey.pfx", &["--type", "Default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn required_extended_key_usage() {
    let env = Env::with_config("[policy.Default]\nrequired_ekus = [\"serverAuth\"]\n");
    env.import("codesign.pfx", &["--type", "Default"])
        .assert_one_line_error(1, &["extended-key-usage", "serverAuth"]);
    let r = env.import("oauth1-openssl3.pfx", &["--type", "Default"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn minimum_key_strength_is_configurable() {
    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nmin_rsa_bits = 3072\n",
    );
    env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
        .assert_one_line_error(1, &["2048-bit RSA", "3072"]);
    let r = env.import("oauth2.pfx", &["--type", "OAuthTokenIssuer"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn sha1_signature_is_a_warning_that_needs_force() {
    let env = Env::new();
    let before = env.snapshot();
    let r = env.import("sha1.pfx", &["--type", "OAuthTokenIssuer"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("warning: ") && r.stderr.contains("sha1WithRSAEncryption"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("need --force"), "{}", r.stderr);
    assert_eq!(env.snapshot(), before);

    let r = env.import("sha1.pfx", &["--type", "OAuthTokenIssuer", "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("warning: "), "{}", r.stderr);
    assert_eq!(
        env.get_json()[0]["current"]["thumbprint"],
        thumbprint("sha1.crt.pem")
    );
}

#[test]
fn short_validity_is_a_warning_that_needs_force() {
    let env = Env::new();
    let pem = short_lived_pem(env.dir.path(), "short", 10);
    let p = pem.to_str().unwrap();
    let r = env.run(&["import", "--path", p, "--type", "OAuthTokenIssuer"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("validity-margin") && r.stderr.contains("margin: 30 days"),
        "{}",
        r.stderr
    );
    env.ok(&[
        "import",
        "--path",
        p,
        "--type",
        "OAuthTokenIssuer",
        "--force",
    ]);

    // The margin is configurable per type.
    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nmin_remaining_days = 5\n",
    );
    env.ok(&["import", "--path", p, "--type", "OAuthTokenIssuer"]);
}

#[test]
fn extra_types_from_the_config_can_be_assigned() {
    let env = Env::with_config(
        "extra_types = [\"MyTokenSigner\"]\n[policy.MyTokenSigner]\nmin_rsa_bits = 1024\n",
    );
    let r = env.import("weak.pfx", &["--type", "mytokensigner", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["changes"][0]["type"], "MyTokenSigner");
}
