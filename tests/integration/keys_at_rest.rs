//! Issue bullet 5: private keys are sealed in the store; the database, its
//! WAL and the master key are mode 0600; a missing or wrong master key is
//! named as such.

use std::os::unix::fs::PermissionsExt;

use certroll::cert::key::PrivateKey;

use crate::util::*;

/// Secret-bearing byte strings of a key: its PKCS#8 DER and 16-byte
/// windows of its secret numbers (for RSA the second half of the key:
/// private exponent, primes, CRT values; for EC the private scalar; the
/// public parts are in the certificate, so they are not looked for).
pub fn secrets_of(pkcs8: &[u8]) -> Vec<Vec<u8>> {
    use pkcs8::der::Decode;
    let mut out = vec![pkcs8.to_vec()];
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8).unwrap();
    let inner = info.private_key.as_bytes();
    let secret: Vec<u8> = match sec1::EcPrivateKey::from_der(inner) {
        Ok(ec) => ec.private_key.to_vec(),
        Err(_) => inner[inner.len() / 2..].to_vec(),
    };
    for start in (0..secret.len().saturating_sub(16)).step_by(8) {
        out.push(secret[start..start + 16].to_vec());
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn raw_database_bytes_hold_no_private_key_in_clear() {
    let env = Env::new();
    for pfx in [
        "oauth1-openssl3.pfx",
        "oauth2-windows.pfx",
        "ec1.pfx",
        "ec384.pfx",
    ] {
        assert_eq!(env.import(pfx, &[]).code, 0);
    }
    // The keys as OpenSSL wrote them (PEM) and as PKCS#8 DER.
    let mut secrets = Vec::new();
    for key in [
        "oauth1.key.pem",
        "oauth2.key.pem",
        "ec1.key.pem",
        "ec384.key.pem",
    ] {
        let pem = std::fs::read_to_string(fixture(key)).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        secrets.push(body.as_bytes()[..64].to_vec());
        let der = base64_decode(&body);
        PrivateKey::from_pkcs8_der(&der).expect("fixture keys are PKCS#8");
        secrets.extend(secrets_of(&der));
    }
    // Read every file of the data directory while nothing holds it open,
    // and also the WAL, if any survived.
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(&env.data).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "master.key" {
            raw.extend(std::fs::read(&path).unwrap());
        }
    }
    assert!(
        raw.len() > 10_000,
        "the database should hold the certificates"
    );
    assert!(!contains(&raw, b"PRIVATE KEY"));
    for (i, s) in secrets.iter().enumerate() {
        assert!(
            !contains(&raw, s),
            "secret #{i} found in clear in the data directory"
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64ct::{Base64, Encoding};
    Base64::decode_vec(s).unwrap()
}

#[test]
fn data_files_are_private() {
    let env = Env::new();
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    let mode = |name: &str| {
        std::fs::metadata(env.data.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("certroll.db"), 0o600);
    assert_eq!(mode("master.key"), 0o600);
    assert_eq!(
        std::fs::metadata(&env.data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // While a connection is open, SQLite's WAL and shared-memory files carry
    // the database's mode.
    let conn = rusqlite::Connection::open(env.data.join("certroll.db")).unwrap();
    conn.query_row("SELECT count(*) FROM certificates", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap();
    for f in ["certroll.db-wal", "certroll.db-shm"] {
        if env.data.join(f).exists() {
            assert_eq!(mode(f), 0o600, "{f}");
        }
    }
}

#[test]
fn sealed_keys_decrypt_to_the_imported_key() {
    let env = Env::new();
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    let mut store = certroll::store::Store::open(&env.data).unwrap();
    let key = store
        .private_key(&thumbprint("oauth1.crt.pem"))
        .unwrap()
        .expect("a key");
    let pem = std::fs::read_to_string(fixture("oauth1.key.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(key.pkcs8_der(), base64_decode(&body).as_slice());
    assert!(store.private_key(&"0".repeat(40)).unwrap().is_none());
}

#[test]
fn a_missing_master_key_is_not_silently_replaced() {
    let env = Env::new();
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    std::fs::remove_file(env.data.join("master.key")).unwrap();
    let before = env.snapshot();
    env.import("oauth2-windows.pfx", &[])
        .assert_one_line_error(1, &["master.key", "missing", "restore it from a backup"]);
    assert!(!env.data.join("master.key").exists());
    assert_eq!(env.snapshot(), before);
    // Certificates without a key still import.
    let crt = fixture("oauth2.crt.pem");
    env.ok(&["import", "--path", crt.to_str().unwrap()]);
}

#[test]
fn a_replaced_master_key_is_named() {
    let env = Env::new();
    assert_eq!(env.import("oauth1-openssl3.pfx", &[]).code, 0);
    let path = env.data.join("master.key");
    std::fs::write(&path, [7u8; 32]).unwrap();
    env.import("oauth2-windows.pfx", &[]).assert_one_line_error(
        1,
        &[
            "master.key",
            "is not the one the store's private keys were sealed with",
        ],
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.import("oauth2-windows.pfx", &[])
        .assert_one_line_error(1, &["master.key", "too open", "chmod 600"]);
}

/// `sudo certroll import` on the service's store (a data directory owned
/// by the service user) must leave files that user can read: the database
/// and the master key it creates get the directory's owner, and the
/// service user then unseals the key. Meaningful only as root, as on CI.
#[test]
fn root_on_the_service_store_leaves_files_the_service_user_can_read() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    if std::fs::metadata(env.dir.path()).unwrap().uid() != 0 {
        eprintln!("skipped: only root can act on another user's store");
        return;
    }
    let nobody = 65534;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(&env.data).unwrap();
    std::fs::set_permissions(&env.data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&env.data, Some(nobody), Some(nobody)).unwrap();

    let r = env.import("oauth1-openssl3.pfx", &["--type", "OAuthTokenIssuer"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for f in ["certroll.db", "master.key"] {
        let m = std::fs::metadata(env.data.join(f)).unwrap();
        assert_eq!((m.uid(), m.gid()), (nobody, nobody), "{f}");
        assert_eq!(m.mode() & 0o777, 0o600, "{f}");
    }

    // The service user opens the store and unseals the key.
    let copy = env.data.join("copy.pfx");
    let pw = password_file();
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(bin())
        .args([
            "export",
            "--thumbprint",
            &thumbprint("oauth1.crt.pem"),
            "--path",
        ])
        .arg(&copy)
        .arg("--password-file")
        .arg(&pw)
        .env("CERTROLL_CONFIG", &env.config)
        .env("CERTROLL_DATA_DIR", &env.data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&copy).unwrap().uid(), nobody);
}
