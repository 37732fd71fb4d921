//! PKCS#12 files protected by an *absent* password.
//!
//! PKCS#12 derives its MAC key (and the keys of its own PBE ciphers) from
//! the password as a NUL-terminated BMPString, so the empty password is two
//! zero bytes. An absent password (OpenSSL's `PKCS12_create(NULL, ...)`,
//! Windows exports "without a password") is zero bytes, which no string
//! can express. OpenSSL and python's `cryptography` try both when given an
//! empty password; p12-keystore only knows the first, so this module reads
//! the second: the MAC checked with the zero-length password, the safe
//! contents decrypted with it (PKCS#12 PBE with 3DES or RC2, or PBES2, where
//! absent and empty are the same bytes), and the certificate and key bags
//! collected as [`super::bundle`] expects them.
//!
//! The costs are bounded as [`kdf_within_limits`] says, like every other
//! password-based input.

use der::asn1::{AnyRef, BmpString, ObjectIdentifier, OctetStringRef};
use der::{Decode, Encode, Sequence};
use hmac::{KeyInit, Mac};
use pkcs12::kdf::{Pkcs12KeyType, derive_key};

use super::key::{KdfLimitError, PrivateKey, kdf_within_limits};
use super::x509::CertInfo;

/// At most this many MAC iterations (as p12-keystore allows).
pub const MAX_MAC_ITERATIONS: i64 = 1_000_000;

const OID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const OID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const OID_KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const OID_SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const OID_CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const OID_SAFE_CONTENTS_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.6");
const OID_X509_CERT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const OID_FRIENDLY_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.20");
const OID_PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
const OID_PBE_SHA1_3DES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.3");
const OID_PBE_SHA1_RC2_128: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.5");
const OID_PBE_SHA1_RC2_40: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.1.6");
const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// Why an absent-password file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AbsentError {
    /// The MAC does not verify with the absent password either.
    #[error("MAC mismatch")]
    Mac,
    #[error(transparent)]
    Limit(#[from] KdfLimitError),
    #[error("{0}")]
    Invalid(String),
}

fn bad(e: impl std::fmt::Display) -> AbsentError {
    AbsentError::Invalid(e.to_string())
}

#[derive(Sequence)]
struct Pfx<'a> {
    version: u8,
    auth_safe: ContentInfo<'a>,
    mac_data: Option<MacData<'a>>,
}

#[derive(Sequence)]
struct ContentInfo<'a> {
    content_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    content: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct AlgorithmIdentifier<'a> {
    oid: ObjectIdentifier,
    parameters: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct DigestInfo<'a> {
    algorithm: AlgorithmIdentifier<'a>,
    digest: &'a OctetStringRef,
}

#[derive(Sequence)]
struct MacData<'a> {
    mac: DigestInfo<'a>,
    salt: &'a OctetStringRef,
    #[asn1(default = "one")]
    iterations: i64,
}

fn one() -> i64 {
    1
}

#[derive(Sequence)]
struct EncryptedData<'a> {
    version: u8,
    content: EncryptedContentInfo<'a>,
}

#[derive(Sequence)]
struct EncryptedContentInfo<'a> {
    content_type: ObjectIdentifier,
    algorithm: AlgorithmIdentifier<'a>,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    encrypted: Option<&'a OctetStringRef>,
}

#[derive(Sequence)]
struct SafeBag<'a> {
    bag_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    value: AnyRef<'a>,
    /// SET OF Attribute, read by [`friendly_name`].
    attributes: Option<AnyRef<'a>>,
}

#[derive(Sequence)]
struct Attribute<'a> {
    oid: ObjectIdentifier,
    /// SET OF the attribute's values.
    values: AnyRef<'a>,
}

#[derive(Sequence)]
struct CertBag<'a> {
    cert_id: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    value: &'a OctetStringRef,
}

#[derive(Sequence)]
struct EncryptedPrivateKeyInfo<'a> {
    algorithm: AlgorithmIdentifier<'a>,
    data: &'a OctetStringRef,
}

#[derive(Sequence)]
struct PbeParams<'a> {
    salt: &'a OctetStringRef,
    iterations: i64,
}

