//! Issue bullet 7: import/set/get/certs/remove/history as the contract in
//! ../shared/design.md describes them.

use crate::util::*;

/// Imports oauth1 (assigned) and oauth2 (stored only); returns their thumbprints.
fn two_certs(env: &Env) -> (String, String) {
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    assert_eq!(env.import("oauth2-windows.pfx", &[]).code, 0);
    (thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem"))
}

#[test]
fn set_flips_current_and_previous_and_get_json_follows_the_contract() {
    let env = Env::new();
    let (t1, t2) = two_certs(&env);
    let r = env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t2]);
    assert!(
        r.stdout.contains("is now current; previous: "),
        "{}",
        r.stdout
    );

    let slots = env.get_json();
    let slot = &slots[0];
    assert_eq!(slots.as_array().unwrap().len(), 1);
    assert_eq!(slot["scope"], "global");
    assert_eq!(slot["type"], "OAuthTokenIssuer");
    assert_eq!(slot["current"]["thumbprint"], t2);
    assert_eq!(slot["previous"]["thumbprint"], t1);
    assert!(slot["pending"].is_null());
    for key in [
        "thumbprint",
        "subject",
        "issuer",
        "sans",
        "not_before",
        "not_after",
        "key_algorithm",
        "key_bits",
        "has_private_key",
    ] {
        assert!(
            !slot["current"][key].is_null(),
            "certificate object lacks {key}"
        );
    }
    assert_eq!(slot["current"]["not_after"], "2045-06-01T00:00:00Z");
    assert_eq!(
        slot["current"]["sans"],
        serde_json::json!(["contoso.com", "oauth2.contoso.com"])
    );

    let text = env.ok(&["get", "--type", "oauthtokenissuer"]).stdout;
    assert!(text.contains(&format!("current   {t2}")), "{text}");
    assert!(text.contains(&format!("previous  {t1}")), "{text}");
}

#[test]
fn a_third_assignment_drops_the_old_previous_but_keeps_it_stored() {
    let env = Env::new();
    let (t1, t2) = two_certs(&env);
    env.import("ec1.pfx", &[]);
    let t3 = thumbprint("ec1.crt.pem");
    env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t2]);
    let r = env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t3]);
    assert!(
        r.stdout.contains("left the slot and stays in the store"),
        "{}",
        r.stdout
    );
    let slot = &env.get_json()[0];
    assert_eq!(slot["current"]["thumbprint"], t3);
    assert_eq!(slot["previous"]["thumbprint"], t2);
    let certs = env.ok(&["certs", "--json"]).json();
    let c1 = certs
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["thumbprint"] == t1)
        .unwrap();
    assert_eq!(c1["assigned"], serde_json::json!([]));
}

#[test]
fn assigning_the_current_certificate_again_is_a_no_op_that_says_so() {
    let env = Env::new();
    let (t1, _) = two_certs(&env);
    let before = env.snapshot();
    let r = env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t1]);
    assert!(
        r.stdout.contains("is already current; nothing changes"),
        "{}",
        r.stdout
    );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn thumbprint_prefix_and_windows_spelling_are_accepted() {
    let env = Env::new();
    let (_, t2) = two_certs(&env);
    env.ok(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &t2[..8].to_lowercase(),
    ]);
    assert_eq!(env.get_json()[0]["current"]["thumbprint"], t2);
    // As the Windows certificate dialog shows it: pairs separated by spaces.
    let (_, t2) = (0, thumbprint("oauth1.crt.pem"));
    let spaced: Vec<String> = t2
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    env.ok(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &spaced.join(" "),
    ]);
    assert_eq!(env.get_json()[0]["current"]["thumbprint"], t2);
}

#[test]
fn several_types_change_in_one_transaction() {
    let env = Env::new();
    let (_, t2) = two_certs(&env);
    let r = env.ok(&[
        "set",
        "--type",
        "Default,WebServicesInternal,WebServicesExternal",
        "--thumbprint",
        &t2,
        "--json",
    ]);
    assert_eq!(r.json()["changes"].as_array().unwrap().len(), 3);
    let slots = env.get_json();
    let types: Vec<_> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            "Default",
            "OAuthTokenIssuer",
            "WebServicesExternal",
            "WebServicesInternal"
        ]
    );
    // One outbox event per slot change, written with the change.
    assert_eq!(env.count("outbox"), 4);
}

