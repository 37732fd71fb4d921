//! Host-name matching as a TLS client does it (RFC 6125 §6.4): names compare
//! case-insensitively, and a wildcard may stand only for the whole left-most
//! label of a name that has at least three labels (`*.contoso.com`, never
//! `*.com`, `f*.contoso.com` or `contoso.*`). A wildcard never matches the
//! bare parent domain: `*.contoso.com` does not cover `contoso.com`.

/// Whether the certificate name `presented` (a SAN DNS name or the subject
/// CN) covers the host name `wanted`.
pub fn name_matches(presented: &str, wanted: &str) -> bool {
    let presented = presented.trim_end_matches('.').to_ascii_lowercase();
    let wanted = wanted.trim_end_matches('.').to_ascii_lowercase();
    if presented.is_empty() || wanted.is_empty() {
        return false;
    }
    match presented.strip_prefix("*.") {
        None => !presented.contains('*') && presented == wanted,
        Some(parent) => {
            if parent.contains('*') || parent.split('.').count() < 2 {
                return false;
            }
            match wanted.split_once('.') {
                Some((first, rest)) => !first.is_empty() && !first.contains('*') && rest == parent,
                None => false,
            }
        }
    }
}

/// Whether any of `names` covers `wanted`.
pub fn any_name_matches<'a>(names: impl IntoIterator<Item = &'a str>, wanted: &str) -> bool {
    names.into_iter().any(|n| name_matches(n, wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_match_case_insensitively() {
        assert!(name_matches("Contoso.com", "contoso.COM"));
        assert!(name_matches("contoso.com.", "contoso.com"));
        assert!(!name_matches("contoso.com", "sip.contoso.com"));
    }

    #[test]
    fn wildcards_follow_tls_rules() {
        assert!(name_matches("*.contoso.com", "sip.contoso.com"));
        assert!(!name_matches("*.contoso.com", "contoso.com"));
        assert!(!name_matches("*.contoso.com", "a.b.contoso.com"));
        assert!(!name_matches("*.com", "contoso.com"));
        assert!(!name_matches("s*.contoso.com", "sip.contoso.com"));
        assert!(!name_matches("sip.*.com", "sip.contoso.com"));
        assert!(!name_matches("*", "contoso"));
        assert!(!name_matches("*.contoso.com", "*.contoso.com"));
    }
}