/// What the file holds: certificates and keys, each with its friendly name.
pub type Contents = (
    Vec<(Option<String>, CertInfo)>,
    Vec<(Option<String>, PrivateKey)>,
);

/// Reads `data` as a PKCS#12 file whose password is absent. [`AbsentError::Mac`]
/// when its MAC does not verify that way (the password is something else).
pub fn read(data: &[u8]) -> Result<Contents, AbsentError> {
    let pfx = Pfx::from_der(data).map_err(bad)?;
    let mac = pfx.mac_data.ok_or_else(|| bad("no MAC"))?;
    let auth_safe = content_octets(&pfx.auth_safe)?;
    verify_mac(&mac, auth_safe)?;
    let mut out = (Vec::new(), Vec::new());
    let safe: Vec<ContentInfo<'_>> = Vec::from_der(auth_safe).map_err(bad)?;
    for info in safe {
        let contents = match info.content_type {
            OID_DATA => content_octets(&info)?.to_vec(),
            OID_ENCRYPTED_DATA => {
                let any = info
                    .content
                    .ok_or_else(|| bad("encrypted data without content"))?;
                let enc: EncryptedData<'_> = any.decode_as().map_err(bad)?;
                let _ = enc.version;
                let _ = enc.content.content_type;
                match enc.content.encrypted {
                    Some(c) => decrypt(&enc.content.algorithm, c.as_bytes())?,
                    None => continue,
                }
            }
            other => return Err(bad(format!("unsupported content type {other}"))),
        };
        read_bags(&contents, &mut out, 0)?;
    }
    Ok(out)
}

/// The OCTET STRING inside a `data` ContentInfo.
fn content_octets<'a>(info: &ContentInfo<'a>) -> Result<&'a [u8], AbsentError> {
    if info.content_type != OID_DATA {
        return Err(bad(format!(
            "content type {} is not data",
            info.content_type
        )));
    }
    let any = info.content.ok_or_else(|| bad("data without content"))?;
    let octets: &'a OctetStringRef = any.decode_as().map_err(bad)?;
    Ok(octets.as_bytes())
}

fn verify_mac(mac: &MacData<'_>, data: &[u8]) -> Result<(), AbsentError> {
    if !(1..=MAX_MAC_ITERATIONS).contains(&mac.iterations) {
        return Err(KdfLimitError::Iterations(mac.iterations).into());
    }
    let iterations = mac.iterations as i32;
    let salt = mac.salt.as_bytes();
    let expected = mac.mac.digest.as_bytes();
    macro_rules! check {
        ($d:ty) => {{
            let len = <$d as hmac::digest::OutputSizeUser>::output_size();
            let key = derive_key::<$d>(&[], salt, Pkcs12KeyType::Mac, iterations, len);
            let mut m = hmac::Hmac::<$d>::new_from_slice(&key).map_err(bad)?;
            m.update(data);
            m.verify_slice(expected).map_err(|_| AbsentError::Mac)
        }};
    }
    match mac.mac.algorithm.oid {
        OID_SHA1 => check!(sha1::Sha1),
        OID_SHA256 => check!(sha2::Sha256),
        OID_SHA384 => check!(sha2::Sha384),
        OID_SHA512 => check!(sha2::Sha512),
        other => Err(bad(format!("unsupported MAC digest {other}"))),
    }
}

