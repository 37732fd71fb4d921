//! What every server should have: pure resolution from the configuration
//! and the slots' contents.
//!
//! A server's effective slot for a type is the most specific one that holds
//! a current or pending certificate, in the order server, pool, site,
//! global. Each target covering the server deploys that slot's current
//! certificate to its files, and its pending certificate to the files'
//! `pending_path` (staging), if any.

use std::collections::HashMap;
use std::path::PathBuf;

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::config::{FileConfig, ServerConfig, TargetConfig, expand};
use crate::cert::x509::{CertInfo, Curve, PublicKeyMaterial};
use crate::cert::{Scope, SlotKey, UsageType};

pub use crate::cert::slot::SlotCerts;

/// Current or pending (staged) copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeployRole {
    Current,
    Pending,
}

impl DeployRole {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployRole::Current => "current",
            DeployRole::Pending => "pending",
        }
    }
}

/// One unit of deployment: a server, a target, a type and a role.
#[derive(Clone, Debug)]
pub struct Unit {
    pub server: ServerConfig,
    pub target: TargetConfig,
    pub usage_type: UsageType,
    pub role: DeployRole,
    /// The slot the server takes its certificate from.
    pub slot: SlotKey,
    /// The certificate the files should hold (None: the pending files
    /// should not exist).
    pub wanted: Option<String>,
    pub files: Vec<(FileConfig, PathBuf)>,
}

impl Unit {
    pub fn key(&self) -> (String, String, String, DeployRole) {
        (
            self.server.name.clone(),
            self.usage_type.to_string(),
            self.target.name.clone(),
            self.role,
        )
    }
}

/// The slot a server takes a type's certificate from.
pub fn effective_slot(
    server: &ServerConfig,
    usage_type: &UsageType,
    slots: &HashMap<SlotKey, SlotCerts>,
) -> Option<SlotKey> {
    effective(server, |scope| {
        // Slot keys compare by their scope's spelling; match case-insensitively.
        slots
            .iter()
            .find(|(k, c)| {
                k.usage_type == *usage_type
                    && k.scope.key() == scope.key()
                    && (c.current.is_some() || c.pending.is_some())
            })
            .map(|(k, _)| k.clone())
    })
}

/// The rule of resolution, for any view of the slots: the first of the
/// server's scopes, most specific first (server, pool, site, global), for
/// which `holding` finds a slot with a current or pending certificate.
pub fn effective<T>(server: &ServerConfig, holding: impl Fn(&Scope) -> Option<T>) -> Option<T> {
    server.scopes().iter().find_map(holding)
}

/// Every unit the configuration and the slots imply. `types` are the usage
/// types a target without a `types` list deploys.
pub fn plan(
    servers: &[ServerConfig],
    targets: &[TargetConfig],
    types: &[UsageType],
    slots: &HashMap<SlotKey, SlotCerts>,
) -> Vec<Unit> {
    let mut out = Vec::new();
    for server in servers {
        for target in targets {
            let Ok(scope) = Scope::parse(&target.scope) else {
                continue;
            };
            if !server.covered_by(&scope) {
                continue;
            }
            let target_types: Vec<UsageType> = if target.types.is_empty() {
                types.to_vec()
            } else {
                types
                    .iter()
                    .filter(|t| {
                        target
                            .types
                            .iter()
                            .any(|n| n.eq_ignore_ascii_case(t.as_str()))
                    })
                    .cloned()
                    .collect()
            };
            for t in target_types {
                let Some(slot) = effective_slot(server, &t, slots) else {
                    continue;
                };
                let certs = &slots[&slot];
                let files = |pending: bool| -> Vec<(FileConfig, PathBuf)> {
                    target
                        .file
                        .iter()
                        .filter_map(|f| {
                            let tpl = if pending {
                                f.pending_path.as_deref()?
                            } else {
                                &f.path
                            };
                            Some((f.clone(), PathBuf::from(expand(tpl, server, t.as_str()))))
                        })
                        .collect()
                };
                if certs.current.is_some() {
                    out.push(Unit {
                        server: server.clone(),
                        target: target.clone(),
                        usage_type: t.clone(),
                        role: DeployRole::Current,
                        slot: slot.clone(),
                        wanted: certs.current.clone(),
                        files: files(false),
                    });
                }
                let staged = files(true);
                if !staged.is_empty() {
                    out.push(Unit {
                        server: server.clone(),
                        target: target.clone(),
                        usage_type: t.clone(),
                        role: DeployRole::Pending,
                        slot: slot.clone(),
                        wanted: certs.pending.clone(),
                        files: staged,
                    });
                }
            }
        }
    }
    out
}

/// The (server, target) pairs that must stage a slot's pending certificate
/// before a `--require-staged` roll may promote it.
pub fn stagers(units: &[Unit], slot: &SlotKey) -> Vec<(String, String)> {
    units
        .iter()
        .filter(|u| {
            u.role == DeployRole::Pending
                && u.slot.usage_type == slot.usage_type
                && u.slot.scope.key() == slot.scope.key()
        })
        .map(|u| (u.server.name.clone(), u.target.name.clone()))
        .collect()
}

