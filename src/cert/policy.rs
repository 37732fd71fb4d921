//! Policy per usage type: what a certificate must have before certroll lets
//! it serve that type. Errors refuse the operation; warnings need `--force`;
//! `--force` never overrides an error.
//!
//! Defaults follow the seeds: every built-in type wants a private key and
//! RSA of at least 2048 bits (or EC P-256 or stronger); `OAuthTokenIssuer`
//! also wants the SIP domain among its names when one is configured.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::names::any_name_matches;
use super::types::{Scope, UsageType};
use super::x509::{CertInfo, EKU_ANY, KeyAlgorithm, eku_name, eku_oid, is_weak_signature};

/// How a finding weighs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Not checked.
    Allow,
    /// Reported; the operation needs `--force`.
    Warn,
    /// Refused.
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub min_rsa_bits: u32,
    pub min_ec_bits: u32,
    /// Ed25519 and other algorithms that are neither RSA nor NIST EC.
    pub allow_other_key_algorithms: bool,
    pub require_private_key: bool,
    /// Host names the certificate must cover (Subject CN or SAN DNS name,
    /// wildcards as TLS matches them).
    pub required_names: Vec<String>,
    /// Adds the configured `sip_domain` to `required_names`.
    pub require_sip_domain: bool,
    /// Extended key usage OIDs the certificate must allow.
    pub required_ekus: Vec<String>,
    /// Warn when the certificate has fewer days left than this when it
    /// takes effect.
    pub min_remaining_days: u32,
    pub sha1_signature: Level,
    /// Recommended lead time of a roll before the current certificate
    /// expires (used by scheduled rolls).
    pub recommended_lead_hours: u32,
    /// Days before expiry at which the expiry watch alerts for this type;
    /// `None`: the `[expiry]` default.
    pub expiry_thresholds_days: Option<Vec<u32>>,
    /// Publish the slot's keys as a JSON Web Key Set (deploy files of kind
    /// jwks, and /.well-known/jwks.json).
    pub publish_jwks: bool,
    /// `certroll request --self-signed` may make certificates for this
    /// type (token signing needs no CA; TLS does).
    pub self_signed_allowed: bool,
    /// The kinds of scope the type may be assigned, rolled or requested at
    /// (`global`, `site`, `pool`, `server`); empty: any.
    pub scopes: Vec<String>,
    /// Trusted roots (a PEM file, or a directory of them such as
    /// /etc/ssl/certs): the chain must end at one of them.
    pub trust_bundle: Option<std::path::PathBuf>,
}

impl Policy {
    /// The built-in default for a usage type.
    pub fn builtin(usage_type: &str) -> Policy {
        let mut p = Policy {
            min_rsa_bits: 2048,
            min_ec_bits: 256,
            allow_other_key_algorithms: false,
            require_private_key: true,
            required_names: Vec::new(),
            require_sip_domain: false,
            required_ekus: Vec::new(),
            min_remaining_days: 30,
            sha1_signature: Level::Warn,
            recommended_lead_hours: 0,
            expiry_thresholds_days: None,
            publish_jwks: false,
            self_signed_allowed: false,
            trust_bundle: None,
            scopes: Vec::new(),
        };
        match usage_type {
            "OAuthTokenIssuer" => {
                p.require_sip_domain = true;
                p.recommended_lead_hours = 24;
                p.publish_jwks = true;
                p.self_signed_allowed = true;
                // The seeds: the same token-signing certificate on every
                // Front End, configured once at global.
                p.scopes = vec!["global".into()];
            }
            "AudioVideoAuthentication" => p.recommended_lead_hours = 8,
            _ => {}
        }
        p
    }

