//! The pure domain: certificates, keys, import parsing, policy and slot
//! transitions. Nothing here reads a file, a clock or a database: bytes and
//! `now` come in as parameters, decisions come out as values. The one
//! exception is [`keygen`], which reads the system random generator.

pub mod answer;
pub mod bundle;
pub mod chain;
pub mod expiry;
pub mod key;
pub mod keygen;
pub mod names;
pub mod p12_absent;
pub mod pem;
pub mod pfx;
pub mod policy;
pub mod renewal;
pub mod request;
pub mod slot;
pub mod types;
pub mod x509;

pub use types::{Role, Scope, ScopePattern, SlotKey, TypeRegistry, UsageType};

/// The first certificate of a PEM fixture (tests/data/fixtures), for the
/// domain's unit tests.
#[cfg(test)]
pub(crate) fn fixture_cert(name: &str) -> CertInfo {
    let path = format!("{}/tests/data/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let block = pem::parse_blocks(&text).unwrap().remove(0);
    CertInfo::from_der(&block.der).unwrap()
}
pub use x509::CertInfo;
