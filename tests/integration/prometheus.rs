//! The Prometheus alerting rules and the Grafana dashboard in packaging/:
//! the rules load and pass their unit tests with Debian's promtool, and
//! every certroll metric they (and the dashboard) name is one a real
//! `serve` exports.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::peers::free_port;
use crate::util::*;

fn packaging(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(path)
}

#[test]
fn the_alerting_rules_load_and_pass_their_unit_tests() {
    require_tool("promtool", "prometheus");
    for args in [
        vec!["check", "rules", "certroll.rules.yml"],
        vec!["test", "rules", "certroll.rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(packaging("prometheus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `certroll_*` names in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("certroll_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        out.insert(name);
    }
    out
}

#[test]
fn the_rules_and_the_dashboard_name_only_metrics_serve_exports() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::with_config(&format!(
        "sip_domain = \"contoso.com\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
         [renewal.OAuthTokenIssuer]\nmethod = \"self-signed\"\n\
         [[server]]\nname = \"fe01.contoso.com\"\n\
         [[target]]\nname = \"files\"\nscope = \"global\"\ntypes = [\"OAuthTokenIssuer\"]\n\
         [[target.file]]\nkind = \"jwks\"\npath = \"{}\"\n\
         [[notify.webhook]]\nname = \"ops\"\nurl = \"https://127.0.0.1:1/hook\"\n",
        tmp.path().join("jwks.json").display()
    ));
    env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"]);
    let serve = env.serve();
    wait_until(20, "the listener", || http_get(port, "/healthz").is_ok());
    let (code, metrics) = http_get(port, "/metrics").unwrap();
    assert_eq!(serve.stop(), 0);
    assert_eq!(code, 200);
    // The families serve exports: TYPE lines, with a counter's _total and a
    // histogram's _bucket, _sum and _count.
    let mut exported = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            exported.insert(name.to_string());
            match kind {
                "counter" => {
                    exported.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        exported.insert(format!("{name}{s}"));
                    }
                }
                "info" => {
                    exported.insert(format!("{name}_info"));
                }
                _ => {}
            }
        }
    }
    let rules = std::fs::read_to_string(packaging("prometheus/certroll.rules.yml")).unwrap();
    let dashboard = std::fs::read_to_string(packaging("grafana/certroll-dashboard.json")).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for p in panels {
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{p}"));
        assert!(targets.iter().all(|t| t["expr"].is_string()), "{p}");
    }
    for (what, text) in [("rules", &rules), ("dashboard", &dashboard)] {
        let named = metric_names(text);
        assert!(named.len() >= 8, "{what}: {named:?}");
        for n in named {
            assert!(
                exported.contains(&n),
                "{what} names {n}, which serve does not export:\n{exported:?}"
            );
        }
    }
}
