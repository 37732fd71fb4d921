//! Issue 7: certificate requests for a CA, the CA's response, and
//! self-signed token-signing certificates.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// An enterprise PKI as OpenSSL plays it: a root and an issuing CA, whose
/// `sign` answers a CSR as AD CS would (the request's extensions copied).
pub(crate) struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub(crate) fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "3650",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-subj",
                "/CN=Contoso Root CA",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "issuing.key",
                "-out",
                "issuing.csr",
                "-subj",
                "/CN=Contoso Issuing CA",
            ],
        );
        std::fs::write(
            dir.join("ca.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "issuing.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-CAcreateserial",
                "-days",
                "3000",
                "-extfile",
                "ca.ext",
                "-out",
                "issuing.pem",
            ],
        );
        Pki { dir }
    }

    /// Signs `csr` for a year; returns the certificate (PEM).
    /// Imports the root and the issuing CA into the store of `env`, as an
    /// operator does before importing a CA's answer that is the leaf alone.
    pub(crate) fn import_cas(&self, env: &Env) {
        for ca in ["root.pem", "issuing.pem"] {
            let path = self.dir.join(ca);
            env.ok(&["import", "--path", path.to_str().unwrap()]);
        }
    }

    pub(crate) fn sign(&self, csr: &Path, name: &str) -> PathBuf {
        let out = self.dir.join(format!("{name}.pem"));
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                "issuing.pem",
                "-CAkey",
                "issuing.key",
                "-CAcreateserial",
                "-days",
                "365",
                "-copy_extensions",
                "copy",
                "-out",
                out.to_str().unwrap(),
            ],
        );
        out
    }

    /// The response as a PKCS#7 chain (leaf, issuing CA, root), DER or PEM.
    fn p7b(&self, leaf: &Path, der: bool) -> PathBuf {
        let out = self.dir.join(if der {
            "response.p7b"
        } else {
            "response.p7b.pem"
        });
        let mut args = vec![
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            leaf.to_str().unwrap(),
            "-certfile",
            "issuing.pem",
            "-certfile",
            "root.pem",
            "-out",
            out.to_str().unwrap(),
        ];
        if der {
            args.extend(["-outform", "DER"]);
        }
        openssl(&self.dir, &args);
        out
    }
}

fn sql(env: &Env, q: &str) -> i64 {
    sql_i64(env, q)
}