    /// Applies the overrides of a `[policy.<Type>]` table.
    pub fn apply(&mut self, o: &PolicyOverrides) -> Result<(), String> {
        if let Some(v) = o.min_rsa_bits {
            self.min_rsa_bits = v;
        }
        if let Some(v) = o.min_ec_bits {
            self.min_ec_bits = v;
        }
        if let Some(v) = o.allow_other_key_algorithms {
            self.allow_other_key_algorithms = v;
        }
        if let Some(v) = o.require_private_key {
            self.require_private_key = v;
        }
        if let Some(v) = &o.required_names {
            self.required_names = v.clone();
        }
        if let Some(v) = o.require_sip_domain {
            self.require_sip_domain = v;
        }
        if let Some(v) = &o.required_ekus {
            self.required_ekus = v
                .iter()
                .map(|e| resolve_eku(e))
                .collect::<Result<Vec<_>, _>>()?;
        }
        if let Some(v) = o.min_remaining_days {
            self.min_remaining_days = v;
        }
        if let Some(v) = o.sha1_signature {
            self.sha1_signature = v;
        }
        if let Some(v) = o.recommended_lead_hours {
            self.recommended_lead_hours = v;
        }
        if let Some(v) = &o.expiry_thresholds_days {
            self.expiry_thresholds_days = Some(v.clone());
        }
        if let Some(v) = o.publish_jwks {
            self.publish_jwks = v;
        }
        if let Some(v) = o.self_signed_allowed {
            self.self_signed_allowed = v;
        }
        if let Some(v) = &o.trust_bundle {
            self.trust_bundle = Some(v.clone());
        }
        if let Some(v) = &o.scopes {
            let mut kinds = Vec::new();
            for k in v {
                let k = k.trim().to_ascii_lowercase();
                if !["global", "site", "pool", "server"].contains(&k.as_str()) {
                    return Err(format!(
                        "scopes: '{k}' is not a kind of scope (global, site, pool, server)"
                    ));
                }
                kinds.push(k);
            }
            self.scopes = kinds;
        }
        Ok(())
    }
}

fn resolve_eku(name: &str) -> Result<String, String> {
    if let Some(oid) = eku_oid(name) {
        return Ok(oid.to_string());
    }
    let dotted = name.split('.').count() >= 2
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if dotted {
        Ok(name.to_string())
    } else {
        Err(format!(
            "unknown extended key usage '{name}' (use serverAuth, clientAuth, codeSigning, emailProtection, timeStamping, ocspSigning or a dotted OID)"
        ))
    }
}

/// A `[policy.<Type>]` table: every key optional, unknown keys refused.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverrides {
    pub min_rsa_bits: Option<u32>,
    pub min_ec_bits: Option<u32>,
    pub allow_other_key_algorithms: Option<bool>,
    pub require_private_key: Option<bool>,
    pub required_names: Option<Vec<String>>,
    pub require_sip_domain: Option<bool>,
    pub required_ekus: Option<Vec<String>>,
    pub min_remaining_days: Option<u32>,
    pub sha1_signature: Option<Level>,
    pub recommended_lead_hours: Option<u32>,
    pub expiry_thresholds_days: Option<Vec<u32>>,
    pub publish_jwks: Option<bool>,
    pub self_signed_allowed: Option<bool>,
    pub trust_bundle: Option<std::path::PathBuf>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One rule a certificate breaks for one usage type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The type whose policy it breaks; `None` for a fault of the
    /// certificate itself (its chain).
    pub usage_type: Option<UsageType>,
    pub rule: &'static str,
    pub thumbprint: String,
    pub label: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.usage_type {
            write!(f, "{t} policy, ")?;
        }
        write!(
            f,
            "rule {}: certificate {} ({}) {}",
            self.rule,
            &self.thumbprint[..self.thumbprint.len().min(8)],
            self.label,
            self.message
        )
    }
}

