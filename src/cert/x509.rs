//! One X.509 certificate, parsed into the facts certroll stores, prints and
//! checks policy against: thumbprints, names, validity, key algorithm and its
//! exact strength, signature algorithm, extended key usages.

use std::fmt;

use chrono::{DateTime, Utc};
use ring::digest;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey as ParsedKey;

/// Algorithm and exact strength of a certificate's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa,
    Ec(Curve),
    Ed25519,
    Ed448,
    Dsa,
    Other(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    Secp256k1,
}

impl Curve {
    pub(crate) fn from_oid(oid: &str) -> Option<Curve> {
        match oid {
            "1.2.840.10045.3.1.7" => Some(Curve::P256),
            "1.3.132.0.34" => Some(Curve::P384),
            "1.3.132.0.35" => Some(Curve::P521),
            "1.3.132.0.10" => Some(Curve::Secp256k1),
            _ => None,
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            Curve::P256 | Curve::Secp256k1 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Secp256k1 => "secp256k1",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::Rsa => f.write_str("RSA"),
            KeyAlgorithm::Ec(c) => write!(f, "EC {}", c.name()),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
            KeyAlgorithm::Ed448 => f.write_str("Ed448"),
            KeyAlgorithm::Dsa => f.write_str("DSA"),
            KeyAlgorithm::Other(oid) => write!(f, "unknown ({oid})"),
        }
    }
}

/// The public key in a form that can be compared with one derived from a
/// private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKeyMaterial {
    /// Modulus and exponent, big-endian without leading zero bytes.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// SEC1 point as found in the certificate (compressed or not).
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
    /// An algorithm certroll cannot check a private key against.
    Unsupported(String),
}

/// Extended key usages: `None` when the certificate has no EKU extension
/// (which RFC 5280 reads as "any usage").
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ekus {
    pub oids: Vec<String>,
}

pub const EKU_ANY: &str = "2.5.29.37.0";
pub const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
pub const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// Maps the usual EKU names to their OIDs; a dotted OID passes through.
pub fn eku_oid(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "serverauth" => EKU_SERVER_AUTH,
        "clientauth" => EKU_CLIENT_AUTH,
        "codesigning" => "1.3.6.1.5.5.7.3.3",
        "emailprotection" => "1.3.6.1.5.5.7.3.4",
        "timestamping" => "1.3.6.1.5.5.7.3.8",
        "ocspsigning" => "1.3.6.1.5.5.7.3.9",
        "any" | "anyextendedkeyusage" => EKU_ANY,
        _ => return None,
    })
}

/// A parsed certificate. Everything here is derived from `der`.
#[derive(Clone, Debug)]
pub struct CertInfo {
    pub der: Vec<u8>,
    /// SHA-1 of the DER, upper-case hex, as Windows shows it.
    pub thumbprint: String,
    /// SHA-256 of the DER, upper-case hex.
    pub sha256: String,
    pub subject: String,
    pub subject_cn: Option<String>,
    pub issuer: String,
    /// DNS names of the subject alternative name extension.
    pub sans: Vec<String>,
    /// Serial number, upper-case hex.
    pub serial: String,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub key_algorithm: KeyAlgorithm,
    /// Exact key strength: bit length of the RSA modulus, or the curve size.
    pub key_bits: u32,
    pub public_key: PublicKeyMaterial,
    pub signature_algorithm: String,
    pub ekus: Option<Ekus>,
    pub is_ca: bool,
    pub(crate) subject_raw: Vec<u8>,
    pub(crate) issuer_raw: Vec<u8>,
    pub(crate) subject_key_id: Option<Vec<u8>>,
    pub(crate) authority_key_id: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("not a valid X.509 certificate ({0})")]
    Invalid(String),
    #[error("trailing data after the certificate")]
    Trailing,
}

pub fn sha1_hex(bytes: &[u8]) -> String {
    hex_upper(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, bytes).as_ref())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_upper(digest::digest(&digest::SHA256, bytes).as_ref())
}