#[test]
fn a_request_signed_by_the_ca_becomes_the_next_token_issuer() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let pki = Pki::new(&dir);
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let csr = dir.join("oauth.csr");
    let r = env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--subject-cn",
        "oauth.contoso.com",
        "--san",
        "lync.contoso.com,meet.contoso.com",
        "--organization",
        "Contoso",
        "--city",
        "Redmond",
        "--state",
        "WA",
        "--country",
        "us",
        "--key",
        "rsa3072",
        "--friendly-name",
        "OAuth 2027",
        "--output",
        csr.to_str().unwrap(),
    ]);
    assert!(
        r.stdout
            .contains("request 1: CN=oauth.contoso.com, O=Contoso, L=Redmond, ST=WA, C=US"),
        "{}",
        r.stdout
    );

    // The CSR verifies, with the names and key size asked for.
    let o = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-text", "-in"])
        .arg(&csr)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stderr).contains("verify OK"),
        "{text}"
    );
    assert!(text.contains("Public-Key: (3072 bit)"), "{text}");
    assert!(
        text.contains(
            "DNS:oauth.contoso.com, DNS:lync.contoso.com, DNS:meet.contoso.com, DNS:contoso.com"
        ),
        "{text}"
    );
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );
    assert!(
        text.contains("Subject: C = US, ST = WA, L = Redmond, O = Contoso, CN = oauth.contoso.com"),
        "{text}"
    );
    // The key never left the store: only the CSR was written.
    assert!(
        !std::fs::read_to_string(&csr)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    let pending = env
        .ok(&["requests", "list", "--state", "pending", "--json"])
        .json();
    assert_eq!(pending.as_array().unwrap().len(), 1);
    assert_eq!(pending[0]["key_algorithm"], "RSA 3072");
    assert_eq!(
        env.ok(&["requests", "show", "1", "--csr"]).stdout,
        std::fs::read_to_string(&csr).unwrap()
    );

    // The CA answers with the certificate and its chain in one PEM file.
    let leaf = pki.sign(&csr, "oauth");
    let response = dir.join("response.pem");
    let mut chain = std::fs::read_to_string(&leaf).unwrap();
    chain.push_str(&std::fs::read_to_string(pki.dir.join("issuing.pem")).unwrap());
    chain.push_str(&std::fs::read_to_string(pki.dir.join("root.pem")).unwrap());
    std::fs::write(&response, chain).unwrap();
    let r = env.ok(&[
        "import",
        "--path",
        response.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--effective-date",
        "+1h",
        "--roll",
    ]);
    assert!(r.stdout.contains("request 1 completed"), "{}", r.stdout);
    let t = thumbprint_of(&leaf);
    let slot = env.get_json();
    assert_eq!(slot[0]["pending"]["thumbprint"], t);
    assert_eq!(slot[0]["pending"]["has_private_key"], true);
    assert_eq!(slot[0]["pending"]["friendly_name"], "OAuth 2027");
    let req = env.ok(&["requests", "show", "1", "--json"]).json();
    assert_eq!(req["state"], "completed");
    assert_eq!(req["thumbprint"], t);
    // The request's copy of the key is gone; the certificate's is sealed.
    assert_eq!(
        sql(
            &env,
            "SELECT count(*) FROM requests WHERE key_enc IS NOT NULL"
        ),
        0
    );

    // The stored chain verifies up to the root, and the key is the CSR's.
    let pfx = dir.join("out.pfx");
    let pw = dir.join("pw");
    std::fs::write(&pw, "Exp0rt!\n").unwrap();
    env.ok(&[
        "export",
        "--thumbprint",
        &t,
        "--path",
        pfx.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    openssl(
        &dir,
        &[
            "pkcs12",
            "-in",
            "out.pfx",
            "-passin",
            "pass:Exp0rt!",
            "-nokeys",
            "-cacerts",
            "-out",
            "chain.pem",
        ],
    );
    openssl(
        &dir,
        &[
            "pkcs12",
            "-in",
            "out.pfx",
            "-passin",
            "pass:Exp0rt!",
            "-nodes",
            "-nocerts",
            "-out",
            "key.pem",
        ],
    );
    let o = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(pki.dir.join("root.pem"))
        .arg("-untrusted")
        .arg(dir.join("chain.pem"))
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let modulus = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        modulus(&["rsa", "-in", "key.pem", "-noout", "-modulus"]),
        modulus(&["req", "-in", "oauth.csr", "-noout", "-modulus"])
    );
    // The audit trail tells the story.
    let actions = history_actions(&env);
    assert_eq!(
        actions[2..],
        ["request", "import", "request-completed", "schedule"]
    );
}

#[test]
fn a_p7b_response_joins_its_key_and_a_stranger_is_told_it_answers_nothing() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let pki = Pki::new(&dir);
    pki.import_cas(&env);
    let mut made = Vec::new();
    for (i, key) in ["ec-p256", "rsa2048"].iter().enumerate() {
        let csr = dir.join(format!("r{i}.csr"));
        env.ok(&[
            "request",
            "--type",
            "OAuthTokenIssuer",
            "--subject-cn",
            &format!("oauth{i}.contoso.com"),
            "--key",
            key,
            "--output",
            csr.to_str().unwrap(),
        ]);
        made.push(pki.sign(&csr, &format!("r{i}")));
    }
    // DER PKCS#7, imported without --type: checked against the requested
    // type's policy, stored with its key, assigned nowhere.
    let p7b = pki.p7b(&made[0], true);
    let r = env.ok(&["import", "--path", p7b.to_str().unwrap(), "--json"]);
    let v = r.json();
    assert_eq!(v["format"], "PKCS#7");
    assert_eq!(v["request"], 1);
    assert_eq!(v["certificate"]["has_private_key"], true);
    assert_eq!(v["certificate"]["chain"].as_array().unwrap().len(), 2);
    assert_eq!(v["certificate"]["key_algorithm"], "EC P-256");

    // The CA answers the same request twice (same key, a new certificate):
    // the second takes the key of the first, and says so.
    let again = pki.sign(&dir.join("r0.csr"), "r0-again");
    let r = env.ok(&["import", "--path", again.to_str().unwrap(), "--json"]);
    let first = v["certificate"]["thumbprint"].as_str().unwrap();
    assert!(
        r.stderr.contains(&format!(
            "answers request 1 again: it takes the key of certificate {}",
            &first[..8]
        )),
        "{}",
        r.stderr
    );
    let second = r.json();
    assert_eq!(second["certificate"]["has_private_key"], true);
    assert_eq!(second["request"], 1);
    assert_ne!(
        second["certificate"]["thumbprint"],
        v["certificate"]["thumbprint"]
    );

    // A certificate for no request: imported without a key, and told so.
    // (--force: its issuer, the fixtures' CA, is not in this store.)
    let stranger = fixture("oauth2.crt.pem");
    let r = env.ok(&["import", "--path", stranger.to_str().unwrap(), "--force"]);
    assert!(
        r.stderr
            .contains("answers none of the 1 waiting request(s)"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("no private key"), "{}", r.stdout);

    // A cancelled request's key is wiped: its response comes in keyless.
    let r = env.ok(&["requests", "cancel", "2"]);
    assert!(r.stdout.contains("request 2 cancelled"), "{}", r.stdout);
    assert_eq!(
        sql(
            &env,
            "SELECT count(*) FROM requests WHERE id = 2 AND key_enc IS NULL AND state = 'cancelled'"
        ),
        1
    );
    let p7b = pki.p7b(&made[1], false);
    let r = env.ok(&["import", "--path", p7b.to_str().unwrap(), "--json"]);
    assert!(
        r.stderr
            .contains("answers request 2, which was cancelled and its key wiped"),
        "{}",
        r.stderr
    );
    let v = r.json();
    assert_eq!(v["format"], "PKCS#7");
    assert!(v["request"].is_null());
    assert_eq!(v["certificate"]["has_private_key"], false);
    env.run(&["requests", "cancel", "2"])
        .assert_one_line_error(1, &["request 2 is cancelled, not waiting"]);
    env.run(&["requests", "show", "9"])
        .assert_one_line_error(1, &["no certificate request 9"]);
    let list = env.ok(&["requests", "list"]).stdout;
    assert!(
        list.contains("completed") && list.contains("cancelled"),
        "{list}"
    );
}

#[test]
fn the_policy_is_checked_before_anything_is_made() {
    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nmin_rsa_bits = 3072\nrequired_names = [\"pool01.contoso.com\"]\n",
    );
    let out = env.path("req.csr");
    let o = out.to_str().unwrap();
    env.run(&["request", "--type", "OAuthTokenIssuer", "--output", o])
        .assert_one_line_error(
            1,
            &[
                "rule key-strength",
                "2048-bit RSA",
                "at least 3072",
                "rule required-name",
                "'pool01.contoso.com'",
            ],
        );
    env.run(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--key",
        "rsa3072",
        "--output",
        o,
    ])
    .assert_one_line_error(1, &["rule required-name", "--san"]);
    env.run(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--san",
        "bad_name.contoso.com",
        "--output",
        o,
    ])
    .assert_one_line_error(2, &["'bad_name.contoso.com' is not a DNS name"]);
    env.run(&[
        "request",
        "--type",
        "Default",
        "--self-signed",
        "--subject-cn",
        "web.contoso.com",
    ])
    .assert_one_line_error(1, &["Default policy, rule self-signed"]);
    env.run(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--effective-date",
        "+1d",
        "--roll",
    ])
    .assert_one_line_error(2, &["a request has none yet"]);
    let r = env.run(&["request", "--type", "OAuthTokenIssuer", "--key", "dsa1024"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("invalid value 'dsa1024' for '--key <KIND>'")
            && r.stderr
                .contains("rsa2048, rsa3072, rsa4096, ec-p256, ec-p384"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "nothing written");
    assert_eq!(
        env.ok(&["requests", "list"]).stdout.trim(),
        "no certificate requests"
    );

    // With the names and the key size right, it goes through; an existing
    // output file needs --force.
    let args = [
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--key",
        "ec-p384",
        "--san",
        "pool01.contoso.com",
        "--output",
        o,
    ];
    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n[policy.OAuthTokenIssuer]\nrequired_names = [\"pool01.contoso.com\"]\n",
    );
    env.ok(&args);
    env.run(&args)
        .assert_one_line_error(1, &["req.csr", "exists", "--force"]);
    let mut forced = args.to_vec();
    forced.push("--force");
    env.ok(&forced);
    assert_eq!(
        env.ok(&["requests", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Without --output the CSR goes to stdout, the words to stderr.
    let r = env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--key",
        "ec-p256",
        "--san",
        "pool01.contoso.com",
    ]);
    assert!(
        r.stdout.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.starts_with("request 3: CN=contoso.com"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_self_signed_token_issuer_is_assigned_then_another_rolls_in() {
    let env = Env::new();
    let pem = env.path("first.pem");
    let r = env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--self-signed",
        "--days",
        "730",
        "--assign",
        "--key",
        "rsa2048",
        "--output",
        pem.to_str().unwrap(),
    ]);
    assert!(r.stdout.starts_with("self-signed: "), "{}", r.stdout);
    let first = thumbprint_of(&pem);
    let slot = env.get_json();
    assert_eq!(slot[0]["current"]["thumbprint"], first);
    assert_eq!(slot[0]["current"]["has_private_key"], true);
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-issuer", "-enddate", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("subject=CN = contoso.com") && text.contains("issuer=CN = contoso.com"),
        "{text}"
    );
    let not_after = chrono::Utc::now() + chrono::Duration::days(730);
    assert!(
        text.contains(&not_after.format("%Y GMT").to_string()),
        "{text}"
    );

    // The next one, scheduled: serve rolls it in at its instant.
    let r = env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--self-signed",
        "--key",
        "ec-p256",
        "--effective-date",
        "+2s",
        "--roll",
        "--json",
    ]);
    let second = r.json()["certificate"]["thumbprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(env.get_json()[0]["pending"]["thumbprint"], second);
    let serve = env.serve();
    wait_until(20, "the roll", || {
        env.get_json()[0]["current"]["thumbprint"] == second
    });
    assert_eq!(serve.stop(), 0);
    let slot = env.get_json();
    assert_eq!(slot[0]["previous"]["thumbprint"], first);
    assert_eq!(slot[0]["current"]["key_algorithm"], "EC P-256");
    // Stored without assignment when neither --assign nor a date is given.
    let r = env.ok(&["request", "--type", "OAuthTokenIssuer", "--self-signed"]);
    assert!(r.stdout.contains("stored, not assigned"), "{}", r.stdout);
}

#[test]
fn a_waiting_request_keeps_its_key_sealed() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let pki = Pki::new(&dir);
    pki.import_cas(&env);
    let csr = dir.join("r.csr");
    env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--output",
        csr.to_str().unwrap(),
    ]);
    // The data directory while the request waits (the master key aside).
    let mut snapshot = Vec::new();
    for entry in std::fs::read_dir(&env.data).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "master.key" {
            snapshot.extend(std::fs::read(&path).unwrap());
        }
    }
    // Learn the key the only way there is: answer the request, export it.
    let leaf = pki.sign(&csr, "r");
    env.ok(&["import", "--path", leaf.to_str().unwrap()]);
    let pw = dir.join("pw");
    std::fs::write(&pw, "pw\n").unwrap();
    env.ok(&[
        "export",
        "--thumbprint",
        &thumbprint_of(&leaf),
        "--path",
        dir.join("out.pfx").to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    openssl(
        &dir,
        &[
            "pkcs12", "-in", "out.pfx", "-passin", "pass:pw", "-nodes", "-nocerts", "-out",
            "key.pem",
        ],
    );
    openssl(
        &dir,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
        ],
    );
    let der = std::fs::read(dir.join("key.der")).unwrap();
    assert!(snapshot.len() > 10_000);
    assert!(!crate::keys_at_rest::contains(&snapshot, b"PRIVATE KEY"));
    for (i, s) in crate::keys_at_rest::secrets_of(&der).iter().enumerate() {
        assert!(
            !crate::keys_at_rest::contains(&snapshot, s),
            "secret #{i} of the request's key in clear"
        );
    }
}

