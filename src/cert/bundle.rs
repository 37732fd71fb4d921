//! Import: the bytes of a PKCS#12/PFX, PEM or DER file (and an optional
//! separate key file) turned into candidate entries, each a certificate with
//! its ordered chain and, when present, its matching private key.
//!
//! Nothing here picks silently: a file with several private keys yields
//! several entries and [`select`] chooses one only when exactly one fits, or
//! when the operator named it.

use std::fmt;

use p12_keystore::Pkcs12Archive;
use pkcs8::der::{self, Decode};

use super::key::{KeyError, PrivateKey};
use super::p12_absent::{self, AbsentError};
use super::pem::{self, PemError};
use super::x509::{CertError, CertInfo};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    Pkcs12,
    Pkcs7,
    Pem,
    Der,
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceFormat::Pkcs12 => "PKCS#12",
            SourceFormat::Pkcs7 => "PKCS#7",
            SourceFormat::Pem => "PEM",
            SourceFormat::Der => "DER",
        })
    }
}

/// One certificate offered by the file, with what belongs to it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The PKCS#12 friendly name, if the file carried one.
    pub friendly_name: Option<String>,
    pub cert: CertInfo,
    /// The issuers of `cert`, nearest first.
    pub chain: Vec<CertInfo>,
    pub key: Option<PrivateKey>,
}

impl Entry {
    /// How the entry is named in messages: its friendly name, else its CN.
    pub fn describe(&self) -> String {
        match &self.friendly_name {
            Some(n) => format!(
                "'{n}' ({}, {})",
                self.cert.label(),
                &self.cert.thumbprint[..8]
            ),
            None => format!("{} ({})", self.cert.label(), &self.cert.thumbprint[..8]),
        }
    }
}

#[derive(Debug)]
pub struct Parsed {
    pub format: SourceFormat,
    pub entries: Vec<Entry>,
    /// Things the operator should know that do not stop the import.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("the file is empty")]
    Empty,
    #[error("not a certificate, PKCS#12/PFX or PEM file")]
    NotRecognised,
    #[error(
        "the PFX is protected by a password: give it with --password-file, --password-env or --password-stdin"
    )]
    PasswordRequired,
    #[error("wrong password or corrupt file (MAC check failed)")]
    WrongPassword,
    #[error(
        "the PFX has no MAC, so its integrity cannot be checked; export it again with a password"
    )]
    NoMac,
    #[error("corrupt or truncated PKCS#12 file ({0})")]
    Pkcs12(String),
    #[error("corrupt or truncated certificate ({0})")]
    Der(String),
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("{0}")]
    KeyFile(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("no certificate in the file")]
    NoCertificate,
    #[error(
        "holds a private key but no certificate: give the certificate with --path and this file with --key"
    )]
    KeyOnly,
    #[error("the private key does not match the certificate {0}")]
    KeyMismatch(String),
    #[error("holds a private key that matches none of its certificates")]
    OrphanKey,
}

impl From<CertError> for ImportError {
    fn from(e: CertError) -> Self {
        ImportError::Der(e.to_string())
    }
}

/// What to parse. `password` is `None` when the operator gave none: an
/// encrypted file is then tried with the empty password, and
/// [`ImportError::PasswordRequired`] tells the caller to ask for one.
pub struct Input<'a> {
    pub data: &'a [u8],
    pub key_file: Option<&'a [u8]>,
    pub password: Option<&'a str>,
}

/// What kind of DER the bytes hold, judged from the first tags only, so a
/// truncated file still gets a precise message.
#[derive(Debug, PartialEq, Eq)]
enum DerKind {
    Pkcs12,
    /// A PKCS#7/CMS ContentInfo (a CA's `.p7b` response): it opens with
    /// its content type's OID.
    Pkcs7,
    Certificate,
    PrivateKey,
    Unknown,
}

