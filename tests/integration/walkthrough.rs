//! The README's walkthrough, run as written: if a user can paste it, so can
//! this test. It then checks what the walkthrough promises.

use std::process::Command;

use crate::util::*;

/// Every `walkthrough:begin ... walkthrough:end` block of the README, in
/// order, as one script.
fn readme_blocks() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut script = String::new();
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("<!-- walkthrough:begin") {
        let end = start
            + rest[start..]
                .find("<!-- walkthrough:end -->")
                .expect("walkthrough end marker");
        let block = &rest[start..end];
        let body_start = block.find("```sh\n").expect("sh fence") + "```sh\n".len();
        let body_end = block.rfind("```").expect("closing fence");
        script.push_str(&block[body_start..body_end]);
        script.push('\n');
        rest = &rest[end + 1..];
    }
    assert!(
        script.contains("certroll serve"),
        "the walkthrough lost its scheduled roll"
    );
    script
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // What the walkthrough leaves behind, for the assertions below.
    let epilogue = r#"
cp oauth1.crt oauth2.crt oauth3.crt oauth4.crt oauth5.crt ca.crt reloads.log "$OUT/"
certroll status --json > "$OUT/status.json"
certroll get --json > "$OUT/get.json"
certroll history --json > "$OUT/history.json"
"#;
    let script = format!("set -euo pipefail\n{}\n{epilogue}", readme_blocks());
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env("TMPDIR", tmp.path())
        .env("HOME", tmp.path())
        .env("OUT", &out)
        .env_remove("CERTROLL_CONFIG")
        .env_remove("CERTROLL_DATA_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "walkthrough failed:\n{stdout}\n{stderr}"
    );

    let thumb = |f: &str| thumbprint_of(&out.join(f));
    let (t1, t2) = (thumb("oauth1.crt"), thumb("oauth2.crt"));

    // First `get`: oauth1 current, nothing previous; last `get`: flipped.
    let first = stdout
        .find("OAuthTokenIssuer@global")
        .expect("a get listing");
    let first_listing = &stdout[first..];
    assert!(
        first_listing.contains(&format!("current   {t1}")),
        "{stdout}"
    );
    assert!(stdout.contains("previous  none"), "{stdout}");
    assert!(stdout.contains(&format!("current   {t2}")), "{stdout}");
    assert!(stdout.contains(&format!("previous  {t1}")), "{stdout}");

    // The scheduled roll: oauth3 pending, then rolled by serve.
    let t3 = thumb("oauth3.crt");
    assert!(stdout.contains(&format!("pending   {t3}")), "{stdout}");
    assert!(stdout.contains(&format!("current   {t3}")), "{stdout}");
    assert!(stdout.contains(&format!("previous  {t2}")), "{stdout}");

    // The pool: fe03 lagged, recovered, and the roll to oauth4 reached
    // every server; the exported PFX read back.
    let t4 = thumb("oauth4.crt");
    assert!(
        stdout.contains("OUT OF DATE") && stdout.contains("the service refused the certificate"),
        "{stdout}"
    );
    assert!(
        stdout.contains("status exited 1: fe03 is out of date"),
        "{stdout}"
    );
    assert!(
        stdout.contains("subject=CN = oauth4.contoso.com"),
        "{stdout}"
    );
    let reloads = std::fs::read_to_string(out.join("reloads.log")).unwrap();
    for s in ["fe01", "fe02", "fe03"] {
        assert!(
            reloads.contains(&format!("{s}.contoso.com:  -> {t3}")),
            "{reloads}"
        );
        assert!(
            reloads.contains(&format!("{s}.contoso.com: {t3} -> {t4}")),
            "{reloads}"
        );
    }
    assert_eq!(reloads.lines().count(), 6, "{reloads}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["up_to_date"], true);
    assert_eq!(status["rows"].as_array().unwrap().len(), 3);

    let get: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("get.json")).unwrap()).unwrap();
    assert_eq!(get[0]["type"], "OAuthTokenIssuer");
    assert_eq!(get[0]["scope"], "global");
    assert_eq!(get[0]["current"]["thumbprint"], t4);
    assert_eq!(get[0]["previous"]["thumbprint"], t3);
    // The request: the CA's answer met its key and waits as the next one.
    let t5 = thumb("oauth5.crt");
    assert_eq!(get[0]["pending"]["thumbprint"], t5);
    assert_eq!(get[0]["pending"]["has_private_key"], true);
    assert_eq!(
        get[0]["pending"]["chain"][0]["subject"],
        "CN=Contoso Issuing CA"
    );
    assert!(stdout.contains("request 1 completed"), "{stdout}");
    assert!(
        stdout.contains("pending    OAuthTokenIssuer  global  CN=oauth5.contoso.com")
            && stdout.contains("completed  OAuthTokenIssuer  global  CN=oauth5.contoso.com"),
        "{stdout}"
    );

    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let actions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "import",
            "assign",
            "import",
            "assign",
            "import",
            "schedule",
            "roll",
            "import",
            "schedule",
            "roll",
            "request",
            "import",
            "request-completed",
            "schedule"
        ]
    );
    assert_eq!(history[3]["after"]["previous"], t1);
    assert_eq!(history[6]["after"]["current"], t3);
    assert_eq!(history[3]["after"]["current"], t2);
    assert_eq!(history[9]["after"]["current"], t4);
}