/// `certroll check` warns about a request the CA has not answered within
/// `[check] request_warning_days`, and counts waiting requests in its
/// performance data.
#[test]
fn check_warns_about_a_request_left_unanswered() {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let csr = env.path("r.csr");
    env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--key",
        "ec-p256",
        "--output",
        csr.to_str().unwrap(),
    ]);
    // Fresh: OK, counted.
    let r = env.run(&["check"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("requests_waiting=1;"), "{}", r.stdout);

    // Made 20 days ago: a WARNING naming it.
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    let then = (chrono::Utc::now() - chrono::Duration::days(20))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    conn.execute("UPDATE requests SET created_at = ?1", [&then])
        .unwrap();
    drop(conn);
    let r = env.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let first = r.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("CERTROLL WARNING")
            && first.contains("1 certificate request(s) unanswered for 14+ days"),
        "{first}"
    );
    assert!(
        r.stdout.contains(
            "WARNING request 1 (CN=contoso.com for OAuthTokenIssuer at global) has waited 20 days"
        ),
        "{}",
        r.stdout
    );
    let v = env.run(&["check", "--json"]).json();
    assert_eq!(v["stale_requests"].as_array().unwrap().len(), 1);

    // Answered or cancelled, it no longer counts.
    env.ok(&["requests", "cancel", "1"]);
    let r = env.run(&["check"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("requests_waiting=0;"), "{}", r.stdout);
}

