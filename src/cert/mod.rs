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
pub mod request;
pub mod slot;
pub mod types;
pub mod x509;

pub use types::{Role, Scope, ScopePattern, SlotKey, TypeRegistry, UsageType};
pub use x509::CertInfo;
