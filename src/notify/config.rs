//! `[notify]`, `[[notify.email]]`, `[[notify.webhook]]`, `[expiry]` and
//! `[check]`: where alerts go, which events each channel takes, how
//! delivery is retried, when the expiry watch runs and what `check` calls
//! a warning.

use std::path::PathBuf;

use serde::Deserialize;

pub use crate::cert::types::EventSeverity;

/// Which events a channel takes. Every list empty = everything.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Event kinds, with `*` as a wildcard: `["roll.*", "expiry.*"]`.
    #[serde(default)]
    pub events: Vec<String>,
    /// The least severity delivered.
    #[serde(default = "min_severity_default")]
    pub min_severity: EventSeverity,
    /// Usage types (events without a slot always pass).
    #[serde(default)]
    pub types: Vec<String>,
    /// Scopes, with `*` as a wildcard: `["global", "pool:*"]`.
    #[serde(default)]
    pub scopes: Vec<String>,
}

fn min_severity_default() -> EventSeverity {
    EventSeverity::Info
}

/// `*` matches any run of characters; everything else literally,
/// case-insensitively.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

impl Filter {
    pub fn matches(
        &self,
        kind: &str,
        severity: EventSeverity,
        usage_type: Option<&str>,
        scope: Option<&str>,
    ) -> bool {
        if severity < self.min_severity {
            return false;
        }
        if !self.events.is_empty() && !self.events.iter().any(|p| glob_match(p, kind)) {
            return false;
        }
        if let Some(t) = usage_type
            && !self.types.is_empty()
            && !self.types.iter().any(|x| x.eq_ignore_ascii_case(t))
        {
            return false;
        }
        if let Some(s) = scope
            && !self.scopes.is_empty()
            && !self.scopes.iter().any(|p| glob_match(p, s))
        {
            return false;
        }
        true
    }
}

/// How an SMTP connection is protected.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS, required (the connection fails if the server lacks it).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No encryption: only to a loopback host.
    None,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    pub name: String,
    pub host: String,
    /// Default: 587 for starttls, 465 for implicit, 25 for none.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Extra trust anchor (PEM) for the server's certificate, e.g. an
    /// internal CA.
    pub ca_file: Option<PathBuf>,
    /// The whole send (connect, TLS, login, message) must finish within.
    #[serde(default = "email_timeout_default")]
    pub timeout_seconds: u32,
    #[serde(flatten)]
    pub filter: Filter,
}

fn email_timeout_default() -> u32 {
    30
}

/// Body format of a webhook.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// certroll's versioned JSON event (see the README).
    #[default]
    Json,
    /// A Slack incoming-webhook message.
    Slack,
    /// A Microsoft Teams incoming-webhook card.
    Teams,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Shared secret for the `X-Certroll-Signature-256: sha256=...` HMAC.
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
    pub ca_file: Option<PathBuf>,
    #[serde(default = "webhook_timeout_default")]
    pub timeout_seconds: u32,
    #[serde(flatten)]
    pub filter: Filter,
}

fn webhook_timeout_default() -> u32 {
    10
}

/// `[notify]`: the channels and how delivery is retried.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    pub email: Vec<EmailChannel>,
    pub webhook: Vec<WebhookChannel>,
    /// First retry delay after a failed attempt (doubles, with jitter).
    pub retry_base_seconds: u32,
    pub retry_max_seconds: u32,
    /// A delivery that failed this many times is dead.
    pub max_attempts: u32,
    /// A delivery still failing this long after its event is dead; an event
    /// older than this when first seen is not sent at all.
    pub max_age_hours: u32,
    /// A claimed delivery is reserved this long for its sender.
    pub lease_seconds: u32,
    /// The most deliveries sent at once.
    pub batch_size: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            email: Vec::new(),
            webhook: Vec::new(),
            retry_base_seconds: 5,
            retry_max_seconds: 3600,
            max_attempts: 12,
            max_age_hours: 72,
            lease_seconds: 120,
            batch_size: 32,
        }
    }
}