/// A certificate renewed with the same key, imported without it, takes the
/// private key of the stored certificate that has that public key.
#[test]
fn a_renewal_with_the_same_key_takes_the_stored_key() {
    let env = Env::new();
    let renewed = renewed_oauth1(env.dir.path());
    // Nothing holds its key yet: imported without one.
    let v = env
        .ok(&["import", "--path", renewed.to_str().unwrap(), "--json"])
        .json();
    assert_eq!(v["certificate"]["has_private_key"], false);
    // The first certificate arrives with the key...
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    // ...and the renewal, imported again, takes it ("private key added"),
    // then assigns like any certificate with a key.
    let r = env.ok(&[
        "import",
        "--path",
        renewed.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
    ]);
    assert!(
        r.stderr.contains("renewed with the same key"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("private key added"), "{}", r.stdout);
    let slot = &env.get_json()[0];
    assert_eq!(slot["current"]["thumbprint"], thumbprint_of(&renewed));
    assert_eq!(slot["current"]["has_private_key"], true);
}

/// As the wizard: a pool's request is named after the pool and lists the
/// pool's servers; a server's after the server.
#[test]
fn a_pool_request_names_the_pool_and_its_servers() {
    let env = Env::with_config(
        "sip_domain = \"contoso.com\"\n\
         [[server]]\nname = \"fe01.contoso.com\"\npool = \"pool01.contoso.com\"\n\
         [[server]]\nname = \"fe02.contoso.com\"\npool = \"POOL01.contoso.com\"\n\
         [[server]]\nname = \"edge1.contoso.com\"\npool = \"edgepool.contoso.com\"\n",
    );
    let names = |scope: &str| -> (String, Vec<String>) {
        let v = env
            .ok(&[
                "request", "--type", "Default", "--scope", scope, "--key", "ec-p256", "--json",
            ])
            .json();
        let sans = v["sans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        (v["subject"].as_str().unwrap().to_string(), sans)
    };
    let (subject, sans) = names("pool:pool01.contoso.com");
    assert_eq!(subject, "CN=pool01.contoso.com");
    assert_eq!(
        sans,
        [
            "pool01.contoso.com",
            "fe01.contoso.com",
            "fe02.contoso.com",
            "contoso.com"
        ]
    );
    let (subject, sans) = names("server:fe01.contoso.com");
    assert_eq!(subject, "CN=fe01.contoso.com");
    assert_eq!(sans, ["fe01.contoso.com", "contoso.com"]);
    let (subject, _) = names("global");
    assert_eq!(subject, "CN=contoso.com");
}

/// `--template`: the CA's template is in the request (openssl still
/// verifies it), and `requests show` says which; a bad name or a
/// self-signed certificate with a template is refused before anything.
#[test]
fn a_request_names_the_cas_template() {
    let env = Env::new();
    let csr = env.path("web.csr");
    env.ok(&[
        "request",
        "--type",
        "Default",
        "--key",
        "ec-p256",
        "--template",
        "WebServer",
        "--output",
        csr.to_str().unwrap(),
    ]);
    let o = Command::new("openssl")
        .args(["req", "-verify", "-noout", "-in"])
        .arg(&csr)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new("openssl")
        .args(["asn1parse", "-in"])
        .arg(&csr)
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&o.stdout);
    assert!(tree.contains(":1.3.6.1.4.1.311.20.2"), "{tree}");
    assert!(tree.contains(":1.3.6.1.4.1.311.13.2.1"), "{tree}");
    assert!(tree.contains("BMPSTRING"), "{tree}");
    let show = env.ok(&["requests", "show", "1"]).stdout;
    assert!(show.contains("template   WebServer"), "{show}");
    assert_eq!(
        env.ok(&["requests", "show", "1", "--json"]).json()["template"],
        "WebServer"
    );

    let before = env.snapshot();
    env.run(&["request", "--type", "Default", "--template", "Web;Server"])
        .assert_one_line_error(2, &["--template 'Web;Server' is not a template name"]);
    env.run(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--self-signed",
        "--template",
        "WebServer",
    ])
    .assert_one_line_error(2, &["--template", "self-signed"]);
    assert_eq!(env.snapshot(), before);
}

