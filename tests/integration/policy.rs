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

/// Issue 11, item 6: OAuthTokenIssuer is configured once, at global (the
/// seeds); another scope is refused unless its policy's scopes allow it.
#[test]
fn the_token_issuer_is_assigned_at_global_only_unless_the_policy_allows_more() {
    let env = Env::new();
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    let t = thumbprint("oauth1.crt.pem");
    let before = env.snapshot();
    let pool = [
        "--type",
        "OAuthTokenIssuer",
        "--scope",
        "pool:pool01.contoso.com",
    ];
    let needles = [
        "OAuthTokenIssuer policy, rule scope: OAuthTokenIssuer is assigned at global only, not at pool:pool01.contoso.com",
        "add \"pool\" to scopes in [policy.OAuthTokenIssuer]",
    ];
    let mut set = vec!["set", "--thumbprint", &t, "--force"];
    set.extend(pool);
    env.run(&set).assert_one_line_error(1, &needles);
    let mut roll = set.clone();
    roll.extend(["--effective-date", "+2d", "--roll"]);
    env.run(&roll).assert_one_line_error(1, &needles);
    let mut import = vec!["--force"];
    import.extend(pool);
    env.import("oauth2-windows.pfx", &import)
        .assert_one_line_error(1, &needles);
    let mut request = vec!["request", "--output", "/dev/null"];
    request.extend(pool);
    env.run(&request).assert_one_line_error(1, &needles);
    assert_eq!(env.snapshot(), before);
    // Global is fine; other types take any scope.
    env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t]);
    env.ok(&[
        "set",
        "--type",
        "Default",
        "--scope",
        "pool:pool01.contoso.com",
        "--thumbprint",
        &t,
    ]);

    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nscopes = [\"global\", \"pool\"]\n",
    );
    assert_eq!(env.import("oauth1-openssl3.pfx", &pool).code, 0);
    env.run(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--scope",
        "server:fe01.contoso.com",
        "--thumbprint",
        &t,
    ])
    .assert_one_line_error(
        1,
        &["assigned at global or pool only, not at server:fe01.contoso.com"],
    );
    let env = Env::with_config("[policy.Default]\nscopes = [\"everywhere\"]\n");
    env.run(&["get"]).assert_one_line_error(
        2,
        &["[policy.Default]", "'everywhere' is not a kind of scope"],
    );
}

/// Issue 11, item 7: with servers configured, a scope that names none of
/// them is a typo until --force says otherwise; a site cannot climb out of
/// a deploy path.
#[test]
fn scopes_must_name_configured_servers() {
    let config = "sip_domain = \"contoso.com\"\n\
        [[server]]\nname = \"fe01.contoso.com\"\npool = \"pool01.contoso.com\"\nsite = \"Redmond\"\n\
        [[server]]\nname = \"fe02.contoso.com\"\npool = \"pool01.contoso.com\"\nsite = \"Redmond\"\n";
    let env = Env::with_config(config);
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    let t = thumbprint("oauth1.crt.pem");
    let before = env.snapshot();
    let set = |scope: &str| {
        vec![
            "set",
            "--type",
            "Default",
            "--scope",
            scope.to_string().leak(),
            "--thumbprint",
            t.clone().leak(),
        ]
    };
    env.run(&set("pool:pool0l.contoso.com")).assert_one_line_error(
        2,
        &["--scope pool:pool0l.contoso.com names no configured [[server]] (the nearest: pool:pool01.contoso.com)", "--force"],
    );
    env.run(&set("server:fe03.contoso.com"))
        .assert_one_line_error(
            2,
            &["the nearest: server:fe01.contoso.com, server:fe02.contoso.com"],
        );
    env.run(&set("site:Seattle"))
        .assert_one_line_error(2, &["the nearest: site:Redmond"]);
    assert_eq!(env.snapshot(), before);
    for scope in [
        "pool:POOL01.contoso.com",
        "server:fe02.contoso.com",
        "site:Redmond",
        "global",
    ] {
        env.ok(&set(scope));
    }
    let mut forced = set("server:fe03.contoso.com");
    forced.push("--force");
    let r = env.ok(&forced);
    assert!(
        r.stderr
            .contains("names no configured [[server]]: assigned anyway"),
        "{}",
        r.stderr
    );

    for bad in ["../..", "..", "."] {
        let env = Env::with_config(&format!(
            "[[server]]\nname = \"fe01.contoso.com\"\nsite = \"{bad}\"\n"
        ));
        env.run(&["get"]).assert_one_line_error(
            2,
            &[
                "[[server]] 'fe01.contoso.com': site:",
                "starts with a letter or digit",
            ],
        );
    }
}