fn sniff_der(data: &[u8]) -> DerKind {
    if data.first() != Some(&0x30) || data.len() < 2 {
        return DerKind::Unknown;
    }
    let len_bytes = match data[1] {
        b if b < 0x80 => 0,
        0x80 => 0, // BER indefinite length
        b @ 0x81..=0x84 => (b - 0x80) as usize,
        _ => return DerKind::Unknown,
    };
    let inner = 2 + len_bytes;
    match (data.get(inner), data.get(inner + 1), data.get(inner + 2)) {
        (Some(0x02), Some(0x01), Some(0x03)) => DerKind::Pkcs12,
        // PKCS#8, PKCS#1 and SEC1 keys start with version 0 or 1.
        (Some(0x02), Some(0x01), Some(0x00 | 0x01)) => DerKind::PrivateKey,
        (Some(0x30), _, _) => DerKind::Certificate,
        (Some(0x06), _, _) => DerKind::Pkcs7,
        (Some(0x02), _, _) => DerKind::Pkcs12,
        _ => DerKind::Unknown,
    }
}

/// The outer PFX structure, decoded only to learn whether it has a MAC.
#[derive(der::Sequence)]
struct PfxOuter<'a> {
    version: u8,
    auth_safe: der::asn1::AnyRef<'a>,
    mac_data: Option<der::asn1::AnyRef<'a>>,
}

/// Parses the file (and key file) into candidate entries.
pub fn parse(input: &Input<'_>) -> Result<Parsed, ImportError> {
    if input.data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ImportError::Empty);
    }
    let mut notes = Vec::new();
    let (format, certs, mut keys, pem_order) = if pem::looks_like_pem(input.data) {
        let (certs, keys) = read_pem(input.data, input.password)?;
        if certs.is_empty() && keys.is_empty() {
            return Err(ImportError::NotRecognised);
        }
        let order: Vec<String> = certs.iter().map(|(_, c)| c.thumbprint.clone()).collect();
        let format = if String::from_utf8_lossy(input.data).contains("-----BEGIN PKCS7-----") {
            SourceFormat::Pkcs7
        } else {
            SourceFormat::Pem
        };
        (format, certs, keys, Some(order))
    } else {
        match sniff_der(input.data) {
            DerKind::Pkcs12 => {
                let (certs, keys) = read_pkcs12(input.data, input.password)?;
                (SourceFormat::Pkcs12, certs, keys, None)
            }
            DerKind::Certificate => {
                let cert = CertInfo::from_der(input.data)?;
                (SourceFormat::Der, vec![(None, cert)], Vec::new(), None)
            }
            DerKind::Pkcs7 => {
                let certs = read_pkcs7(input.data)?;
                (SourceFormat::Pkcs7, certs, Vec::new(), None)
            }
            DerKind::PrivateKey => return Err(ImportError::KeyOnly),
            DerKind::Unknown => return Err(ImportError::NotRecognised),
        }
    };
    if let Some(key_data) = input.key_file {
        // Errors name the key file, except the one that asks for a password.
        let key_keys = read_key_file(key_data, input.password).map_err(|e| match e {
            ImportError::Key(KeyError::PasswordRequired) | ImportError::KeyFile(_) => e,
            other => ImportError::KeyFile(other.to_string()),
        })?;
        keys.extend(key_keys);
    }
    if certs.is_empty() {
        return Err(if keys.is_empty() {
            ImportError::NoCertificate
        } else {
            ImportError::KeyOnly
        });
    }

    // Every certificate once, in file order.
    let mut pool: Vec<(Option<String>, CertInfo)> = Vec::new();
    for (name, cert) in certs {
        if !pool.iter().any(|(_, c)| c.thumbprint == cert.thumbprint) {
            pool.push((name, cert));
        }
    }

    let mut entries = Vec::new();
    if keys.is_empty() {
        // No key: the candidates are the certificates that issue no other.
        for (name, cert) in &pool {
            let issues_another = pool
                .iter()
                .any(|(_, other)| other.thumbprint != cert.thumbprint && other.issued_by(cert));
            if !issues_another {
                entries.push(make_entry(name.clone(), cert, &pool, None));
            }
        }
        if entries.is_empty() {
            // A cycle of cross-signed certificates: offer them all.
            for (name, cert) in &pool {
                entries.push(make_entry(name.clone(), cert, &pool, None));
            }
        }
    } else {
        for (key_name, key) in keys {
            let matching: Vec<&(Option<String>, CertInfo)> =
                pool.iter().filter(|(_, c)| key.matches(c)).collect();
            if matching.is_empty() {
                return Err(if pool.len() == 1 || input.key_file.is_some() {
                    ImportError::KeyMismatch(pool[0].1.label().to_string())
                } else {
                    ImportError::OrphanKey
                });
            }
            for (cert_name, cert) in matching {
                let name = key_name.clone().or_else(|| cert_name.clone());
                entries.push(make_entry(name, cert, &pool, Some(key.clone())));
            }
        }
    }

    // Which certificates did not end up in any entry?
    let used = |t: &str| {
        entries
            .iter()
            .any(|e| e.cert.thumbprint == t || e.chain.iter().any(|c| c.thumbprint == t))
    };
    let unused = pool.iter().filter(|(_, c)| !used(&c.thumbprint)).count();
    if unused > 0 {
        notes.push(format!(
            "ignored {unused} certificate(s) that are not in the chain of the imported certificate"
        ));
    }
    if let (Some(order), [entry]) = (pem_order, entries.as_slice()) {
        let mut wanted = vec![entry.cert.thumbprint.clone()];
        wanted.extend(entry.chain.iter().map(|c| c.thumbprint.clone()));
        let given: Vec<String> = order.into_iter().filter(|t| wanted.contains(t)).collect();
        if given != wanted {
            notes.push("chain reordered leaf first".to_string());
        }
    }
    Ok(Parsed {
        format,
        entries,
        notes,
    })
}

