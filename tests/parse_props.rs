//! Property tests: random and mutated bytes fed to the PFX, PKCS#7, PEM, DER and
//! key parsers never panic; they parse or return a clean error.

use certroll::cert::bundle::{Input, parse};
use certroll::cert::key::PrivateKey;
use certroll::cert::x509::CertInfo;
use proptest::collection::vec;
use proptest::prelude::*;

const FIXTURES: &[&str] = &[
    "oauth1-openssl3.pfx",
    "oauth1-legacy.pfx",
    "oauth2-windows.pfx",
    "multi.pfx",
    "nomac.pfx",
    "oauth1-bundle.pem",
    "oauth1.crt.der",
    "oauth1.crt.pem",
    "ec1.sec1.pem",
    "oauth1.pkcs8-enc.pem",
    "oauth1.key.der",
    "oauth1-chain.p7b",
    "oauth1-chain.p7b.pem",
    "oauth1-pbes2-sha1.pfx",
    "oauth1-absent-3des.pfx",
];

fn fixture(i: usize) -> Vec<u8> {
    let name = FIXTURES[i % FIXTURES.len()];
    std::fs::read(format!(
        "{}/tests/data/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Flips bytes, then maybe truncates, then maybe duplicates a slice.
fn mutate(
    mut data: Vec<u8>,
    flips: &[(usize, u8)],
    cut: Option<usize>,
    dup: Option<(usize, usize)>,
) -> Vec<u8> {
    if data.is_empty() {
        return data;
    }
    for (pos, byte) in flips {
        let n = data.len();
        data[pos % n] ^= byte | 1;
    }
    if let Some(c) = cut {
        let n = data.len();
        data.truncate(c % (n + 1));
    }
    if let (Some((a, b)), false) = (dup, data.is_empty()) {
        let n = data.len();
        let (a, b) = (a % n, b % n);
        let (lo, hi) = (a.min(b), a.max(b));
        let slice = data[lo..hi].to_vec();
        data.splice(hi..hi, slice);
    }
    data
}

fn all_parsers(data: &[u8], password: Option<&str>) {
    let _ = parse(&Input {
        data,
        key_file: None,
        password,
    });
    let _ = parse(&Input {
        data: &fixture(7),
        key_file: Some(data),
        password,
    });
    // No password: also the reader of absent-password PFX files.
    let _ = certroll::cert::p12_absent::read(data);
    let _ = CertInfo::from_der(data);
    let _ = PrivateKey::from_pkcs8_der(data);
    let _ = PrivateKey::from_pkcs1_der(data);
    let _ = PrivateKey::from_sec1_der(data);
    let _ = PrivateKey::from_encrypted_pkcs8_der(data, password.unwrap_or(""));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..2048), pw in proptest::option::of("[a-zA-Z0-9!]{0,10}")) {
        all_parsers(&data, pw.as_deref());
    }

    #[test]
    fn der_shaped_random_bytes_never_panic(
        tag in prop::sample::select(vec![0x30u8, 0x02, 0x04, 0xa0]),
        len in prop::sample::select(vec![0x80u8, 0x81, 0x82, 0x84, 0x7f]),
        rest in vec(any::<u8>(), 0..512),
    ) {
        let mut data = vec![0x30, 0x82, 0x01, 0x00, tag, len];
        data.extend(rest);
        all_parsers(&data, Some("Passw0rd!"));
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        flips in vec((any::<usize>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<usize>()),
        dup in proptest::option::of((any::<usize>(), any::<usize>())),
    ) {
        let data = mutate(fixture(which), &flips, cut, dup);
        all_parsers(&data, Some("Passw0rd!"));
    }

    #[test]
    fn mutated_pem_text_never_panics(
        which in prop::sample::select(vec![5usize, 7, 8, 9]),
        junk in "[-A-Za-z0-9+/=: \n]{0,80}",
        at in any::<usize>(),
    ) {
        let mut text = String::from_utf8(fixture(which)).unwrap();
        let mut pos = at % (text.len() + 1);
        while !text.is_char_boundary(pos) {
            pos -= 1;
        }
        text.insert_str(pos, &junk);
        all_parsers(text.as_bytes(), Some("Passw0rd!"));
    }
}

/// The unmutated fixtures parse (so the mutations start from real files).
#[test]
fn fixtures_parse() {
    for (i, password) in [
        (0, Some("Passw0rd!")),
        (1, Some("Passw0rd!")),
        (2, Some("Passw0rd!")),
        (5, Some("Passw0rd!")),
        (6, Some("Passw0rd!")),
        (13, Some("Passw0rd!")),
        (14, None),
    ] {
        let data = fixture(i);
        let parsed = parse(&Input {
            data: &data,
            key_file: None,
            password,
        });
        assert!(parsed.is_ok(), "{}: {:?}", FIXTURES[i], parsed.err());
    }
}
