//! Writing PKCS#12 (PFX) files: the certificate, its chain and private key,
//! under a password. AES-256 (PBES2) with an HMAC-SHA-256 MAC by default, as
//! OpenSSL 3 writes; `legacy` gives 3DES with an HMAC-SHA-1 MAC, which old
//! Windows versions need.

use p12_keystore::{EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKeyChain};

use super::key::PrivateKey;
use super::x509::CertInfo;

#[derive(Clone, Debug, Default)]
pub struct PfxOptions {
    pub legacy: bool,
    /// The friendly name (alias) of the entry.
    pub friendly_name: Option<String>,
}

/// Builds a PFX of `leaf` with `chain` (nearest issuer first) and `key`.
pub fn build(
    leaf: &CertInfo,
    chain: &[CertInfo],
    key: &PrivateKey,
    password: &str,
    opts: &PfxOptions,
) -> Result<Vec<u8>, String> {
    let err = |e: p12_keystore::error::Error| format!("cannot build the PFX: {e}");
    let mut certs = vec![p12_keystore::Certificate::from_der(&leaf.der).map_err(err)?];
    for c in chain {
        certs.push(p12_keystore::Certificate::from_der(&c.der).map_err(err)?);
    }
    let pkey = p12_keystore::PrivateKey::from_der(key.pkcs8_der()).map_err(err)?;
    // The local key id ties the key to its certificate: the thumbprint's bytes.
    let local_key_id = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &leaf.der)
        .as_ref()
        .to_vec();
    let alias = opts
        .friendly_name
        .clone()
        .unwrap_or_else(|| leaf.label().to_string());
    let mut store = KeyStore::new();
    store.add_entry(
        &alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, pkey, certs)),
    );
    let (enc, mac) = if opts.legacy {
        (
            EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
            MacAlgorithm::HmacSha1,
        )
    } else {
        (
            EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
            MacAlgorithm::HmacSha256,
        )
    };
    store
        .writer(password)
        .encryption_algorithm(enc)
        .mac_algorithm(mac)
        .encryption_iterations(10_000)
        .mac_iterations(10_000)
        .write()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::bundle::{Input, parse};

    #[test]
    fn a_built_pfx_parses_back_with_its_key_and_chain() {
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/fixtures/oauth1-openssl3.pfx"
        ))
        .unwrap();
        let e = parse(&Input {
            data: &data,
            key_file: None,
            password: Some("Passw0rd!"),
        })
        .unwrap()
        .entries
        .remove(0);
        for legacy in [false, true] {
            let pfx = build(
                &e.cert,
                &e.chain,
                e.key.as_ref().unwrap(),
                "s3cret",
                &PfxOptions {
                    legacy,
                    friendly_name: Some("x".into()),
                },
            )
            .unwrap();
            let back = parse(&Input {
                data: &pfx,
                key_file: None,
                password: Some("s3cret"),
            })
            .unwrap();
            let b = &back.entries[0];
            assert_eq!(b.cert.thumbprint, e.cert.thumbprint);
            assert_eq!(b.chain.len(), 2);
            assert_eq!(
                b.key.as_ref().unwrap().pkcs8_der(),
                e.key.as_ref().unwrap().pkcs8_der()
            );
            assert_eq!(b.friendly_name.as_deref(), Some("x"));
            assert!(
                parse(&Input {
                    data: &pfx,
                    key_file: None,
                    password: Some("wrong")
                })
                .is_err()
            );
        }
    }
}
