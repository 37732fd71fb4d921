//! Certificate requests (PKCS#10) and self-signed certificates: the names
//! they carry, the policy checks made before anything is written, and
//! their encoding (rcgen, signing on ring). Given the key, nothing here
//! does I/O or reads a clock: validity dates are parameters.

use chrono::{DateTime, Utc};
use rustls::pki_types::PrivatePkcs8KeyDer;

use super::key::PrivateKey;
use super::keygen::KeySpec;
use super::names::any_name_matches;
use super::policy::Policy;
use super::x509::{EKU_ANY, EKU_CLIENT_AUTH, EKU_SERVER_AUTH, KeyAlgorithm};

/// The subject's distinguished name, as the wizard's pages ask for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    pub common_name: String,
    pub organization: Option<String>,
    pub org_unit: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    /// Two-letter ISO 3166 code.
    pub country: Option<String>,
}

impl Subject {
    /// A certificate's subject, as far as these fields express it (the
    /// next certificate of a renewal is named like the current one).
    pub fn of(cert: &super::x509::CertInfo) -> Subject {
        use x509_parser::prelude::FromDer;
        let Ok((_, name)) = x509_parser::x509::X509Name::from_der(&cert.subject_raw) else {
            return Subject {
                common_name: cert.subject_cn.clone().unwrap_or_default(),
                ..Subject::default()
            };
        };
        let first = |mut it: Box<
            dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>> + '_,
        >| {
            it.next()
                .and_then(|a| a.as_str().ok())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Subject {
            common_name: first(Box::new(name.iter_common_name())).unwrap_or_default(),
            organization: first(Box::new(name.iter_organization())),
            org_unit: first(Box::new(name.iter_organizational_unit())),
            city: first(Box::new(name.iter_locality())),
            state: first(Box::new(name.iter_state_or_province())),
            country: first(Box::new(name.iter_country())),
        }
    }

    /// RFC 4514 form, most specific last as OpenSSL prints it reversed:
    /// `CN=..., OU=..., O=..., L=..., ST=..., C=...`.
    pub fn to_rfc4514(&self) -> String {
        let mut parts = vec![format!("CN={}", self.common_name)];
        for (k, v) in [
            ("OU", &self.org_unit),
            ("O", &self.organization),
            ("L", &self.city),
            ("ST", &self.state),
            ("C", &self.country),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join(", ")
    }
}

/// Everything a request or a self-signed certificate is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec {
    pub subject: Subject,
    /// SAN DNS names, the common name first.
    pub sans: Vec<String>,
    /// Extended key usage OIDs.
    pub ekus: Vec<String>,
    pub key: KeySpec,
    /// A Microsoft CA's certificate template (the wizard's "alternate
    /// certificate template"); None: the CA's default.
    pub template: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("'{0}' is not a DNS name")]
    BadName(String),
    #[error("--country must be a two-letter ISO 3166 code such as US or GB, not '{0}'")]
    BadCountry(String),
    #[error("the subject {0} may not be empty")]
    EmptyField(&'static str),
    #[error("the key does not fit the request ({0})")]
    KeyMismatch(String),
    #[error("cannot encode the request ({0})")]
    Encode(String),
    #[error(
        "--template '{0}' is not a template name (letters, digits, spaces, '-', '_' and '.', at most 64)"
    )]
    BadTemplate(String),
}

/// The certificate template name extension (szOID_ENROLL_CERTTYPE_EXTENSION):
/// the template's name as a BMPString.
pub const OID_TEMPLATE_NAME: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 20, 2];
/// The enrollment name-value pair attribute certreq writes for
/// `-attrib "CertificateTemplate:NAME"`.
pub const OID_ENROLLMENT_NAME_VALUE: &[u64] = &[1, 3, 6, 1, 4, 1, 311, 13, 2, 1];

/// A DER TLV with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A BMPString (UTF-16 big-endian), as Microsoft's enrollment uses.
pub fn bmp_string(s: &str) -> Vec<u8> {
    let content: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
    tlv(0x1E, &content)
}

/// Checks a template name: what a CA administrator names a template.
pub fn check_template(name: &str) -> Result<(), RequestError> {
    let ok = !name.trim().is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RequestError::BadTemplate(name.to_string()))
    }
}

