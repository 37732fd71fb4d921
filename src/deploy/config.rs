//! `[deploy]`, `[[server]]` and `[[target]]`: the servers of the pools, the
//! files each gets, and how deployment retries and alerts.

use std::path::PathBuf;

use serde::Deserialize;

use crate::cert::Scope;

/// `[deploy]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct DeploySettings {
    /// First retry delay after a failed deployment (doubles, with jitter).
    pub retry_base_seconds: u32,
    pub retry_max_seconds: u32,
    /// A server still out of date this long raises replication.lagging.
    pub lagging_after_minutes: u32,
    /// A roll held by --require-staged is promoted anyway this long after
    /// its instant (with an alert) if a server still has not staged.
    pub staging_deadline_minutes: u32,
    /// `serve` deploys to every server itself; false when each server runs
    /// its own `certroll agent` on a shared store.
    pub serve_deploys: bool,
}

impl Default for DeploySettings {
    fn default() -> Self {
        DeploySettings {
            retry_base_seconds: 5,
            retry_max_seconds: 600,
            lagging_after_minutes: 15,
            staging_deadline_minutes: 60,
            serve_deploys: true,
        }
    }
}

/// `[[server]]`: a server of a pool.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Its FQDN.
    pub name: String,
    /// The FQDN of its pool.
    pub pool: Option<String>,
    pub site: Option<String>,
}

impl ServerConfig {
    /// The scopes that apply to it, most specific first.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut out = vec![Scope::Server(self.name.to_ascii_lowercase())];
        if let Some(p) = &self.pool {
            out.push(Scope::Pool(p.to_ascii_lowercase()));
        }
        if let Some(s) = &self.site {
            out.push(Scope::Site(s.clone()));
        }
        out.push(Scope::Global);
        out
    }

    /// Whether a target at `scope` covers this server.
    pub fn covered_by(&self, scope: &Scope) -> bool {
        self.scopes().iter().any(|s| s.key() == scope.key())
    }
}

/// What a deployed file holds.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// The certificate (PEM).
    Cert,
    /// Its issuers, nearest first (PEM).
    Chain,
    /// The certificate then its issuers (PEM).
    Fullchain,
    /// The private key (PKCS#8 PEM).
    Key,
    /// Certificate, chain and key in a PFX, under a password.
    Pfx,
    /// The JSON Web Key Set of the slot (current, pending, previous keys).
    Jwks,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Cert => "cert",
            FileKind::Chain => "chain",
            FileKind::Fullchain => "fullchain",
            FileKind::Key => "key",
            FileKind::Pfx => "pfx",
            FileKind::Jwks => "jwks",
        }
    }

    /// Holds a secret: 0600 by default.
    pub fn is_secret(self) -> bool {
        matches!(self, FileKind::Key | FileKind::Pfx)
    }
}

/// `[[target.file]]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub kind: FileKind,
    /// Path template: {server}, {pool}, {site}, {type}.
    pub path: String,
    /// Where a pending certificate is staged ahead of its roll (same
    /// template variables); without it nothing is staged.
    pub pending_path: Option<String>,
    /// Octal, e.g. "0644"; default 0600 for key and pfx, 0644 otherwise.
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// For pfx: the password's file or environment variable.
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// For pfx: 3DES and SHA-1 instead of AES-256 (old Windows).
    #[serde(default)]
    pub legacy: bool,
}

/// `[[target]]`: files written for the servers a scope covers.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: String,
    /// global, site:NAME, pool:FQDN or server:FQDN: the servers it covers.
    #[serde(default = "global")]
    pub scope: String,
    /// Usage types it deploys (default: every type).
    #[serde(default)]
    pub types: Vec<String>,
    /// Run (with sh -c) after files changed; its environment says what
    /// changed (CERTROLL_SERVER, CERTROLL_TYPE, CERTROLL_ROLE,
    /// CERTROLL_OLD_THUMBPRINT, CERTROLL_NEW_THUMBPRINT, CERTROLL_FILES...).
    pub reload: Option<String>,
    #[serde(default = "reload_timeout")]
    pub reload_timeout_seconds: u32,
    /// Default owner and group of its files.
    pub owner: Option<String>,
    pub group: Option<String>,
    #[serde(default)]
    pub file: Vec<FileConfig>,
}

fn global() -> String {
    "global".into()
}

fn reload_timeout() -> u32 {
    60
}

/// Fills {server}, {pool}, {site}, {type} in a path template.
pub fn expand(template: &str, server: &ServerConfig, usage_type: &str) -> String {
    template
        .replace("{server}", &server.name)
        .replace("{pool}", server.pool.as_deref().unwrap_or("-"))
        .replace("{site}", server.site.as_deref().unwrap_or("-"))
        .replace("{type}", usage_type)
}

