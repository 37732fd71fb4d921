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
