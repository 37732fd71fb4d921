//! Issue 5: deployment to every server of a pool, replication status,
//! staging, JWKS.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};

use crate::peers::free_port;
use crate::util::*;

const SERVERS: [&str; 3] = ["fe01.contoso.com", "fe02.contoso.com", "fe03.contoso.com"];

/// A pool of three servers whose files go under `srv/`; fe03's reload fails
/// (for `fail_role`) until the file `fixed` exists.
fn pool_config(dir: &Path, fail_role: &str, extra: &str) -> String {
    let mut c = String::from(
        "sip_domain = \"contoso.com\"\n[deploy]\nretry_base_seconds = 1\nretry_max_seconds = 1\nlagging_after_minutes = 0\n",
    );
    c.push_str(extra);
    for s in SERVERS {
        c.push_str(&format!(
            "[[server]]\nname = \"{s}\"\npool = \"pool01.contoso.com\"\n"
        ));
    }
    let d = dir.display();
    c.push_str(&format!(
        r#"[[target]]
name = "files"
scope = "pool:pool01.contoso.com"
types = ["OAuthTokenIssuer"]
reload = '''
if [ "$CERTROLL_SERVER" = fe03.contoso.com ] && [ "$CERTROLL_ROLE" = {fail_role} ] && [ ! -e {d}/fixed ]; then
  echo "the service refused the certificate" >&2; exit 3
fi
echo "$CERTROLL_SERVER $CERTROLL_ROLE $CERTROLL_OLD_THUMBPRINT $CERTROLL_NEW_THUMBPRINT" >> {d}/reloads.log
'''
reload_timeout_seconds = 10
[[target.file]]
kind = "fullchain"
path = "{d}/srv/{{server}}/{{type}}/fullchain.pem"
pending_path = "{d}/srv/{{server}}/{{type}}/next/fullchain.pem"
[[target.file]]
kind = "key"
path = "{d}/srv/{{server}}/{{type}}/key.pem"
[[target.file]]
kind = "cert"
path = "{d}/srv/{{server}}/{{type}}/cert.pem"
mode = "0640"
[[target.file]]
kind = "jwks"
path = "{d}/srv/{{server}}/{{type}}/jwks.json"
"#
    ));
    c.push_str(ANY_SCOPE);
    c
}

fn file(dir: &Path, server: &str, name: &str) -> PathBuf {
    dir.join("srv")
        .join(server)
        .join("OAuthTokenIssuer")
        .join(name)
}

fn fullchain_of(crt: &str) -> String {
    // The leaf, then its issuers (the fixtures' chain is int, root).
    let mut out = std::fs::read_to_string(fixture(crt)).unwrap();
    out.push_str(&std::fs::read_to_string(fixture("int.crt.pem")).unwrap());
    out.push_str(&std::fs::read_to_string(fixture("root.crt.pem")).unwrap());
    out
}

fn status(env: &Env) -> (i32, serde_json::Value) {
    let r = env.run(&["status", "--json"]);
    (r.code, r.json())
}

fn up_to_date(env: &Env) -> bool {
    status(env).0 == 0
}

