//! Private keys: PKCS#8 (plain or password-encrypted), PKCS#1
//! `RSA PRIVATE KEY` and SEC1 `EC PRIVATE KEY`, normalised to PKCS#8 DER,
//! with the public key derived from the private one so that a key can be
//! checked against a certificate.

use std::fmt;

use pkcs8::der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef};
use pkcs8::der::{Decode, Encode};
use pkcs8::{AlgorithmIdentifierRef, PrivateKeyInfoRef};
use zeroize::Zeroizing;

use super::x509::{CertInfo, Curve, KeyAlgorithm, PublicKeyMaterial, trim_be};

const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the private key is encrypted and needs a password")]
    PasswordRequired,
    #[error("wrong password for the encrypted private key")]
    WrongPassword,
    #[error("unreadable private key ({0})")]
    Invalid(String),
    #[error(
        "legacy OpenSSL-encrypted PEM key (Proc-Type header) is not supported; convert it with 'openssl pkcs8 -topk8'"
    )]
    LegacyEncrypted,
    #[error("unsupported private key algorithm {0}")]
    Unsupported(String),
}

/// The most work a password-based key derivation may cost, the same for
/// PFX files and encrypted PKCS#8 keys (p12-keystore's limits): at most
/// 1,000,000 PBKDF2 iterations; scrypt at most 1 GiB (128·N·r bytes) and
/// parallelism 16.
pub const MAX_KDF_ITERATIONS: u32 = 1_000_000;
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;
pub const MAX_SCRYPT_PARALLELISM: u16 = 16;

/// A key derivation that would cost more than certroll allows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KdfLimitError {
    #[error("its key derivation asks for {0} iterations, more than the 1,000,000 certroll allows")]
    Iterations(i64),
    #[error(
        "its scrypt key derivation (N={n}, r={r}, p={p}) needs more than the 1 GiB and parallelism 16 certroll allows"
    )]
    Scrypt { n: u64, r: u16, p: u16 },
}

