//! Usage types, scopes and slots: the names an operator types and the
//! canonical forms certroll stores and prints.

use std::fmt;

use serde::Serialize;

/// The usage types Lync / Skype for Business Server knows, in their canonical
/// spelling. More can be declared in the configuration (`extra_types`).
pub const BUILTIN_TYPES: &[&str] = &[
    "Default",
    "WebServicesInternal",
    "WebServicesExternal",
    "OAuthTokenIssuer",
    "AudioVideoAuthentication",
    "Internal",
    "External",
    "XmppServer",
    "DataEdgeExternal",
    "AccessEdgeExternal",
    "PICWebService",
    "ProvisionService",
    "WsFedTokenTransfer",
];

/// A usage type in its canonical spelling (case-insensitive on input).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UsageType(String);

impl UsageType {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Builds a usage type from a canonical name already known to be valid
    /// (read back from the store, for instance).
    pub fn from_canonical(name: impl Into<String>) -> Self {
        UsageType(name.into())
    }
}

impl fmt::Display for UsageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The set of usage types this installation knows: the built-in ones plus
/// those declared in the configuration.
#[derive(Clone, Debug)]
pub struct TypeRegistry {
    names: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TypeError {
    #[error("unknown usage type '{0}' (known: {1})")]
    Unknown(String, String),
    #[error("empty usage type list")]
    Empty,
    #[error("usage type '{0}' is named twice")]
    Duplicate(String),
    #[error("invalid usage type name '{0}': use letters, digits, '-' and '_' only")]
    InvalidName(String),
}

impl Default for TypeRegistry {
    fn default() -> Self {
        TypeRegistry {
            names: BUILTIN_TYPES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl TypeRegistry {
    /// Adds the types declared in the configuration. A name that only
    /// differs in case from a known one is the same type, not a new one.
    pub fn with_extra<I, S>(extra: I) -> Result<Self, TypeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut reg = TypeRegistry::default();
        for name in extra {
            let name = name.as_ref().trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(TypeError::InvalidName(name.to_string()));
            }
            if reg.lookup(name).is_some() {
                return Err(TypeError::Duplicate(name.to_string()));
            }
            reg.names.push(name.to_string());
        }
        Ok(reg)
    }

    fn lookup(&self, name: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(|s| s.as_str())
    }

    pub fn parse(&self, name: &str) -> Result<UsageType, TypeError> {
        let name = name.trim();
        self.lookup(name)
            .map(|n| UsageType(n.to_string()))
            .ok_or_else(|| TypeError::Unknown(name.to_string(), self.names.join(", ")))
    }

    /// Parses `A,B,C` (the seeds' `-Type Default,WebServicesInternal`).
    pub fn parse_list(&self, list: &str) -> Result<Vec<UsageType>, TypeError> {
        let mut out: Vec<UsageType> = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let t = self.parse(part)?;
            if out.contains(&t) {
                return Err(TypeError::Duplicate(t.0));
            }
            out.push(t);
        }
        if out.is_empty() {
            return Err(TypeError::Empty);
        }
        Ok(out)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|s| s.as_str())
    }
}

/// Where an assignment applies. A server's effective certificate for a type
/// is the most specific assignment: server, then pool, then site, then global.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    Site(String),
    Pool(String),
    Server(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid scope '{input}': {reason} (expected global, site:NAME, pool:FQDN or server:FQDN)")]
pub struct ScopeError {
    input: String,
    reason: &'static str,
}

/// A scope, or a pattern of scopes where `*` matches any text (`pool:*`,
/// `site:Red*`, `*`): what the filters of check and timeline take.
/// Case-insensitive, like scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopePattern(String);

impl ScopePattern {
    pub fn parse(input: &str) -> Result<ScopePattern, ScopeError> {
        let s = input.trim();
        if s.contains('*') {
            return Ok(ScopePattern(s.to_ascii_lowercase()));
        }
        Ok(ScopePattern(Scope::parse(s)?.key()))
    }

    pub fn matches(&self, scope: &Scope) -> bool {
        glob(self.0.as_bytes(), scope.key().as_bytes())
    }
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl Scope {
    pub fn parse(input: &str) -> Result<Scope, ScopeError> {
        let err = |reason| ScopeError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s.eq_ignore_ascii_case("global") {
            return Ok(Scope::Global);
        }
        let (kind, name) = s.split_once(':').ok_or_else(|| err("unknown scope"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(err("the name after ':' is empty"));
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "site" => {
                // Starting with a letter or digit, it can never be '.' or
                // '..' in a deploy path's {site}.
                if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_. ".contains(c))
                {
                    return Err(err(
                        "a site name starts with a letter or digit and takes letters, digits, space, '.', '-', '_'",
                    ));
                }
                Ok(Scope::Site(name.to_string()))
            }
            "pool" | "server" => {
                if !is_hostname(name) {
                    return Err(err("not a valid host name"));
                }
                let fqdn = name.trim_end_matches('.').to_ascii_lowercase();
                if kind.trim().eq_ignore_ascii_case("pool") {
                    Ok(Scope::Pool(fqdn))
                } else {
                    Ok(Scope::Server(fqdn))
                }
            }
            _ => Err(err("unknown scope kind")),
        }
    }

    /// The case-insensitive identity of the scope: two spellings with the same
    /// key are the same scope.
    pub fn key(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }

    /// Its kind: `global`, `site`, `pool` or `server`.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Site(_) => "site",
            Scope::Pool(_) => "pool",
            Scope::Server(_) => "server",
        }
    }

    /// Specificity rank: higher wins when resolving a server's certificate.
    pub fn rank(&self) -> u8 {
        match self {
            Scope::Global => 0,
            Scope::Site(_) => 1,
            Scope::Pool(_) => 2,
            Scope::Server(_) => 3,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Site(n) => write!(f, "site:{n}"),
            Scope::Pool(n) => write!(f, "pool:{n}"),
            Scope::Server(n) => write!(f, "server:{n}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn is_hostname(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// One (scope, usage type) pair.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SlotKey {
    pub scope: Scope,
    #[serde(rename = "type")]
    pub usage_type: UsageType,
}

impl SlotKey {
    pub fn new(scope: Scope, usage_type: UsageType) -> Self {
        SlotKey { scope, usage_type }
    }
}

impl fmt::Display for SlotKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.usage_type, self.scope)
    }
}

/// Severity of an event (notification filters and `check` use it).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EventSeverity {
    #[default]
    Info,
    Warning,
    Critical,
}