/// A request's life raises events like any change, in the same
/// transaction: request.created carries the CSR (a channel can hand it to
/// the CA team), request.completed the certificate, request.cancelled.
#[test]
fn requests_raise_events_with_the_csr() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let pki = Pki::new(&dir);
    pki.import_cas(&env);
    let csr = dir.join("e.csr");
    for _ in 0..2 {
        env.ok(&[
            "request",
            "--type",
            "OAuthTokenIssuer",
            "--key",
            "ec-p256",
            "--template",
            "WebServer",
            "--output",
            csr.to_str().unwrap(),
            "--force",
        ]);
    }
    let leaf = pki.sign(&csr, "e");
    env.ok(&["import", "--path", leaf.to_str().unwrap()]);
    env.ok(&["requests", "cancel", "1"]);

    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    let events: Vec<(String, serde_json::Value)> = conn
        .prepare("SELECT kind, payload FROM outbox WHERE kind LIKE 'request.%' ORDER BY id")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                serde_json::from_str(&r.get::<_, String>(1)?).unwrap(),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "request.created",
            "request.created",
            "request.completed",
            "request.cancelled"
        ]
    );
    let created = &events[1].1;
    assert_eq!(created["type"], "OAuthTokenIssuer");
    assert_eq!(created["scope"], "global");
    assert_eq!(created["data"]["request_id"], 2);
    assert_eq!(created["data"]["template"], "WebServer");
    assert_eq!(
        created["data"]["csr"].as_str().unwrap(),
        std::fs::read_to_string(&csr).unwrap()
    );
    let completed = &events[2].1;
    assert_eq!(completed["data"]["request_id"], 2);
    assert_eq!(completed["data"]["thumbprint"], thumbprint_of(&leaf));
    assert!(completed["data"].get("csr").is_none());
    assert_eq!(events[3].1["data"]["request_id"], 1);
}