fn make_entry(
    friendly_name: Option<String>,
    leaf: &CertInfo,
    pool: &[(Option<String>, CertInfo)],
    key: Option<PrivateKey>,
) -> Entry {
    Entry {
        friendly_name,
        cert: leaf.clone(),
        chain: build_chain(leaf, pool.iter().map(|(_, c)| c)),
        key,
    }
}

/// Follows issuers from `leaf` through `pool`, nearest first, stopping at a
/// self-issued certificate or when no issuer is found.
pub fn build_chain<'a>(
    leaf: &CertInfo,
    pool: impl Iterator<Item = &'a CertInfo> + Clone,
) -> Vec<CertInfo> {
    let mut chain: Vec<CertInfo> = Vec::new();
    let mut current = leaf;
    while !current.is_self_issued() {
        let next = pool.clone().find(|c| {
            c.thumbprint != leaf.thumbprint
                && !chain.iter().any(|x| x.thumbprint == c.thumbprint)
                && current.issued_by(c)
        });
        match next {
            Some(issuer) => {
                chain.push(issuer.clone());
                current = chain.last().expect("just pushed");
            }
            None => break,
        }
    }
    chain
}

type Named<T> = Vec<(Option<String>, T)>;

fn read_pkcs12(
    data: &[u8],
    password: Option<&str>,
) -> Result<(Named<CertInfo>, Named<PrivateKey>), ImportError> {
    let outer = PfxOuter::from_der(data).map_err(|e| ImportError::Pkcs12(e.to_string()))?;
    if outer.version != 3 {
        return Err(ImportError::Pkcs12(format!(
            "version {} is not 3",
            outer.version
        )));
    }
    let _ = outer.auth_safe;
    if outer.mac_data.is_none() {
        return Err(ImportError::NoMac);
    }
    let archive = match Pkcs12Archive::from_pkcs12(data, password.unwrap_or("")) {
        Ok(a) => a,
        Err(p12_keystore::error::Error::MacError(_)) => {
            // No password given, or an empty one: the file may have an
            // absent password, which is not the empty one (see p12_absent).
            if password.is_none_or(str::is_empty) {
                match p12_absent::read(data) {
                    Ok(contents) => return Ok(contents),
                    Err(AbsentError::Mac) => {}
                    Err(AbsentError::Limit(e)) => return Err(ImportError::Pkcs12(e.to_string())),
                    Err(AbsentError::Invalid(e)) => return Err(ImportError::Pkcs12(e)),
                }
            }
            return Err(if password.is_none() {
                ImportError::PasswordRequired
            } else {
                ImportError::WrongPassword
            });
        }
        Err(p12_keystore::error::Error::InvalidParameters) => {
            return Err(ImportError::Pkcs12(format!(
                "invalid or too costly key-derivation parameters: certroll allows at most {} iterations, and scrypt up to 1 GiB",
                "1,000,000"
            )));
        }
        Err(e) => return Err(ImportError::Pkcs12(e.to_string())),
    };
    let mut certs = Vec::new();
    for bag in archive.certs {
        let cert = CertInfo::from_der(bag.cert.as_der())
            .map_err(|e| ImportError::Pkcs12(format!("certificate: {e}")))?;
        certs.push((bag.friendly_name, cert));
    }
    let mut keys = Vec::new();
    for bag in archive.keys {
        let key = PrivateKey::from_pkcs8_der(bag.key.as_der())?;
        keys.push((bag.friendly_name, key));
    }
    Ok((certs, keys))
}