#[test]
fn several_types_are_all_or_nothing() {
    let env = Env::new();
    env.import("fabrikam.pfx", &[]);
    let t = thumbprint("fabrikam.crt.pem");
    let before = env.snapshot();
    // fabrikam is fine for Default but lacks the SIP domain OAuthTokenIssuer needs.
    let r = env.run(&[
        "set",
        "--type",
        "Default,OAuthTokenIssuer",
        "--thumbprint",
        &t,
    ]);
    r.assert_one_line_error(1, &["OAuthTokenIssuer policy", "required-name"]);
    assert_eq!(env.snapshot(), before);
    assert_eq!(env.get_json(), serde_json::json!([]));
}

#[test]
fn what_if_prints_the_change_and_changes_nothing() {
    let env = Env::new();
    let (t1, t2) = two_certs(&env);
    let before = env.snapshot();
    let r = env.ok(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--thumbprint",
        &t2,
        "--what-if",
    ]);
    assert!(
        r.stdout.starts_with("what if: OAuthTokenIssuer@global: "),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("would become current"), "{}", r.stdout);
    assert!(r.stdout.contains(&t1[..8]), "{}", r.stdout);
    assert_eq!(env.snapshot(), before);

    let r = env.import("ec1.pfx", &["--type", "OAuthTokenIssuer", "--what-if"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("what if: would import"),
        "{}",
        r.stdout
    );
    assert_eq!(env.snapshot(), before);

    let r = env.ok(&[
        "remove",
        "--type",
        "OAuthTokenIssuer",
        "--current",
        "--force",
        "--what-if",
    ]);
    assert!(r.stdout.contains("would be removed"), "{}", r.stdout);
    assert_eq!(env.snapshot(), before);
}

#[test]
fn scopes_are_separate_slots() {
    let env = Env::any_scope();
    let (t1, t2) = two_certs(&env);
    env.ok(&[
        "set",
        "--type",
        "OAuthTokenIssuer",
        "--scope",
        "pool:FE01.Contoso.com",
        "--thumbprint",
        &t2,
    ]);
    let slots = env.get_json();
    assert_eq!(slots.as_array().unwrap().len(), 2);
    let pool = env
        .ok(&["get", "--scope", "pool:fe01.contoso.com", "--json"])
        .json();
    assert_eq!(pool[0]["scope"], "pool:fe01.contoso.com");
    assert_eq!(pool[0]["current"]["thumbprint"], t2);
    assert!(pool[0]["previous"].is_null());
    let global = env.ok(&["get", "--scope", "global", "--json"]).json();
    assert_eq!(global[0]["current"]["thumbprint"], t1);
}

#[test]
fn remove_previous_and_current() {
    let env = Env::new();
    let (t1, t2) = two_certs(&env);
    env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t2]);

    let r = env.ok(&["remove", "--type", "OAuthTokenIssuer", "--previous"]);
    assert!(
        r.stdout
            .contains(&format!("previous certificate {}", &t1[..8])),
        "{}",
        r.stdout
    );
    let slot = &env.get_json()[0];
    assert!(slot["previous"].is_null());
    assert_eq!(slot["current"]["thumbprint"], t2);

    let r = env.ok(&["remove", "--type", "OAuthTokenIssuer", "--previous"]);
    assert!(r.stdout.contains("nothing to remove"), "{}", r.stdout);
    let r = env.ok(&["remove", "--type", "OAuthTokenIssuer", "--pending"]);
    assert!(r.stdout.contains("no pending certificate"), "{}", r.stdout);

    let before = env.snapshot();
    let r = env.run(&["remove", "--type", "OAuthTokenIssuer", "--current"]);
    r.assert_one_line_error(1, &["--force", "OAuthTokenIssuer@global"]);
    assert_eq!(env.snapshot(), before);

    env.ok(&[
        "remove",
        "--type",
        "OAuthTokenIssuer",
        "--current",
        "--force",
    ]);
    assert_eq!(env.get_json(), serde_json::json!([]));
    // The certificates stay in the store.
    assert_eq!(
        env.ok(&["certs", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn remove_from_a_slot_that_holds_nothing_is_refused() {
    let env = Env::new();
    two_certs(&env);
    let before = env.snapshot();
    env.run(&[
        "remove",
        "--type",
        "OAuthTokenIssuer",
        "--scope",
        "pool:nowhere.contoso.com",
        "--previous",
    ])
    .assert_one_line_error(
        1,
        &[
            "OAuthTokenIssuer@pool:nowhere.contoso.com",
            "nothing is assigned",
        ],
    );
    assert_eq!(env.snapshot(), before);
}

#[test]
fn remove_needs_exactly_one_role() {
    let env = Env::new();
    assert_eq!(env.run(&["remove", "--type", "OAuthTokenIssuer"]).code, 2);
    assert_eq!(
        env.run(&[
            "remove",
            "--type",
            "OAuthTokenIssuer",
            "--previous",
            "--current"
        ])
        .code,
        2
    );
}

#[test]
fn history_is_the_audit_trail_filterable_by_slot() {
    let env = Env::new();
    let (t1, t2) = two_certs(&env);
    env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t2]);
    env.ok(&[
        "set",
        "--type",
        "Default",
        "--scope",
        "site:Redmond",
        "--thumbprint",
        &t1,
    ]);

    let all = env.ok(&["history", "--json"]).json();
    let actions: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["import", "assign", "import", "assign", "assign"]);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == format!("cli:{}", whoami())),
        "{all}"
    );

    let oauth = env
        .ok(&["history", "--type", "OAuthTokenIssuer", "--json"])
        .json();
    let oauth = oauth.as_array().unwrap();
    assert_eq!(oauth.len(), 2);
    assert_eq!(oauth[1]["before"]["current"], t1);
    assert_eq!(oauth[1]["after"]["current"], t2);
    assert_eq!(oauth[1]["after"]["previous"], t1);

    let site = env
        .ok(&["history", "--scope", "site:redmond", "--json"])
        .json();
    assert_eq!(site.as_array().unwrap().len(), 1);
    assert_eq!(site[0]["scope"], "site:Redmond");
    assert_eq!(site[0]["type"], "Default");

    let text = env.ok(&["history", "--type", "OAuthTokenIssuer"]).stdout;
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("OAuthTokenIssuer@global"), "{text}");
}