pub fn hex_upper(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

/// Strips leading zero bytes of a big-endian integer.
pub(crate) fn trim_be(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

pub(crate) fn bit_len(be: &[u8]) -> u32 {
    let be = trim_be(be);
    match be.first() {
        None => 0,
        Some(first) => (be.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
    }
}

fn to_utc(t: &ASN1Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10040.4.3" => "dsa-with-SHA1",
        "1.3.101.112" => "Ed25519",
        "1.3.101.113" => "Ed448",
        other => return other.to_string(),
    }
    .to_string()
}

/// The name of an extended key usage OID (serverAuth, ...), else the OID.
pub fn eku_name(oid: &str) -> String {
    match oid {
        "1.3.6.1.5.5.7.3.1" => "serverAuth".into(),
        "1.3.6.1.5.5.7.3.2" => "clientAuth".into(),
        "1.3.6.1.5.5.7.3.3" => "codeSigning".into(),
        "1.3.6.1.5.5.7.3.4" => "emailProtection".into(),
        "1.3.6.1.5.5.7.3.8" => "timeStamping".into(),
        "1.3.6.1.5.5.7.3.9" => "ocspSigning".into(),
        other => other.to_string(),
    }
}

/// Whether a signature algorithm name uses SHA-1 (or worse, MD5).
pub fn is_weak_signature(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("sha1") || n.starts_with("md5") || n.contains("md2")
}

impl CertInfo {
    /// Parses exactly one DER certificate (no trailing bytes).
    pub fn from_der(der: &[u8]) -> Result<CertInfo, CertError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| CertError::Invalid(short_err(&e)))?;
        if !rest.is_empty() {
            return Err(CertError::Trailing);
        }
        Self::from_parsed(&der[..der.len() - rest.len()], &cert)
    }

    fn from_parsed(der: &[u8], cert: &X509Certificate<'_>) -> Result<CertInfo, CertError> {
        let invalid = |what: &str| CertError::Invalid(what.to_string());
        let spki = cert.public_key();
        let alg_oid = spki.algorithm.algorithm.to_id_string();
        let (key_algorithm, key_bits, public_key) = match alg_oid.as_str() {
            "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => match spki.parsed() {
                Ok(ParsedKey::RSA(rsa)) => {
                    let n = trim_be(rsa.modulus).to_vec();
                    let e = trim_be(rsa.exponent).to_vec();
                    (
                        KeyAlgorithm::Rsa,
                        bit_len(&n),
                        PublicKeyMaterial::Rsa { n, e },
                    )
                }
                _ => return Err(invalid("unreadable RSA public key")),
            },
            "1.2.840.10045.2.1" => {
                let curve_oid = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.clone().oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_default();
                match Curve::from_oid(&curve_oid) {
                    Some(curve) => (
                        KeyAlgorithm::Ec(curve),
                        curve.bits(),
                        PublicKeyMaterial::Ec {
                            curve,
                            point: spki.subject_public_key.data.to_vec(),
                        },
                    ),
                    None => (
                        KeyAlgorithm::Other(format!("EC curve {curve_oid}")),
                        0,
                        PublicKeyMaterial::Unsupported(format!("EC curve {curve_oid}")),
                    ),
                }
            }
            "1.3.101.112" => (
                KeyAlgorithm::Ed25519,
                256,
                PublicKeyMaterial::Ed25519(spki.subject_public_key.data.to_vec()),
            ),
            "1.3.101.113" => (
                KeyAlgorithm::Ed448,
                456,
                PublicKeyMaterial::Unsupported("Ed448".into()),
            ),
            "1.2.840.10040.4.1" => {
                let bits = match spki.parsed() {
                    Ok(ParsedKey::DSA(y)) => bit_len(y),
                    _ => 0,
                };
                (
                    KeyAlgorithm::Dsa,
                    bits,
                    PublicKeyMaterial::Unsupported("DSA".into()),
                )
            }
            other => (
                KeyAlgorithm::Other(other.to_string()),
                0,
                PublicKeyMaterial::Unsupported(other.to_string()),
            ),
        };

        let mut sans = Vec::new();
        let mut ekus = None;
        let mut is_ca = false;
        let mut subject_key_id = None;
        let mut authority_key_id = None;
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for name in &san.general_names {
                        if let GeneralName::DNSName(dns) = name {
                            sans.push(dns.to_string());
                        }
                    }
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    let mut oids = Vec::new();
                    let known = [
                        (eku.any, EKU_ANY),
                        (eku.server_auth, EKU_SERVER_AUTH),
                        (eku.client_auth, EKU_CLIENT_AUTH),
                        (eku.code_signing, "1.3.6.1.5.5.7.3.3"),
                        (eku.email_protection, "1.3.6.1.5.5.7.3.4"),
                        (eku.time_stamping, "1.3.6.1.5.5.7.3.8"),
                        (eku.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
                    ];
                    oids.extend(
                        known
                            .iter()
                            .filter(|(on, _)| *on)
                            .map(|(_, o)| o.to_string()),
                    );
                    oids.extend(eku.other.iter().map(|o| o.to_id_string()));
                    ekus = Some(Ekus { oids });
                }
                ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
                ParsedExtension::SubjectKeyIdentifier(kid) => subject_key_id = Some(kid.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => {}
            }
        }

        Ok(CertInfo {
            der: der.to_vec(),
            thumbprint: sha1_hex(der),
            sha256: sha256_hex(der),
            subject: cert.subject().to_string(),
            subject_cn: cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string),
            issuer: cert.issuer().to_string(),
            sans,
            serial: hex_upper(cert.raw_serial()),
            not_before: to_utc(&cert.validity().not_before),
            not_after: to_utc(&cert.validity().not_after),
            key_algorithm,
            key_bits,
            public_key,
            signature_algorithm: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
            ekus,
            is_ca,
            subject_raw: cert.subject().as_raw().to_vec(),
            issuer_raw: cert.issuer().as_raw().to_vec(),
            subject_key_id,
            authority_key_id,
        })
    }

    /// Subject CN and SAN DNS names: the names a TLS client would check.
    pub fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.subject_cn
            .iter()
            .map(String::as_str)
            .chain(self.sans.iter().map(String::as_str))
    }

    pub fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// Whether `issuer` is a plausible issuer of `self` (names match, and the
    /// key identifiers too when both are present).
    pub fn issued_by(&self, issuer: &CertInfo) -> bool {
        if self.issuer_raw != issuer.subject_raw {
            return false;
        }
        match (&self.authority_key_id, &issuer.subject_key_id) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => true,
        }
    }

    /// A short human label: the CN if any, else the whole subject.
    pub fn label(&self) -> &str {
        self.subject_cn.as_deref().unwrap_or(&self.subject)
    }

    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Splits a concatenation of DER certificates (as the store keeps a chain).