#[test]
fn an_assignment_and_a_roll_reach_every_server_and_a_lagging_one_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = Env::with_config(&pool_config(dir, "current", ""));
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let serve = env.serve();
    wait_until(20, "fe01 and fe02", || {
        SERVERS[..2].iter().all(|s| {
            std::fs::read_to_string(file(dir, s, "fullchain.pem"))
                .is_ok_and(|c| c == fullchain_of("oauth1.crt.pem"))
        })
    });
    // fe03's reload fails: status shows it lagging and exits 1.
    wait_until(20, "fe03 to fail", || {
        let (_, v) = status(&env);
        v["rows"].as_array().unwrap().iter().any(|r| {
            r["server"] == SERVERS[2]
                && r["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("refused"))
        })
    });
    let (code, v) = status(&env);
    assert_eq!(code, 1);
    let fe03 = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["server"] == SERVERS[2] && r["role"] == "current")
        .unwrap()
        .clone();
    assert_eq!(fe03["up_to_date"], false);
    assert_eq!(fe03["should_have"], thumbprint("oauth1.crt.pem"));
    assert!(fe03["has"].is_null());
    let text = env.run(&["status"]).stdout;
    assert!(
        text.contains("OUT OF DATE") && text.contains("the service refused the certificate"),
        "{text}"
    );
    wait_until(10, "the alerts", || {
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind IN ('deploy.failed', 'replication.lagging')",
        ) == 2
    });

    // Fixed: the retry brings it up to date.
    std::fs::write(dir.join("fixed"), "").unwrap();
    wait_until(20, "fe03 to recover", || up_to_date(&env));
    assert_eq!(
        sql_i64(
            &env,
            "SELECT count(*) FROM outbox WHERE kind = 'deploy.recovered'"
        ),
        1
    );

    // A roll reaches all three.
    let r = env.import(
        "oauth2-windows.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+1s",
            "--roll",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait_until(20, "the rolled certificate on every server", || {
        SERVERS.iter().all(|s| {
            std::fs::read_to_string(file(dir, s, "fullchain.pem"))
                .is_ok_and(|c| c == fullchain_of("oauth2.crt.pem"))
        })
    });
    wait_until(20, "status up to date", || up_to_date(&env));
    // Logs speak plainly: no Rust debug formatting (item 21).
    let log = serve.log();
    assert!(
        !log.contains("Some(") && !log.contains("=None"),
        "debug formatting in the log:\n{log}"
    );
    assert_eq!(serve.stop(), 0);

    // Modes: key 0600 by default, cert as configured, fullchain 0644.
    for s in SERVERS {
        let mode = |n: &str| {
            std::fs::metadata(file(dir, s, n))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("key.pem"), 0o600);
        assert_eq!(mode("cert.pem"), 0o640);
        assert_eq!(mode("fullchain.pem"), 0o644);
        let key = std::fs::read_to_string(file(dir, s, "key.pem")).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
    // The reload ran once per change and server, and was told what changed.
    let log = std::fs::read_to_string(dir.join("reloads.log")).unwrap();
    let (t1, t2) = (thumbprint("oauth1.crt.pem"), thumbprint("oauth2.crt.pem"));
    for s in SERVERS {
        assert!(log.contains(&format!("{s} current  {t1}")), "{log}");
        assert!(log.contains(&format!("{s} current {t1} {t2}")), "{log}");
    }
    // Each server reloaded its current certificate twice for a change of
    // certificate; other reloads of the current unit are for a JWKS that
    // changed (the pending key appeared or left) and keep the thumbprint.
    let changes = log.lines().filter(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        f[1] == "current" && f[2] != f[3]
    });
    assert_eq!(changes.count(), 6, "{log}");
    for l in log
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some("current"))
    {
        let f: Vec<&str> = l.split(' ').collect();
        assert!(f[2] != f[3] || f[3] == t1 || f[3] == t2, "{log}");
    }
}