#[test]
fn the_audit_trail_is_append_only() {
    let env = Env::new();
    two_certs(&env);
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    assert!(
        conn.execute("UPDATE audit_log SET actor = 'mallory'", [])
            .is_err()
    );
    assert!(conn.execute("DELETE FROM audit_log", []).is_err());
}

#[test]
fn certs_lists_everything_and_filters_by_expiry() {
    let env = Env::new();
    let (t1, _) = two_certs(&env);
    let pem = short_lived_pem(env.dir.path(), "short", 10);
    env.ok(&["import", "--path", pem.to_str().unwrap()]);

    let all = env.ok(&["certs", "--json"]).json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3);
    // Soonest expiry first.
    assert_eq!(all[0]["subject"], "CN=contoso.com");
    let assigned = &all.iter().find(|c| c["thumbprint"] == t1).unwrap()["assigned"];
    assert_eq!(
        assigned,
        &serde_json::json!([{"scope": "global", "type": "OAuthTokenIssuer", "role": "current"}])
    );

    let soon = env
        .ok(&["certs", "--expiring-within", "30", "--json"])
        .json();
    assert_eq!(soon.as_array().unwrap().len(), 1);
    assert_eq!(soon[0]["subject"], "CN=contoso.com");
    let text = env.ok(&["certs", "--expiring-within", "30"]).stdout;
    assert!(
        text.contains("expires ") && text.contains("unassigned"),
        "{text}"
    );
    let none = env.ok(&["certs", "--expiring-within", "1"]).stdout;
    assert_eq!(none.trim(), "no certificate expires within 1 days");
}

#[test]
fn empty_store_answers_plainly() {
    let env = Env::new();
    assert_eq!(env.ok(&["get"]).stdout.trim(), "no certificate assigned");
    assert_eq!(env.get_json(), serde_json::json!([]));
    assert_eq!(
        env.ok(&["certs"]).stdout.trim(),
        "no certificate in the store"
    );
    assert_eq!(env.ok(&["history"]).stdout.trim(), "no history yet");
}

#[test]
fn every_command_has_help() {
    let env = Env::new();
    for cmd in ["import", "set", "get", "certs", "remove", "history"] {
        let r = env.ok(&[cmd, "--help"]);
        assert!(r.stdout.contains("Usage: certroll "), "{cmd}: {}", r.stdout);
    }
    let r = env.ok(&["import", "--help"]);
    for flag in [
        "--password-file",
        "--password-env",
        "--password-stdin",
        "--key",
        "--entry",
        "--what-if",
    ] {
        assert!(r.stdout.contains(flag), "import --help lacks {flag}");
    }
}

