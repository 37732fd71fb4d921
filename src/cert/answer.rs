//! The CA's answer against the request it answers: names the CA dropped, a
//! weaker key usage or extended key usage, a shorter validity than asked.
//! Each is a warning that names what is missing (the operator may accept
//! it with `--force`); a name the type's policy requires stays an error of
//! the policy itself.
//!
//! Pure: the request's CSR (PEM) and what certroll kept of it come in as
//! values.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{KeyUsage, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::names::any_name_matches;
use super::policy::{Finding, Severity};
use super::types::UsageType;
use super::x509::{CertInfo, EKU_ANY, eku_name};

/// What a request asked of its CA.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    pub request_id: i64,
    /// The names of the request (its SANs, the CN among them).
    pub names: Vec<String>,
    /// The key usage bits of the CSR's extension request, by name.
    pub key_usage: Vec<&'static str>,
    /// The extended key usage OIDs of the CSR's extension request.
    pub ekus: Vec<String>,
    pub validity_days: Option<u32>,
}

/// A key usage bit: its name, and how to read it.
type UsageBit = (&'static str, fn(&KeyUsage) -> bool);

const KEY_USAGE_BITS: [UsageBit; 9] = [
    ("digitalSignature", KeyUsage::digital_signature),
    ("nonRepudiation", KeyUsage::non_repudiation),
    ("keyEncipherment", KeyUsage::key_encipherment),
    ("dataEncipherment", KeyUsage::data_encipherment),
    ("keyAgreement", KeyUsage::key_agreement),
    ("keyCertSign", KeyUsage::key_cert_sign),
    ("cRLSign", KeyUsage::crl_sign),
    ("encipherOnly", KeyUsage::encipher_only),
    ("decipherOnly", KeyUsage::decipher_only),
];

fn usage_names(ku: &KeyUsage) -> Vec<&'static str> {
    KEY_USAGE_BITS
        .iter()
        .filter(|(_, has)| has(ku))
        .map(|(n, _)| *n)
        .collect()
}

impl Asked {
    /// Reads the key usages a CSR asked for. A CSR certroll cannot read
    /// asks for nothing beyond its names.
    pub fn from_csr(request_id: i64, csr_pem: &str, names: &[String], days: Option<u32>) -> Asked {
        let mut asked = Asked {
            request_id,
            names: names.to_vec(),
            validity_days: days,
            ..Asked::default()
        };
        let Some(der) = super::pem::parse_blocks(csr_pem)
            .ok()
            .and_then(|b| b.into_iter().next())
            .map(|b| b.der)
        else {
            return asked;
        };
        let Ok((_, csr)) = X509CertificationRequest::from_der(&der) else {
            return asked;
        };
        for ext in csr.requested_extensions().into_iter().flatten() {
            match ext {
                ParsedExtension::KeyUsage(ku) => asked.key_usage = usage_names(ku),
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    asked.ekus = eku_oids(eku);
                }
                _ => {}
            }
        }
        asked
    }
}

