//! The TOML configuration (`config/certroll.toml` documents every key) and
//! the data directory it points to.
//!
//! Where the file comes from: `--config FILE` or `CERTROLL_CONFIG`, else
//! `/etc/certroll/certroll.toml` when it exists, else built-in defaults.
//! Unknown keys are refused, so a typo never silently turns a rule off.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use serde::Deserialize;

use crate::cert::chain::TrustAnchors;
use crate::cert::policy::{Policy, PolicyOverrides};
use crate::cert::{CertInfo, TypeRegistry, UsageType};
pub use crate::deploy::config::{DeploySettings, ServerConfig, TargetConfig};
pub use crate::notify::config::{CheckConfig, ExpiryConfig, NotifyConfig};

/// The system-wide configuration file, used when no other is named.
pub const SYSTEM_CONFIG: &str = "/etc/certroll/certroll.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration: {error}", path.display())]
    Read {
        path: PathBuf,
        error: crate::input::InputError,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "no data directory: set --data-dir, CERTROLL_DATA_DIR or data_dir in the configuration (HOME is not set)"
    )]
    NoDataDir,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    timezone: Option<String>,
    sip_domain: Option<String>,
    #[serde(default)]
    extra_types: Vec<String>,
    #[serde(default)]
    policy: BTreeMap<String, PolicyOverrides>,
    #[serde(default)]
    renewal: BTreeMap<String, crate::cert::renewal::RenewalTable>,
    #[serde(default)]
    acme: AcmeConfig,
    #[serde(default)]
    serve: ServeConfig,
    #[serde(default)]
    notify: NotifyConfig,
    #[serde(default)]
    expiry: ExpiryConfig,
    #[serde(default)]
    check: CheckConfig,
    #[serde(default)]
    deploy: DeploySettings,
    #[serde(default)]
    server: Vec<ServerConfig>,
    #[serde(default)]
    target: Vec<TargetConfig>,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default)]
    store: StoreConfig,
}

/// `[acme]`: the ACME CA (RFC 8555) of the `acme` renewal method and of
/// `certroll request --acme`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// The CA's directory, e.g. https://acme-v02.api.letsencrypt.org/directory.
    pub directory_url: Option<String>,
    /// Contact URIs of the account (mailto:...).
    pub contact: Vec<String>,
    /// PEM roots to trust for the CA's own HTTPS (a private ACME CA).
    pub ca_file: Option<PathBuf>,
    /// External account binding (enterprise ACME CAs): the key id, and a
    /// file holding the base64url HMAC key.
    pub eab_kid: Option<String>,
    pub eab_hmac_key_file: Option<PathBuf>,
    /// `http-01` (answered by serve's [http] listener, or files in
    /// `webroot`) or `dns-01` (through `dns_hook`).
    pub challenge: String,
    pub webroot: Option<PathBuf>,
    /// certbot's --manual-auth-hook convention: run with CERTBOT_DOMAIN,
    /// CERTBOT_VALIDATION and CERTBOT_TOKEN in its environment.
    pub dns_hook: Option<String>,
    pub dns_cleanup_hook: Option<String>,
    /// How long an order may take, challenges and issuance together.
    pub timeout_seconds: u32,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            directory_url: None,
            contact: Vec::new(),
            ca_file: None,
            eab_kid: None,
            eab_hmac_key_file: None,
            challenge: "http-01".into(),
            webroot: None,
            dns_hook: None,
            dns_cleanup_hook: None,
            timeout_seconds: 120,
        }
    }
}