#[test]
fn a_reader_never_sees_a_torn_file_during_1000_deployments() {
    use certroll::cert::{Scope, SlotKey, UsageType};
    use certroll::deploy::deployer::Deployer;

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(dir.join("fixed"), "").unwrap();
    let env = Env::with_config(&pool_config(&dir, "current", ""));
    let config = std::sync::Arc::new(certroll::config::Config::load(Some(&env.config)).unwrap());
    let (a, b) = (entry("oauth1-openssl3.pfx"), entry("oauth2-windows.pfx"));
    let pool = SlotKey::new(
        Scope::Pool("pool01.contoso.com".into()),
        UsageType::from_canonical("OAuthTokenIssuer"),
    );
    let mut s = store(&env);
    s.assign(
        Some(&new_cert(&a)),
        &a.cert.thumbprint,
        std::slice::from_ref(&pool),
        &test_ctx(),
    )
    .unwrap();
    s.import(&new_cert(&b), &test_ctx()).unwrap();
    let mut deployer = Deployer::new(
        store(&env),
        config,
        std::sync::Arc::new(certroll::clock::SystemClock),
        Some(SERVERS[0].into()),
    );
    deployer.pass().unwrap();

    let path = file(&dir, SERVERS[0], "fullchain.pem");
    let good = [
        fullchain_of("oauth1.crt.pem"),
        fullchain_of("oauth2.crt.pem"),
    ];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (path, good, stop) = (path.clone(), good.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let c = std::fs::read_to_string(&path).unwrap();
                assert!(
                    good.contains(&c),
                    "a torn or foreign file was visible:\n{c}"
                );
                reads += 1;
            }
            reads
        })
    };
    for i in 0..1000 {
        let e = if i % 2 == 0 { &b } else { &a };
        s.assign(
            None,
            &e.cert.thumbprint,
            std::slice::from_ref(&pool),
            &test_ctx(),
        )
        .unwrap();
        let done = deployer.pass().unwrap();
        assert_eq!(done.failed, 0);
        assert!(done.deployed >= 1, "deployment {i} wrote nothing");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 1000, "the reader read only {reads} times");
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn require_staged_holds_the_roll_until_the_last_server_staged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let env = Env::with_config(&pool_config(dir, "pending", ""));
    let pool = [
        "--type",
        "OAuthTokenIssuer",
        "--scope",
        "pool:pool01.contoso.com",
    ];
    let mut args = vec!["import"];
    args.extend(pool);
    assert_eq!(env.import("oauth1-openssl3.pfx", &pool).code, 0);
    let serve = env.serve();
    wait_until(20, "the current certificate everywhere", || {
        SERVERS
            .iter()
            .all(|s| file(dir, s, "fullchain.pem").exists())
    });
    let mut roll = pool.to_vec();
    roll.extend(["--effective-date", "+2s", "--roll", "--require-staged"]);
    let r = env.import("oauth2-windows.pfx", &roll);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let due = Utc::now() + Duration::seconds(2);
    // fe01 and fe02 stage; fe03's staging fails.
    wait_until(20, "staging on fe01 and fe02", || {
        SERVERS[..2]
            .iter()
            .all(|s| file(dir, s, "next/fullchain.pem").exists())
    });
    wait_past(due + Duration::milliseconds(1500));
    let slot = env.ok(&["get", "--json"]).json();
    assert_eq!(
        slot[0]["current"]["thumbprint"],
        thumbprint("oauth1.crt.pem"),
        "promoted before fe03 staged"
    );
    wait_until(10, "roll.held", || {
        sql_i64(&env, "SELECT count(*) FROM outbox WHERE kind = 'roll.held'") == 1
    });
    // The engine re-claims a held job at each poll to look again, so a
    // read may catch it `running` for an instant; it is never finished.
    wait_until(10, "the held job back in the queue", || {
        let job = env.ok(&["jobs", "show", "1", "--json"]).json();
        assert!(
            job["state"] == "scheduled" || job["state"] == "running",
            "{job}"
        );
        job["state"] == "scheduled"
    });

    std::fs::write(dir.join("fixed"), "").unwrap();
    wait_until(20, "the roll once fe03 staged", || {
        env.ok(&["get", "--json"]).json()[0]["current"]["thumbprint"]
            == thumbprint("oauth2.crt.pem")
    });
    let job = env.ok(&["jobs", "show", "1", "--json"]).json();
    assert_eq!(job["state"], "succeeded");
    assert!(job["lateness_ms"].as_f64().unwrap() > 1500.0, "{job}");
    // After the roll nothing is pending: the staged files are removed, the
    // new certificate is current everywhere.
    wait_until(20, "staged files removed", || {
        SERVERS
            .iter()
            .all(|s| !file(dir, s, "next/fullchain.pem").exists())
    });
    // Each server's reload heard of the staged copy, then of its removal
    // (the old thumbprint, no new one).
    let t2 = thumbprint("oauth2.crt.pem");
    wait_until(20, "the reloads for the removed staged files", || {
        let log = std::fs::read_to_string(dir.join("reloads.log")).unwrap_or_default();
        SERVERS.iter().all(|s| {
            log.contains(&format!("{s} pending  {t2}\n"))
                && log.contains(&format!("{s} pending {t2} \n"))
        })
    });
    wait_until(20, "up to date", || up_to_date(&env));
    assert_eq!(serve.stop(), 0);

    // Without staging paths, --require-staged is refused.
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    env.import(
        "oauth2-windows.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+1h",
            "--roll",
            "--require-staged",
        ],
    )
    .assert_one_line_error(
        2,
        &[
            "--require-staged",
            "no configured server stages OAuthTokenIssuer@global",
        ],
    );
}