const OID_SIGNED_DATA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// The outer PKCS#7/CMS structure.
#[derive(der::Sequence)]
struct ContentInfo<'a> {
    content_type: der::asn1::ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    content: der::asn1::AnyRef<'a>,
}

/// The certificates of a PKCS#7/CMS SignedData (a CA's response or a
/// `.p7b` chain, usually "degenerate": certificates and no signature).
fn read_pkcs7(data: &[u8]) -> Result<Named<CertInfo>, ImportError> {
    use der::{Reader, SliceReader, Tag, TagNumber, Tagged};
    let bad = |e: &dyn fmt::Display| ImportError::Der(format!("PKCS#7: {e}"));
    let info = ContentInfo::from_der(data).map_err(|e| bad(&e))?;
    if info.content_type != OID_SIGNED_DATA {
        return Err(bad(&format!(
            "content type {} is not SignedData",
            info.content_type
        )));
    }
    // SignedData ::= SEQUENCE { version, digestAlgorithms, encapContentInfo,
    //   certificates [0] IMPLICIT SET OF Certificate OPTIONAL, crls [1] ..., signerInfos }
    if info.content.tag() != Tag::Sequence {
        return Err(bad(&"SignedData is not a SEQUENCE"));
    }
    let mut fields = SliceReader::new(info.content.value()).map_err(|e| bad(&e))?;
    let mut certs = Vec::new();
    while !fields.is_finished() {
        let field: der::asn1::AnyRef<'_> = fields.decode().map_err(|e| bad(&e))?;
        let is_certs =
            matches!(field.tag(), Tag::ContextSpecific { number, .. } if number == TagNumber(0));
        if !is_certs {
            continue;
        }
        let mut set = SliceReader::new(field.value()).map_err(|e| bad(&e))?;
        while !set.is_finished() {
            let cert: der::asn1::AnyRef<'_> = set.decode().map_err(|e| bad(&e))?;
            // Other certificate formats (attribute certificates) are skipped.
            if cert.tag() == Tag::Sequence {
                let der = der::Encode::to_der(&cert).map_err(|e| bad(&e))?;
                certs.push((None, CertInfo::from_der(&der)?));
            }
        }
    }
    if certs.is_empty() {
        return Err(ImportError::NoCertificate);
    }
    Ok(certs)
}