impl AcmeConfig {
    fn validate(&self) -> Result<(), String> {
        if let Some(u) = &self.directory_url
            && !u.starts_with("https://")
        {
            return Err(format!(
                "[acme] directory_url: '{u}' is not an https:// URL"
            ));
        }
        match self.challenge.as_str() {
            "http-01" => {}
            "dns-01" if self.dns_hook.is_none() => {
                return Err("[acme] challenge = \"dns-01\" needs a dns_hook".into());
            }
            "dns-01" => {}
            other => {
                return Err(format!(
                    "[acme] challenge: '{other}': use http-01 or dns-01"
                ));
            }
        }
        if self.eab_kid.is_some() != self.eab_hmac_key_file.is_some() {
            return Err("[acme] eab_kid and eab_hmac_key_file go together".into());
        }
        for (key, path) in [
            ("ca_file", &self.ca_file),
            ("eab_hmac_key_file", &self.eab_hmac_key_file),
            ("webroot", &self.webroot),
        ] {
            if let Some(p) = path
                && !(p.is_absolute() && p.exists())
            {
                return Err(format!(
                    "[acme] {key}: {} is not an absolute path that exists",
                    p.display()
                ));
            }
        }
        if !(10..=3600).contains(&self.timeout_seconds) {
            return Err("[acme] timeout_seconds must be from 10 to 3600".into());
        }
        for c in &self.contact {
            if !c.starts_with("mailto:") {
                return Err(format!("[acme] contact: '{c}' is not a mailto: URI"));
            }
        }
        Ok(())
    }
}

/// `[store]`: where the store lives. Without `url`, SQLite in the data
/// directory (the embedded default); with a `postgres://` URL, a
/// PostgreSQL database that engines and agents on many machines share.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://USER@HOST:PORT/DBNAME` (no password in it: see
    /// `password_file` and `CERTROLL_STORE_PASSWORD`).
    pub url: Option<String>,
    /// A file holding the database password (its first line).
    pub password_file: Option<PathBuf>,
    /// `disable`, `prefer` (the default), `require` or `verify-full`.
    pub sslmode: Option<String>,
    /// The CA certificates (PEM) that sign the server's certificate, for
    /// `verify-full`; without it, the system's web roots.
    pub ca_file: Option<PathBuf>,
    /// Wake-ups through LISTEN/NOTIFY; off behind a pooler in transaction
    /// mode, which drops LISTEN (polling then notices changes).
    pub listen: bool,
    /// The master key that seals private keys; by default
    /// `$CREDENTIALS_DIRECTORY/certroll-master-key` (a systemd credential)
    /// when that exists, else `master.key` in the data directory.
    pub master_key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            password_file: None,
            sslmode: None,
            ca_file: None,
            listen: true,
            master_key_file: None,
        }
    }
}

/// The environment variable that may hold the database password.
pub const STORE_PASSWORD_ENV: &str = "CERTROLL_STORE_PASSWORD";

/// The database password: the first line of `file`, else
/// `CERTROLL_STORE_PASSWORD`, else none.
pub fn store_password(file: Option<&Path>) -> Result<Option<zeroize::Zeroizing<String>>, String> {
    match file {
        Some(f) => crate::input::secret(Some(f), None, "database password"),
        None => Ok(std::env::var(STORE_PASSWORD_ENV)
            .ok()
            .map(zeroize::Zeroizing::new)),
    }
}

/// The systemd credential name of the master key.
pub const MASTER_KEY_CREDENTIAL: &str = "certroll-master-key";

impl StoreConfig {
    fn sslmode(&self) -> Result<Option<crate::store::SslMode>, String> {
        self.sslmode
            .as_deref()
            .map(|m| {
                crate::store::SslMode::parse(m).ok_or_else(|| {
                    format!(
                        "[store] sslmode: '{m}' is not one of disable, prefer, require, verify-full"
                    )
                })
            })
            .transpose()
    }

    fn validate(&self) -> Result<(), String> {
        let mode = self.sslmode()?;
        if let Some(url) = &self.url {
            crate::store::PostgresTarget::parse(url, None, mode, None, self.listen)
                .map_err(|e| format!("[store] url: {e}"))?;
        } else if self.password_file.is_some() || self.sslmode.is_some() || self.ca_file.is_some() {
            return Err("[store] password_file, sslmode and ca_file need a PostgreSQL url".into());
        }
        Ok(())
    }

    /// The store at `data_dir` as configured: the database (the password
    /// read from `password_file` or `CERTROLL_STORE_PASSWORD`) and the
    /// master key's file.
    pub fn location(&self, data_dir: &Path) -> Result<crate::store::Location, String> {
        let database = match &self.url {
            None => crate::store::Database::Sqlite,
            Some(url) => {
                let password = store_password(self.password_file.as_deref())?;
                let target = crate::store::PostgresTarget::parse(
                    url,
                    password.as_ref().map(|p| p.as_str()),
                    self.sslmode()?,
                    self.ca_file.clone(),
                    self.listen,
                )
                .map_err(|e| format!("[store] url: {e}"))?;
                crate::store::Database::Postgres(Box::new(target))
            }
        };
        let master_key_file = self.master_key_file.clone().or_else(|| {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
            let path = Path::new(&dir).join(MASTER_KEY_CREDENTIAL);
            path.exists().then_some(path)
        });
        Ok(crate::store::Location {
            data_dir: data_dir.to_path_buf(),
            database,
            master_key_file,
        })
    }
}

