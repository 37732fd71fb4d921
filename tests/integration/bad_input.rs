//! Issue bullet 8: every bad input gets one stderr line naming the file or
//! object and the reason, exit code 1 (refused) or 2 (usage/config), and
//! leaves the store exactly as it was.

use crate::util::*;

/// A store that already holds something, so "unchanged" means something.
fn populated() -> Env {
    let env = Env::new();
    assert_eq!(
        env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"])
            .code,
        0
    );
    env
}

#[track_caller]
fn refused(env: &Env, args: &[&str], code: i32, needles: &[&str]) {
    let before = env.snapshot();
    env.run(args).assert_one_line_error(code, needles);
    assert_eq!(env.snapshot(), before, "the store changed after {args:?}");
}

#[track_caller]
fn refused_import(env: &Env, file: &str, extra: &[&str], code: i32, needles: &[&str]) {
    let before = env.snapshot();
    env.import(file, extra).assert_one_line_error(code, needles);
    assert_eq!(
        env.snapshot(),
        before,
        "the store changed after importing {file}"
    );
}

#[test]
fn wrong_password() {
    let env = populated();
    let pfx = fixture("oauth2-windows.pfx");
    let wrong = env.path("wrong.txt");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    refused(
        &env,
        &[
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--password-file",
            wrong.to_str().unwrap(),
        ],
        1,
        &["oauth2-windows.pfx: wrong password or corrupt file (MAC check failed)"],
    );
    let key = fixture("oauth1.pkcs8-enc.pem");
    let crt = fixture("oauth1.crt.pem");
    refused(
        &env,
        &[
            "import",
            "--path",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--password-file",
            wrong.to_str().unwrap(),
        ],
        1,
        &["wrong password"],
    );
}

#[test]
fn truncated_empty_and_garbage_files() {
    let env = populated();
    refused_import(
        &env,
        "truncated.pfx",
        &[],
        1,
        &["truncated.pfx", "corrupt or truncated PKCS#12"],
    );
    refused_import(
        &env,
        "empty.pfx",
        &[],
        1,
        &["empty.pfx", "the file is empty"],
    );
    refused_import(
        &env,
        "garbage.pfx",
        &[],
        1,
        &["garbage.pfx", "not a certificate, PKCS#12/PFX or PEM file"],
    );
    refused_import(
        &env,
        "truncated.pem",
        &[],
        1,
        &["truncated.pem", "no END line"],
    );
}

#[test]
fn pfx_without_key_for_a_type_that_needs_one() {
    // (The populated store holds oauth1 with its key; this one must not.)
    let env = Env::new();
    assert_eq!(
        env.import("oauth2-windows.pfx", &["--type", "Default"])
            .code,
        0
    );
    refused_import(
        &env,
        "oauth1-nokey.pfx",
        &["--type", "Default"],
        1,
        &["Default policy", "private-key"],
    );
}