impl Pki {
    /// Signs as a CA that ignores the request's extensions (no names but
    /// the subject, no key usage), for `days` days.
    fn sign_plain(&self, csr: &Path, name: &str, days: u32) -> PathBuf {
        let out = self.dir.join(format!("{name}.pem"));
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                "issuing.pem",
                "-CAkey",
                "issuing.key",
                "-CAcreateserial",
                "-days",
                &days.to_string(),
                "-out",
                out.to_str().unwrap(),
            ],
        );
        out
    }
}

/// Issue 11, item 3: a CA that drops names or shortens the validity is
/// told item by item, and needs --force; a name the type's policy requires
/// stays an error.
#[test]
fn the_cas_answer_is_compared_with_the_request() {
    let env = Env::new();
    let dir = env.dir.path().to_path_buf();
    let pki = Pki::new(&dir);
    pki.import_cas(&env);
    let csr = dir.join("web.csr");
    let sans = "a.contoso.com,b.contoso.com,c.contoso.com,d.contoso.com,e.contoso.com,f.contoso.com,g.contoso.com,h.contoso.com";
    env.ok(&[
        "request",
        "--type",
        "WebServicesInternal",
        "--subject-cn",
        "web.contoso.com",
        "--san",
        sans,
        "--days",
        "730",
        "--output",
        csr.to_str().unwrap(),
    ]);
    let shown = env.ok(&["requests", "show", "1", "--json"]).json();
    assert_eq!(shown["validity_days"], 730);
    let leaf = pki.sign_plain(&csr, "web", 365);
    let before = env.snapshot();
    let r = env.run(&["import", "--path", leaf.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    for needle in [
        "WebServicesInternal policy, rule ca-answer",
        "answers request 1, but the CA dropped 9 of the 10 requested names: a.contoso.com, b.contoso.com",
        "h.contoso.com, contoso.com",
        "valid for 365 days, shorter than the 730 asked",
        "2 warning(s) need --force",
    ] {
        assert!(
            r.stderr.contains(needle),
            "{needle:?} not in:\n{}",
            r.stderr
        );
    }
    assert_eq!(env.snapshot(), before, "a refused answer changed the store");
    let r = env.run(&["import", "--path", leaf.to_str().unwrap(), "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("request 1 completed"), "{}", r.stdout);

    // The SIP domain the token issuer's policy requires: an error, --force or not.
    let csr = dir.join("oauth.csr");
    env.ok(&[
        "request",
        "--type",
        "OAuthTokenIssuer",
        "--subject-cn",
        "oauth.contoso.com",
        "--output",
        csr.to_str().unwrap(),
    ]);
    let leaf = pki.sign_plain(&csr, "oauth", 365);
    let r = env.run(&["import", "--path", leaf.to_str().unwrap(), "--force"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("OAuthTokenIssuer policy, rule required-name")
            && r.stderr.contains("does not name 'contoso.com'"),
        "{}",
        r.stderr
    );
    let pending = env
        .ok(&["requests", "list", "--state", "pending", "--json"])
        .json();
    assert_eq!(
        pending.as_array().unwrap().len(),
        1,
        "the request still waits"
    );
}