fn read_pem(
    data: &[u8],
    password: Option<&str>,
) -> Result<(Named<CertInfo>, Named<PrivateKey>), ImportError> {
    let text = String::from_utf8_lossy(data);
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    for block in pem::parse_blocks(&text)? {
        match block.label.as_str() {
            "CERTIFICATE" | "X509 CERTIFICATE" => {
                certs.push((None, CertInfo::from_der(&block.der)?))
            }
            "PKCS7" | "CMS" | "PKCS #7 SIGNED DATA" => certs.extend(read_pkcs7(&block.der)?),
            _ => {
                if let Some(key) = pem_key(&block, password)? {
                    keys.push((None, key));
                }
            }
        }
    }
    Ok((certs, keys))
}

fn pem_key(
    block: &pem::PemBlock,
    password: Option<&str>,
) -> Result<Option<PrivateKey>, ImportError> {
    let is_key = matches!(
        block.label.as_str(),
        "PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY"
    );
    if !is_key {
        return Ok(None);
    }
    if block.has_headers {
        return Err(KeyError::LegacyEncrypted.into());
    }
    let key = match block.label.as_str() {
        "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&block.der)?,
        "ENCRYPTED PRIVATE KEY" => match password {
            Some(p) => PrivateKey::from_encrypted_pkcs8_der(&block.der, p)?,
            None => match PrivateKey::from_encrypted_pkcs8_der(&block.der, "") {
                Ok(k) => k,
                Err(KeyError::WrongPassword) => return Err(KeyError::PasswordRequired.into()),
                Err(e) => return Err(e.into()),
            },
        },
        "RSA PRIVATE KEY" => PrivateKey::from_pkcs1_der(&block.der)?,
        _ => PrivateKey::from_sec1_der(&block.der)?,
    };
    Ok(Some(key))
}

fn read_key_file(data: &[u8], password: Option<&str>) -> Result<Named<PrivateKey>, ImportError> {
    if data.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ImportError::KeyFile("the file is empty".into()));
    }
    if pem::looks_like_pem(data) {
        let (_, keys) = read_pem(data, password)?;
        if keys.is_empty() {
            return Err(ImportError::KeyFile("no private key in the file".into()));
        }
        return Ok(keys);
    }
    // DER: PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1, in that order.
    if let Ok(k) = PrivateKey::from_pkcs8_der(data) {
        return Ok(vec![(None, k)]);
    }
    if pkcs8::EncryptedPrivateKeyInfoRef::from_der(data).is_ok() {
        let k = match password {
            Some(p) => PrivateKey::from_encrypted_pkcs8_der(data, p)?,
            None => PrivateKey::from_encrypted_pkcs8_der(data, "").map_err(|e| match e {
                KeyError::WrongPassword => KeyError::PasswordRequired,
                e => e,
            })?,
        };
        return Ok(vec![(None, k)]);
    }
    if let Ok(k) = PrivateKey::from_pkcs1_der(data) {
        return Ok(vec![(None, k)]);
    }
    if let Ok(k) = PrivateKey::from_sec1_der(data) {
        return Ok(vec![(None, k)]);
    }
    Err(ImportError::KeyFile(
        "not a private key (PKCS#8, PKCS#1 or SEC1)".into(),
    ))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("holds {count} {what}; choose one with --entry NAME|THUMBPRINT: {list}")]
    Ambiguous {
        count: usize,
        what: &'static str,
        list: String,
    },
    #[error("no entry '{wanted}' in the file (entries: {list})")]
    NoSuchEntry { wanted: String, list: String },
}