/// Whether `name` is a host name a certificate may carry: labels of
/// letters, digits and hyphens (not at either end), at most 63 characters
/// each, 253 in all, a wildcard only as the whole first label.
pub fn check_dns_name(name: &str) -> Result<(), RequestError> {
    let bad = || RequestError::BadName(name.to_string());
    let body = name.strip_prefix("*.").unwrap_or(name);
    if name.is_empty() || name.len() > 253 || !body.contains('.') && name.starts_with("*.") {
        return Err(bad());
    }
    for label in body.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// The SAN list: the common name, the names asked for, the SIP domains
/// (the configured one and any given), and with `access_names` the
/// `sip.<domain>` name of each SIP domain, as the wizard's "SIP domain
/// setting" page adds. Lower case, each once, in that order.
pub fn compose_sans(
    common_name: &str,
    asked: &[String],
    sip_domains: &[String],
    access_names: bool,
) -> Result<Vec<String>, RequestError> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |n: &str| -> Result<(), RequestError> {
        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
        check_dns_name(&n)?;
        if !out.contains(&n) {
            out.push(n);
        }
        Ok(())
    };
    add(common_name)?;
    for n in asked {
        add(n)?;
    }
    for d in sip_domains {
        add(d)?;
    }
    if access_names {
        for d in sip_domains {
            add(&format!("sip.{}", d.trim().trim_end_matches('.')))?;
        }
    }
    Ok(out)
}

/// The extended key usages a request for a type asks for: the type's
/// `required_ekus`, else server and client authentication (the usages of
/// the "Web Server" template the wizard uses by default).
pub fn ekus_for(policy: &Policy) -> Vec<String> {
    if policy.required_ekus.is_empty() {
        vec![EKU_SERVER_AUTH.to_string(), EKU_CLIENT_AUTH.to_string()]
    } else {
        policy.required_ekus.clone()
    }
}

/// What the type's policy says of a request before anything is written:
/// (rule, message) for each violation.
pub fn evaluate(
    policy: &Policy,
    sip_domain: Option<&str>,
    spec: &RequestSpec,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match spec.key.algorithm() {
        KeyAlgorithm::Rsa if spec.key.bits() < policy.min_rsa_bits => out.push((
            "key-strength",
            format!(
                "the request's key would be {}-bit RSA; at least {} bits are required (--key)",
                spec.key.bits(),
                policy.min_rsa_bits
            ),
        )),
        KeyAlgorithm::Ec(curve) if curve.bits() < policy.min_ec_bits => out.push((
            "key-strength",
            format!(
                "the request's key would be EC {}; a curve of at least {} bits is required (--key)",
                curve.name(),
                policy.min_ec_bits
            ),
        )),
        _ => {}
    }
    let mut wanted: Vec<&str> = policy.required_names.iter().map(String::as_str).collect();
    if policy.require_sip_domain
        && let Some(d) = sip_domain
    {
        wanted.push(d);
    }
    for name in wanted {
        if !any_name_matches(spec.sans.iter().map(String::as_str), name) {
            out.push((
                "required-name",
                format!(
                    "the request does not name '{name}': add it with --san (or as --subject-cn)"
                ),
            ));
        }
    }
    if !spec.ekus.iter().any(|e| e == EKU_ANY) {
        for e in &policy.required_ekus {
            if !spec.ekus.contains(e) {
                out.push((
                    "extended-key-usage",
                    format!("the request lacks the extended key usage {e}"),
                ));
            }
        }
    }
    out
}

fn params(spec: &RequestSpec) -> Result<rcgen::CertificateParams, RequestError> {
    let s = &spec.subject;
    if s.common_name.trim().is_empty() {
        return Err(RequestError::EmptyField("common name"));
    }
    if let Some(c) = &s.country
        && (c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_alphabetic()))
    {
        return Err(RequestError::BadCountry(c.clone()));
    }
    let mut p = rcgen::CertificateParams::new(spec.sans.clone())
        .map_err(|e| RequestError::Encode(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    for (t, v) in [
        (
            rcgen::DnType::CountryName,
            s.country.as_ref().map(|c| c.to_ascii_uppercase()),
        ),
        (rcgen::DnType::StateOrProvinceName, s.state.clone()),
        (rcgen::DnType::LocalityName, s.city.clone()),
        (rcgen::DnType::OrganizationName, s.organization.clone()),
        (rcgen::DnType::OrganizationalUnitName, s.org_unit.clone()),
        (rcgen::DnType::CommonName, Some(s.common_name.clone())),
    ] {
        if let Some(v) = v {
            if v.trim().is_empty() {
                return Err(RequestError::EmptyField("fields"));
            }
            dn.push(t, v);
        }
    }
    p.distinguished_name = dn;
    p.key_usages = match spec.key {
        KeySpec::Rsa(_) => vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
        ],
        _ => vec![rcgen::KeyUsagePurpose::DigitalSignature],
    };
    p.extended_key_usages = spec
        .ekus
        .iter()
        .map(|oid| match oid.as_str() {
            EKU_SERVER_AUTH => rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            EKU_CLIENT_AUTH => rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            "1.3.6.1.5.5.7.3.3" => rcgen::ExtendedKeyUsagePurpose::CodeSigning,
            "1.3.6.1.5.5.7.3.4" => rcgen::ExtendedKeyUsagePurpose::EmailProtection,
            "1.3.6.1.5.5.7.3.8" => rcgen::ExtendedKeyUsagePurpose::TimeStamping,
            "1.3.6.1.5.5.7.3.9" => rcgen::ExtendedKeyUsagePurpose::OcspSigning,
            EKU_ANY => rcgen::ExtendedKeyUsagePurpose::Any,
            other => rcgen::ExtendedKeyUsagePurpose::Other(
                other.split('.').filter_map(|a| a.parse().ok()).collect(),
            ),
        })
        .collect();
    Ok(p)
}