/// Refuses PBES2 parameters whose key derivation costs more than the limits.
pub fn kdf_within_limits(params: &pkcs8::pkcs5::pbes2::Parameters) -> Result<(), KdfLimitError> {
    use pkcs8::pkcs5::pbes2::Kdf;
    match &params.kdf {
        Kdf::Pbkdf2(p) if p.iteration_count > MAX_KDF_ITERATIONS => {
            Err(KdfLimitError::Iterations(i64::from(p.iteration_count)))
        }
        Kdf::Scrypt(s) => {
            let memory = 128u64
                .checked_mul(s.cost_parameter)
                .and_then(|m| m.checked_mul(u64::from(s.block_size)));
            if s.parallelization > MAX_SCRYPT_PARALLELISM
                || memory.is_none_or(|m| m > MAX_SCRYPT_MEMORY)
            {
                Err(KdfLimitError::Scrypt {
                    n: s.cost_parameter,
                    r: s.block_size,
                    p: s.parallelization,
                })
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// A private key held as PKCS#8 DER. The bytes are wiped on drop and never
/// printed by `Debug`.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs8: Zeroizing<Vec<u8>>,
    pub algorithm: KeyAlgorithm,
    public: PublicKeyMaterial,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm)
            .field("pkcs8", &"<redacted>")
            .finish()
    }
}

fn invalid<E: fmt::Display>(e: E) -> KeyError {
    KeyError::Invalid(e.to_string())
}

impl PrivateKey {
    /// Parses an unencrypted PKCS#8 `PrivateKeyInfo`.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let info = PrivateKeyInfoRef::from_der(der).map_err(invalid)?;
        let oid = info.algorithm.oid;
        let key_bytes = info.private_key.as_bytes();
        let (algorithm, public) = if oid == OID_RSA || oid == OID_RSA_PSS {
            (KeyAlgorithm::Rsa, rsa_public(key_bytes)?)
        } else if oid == OID_EC {
            let curve_oid = info
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            ec_public(key_bytes, curve_oid)?
        } else if oid == OID_ED25519 {
            (KeyAlgorithm::Ed25519, ed25519_public(key_bytes)?)
        } else {
            return Err(KeyError::Unsupported(oid.to_string()));
        };
        Ok(PrivateKey {
            pkcs8: Zeroizing::new(der.to_vec()),
            algorithm,
            public,
        })
    }

    /// Decrypts a PKCS#8 `EncryptedPrivateKeyInfo` (PBES2 as OpenSSL 3 writes
    /// it) with `password`.
    pub fn from_encrypted_pkcs8_der(der: &[u8], password: &str) -> Result<PrivateKey, KeyError> {
        let enc = pkcs8::EncryptedPrivateKeyInfoRef::from_der(der).map_err(invalid)?;
        if let pkcs8::pkcs5::EncryptionScheme::Pbes2(params) = &enc.encryption_algorithm {
            kdf_within_limits(params).map_err(|e| KeyError::Invalid(e.to_string()))?;
        }
        let doc = enc.decrypt(password).map_err(|e| match e {
            pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::DecryptFailed) => {
                KeyError::WrongPassword
            }
            pkcs8::Error::EncryptedPrivateKey(other) => {
                KeyError::Unsupported(format!("key encryption ({other})"))
            }
            _ => KeyError::WrongPassword,
        })?;
        // A wrong password that happens to unpad correctly yields garbage.
        PrivateKey::from_pkcs8_der(doc.as_bytes()).map_err(|_| KeyError::WrongPassword)
    }

    /// Parses a PKCS#1 `RSAPrivateKey` and wraps it in PKCS#8.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        rsa_public(der)?;
        let null = AnyRef::from(pkcs8::der::asn1::Null);
        wrap_pkcs8(OID_RSA, Some(null), der)
    }

    /// Parses a SEC1 `ECPrivateKey` (which must name its curve) and wraps it in
    /// PKCS#8.
    pub fn from_sec1_der(der: &[u8]) -> Result<PrivateKey, KeyError> {
        let sec1 = sec1::EcPrivateKey::from_der(der).map_err(invalid)?;
        let curve = sec1
            .parameters
            .and_then(|p| p.named_curve())
            .ok_or_else(|| KeyError::Invalid("EC key without a named curve".into()))?;
        let curve_der = curve.to_der().map_err(invalid)?;
        let params = AnyRef::from_der(&curve_der).map_err(invalid)?;
        wrap_pkcs8(OID_EC, Some(params), der)
    }

    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Whether this key is the private half of `cert`'s public key.
    pub fn matches(&self, cert: &CertInfo) -> bool {
        public_keys_equal(&self.public, &cert.public_key)
    }

    /// The public half.
    pub fn public(&self) -> &PublicKeyMaterial {
        &self.public
    }

    /// Exact strength: bit length of the RSA modulus, or the curve's size.
    pub fn bits(&self) -> u32 {
        match &self.public {
            PublicKeyMaterial::Rsa { n, .. } => super::x509::bit_len(n),
            PublicKeyMaterial::Ec { curve, .. } => curve.bits(),
            PublicKeyMaterial::Ed25519(_) => 256,
            PublicKeyMaterial::Unsupported(_) => 0,
        }
    }

    /// [`PublicKeyMaterial::fingerprint`] of the public half.
    pub fn public_fingerprint(&self) -> Option<String> {
        self.public.fingerprint()
    }
}

impl PublicKeyMaterial {
    /// SHA-256 (upper-case hex) of a canonical form of the public key: the
    /// same for a private key and for every certificate issued for it, so
    /// that a CA's response can be matched to the request that made the
    /// key. EC points are taken uncompressed. `None` for keys certroll
    /// cannot compare.
    pub fn fingerprint(&self) -> Option<String> {
        let mut canon: Vec<u8> = Vec::new();
        match self {
            PublicKeyMaterial::Rsa { n, e } => {
                canon.extend_from_slice(b"rsa\0");
                canon.extend_from_slice(&(n.len() as u32).to_be_bytes());
                canon.extend_from_slice(n);
                canon.extend_from_slice(e);
            }
            PublicKeyMaterial::Ec { curve, point } => {
                let uncompressed = match curve {
                    Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
                        .ok()?
                        .to_sec1_bytes()
                        .into_vec(),
                    Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
                        .ok()?
                        .to_sec1_bytes()
                        .into_vec(),
                    _ => point.clone(),
                };
                canon.extend_from_slice(b"ec\0");
                canon.extend_from_slice(curve.name().as_bytes());
                canon.push(0);
                canon.extend_from_slice(&uncompressed);
            }
            PublicKeyMaterial::Ed25519(k) => {
                canon.extend_from_slice(b"ed25519\0");
                canon.extend_from_slice(k);
            }
            PublicKeyMaterial::Unsupported(_) => return None,
        }
        Some(super::x509::sha256_hex(&canon))
    }
}