#[test]
fn key_that_does_not_match() {
    let env = populated();
    let crt = fixture("oauth2.crt.pem");
    let key = fixture("oauth1.key.pem");
    refused(
        &env,
        &[
            "import",
            "--path",
            crt.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        1,
        &[
            "oauth2.crt.pem",
            "private key does not match the certificate contoso.com",
        ],
    );
}

#[test]
fn weak_key_and_missing_sip_domain() {
    let env = populated();
    refused_import(
        &env,
        "weak.pfx",
        &["--type", "OAuthTokenIssuer"],
        1,
        &["key-strength"],
    );
    refused_import(
        &env,
        "fabrikam.pfx",
        &["--type", "OAuthTokenIssuer"],
        1,
        &["required-name", "contoso.com"],
    );
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let env = populated();
    refused_import(
        &env,
        "expired.pfx",
        &[],
        1,
        &["expired.pfx", "expired on 2021-01-01"],
    );
    refused_import(
        &env,
        "expired.pfx",
        &["--type", "OAuthTokenIssuer"],
        1,
        &["expired on 2021-01-01"],
    );
    refused_import(
        &env,
        "future.pfx",
        &["--type", "OAuthTokenIssuer"],
        1,
        &["validity", "not valid before 2090-01-01"],
    );
    // Stored without an assignment, a not-yet-valid certificate is kept for a
    // later roll, and certroll says so; it still cannot be assigned now.
    let r = env.import("future.pfx", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("not valid before 2090-01-01"),
        "{}",
        r.stderr
    );
    let t = thumbprint("future.crt.pem");
    refused(
        &env,
        &["set", "--type", "OAuthTokenIssuer", "--thumbprint", &t],
        1,
        &["not valid before"],
    );
}

#[test]
fn unknown_type_is_a_usage_error() {
    let env = populated();
    refused_import(
        &env,
        "oauth2.pfx",
        &["--type", "OAuthTokenIssuerr"],
        2,
        &["unknown usage type 'OAuthTokenIssuerr'"],
    );
    let t = thumbprint("oauth1.crt.pem");
    refused(
        &env,
        &["set", "--type", "Default,Nope", "--thumbprint", &t],
        2,
        &["'Nope'"],
    );
    refused(&env, &["get", "--type", "Nope"], 2, &["'Nope'"]);
}

#[test]
fn bad_scope_is_a_usage_error() {
    let env = populated();
    let t = thumbprint("oauth1.crt.pem");
    refused(
        &env,
        &[
            "set",
            "--type",
            "Default",
            "--scope",
            "pool:",
            "--thumbprint",
            &t,
        ],
        2,
        &["invalid scope 'pool:'"],
    );
    refused(
        &env,
        &[
            "set",
            "--type",
            "Default",
            "--scope",
            "planet:mars",
            "--thumbprint",
            &t,
        ],
        2,
        &["planet:mars"],
    );
}

#[test]
fn unknown_ambiguous_and_malformed_thumbprints() {
    let env = populated();
    refused(
        &env,
        &[
            "set",
            "--type",
            "Default",
            "--thumbprint",
            "DEADBEEFDEADBEEF",
        ],
        1,
        &["no certificate with thumbprint DEADBEEFDEADBEEF"],
    );
    refused(
        &env,
        &["set", "--type", "Default", "--thumbprint", "133F"],
        1,
        &["'133F'", "at least 8"],
    );
    refused(
        &env,
        &["set", "--type", "Default", "--thumbprint", "not-hex!"],
        1,
        &["not a thumbprint"],
    );

    // Two certificates whose thumbprints share a prefix (made in the database:
    // real SHA-1 collisions on 8 hex digits are rare).
    let t = thumbprint("oauth1.crt.pem");
    let twin = format!("{}{}", &t[..12], "0".repeat(28));
    {
        let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
        conn.execute(
            "INSERT INTO certificates (thumbprint, sha256, der, chain, key_enc, subject, issuer, sans, serial,
                not_before, not_after, key_algorithm, key_bits, signature_algorithm, friendly_name,
                source_file, imported_at)
             SELECT ?1, printf('%064d', 0), der, chain, NULL, subject, issuer, sans, serial, not_before,
                not_after, key_algorithm, key_bits, signature_algorithm, friendly_name, source_file, imported_at
             FROM certificates WHERE thumbprint = ?2",
            [&twin, &t],
        )
        .unwrap();
    }
    refused(
        &env,
        &["set", "--type", "Default", "--thumbprint", &t[..10]],
        1,
        &["ambiguous", &t, &twin],
    );
}

#[test]
fn missing_files() {
    let env = populated();
    refused(
        &env,
        &["import", "--path", "/nonexistent/server.pfx"],
        1,
        &["/nonexistent/server.pfx", "cannot read"],
    );
    let pfx = fixture("oauth1-openssl3.pfx");
    refused(
        &env,
        &[
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--password-file",
            "/nonexistent/pw.txt",
        ],
        1,
        &["/nonexistent/pw.txt", "cannot read the password file"],
    );
    let crt = fixture("oauth1.crt.pem");
    refused(
        &env,
        &[
            "import",
            "--path",
            crt.to_str().unwrap(),
            "--key",
            "/nonexistent/key.pem",
        ],
        1,
        &["/nonexistent/key.pem"],
    );
}