fn key_pair(spec: &RequestSpec, key: &PrivateKey) -> Result<rcgen::KeyPair, RequestError> {
    if key.algorithm != spec.key.algorithm() || key.bits() != spec.key.bits() {
        return Err(RequestError::KeyMismatch(format!(
            "{} key, {} asked",
            key.algorithm, spec.key
        )));
    }
    let der = PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec());
    rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, spec.key.signature_algorithm())
        .map_err(|e| RequestError::Encode(e.to_string()))
}

/// The PKCS#10 request, PEM-encoded, signed with `key`.
pub fn csr_pem(spec: &RequestSpec, key: &PrivateKey) -> Result<String, RequestError> {
    let pair = key_pair(spec, key)?;
    let mut p = params(spec)?;
    let mut attrs = Vec::new();
    if let Some(name) = &spec.template {
        check_template(name)?;
        // Both forms Microsoft's tools write: the extension, and the
        // CertificateTemplate name-value pair (SET OF SEQUENCE {name, value}).
        p.custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                OID_TEMPLATE_NAME,
                bmp_string(name),
            ));
        let pair = [bmp_string("CertificateTemplate"), bmp_string(name)].concat();
        attrs.push(rcgen::Attribute {
            oid: OID_ENROLLMENT_NAME_VALUE,
            values: tlv(0x31, &tlv(0x30, &pair)),
        });
    }
    p.serialize_request_with_attributes(&pair, attrs)
        .and_then(|csr| csr.pem())
        .map_err(|e| RequestError::Encode(e.to_string()))
}