fn wrap_pkcs8(
    oid: ObjectIdentifier,
    parameters: Option<AnyRef<'_>>,
    key: &[u8],
) -> Result<PrivateKey, KeyError> {
    let info = PrivateKeyInfoRef::new(
        AlgorithmIdentifierRef { oid, parameters },
        OctetStringRef::new(key).map_err(invalid)?,
    );
    let der = Zeroizing::new(info.to_der().map_err(invalid)?);
    PrivateKey::from_pkcs8_der(&der)
}

fn rsa_public(pkcs1: &[u8]) -> Result<PublicKeyMaterial, KeyError> {
    let rsa = pkcs1::RsaPrivateKeyRef::try_from(pkcs1).map_err(invalid)?;
    Ok(PublicKeyMaterial::Rsa {
        n: trim_be(rsa.modulus.as_bytes()).to_vec(),
        e: trim_be(rsa.public_exponent.as_bytes()).to_vec(),
    })
}

fn ec_public(
    sec1_der: &[u8],
    outer_curve: Option<ObjectIdentifier>,
) -> Result<(KeyAlgorithm, PublicKeyMaterial), KeyError> {
    let sec1 = sec1::EcPrivateKey::from_der(sec1_der).map_err(invalid)?;
    let curve_oid = outer_curve
        .or_else(|| sec1.parameters.and_then(|p| p.named_curve()))
        .ok_or_else(|| KeyError::Invalid("EC key without a named curve".into()))?;
    let curve = Curve::from_oid(&curve_oid.to_string())
        .ok_or_else(|| KeyError::Unsupported(format!("EC curve {curve_oid}")))?;
    let derived: Option<Vec<u8>> = match curve {
        Curve::P256 => Some(
            p256::SecretKey::from_slice(sec1.private_key)
                .map_err(|_| KeyError::Invalid("bad P-256 scalar".into()))?
                .public_key()
                .to_sec1_bytes()
                .into_vec(),
        ),
        Curve::P384 => Some(
            p384::SecretKey::from_slice(sec1.private_key)
                .map_err(|_| KeyError::Invalid("bad P-384 scalar".into()))?
                .public_key()
                .to_sec1_bytes()
                .into_vec(),
        ),
        _ => None,
    };
    // Curves certroll has no arithmetic for fall back to the public key the
    // file carries next to the private one.
    let point = derived
        .or_else(|| sec1.public_key.map(<[u8]>::to_vec))
        .ok_or_else(|| {
            KeyError::Unsupported(format!("EC curve {} without its public key", curve.name()))
        })?;
    Ok((
        KeyAlgorithm::Ec(curve),
        PublicKeyMaterial::Ec { curve, point },
    ))
}

fn ed25519_public(key: &[u8]) -> Result<PublicKeyMaterial, KeyError> {
    let seed = <&OctetStringRef>::from_der(key).map_err(invalid)?;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_bytes())
        .map_err(|_| KeyError::Invalid("bad Ed25519 seed".into()))?;
    use ring::signature::KeyPair;
    Ok(PublicKeyMaterial::Ed25519(
        pair.public_key().as_ref().to_vec(),
    ))
}

/// Compares public keys; EC points are compared as points, whichever SEC1
/// encoding (compressed or not) each side uses.
fn public_keys_equal(a: &PublicKeyMaterial, b: &PublicKeyMaterial) -> bool {
    match (a, b) {
        (
            PublicKeyMaterial::Ec {
                curve: ca,
                point: pa,
            },
            PublicKeyMaterial::Ec {
                curve: cb,
                point: pb,
            },
        ) => {
            if ca != cb {
                return false;
            }
            match ca {
                Curve::P256 => ec_eq_p256(pa, pb),
                Curve::P384 => ec_eq_p384(pa, pb),
                _ => pa == pb,
            }
        }
        (PublicKeyMaterial::Unsupported(_), _) | (_, PublicKeyMaterial::Unsupported(_)) => false,
        (a, b) => a == b,
    }
}

