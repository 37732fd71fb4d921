//! `certroll rollback`: a bad roll undone, at once or scheduled, deployed
//! to the servers' files and JWKS, shown by history as the rollback of its
//! roll; refused when there is nothing sound to go back to.

use std::path::Path;

use crate::util::*;

const SERVER: &str = "fe01.contoso.com";

fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"sip_domain = "contoso.com"
[[server]]
name = "{SERVER}"
[[target]]
name = "files"
scope = "global"
types = ["OAuthTokenIssuer"]
[[target.file]]
kind = "cert"
path = "{d}/srv/cert.pem"
[[target.file]]
kind = "jwks"
path = "{d}/srv/jwks.json"
"#
    )
}

/// oauth1 current, then oauth2 rolled in by a roll job: oauth1 previous.
fn rolled(env: &Env) -> i64 {
    env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"]);
    env.import(
        "oauth2.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+1s",
            "--roll",
        ],
    );
    wait_past(chrono::Utc::now() + chrono::Duration::milliseconds(1100));
    env.ok(&["roll"]);
    assert_eq!(
        env.get_json()[0]["current"]["thumbprint"],
        thumbprint("oauth2.crt.pem")
    );
    sql_i64(env, "SELECT max(id) FROM jobs WHERE state = 'succeeded'")
}

fn deployed(env: &Env, dir: &Path) -> (String, Vec<String>) {
    env.ok(&["agent", "--server", SERVER, "--once"]);
    let cert = std::fs::read_to_string(dir.join("srv/cert.pem")).unwrap();
    let jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("srv/jwks.json")).unwrap()).unwrap();
    let kids = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    (cert, kids)
}

fn same_cert(pem: &str, fixture_pem: &str) -> bool {
    let want = std::fs::read_to_string(fixture(fixture_pem)).unwrap();
    pem.trim() == want.trim()
}

#[test]
fn a_rollback_at_once_swaps_back_deploys_and_names_the_roll_it_undoes() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::with_config(&config(tmp.path()));
    let job = rolled(&env);
    let (cert, kids) = deployed(&env, tmp.path());
    assert!(same_cert(&cert, "oauth2.crt.pem"));
    let (t1, t2) = (thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem"));
    assert_eq!(kids, [t2.clone(), t1.clone()]);

    // --what-if changes nothing.
    let before = env.snapshot();
    let r = env.ok(&["rollback", "--type", "OAuthTokenIssuer", "--what-if"]);
    assert!(
        r.stdout
            .contains(&format!("what if: OAuthTokenIssuer@global: {}", &t1[..8])),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("rollback of roll {job} (")),
        "{}",
        r.stdout
    );
    assert_eq!(env.snapshot(), before);

    let out = env
        .ok(&["rollback", "--type", "OAuthTokenIssuer", "--json"])
        .json();
    assert_eq!(out[0]["rolls_back_job"], job, "{out}");
    let view = env.get_json();
    assert_eq!(view[0]["current"]["thumbprint"], t1.as_str());
    assert_eq!(view[0]["previous"]["thumbprint"], t2.as_str());
    let (cert, kids) = deployed(&env, tmp.path());
    assert!(
        same_cert(&cert, "oauth1.crt.pem"),
        "the server's file follows"
    );
    assert_eq!(kids, [t1.clone(), t2.clone()], "the JWKS follows");
    let history = env.ok(&["history"]).stdout;
    assert!(
        history.contains(&format!("rollback of roll {job} (")),
        "{history}"
    );
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind = 'certificate.rolled_back' AND severity = 'warning'"
        ),
        1
    );

    // Rolled back again with --remove-bad: the bad one leaves the slot and
    // the JWKS.
    env.ok(&["rollback", "--type", "OAuthTokenIssuer", "--remove-bad"]);
    let view = env.get_json();
    assert_eq!(view[0]["current"]["thumbprint"], t2.as_str());
    assert!(view[0]["previous"].is_null(), "{view}");
    let (_, kids) = deployed(&env, tmp.path());
    assert_eq!(kids, std::slice::from_ref(&t2));
    // Nothing to go back to now.
    let r = env.run(&["rollback", "--type", "OAuthTokenIssuer"]);
    r.assert_one_line_error(1, &["no previous certificate", "nothing changed"]);
}

#[test]
fn a_scheduled_rollback_rolls_at_its_instant() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::with_config(&config(tmp.path()));
    let job = rolled(&env);
    let (t1, t2) = (thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem"));
    let out = env
        .ok(&[
            "rollback",
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+2s",
            "--roll",
            "--json",
        ])
        .json();
    assert_eq!(out[0]["rolls_back_job"], job, "{out}");
    let view = env.get_json();
    assert_eq!(view[0]["current"]["thumbprint"], t2.as_str());
    assert_eq!(view[0]["pending"]["thumbprint"], t1.as_str());
    // While it is pending, another rollback is refused.
    env.run(&["rollback", "--type", "OAuthTokenIssuer"])
        .assert_one_line_error(1, &["pending certificate", "cancel its roll first"]);
    wait_past(chrono::Utc::now() + chrono::Duration::seconds(2));
    env.ok(&["roll"]);
    let view = env.get_json();
    assert_eq!(view[0]["current"]["thumbprint"], t1.as_str());
    assert_eq!(view[0]["previous"]["thumbprint"], t2.as_str());
    let (cert, _) = deployed(&env, tmp.path());
    assert!(same_cert(&cert, "oauth1.crt.pem"));
    let history = env.ok(&["history"]).stdout;
    assert!(
        history.contains(&format!("rollback of roll {job} (")),
        "{history}"
    );
}

#[test]
fn a_rollback_to_an_expired_or_keyless_previous_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // A previous that expires in a day: a rollback three days out would
    // serve an expired certificate.
    let env = Env::with_config("sip_domain = \"contoso.com\"\n");
    env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--self-signed",
        "--days",
        "1",
        "--key",
        "ec-p256",
        "--assign",
        "--force",
    ]);
    env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--self-signed",
        "--days",
        "365",
        "--key",
        "ec-p256",
        "--assign",
    ]);
    let before = env.snapshot();
    env.run(&[
        "rollback",
        "--type",
        "OAuthTokenIssuer",
        "--effective-date",
        "+3d",
        "--roll",
    ])
    .assert_one_line_error(1, &["expired on"]);
    assert_eq!(env.snapshot(), before);

    // A previous without its key, under a policy that needs one (the key
    // rule was off when it was assigned).
    let lax = tmp.path().join("lax.toml");
    std::fs::write(
        &lax,
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nrequire_private_key = false\n",
    )
    .unwrap();
    let env = Env::with_config("sip_domain = \"contoso.com\"\n");
    let lax_run = |args: &[&str]| {
        let out = env
            .command(args)
            .env("CERTROLL_CONFIG", &lax)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let crt = fixture("oauth1.crt.pem");
    lax_run(&[
        "import",
        "--path",
        crt.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--force",
    ]);
    env.import("oauth2.pfx", &["--type", "OAuthTokenIssuer"]);
    let before = env.snapshot();
    env.run(&["rollback", "--type", "OAuthTokenIssuer"])
        .assert_one_line_error(1, &["no private key"]);
    assert_eq!(env.snapshot(), before);
}