/// `[http]`: the service's HTTP listener (off unless `listen` is set).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on, e.g. "127.0.0.1:8440".
    pub listen: Option<String>,
    /// At most this many slots get series of their own in /metrics (those
    /// whose certificates expire soonest); aggregates cover every slot.
    pub metrics_max_slots: u32,
    /// Connections open at once; more are closed at once.
    pub max_connections: u32,
    /// A client must send a request's headers within this many seconds
    /// (also the keep-alive idle time between requests).
    pub header_timeout_seconds: u32,
    /// A connection is closed this long after it opened, whatever it does
    /// (a client that reads an answer too slowly).
    pub connection_timeout_seconds: u32,
    /// The HTTP API under /api/v1/ (accounts from `certroll user add`).
    pub api: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: None,
            api: false,
            metrics_max_slots: 10_000,
            max_connections: 512,
            header_timeout_seconds: 10,
            connection_timeout_seconds: 120,
        }
    }
}

/// `[serve]`: how the service runs the roll queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// How long a claimed job is reserved for its holder; a holder that
    /// dies loses its jobs to others after this.
    pub lease_seconds: u32,
    /// How often the service looks for changes made by other processes.
    pub poll_interval_ms: u32,
    /// Most jobs run in one transaction.
    pub batch_size: u32,
    /// A roll this late after its instant raises roll.late.
    pub late_after_seconds: u32,
    /// Jobs are claimed this long before their instant, then run at it.
    pub preclaim_ms: u32,
    /// First retry delay after a transient failure (doubles each time).
    pub retry_base_ms: u32,
    /// Longest retry delay.
    pub retry_max_seconds: u32,
    /// A job attempted this many times fails for good.
    pub max_attempts: u32,
    /// Cron expression (in `timezone`) for store maintenance; empty: never.
    pub maintenance: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            lease_seconds: 30,
            poll_interval_ms: 250,
            batch_size: 500,
            late_after_seconds: 60,
            preclaim_ms: 50,
            retry_base_ms: 500,
            retry_max_seconds: 300,
            max_attempts: 10,
            maintenance: Some("0 3 * * *".into()),
        }
    }
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    /// IANA time zone for dates typed without an offset.
    pub timezone: Tz,
    /// The SIP domain certificates of some types must name.
    pub sip_domain: Option<String>,
    pub types: TypeRegistry,
    policies: HashMap<UsageType, Policy>,
    pub serve: ServeConfig,
    pub notify: NotifyConfig,
    pub expiry: ExpiryConfig,
    pub check: CheckConfig,
    pub deploy: DeploySettings,
    pub servers: Vec<ServerConfig>,
    pub targets: Vec<TargetConfig>,
    pub http: HttpConfig,
    pub store: StoreConfig,
    /// Rollover policies (`[renewal.<Type>]`); nothing renews without one.
    pub renewal: BTreeMap<UsageType, crate::cert::renewal::RenewalPolicy>,
    pub acme: AcmeConfig,
}

/// The system's time zone, as cron takes it: TZ (an IANA name, or a path
/// into a zoneinfo directory; empty is UTC), else the zone /etc/localtime
/// links to, else /etc/timezone (Debian), else UTC.
pub fn system_zone() -> Tz {
    fn from_path(p: &Path) -> Option<Tz> {
        let s = p.to_string_lossy();
        let i = s.find("zoneinfo/")?;
        s[i + "zoneinfo/".len()..].parse().ok()
    }
    if let Ok(tz) = std::env::var("TZ") {
        let name = tz.trim_start_matches(':');
        if name.is_empty() {
            return Tz::UTC;
        }
        if let Some(z) = name.parse().ok().or_else(|| from_path(Path::new(name))) {
            return z;
        }
    }
    if let Some(z) = std::fs::read_link("/etc/localtime")
        .ok()
        .and_then(|t| from_path(&t))
    {
        return z;
    }
    std::fs::read_to_string("/etc/timezone")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(Tz::UTC)
}