#[test]
fn at_the_staging_deadline_the_roll_is_promoted_with_an_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A deadline of zero minutes: promote at the instant whoever lags.
    let env = Env::with_config(&pool_config(
        dir,
        "pending",
        "staging_deadline_minutes = 0\n",
    ));
    let pool = [
        "--type",
        "OAuthTokenIssuer",
        "--scope",
        "pool:pool01.contoso.com",
    ];
    assert_eq!(env.import("oauth1-openssl3.pfx", &pool).code, 0);
    let serve = env.serve();
    let mut roll = pool.to_vec();
    roll.extend(["--effective-date", "+2s", "--roll", "--require-staged"]);
    assert_eq!(env.import("oauth2-windows.pfx", &roll).code, 0);
    wait_until(20, "the forced roll", || {
        env.ok(&["get", "--json"]).json()[0]["current"]["thumbprint"]
            == thumbprint("oauth2.crt.pem")
    });
    let forced = sql_i64(
        &env,
        "SELECT count(*) FROM outbox WHERE kind = 'roll.forced' AND payload LIKE '%fe03.contoso.com%'",
    );
    assert_eq!(forced, 1);
    assert_eq!(
        sql_i64(&env, "SELECT count(*) FROM outbox WHERE kind = 'roll.held'"),
        0
    );
    assert_eq!(serve.stop(), 0);
}

fn b64url(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

/// Checks a JWK against the fixture certificate it describes.
fn check_jwk(k: &serde_json::Value, crt: &str) {
    use base64ct::{Base64, Encoding};
    let pem = std::fs::read_to_string(fixture(crt)).unwrap();
    let der = certroll::cert::pem::parse_blocks(&pem)
        .unwrap()
        .remove(0)
        .der;
    let info = certroll::cert::CertInfo::from_der(&der).unwrap();
    assert_eq!(k["kid"], info.thumbprint);
    assert_eq!(k["use"], "sig");
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["e"], "AQAB");
    let certroll::cert::x509::PublicKeyMaterial::Rsa { n, .. } = &info.public_key else {
        panic!()
    };
    assert_eq!(k["n"], b64url(n));
    let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    let sha256 = ring::digest::digest(&ring::digest::SHA256, &der);
    assert_eq!(k["x5t"], b64url(sha1.as_ref()));
    assert_eq!(k["x5t#S256"], b64url(sha256.as_ref()));
    assert_eq!(
        Base64::decode_vec(k["x5c"][0].as_str().unwrap()).unwrap(),
        der
    );
    assert_eq!(k["x5c"].as_array().unwrap().len(), 3);
}

/// The pool (every server's reload succeeding) with the HTTP listener on
/// a free port.
fn jwks_env() -> (tempfile::TempDir, u16, Env) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("fixed"), "").unwrap();
    let port = free_port();
    let env = Env::with_config(&pool_config(
        tmp.path(),
        "current",
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\n"),
    ));
    (tmp, port, env)
}