/// A self-signed certificate (DER) for `key`, valid from `not_before` to
/// `not_after`.
pub fn self_signed(
    spec: &RequestSpec,
    key: &PrivateKey,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<Vec<u8>, RequestError> {
    let pair = key_pair(spec, key)?;
    let mut p = params(spec)?;
    let t = |d: DateTime<Utc>| {
        time::OffsetDateTime::from_unix_timestamp(d.timestamp())
            .map_err(|e| RequestError::Encode(e.to_string()))
    };
    p.not_before = t(not_before)?;
    p.not_after = t(not_after)?;
    p.is_ca = rcgen::IsCa::ExplicitNoCa;
    // A serial of 16 random-looking bytes from the key's fingerprint: every
    // self-signed certificate has a key of its own.
    let fp = key.public_fingerprint().unwrap_or_default();
    let mut serial: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(fp.get(i * 2..i * 2 + 2).unwrap_or("00"), 16).unwrap_or(0))
        .collect();
    serial[0] &= 0x7f; // positive
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    p.self_signed(&pair)
        .map(|c| c.der().to_vec())
        .map_err(|e| RequestError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::keygen::generate;
    use crate::cert::x509::CertInfo;
    use chrono::TimeZone;

    fn spec(key: KeySpec) -> RequestSpec {
        RequestSpec {
            template: None,
            subject: Subject {
                common_name: "oauth.contoso.com".into(),
                organization: Some("Contoso".into()),
                country: Some("us".into()),
                ..Subject::default()
            },
            sans: compose_sans(
                "oauth.contoso.com",
                &["lyncpool.contoso.com".into()],
                &["contoso.com".into()],
                true,
            )
            .unwrap(),
            ekus: vec![EKU_SERVER_AUTH.into()],
            key,
        }
    }

    #[test]
    fn sans_put_the_common_name_first_and_add_the_sip_domain_once() {
        let sans = compose_sans(
            "Pool01.Contoso.com.",
            &["contoso.com".into(), "pool01.contoso.com".into()],
            &["contoso.com".into()],
            true,
        )
        .unwrap();
        assert_eq!(
            sans,
            ["pool01.contoso.com", "contoso.com", "sip.contoso.com"]
        );
        for bad in [
            "a..b", "-a.com", "a_b.com", "*.com", "a.*.com", "x y.com", "",
        ] {
            assert!(
                compose_sans("ok.contoso.com", &[bad.into()], &[], false).is_err(),
                "{bad}"
            );
        }
        assert!(compose_sans("*.contoso.com", &[], &[], false).is_ok());
    }

    #[test]
    fn the_policy_is_checked_before_anything_is_made() {
        let mut policy = Policy::builtin("OAuthTokenIssuer");
        policy.min_rsa_bits = 3072;
        let mut s = spec(KeySpec::Rsa(2048));
        s.sans = vec!["oauth.fabrikam.com".into()];
        let findings = evaluate(&policy, Some("contoso.com"), &s);
        let rules: Vec<&str> = findings.iter().map(|f| f.0).collect();
        assert_eq!(rules, ["key-strength", "required-name"], "{findings:?}");
        assert!(
            evaluate(
                &Policy::builtin("OAuthTokenIssuer"),
                Some("contoso.com"),
                &spec(KeySpec::EcP256)
            )
            .is_empty()
        );
    }

    #[test]
    fn a_self_signed_certificate_carries_the_request_and_matches_its_key() {
        let s = spec(KeySpec::EcP256);
        let key = generate(s.key).unwrap();
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2028, 1, 1, 0, 0, 0).unwrap();
        let der = self_signed(&s, &key, from, until).unwrap();
        let info = CertInfo::from_der(&der).unwrap();
        assert!(key.matches(&info));
        assert_eq!(info.not_before, from);
        assert_eq!(info.not_after, until);
        assert_eq!(info.subject_cn.as_deref(), Some("oauth.contoso.com"));
        assert_eq!(
            info.sans,
            [
                "oauth.contoso.com",
                "lyncpool.contoso.com",
                "contoso.com",
                "sip.contoso.com"
            ]
        );
        assert_eq!(info.ekus.unwrap().oids, [EKU_SERVER_AUTH]);
        assert!(!info.is_ca);
        assert_eq!(info.public_key.fingerprint(), key.public_fingerprint());
        assert!(info.subject.contains("C=US"), "{}", info.subject);
        // A key of another kind is refused.
        let other = generate(KeySpec::EcP384).unwrap();
        assert!(matches!(
            self_signed(&s, &other, from, until),
            Err(RequestError::KeyMismatch(_))
        ));
    }

    #[test]
    fn a_csr_is_pem_and_refuses_a_bad_country() {
        let s = spec(KeySpec::EcP256);
        let key = generate(s.key).unwrap();
        let pem = csr_pem(&s, &key).unwrap();
        assert!(
            pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"),
            "{pem}"
        );
        let mut bad = s.clone();
        bad.subject.country = Some("USA".into());
        assert_eq!(
            csr_pem(&bad, &key),
            Err(RequestError::BadCountry("USA".into()))
        );
    }

    /// `--template`: the template name extension and the CertificateTemplate
    /// name-value attribute, both as Microsoft's enrollment writes them.
    #[test]
    fn a_template_is_named_in_the_request_both_ways() {
        use x509_parser::certification_request::X509CertificationRequest;
        use x509_parser::cri_attributes::ParsedCriAttribute;
        use x509_parser::prelude::FromDer;

        let mut s = spec(KeySpec::EcP256);
        s.template = Some("LyncWebServer".into());
        let key = generate(s.key).unwrap();
        let pem = csr_pem(&s, &key).unwrap();
        let der = crate::cert::pem::parse_blocks(&pem).unwrap().remove(0).der;
        let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
        let oid = |arcs: &[u64]| {
            arcs.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(".")
        };
        let attrs = csr.certification_request_info.attributes();
        let ext = attrs
            .iter()
            .find_map(|a| match a.parsed_attribute() {
                ParsedCriAttribute::ExtensionRequest(r) => r
                    .extensions
                    .iter()
                    .find(|e| e.oid.to_id_string() == oid(OID_TEMPLATE_NAME)),
                _ => None,
            })
            .expect("the template name extension");
        assert_eq!(ext.value, bmp_string("LyncWebServer"));
        assert!(!ext.critical);
        let pair = attrs
            .iter()
            .find(|a| a.oid.to_id_string() == oid(OID_ENROLLMENT_NAME_VALUE))
            .expect("the CertificateTemplate attribute");
        let want = tlv(
            0x31,
            &tlv(
                0x30,
                &[
                    bmp_string("CertificateTemplate"),
                    bmp_string("LyncWebServer"),
                ]
                .concat(),
            ),
        );
        // x509-parser keeps only the header of an attribute it does not
        // know: check that, and the whole value in the request's bytes.
        assert_eq!(pair.value, &want[..2]);
        assert!(der.windows(want.len()).any(|w| w == want.as_slice()));
        // UTF-16 big-endian, as a BMPString.
        assert_eq!(bmp_string("Ab"), [0x1E, 4, 0, b'A', 0, b'b']);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);

        s.template = Some("Web Server; drop".into());
        assert!(matches!(
            csr_pem(&s, &key),
            Err(RequestError::BadTemplate(_))
        ));
    }
}
