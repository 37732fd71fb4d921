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