/// Issue 11, item 5: a subject holding a newline and terminal codes is
/// shown escaped in every text output, error and log line; JSON keeps the
/// real characters as JSON escapes.
#[test]
fn control_characters_in_names_are_escaped_in_text_and_kept_in_json() {
    let env = Env::new();
    let dir = env.dir.path();
    let evil_cn = "evil.contoso.com\nerror: forged\x1b[31mRED\u{202e}";
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-utf8", "-newkey", "rsa:2048", "-nodes", "-days", "400",
        ])
        .args(["-keyout", "evil.key", "-out", "evil.crt"])
        .arg("-subj")
        .arg(format!("/CN={evil_cn}"))
        .args(["-addext", "subjectAltName=DNS:contoso.com"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crt = dir.join("evil.crt");
    let key = dir.join("evil.key");
    let escaped = "evil.contoso.com\\nerror: forged\\x1b[31mRED\\u{202e}";
    let clean = |what: &str, text: &str| {
        assert!(
            !text.contains('\x1b')
                && !text.contains('\u{202e}')
                && !text.contains("\nerror: forged"),
            "{what} carries the raw characters:\n{text}"
        );
    };
    let r = env.ok(&[
        "import",
        "--path",
        crt.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
    ]);
    clean("import", &r.stdout);
    assert!(r.stdout.contains(escaped), "{}", r.stdout);
    for args in [
        vec!["get"],
        vec!["certs"],
        vec!["history"],
        vec!["timeline"],
        vec!["check"],
    ] {
        let r = env.run(&args);
        clean(&format!("{args:?}"), &r.stdout);
        clean(&format!("{args:?} stderr"), &r.stderr);
    }
    assert!(env.ok(&["get"]).stdout.contains(escaped));
    // An error naming the certificate: one line, escaped.
    let thumb = env.get_json()[0]["current"]["thumbprint"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env.run(&[
        "set",
        "--type",
        "Default",
        "--thumbprint",
        &thumb,
        "--what-if",
    ]);
    clean("a refusal", &r.stderr);
    // JSON keeps the value itself.
    let v = env.get_json();
    assert_eq!(
        v[0]["current"]["subject"],
        format!("CN={evil_cn}"),
        "the JSON subject"
    );
    // The service's text log: the roll fails at its instant (the policy
    // changed meanwhile), and its reason names the certificate.
    let env = Env::new();
    let r = env.run(&[
        "import",
        "--path",
        crt.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--effective-date",
        "+2s",
        "--roll",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(
        &env.config,
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nmin_rsa_bits = 4096\n",
    )
    .unwrap();
    let serve = env.serve();
    wait_until(20, "the failed roll in the log", || {
        serve.log().contains("2048-bit RSA key")
    });
    let log = serve.log();
    serve.stop();
    assert!(log.contains(escaped), "{log}");
    clean("the serve log", &log);
}

/// Issue 11, item 8: `get --server NAME` is a Front End's own
/// Get-CsCertificate: per type, what it uses and where that comes from.
#[test]
fn get_server_shows_what_a_server_uses_and_from_which_scope() {
    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n\
         [[server]]\nname = \"fe01.contoso.com\"\npool = \"pool01.contoso.com\"\nsite = \"Redmond\"\n\
         [[server]]\nname = \"fe02.contoso.com\"\npool = \"pool01.contoso.com\"\nsite = \"Redmond\"\n",
    );
    let (t1, t2) = two_certs(&env);
    env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t1]);
    env.ok(&[
        "set",
        "--type",
        "Default",
        "--scope",
        "site:Redmond",
        "--thumbprint",
        &t1,
    ]);
    env.ok(&[
        "set",
        "--type",
        "Default",
        "--scope",
        "pool:pool01.contoso.com",
        "--thumbprint",
        &t2,
    ]);
    env.ok(&[
        "set",
        "--type",
        "Default",
        "--scope",
        "server:fe02.contoso.com",
        "--thumbprint",
        &t1,
    ]);
    env.ok(&[
        "set",
        "--type",
        "WebServicesInternal",
        "--scope",
        "site:Redmond",
        "--thumbprint",
        &t2,
    ]);
    let by_type = |v: &serde_json::Value| -> Vec<(String, String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["type"].as_str().unwrap().to_string(),
                    s["scope"].as_str().unwrap().to_string(),
                    s["current"]["thumbprint"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let fe01 = env
        .ok(&["get", "--server", "FE01.contoso.com", "--json"])
        .json();
    assert_eq!(
        by_type(&fe01),
        [
            (
                "Default".into(),
                "pool:pool01.contoso.com".into(),
                t2.clone()
            ),
            ("OAuthTokenIssuer".into(), "global".into(), t1.clone()),
            (
                "WebServicesInternal".into(),
                "site:Redmond".into(),
                t2.clone()
            ),
        ]
    );
    assert_eq!(fe01[0]["server"], "fe01.contoso.com");
    let fe02 = env
        .ok(&[
            "get",
            "--server",
            "fe02.contoso.com",
            "--type",
            "Default",
            "--json",
        ])
        .json();
    assert_eq!(
        by_type(&fe02),
        [(
            "Default".into(),
            "server:fe02.contoso.com".into(),
            t1.clone()
        )]
    );
    let text = env.ok(&["get", "--server", "fe01.contoso.com"]).stdout;
    assert!(
        text.starts_with("fe01.contoso.com, pool pool01.contoso.com, site Redmond\n"),
        "{text}"
    );
    assert!(
        text.contains("\nDefault  from pool:pool01.contoso.com\n  current   "),
        "{text}"
    );
    assert!(text.contains("\nOAuthTokenIssuer  from global\n"), "{text}");
    env.run(&["get", "--server", "fe09.contoso.com"])
        .assert_one_line_error(
            2,
            &["no such [[server]]", "fe01.contoso.com, fe02.contoso.com"],
        );
}

/// The passwd name of the user running the tests.
fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Issue 11, item 17: the audit actor is the real user's passwd name; a
/// forged $USER changes nothing, and under sudo the invoking user is named.
#[test]
fn the_audit_actor_is_the_real_user_not_user_from_the_environment() {
    let env = Env::new();
    let pfx = fixture("oauth1-openssl3.pfx");
    let pw = password_file();
    let import = |extra: &[(&str, &str)], t: &str| {
        let mut cmd = env.command(&[
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
            "--type",
            t,
        ]);
        cmd.env("USER", "bob")
            .env("LOGNAME", "bob")
            .env_remove("SUDO_USER");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        assert!(cmd.output().unwrap().status.success());
    };
    import(&[], "OAuthTokenIssuer");
    import(&[("SUDO_USER", "alice")], "Default");
    let actors: Vec<String> = env
        .ok(&["history", "--json"])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "assign")
        .map(|e| e["actor"].as_str().unwrap().to_string())
        .collect();
    let me = whoami();
    assert_eq!(
        actors,
        [format!("cli:{me}"), format!("cli:{me} (sudo from alice)")]
    );
}

/// Issue 11, item 19: reading many slots. `timeline` filters (scope
/// patterns, --problems, --expiring-within), grows its window to the next
/// pending instant, fits the terminal, takes --at -30d and says so; `certs`
/// summarises a certificate's slots on one line, `certs show` lists them.
#[test]
fn timeline_and_certs_stay_readable_for_many_slots() {
    let env = Env::new();
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    let t1 = thumbprint("oauth1.crt.pem");
    let pools: Vec<String> = (0..20)
        .map(|i| format!("pool:p{i:02}.contoso.com"))
        .collect();
    for p in &pools {
        env.ok(&[
            "set",
            "--type",
            "Default",
            "--scope",
            p,
            "--thumbprint",
            &t1,
        ]);
    }
    // A slot with a problem: 20 days left, nothing pending.
    let short = short_lived_pem(env.dir.path(), "short", 21);
    env.ok(&[
        "import",
        "--path",
        short.to_str().unwrap(),
        "--type",
        "WebServicesInternal",
        "--force",
    ]);
    // A roll far beyond the default 90-day window.
    env.ok(&[
        "import",
        "--path",
        fixture("oauth2-windows.pfx").to_str().unwrap(),
        "--password-file",
        password_file().to_str().unwrap(),
        "--type",
        "Default",
        "--scope",
        "pool:p00.contoso.com",
        "--effective-date",
        "+200d",
        "--roll",
    ]);
    let heads = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with(' ') && l.contains('@'))
            .map(str::to_string)
            .collect()
    };
    let all = env.ok(&["timeline", "--width", "40"]).stdout;
    assert_eq!(heads(&all).len(), 21, "{all}");
    let pool = env
        .ok(&["timeline", "--scope", "pool:*", "--width", "40"])
        .stdout;
    assert_eq!(heads(&pool).len(), 20, "{pool}");
    for args in [
        &["timeline", "--problems"][..],
        &["timeline", "--expiring-within", "25"],
    ] {
        let r = env.ok(args).stdout;
        assert_eq!(heads(&r), ["WebServicesInternal@global"], "{args:?}: {r}");
    }
    // The window grows to show the pending instant (the '*').
    let site = env
        .ok(&["timeline", "--scope", "pool:p00.contoso.com"])
        .stdout;
    assert!(
        site.lines()
            .any(|l| l.starts_with("  pending") && l.contains('*')),
        "{site}"
    );
    // --at in the past, as documented, and the header says it.
    let r = env.ok(&["timeline", "--at", "-30d", "--type", "WebServicesInternal"]);
    let day = (chrono::Utc::now() - chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    assert!(r.stdout.contains(&format!("v at {day}")), "{}", r.stdout);
    // The bars fit the terminal's width.
    let out = env
        .command(&["timeline", "--type", "WebServicesInternal"])
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().nth(1).unwrap().len(), 12 + 98, "{text}");

    // certs: one line per certificate, whatever it serves.
    let certs = env.ok(&["certs"]).stdout;
    assert!(certs.lines().all(|l| l.len() < 300), "{certs}");
    assert!(
        certs.contains("20 slot(s) [20 current]: Default@pool:p00.contoso.com (current), Default@pool:p01.contoso.com (current), Default@pool:p02.contoso.com (current) and 17 more"),
        "{certs}"
    );
    assert!(certs.contains("certroll certs show THUMBPRINT"), "{certs}");
    let show = env.ok(&["certs", "show", &t1[..10]]).stdout;
    for needle in [
        "  names         oauth1.contoso.com, contoso.com",
        "  issuer        CN=certroll Test Issuing CA, O=Contoso",
        "  chain         ",
        "certroll Test Root CA",
        "Default@pool:p19.contoso.com (current)",
    ] {
        assert!(show.contains(needle), "{needle:?} not in:\n{show}");
    }
    let v = env.ok(&["certs", "show", &t1, "--json"]).json();
    assert_eq!(v["assigned"].as_array().unwrap().len(), 20);
    env.run(&["certs", "show", "DEADBEEF00"])
        .assert_one_line_error(1, &["DEADBEEF00"]);
}

