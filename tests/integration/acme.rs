//! ACME against Debian's pebble (and pebble-challtestsrv for DNS), started
//! here on loopback with a TLS certificate made here: the acme renewal
//! method answered by serve's own listener (http-01) and by a dns-01 hook,
//! the chain checked against pebble's root, a failed order recorded,
//! alerted and retried with nothing half made.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::peers::free_port;
use crate::util::*;

/// A running pebble and its DNS (pebble-challtestsrv, answering every name
/// with 127.0.0.1 and the TXT records a hook sets).
pub struct Pebble {
    pebble: Child,
    dns: Child,
    pub dir_url: String,
    /// The TLS root of pebble's own listener (for [acme] ca_file).
    pub tls_root: PathBuf,
    /// pebble's issuing root, fetched from its management port.
    pub issuing_root: PathBuf,
    /// challtestsrv's management port (the hook sets TXT records there).
    pub dns_mgmt: u16,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in [&mut self.pebble, &mut self.dns] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Pebble {
    /// Starts both; pebble's http-01 validations go to `http_port`.
    pub fn start(dir: &Path, http_port: u16) -> Pebble {
        Pebble::start_with(dir, http_port, None)
    }

    /// As `start`; with `eab` (key id, base64url HMAC key) pebble requires
    /// external account binding with that key.
    pub fn start_with(dir: &Path, http_port: u16, eab: Option<(&str, &str)>) -> Pebble {
        require_tool("pebble", "pebble");
        require_tool("pebble-challtestsrv", "pebble");
        require_tool("curl", "curl");
        let dir = dir.join("pebble");
        std::fs::create_dir_all(&dir).unwrap();
        // A root and a listener certificate for 127.0.0.1 (rustls refuses a
        // CA certificate as the server's own).
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-subj",
                "/CN=pebble test root",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "cert.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext",
                "-out",
                "cert.pem",
            ],
        );
        let (listen, mgmt, tls, dns_port, dns_mgmt) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        std::fs::write(
            dir.join("pebble.json"),
            serde_json::json!({"pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt}"),
                "certificate": dir.join("cert.pem"),
                "privateKey": dir.join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": eab.is_some(),
                "externalAccountMACKeys": eab.map_or_else(
                    || serde_json::json!({}),
                    |(kid, key)| serde_json::json!({ kid: key })
                ),
            }})
            .to_string(),
        )
        .unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{dns_mgmt}"),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (apt-get install pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("pebble.log")).unwrap())
            .spawn()
            .expect("pebble (apt-get install pebble)");
        let mut p = Pebble {
            pebble,
            dns,
            dir_url: format!("https://127.0.0.1:{listen}/dir"),
            tls_root: dir.join("root.pem"),
            issuing_root: dir.join("issuing-root.pem"),
            dns_mgmt,
        };
        wait_until(20, "pebble and its DNS to listen", || {
            [listen, mgmt, dns_mgmt]
                .iter()
                .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok())
        });
        // The issuing root changes at every start.
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&p.tls_root)
            .arg(format!("https://127.0.0.1:{mgmt}/roots/0"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&p.issuing_root, &out.stdout).unwrap();
        p.dir_url = format!("https://127.0.0.1:{listen}/dir");
        p
    }

    /// The [acme] keys of dns-01 through [`Pebble::dns_hooks`].
    pub fn dns_01(&self, dir: &Path) -> String {
        let (set, clear) = self.dns_hooks(dir);
        format!(
            "challenge = \"dns-01\"\ndns_hook = \"{}\"\ndns_cleanup_hook = \"{}\"\n",
            set.display(),
            clear.display()
        )
    }

    /// A dns-01 hook (certbot's convention) that sets the TXT record in
    /// challtestsrv, and its cleanup.
    pub fn dns_hooks(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let set = dir.join("dns-set.sh");
        let clear = dir.join("dns-clear.sh");
        let port = self.dns_mgmt;
        std::fs::write(
            &set,
            format!(
                "#!/bin/sh\nset -e\necho \"$CERTBOT_DOMAIN\" >> {log}\n\
                 curl -sS -X POST -d \"{{\\\"host\\\":\\\"_acme-challenge.$CERTBOT_DOMAIN.\\\",\\\"value\\\":\\\"$CERTBOT_VALIDATION\\\"}}\" http://127.0.0.1:{port}/set-txt\n",
                log = dir.join("dns-hook.log").display()
            ),
        )
        .unwrap();
        std::fs::write(
            &clear,
            format!(
                "#!/bin/sh\ncurl -sS -X POST -d \"{{\\\"host\\\":\\\"_acme-challenge.$CERTBOT_DOMAIN.\\\"}}\" http://127.0.0.1:{port}/clear-txt\n"
            ),
        )
        .unwrap();
        for f in [&set, &clear] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        (set, clear)
    }
}