/// Checks `cert` against `policy` for the instant `at` when it would take
/// effect (now, for an immediate assignment).
pub fn evaluate(
    usage_type: &UsageType,
    policy: &Policy,
    sip_domain: Option<&str>,
    cert: &CertInfo,
    has_private_key: bool,
    at: DateTime<Utc>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |severity, rule, message: String| {
        out.push(Finding {
            severity,
            usage_type: Some(usage_type.clone()),
            rule,
            thumbprint: cert.thumbprint.clone(),
            label: cert.label().to_string(),
            message,
        })
    };

    // Key strength.
    match &cert.key_algorithm {
        KeyAlgorithm::Rsa if cert.key_bits < policy.min_rsa_bits => push(
            Severity::Error,
            "key-strength",
            format!(
                "has a {}-bit RSA key; at least {} bits are required",
                cert.key_bits, policy.min_rsa_bits
            ),
        ),
        KeyAlgorithm::Ec(curve) if curve.bits() < policy.min_ec_bits => push(
            Severity::Error,
            "key-strength",
            format!(
                "has an EC {} key; a curve of at least {} bits is required",
                curve.name(),
                policy.min_ec_bits
            ),
        ),
        KeyAlgorithm::Rsa | KeyAlgorithm::Ec(_) => {}
        other if !policy.allow_other_key_algorithms => push(
            Severity::Error,
            "key-strength",
            format!("has a {other} key; RSA or EC is required"),
        ),
        _ => {}
    }

    if policy.require_private_key && !has_private_key {
        push(
            Severity::Error,
            "private-key",
            "has no private key; import it from a PFX exported with its private key, or with --key"
                .to_string(),
        );
    }

    let mut names: Vec<&str> = policy.required_names.iter().map(String::as_str).collect();
    if policy.require_sip_domain
        && let Some(domain) = sip_domain
    {
        names.push(domain);
    }
    for name in names {
        if !any_name_matches(cert.dns_names(), name) {
            push(
                Severity::Error,
                "required-name",
                format!("does not name '{name}' in its Subject CN or a SAN DNS name"),
            );
        }
    }

    if let Some(ekus) = &cert.ekus
        && !ekus.oids.iter().any(|o| o == EKU_ANY)
    {
        for wanted in &policy.required_ekus {
            if !ekus.oids.contains(wanted) {
                push(
                    Severity::Error,
                    "extended-key-usage",
                    format!("lacks the extended key usage {}", eku_name(wanted)),
                );
            }
        }
    }

    if at < cert.not_before {
        push(
            Severity::Error,
            "validity",
            format!(
                "is not valid before {}",
                cert.not_before.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        );
    } else if at > cert.not_after {
        push(
            Severity::Error,
            "validity",
            format!(
                "expired on {}",
                cert.not_after.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        );
    } else {
        let left = cert.not_after - at;
        if left < chrono::Duration::days(policy.min_remaining_days.into()) {
            push(
                Severity::Warning,
                "validity-margin",
                format!(
                    "expires on {}, {} day(s) after it takes effect (margin: {} days)",
                    cert.not_after.format("%Y-%m-%d"),
                    left.num_days(),
                    policy.min_remaining_days
                ),
            );
        }
    }

    if policy.sha1_signature != Level::Allow && is_weak_signature(&cert.signature_algorithm) {
        let severity = if policy.sha1_signature == Level::Error {
            Severity::Error
        } else {
            Severity::Warning
        };
        push(
            severity,
            "signature-algorithm",
            format!("is signed with {}, a broken hash", cert.signature_algorithm),
        );
    }
    out
}

/// Whether the type may be given a certificate at `scope` (its policy's
/// `scopes`): the refusal, naming the kinds it allows.
pub fn scope_refusal(usage_type: &UsageType, policy: &Policy, scope: &Scope) -> Option<String> {
    if policy.scopes.is_empty() || policy.scopes.iter().any(|k| k == scope.kind()) {
        return None;
    }
    Some(format!(
        "{usage_type} policy, rule scope: {usage_type} is assigned at {} only, not at {scope} (add \"{}\" to scopes in [policy.{usage_type}] to allow it)",
        policy.scopes.join(" or "),
        scope.kind()
    ))
}

/// Rule 7's lead time: a roll at `at` should come well before the current
/// certificate of the slot expires (24 h for OAuthTokenIssuer, 8 h for
/// AudioVideoAuthentication by default). Only warnings.
pub fn lead_time(
    usage_type: &UsageType,
    policy: &Policy,
    current: Option<&CertInfo>,
    at: DateTime<Utc>,
) -> Vec<Finding> {
    let Some(cur) = current else {
        return Vec::new();
    };
    let finding = |message: String| Finding {
        severity: Severity::Warning,
        usage_type: Some(usage_type.clone()),
        rule: "lead-time",
        thumbprint: cur.thumbprint.clone(),
        label: cur.label().to_string(),
        message,
    };
    let when = at.format("%Y-%m-%d %H:%M:%S UTC");
    if cur.not_after <= at {
        return vec![finding(format!(
            "(the current one) expires on {}, before the roll at {when}: the slot would serve an expired certificate until then",
            cur.not_after.format("%Y-%m-%d %H:%M:%S UTC")
        ))];
    }
    let lead = cur.not_after - at;
    let wanted = chrono::Duration::hours(policy.recommended_lead_hours.into());
    if lead < wanted {
        return vec![finding(format!(
            "(the current one) expires {} h after the roll at {when}; at least {} h is recommended",
            lead.num_hours(),
            policy.recommended_lead_hours
        ))];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_defaults_follow_the_seeds() {
        let p = Policy::builtin("OAuthTokenIssuer");
        assert_eq!(p.min_rsa_bits, 2048);
        assert!(p.require_private_key);
        assert!(p.require_sip_domain);
        assert_eq!(p.recommended_lead_hours, 24);
        assert_eq!(
            Policy::builtin("AudioVideoAuthentication").recommended_lead_hours,
            8
        );
        assert!(!Policy::builtin("Default").require_sip_domain);
    }

    use crate::cert::fixture_cert as cert;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    /// (severity, rule) of every finding for `name` as an OAuthTokenIssuer.
    fn oauth(
        name: &str,
        policy: &Policy,
        sip: Option<&str>,
        has_key: bool,
        now: DateTime<Utc>,
    ) -> Vec<(Severity, &'static str)> {
        let t = UsageType::from_canonical("OAuthTokenIssuer");
        evaluate(&t, policy, sip, &cert(name), has_key, now)
            .into_iter()
            .map(|f| (f.severity, f.rule))
            .collect()
    }

    #[test]
    fn validity_is_judged_at_the_given_instant() {
        let p = Policy::builtin("OAuthTokenIssuer");
        let sip = Some("contoso.com");
        // oauth1 is valid from 2025-06-01 to 2045-06-01.
        assert!(oauth("oauth1.crt.pem", &p, sip, true, at(2030, 1, 1)).is_empty());
        assert_eq!(
            oauth("oauth1.crt.pem", &p, sip, true, at(2045, 5, 20)),
            [(Severity::Warning, "validity-margin")]
        );
        assert_eq!(
            oauth("oauth1.crt.pem", &p, sip, true, at(2046, 1, 1)),
            [(Severity::Error, "validity")]
        );
        assert_eq!(
            oauth("oauth1.crt.pem", &p, sip, true, at(2025, 1, 1)),
            [(Severity::Error, "validity")]
        );
    }

    #[test]
    fn each_rule_names_itself() {
        let p = Policy::builtin("OAuthTokenIssuer");
        let now = at(2030, 1, 1);
        let sip = Some("contoso.com");
        assert_eq!(
            oauth("weak.crt.pem", &p, sip, true, now),
            [(Severity::Error, "key-strength")]
        );
        assert!(oauth("ec1.crt.pem", &p, sip, true, now).is_empty());
        assert_eq!(
            oauth("fabrikam.crt.pem", &p, sip, true, now),
            [(Severity::Error, "required-name")]
        );
        assert!(oauth("fabrikam.crt.pem", &p, None, true, now).is_empty());
        assert_eq!(
            oauth("wildcard.crt.pem", &p, sip, true, now),
            [(Severity::Error, "required-name")]
        );
        assert_eq!(
            oauth("oauth1.crt.pem", &p, sip, false, now),
            [(Severity::Error, "private-key")]
        );
        assert_eq!(
            oauth("sha1.crt.pem", &p, sip, true, now),
            [(Severity::Warning, "signature-algorithm")]
        );
        let mut strict = p.clone();
        strict.sha1_signature = Level::Error;
        strict.required_ekus = vec![crate::cert::x509::EKU_SERVER_AUTH.into()];
        assert_eq!(
            oauth("sha1.crt.pem", &strict, sip, true, now),
            [(Severity::Error, "signature-algorithm")]
        );
        assert_eq!(
            oauth("codesign.crt.pem", &strict, sip, true, now),
            [(Severity::Error, "extended-key-usage")]
        );
        assert!(oauth("oauth1.crt.pem", &strict, sip, true, now).is_empty());
        let mut lax = p.clone();
        lax.sha1_signature = Level::Allow;
        assert!(oauth("sha1.crt.pem", &lax, sip, true, now).is_empty());
    }

    #[test]
    fn findings_print_type_rule_and_certificate() {
        let t = UsageType::from_canonical("OAuthTokenIssuer");
        let c = cert("weak.crt.pem");
        let f = evaluate(
            &t,
            &Policy::builtin("OAuthTokenIssuer"),
            None,
            &c,
            true,
            at(2030, 1, 1),
        );
        assert_eq!(
            f[0].to_string(),
            format!(
                "OAuthTokenIssuer policy, rule key-strength: certificate {} (contoso.com) has a 1024-bit RSA key; at least 2048 bits are required",
                &c.thumbprint[..8]
            )
        );
    }

    #[test]
    fn lead_time_warns_when_the_roll_comes_too_close_to_expiry() {
        let t = UsageType::from_canonical("OAuthTokenIssuer");
        let p = Policy::builtin("OAuthTokenIssuer");
        let cur = cert("oauth1.crt.pem"); // expires 2045-06-01T00:00:00Z
        assert!(lead_time(&t, &p, Some(&cur), at(2045, 5, 1)).is_empty());
        assert!(lead_time(&t, &p, None, at(2045, 5, 31)).is_empty());
        let close = lead_time(&t, &p, Some(&cur), at(2045, 5, 31));
        assert_eq!(close.len(), 1);
        assert_eq!(
            (close[0].severity, close[0].rule),
            (Severity::Warning, "lead-time")
        );
        assert!(
            close[0].message.contains("expires 12 h after the roll"),
            "{}",
            close[0].message
        );
        let after = lead_time(&t, &p, Some(&cur), at(2045, 6, 2));
        assert!(
            after[0].message.contains("before the roll"),
            "{}",
            after[0].message
        );
        // AudioVideoAuthentication recommends 8 h; Default nothing.
        let av = UsageType::from_canonical("AudioVideoAuthentication");
        assert_eq!(
            lead_time(
                &av,
                &Policy::builtin("AudioVideoAuthentication"),
                Some(&cur),
                at(2045, 5, 31)
            )
            .len(),
            0
        );
        let d = UsageType::from_canonical("Default");
        assert!(lead_time(&d, &Policy::builtin("Default"), Some(&cur), at(2045, 5, 31)).is_empty());
    }

    #[test]
    fn overrides_apply_and_ekus_resolve() {
        let mut p = Policy::builtin("Default");
        p.apply(&PolicyOverrides {
            min_rsa_bits: Some(3072),
            required_ekus: Some(vec!["serverAuth".into(), "1.2.3.4".into()]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(p.min_rsa_bits, 3072);
        assert_eq!(p.required_ekus, ["1.3.6.1.5.5.7.3.1", "1.2.3.4"]);
        assert!(
            p.apply(&PolicyOverrides {
                required_ekus: Some(vec!["bogus".into()]),
                ..Default::default()
            })
            .is_err()
        );
    }
}