#[test]
fn the_jwks_lists_the_next_key_before_the_roll_and_the_old_one_after() {
    let (tmp, port, env) = jwks_env();
    let dir = tmp.path();
    // The pool's slot for the files, the global one for the well-known URL.
    assert_eq!(
        env.import(
            "oauth1-openssl3.pfx",
            &[
                "--type",
                "OAuthTokenIssuer",
                "--scope",
                "pool:pool01.contoso.com"
            ]
        )
        .code,
        0
    );
    let t1 = thumbprint("oauth1.crt.pem");
    env.ok(&["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t1]);
    let serve = env.serve();
    let get = |path: &str| -> serde_json::Value {
        let out = std::process::Command::new("/usr/bin/python3")
            .args(["-c", &format!("import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}{path}').read().decode())")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    wait_until(20, "the JWKS file", || {
        file(dir, SERVERS[0], "jwks.json").exists()
    });
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };

    // Scheduled: the pending key is published before it signs.
    for scope in ["pool:pool01.contoso.com", "global"] {
        let r = env.import(
            "oauth2-windows.pfx",
            &[
                "--type",
                "OAuthTokenIssuer",
                "--scope",
                scope,
                "--effective-date",
                "+3s",
                "--roll",
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let t2 = thumbprint("oauth2.crt.pem");
    wait_until(20, "the pending key in the file", || {
        std::fs::read_to_string(file(dir, SERVERS[0], "jwks.json")).is_ok_and(|c| c.contains(&t2))
    });
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file(dir, SERVERS[0], "jwks.json")).unwrap())
            .unwrap();
    assert_eq!(keys(&doc), [t1.clone(), t2.clone()]);
    check_jwk(&doc["keys"][0], "oauth1.crt.pem");
    assert_eq!(
        keys(&get("/.well-known/jwks.json")),
        [t1.clone(), t2.clone()]
    );

    // After the roll: current, then previous, kept through the overlap.
    wait_until(20, "the roll", || {
        env.get_json()[0]["current"]["thumbprint"] == t2
    });
    wait_until(20, "the rolled key first", || {
        std::fs::read_to_string(file(dir, SERVERS[0], "jwks.json")).is_ok_and(|c| {
            serde_json::from_str::<serde_json::Value>(&c)
                .is_ok_and(|v| keys(&v) == [t2.clone(), t1.clone()])
        })
    });
    wait_until(10, "the well-known document", || {
        keys(&get("/.well-known/jwks.json")) == [t2.clone(), t1.clone()]
    });
    let one = get("/jwks.json?type=oauthtokenissuer&scope=pool:pool01.contoso.com");
    assert_eq!(keys(&one), [t2.clone(), t1.clone()]);
    check_jwk(&one["keys"][0], "oauth2.crt.pem");
    assert_eq!(serve.stop(), 0);
}

/// A previous key whose certificate expires leaves the JWKS at that
/// instant, in the deployed file and on the HTTP listener, with no other
/// change to wake the service.
#[test]
fn an_expired_previous_key_leaves_the_jwks_when_it_expires() {
    let (tmp, port, env) = jwks_env();
    let dir = tmp.path();
    // Whole seconds: a certificate's notAfter has no fraction.
    let expires = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::seconds(10), 0);
    let short = cert_valid_until(dir, expires);
    for scope in ["pool:pool01.contoso.com", "global"] {
        env.ok(&[
            "import",
            "--path",
            short.to_str().unwrap(),
            "--type",
            "OAuthTokenIssuer",
            "--scope",
            scope,
            "--force",
        ]);
        let r = env.import(
            "oauth2-windows.pfx",
            &["--type", "OAuthTokenIssuer", "--scope", scope],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let (old, new) = (thumbprint_of(&short), thumbprint("oauth2.crt.pem"));
    let kids = |doc: &str| -> Vec<String> {
        serde_json::from_str::<serde_json::Value>(doc)
            .ok()
            .and_then(|v| v["keys"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let in_file =
        || kids(&std::fs::read_to_string(file(dir, SERVERS[0], "jwks.json")).unwrap_or_default());
    let served = || {
        http_get(port, "/.well-known/jwks.json")
            .map(|(_, body)| kids(&body))
            .unwrap_or_default()
    };
    let serve = env.serve();
    wait_until(8, "both keys in the file", || {
        in_file() == [new.clone(), old.clone()]
    });
    wait_until(5, "both keys served", || {
        served() == [new.clone(), old.clone()]
    });
    wait_until(25, "the expired key out of the file", || {
        in_file() == [new.clone()]
    });
    assert!(Utc::now() >= expires, "the key left before it expired");
    assert_eq!(served(), [new]);
    assert_eq!(serve.stop(), 0);
}

#[test]
fn an_agent_deploys_only_its_own_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("fixed"), "").unwrap();
    let env = Env::with_config(&pool_config(dir, "current", ""));
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let r = env.ok(&["agent", "--server", SERVERS[1], "--once"]);
    assert!(
        r.stdout
            .contains("fe02.contoso.com: 1 deployment(s) made, 0 failed"),
        "{}",
        r.stdout
    );
    assert!(file(dir, SERVERS[1], "fullchain.pem").exists());
    assert!(!file(dir, SERVERS[0], "fullchain.pem").exists());
    let r = env.run(&["status", "--server", SERVERS[1]]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let r = env.run(&["status"]);
    assert_eq!(r.code, 1, "fe01 and fe03 were never deployed: {}", r.stdout);
    assert!(r.stdout.contains("never attempted"), "{}", r.stdout);
    assert_eq!(
        env.run(&["agent", "--server", "nobody.contoso.com", "--once"])
            .code,
        2
    );
}

#[test]
fn pfx_and_chain_files_read_back_and_an_unchanged_unit_is_left_alone() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().display();
    let config = format!(
        r#"sip_domain = "contoso.com"
[policy.OAuthTokenIssuer]
publish_jwks = false
[[server]]
name = "fe01.contoso.com"
[[target]]
name = "iis"
types = ["OAuthTokenIssuer"]
reload = "echo \"$CERTROLL_CHANGED_FILES\" >> {d}/reloads.log"
[[target.file]]
kind = "pfx"
path = "{d}/{{server}}/modern.pfx"
password_env = "CERTROLL_TEST_PFX_PASSWORD"
[[target.file]]
kind = "pfx"
path = "{d}/{{server}}/legacy.pfx"
password_file = "{d}/pfx.pw"
legacy = true
[[target.file]]
kind = "chain"
path = "{d}/{{server}}/chain.pem"
[[target.file]]
kind = "jwks"
path = "{d}/{{server}}/jwks.json"
"#
    );
    std::fs::write(tmp.path().join("pfx.pw"), "Leg4cy!\n").unwrap();
    let env = Env::with_config(&config);
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let agent = |env: &Env| {
        let mut cmd = env.command(&["agent", "--server", "fe01.contoso.com", "--once"]);
        cmd.env("CERTROLL_TEST_PFX_PASSWORD", "M0dern!");
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(agent(&env).contains("1 deployment(s) made, 0 failed"));
    let dir = tmp.path().join("fe01.contoso.com");
    for (name, pass, info) in [
        ("modern.pfx", "M0dern!", "AES-256"),
        ("legacy.pfx", "Leg4cy!", "TripleDES"),
    ] {
        let p = dir.join(name);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600,
            "{name}"
        );
        let o = std::process::Command::new("openssl")
            .args([
                "pkcs12",
                "-nodes",
                "-info",
                "-passin",
                &format!("pass:{pass}"),
                "-in",
            ])
            .arg(&p)
            .output()
            .unwrap();
        let (text, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(o.status.success(), "{name}: {err}");
        assert!(err.contains(info), "{name}: {err}");
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 3, "{name}");
        assert!(text.contains("BEGIN PRIVATE KEY"), "{name}");
    }
    // publish_jwks is off for the type: no JWKS file.
    assert!(!dir.join("jwks.json").exists());
    let chain = std::fs::read_to_string(dir.join("chain.pem")).unwrap();
    let mut want = std::fs::read_to_string(fixture("int.crt.pem")).unwrap();
    want.push_str(&std::fs::read_to_string(fixture("root.crt.pem")).unwrap());
    assert_eq!(chain, want);

    // Nothing changed: nothing is rewritten and the reload does not run.
    let inodes = |dir: &Path| -> Vec<(u64, i64)> {
        ["modern.pfx", "legacy.pfx", "chain.pem"]
            .iter()
            .map(|n| {
                std::fs::metadata(dir.join(n))
                    .map(|m| (m.ino(), m.mtime_nsec()))
                    .unwrap()
            })
            .collect()
    };
    let before = inodes(&dir);
    assert!(agent(&env).contains("0 deployment(s) made, 0 failed"));
    assert_eq!(inodes(&dir), before);
    let log = std::fs::read_to_string(tmp.path().join("reloads.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.contains("modern.pfx") && log.contains("chain.pem"),
        "{log}"
    );

    // A file changed behind certroll's back is repaired at the next pass.
    std::fs::write(dir.join("chain.pem"), "tampered").unwrap();
    assert!(agent(&env).contains("1 deployment(s) made, 0 failed"));
    assert_eq!(
        std::fs::read_to_string(dir.join("chain.pem")).unwrap(),
        want
    );
    let log = std::fs::read_to_string(tmp.path().join("reloads.log")).unwrap();
    assert_eq!(
        log.lines().nth(1),
        Some(format!("{d}/fe01.contoso.com/chain.pem").as_str()),
        "{log}"
    );
}

/// Issue 11, item 16: a temporary copy left by a deployment killed in the
/// middle (it may hold a private key) is removed by the next pass; reload
/// commands see the change, PATH and HOME, never certroll's own secrets.
#[test]
fn deployments_leave_nothing_behind_and_reloads_see_no_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = dir.display();
    let env = Env::with_config(&format!(
        "sip_domain = \"contoso.com\"\n\
         [[server]]\nname = \"fe01.contoso.com\"\n\
         [[target]]\nname = \"files\"\ntypes = [\"OAuthTokenIssuer\"]\nreload = \"env > {d}/reload.env\"\n\
         [[target.file]]\nkind = \"key\"\npath = \"{d}/srv/key.pem\"\n"
    ));
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    // What a kill -9 in the middle of a write leaves: a copy named after a
    // process that is gone; and one of a process that still runs.
    let gone = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    std::fs::create_dir_all(dir.join("srv")).unwrap();
    let stale = dir.join(format!("srv/.key.pem.certroll-{gone}-3"));
    let live = dir.join(format!("srv/.key.pem.certroll-{}-0", std::process::id()));
    std::fs::write(&stale, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    std::fs::write(&live, "in progress\n").unwrap();
    let out = env
        .command(&["-v", "agent", "--server", "fe01.contoso.com", "--once"])
        .env("SMTP_PASSWORD", "hunter2-smtp")
        .env("CERTROLL_WEBHOOK_SECRET", "hunter2-hook")
        .output()
        .unwrap();
    let r = Run::from(out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!stale.exists(), "the stale copy is still there");
    assert!(live.exists(), "a live process's copy was removed");
    assert!(
        r.stderr
            .contains("removed a temporary copy left by an interrupted deployment"),
        "{}",
        r.stderr
    );
    assert!(dir.join("srv/key.pem").exists());
    let seen = std::fs::read_to_string(dir.join("reload.env")).unwrap();
    assert!(seen.contains("CERTROLL_SERVER=fe01.contoso.com"), "{seen}");
    assert!(seen.lines().any(|l| l.starts_with("PATH=")), "{seen}");
    for secret in [
        "hunter2",
        "SMTP_PASSWORD",
        "CERTROLL_WEBHOOK_SECRET",
        "CERTROLL_CONFIG",
    ] {
        assert!(!seen.contains(secret), "the reload saw {secret}:\n{seen}");
    }

    // export --force replaces a regular file, never a link or a FIFO.
    let target = dir.join("elsewhere.pfx");
    std::fs::write(&target, "keep me").unwrap();
    let link = dir.join("link.pfx");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = dir.join("fifo.pfx");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let pw = password_file();
    for (path, what) in [(&link, "a symbolic link"), (&fifo, "not a regular file")] {
        env.run(&[
            "export",
            "--thumbprint",
            &thumbprint("oauth1.crt.pem"),
            "--path",
            path.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
            "--force",
        ])
        .assert_one_line_error(1, &[what, "regular files only"]);
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
}

/// Issue 11, item 18: `agent --once --dry-run` prints the files a pass
/// would write and the reloads it would run, and does none of it.
#[test]
fn an_agent_dry_run_tells_what_it_would_write_and_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("fixed"), "").unwrap();
    let env = Env::with_config(&pool_config(dir, "current", ""));
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let before = env.snapshot();
    let r = env.ok(&["agent", "--server", SERVERS[0], "--once", "--dry-run"]);
    let full = file(dir, SERVERS[0], "fullchain.pem");
    for needle in [
        format!("dry run: would write {} (mode 644)", full.display()),
        format!(
            "dry run: would write {} (mode 600)",
            file(dir, SERVERS[0], "key.pem").display()
        ),
        "dry run: would run the reload of target files for fe01.contoso.com (OAuthTokenIssuer current)".to_string(),
        "dry run: fe01.contoso.com: 1 deployment(s) would be made, 0 would fail; nothing was changed".to_string(),
    ] {
        assert!(r.stdout.contains(&needle), "{needle:?} not in:\n{}", r.stdout);
    }
    assert!(!full.exists(), "a dry run wrote a file");
    assert!(!dir.join("reloads.log").exists(), "a dry run ran a reload");
    assert_eq!(env.snapshot(), before, "a dry run recorded a state");
    let r = env.run(&["agent", "--server", SERVERS[0], "--dry-run"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--once"), "{}", r.stderr);
}