#[test]
fn unreadable_or_invalid_config_is_a_usage_error() {
    let env = populated();
    let before = env.snapshot();
    let mut cmd = env.command(&["get"]);
    cmd.env("CERTROLL_CONFIG", "/nonexistent/certroll.toml");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("/nonexistent/certroll.toml: cannot read the configuration"),
        "{err}"
    );

    for (text, needle) in [
        (
            "timezone = \"Nowhere/Atlantis\"\n",
            "unknown IANA time zone",
        ),
        ("sip_domain = \n", "certroll.toml"),
        ("[policy.Default]\nmin_rsa_bitz = 4096\n", "min_rsa_bitz"),
        ("[policy.NoSuchType]\n", "NoSuchType"),
    ] {
        std::fs::write(&env.config, text).unwrap();
        env.run(&["get"])
            .assert_one_line_error(2, &["certroll.toml: ", needle]);
    }
    // A directory where the file should be.
    let r = {
        let mut cmd = env.command(&["get"]);
        cmd.env("CERTROLL_CONFIG", env.dir.path());
        cmd.output().unwrap()
    };
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(env.snapshot(), before);
}

#[test]
fn unknown_flags_are_usage_errors() {
    let env = populated();
    assert_eq!(env.run(&["import"]).code, 2);
    assert_eq!(env.run(&["set", "--type", "Default"]).code, 2);
    assert_eq!(env.run(&["frobnicate"]).code, 2);
    let pfx = fixture("oauth1-openssl3.pfx");
    let r = env.run(&[
        "import",
        "--path",
        pfx.to_str().unwrap(),
        "--scope",
        "pool:a.b",
    ]);
    r.assert_one_line_error(2, &["--scope needs --type"]);
}