impl NotifyConfig {
    pub fn channel_names(&self) -> impl Iterator<Item = &str> {
        self.email
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.webhook.iter().map(|c| c.name.as_str()))
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let mut names: Vec<&str> = Vec::new();
        for name in self.channel_names() {
            if name.trim().is_empty() {
                return Err("a channel has an empty name".into());
            }
            if names.contains(&name) {
                return Err(format!("two channels are named '{name}'"));
            }
            names.push(name);
        }
        for c in &self.email {
            let ctx = |m: String| format!("[[notify.email]] '{}': {m}", c.name);
            if c.to.is_empty() {
                return Err(ctx("'to' lists no recipient".into()));
            }
            for addr in c.to.iter().chain(std::iter::once(&c.from)) {
                addr.parse::<lettre::Address>()
                    .map_err(|e| ctx(format!("'{addr}' is not an email address ({e})")))?;
            }
            if c.tls == SmtpTls::None && !is_loopback(&c.host) {
                return Err(ctx(format!(
                    "tls = \"none\" is only allowed to a loopback host, not '{}'",
                    c.host
                )));
            }
            if c.password_file.is_some() && c.password_env.is_some() {
                return Err(ctx("give password_file or password_env, not both".into()));
            }
            if (c.password_file.is_some() || c.password_env.is_some()) && c.username.is_none() {
                return Err(ctx("a password needs a username".into()));
            }
            if c.timeout_seconds == 0 {
                return Err(ctx("timeout_seconds must be at least 1".into()));
            }
            check_filter(&c.filter).map_err(ctx)?;
        }
        for c in &self.webhook {
            let ctx = |m: String| format!("[[notify.webhook]] '{}': {m}", c.name);
            let url = reqwest::Url::parse(&c.url)
                .map_err(|e| ctx(format!("'{}' is not a URL ({e})", c.url)))?;
            match url.scheme() {
                "https" => {}
                "http" if url.host_str().is_some_and(is_loopback) => {}
                "http" => {
                    return Err(ctx(
                        "plain http is only allowed to a loopback host; use https".into(),
                    ));
                }
                other => return Err(ctx(format!("unsupported URL scheme '{other}'"))),
            }
            if c.secret_file.is_some() && c.secret_env.is_some() {
                return Err(ctx("give secret_file or secret_env, not both".into()));
            }
            if c.timeout_seconds == 0 {
                return Err(ctx("timeout_seconds must be at least 1".into()));
            }
            check_filter(&c.filter).map_err(ctx)?;
        }
        for (key, v) in [
            ("max_attempts", self.max_attempts),
            ("lease_seconds", self.lease_seconds),
            ("batch_size", self.batch_size),
            ("retry_base_seconds", self.retry_base_seconds),
        ] {
            if v == 0 {
                return Err(format!("[notify] {key} must be at least 1"));
            }
        }
        Ok(())
    }
}

fn check_filter(f: &Filter) -> Result<(), String> {
    for e in &f.events {
        if e.trim().is_empty() {
            return Err("an empty pattern in 'events'".into());
        }
    }
    Ok(())
}

/// `localhost`, `127.x.x.x` or `::1`.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `[expiry]`: the expiry watch.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct ExpiryConfig {
    /// When the scan runs (cron, in `timezone`); it also runs when serve
    /// starts.
    pub schedule: String,
    /// Days before expiry at which to alert (each once); expiry itself
    /// always alerts. Overridable per type with `expiry_thresholds_days` in
    /// `[policy.<Type>]`.
    pub thresholds_days: Vec<u32>,
    /// How long a previous certificate still matters after it was replaced
    /// (tokens signed with it must keep validating).
    pub previous_overlap_hours: u32,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig {
            schedule: "0 8 * * *".into(),
            thresholds_days: vec![60, 30, 14, 7, 3, 1],
            previous_overlap_hours: 24,
        }
    }
}

/// `[check]`: what `certroll check` reports.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct CheckConfig {
    /// A current certificate expiring within this many days with nothing
    /// pending is a WARNING...
    pub warning_days: u32,
    /// ...and within this many, CRITICAL.
    pub critical_days: u32,
    /// A certificate request still waiting for the CA's answer after this
    /// many days is a WARNING (0: never).
    pub request_warning_days: u32,
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            warning_days: 30,
            critical_days: 7,
            request_warning_days: 14,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_filters() {
        assert!(glob_match("roll.*", "roll.succeeded"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("pool:*.contoso.com", "pool:fe01.contoso.com"));
        assert!(!glob_match("roll.*", "expiry.no_successor"));
        assert!(glob_match("ROLL.FAILED", "roll.failed"));
        let f = Filter {
            events: vec!["roll.*".into()],
            min_severity: EventSeverity::Warning,
            types: vec!["OAuthTokenIssuer".into()],
            scopes: vec!["global".into()],
        };
        assert!(f.matches(
            "roll.failed",
            EventSeverity::Critical,
            Some("OAuthTokenIssuer"),
            Some("global")
        ));
        assert!(!f.matches(
            "roll.succeeded",
            EventSeverity::Info,
            Some("OAuthTokenIssuer"),
            Some("global")
        ));
        assert!(!f.matches(
            "roll.failed",
            EventSeverity::Critical,
            Some("Default"),
            Some("global")
        ));
        assert!(!f.matches(
            "roll.failed",
            EventSeverity::Critical,
            Some("OAuthTokenIssuer"),
            Some("pool:x")
        ));
        assert!(!f.matches("expiry.expired", EventSeverity::Critical, None, None));
        assert!(Filter::default().matches("notify.test", EventSeverity::Info, None, None));
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost"));
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(!is_loopback("smtp.contoso.com"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