/// Issue 11, item 21: help and completions as users expect them.
#[test]
fn help_completions_and_hints_read_well() {
    let env = Env::new();
    let subcommands = [
        "",
        "import",
        "set",
        "get",
        "certs",
        "remove",
        "history",
        "request",
        "requests",
        "export",
        "roll",
        "jobs",
        "check",
        "notifications",
        "notify",
        "timeline",
        "status",
        "agent",
        "serve",
        "completions",
        "man",
    ];
    for sub in subcommands {
        let mut args: Vec<&str> = sub.split_whitespace().collect();
        args.push("--help");
        let r = env.ok(&args);
        assert!(
            !r.stdout
                .lines()
                .any(|l| !l.is_empty() && l.trim().is_empty()),
            "{sub} --help has whitespace-only lines:\n{}",
            r.stdout
        );
        assert!(
            !r.stdout.lines().any(|l| l.ends_with(' ')),
            "{sub}: trailing spaces"
        );
        if !sub.is_empty() {
            let global = r.stdout.split("Global options:").nth(1).unwrap_or_else(|| {
                panic!("{sub} --help has no Global options heading:\n{}", r.stdout)
            });
            assert!(global.contains("--config <FILE>") && global.contains("--data-dir <DIR>"));
            let own = r.stdout.split("Global options:").next().unwrap();
            assert!(
                !own.contains("--data-dir"),
                "{sub}: a global option among its own"
            );
        }
    }
    let bash = env.ok(&["completions", "bash"]).stdout;
    assert!(
        bash.contains("OAuthTokenIssuer WebServicesInternal")
            || bash.contains("WebServicesInternal")
    );
    assert!(
        bash.contains("rsa2048 rsa3072 rsa4096 ec-p256 ec-p384"),
        "--key values"
    );
    env.run(&["request", "list"])
        .assert_one_line_error(2, &["'certroll requests list'"]);
    let r = env.ok(&[
        "request",
        "--type",
        "Default",
        "--key",
        "EC-P256",
        "--subject-cn",
        "x.contoso.com",
    ]);
    assert!(
        r.stdout.contains("BEGIN CERTIFICATE REQUEST"),
        "{}",
        r.stdout
    );
}