/// Decrypts with the absent password.
fn decrypt(alg: &AlgorithmIdentifier<'_>, data: &[u8]) -> Result<Vec<u8>, AbsentError> {
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
    let params = alg
        .parameters
        .ok_or_else(|| bad("no encryption parameters"))?;
    let params_der = params.to_der().map_err(bad)?;
    if alg.oid == OID_PBES2 {
        let p = pkcs5::pbes2::Parameters::from_der(&params_der).map_err(bad)?;
        kdf_within_limits(&p)?;
        // PBES2 takes the password's UTF-8 bytes: absent and empty agree.
        return p.decrypt(b"", data).map_err(|_| AbsentError::Mac);
    }
    let pbe = PbeParams::from_der(&params_der).map_err(bad)?;
    if !(1..=MAX_MAC_ITERATIONS).contains(&pbe.iterations) {
        return Err(KdfLimitError::Iterations(pbe.iterations).into());
    }
    let (salt, rounds) = (pbe.salt.as_bytes(), pbe.iterations as i32);
    let key_len = match alg.oid {
        OID_PBE_SHA1_3DES => 24,
        OID_PBE_SHA1_RC2_128 => 16,
        OID_PBE_SHA1_RC2_40 => 5,
        other => return Err(bad(format!("unsupported encryption {other}"))),
    };
    let key = derive_key::<sha1::Sha1>(&[], salt, Pkcs12KeyType::EncryptionKey, rounds, key_len);
    let iv = derive_key::<sha1::Sha1>(&[], salt, Pkcs12KeyType::Iv, rounds, 8);
    let out = if alg.oid == OID_PBE_SHA1_3DES {
        cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(bad)?
            .decrypt_padded_vec::<Pkcs7>(data)
    } else {
        // RC2's effective key length is its key's (40 or 128 bits).
        cbc::Decryptor::<rc2::Rc2>::new_from_slices(&key, &iv)
            .map_err(bad)?
            .decrypt_padded_vec::<Pkcs7>(data)
    };
    out.map_err(|_| AbsentError::Mac)
}

fn read_bags(contents: &[u8], out: &mut Contents, depth: u8) -> Result<(), AbsentError> {
    if depth > 4 {
        return Err(bad("safe contents nested too deeply"));
    }
    let bags: Vec<SafeBag<'_>> = Vec::from_der(contents).map_err(bad)?;
    for bag in bags {
        let name = friendly_name(&bag);
        let value = bag.value.to_der().map_err(bad)?;
        match bag.bag_id {
            OID_CERT_BAG => {
                let cert = CertBag::from_der(&value).map_err(bad)?;
                if cert.cert_id == OID_X509_CERT {
                    let info = CertInfo::from_der(cert.value.as_bytes())
                        .map_err(|e| bad(format!("certificate: {e}")))?;
                    out.0.push((name, info));
                }
            }
            OID_KEY_BAG => {
                let key = PrivateKey::from_pkcs8_der(&value).map_err(bad)?;
                out.1.push((name, key));
            }
            OID_SHROUDED_KEY_BAG => {
                let enc = EncryptedPrivateKeyInfo::from_der(&value).map_err(bad)?;
                let plain = zeroize::Zeroizing::new(decrypt(&enc.algorithm, enc.data.as_bytes())?);
                let key = PrivateKey::from_pkcs8_der(&plain).map_err(bad)?;
                out.1.push((name, key));
            }
            OID_SAFE_CONTENTS_BAG => read_bags(&value, out, depth + 1)?,
            // CRL and secret bags carry nothing certroll imports.
            _ => {}
        }
    }
    Ok(())
}

fn friendly_name(bag: &SafeBag<'_>) -> Option<String> {
    use der::Reader;
    let mut attrs = der::SliceReader::new(bag.attributes?.value()).ok()?;
    while !attrs.is_finished() {
        let attr: Attribute<'_> = attrs.decode().ok()?;
        if attr.oid == OID_FRIENDLY_NAME {
            let mut values = der::SliceReader::new(attr.values.value()).ok()?;
            let bmp: BmpString = values.decode().ok()?;
            return Some(bmp.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn reads_absent_password_files_in_both_styles() {
        for file in ["oauth1-absent-aes.pfx", "oauth1-absent-3des.pfx"] {
            let (certs, keys) = read(&fixture(file)).unwrap();
            assert_eq!(certs.len(), 3, "{file}: the leaf and its chain");
            assert_eq!(keys.len(), 1, "{file}");
            let leaf = certs.iter().find(|(_, c)| keys[0].1.matches(c)).unwrap();
            assert_eq!(leaf.0.as_deref(), Some("absent"), "{file}");
        }
    }

    #[test]
    fn an_empty_or_real_password_is_not_absent() {
        assert_eq!(
            read(&fixture("oauth1-nopass.pfx")).unwrap_err(),
            AbsentError::Mac
        );
        assert_eq!(
            read(&fixture("oauth1-openssl3.pfx")).unwrap_err(),
            AbsentError::Mac
        );
        assert!(matches!(
            read(&fixture("truncated.pfx")).unwrap_err(),
            AbsentError::Invalid(_)
        ));
    }
}