/// The configuration: WebServicesExternal renewed by ACME against `p`,
/// its chain required to end at pebble's issuing root.
fn config(p: &Pebble, http_port: u16, extra_acme: &str) -> String {
    format!(
        r#"sip_domain = "contoso.com"
[http]
listen = "127.0.0.1:{http_port}"
[policy.WebServicesExternal]
self_signed_allowed = true
trust_bundle = "{root}"
[renewal.WebServicesExternal]
method = "acme"
key = "ec-p256"
[acme]
directory_url = "{url}"
ca_file = "{ca}"
contact = ["mailto:pki@contoso.com"]
timeout_seconds = 30
{extra_acme}
"#,
        root = p.issuing_root.display(),
        url = p.dir_url,
        ca = p.tls_root.display(),
    )
}

/// A self-signed www.contoso.com current for WebServicesExternal, 10 days
/// left (so its renewal is due), made while the trust bundle is not yet
/// required (a self-signed certificate is no CA's).
fn current_www(env: &Env, dir: &Path) {
    let lax = dir.join("lax.toml");
    std::fs::write(
        &lax,
        "sip_domain = \"contoso.com\"\n[policy.WebServicesExternal]\nself_signed_allowed = true\n",
    )
    .unwrap();
    let out = env
        .command(&[
            "request",
            "--type",
            "WebServicesExternal",
            "--self-signed",
            "--subject-cn",
            "www.contoso.com",
            "--san",
            "meet.contoso.com",
            "--days",
            "10",
            "--key",
            "ec-p256",
            "--assign",
            "--force",
        ])
        .env("CERTROLL_CONFIG", &lax)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn outbox(env: &Env, kind: &str) -> i64 {
    sql_i64(
        env,
        &format!("SELECT count(*) FROM outbox WHERE kind = '{kind}'"),
    )
}

#[test]
fn serve_renews_by_acme_answering_http_01_on_its_own_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let http = free_port();
    let pebble = Pebble::start(tmp.path(), http);
    let env = Env::with_config(&config(&pebble, http, ""));
    current_www(&env, tmp.path());
    let serve = env.serve();
    wait_until(60, "the ACME renewal", || {
        outbox(&env, "renewal.generated") + outbox(&env, "renewal.failed") > 0
    });
    assert_eq!(outbox(&env, "renewal.failed"), 0, "{}", serve.log());
    assert_eq!(serve.stop(), 0);
    let view = env
        .ok(&["get", "--type", "WebServicesExternal", "--json"])
        .json();
    let pending = &view[0]["pending"];
    assert!(pending.is_object(), "{view}");
    // Issued by pebble for the current certificate's names, its key made
    // and kept by certroll, its chain ending at pebble's root (the policy's
    // trust_bundle).
    assert!(
        pending["issuer"].as_str().unwrap().contains("Pebble"),
        "{pending}"
    );
    assert_eq!(pending["has_private_key"], true);
    let sans: Vec<&str> = pending["sans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        sans.contains(&"www.contoso.com") && sans.contains(&"meet.contoso.com"),
        "{sans:?}"
    );
    // The account was made once and kept sealed; the answers are gone.
    assert_eq!(sql_i64(&env, "SELECT count(*) FROM acme_accounts"), 1);
    assert_eq!(sql_i64(&env, "SELECT count(*) FROM acme_challenges"), 0);
    let blob = sql_i64(
        &env,
        "SELECT count(*) FROM acme_accounts WHERE instr(credentials_enc, 'key_pkcs8') > 0",
    );
    assert_eq!(blob, 0, "the account's key is sealed, not in clear");
    // openssl agrees about the chain.
    let thumb = pending["thumbprint"].as_str().unwrap();
    let leaf = tmp.path().join("leaf.pem");
    std::fs::write(&leaf, pem_of(&env, thumb)).unwrap();
    let v = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&pebble.issuing_root)
        .arg("-untrusted")
        .arg(intermediates(&env, thumb, tmp.path()))
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
}