impl EventSeverity {
    pub fn parse(s: &str) -> Option<EventSeverity> {
        match s {
            "info" => Some(EventSeverity::Info),
            "warning" => Some(EventSeverity::Warning),
            "critical" => Some(EventSeverity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventSeverity::Info => "info",
            EventSeverity::Warning => "warning",
            EventSeverity::Critical => "critical",
        }
    }
}

impl fmt::Display for EventSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three places a certificate can hold in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Current,
    Previous,
    Pending,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Current => "current",
            Role::Previous => "previous",
            Role::Pending => "pending",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_patterns_match_with_stars_and_plain_scopes_exactly() {
        let pool = Scope::parse("pool:Pool01.contoso.com").unwrap();
        let site = Scope::parse("site:Redmond").unwrap();
        for (pattern, p, s) in [
            ("pool:*", true, false),
            ("*", true, true),
            ("site:red*", false, true),
            ("*.contoso.com", true, false),
            ("pool:pool01.contoso.com", true, false),
            ("global", false, false),
            ("pool:*02*", false, false),
        ] {
            let pat = ScopePattern::parse(pattern).unwrap();
            assert_eq!(
                (pat.matches(&pool), pat.matches(&site)),
                (p, s),
                "{pattern}"
            );
        }
        assert!(ScopePattern::parse("pool:").is_err());
    }

    #[test]
    fn types_are_case_insensitive_and_canonical() {
        let reg = TypeRegistry::default();
        assert_eq!(
            reg.parse("oauthtokenissuer").unwrap().as_str(),
            "OAuthTokenIssuer"
        );
        assert_eq!(
            reg.parse_list("default, WEBSERVICESINTERNAL,WebServicesExternal")
                .unwrap()
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>(),
            ["Default", "WebServicesInternal", "WebServicesExternal"]
        );
        assert!(matches!(reg.parse("Nope"), Err(TypeError::Unknown(..))));
        assert!(matches!(
            reg.parse_list("Default,default"),
            Err(TypeError::Duplicate(_))
        ));
        assert!(matches!(reg.parse_list(" , "), Err(TypeError::Empty)));
    }

    #[test]
    fn extra_types_extend_the_registry() {
        let reg = TypeRegistry::with_extra(["MyTokenSigner"]).unwrap();
        assert_eq!(
            reg.parse("mytokensigner").unwrap().as_str(),
            "MyTokenSigner"
        );
        assert!(TypeRegistry::with_extra(["default"]).is_err());
        assert!(TypeRegistry::with_extra(["bad name"]).is_err());
    }

    #[test]
    fn scopes_parse_and_normalise() {
        assert_eq!(Scope::parse("GLOBAL").unwrap(), Scope::Global);
        assert_eq!(
            Scope::parse("pool:FE01.Contoso.com.").unwrap(),
            Scope::Pool("fe01.contoso.com".into())
        );
        assert_eq!(
            Scope::parse("Site:Redmond").unwrap().to_string(),
            "site:Redmond"
        );
        assert_eq!(Scope::parse("site:Redmond").unwrap().key(), "site:redmond");
        assert_eq!(
            Scope::parse("server:a.b").unwrap(),
            Scope::Server("a.b".into())
        );
        for bad in [
            "",
            "pool:",
            "pool:-bad-.com",
            "planet:earth",
            "server:a b",
            "galaxy",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }
}