fn b64url(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn digest(alg: &'static ring::digest::Algorithm, bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(alg, bytes).as_ref().to_vec()
}

/// One JSON Web Key (RFC 7517) for a certificate: `kid` is the thumbprint;
/// `x5t`, `x5t#S256`, `x5c` as RFC 7517 §4.7-4.9.
pub fn jwk(cert: &CertInfo, chain: &[CertInfo]) -> Option<Value> {
    let mut key = match &cert.public_key {
        PublicKeyMaterial::Rsa { n, e } => {
            json!({"kty": "RSA", "n": b64url(n), "e": b64url(e), "alg": "RS256"})
        }
        PublicKeyMaterial::Ec { curve, point } => {
            let (crv, alg, len) = match curve {
                Curve::P256 => ("P-256", "ES256", 32),
                Curve::P384 => ("P-384", "ES384", 48),
                Curve::P521 => ("P-521", "ES512", 66),
                Curve::Secp256k1 => return None,
            };
            // Only uncompressed points (0x04 || x || y) are written by CAs.
            if point.len() != 1 + 2 * len || point[0] != 4 {
                return None;
            }
            json!({"kty": "EC", "crv": crv, "x": b64url(&point[1..1 + len]), "y": b64url(&point[1 + len..]), "alg": alg})
        }
        _ => return None,
    };
    let o = key.as_object_mut().expect("an object");
    o.insert("use".into(), json!("sig"));
    o.insert("kid".into(), json!(cert.thumbprint));
    o.insert(
        "x5t".into(),
        json!(b64url(&digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &cert.der
        ))),
    );
    o.insert(
        "x5t#S256".into(),
        json!(b64url(&digest(&ring::digest::SHA256, &cert.der))),
    );
    let x5c: Vec<String> = std::iter::once(cert)
        .chain(chain)
        .map(|c| Base64::encode_string(&c.der))
        .collect();
    o.insert("x5c".into(), json!(x5c));
    Some(key)
}

/// The JWKS of a slot: current, pending and previous keys (in that order),
/// so relying parties learn the next key before it signs and keep the old
/// one through the overlap. A key whose certificate has expired at `now`
/// is left out: nothing valid is signed with it any more.
pub fn jwks(certs: &[(&CertInfo, &[CertInfo])], now: DateTime<Utc>) -> Value {
    let keys: Vec<Value> = certs
        .iter()
        .filter(|(c, _)| c.not_after > now)
        .filter_map(|(c, chain)| jwk(c, chain))
        .collect();
    json!({ "keys": unique_keys(keys) })
}

/// Each key once (by `kid`), in first-seen order: a certificate both
/// current and previous, or serving two types, is one key.
pub fn unique_keys(keys: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    keys.into_iter()
        .filter(|k| seen.insert(k["kid"].as_str().unwrap_or_default().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, pool: &str) -> ServerConfig {
        ServerConfig {
            name: name.into(),
            pool: Some(pool.into()),
            site: None,
        }
    }

    fn target(scope: &str) -> TargetConfig {
        toml::from_str(&format!(
            "name = \"t\"\nscope = \"{scope}\"\n[[file]]\nkind = \"cert\"\npath = \"/d/{{server}}/{{type}}.pem\"\npending_path = \"/d/{{server}}/{{type}}.next.pem\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn a_key_is_listed_once() {
        let c =
            CertInfo::from_der(include_bytes!("../../tests/data/fixtures/oauth1.crt.der")).unwrap();
        let chain: &[CertInfo] = &[];
        let doc = jwks(&[(&c, chain), (&c, chain)], c.not_before);
        assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
        let twice = unique_keys(
            doc["keys"]
                .as_array()
                .unwrap()
                .iter()
                .cloned()
                .chain(doc["keys"].as_array().unwrap().iter().cloned()),
        );
        assert_eq!(twice.len(), 1);
    }

    #[test]
    fn an_expired_key_leaves_the_jwks() {
        let c =
            CertInfo::from_der(include_bytes!("../../tests/data/fixtures/oauth1.crt.der")).unwrap();
        let chain: &[CertInfo] = &[];
        let doc = |now| jwks(&[(&c, chain)], now);
        let last = c.not_after - chrono::Duration::seconds(1);
        assert_eq!(doc(last)["keys"].as_array().unwrap().len(), 1);
        assert_eq!(doc(c.not_after)["keys"], json!([]));
    }

    #[test]
    fn the_most_specific_slot_wins() {
        let t = UsageType::from_canonical("OAuthTokenIssuer");
        let mut slots = HashMap::new();
        slots.insert(
            SlotKey::new(Scope::Global, t.clone()),
            SlotCerts {
                current: Some("G".into()),
                ..Default::default()
            },
        );
        slots.insert(
            SlotKey::new(Scope::Pool("p2.x.y".into()), t.clone()),
            SlotCerts {
                current: Some("P".into()),
                pending: Some("Q".into()),
                ..Default::default()
            },
        );
        let servers = [server("a.x.y", "p1.x.y"), server("b.x.y", "p2.x.y")];
        let units = plan(
            &servers,
            &[target("global")],
            std::slice::from_ref(&t),
            &slots,
        );
        let by = |s: &str, r: DeployRole| {
            units
                .iter()
                .find(|u| u.server.name == s && u.role == r)
                .map(|u| u.wanted.clone())
        };
        assert_eq!(by("a.x.y", DeployRole::Current), Some(Some("G".into())));
        assert_eq!(by("a.x.y", DeployRole::Pending), Some(None));
        assert_eq!(by("b.x.y", DeployRole::Current), Some(Some("P".into())));
        assert_eq!(by("b.x.y", DeployRole::Pending), Some(Some("Q".into())));
        assert_eq!(
            units[0].files[0].1,
            PathBuf::from("/d/a.x.y/OAuthTokenIssuer.pem")
        );
        // Only pool p2's server stages the pool's pending certificate.
        let pool = SlotKey::new(Scope::Pool("p2.x.y".into()), t.clone());
        assert_eq!(
            stagers(&units, &pool),
            [("b.x.y".to_string(), "t".to_string())]
        );
        // A target for another pool covers neither server of p1.
        assert!(plan(&servers[..1], &[target("pool:p2.x.y")], &[t], &slots).is_empty());
    }
}