/// The PEM of a stored certificate (from the store's DER).
fn pem_of(env: &Env, thumb: &str) -> String {
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    let der: Vec<u8> = conn
        .query_row(
            "SELECT der FROM certificates WHERE thumbprint = ?1",
            [thumb],
            |r| r.get(0),
        )
        .unwrap();
    pem("CERTIFICATE", &der)
}

/// The stored chain of a certificate, as a PEM file.
fn intermediates(env: &Env, thumb: &str, dir: &Path) -> PathBuf {
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    let chain: Vec<u8> = conn
        .query_row(
            "SELECT chain FROM certificates WHERE thumbprint = ?1",
            [thumb],
            |r| r.get(0),
        )
        .unwrap();
    let path = dir.join("intermediates.pem");
    let mut text = String::new();
    // The chain column: concatenated DER certificates.
    let mut rest = &chain[..];
    while !rest.is_empty() {
        let len = der_len(rest);
        text.push_str(&pem("CERTIFICATE", &rest[..len]));
        rest = &rest[len..];
    }
    assert!(!text.is_empty(), "pebble sent its intermediate");
    std::fs::write(&path, text).unwrap();
    path
}

/// The length of the DER element at the start of `b`.
fn der_len(b: &[u8]) -> usize {
    let l = b[1] as usize;
    if l < 0x80 {
        2 + l
    } else {
        let n = l & 0x7f;
        let mut v = 0usize;
        for i in 0..n {
            v = (v << 8) | b[2 + i] as usize;
        }
        2 + n + v
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    certroll::cert::pem::encode(label, der)
}

#[test]
fn renew_now_orders_by_dns_01_through_a_hook() {
    let tmp = tempfile::tempdir().unwrap();
    let http = free_port();
    let pebble = Pebble::start(tmp.path(), http);
    let env = Env::with_config(&config(&pebble, http, &pebble.dns_01(tmp.path())));
    current_www(&env, tmp.path());
    // No listener runs: only DNS can answer.
    let out = env
        .ok(&["renew", "--now", "--type", "WebServicesExternal", "--json"])
        .json();
    assert_eq!(out[0]["outcome"], "generated", "{out}");
    let hooked = std::fs::read_to_string(tmp.path().join("dns-hook.log")).unwrap();
    assert!(
        hooked.contains("www.contoso.com") && hooked.contains("meet.contoso.com"),
        "{hooked}"
    );
    let view = env
        .ok(&["get", "--type", "WebServicesExternal", "--json"])
        .json();
    assert_eq!(view[0]["pending"]["thumbprint"], out[0]["thumbprint"]);
    assert!(
        view[0]["pending"]["issuer"]
            .as_str()
            .unwrap()
            .contains("Pebble")
    );
}

#[test]
fn a_failed_order_is_alerted_retried_and_leaves_nothing_half_made() {
    let tmp = tempfile::tempdir().unwrap();
    let http = free_port();
    let pebble = Pebble::start(tmp.path(), http);
    let env = Env::with_config(&config(&pebble, http, ""));
    current_www(&env, tmp.path());
    let before = env.count("certificates");
    // http-01 with no listener on the port: the CA cannot validate.
    let r = env.run(&["renew", "--now", "--type", "WebServicesExternal"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("renewal failed: ACME:"), "{}", r.stdout);
    assert_eq!(
        env.count("certificates"),
        before,
        "no certificate half made"
    );
    assert_eq!(env.count("jobs"), 0);
    assert_eq!(
        sql_i64(&env, "SELECT count(*) FROM acme_challenges"),
        0,
        "answers taken down"
    );
    assert_eq!(outbox(&env, "renewal.failed"), 1);
    // serve, its listener up, retries once the backoff has passed (its
    // clock 20 minutes on) and succeeds.
    let serve = env.spawn_until_env(
        &["serve", "-vv"],
        "engine started",
        &[("CERTROLL_CLOCK_OFFSET_MS", "1200000")],
    );
    wait_until(60, "the retried ACME renewal", || {
        outbox(&env, "renewal.generated") == 1
    });
    assert_eq!(serve.stop(), 0);
    assert_eq!(env.count("certificates"), before + 1);
    let plan = env.ok(&["renew", "--what-if", "--json"]).json();
    assert_eq!(plan[0]["state"], "pending", "{plan}");
}

#[test]
fn request_acme_orders_and_assigns_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let http = free_port();
    let pebble = Pebble::start(tmp.path(), http);
    let env = Env::with_config(&config(&pebble, http, &pebble.dns_01(tmp.path())));
    let r = env.ok(&[
        "request",
        "--type",
        "WebServicesExternal",
        "--acme",
        "--subject-cn",
        "lync.contoso.com",
        "--key",
        "ec-p256",
        "--assign",
    ]);
    assert!(
        r.stdout.contains("issued by CN=Pebble Intermediate CA"),
        "{}",
        r.stdout
    );
    let view = env
        .ok(&["get", "--type", "WebServicesExternal", "--json"])
        .json();
    let cur = &view[0]["current"];
    assert!(cur["issuer"].as_str().unwrap().contains("Pebble"), "{view}");
    assert_eq!(cur["has_private_key"], true);
    // Without [acme] it says what to configure.
    let bare = Env::new();
    bare.run(&[
        "request",
        "--type",
        "WebServicesExternal",
        "--acme",
        "--subject-cn",
        "x.contoso.com",
    ])
    .assert_one_line_error(2, &["[acme] directory_url"]);
}

#[test]
fn an_enterprise_ca_with_account_binding_validates_files_in_a_webroot() {
    let tmp = tempfile::tempdir().unwrap();
    let http = free_port();
    let key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = Pebble::start_with(tmp.path(), http, Some(("kid-1", key)));
    // The web server of the names: files under a webroot, served by
    // Python's http.server (not certroll).
    let webroot = tmp.path().join("www");
    std::fs::create_dir_all(&webroot).unwrap();
    let mut web = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "http.server",
            &http.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&webroot)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    wait_until(20, "the web server", || {
        TcpStream::connect(("127.0.0.1", http)).is_ok()
    });
    let eab_file = tmp.path().join("eab.key");
    std::fs::write(&eab_file, format!("{key}\n")).unwrap();
    // Without the binding the CA refuses the account, in one line.
    let unbound = Env::with_config(&config(
        &pebble,
        free_port(),
        &format!("webroot = \"{}\"\n", webroot.display()),
    ));
    current_www(&unbound, tmp.path());
    let r = unbound.run(&["renew", "--now"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("creating the ACME account"),
        "{}",
        r.stdout
    );
    let env = Env::with_config(&config(
        &pebble,
        free_port(),
        &format!(
            "webroot = \"{}\"\neab_kid = \"kid-1\"\neab_hmac_key_file = \"{}\"\n",
            webroot.display(),
            eab_file.display()
        ),
    ));
    current_www(&env, tmp.path());
    let out = env.ok(&["renew", "--now", "--json"]).json();
    let _ = web.kill();
    let _ = web.wait();
    assert_eq!(out[0]["outcome"], "generated", "{out}");
    // The answers are taken down again.
    let left: Vec<_> = std::fs::read_dir(webroot.join(".well-known/acme-challenge"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
