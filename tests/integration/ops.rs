//! Issue 6: operations. Shell completions, man pages, logs, perfdata,
//! metrics and health endpoints, the timeline, packaging.

use std::process::Command;

use crate::util::*;

/// The subcommands, from the binary's own help.
fn subcommands() -> Vec<String> {
    let help = Env::new().ok(&["--help"]).stdout;
    let start = help.find("Commands:").expect("a Commands section");
    help[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // Wrapped descriptions continue on deeper-indented lines.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

#[test]
fn completions_cover_every_command_and_parse_in_their_shell() {
    let env = Env::new();
    let commands = subcommands();
    assert!(commands.len() >= 18, "{commands:?}");
    let bash = env.ok(&["completions", "bash"]).stdout;
    let check = Command::new("bash")
        .arg("-n")
        .arg("-c")
        .arg(&bash)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["bash", "zsh", "fish"] {
        let text = env.ok(&["completions", shell]).stdout;
        for c in &commands {
            assert!(text.contains(c.as_str()), "{shell} completions lack {c}");
        }
        assert!(
            text.contains("effective-date") && text.contains("password-file"),
            "{shell}"
        );
    }
    let r = env.run(&["completions", "tcsh"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid value 'tcsh'"), "{}", r.stderr);
}

#[test]
fn man_pages_render_for_every_command() {
    let env = Env::new();
    let page = env.ok(&["man"]).stdout;
    assert!(
        page.contains(".TH certroll 1") && page.contains(".SH SYNOPSIS"),
        "{page}"
    );
    let dir = env.path("man");
    env.ok(&["man", "--dir", dir.to_str().unwrap()]);
    for c in subcommands() {
        let p = dir.join(format!("certroll-{c}.1"));
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(text.contains(".SH NAME"), "{}", p.display());
    }
    // groff formats it without a warning.
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(dir.join("certroll-import.1"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The performance data after the '|' of a plugin's first line.
fn perfdata(first_line: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let (_, perf) = first_line.split_once(" | ").expect("perfdata after ' | '");
    perf.split_whitespace()
        .map(|item| {
            let (label, rest) = item.split_once('=').expect("label=value");
            (
                label.to_string(),
                rest.split(';').map(String::from).collect(),
            )
        })
        .collect()
}

#[test]
fn check_prints_perfdata_and_warns_about_a_lagging_server() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::with_config(&format!(
        "sip_domain = \"contoso.com\"\n[deploy]\nlagging_after_minutes = 0\n\
         [[server]]\nname = \"fe01.contoso.com\"\n[[target]]\nname = \"t\"\nreload = \"echo no >&2; exit 1\"\n\
         [[target.file]]\nkind = \"cert\"\npath = \"{}/{{server}}/{{type}}.pem\"\n",
        tmp.path().display()
    ));
    let pem = short_lived_pem(env.dir.path(), "w", 20);
    env.ok(&[
        "import",
        "--path",
        pem.to_str().unwrap(),
        "--type",
        "OAuthTokenIssuer",
        "--force",
    ]);
    env.import(
        "oauth2.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+5d",
            "--roll",
        ],
    );
    let r = env.run(&["check"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let p = perfdata(r.stdout.lines().next().unwrap());
    let days: i64 = p["days_left_min"][0].parse().unwrap();
    assert!((19..=20).contains(&days), "{p:?}");
    assert_eq!(p["days_left_min"][1..3], ["30:", "7:"]);
    for (k, v) in [
        ("slots", "1"),
        ("slots_warning", "0"),
        ("rolls_scheduled", "1"),
        ("rolls_failed", "0"),
        ("notifications_dead", "0"),
    ] {
        assert_eq!(p[k][0], v, "{k}: {p:?}");
    }
    // Never deployed yet: out of date, but not lagging (nothing failed).
    assert_eq!(p["servers_out_of_date"][0], "1");

    // The reload fails: past lagging_after_minutes that is a WARNING.
    let mut agent = env.command(&["agent", "--server", "fe01.contoso.com", "--once"]);
    assert_eq!(agent.output().unwrap().status.code(), Some(1));
    let r = env.run(&["check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let first = r.stdout.lines().next().unwrap();
    assert!(
        first.starts_with("CERTROLL WARNING") && first.contains("1 deployment(s) lagging"),
        "{first}"
    );
    assert!(
        r.stdout
            .contains("WARNING fe01.contoso.com: OAuthTokenIssuer current not deployed since"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("the reload command failed (exit status: 1): no"),
        "{}",
        r.stdout
    );
    let v = env.run(&["check", "--json"]).json();
    assert_eq!(v["perfdata"]["servers_out_of_date"], 1);
    assert_eq!(v["perfdata"]["rolls_scheduled"], 1);
    assert_eq!(v["lagging_deployments"].as_array().unwrap().len(), 1);
}

type Families = std::collections::HashMap<
    String,
    openmetrics_parser::MetricFamily<
        openmetrics_parser::PrometheusType,
        openmetrics_parser::PrometheusValue,
    >,
>;

/// Parses a scrape as Prometheus does; panics on anything malformed.
fn parse_metrics(text: &str) -> Families {
    openmetrics_parser::prometheus::parse_prometheus(text)
        .unwrap_or_else(|e| panic!("not Prometheus text ({e:?}):\n{text}"))
        .families
}

/// The value of the sample of `family` whose labels include `labels`.
fn value(f: &Families, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    use openmetrics_parser::PrometheusValue as V;
    let fam = f.get(family)?;
    fam.iter_samples()
        .find(|s| {
            let set = s.get_labelset().unwrap();
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|s| match &s.value {
            V::Gauge(n) | V::Unknown(n) => n.as_f64(),
            V::Counter(c) => c.value.as_f64(),
            V::Histogram(h) => h.count.unwrap_or(0) as f64,
            V::Summary(s) => s.count.unwrap_or(0) as f64,
        })
}

fn not_after(crt: &str) -> f64 {
    let info = certroll::cert::CertInfo::from_der(
        &certroll::cert::pem::parse_blocks(&std::fs::read_to_string(fixture(crt)).unwrap())
            .unwrap()
            .remove(0)
            .der,
    )
    .unwrap();
    info.not_after.timestamp() as f64
}

#[test]
fn metrics_readiness_and_health_over_a_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let port = crate::peers::free_port();
    let hook = crate::peers::Receiver::start(b"s3cret", vec![400]);
    let env = Env::with_config(&format!(
        "sip_domain = \"contoso.com\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
         [[notify.webhook]]\nname = \"hooks\"\nurl = \"{}\"\n\
         [[server]]\nname = \"fe01.contoso.com\"\n[[target]]\nname = \"files\"\ntypes = [\"OAuthTokenIssuer\"]\n\
         [[target.file]]\nkind = \"cert\"\npath = \"{}/{{server}}.pem\"\n",
        hook.url(),
        tmp.path().display()
    ));
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let r = env.import(
        "oauth2-windows.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+3s",
            "--roll",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let serve = env.serve();
    wait_until(20, "the listener", || http_get(port, "/healthz").is_ok());
    assert_eq!(
        http_get(port, "/healthz").unwrap(),
        (200, "ok\n".to_string())
    );

    // Before the roll: the next instant is published.
    let before = parse_metrics(&http_get(port, "/metrics").unwrap().1);
    let t2 = thumbprint("oauth2.crt.pem");
    let next = value(
        &before,
        "certroll_roll_next_timestamp_seconds",
        &[("thumbprint", &t2)],
    )
    .expect("next roll");
    let job = env.ok(&["jobs", "show", "1", "--json"]).json();
    let due = chrono::DateTime::parse_from_rfc3339(job["due_at"].as_str().unwrap()).unwrap();
    assert!(
        (next - due.timestamp_millis() as f64 / 1000.0).abs() < 0.001,
        "{next} vs {due}"
    );
    assert_eq!(
        value(&before, "certroll_jobs", &[("state", "scheduled")]),
        Some(1.0)
    );

    // After it: the roll, its lateness, the dead delivery, the deployment.
    wait_until(20, "the roll", || {
        env.get_json()[0]["current"]["thumbprint"] == t2
    });
    wait_until(20, "a dead delivery", || {
        value(
            &parse_metrics(&http_get(port, "/metrics").unwrap().1),
            "certroll_outbox_dead",
            &[("channel", "hooks")],
        )
        .is_some_and(|v| v >= 1.0)
    });
    // Every event has been routed to the 400-answering hook and tried there
    // (and died): nothing unrouted, nothing waiting.
    wait_until(20, "the outbox drained", || {
        let m = parse_metrics(&http_get(port, "/metrics").unwrap().1);
        value(&m, "certroll_outbox_unrouted", &[]) == Some(0.0)
            && value(&m, "certroll_outbox_depth", &[("channel", "hooks")]) == Some(0.0)
    });
    wait_until(20, "fe01 up to date", || {
        value(
            &parse_metrics(&http_get(port, "/metrics").unwrap().1),
            "certroll_deployment_up_to_date",
            &[("server", "fe01.contoso.com")],
        ) == Some(1.0)
    });
    let (status, text) = http_get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let m = parse_metrics(&text);
    let t1 = thumbprint("oauth1.crt.pem");
    let cur = [
        ("type", "OAuthTokenIssuer"),
        ("scope", "global"),
        ("role", "current"),
        ("thumbprint", t2.as_str()),
    ];
    assert_eq!(
        value(&m, "certroll_certificate_not_after_timestamp_seconds", &cur),
        Some(not_after("oauth2.crt.pem"))
    );
    assert!(
        value(
            &m,
            "certroll_certificate_not_before_timestamp_seconds",
            &cur
        )
        .is_some()
    );
    let prev = [("role", "previous"), ("thumbprint", t1.as_str())];
    assert_eq!(
        value(
            &m,
            "certroll_certificate_not_after_timestamp_seconds",
            &prev
        ),
        Some(not_after("oauth1.crt.pem"))
    );
    assert_eq!(value(&m, "certroll_roll_next_timestamp_seconds", &[]), None);
    assert_eq!(
        value(&m, "certroll_jobs", &[("state", "succeeded")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "certroll_rolls_total", &[("outcome", "succeeded")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "certroll_rolls_total", &[("outcome", "failed")]),
        Some(0.0)
    );
    assert_eq!(value(&m, "certroll_roll_lateness_seconds", &[]), Some(1.0));
    assert_eq!(
        value(&m, "certroll_outbox_depth", &[("channel", "hooks")]),
        Some(0.0)
    );
    for l in ["engine", "notifier", "deployer"] {
        assert_eq!(
            value(&m, "certroll_loop_running", &[("loop", l)]),
            Some(1.0),
            "{l}"
        );
    }
    let scan =
        value(&m, "certroll_expiry_scan_last_timestamp_seconds", &[]).expect("a scan at start");
    assert!((chrono::Utc::now().timestamp() as f64 - scan).abs() < 120.0);
    assert!(
        text.contains("# TYPE certroll_roll_lateness_seconds histogram"),
        "{text}"
    );

    // Ready; not ready while another process holds the store's write lock.
    assert_eq!(
        http_get(port, "/readyz").unwrap(),
        (200, "ready\n".to_string())
    );
    let lock = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    // (The probe's answer is kept for a second: wait for the next one.)
    let mut body = String::new();
    wait_until(10, "not ready", || {
        let (status, b) = http_get(port, "/readyz").unwrap();
        body = b;
        status == 503
    });
    assert!(
        body.starts_with("not ready: store:") && body.contains("locked"),
        "{body}"
    );
    lock.execute_batch("ROLLBACK").unwrap();
    wait_until(10, "ready again", || {
        http_get(port, "/readyz").unwrap().0 == 200
    });

    // SIGTERM while clients scrape: every answer is whole, and serve exits 0.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let whole = std::sync::Arc::new(AtomicUsize::new(0));
    let scrapers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, whole) = (stop.clone(), whole.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match http_get(port, "/metrics") {
                        Ok((200, body)) => {
                            parse_metrics(&body);
                            whole.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((code, body)) => panic!("{code}: {body}"),
                        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => panic!("{e}"),
                        Err(_) => {} // refused or reset: the listener is gone
                    }
                }
            })
        })
        .collect();
    wait_until(10, "scrapes in flight", || {
        whole.load(Ordering::Relaxed) >= 6
    });
    assert_eq!(serve.stop(), 0);
    stop.store(true, Ordering::Relaxed);
    for t in scrapers {
        t.join().unwrap();
    }
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(repo("packaging/systemd/certroll.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/certroll serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=8192",
        "User=certroll",
        "StateDirectory=certroll",
        "ConfigurationDirectory=certroll",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    require_tool("systemd-analyze", "systemd");
    // verify wants ExecStart to exist: point it at the binary under test.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("certroll.service");
    std::fs::write(
        &path,
        unit.replace("/usr/bin/certroll", bin().to_str().unwrap()),
    )
    .unwrap();
    // (--man=no: the man pages are installed by the package, not here.)
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The hardening keeps systemd's exposure score below 2.0 ("OK").
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The agent's template unit, for each server of a pool.
    let agent = std::fs::read_to_string(repo("packaging/systemd/certroll-agent@.service")).unwrap();
    assert!(
        agent
            .lines()
            .any(|l| l == "ExecStart=/usr/bin/certroll agent --server %i"),
        "{agent}"
    );
    let instance = tmp.path().join("certroll-agent@fe01.service");
    std::fs::write(
        &instance,
        agent.replace("/usr/bin/certroll", bin().to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&instance)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "certroll-agent@.service: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The timer for hosts without serve (item 18): `roll` every minute,
    // which exits 0 when nothing was due.
    let roll = std::fs::read_to_string(repo("packaging/systemd/certroll-roll.service")).unwrap();
    assert!(
        roll.lines()
            .any(|l| l == "ExecStart=/usr/bin/certroll roll"),
        "{roll}"
    );
    let timer = std::fs::read_to_string(repo("packaging/systemd/certroll-roll.timer")).unwrap();
    assert!(timer.lines().any(|l| l == "OnCalendar=minutely"), "{timer}");
    std::fs::write(
        tmp.path().join("certroll-roll.service"),
        roll.replace("/usr/bin/certroll", bin().to_str().unwrap()),
    )
    .unwrap();
    std::fs::write(tmp.path().join("certroll-roll.timer"), timer).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(tmp.path().join("certroll-roll.timer"))
        .arg(tmp.path().join("certroll-roll.service"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_debian_package_holds_the_service_its_docs_and_a_conffile() {
    require_tool("dpkg-deb", "dpkg");
    require_tool(
        "cargo-deb",
        "cargo-deb (cargo install cargo-deb --version 3.8.0 --locked)",
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(repo("packaging/build-deb"))
        .args(["--profile", "dev", "--output"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb");
    let list = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    for (mode, path) in [
        ("-rwxr-xr-x", "./usr/bin/certroll"),
        ("-rw-r-----", "./etc/certroll/certroll.toml"),
        ("-rw-r--r--", "./usr/lib/systemd/system/certroll.service"),
        (
            "-rw-r--r--",
            "./usr/lib/systemd/system/certroll-roll.service",
        ),
        ("-rw-r--r--", "./usr/lib/systemd/system/certroll-roll.timer"),
        (
            "-rw-r--r--",
            "./usr/lib/systemd/system/certroll-agent@.service",
        ),
        ("-rw-r--r--", "./usr/share/man/man1/certroll.1.gz"),
        ("-rw-r--r--", "./usr/share/man/man1/certroll-serve.1.gz"),
        (
            "-rw-r--r--",
            "./usr/share/bash-completion/completions/certroll",
        ),
        ("-rw-r--r--", "./usr/share/zsh/vendor-completions/_certroll"),
        (
            "-rw-r--r--",
            "./usr/share/fish/vendor_completions.d/certroll.fish",
        ),
        ("-rw-r--r--", "./usr/share/doc/certroll/README.md"),
        (
            "-rw-r--r--",
            "./usr/share/certroll/prometheus/certroll.rules.yml",
        ),
        (
            "-rw-r--r--",
            "./usr/share/certroll/grafana/certroll-dashboard.json",
        ),
    ] {
        assert!(
            list.lines()
                .any(|l| l.starts_with(mode) && l.ends_with(&format!(" {path}"))),
            "{mode} {path} not in:\n{list}"
        );
    }
    let info = Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .output()
        .unwrap();
    let info = String::from_utf8(info.stdout).unwrap();
    assert!(
        info.contains("Depends: adduser") && info.contains("Section: admin"),
        "{info}"
    );
    let ctl = tmp.path().join("DEBIAN");
    assert!(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(&ctl)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        std::fs::read_to_string(ctl.join("conffiles"))
            .unwrap()
            .trim(),
        "/etc/certroll/certroll.toml"
    );
    let postinst = std::fs::read_to_string(ctl.join("postinst")).unwrap();
    assert!(
        postinst.contains("adduser --system")
            && postinst.contains("deb-systemd-helper enable certroll.service"),
        "{postinst}"
    );
    // Unpacked: the binary runs, the conffile points at the service's store
    // and is a valid configuration.
    let root = tmp.path().join("root");
    assert!(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&root)
            .status()
            .unwrap()
            .success()
    );
    let conf = root.join("etc/certroll/certroll.toml");
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .lines()
            .any(|l| l == "data_dir = \"/var/lib/certroll\"")
    );
    let check = Command::new(root.join("usr/bin/certroll"))
        .arg("--config")
        .arg(&conf)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .arg("check")
        .output()
        .unwrap();
    // A valid configuration, and no store yet: UNKNOWN, and nothing made.
    assert_eq!(
        check.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(
        String::from_utf8_lossy(&check.stdout).starts_with("CERTROLL UNKNOWN - ")
            && String::from_utf8_lossy(&check.stdout).contains("no store"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert!(!tmp.path().join("data").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("usr/lib/systemd/system/certroll.service")).unwrap(),
        std::fs::read_to_string(repo("packaging/systemd/certroll.service")).unwrap()
    );
}

#[test]
fn no_secret_reaches_the_logs_of_a_full_scenario_at_trace_level() {
    use base64ct::{Base64, Encoding};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ca, cert, key) = crate::peers::test_ca(dir);
    let (user, smtp_pw) = ("certroll-mailer", "Sm7p-S3cret-pw!");
    let smtp = crate::peers::Smtp::start_with_login(
        dir,
        crate::peers::free_port(),
        &cert,
        &key,
        user,
        smtp_pw,
    );
    let hook_secret = "hook-S3cret-value";
    let hook = crate::peers::Receiver::start(b"hook-S3cret-value", vec![200]);
    let deploy_pw = "Dep10y-PFX-pw";
    std::fs::write(dir.join("smtp.pw"), format!("{smtp_pw}\n")).unwrap();
    std::fs::write(dir.join("hook.secret"), format!("{hook_secret}\n")).unwrap();
    std::fs::write(dir.join("deploy.pw"), format!("{deploy_pw}\n")).unwrap();
    let d = dir.display();
    let env = Env::with_config(&format!(
        r#"sip_domain = "contoso.com"
[[notify.email]]
name = "mail"
host = "localhost"
port = {}
tls = "starttls"
from = "certroll@contoso.com"
to = ["pki@contoso.com"]
username = "{user}"
password_file = "{d}/smtp.pw"
ca_file = "{}"
[[notify.webhook]]
name = "hook"
url = "{}"
secret_file = "{d}/hook.secret"
[[server]]
name = "fe01.contoso.com"
[[target]]
name = "iis"
types = ["OAuthTokenIssuer"]
[[target.file]]
kind = "pfx"
path = "{d}/srv/{{server}}.pfx"
password_file = "{d}/deploy.pw"
[[target.file]]
kind = "key"
path = "{d}/srv/{{server}}.key"
"#,
        smtp.port,
        ca.display(),
        hook.url()
    ));
    let json = ["-vvv", "--log-format", "json"];
    let mut logs = String::new();
    let mut run = |args: &[&str], stdin: Option<&str>| {
        let mut all = args.to_vec();
        all.extend(json);
        let r = match stdin {
            Some(s) => env.run_with_stdin(&all, s),
            None => env.run(&all),
        };
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        logs.push_str(&r.stderr);
    };
    let pfx = |name: &str| fixture(name).to_str().unwrap().to_string();
    let pw = password_file().to_str().unwrap().to_string();
    run(
        &[
            "import",
            "--path",
            &pfx("oauth1-openssl3.pfx"),
            "--password-file",
            &pw,
            "--type",
            "OAuthTokenIssuer",
        ],
        None,
    );
    let serve = env.serve_with(&json);
    run(
        &[
            "import",
            "--path",
            &pfx("oauth2-windows.pfx"),
            "--password-file",
            &pw,
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+2s",
            "--roll",
        ],
        None,
    );
    let t2 = thumbprint("oauth2.crt.pem");
    wait_until(30, "the roll's mail", || {
        smtp.messages().iter().any(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("rolled to"))
        })
    });
    wait_until(30, "the roll's webhook", || {
        hook.requests()
            .iter()
            .any(|r| r.body.contains("roll.succeeded"))
    });
    wait_until(30, "the deployed PFX", || {
        std::fs::read(dir.join("srv/fe01.contoso.com.key")).is_ok_and(|k| !k.is_empty())
            && env.run(&["status"]).stdout.contains(&t2[..8])
            && env.run(&["status"]).code == 0
    });
    run(&["notify", "test"], None);
    let out = env.path("export.pfx");
    run(
        &[
            "export",
            "--thumbprint",
            &t2,
            "--path",
            out.to_str().unwrap(),
            "--password-stdin",
        ],
        Some("Exp0rt-S3cret!\n"),
    );
    let log = serve.log.clone();
    assert_eq!(serve.stop(), 0);
    logs.push_str(&log.lock().unwrap());

    // Every line is one JSON object with a time, a level and fields.
    let mut lines = 0;
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string() && v["fields"].is_object(),
            "{line}"
        );
        lines += 1;
    }
    assert!(lines > 50, "only {lines} log lines at trace level");
    assert!(
        logs.contains("\"level\":\"DEBUG\"") && logs.contains("\"level\":\"TRACE\""),
        "-vvv logs debug and trace"
    );
    assert!(
        logs.contains("\"message\":\"rolled\""),
        "the roll is in the log"
    );

    // No secret, in clear or in the encodings protocols use.
    let key_pem = std::fs::read_to_string(dir.join("srv/fe01.contoso.com.key")).unwrap();
    let key_lines: Vec<&str> = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut secrets: Vec<String> = vec![
        "Passw0rd!".into(),
        smtp_pw.into(),
        Base64::encode_string(smtp_pw.as_bytes()),
        Base64::encode_string(format!("\0{user}\0{smtp_pw}").as_bytes()),
        hook_secret.into(),
        deploy_pw.into(),
        "Exp0rt-S3cret!".into(),
    ];
    secrets.extend(key_lines.iter().step_by(5).map(|l| l.to_string()));
    for s in &secrets {
        let hit = logs.lines().find(|l| l.contains(s.as_str()));
        assert!(
            hit.is_none(),
            "a secret is in the logs: {s}\n{}",
            hit.unwrap_or_default()
        );
    }
}

#[test]
fn timeline_as_of_a_fixed_instant_matches_the_checked_in_expectation() {
    let env = Env::with_config("sip_domain = \"contoso.com\"\ntimezone = \"Europe/London\"\n");
    for pfx in ["oauth1-openssl3.pfx", "oauth2-windows.pfx"] {
        assert_eq!(env.import(pfx, &["--type", "OAuthTokenIssuer"]).code, 0);
    }
    let r = env.import(
        "ec384.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "2045-04-20 02:00",
            "--roll",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = env
        .ok(&["timeline", "--at", "2045-04-01", "--days", "90"])
        .stdout;
    // The only line that depends on the day the test runs: when oauth1
    // became previous.
    let mut out = out;
    let at = out.find("previous since ").expect("a previous certificate") + "previous since ".len();
    out.replace_range(at..at + "YYYY-MM-DD".len(), "TODAY");
    let expected = std::fs::read_to_string(repo("tests/data/timeline/cli.txt")).unwrap();
    assert_eq!(out, expected, "\n{out}");
    // Piped, it has no colour; asked, it has.
    assert!(!out.contains('\x1b'));
    let coloured = env
        .ok(&["timeline", "--at", "2045-04-01", "--color", "always"])
        .stdout;
    assert!(coloured.contains("\x1b[33m~"), "{coloured}");
    // Filters, and an unknown --at.
    assert_eq!(
        env.ok(&["timeline", "--type", "Default"]).stdout,
        "no certificate assigned\n"
    );
    env.run(&["timeline", "--at", "soon"])
        .assert_one_line_error(2, &["--at", "'soon' is not a date"]);
}

/// Issue 11, item 14: the HTTP listener cannot be starved. 200 clients that
/// never finish their headers stop neither /healthz nor a deployment; they
/// are cut at the header timeout; connections past the limit are closed at
/// once; a flood of /readyz probes the store at most once a second, and
/// the roll due under it is not late.
#[test]
fn the_http_listener_cannot_be_starved() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = crate::peers::free_port();
    let env = Env::with_config(&format!(
        "sip_domain = \"contoso.com\"\n\
         [serve]\nlate_after_seconds = 1\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\nmax_connections = 220\nheader_timeout_seconds = 6\n\
         [[server]]\nname = \"fe01.contoso.com\"\n\
         [[target]]\nname = \"files\"\ntypes = [\"OAuthTokenIssuer\"]\n\
         [[target.file]]\nkind = \"cert\"\npath = \"{}/srv/{{server}}.pem\"\n",
        dir.display()
    ));
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    let deployed = dir.join("srv/fe01.contoso.com.pem");
    let serve = env.serve();
    wait_until(20, "the first deployment", || deployed.exists());

    // 200 clients that start a request and never finish its headers.
    let slow: Vec<std::net::TcpStream> = (0..200)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .unwrap();
            s
        })
        .collect();
    assert_eq!(
        http_get(port, "/healthz").unwrap(),
        (200, "ok\n".to_string())
    );
    // Past the limit (220): closed at once.
    let extra: Vec<std::net::TcpStream> = (0..30)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut closed = 0;
    for mut s in extra {
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert!(
        closed >= 10,
        "only {closed} of 30 connections past the limit were closed"
    );

    // A roll, with /readyz flooded around its instant, deployed while the
    // slow clients still hang on.
    let r = env.import(
        "oauth2-windows.pfx",
        &[
            "--type",
            "OAuthTokenIssuer",
            "--effective-date",
            "+2s",
            "--roll",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let flood_until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let floods: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0;
                while std::time::Instant::now() < flood_until {
                    if http_get(port, "/readyz").is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let asked: usize = floods.into_iter().map(|t| t.join().unwrap()).sum();
    let oauth2 = std::fs::read_to_string(fixture("oauth2.crt.pem")).unwrap();
    wait_until(20, "the roll deployed", || {
        std::fs::read_to_string(&deployed).is_ok_and(|t| t.contains(oauth2.trim()))
    });
    // Cut at the header timeout, not held forever.
    for mut s in slow {
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(
            buf.is_empty() || String::from_utf8_lossy(&buf).contains("408"),
            "{}",
            String::from_utf8_lossy(&buf)
        );
    }
    let (_, text) = http_get(port, "/metrics").unwrap();
    let m = parse_metrics(&text);
    let probes = value(&m, "certroll_readiness_probes_total", &[]).unwrap();
    assert!(asked > 20, "the flood asked only {asked} times");
    assert!(
        probes <= 6.0,
        "{probes} store probes for {asked} /readyz requests in 3 s"
    );
    assert!(value(&m, "certroll_http_connections_refused_total", &[]).unwrap() >= 10.0);
    assert_eq!(value(&m, "certroll_rolls_late_total", &[]), Some(0.0));
    assert_eq!(serve.stop(), 0);
}
