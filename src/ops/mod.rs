//! Operations: the rules every front end applies (the command line, the
//! renewal duty), written once. They read the configuration and the store
//! and decide; the store's transactions make the change. Above `store`,
//! `schedule` and `deploy`; below `service` and `cli`.

pub mod acme;
pub mod renew;
pub mod renewer;
pub mod set;

use chrono::{DateTime, Utc};

use crate::cert::policy::{self, Finding};
use crate::cert::{CertInfo, SlotKey, UsageType};
use crate::config::{Config, ConfigError};
use crate::store::{Store, StoreError};

/// The policy findings of `cert` for every type at `at`. With a type's
/// `trust_bundle`, the chain (nearest issuer first) must end at one of its
/// roots.
pub fn findings(
    config: &Config,
    types: &[UsageType],
    cert: &CertInfo,
    chain: &[CertInfo],
    has_key: bool,
    at: DateTime<Utc>,
) -> Result<Vec<Finding>, ConfigError> {
    let mut out = Vec::new();
    let mut bundles: Vec<(&std::path::Path, crate::cert::chain::TrustAnchors)> = Vec::new();
    for t in types {
        let p = config.policy(t);
        out.extend(policy::evaluate(
            t,
            p,
            config.sip_domain.as_deref(),
            cert,
            has_key,
            at,
        ));
        if let Some(path) = &p.trust_bundle {
            let i = match bundles.iter().position(|(b, _)| *b == path.as_path()) {
                Some(i) => i,
                None => {
                    bundles.push((path, config.trust_anchors(path)?));
                    bundles.len() - 1
                }
            };
            out.extend(crate::cert::chain::trust_finding(
                t,
                cert,
                chain,
                &bundles[i].1,
            ));
        }
    }
    Ok(out)
}

/// Rule 7's lead-time warnings for a roll at `at` in `slots`.
pub fn lead_time_findings(
    config: &Config,
    store: &Store,
    slots: &[SlotKey],
    at: DateTime<Utc>,
) -> Result<Vec<Finding>, StoreError> {
    let mut out = Vec::new();
    for slot in slots {
        let views = store.slots(std::slice::from_ref(&slot.usage_type), Some(&slot.scope))?;
        let current = views
            .first()
            .and_then(|v| v.current.as_ref())
            .map(|c| &c.info);
        out.extend(policy::lead_time(
            &slot.usage_type,
            config.policy(&slot.usage_type),
            current,
            at,
        ));
    }
    Ok(out)
}

/// Why a rollback of `slot` to its previous certificate `previous` (taking
/// effect at `at`) is refused or needs --force: an expired previous one,
/// one without the private key its type needs, and the type's policy.
pub fn rollback_findings(
    config: &Config,
    slot: &SlotKey,
    previous: &crate::store::StoredCert,
    at: DateTime<Utc>,
) -> Result<Vec<Finding>, ConfigError> {
    let t = &slot.usage_type;
    let info = &previous.info;
    let error = |rule: &'static str, message: String| Finding {
        severity: policy::Severity::Error,
        usage_type: Some(t.clone()),
        rule,
        thumbprint: info.thumbprint.clone(),
        label: info.label().to_string(),
        message,
    };
    if info.not_after <= at {
        return Ok(vec![error(
            "rollback",
            format!(
                "(the previous one) expired on {}: a rollback to it would serve an expired certificate",
                info.not_after.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        )]);
    }
    if config.policy(t).require_private_key && !previous.has_private_key {
        return Ok(vec![error(
            "rollback",
            "(the previous one) has no private key in the store: import it again with its key first"
                .to_string(),
        )]);
    }
    findings(
        config,
        std::slice::from_ref(t),
        info,
        &previous.chain,
        previous.has_private_key,
        at,
    )
}
