//! The chain of a certificate, checked as the Certificate Wizard does: each
//! certificate signed by the next, the leaf's issuer present (so a deployed
//! `fullchain` file is never a leaf alone), and, for the types whose policy
//! names a `trust_bundle`, an end at a trusted root.
//!
//! Pure: the candidates (the file's chain, the issuers the store holds, the
//! trust anchors) come in as values.

use x509_parser::prelude::{FromDer, X509Certificate, X509Error};

use super::policy::{Finding, Severity};
use super::types::UsageType;
use super::x509::CertInfo;

fn short(t: &str) -> &str {
    &t[..t.len().min(8)]
}

fn finding(
    severity: Severity,
    usage_type: Option<&UsageType>,
    rule: &'static str,
    cert: &CertInfo,
    message: String,
) -> Finding {
    Finding {
        severity,
        usage_type: usage_type.cloned(),
        rule,
        thumbprint: cert.thumbprint.clone(),
        label: cert.label().to_string(),
        message,
    }
}

/// What an import learns of the chain it brings (completed from the
/// store): a signature that does not verify is an error; a CA-signed leaf
/// without its issuer a warning, so a `fullchain` deployment is never the
/// leaf alone by accident.
pub fn findings(leaf: &CertInfo, chain: &[CertInfo]) -> Vec<Finding> {
    if let Some((cert, issuer)) = broken_link(leaf, chain) {
        let by = if cert.thumbprint == issuer.thumbprint {
            "its own key (it claims to be self-signed)".to_string()
        } else {
            format!(
                "the key of {} ({}), the next certificate of its chain",
                issuer.label(),
                short(&issuer.thumbprint)
            )
        };
        return vec![finding(
            Severity::Error,
            None,
            "chain-signature",
            cert,
            format!("is not signed by {by}: the file is damaged, or the chain is not its own"),
        )];
    }
    if issuer_missing(leaf, chain) {
        return vec![finding(
            Severity::Warning,
            None,
            "chain",
            leaf,
            format!(
                "was issued by '{}', which is neither in the file nor in the store: a deployed chain would hold the certificate alone (import the issuing CA's certificates first, or a file with the full chain)",
                leaf.issuer
            ),
        )];
    }
    Vec::new()
}

/// The `trust_bundle` rule of `usage_type`: the chain ends at one of
/// `anchors`.
pub fn trust_finding(
    usage_type: &UsageType,
    leaf: &CertInfo,
    chain: &[CertInfo],
    anchors: &TrustAnchors,
) -> Option<Finding> {
    if chains_to(leaf, chain, anchors) {
        return None;
    }
    let end = chain.last().unwrap_or(leaf);
    Some(finding(
        Severity::Error,
        Some(usage_type),
        "trusted-root",
        leaf,
        format!(
            "does not chain to a trusted root of {} (its chain ends at '{}', issued by '{}'): install the CA's root there, or import the full chain",
            anchors.source, end.subject, end.issuer
        ),
    ))
}

/// Why a certificate does not verify under the one that should have signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    Valid,
    /// ring cannot check the algorithm (a 1024-bit RSA issuer, DSA, ...).
    Unsupported,
    Invalid,
}

/// Whether `issuer`'s key made the signature of `cert`.
pub fn signature(cert: &CertInfo, issuer: &CertInfo) -> Signature {
    let (Ok((_, c)), Ok((_, i))) = (
        X509Certificate::from_der(&cert.der),
        X509Certificate::from_der(&issuer.der),
    ) else {
        return Signature::Invalid;
    };
    match c.verify_signature(Some(i.public_key())) {
        Ok(()) => Signature::Valid,
        Err(X509Error::SignatureUnsupportedAlgorithm) => Signature::Unsupported,
        Err(_) => Signature::Invalid,
    }
}

/// The first link of `leaf` → `chain` (nearest issuer first) whose
/// signature does not verify: (the certificate, its issuer).
pub fn broken_link<'a>(
    leaf: &'a CertInfo,
    chain: &'a [CertInfo],
) -> Option<(&'a CertInfo, &'a CertInfo)> {
    let path: Vec<&CertInfo> = std::iter::once(leaf).chain(chain).collect();
    for pair in path.windows(2) {
        let (cert, issuer) = (pair[0], pair[1]);
        if signature(cert, issuer) == Signature::Invalid {
            return Some((cert, issuer));
        }
    }
    // The last one, when it signed itself.
    let last = *path.last().expect("the leaf at least");
    if last.is_self_issued() && signature(last, last) == Signature::Invalid {
        return Some((last, last));
    }
    None
}

/// Whether the leaf's issuer is missing: a CA-signed leaf (not
/// self-issued) whose chain does not begin with its issuer.
pub fn issuer_missing(leaf: &CertInfo, chain: &[CertInfo]) -> bool {
    !leaf.is_self_issued() && chain.first().is_none_or(|c| !leaf.issued_by(c))
}