/// A file to write in a directory that does not exist (a mistyped path):
/// refused before any key is made, no directory created, store unchanged.
#[test]
fn output_into_a_missing_directory_is_refused() {
    let env = populated();
    let missing = env.dir.path().join("no-such-dir");
    let csr = missing.join("oauth.csr");
    refused(
        &env,
        &[
            "request",
            "--type",
            "OAuthTokenIssuer",
            "--output",
            csr.to_str().unwrap(),
        ],
        1,
        &["oauth.csr", "no such directory"],
    );
    let pw = password_file();
    let pfx = missing.join("copy.pfx");
    refused(
        &env,
        &[
            "export",
            "--thumbprint",
            &thumbprint("oauth1.crt.pem"),
            "--path",
            pfx.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        1,
        &["copy.pfx", "no such directory"],
    );
    assert!(!missing.exists(), "a directory was created");
    let here = env.dir.path().to_str().unwrap();
    refused(
        &env,
        &["request", "--type", "OAuthTokenIssuer", "--output", here],
        1,
        &["is a directory"],
    );
}

/// Runs `cmd` and fails the test if it has not ended within 20 s (a read
/// that hangs on a FIFO, or eats /dev/zero, never ends by itself).
fn run_bounded(mut cmd: std::process::Command) -> Run {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("certroll did not end: {cmd:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap())
}

/// Devices, FIFOs without a writer and endless standard input end in one
/// line and a non-zero exit, and change nothing.
#[test]
fn devices_fifos_and_endless_input_are_refused() {
    let env = populated();
    let before = env.snapshot();
    let fifo = env.path("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let fifo = fifo.to_str().unwrap();
    let crt = fixture("oauth1.crt.pem");
    let pfx = fixture("oauth1-openssl3.pfx");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["import", "--path", "/dev/zero"],
            vec!["/dev/zero: cannot read the file", "character device"],
        ),
        (
            vec!["import", "--path", fifo],
            vec!["fifo: cannot read the file", "FIFO"],
        ),
        (
            vec!["import", "--path", crt.to_str().unwrap(), "--key", fifo],
            vec!["fifo: cannot read the file", "FIFO"],
        ),
        (
            vec![
                "import",
                "--path",
                pfx.to_str().unwrap(),
                "--password-file",
                fifo,
            ],
            vec!["fifo: cannot read the password file", "FIFO"],
        ),
        (
            vec![
                "import",
                "--path",
                pfx.to_str().unwrap(),
                "--password-file",
                "/dev/zero",
            ],
            vec!["/dev/zero: cannot read the password file", "device"],
        ),
    ];
    for (args, needles) in cases {
        run_bounded(env.command(&args)).assert_one_line_error(1, &needles);
    }
    // A password on standard input that never ends.
    let mut cmd = env.command(&[
        "import",
        "--path",
        pfx.to_str().unwrap(),
        "--password-stdin",
    ]);
    cmd.stdin(std::fs::File::open("/dev/zero").unwrap());
    run_bounded(cmd).assert_one_line_error(1, &["--password-stdin", "larger than the 1 MiB"]);
    // A configuration that is a device, or too large.
    let mut cmd = env.command(&["get"]);
    cmd.env("CERTROLL_CONFIG", "/dev/zero");
    run_bounded(cmd)
        .assert_one_line_error(2, &["/dev/zero: cannot read the configuration", "device"]);
    let big = env.path("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(2 << 20))).unwrap();
    let mut cmd = env.command(&["get"]);
    cmd.env("CERTROLL_CONFIG", &big);
    run_bounded(cmd).assert_one_line_error(2, &["big.toml", "larger than the 1 MiB"]);
    // A certificate file over 16 MiB.
    let huge = env.path("huge.pem");
    std::fs::write(&huge, vec![b'A'; 17 << 20]).unwrap();
    run_bounded(env.command(&["import", "--path", huge.to_str().unwrap()]))
        .assert_one_line_error(1, &["huge.pem", "larger than the 16 MiB"]);
    assert_eq!(env.snapshot(), before);
}

/// Date arithmetic never panics: dates beyond the year 9999 are one line
/// and exit 2, and so is a --limit out of its range.
#[test]
fn dates_and_limits_out_of_range_are_usage_errors() {
    let env = populated();
    let t = thumbprint("oauth1.crt.pem");
    for (args, needle) in [
        (
            vec![
                "set",
                "--type",
                "OAuthTokenIssuer",
                "--thumbprint",
                &t,
                "--effective-date",
                "+99999999d",
                "--roll",
            ],
            "beyond the dates certroll handles",
        ),
        (
            vec!["certs", "--expiring-within", "4294967295"],
            "beyond the year 9999",
        ),
        (
            vec!["timeline", "--at", "+99999999d"],
            "beyond the dates certroll handles",
        ),
        (
            vec!["timeline", "--at=-99999999d"],
            "beyond the dates certroll handles",
        ),
    ] {
        refused(&env, &args, 2, &[needle]);
    }
    for args in [
        ["jobs", "list", "--limit", "18446744073709551615"],
        ["history", "--limit", "0", "--json"],
        ["notifications", "list", "--limit", "9223372036854775808"],
    ] {
        let r = env.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("from 1 to 1000000"), "{}", r.stderr);
    }
}

/// Issue 11, item 12: a data directory the user cannot write says which
/// directory and what to do, for a change and for a look alike. Meaningful
/// only as root (as on CI), which can act as another user.
#[test]
fn a_data_directory_the_user_cannot_write_is_named_with_what_to_do() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = populated();
    if std::fs::metadata(env.dir.path()).unwrap().uid() != 0 {
        eprintln!("skipped: only root can act as another user");
        return;
    }
    // The files stay root's, group nogroup: nobody may read them, and
    // write none of them.
    let nogroup = 65534;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in ["certroll.db-wal", "certroll.db-shm"] {
        let _ = std::fs::remove_file(env.data.join(f));
    }
    for f in std::fs::read_dir(&env.data).unwrap() {
        let p = f.unwrap().path();
        std::os::unix::fs::chown(&p, None, Some(nogroup)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    std::os::unix::fs::chown(&env.data, None, Some(nogroup)).unwrap();
    std::fs::set_permissions(&env.data, std::fs::Permissions::from_mode(0o750)).unwrap();
    let before = env.snapshot();
    let pfx = fixture("oauth2-windows.pfx");
    let pw = password_file();
    for args in [
        vec![
            "import",
            "--path",
            pfx.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        vec!["get"],
    ] {
        let out = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(bin())
            .args(&args)
            .env("CERTROLL_CONFIG", &env.config)
            .env("CERTROLL_DATA_DIR", &env.data)
            .output()
            .unwrap();
        Run::from(out).assert_one_line_error(
            1,
            &[
                &format!(
                    "{}: the data directory is not writable by this user",
                    env.data.display()
                ),
                "chmod u+w",
            ],
        );
    }
    assert_eq!(env.snapshot(), before);
}