fn eku_oids(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for (set, oid) in [
        (eku.any, EKU_ANY),
        (eku.server_auth, "1.3.6.1.5.5.7.3.1"),
        (eku.client_auth, "1.3.6.1.5.5.7.3.2"),
        (eku.code_signing, "1.3.6.1.5.5.7.3.3"),
        (eku.email_protection, "1.3.6.1.5.5.7.3.4"),
        (eku.time_stamping, "1.3.6.1.5.5.7.3.8"),
        (eku.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
    ] {
        if set {
            out.push(oid.to_string());
        }
    }
    out.extend(eku.other.iter().map(|o| o.to_id_string()));
    out
}

/// How `cert` falls short of what was asked: warnings for `usage_type`.
pub fn findings(usage_type: &UsageType, asked: &Asked, cert: &CertInfo) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut warn = |message: String| {
        out.push(Finding {
            severity: Severity::Warning,
            usage_type: Some(usage_type.clone()),
            rule: "ca-answer",
            thumbprint: cert.thumbprint.clone(),
            label: cert.label().to_string(),
            message,
        })
    };
    let req = asked.request_id;
    let dropped: Vec<&str> = asked
        .names
        .iter()
        .map(String::as_str)
        .filter(|n| !any_name_matches(cert.dns_names(), n))
        .collect();
    if !dropped.is_empty() {
        warn(format!(
            "answers request {req}, but the CA dropped {} of the {} requested names: {}",
            dropped.len(),
            asked.names.len(),
            dropped.join(", ")
        ));
    }
    let parsed = X509Certificate::from_der(&cert.der).ok().map(|(_, c)| c);
    if !asked.key_usage.is_empty() {
        // No key usage extension at all allows every usage.
        let granted = parsed
            .as_ref()
            .and_then(|c| c.key_usage().ok().flatten())
            .map(|ku| usage_names(ku.value));
        if let Some(granted) = granted {
            let missing: Vec<&str> = asked
                .key_usage
                .iter()
                .copied()
                .filter(|u| !granted.contains(u))
                .collect();
            if !missing.is_empty() {
                warn(format!(
                    "answers request {req} with a weaker key usage than asked: no {}",
                    missing.join(", ")
                ));
            }
        }
    }
    if let Some(granted) = &cert.ekus
        && !granted.oids.iter().any(|o| o == EKU_ANY)
    {
        let missing: Vec<String> = asked
            .ekus
            .iter()
            .filter(|e| !granted.oids.contains(e))
            .map(|e| eku_name(e))
            .collect();
        if !missing.is_empty() {
            warn(format!(
                "answers request {req} without the extended key usage(s) it asked for: {}",
                missing.join(", ")
            ));
        }
    }
    if let Some(days) = asked.validity_days {
        let got = cert.not_after - cert.not_before;
        // A day of grace: CAs backdate the start by minutes or hours.
        if got < chrono::Duration::days(i64::from(days) - 1) {
            warn(format!(
                "answers request {req} valid for {} days, shorter than the {days} asked",
                got.num_days()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::keygen::{KeySpec, generate};
    use crate::cert::request::{RequestSpec, Subject, csr_pem};

    use crate::cert::fixture_cert as cert;

    #[test]
    fn the_csr_tells_what_was_asked() {
        let spec = RequestSpec {
            subject: Subject {
                common_name: "contoso.com".into(),
                ..Subject::default()
            },
            sans: vec!["contoso.com".into(), "a.contoso.com".into()],
            ekus: vec!["1.3.6.1.5.5.7.3.1".into(), "1.3.6.1.5.5.7.3.2".into()],
            key: KeySpec::EcP256,
            template: None,
        };
        let key = generate(spec.key).unwrap();
        let pem = csr_pem(&spec, &key).unwrap();
        let asked = Asked::from_csr(7, &pem, &spec.sans, Some(730));
        assert_eq!(asked.key_usage, ["digitalSignature"]);
        assert_eq!(asked.ekus, spec.ekus);
    }

    #[test]
    fn a_short_answer_is_named_item_by_item() {
        // oauth1: CN oauth1.contoso.com, SANs oauth1.contoso.com and
        // contoso.com, serverAuth + clientAuth, 2025-06-01 to 2045-06-01.
        let c = cert("oauth1.crt.pem");
        let t = UsageType::from_canonical("Default");
        let fine = Asked {
            request_id: 3,
            names: vec!["contoso.com".into()],
            key_usage: vec!["digitalSignature", "keyEncipherment"],
            ekus: vec!["1.3.6.1.5.5.7.3.1".into()],
            validity_days: Some(365),
        };
        assert!(findings(&t, &fine, &c).is_empty());
        let greedy = Asked {
            names: vec![
                "contoso.com".into(),
                "sip.contoso.com".into(),
                "lyncdiscover.contoso.com".into(),
            ],
            key_usage: vec!["digitalSignature", "dataEncipherment"],
            ekus: vec!["1.3.6.1.5.5.7.3.4".into()],
            validity_days: Some(36_500),
            ..fine
        };
        let messages: Vec<String> = findings(&t, &greedy, &c)
            .into_iter()
            .map(|f| {
                assert_eq!(f.severity, Severity::Warning);
                f.message
            })
            .collect();
        assert_eq!(
            messages,
            [
                "answers request 3, but the CA dropped 2 of the 3 requested names: sip.contoso.com, lyncdiscover.contoso.com",
                "answers request 3 with a weaker key usage than asked: no dataEncipherment",
                "answers request 3 without the extended key usage(s) it asked for: emailProtection",
                "answers request 3 valid for 7305 days, shorter than the 36500 asked",
            ]
        );
    }
}