/// `chain` completed from `known` (issuers held elsewhere, e.g. by the
/// store): followed from its last certificate (or the leaf) while an issuer
/// is found, stopping at a self-issued one.
pub fn complete(leaf: &CertInfo, chain: &[CertInfo], known: &[CertInfo]) -> Vec<CertInfo> {
    let mut out = chain.to_vec();
    loop {
        let last = out.last().unwrap_or(leaf);
        if last.is_self_issued() || out.len() > 16 {
            return out;
        }
        let next = known.iter().find(|k| {
            last.issued_by(k)
                && k.thumbprint != leaf.thumbprint
                && !out.iter().any(|c| c.thumbprint == k.thumbprint)
        });
        match next {
            Some(k) => out.push(k.clone()),
            None => return out,
        }
    }
}

/// Trusted roots (and any other anchors) read from a `trust_bundle`.
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    /// Where they came from, for messages.
    pub source: String,
    pub certs: Vec<CertInfo>,
}

/// Whether `leaf` → `chain` ends at one of `anchors`: one of its
/// certificates is an anchor, or the last is signed by one.
pub fn chains_to(leaf: &CertInfo, chain: &[CertInfo], anchors: &TrustAnchors) -> bool {
    let path: Vec<&CertInfo> = std::iter::once(leaf).chain(chain).collect();
    if path.iter().any(|c| {
        anchors
            .certs
            .iter()
            .any(|a| a.thumbprint == c.thumbprint || same_key_and_name(a, c))
    }) {
        return true;
    }
    let last = *path.last().expect("the leaf at least");
    anchors
        .certs
        .iter()
        .any(|a| last.issued_by(a) && signature(last, a) == Signature::Valid)
}

/// A re-issued root (same subject and key, new validity) is the same anchor.
fn same_key_and_name(a: &CertInfo, b: &CertInfo) -> bool {
    a.subject_raw == b.subject_raw && a.public_key == b.public_key
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cert::fixture_cert as cert;

    #[test]
    fn a_good_chain_verifies_and_a_wrong_issuer_does_not() {
        let (leaf, int, root) = (
            cert("oauth1.crt.pem"),
            cert("int.crt.pem"),
            cert("root.crt.pem"),
        );
        assert_eq!(signature(&leaf, &int), Signature::Valid);
        assert_eq!(signature(&int, &root), Signature::Valid);
        assert!(broken_link(&leaf, &[int.clone(), root.clone()]).is_none());
        // The root did not sign the leaf.
        let broken = [root.clone()];
        let (c, i) = broken_link(&leaf, &broken).unwrap();
        assert_eq!(
            (c.thumbprint.as_str(), i.thumbprint.as_str()),
            (leaf.thumbprint.as_str(), root.thumbprint.as_str())
        );
    }

    #[test]
    fn a_missing_issuer_is_found_and_completed_from_known_certificates() {
        let (leaf, int, root) = (
            cert("oauth1.crt.pem"),
            cert("int.crt.pem"),
            cert("root.crt.pem"),
        );
        assert!(issuer_missing(&leaf, &[]));
        assert!(issuer_missing(&leaf, std::slice::from_ref(&root)));
        assert!(!issuer_missing(&leaf, std::slice::from_ref(&int)));
        assert!(!issuer_missing(&root, &[]), "a root is its own issuer");
        let full = complete(&leaf, &[], &[root.clone(), int.clone()]);
        let names: Vec<_> = full.iter().map(|c| c.thumbprint.clone()).collect();
        assert_eq!(names, [int.thumbprint.clone(), root.thumbprint.clone()]);
        assert!(complete(&leaf, &[], std::slice::from_ref(&root)).is_empty());
    }

    #[test]
    fn a_chain_is_trusted_through_its_root_or_an_anchor_that_signed_its_end() {
        let (leaf, int, root) = (
            cert("oauth1.crt.pem"),
            cert("int.crt.pem"),
            cert("root.crt.pem"),
        );
        let anchors = |certs: Vec<CertInfo>| TrustAnchors {
            source: "test".into(),
            certs,
        };
        assert!(chains_to(
            &leaf,
            &[int.clone(), root.clone()],
            &anchors(vec![root.clone()])
        ));
        // fullchain.pem usually stops below the root: the root signed its end.
        assert!(chains_to(
            &leaf,
            std::slice::from_ref(&int),
            &anchors(vec![root.clone()])
        ));
        assert!(!chains_to(&leaf, &[], &anchors(vec![root.clone()])));
        assert!(!chains_to(
            &leaf,
            std::slice::from_ref(&int),
            &anchors(vec![cert("fabrikam.crt.pem")])
        ));
    }
}