/// Chooses the entry to import. `wanted` is the operator's `--entry` (friendly
/// name, or a thumbprint prefix of at least 8 hex digits); `suitable` tells
/// whether an entry fits the requested use (leaf, policy of the type).
pub fn select(
    entries: &[Entry],
    wanted: Option<&str>,
    suitable: impl Fn(&Entry) -> bool,
) -> Result<usize, SelectError> {
    let list = || {
        entries
            .iter()
            .map(Entry::describe)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(w) = wanted {
        let upper = w.to_ascii_uppercase();
        let by_hex = upper.len() >= 8 && upper.chars().all(|c| c.is_ascii_hexdigit());
        let hits: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                let e = &entries[i];
                e.friendly_name
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(w))
                    || (by_hex && e.cert.thumbprint.starts_with(&upper))
            })
            .collect();
        return match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(SelectError::NoSuchEntry {
                wanted: w.to_string(),
                list: list(),
            }),
            _ => Err(SelectError::Ambiguous {
                count: hits.len(),
                what: "entries by that name",
                list: list(),
            }),
        };
    }
    if entries.len() == 1 {
        return Ok(0);
    }
    let fitting: Vec<usize> = (0..entries.len())
        .filter(|&i| !entries[i].cert.is_ca && suitable(&entries[i]))
        .collect();
    match fitting.as_slice() {
        [one] => Ok(*one),
        _ => Err(SelectError::Ambiguous {
            count: entries.len(),
            what: if entries.iter().any(|e| e.key.is_some()) {
                "certificates with private keys"
            } else {
                "certificates"
            },
            list: list(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_der_kinds_from_the_first_tags() {
        assert_eq!(
            sniff_der(&[0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03]),
            DerKind::Pkcs12
        );
        assert_eq!(
            sniff_der(&[0x30, 0x82, 0x01, 0x00, 0x30, 0x82]),
            DerKind::Certificate
        );
        assert_eq!(sniff_der(&[0x30, 0x80, 0x02, 0x01, 0x03]), DerKind::Pkcs12);
        assert_eq!(
            sniff_der(&[0x30, 0x82, 0x04, 0xbd, 0x02, 0x01, 0x00]),
            DerKind::PrivateKey
        );
        assert_eq!(sniff_der(b"hello"), DerKind::Unknown);
        assert_eq!(sniff_der(&[0x30]), DerKind::Unknown);
    }

    #[test]
    fn a_pkcs7_chain_in_der_or_pem_yields_the_leaf_with_its_chain() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fixtures/");
        for (file, format) in [
            ("oauth1-chain.p7b", SourceFormat::Pkcs7),
            ("oauth1-chain.p7b.pem", SourceFormat::Pkcs7),
        ] {
            let data = std::fs::read(format!("{dir}{file}")).unwrap();
            let parsed = parse(&Input {
                data: &data,
                key_file: None,
                password: None,
            })
            .unwrap();
            assert_eq!(parsed.format, format, "{file}");
            let [entry] = parsed.entries.as_slice() else {
                panic!("{file}: {:?}", parsed.entries)
            };
            assert_eq!(entry.cert.subject_cn.as_deref(), Some("oauth1.contoso.com"));
            let chain: Vec<_> = entry
                .chain
                .iter()
                .map(|c| c.subject_cn.clone().unwrap())
                .collect();
            assert_eq!(
                chain,
                ["certroll Test Issuing CA", "certroll Test Root CA"],
                "{file}"
            );
            assert!(entry.key.is_none());
        }
        // Truncated: a clean error, no panic.
        let data = std::fs::read(format!("{dir}oauth1-chain.p7b")).unwrap();
        let err = parse(&Input {
            data: &data[..data.len() / 2],
            key_file: None,
            password: None,
        })
        .unwrap_err();
        assert!(matches!(err, ImportError::Der(_)), "{err:?}");
    }

    #[test]
    fn empty_and_garbage_input_are_clean_errors() {
        let parse_bytes = |data: &[u8]| {
            parse(&Input {
                data,
                key_file: None,
                password: None,
            })
        };
        assert_eq!(parse_bytes(b"").unwrap_err(), ImportError::Empty);
        assert_eq!(parse_bytes(b" \n").unwrap_err(), ImportError::Empty);
        assert_eq!(
            parse_bytes(b"garbage").unwrap_err(),
            ImportError::NotRecognised
        );
        assert!(matches!(
            parse_bytes(&[0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03]).unwrap_err(),
            ImportError::Pkcs12(_)
        ));
        assert!(matches!(
            parse_bytes(&[0x30, 0x82, 0x01, 0x00, 0x30, 0x82]).unwrap_err(),
            ImportError::Der(_)
        ));
    }
}
