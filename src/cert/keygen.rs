//! New key pairs for certificate requests: RSA with the `rsa` crate (ring
//! signs with RSA keys but cannot generate them), EC P-256/P-384 with ring
//! (through rcgen). This is the one place in `cert` that reads the
//! operating system's random generator; nothing else here does I/O.

use std::fmt;
use std::str::FromStr;

use rsa::pkcs8::EncodePrivateKey;

use super::key::{KeyError, PrivateKey};
use super::x509::{Curve, KeyAlgorithm};

/// The key types a request may ask for (`--key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    Rsa(u32),
    EcP256,
    EcP384,
}

impl KeySpec {
    pub const NAMES: [&'static str; 5] = ["rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384"];

    pub fn algorithm(self) -> KeyAlgorithm {
        match self {
            KeySpec::Rsa(_) => KeyAlgorithm::Rsa,
            KeySpec::EcP256 => KeyAlgorithm::Ec(Curve::P256),
            KeySpec::EcP384 => KeyAlgorithm::Ec(Curve::P384),
        }
    }

    /// Modulus bits, or the curve's size.
    pub fn bits(self) -> u32 {
        match self {
            KeySpec::Rsa(b) => b,
            KeySpec::EcP256 => 256,
            KeySpec::EcP384 => 384,
        }
    }

    /// The signature algorithm rcgen signs with for this key.
    pub fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeySpec::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
            KeySpec::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeySpec::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySpec::Rsa(b) => write!(f, "RSA {b}"),
            KeySpec::EcP256 => f.write_str("EC P-256"),
            KeySpec::EcP384 => f.write_str("EC P-384"),
        }
    }
}

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "rsa2048" | "rsa" => KeySpec::Rsa(2048),
            "rsa3072" => KeySpec::Rsa(3072),
            "rsa4096" => KeySpec::Rsa(4096),
            "ec-p256" | "p256" | "ec" => KeySpec::EcP256,
            "ec-p384" | "p384" => KeySpec::EcP384,
            _ => {
                return Err(format!(
                    "unknown key type '{s}': use {}",
                    KeySpec::NAMES.join(", ")
                ));
            }
        })
    }
}

/// Generates a new private key.
pub fn generate(spec: KeySpec) -> Result<PrivateKey, KeyError> {
    let pkcs8 = match spec {
        KeySpec::Rsa(bits) => {
            let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits as usize)
                .map_err(|e| KeyError::Invalid(format!("RSA key generation failed ({e})")))?;
            let doc = key
                .to_pkcs8_der()
                .map_err(|e| KeyError::Invalid(format!("RSA key encoding failed ({e})")))?;
            zeroize::Zeroizing::new(doc.as_bytes().to_vec())
        }
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let pair = rcgen::KeyPair::generate_for(spec.signature_algorithm())
                .map_err(|e| KeyError::Invalid(format!("EC key generation failed ({e})")))?;
            zeroize::Zeroizing::new(pair.serialize_der())
        }
    };
    PrivateKey::from_pkcs8_der(&pkcs8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_every_key_type_with_its_exact_size() {
        for name in KeySpec::NAMES {
            let spec: KeySpec = name.parse().unwrap();
            // 4096-bit generation is the slow one; 2048 and 3072 cover RSA.
            if spec == KeySpec::Rsa(4096) {
                continue;
            }
            let key = generate(spec).unwrap();
            assert_eq!(key.algorithm, spec.algorithm(), "{name}");
            assert_eq!(key.bits(), spec.bits(), "{name}");
        }
        assert!(
            "dsa1024"
                .parse::<KeySpec>()
                .unwrap_err()
                .contains("rsa2048, rsa3072")
        );
    }

    #[test]
    fn two_keys_differ() {
        let a = generate(KeySpec::EcP256).unwrap();
        let b = generate(KeySpec::EcP256).unwrap();
        assert_ne!(a.public_fingerprint(), b.public_fingerprint());
    }
}