impl Default for Config {
    fn default() -> Self {
        Config::from_raw(RawConfig::default(), None).expect("built-in defaults are valid")
    }
}

impl Config {
    /// Loads `explicit` (which must exist), else the system file when it
    /// exists, else the built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(SYSTEM_CONFIG)).filter(|p| p.exists()),
        };
        match path {
            None => Ok(Config::default()),
            Some(path) => {
                let text = crate::input::read_text(&path, crate::input::MAX_TEXT_FILE)
                    .map_err(|error| ConfigError::Read {
                        path: path.clone(),
                        error,
                    })?
                    .ok_or_else(|| ConfigError::Invalid {
                        path: path.clone(),
                        message: "not UTF-8 text".into(),
                    })?;
                Config::parse(&text, &path)
            }
        }
    }

    /// Parses configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
        Config::from_raw(raw, Some(path))
    }

    fn from_raw(raw: RawConfig, path: Option<&Path>) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.map(Path::to_path_buf).unwrap_or_default(),
            message,
        };
        let timezone = match raw.timezone.as_deref() {
            None => system_zone(),
            Some(name) => crate::schedule::when::parse_zone(name)
                .map_err(|e| invalid(format!("timezone: {e}")))?,
        };
        let sip_domain = match raw.sip_domain {
            None => None,
            Some(d) if d.trim().is_empty() => None,
            Some(d) => {
                let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
                if d.contains('*') || !d.contains('.') || d.contains(char::is_whitespace) {
                    return Err(invalid(format!("sip_domain: '{d}' is not a domain name")));
                }
                Some(d)
            }
        };
        let types = TypeRegistry::with_extra(&raw.extra_types)
            .map_err(|e| invalid(format!("extra_types: {e}")))?;
        let mut policies = HashMap::new();
        for name in types.names() {
            let t = UsageType::from_canonical(name);
            policies.insert(t, Policy::builtin(name));
        }
        for (name, overrides) in &raw.policy {
            let t = types
                .parse(name)
                .map_err(|e| invalid(format!("[policy.{name}]: {e}")))?;
            let policy = policies.get_mut(&t).expect("every known type has a policy");
            policy
                .apply(overrides)
                .map_err(|e| invalid(format!("[policy.{name}]: {e}")))?;
            if let Some(bundle) = &policy.trust_bundle
                && !(bundle.is_absolute() && bundle.exists())
            {
                return Err(invalid(format!(
                    "[policy.{name}] trust_bundle: {} is not an absolute path to a PEM file or a directory of them",
                    bundle.display()
                )));
            }
        }
        let mut renewal = BTreeMap::new();
        for (name, table) in &raw.renewal {
            let t = types
                .parse(name)
                .map_err(|e| invalid(format!("[renewal.{name}]: {e}")))?;
            let p = table
                .policy()
                .map_err(|e| invalid(format!("[renewal.{name}] {e}")))?;
            let policy = &policies[&t];
            if p.method == crate::cert::renewal::Method::SelfSigned && !policy.self_signed_allowed {
                return Err(invalid(format!(
                    "[renewal.{name}] method = \"self-signed\": {t} certificates must come from a CA (set self_signed_allowed in [policy.{t}] to allow it, or use method = \"request\")"
                )));
            }
            if p.method == crate::cert::renewal::Method::Acme {
                if raw.acme.directory_url.is_none() {
                    return Err(invalid(format!(
                        "[renewal.{name}] method = \"acme\" needs [acme] directory_url"
                    )));
                }
                if raw.acme.challenge == "http-01"
                    && raw.acme.webroot.is_none()
                    && raw.http.listen.is_none()
                {
                    return Err(invalid(format!(
                        "[renewal.{name}] method = \"acme\" with http-01 needs [http] listen (serve answers the CA) or [acme] webroot"
                    )));
                }
            }
            renewal.insert(t, p);
        }
        let mut serve = raw.serve;
        if serve
            .maintenance
            .as_deref()
            .is_some_and(|m| m.trim().is_empty())
        {
            serve.maintenance = None;
        }
        if let Some(expr) = &serve.maintenance {
            crate::schedule::cron::Duty::new("maintenance", expr, timezone)
                .map_err(|e| invalid(format!("[serve] maintenance: {e}")))?;
        }
        for (key, value, min) in [
            ("lease_seconds", serve.lease_seconds, 1),
            ("poll_interval_ms", serve.poll_interval_ms, 10),
            ("batch_size", serve.batch_size, 1),
            ("max_attempts", serve.max_attempts, 1),
        ] {
            if value < min {
                return Err(invalid(format!("[serve] {key} must be at least {min}")));
            }
        }
        // A claim made ahead of the instant must outlive it by far.
        let preclaim_max = (u64::from(serve.lease_seconds) * 100).min(5000);
        if u64::from(serve.preclaim_ms) > preclaim_max {
            return Err(invalid(format!(
                "[serve] preclaim_ms must be at most a tenth of lease_seconds and at most 5000 (here {preclaim_max})"
            )));
        }
        if serve.poll_interval_ms > 1000 {
            return Err(invalid(
                "[serve] poll_interval_ms must be at most 1000 (changes by other processes must be noticed within 1 s)".into(),
            ));
        }
        for (key, value, min, max) in [
            ("max_connections", raw.http.max_connections, 1, 100_000),
            (
                "header_timeout_seconds",
                raw.http.header_timeout_seconds,
                1,
                3600,
            ),
            (
                "connection_timeout_seconds",
                raw.http.connection_timeout_seconds,
                1,
                86_400,
            ),
        ] {
            if !(min..=max).contains(&value) {
                return Err(invalid(format!("[http] {key} must be from {min} to {max}")));
            }
        }
        raw.notify.validate().map_err(invalid)?;
        crate::schedule::cron::Duty::new("expiry-scan", &raw.expiry.schedule, timezone)
            .map_err(|e| invalid(format!("[expiry] schedule: {e}")))?;
        if raw.check.critical_days > raw.check.warning_days {
            return Err(invalid(
                "[check] critical_days must not exceed warning_days".into(),
            ));
        }
        crate::deploy::config::validate(&raw.server, &raw.target).map_err(&invalid)?;
        for t in &raw.target {
            for name in &t.types {
                types
                    .parse(name)
                    .map_err(|e| invalid(format!("[[target]] '{}': {e}", t.name)))?;
            }
            if t.types.len() != 1 && t.file.iter().any(|f| !f.path.contains("{type}")) {
                return Err(invalid(format!(
                    "[[target]] '{}': a target for several types needs {{type}} in its file paths",
                    t.name
                )));
            }
        }
        raw.store.validate().map_err(&invalid)?;
        raw.acme.validate().map_err(&invalid)?;
        if let Some(addr) = &raw.http.listen {
            addr.parse::<std::net::SocketAddr>().map_err(|_| {
                invalid(format!(
                    "[http] listen: '{addr}' is not an address like 127.0.0.1:8440"
                ))
            })?;
        }
        Ok(Config {
            source: path.map(Path::to_path_buf),
            data_dir: raw.data_dir,
            timezone,
            sip_domain,
            types,
            policies,
            serve,
            notify: raw.notify,
            expiry: raw.expiry,
            check: raw.check,
            deploy: raw.deploy,
            servers: raw.server,
            targets: raw.target,
            http: raw.http,
            store: raw.store,
            renewal,
            acme: raw.acme,
        })
    }

    /// The policy of a type, `None` if the type is not configured (any
    /// more: a job scheduled under an older configuration).
    pub fn try_policy(&self, usage_type: &UsageType) -> Option<&Policy> {
        self.policies.get(usage_type)
    }

    /// The expiry watch's rules for a slot.
    pub fn expiry_rules(&self, slot: &crate::cert::SlotKey) -> crate::cert::expiry::ExpiryRules {
        crate::cert::expiry::ExpiryRules {
            thresholds_days: self.expiry_thresholds(&slot.usage_type),
            previous_overlap: chrono::Duration::hours(self.expiry.previous_overlap_hours.into()),
            pending_margin: chrono::Duration::days(
                self.try_policy(&slot.usage_type)
                    .map_or(30, |p| p.min_remaining_days)
                    .into(),
            ),
        }
    }

    /// Whether a type's keys are published as a JWKS.
    pub fn publishes_jwks(&self, usage_type: &UsageType) -> bool {
        self.try_policy(usage_type).is_some_and(|p| p.publish_jwks)
    }

    /// Days before expiry at which the watch alerts for a type.
    pub fn expiry_thresholds(&self, usage_type: &UsageType) -> Vec<u32> {
        let mut t = self
            .try_policy(usage_type)
            .and_then(|p| p.expiry_thresholds_days.clone())
            .unwrap_or_else(|| self.expiry.thresholds_days.clone());
        t.sort_unstable_by(|a, b| b.cmp(a));
        t.dedup();
        t
    }

    /// The trusted roots of a `trust_bundle`: the certificates of a PEM
    /// file, or of every PEM file in a directory (not its subdirectories),
    /// as /etc/ssl/certs holds them. Files that hold no certificate are
    /// skipped; at most 10,000 files and 16 MiB each are read.
    pub fn trust_anchors(&self, path: &Path) -> Result<TrustAnchors, ConfigError> {
        let read_err = |p: &Path, error| ConfigError::Read {
            path: p.to_path_buf(),
            error,
        };
        let mut files = Vec::new();
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| read_err(path, crate::input::InputError::Io(e)))?;
            for entry in entries.flatten().take(10_000) {
                let p = entry.path();
                if p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
        } else {
            files.push(path.to_path_buf());
        }
        let mut certs: Vec<CertInfo> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for file in &files {
            let data = match crate::input::read(file, crate::input::MAX_CERT_FILE) {
                Ok(d) => d,
                Err(e) if files.len() == 1 => return Err(read_err(file, e)),
                Err(_) => continue,
            };
            let Ok(blocks) = crate::cert::pem::parse_blocks(&String::from_utf8_lossy(&data)) else {
                continue;
            };
            for block in blocks.iter().filter(|b| b.label == "CERTIFICATE") {
                if let Ok(c) = CertInfo::from_der(&block.der)
                    && seen.insert(c.thumbprint.clone())
                {
                    certs.push(c);
                }
            }
        }
        if certs.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "trust_bundle: no certificate in it".into(),
            });
        }
        Ok(TrustAnchors {
            source: path.display().to_string(),
            certs,
        })
    }

    pub fn policy(&self, usage_type: &UsageType) -> &Policy {
        self.policies
            .get(usage_type)
            .expect("usage types come from this configuration's registry")
    }

    /// The data directory: `flag` (the `--data-dir` flag or
    /// `CERTROLL_DATA_DIR`), else `data_dir` from the file, else
    /// `$XDG_STATE_HOME/certroll`, else `~/.local/state/certroll`.
    pub fn data_dir(&self, flag: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(d) = flag {
            return Ok(d.to_path_buf());
        }
        if let Some(d) = &self.data_dir {
            return Ok(d.clone());
        }
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(state) = env("XDG_STATE_HOME") {
            return Ok(state.join("certroll"));
        }
        env("HOME")
            .map(|h| h.join(".local/state/certroll"))
            .ok_or(ConfigError::NoDataDir)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn defaults_without_a_file() {
        let c = Config::default();
        assert_eq!(c.timezone, system_zone());
        assert!(c.sip_domain.is_none());
        let t = c.types.parse("oauthtokenissuer").unwrap();
        assert_eq!(c.policy(&t).min_rsa_bits, 2048);
    }

    #[test]
    fn policies_and_extra_types_are_read() {
        let c = parse(
            r#"
            timezone = "Europe/London"
            sip_domain = "Contoso.com."
            extra_types = ["MyTokenSigner"]
            [policy.oauthtokenissuer]
            min_rsa_bits = 3072
            [policy.MyTokenSigner]
            require_private_key = false
            "#,
        )
        .unwrap();
        assert_eq!(c.timezone, chrono_tz::Europe::London);
        assert_eq!(c.sip_domain.as_deref(), Some("contoso.com"));
        let oauth = c.types.parse("OAuthTokenIssuer").unwrap();
        assert_eq!(c.policy(&oauth).min_rsa_bits, 3072);
        let mine = c.types.parse("mytokensigner").unwrap();
        assert!(!c.policy(&mine).require_private_key);
    }

    /// config/certroll.toml documents the defaults: loading it must change
    /// nothing.
    #[test]
    fn the_example_config_is_valid_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/certroll.toml");
        let example = Config::load(Some(&path)).unwrap();
        let defaults = Config::default();
        assert_eq!(example.timezone, defaults.timezone);
        assert_eq!(example.sip_domain, defaults.sip_domain);
        assert_eq!(example.data_dir, defaults.data_dir);
        assert_eq!(example.serve, defaults.serve);
        assert_eq!(example.notify, defaults.notify);
        assert_eq!(example.expiry, defaults.expiry);
        assert_eq!(example.check, defaults.check);
        assert_eq!(example.deploy, defaults.deploy);
        assert!(example.servers.is_empty() && example.targets.is_empty());
        assert_eq!(example.http, defaults.http);
        assert_eq!(example.acme, defaults.acme);
        for name in defaults.types.names() {
            let t = UsageType::from_canonical(name);
            assert_eq!(example.policy(&t), defaults.policy(&t), "{name}");
        }
        // Every key is documented in it. The literal below names every
        // field (no `..Default::default()`), so a new key fails to compile
        // here until it is added, and then fails the test until documented.
        let every = PolicyOverrides {
            min_rsa_bits: Some(0),
            min_ec_bits: Some(0),
            allow_other_key_algorithms: Some(false),
            require_private_key: Some(false),
            required_names: Some(vec![]),
            require_sip_domain: Some(false),
            required_ekus: Some(vec![]),
            min_remaining_days: Some(0),
            sha1_signature: Some(crate::cert::policy::Level::Warn),
            recommended_lead_hours: Some(0),
            expiry_thresholds_days: Some(vec![]),
            publish_jwks: Some(true),
            self_signed_allowed: Some(true),
            trust_bundle: Some(PathBuf::new()),
            scopes: Some(vec![]),
        };
        let every = RawConfig {
            data_dir: Some(PathBuf::new()),
            timezone: Some(String::new()),
            sip_domain: Some(String::new()),
            extra_types: vec![],
            policy: BTreeMap::from([("Default".to_string(), every)]),
            renewal: BTreeMap::from([(
                "OAuthTokenIssuer".to_string(),
                crate::cert::renewal::RenewalTable {
                    method: crate::cert::renewal::Method::SelfSigned,
                    generate_before_days: Some(1),
                    generate_at_percent: Some(1),
                    promote_before_days: Some(1),
                    critical_before_days: Some(1),
                    key: Some(String::new()),
                    validity_days: Some(1),
                    scopes: Some(vec![]),
                    require_staged: Some(false),
                    retry_minutes: Some(1),
                    retire_previous_after_hours: Some(1),
                },
            )]),
            serve: ServeConfig::default(),
            notify: NotifyConfig {
                email: vec![serde_json::from_value(serde_json::json!({
                    "name": "x", "host": "h", "port": 1, "tls": "starttls", "from": "a@b.c", "to": ["a@b.c"],
                    "username": "u", "password_file": "/p", "password_env": "E", "ca_file": "/c",
                    "timeout_seconds": 1, "events": [], "min_severity": "info", "types": [], "scopes": [],
                }))
                .unwrap()],
                webhook: vec![serde_json::from_value(serde_json::json!({
                    "name": "y", "url": "https://h", "format": "json", "secret_file": "/s", "secret_env": "S",
                    "ca_file": "/c", "timeout_seconds": 1,
                }))
                .unwrap()],
                ..NotifyConfig::default()
            },
            expiry: ExpiryConfig::default(),
            check: CheckConfig::default(),
            deploy: DeploySettings::default(),
            server: vec![ServerConfig {
                name: "s".into(),
                pool: Some("p".into()),
                site: Some("x".into()),
            }],
            target: vec![toml::from_str(
                "name = \"t\"\nscope = \"global\"\ntypes = []\nreload = \"r\"\nreload_timeout_seconds = 1\nowner = \"o\"\ngroup = \"g\"\n\
                 [[file]]\nkind = \"pfx\"\npath = \"p\"\npending_path = \"q\"\nmode = \"0600\"\nowner = \"o\"\ngroup = \"g\"\n\
                 password_file = \"/f\"\npassword_env = \"E\"\nlegacy = false\n",
            )
            .unwrap()],
            http: HttpConfig {
                listen: Some("127.0.0.1:1".into()),
                metrics_max_slots: 1,
                max_connections: 1,
                header_timeout_seconds: 1,
                connection_timeout_seconds: 1,
                api: true,
            },
            acme: AcmeConfig {
                directory_url: Some("https://h/dir".into()),
                contact: vec![],
                ca_file: Some(PathBuf::new()),
                eab_kid: Some(String::new()),
                eab_hmac_key_file: Some(PathBuf::new()),
                challenge: String::new(),
                webroot: Some(PathBuf::new()),
                dns_hook: Some(String::new()),
                dns_cleanup_hook: Some(String::new()),
                timeout_seconds: 1,
            },
            store: StoreConfig {
                url: Some("postgres://u@h/d".into()),
                password_file: Some(PathBuf::new()),
                sslmode: Some("require".into()),
                ca_file: Some(PathBuf::new()),
                listen: true,
                master_key_file: Some(PathBuf::new()),
            },
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let table = toml::Value::try_from(&every).unwrap();
        let sections = [
            "policy", "serve", "notify", "expiry", "check", "deploy", "server", "target", "http",
            "store", "renewal", "acme",
        ];
        let mut keys: Vec<&String> = table
            .as_table()
            .unwrap()
            .keys()
            .filter(|k| !sections.contains(&k.as_str()))
            .collect();
        keys.extend(table["policy"]["Default"].as_table().unwrap().keys());
        keys.extend(
            table["renewal"]["OAuthTokenIssuer"]
                .as_table()
                .unwrap()
                .keys(),
        );
        for section in [
            "serve", "expiry", "check", "deploy", "http", "store", "acme",
        ] {
            keys.extend(table[section].as_table().unwrap().keys());
        }
        keys.extend(table["server"][0].as_table().unwrap().keys());
        keys.extend(
            table["target"][0]
                .as_table()
                .unwrap()
                .keys()
                .filter(|k| *k != "file"),
        );
        keys.extend(table["target"][0]["file"][0].as_table().unwrap().keys());
        let notify = table["notify"].as_table().unwrap();
        keys.extend(notify.keys().filter(|k| *k != "email" && *k != "webhook"));
        keys.extend(notify["email"][0].as_table().unwrap().keys());
        keys.extend(notify["webhook"][0].as_table().unwrap().keys());
        for key in keys {
            assert!(
                text.contains(&format!("{key} = ")),
                "config/certroll.toml does not document {key}"
            );
        }
        assert!(text.contains("[policy.OAuthTokenIssuer]"));
        assert!(text.contains("[renewal.OAuthTokenIssuer]"));
        assert!(
            example.renewal.is_empty(),
            "nothing renews unless configured"
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_file_name() {
        for bad in [
            "no_such_key = 1",
            "timezone = \"Mars/Olympus\"",
            "[policy.NoSuchType]\nmin_rsa_bits = 1",
            "[policy.Default]\nmin_rsa_bitz = 1",
            "sip_domain = \"*.contoso.com\"",
            "this is not toml",
            "[renewal.Default]\nmethod = \"self-signed\"",
            "[renewal.OAuthTokenIssuer]\nmethod = \"mail\"",
            "[renewal.OAuthTokenIssuer]\nmethod = \"self-signed\"\ngenerate_before_days = 4",
            "[renewal.OAuthTokenIssuer]\nmethod = \"request\"\ngenerate_before_days = 30\ngenerate_at_percent = 70",
            "[renewal.OAuthTokenIssuer]\nmethod = \"request\"\nscopes = [\"planet\"]",
            "[renewal.Default]\nmethod = \"acme\"",
            "[acme]\ndirectory_url = \"https://ca.contoso.com/dir\"\n[renewal.Default]\nmethod = \"acme\"",
            "[acme]\ndirectory_url = \"http://ca.contoso.com/dir\"",
            "[acme]\nchallenge = \"dns-01\"",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("test.toml: "), "{bad}: {err}");
            assert!(!err.contains('\n'), "{bad}: {err}");
        }
    }
}