pub fn split_der_certs(mut bytes: &[u8]) -> Result<Vec<CertInfo>, CertError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (rest, cert) =
            X509Certificate::from_der(bytes).map_err(|e| CertError::Invalid(short_err(&e)))?;
        let used = bytes.len() - rest.len();
        out.push(CertInfo::from_parsed(&bytes[..used], &cert)?);
        bytes = rest;
    }
    Ok(out)
}

fn short_err<E: fmt::Display>(e: &E) -> String {
    let s = e.to_string();
    let s = s.trim_start_matches("Parsing Error: ");
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_length_is_exact() {
        assert_eq!(bit_len(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(bit_len(&[0x7f, 0xff]), 15);
        assert_eq!(bit_len(&[0x01]), 1);
        assert_eq!(bit_len(&[0x00]), 0);
        assert_eq!(bit_len(&[]), 0);
    }

    #[test]
    fn weak_signatures_are_recognised() {
        assert!(is_weak_signature("sha1WithRSAEncryption"));
        assert!(is_weak_signature("ecdsa-with-SHA1"));
        assert!(is_weak_signature("md5WithRSAEncryption"));
        assert!(!is_weak_signature("sha256WithRSAEncryption"));
    }

    #[test]
    fn garbage_is_a_clean_error() {
        assert!(CertInfo::from_der(b"").is_err());
        assert!(CertInfo::from_der(&[0x30, 0x82, 0xff, 0xff, 0x01]).is_err());
    }
}