pub(crate) fn validate(servers: &[ServerConfig], targets: &[TargetConfig]) -> Result<(), String> {
    let mut names: Vec<String> = Vec::new();
    for s in servers {
        let key = s.name.to_ascii_lowercase();
        if names.contains(&key) {
            return Err(format!("[[server]] '{}' is declared twice", s.name));
        }
        Scope::parse(&format!("server:{}", s.name))
            .map_err(|e| format!("[[server]] '{}': {e}", s.name))?;
        if let Some(p) = &s.pool {
            Scope::parse(&format!("pool:{p}"))
                .map_err(|e| format!("[[server]] '{}': pool: {e}", s.name))?;
        }
        // The site lands in deploy paths ({site}): validated like a scope.
        if let Some(site) = &s.site {
            Scope::parse(&format!("site:{site}"))
                .map_err(|e| format!("[[server]] '{}': site: {e}", s.name))?;
        }
        names.push(key);
    }
    let mut tnames: Vec<&str> = Vec::new();
    for t in targets {
        let ctx = |m: String| format!("[[target]] '{}': {m}", t.name);
        if tnames.contains(&t.name.as_str()) {
            return Err(ctx("declared twice".into()));
        }
        tnames.push(&t.name);
        Scope::parse(&t.scope).map_err(|e| ctx(e.to_string()))?;
        if t.file.is_empty() {
            return Err(ctx("lists no [[target.file]]".into()));
        }
        if t.reload_timeout_seconds == 0 {
            return Err(ctx("reload_timeout_seconds must be at least 1".into()));
        }
        for f in &t.file {
            if let Some(m) = &f.mode
                && u32::from_str_radix(m.trim_start_matches("0o"), 8).map_or(true, |v| v > 0o7777)
            {
                return Err(ctx(format!("mode '{m}' is not an octal file mode")));
            }
            if f.kind == FileKind::Pfx && f.password_file.is_none() && f.password_env.is_none() {
                return Err(ctx(format!(
                    "the pfx file {} needs password_file or password_env",
                    f.path
                )));
            }
            // The service runs from / (systemd): a relative path would
            // land somewhere unexpected.
            for p in std::iter::once(&f.path).chain(&f.pending_path) {
                if !p.starts_with('/') {
                    return Err(ctx(format!("the file path '{p}' is not absolute")));
                }
            }
        }
    }
    Ok(())
}

impl FileConfig {
    /// The file's mode: configured, else 0600 for secrets, 0644 otherwise.
    pub fn mode(&self) -> u32 {
        self.mode
            .as_deref()
            .and_then(|m| u32::from_str_radix(m.trim_start_matches("0o"), 8).ok())
            .unwrap_or(if self.kind.is_secret() { 0o600 } else { 0o644 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_covered_by_their_scopes() {
        let s = ServerConfig {
            name: "FE01.contoso.com".into(),
            pool: Some("pool01.contoso.com".into()),
            site: Some("Redmond".into()),
        };
        for scope in [
            "global",
            "site:redmond",
            "pool:POOL01.contoso.com",
            "server:fe01.contoso.com",
        ] {
            assert!(s.covered_by(&Scope::parse(scope).unwrap()), "{scope}");
        }
        assert!(!s.covered_by(&Scope::parse("pool:pool02.contoso.com").unwrap()));
        assert_eq!(
            expand("/srv/{site}/{pool}/{server}/{type}.pem", &s, "Default"),
            "/srv/Redmond/pool01.contoso.com/FE01.contoso.com/Default.pem"
        );
    }

    #[test]
    fn mistakes_in_servers_and_targets_are_refused_and_named() {
        let server = "[[server]]\nname = \"fe01.contoso.com\"\npool = \"pool01.contoso.com\"\n";
        let file = "[[target.file]]\nkind = \"cert\"\npath = \"/srv/{server}/{type}.pem\"\n";
        let target = |body: &str, files: &str| format!("[[target]]\nname = \"t\"\n{body}{files}");
        let ok = format!("{server}{}", target("", file));
        crate::config::Config::parse(&ok, std::path::Path::new("c.toml")).unwrap();
        for (bad, reason) in [
            (format!("{server}{server}"), "declared twice"),
            (
                "[[server]]\nname = \"*.contoso.com\"\n".to_string(),
                "[[server]] '*.contoso.com'",
            ),
            (
                format!("{}{}", target("", file), target("", file)),
                "declared twice",
            ),
            (target("scope = \"planet:mars\"\n", file), "'t'"),
            (target("", ""), "lists no [[target.file]]"),
            (
                target("reload_timeout_seconds = 0\n", file),
                "reload_timeout_seconds",
            ),
            (
                target("", &format!("{file}mode = \"0999\"\n")),
                "not an octal file mode",
            ),
            (
                target(
                    "",
                    "[[target.file]]\nkind = \"pfx\"\npath = \"/{type}.pfx\"\n",
                ),
                "needs password_file or password_env",
            ),
            (
                target(
                    "",
                    "[[target.file]]\nkind = \"key\"\npath = \"srv/{type}.pem\"\n",
                ),
                "'srv/{type}.pem' is not absolute",
            ),
            (
                target("", &format!("{file}pending_path = \"{{type}}.pem\"\n")),
                "'{type}.pem' is not absolute",
            ),
            (
                target("", "[[target.file]]\nkind = \"der\"\npath = \"/a\"\n"),
                "der",
            ),
        ] {
            let err = crate::config::Config::parse(&bad, std::path::Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("c.toml: ") && err.contains(reason),
                "{bad}: {err}"
            );
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