fn ec_eq_p256(a: &[u8], b: &[u8]) -> bool {
    match (
        p256::PublicKey::from_sec1_bytes(a),
        p256::PublicKey::from_sec1_bytes(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn ec_eq_p384(a: &[u8], b: &[u8]) -> bool {
    match (
        p384::PublicKey::from_sec1_bytes(a),
        p384::PublicKey::from_sec1_bytes(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_keys_are_clean_errors() {
        assert!(PrivateKey::from_pkcs8_der(b"not a key").is_err());
        assert!(PrivateKey::from_pkcs1_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(PrivateKey::from_sec1_der(&[]).is_err());
        assert!(PrivateKey::from_encrypted_pkcs8_der(&[0x30, 0x00], "x").is_err());
    }

    /// The limits are checked on the parameters, before any work: an
    /// encrypted key asking for scrypt with 16 GiB, or parallelism 64, is
    /// refused as fast as one with too many PBKDF2 iterations.
    #[test]
    fn key_derivation_beyond_the_limits_is_refused_before_any_work() {
        use pkcs8::pkcs5::pbes2::{EncryptionScheme, Kdf, Parameters, Pbkdf2Params, ScryptParams};
        let salt = pkcs8::pkcs5::pbes2::Salt::new([7u8; 16]).unwrap();
        let scrypt = |n: u64, r: u16, p: u16| Parameters {
            kdf: Kdf::Scrypt(ScryptParams {
                salt,
                cost_parameter: n,
                block_size: r,
                parallelization: p,
                key_length: None,
            }),
            encryption: EncryptionScheme::Aes256Cbc { iv: [0; 16] },
        };
        assert_eq!(kdf_within_limits(&scrypt(16_384, 8, 1)), Ok(()));
        assert_eq!(kdf_within_limits(&scrypt(1 << 20, 8, 1)), Ok(()));
        for (n, r, p) in [
            (1 << 24, 8, 1),
            (1 << 20, 16, 1),
            (16_384, 8, 64),
            (u64::MAX, 8, 1),
        ] {
            assert_eq!(
                kdf_within_limits(&scrypt(n, r, p)),
                Err(KdfLimitError::Scrypt { n, r, p })
            );
        }
        let mut pbkdf2 = Pbkdf2Params::hmac_sha256(1_000_000, &[7u8; 16]).unwrap();
        let params = |p: &Pbkdf2Params| Parameters {
            kdf: Kdf::Pbkdf2(*p),
            encryption: EncryptionScheme::Aes256Cbc { iv: [0; 16] },
        };
        assert_eq!(kdf_within_limits(&params(&pbkdf2)), Ok(()));
        pbkdf2.iteration_count = 1_000_001;
        assert_eq!(
            kdf_within_limits(&params(&pbkdf2)),
            Err(KdfLimitError::Iterations(1_000_001))
        );
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        // A P-256 key made for this test (scalar 1 is a valid, if silly, key).
        let mut scalar = [0u8; 32];
        scalar[31] = 1;
        let sec1 = sec1::EcPrivateKey {
            private_key: &scalar,
            parameters: Some(sec1::EcParameters::NamedCurve(
                ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"),
            )),
            public_key: None,
        }
        .to_der()
        .unwrap();
        let key = PrivateKey::from_sec1_der(&sec1).unwrap();
        assert_eq!(key.algorithm, KeyAlgorithm::Ec(Curve::P256));
        assert!(format!("{key:?}").contains("redacted"));
        // The generator point G is the public key of scalar 1.
        let g = PublicKeyMaterial::Ec {
            curve: Curve::P256,
            point: p256::PublicKey::from_secret_scalar(
                &p256::NonZeroScalar::try_from(&scalar[..]).unwrap(),
            )
            .to_sec1_bytes()
            .into_vec(),
        };
        assert!(public_keys_equal(&key.public, &g));
    }
}
