//! The deployer: brings every server's files in line with its effective
//! certificates. `serve` runs it on its own thread (every server of the
//! configuration); `certroll agent --server NAME` runs it for one server.
//!
//! Each pass plans the units (server × target × type × role), and for each
//! that changed, failed earlier and is due again, or holds a JWKS, renders
//! its files, writes those whose content or ownership differs (atomically),
//! and runs the target's reload command when anything was written or the
//! last attempt failed. The outcome is recorded per unit; a failure is
//! retried with capped exponential backoff and jitter, raises
//! `deploy.failed` (once per streak) and, when a server stays out of date
//! past `lagging_after_minutes`, `replication.lagging`.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tracing::{error, info, warn};

use super::config::{FileKind, TargetConfig};
use super::files::{Ownership, group_id, has_content, has_ownership, user_id, write_atomic};
use super::plan::{self, DeployRole, Unit};
use crate::cert::UsageType;
use crate::cert::pem;
use crate::cert::pfx::{self, PfxOptions};
use crate::clock::Clock;
use crate::config::Config;
use crate::schedule::retry::{RetryPolicy, random_jitter};
use crate::schedule::wait::{self, Msg, Woke};
use crate::store::{DeployEvent, DeployState, EventSeverity, OpCtx, Store, StoreError};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeploySummary {
    /// Units whose files or reload changed something.
    pub deployed: usize,
    pub failed: usize,
}

pub struct Deployer {
    store: Store,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    only: Option<String>,
    retry: RetryPolicy,
    poll: StdDuration,
    /// The first pass checks every file (repairs what changed while down).
    verified: bool,
    /// The earliest future expiry among the keys the last pass published:
    /// the JWKS documents change then.
    jwks_expiry: Option<DateTime<Utc>>,
    /// A dry run (`agent --once --dry-run`): what a pass would do, and
    /// nothing done: no file written or removed, no reload run, no state
    /// recorded.
    plan: Option<Vec<String>>,
}

impl Deployer {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
        only_server: Option<String>,
    ) -> Deployer {
        let d = &config.deploy;
        let retry = RetryPolicy {
            base: StdDuration::from_secs(d.retry_base_seconds.into()),
            max: StdDuration::from_secs(d.retry_max_seconds.into()),
            max_attempts: u32::MAX,
        };
        let poll = StdDuration::from_millis(config.serve.poll_interval_ms.into());
        Deployer {
            store,
            config,
            clock,
            only: only_server,
            retry,
            poll,
            verified: false,
            jwks_expiry: None,
            plan: None,
        }
    }

    /// The units the configuration and the store imply now.
    pub fn units(&self) -> Result<Vec<Unit>, StoreError> {
        units(&self.store, &self.config, self.only.as_deref())
    }

    /// Runs passes until `Msg::Shutdown`.
    pub fn run(mut self, rx: Receiver<Msg>) -> Result<DeploySummary, StoreError> {
        let mut total = DeploySummary::default();
        let mut version = self.store.data_version()?;
        info!(
            servers = self.config.servers.len(),
            only = self.only.as_deref().unwrap_or("every server"),
            "deployer started"
        );
        // A busy or full store: back off (1 s doubling to 30 s, jittered).
        let store_retry = RetryPolicy {
            base: StdDuration::from_secs(1),
            max: StdDuration::from_secs(30),
            max_attempts: u32::MAX,
        };
        let mut failures = 0;
        loop {
            let wake = match self.pass().and_then(|s| Ok((s, self.next_wake()?))) {
                Ok((s, wake)) => {
                    total.deployed += s.deployed;
                    total.failed += s.failed;
                    failures = 0;
                    wake
                }
                Err(e) if e.is_transient() => {
                    failures += 1;
                    Some(wait::after_store_error(
                        &store_retry,
                        failures,
                        &e,
                        self.clock.now(),
                    ))
                }
                Err(e) => {
                    error!(error = %e, "the store failed; the deployer stops");
                    return Err(e);
                }
            };
            if wait::wait(
                &self.store,
                &rx,
                self.clock.as_ref(),
                wake,
                self.poll,
                &mut version,
            ) == Woke::Shutdown
            {
                break;
            }
        }
        info!(
            deployed = total.deployed,
            failed = total.failed,
            "deployer stopped"
        );
        Ok(total)
    }

    /// The next retry, lagging alert, or expiry of a published key due.
    fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let lag = Duration::minutes(self.config.deploy.lagging_after_minutes.into());
        let due = self
            .store
            .deployment_states(self.only.as_deref())?
            .iter()
            .filter(|s| !s.up_to_date())
            .flat_map(|s| {
                [
                    s.next_attempt_at,
                    s.out_of_date_since
                        .filter(|_| !s.lagging_alerted)
                        .map(|t| t + lag),
                ]
            })
            .flatten()
            .min();
        Ok(due.into_iter().chain(self.jwks_expiry).min())
    }

    /// One pass over every unit.
    /// Makes the next passes dry runs: [`Deployer::take_plan`] tells what
    /// they would have done.
    pub fn dry_run(mut self) -> Deployer {
        self.plan = Some(Vec::new());
        self
    }

    /// What the dry passes so far would have done, one line each.
    pub fn take_plan(&mut self) -> Vec<String> {
        self.plan.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn write(
        &mut self,
        path: &std::path::Path,
        content: &[u8],
        own: Ownership,
    ) -> Result<(), String> {
        match &mut self.plan {
            Some(plan) => {
                plan.push(format!(
                    "would write {} (mode {:o})",
                    path.display(),
                    own.mode
                ));
                Ok(())
            }
            None => write_atomic(path, content, own).map_err(|e| e.to_string()),
        }
    }

    /// Removes a staged file; `Ok(false)` when it was not there.
    fn remove(&mut self, path: &std::path::Path) -> Result<bool, String> {
        if let Some(plan) = &mut self.plan {
            if path.exists() {
                plan.push(format!("would remove {}", path.display()));
                return Ok(true);
            }
            return Ok(false);
        }
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("{}: cannot remove ({e})", path.display())),
        }
    }

    fn reload(&mut self, cmd: &str, unit: &Unit, change: &Change) -> Result<(), String> {
        match &mut self.plan {
            Some(plan) => {
                plan.push(format!(
                    "would run the reload of target {} for {} ({} {}): {cmd}",
                    unit.target.name,
                    unit.server.name,
                    unit.usage_type,
                    unit.role.as_str()
                ));
                Ok(())
            }
            None => run_reload(cmd, unit, change),
        }
    }

    pub fn pass(&mut self) -> Result<DeploySummary, StoreError> {
        let now = self.clock.now();
        self.jwks_expiry = None;
        let units = self.units()?;
        let states: HashMap<(String, String, String, String), DeployState> = self
            .store
            .deployment_states(self.only.as_deref())?
            .into_iter()
            .map(|s| {
                (
                    (
                        s.server.clone(),
                        s.usage_type.clone(),
                        s.target.clone(),
                        s.role.clone(),
                    ),
                    s,
                )
            })
            .collect();
        let mut summary = DeploySummary::default();
        for unit in &units {
            let (server, t, target, role) = unit.key();
            let prev = states.get(&(
                server.clone(),
                t.clone(),
                target.clone(),
                role.as_str().to_string(),
            ));
            let has_jwks = self.has_jwks(unit);
            let settled = prev.is_some_and(|p| {
                p.state == "ok" && p.deployed == unit.wanted && p.wanted == unit.wanted
            });
            let waiting = prev.is_some_and(|p| {
                p.state == "failed"
                    && p.wanted == unit.wanted
                    && p.next_attempt_at.is_some_and(|n| n > now)
            });
            if waiting || (settled && self.verified && !has_jwks) {
                if let Some(p) = prev {
                    self.alert_if_lagging(unit, p, now)?;
                }
                continue;
            }
            let last_failed = prev.is_some_and(|p| p.state == "failed");
            let started = Instant::now();
            let outcome = self.deploy(unit, prev.and_then(|p| p.deployed.clone()), last_failed);
            if let Some(plan) = &mut self.plan {
                // A dry run records nothing.
                match &outcome {
                    Ok(true) => summary.deployed += 1,
                    Ok(false) => {}
                    Err(e) => {
                        summary.failed += 1;
                        plan.push(format!("would fail: {server} {t} {}: {e}", role.as_str()));
                    }
                }
                continue;
            }
            let mut st = prev.cloned().unwrap_or_else(|| DeployState {
                server: server.clone(),
                usage_type: t.clone(),
                target: target.clone(),
                role: role.as_str().to_string(),
                state: "ok".into(),
                ..Default::default()
            });
            st.wanted = unit.wanted.clone();
            st.last_attempt_at = Some(now);
            let ctx = OpCtx {
                now,
                actor: format!("deploy:{server}"),
            };
            match outcome {
                // A settled unit re-checked (JWKS, first pass) with nothing
                // to do: no record, no write.
                Ok(false) if settled => continue,
                Ok(changed) => {
                    let recovered = st.state == "failed";
                    st.state = "ok".into();
                    if changed || st.deployed != unit.wanted {
                        st.deployed_at = Some(now);
                        summary.deployed += 1;
                        info!(server = %server, type = %t, target = %target, role = role.as_str(),
                              thumbprint = unit.wanted.as_deref().unwrap_or("none (staged files removed)"), took_ms = started.elapsed().as_millis() as u64, "deployed");
                    }
                    st.deployed = unit.wanted.clone();
                    st.attempts = 0;
                    st.next_attempt_at = None;
                    st.last_error = None;
                    st.out_of_date_since = None;
                    st.lagging_alerted = false;
                    let event = recovered.then(|| DeployEvent {
                        kind: "deploy.recovered",
                        severity: EventSeverity::Info,
                        slot: unit.slot.clone(),
                        message: format!("{server}: {t} {} deployed again to target {target}", role.as_str()),
                        data: json!({"server": server, "target": target, "role": role.as_str(), "thumbprint": unit.wanted}),
                    });
                    self.store.record_deployment(&st, event.as_ref(), &ctx)?;
                }
                Err(err) => {
                    summary.failed += 1;
                    let first = st.state != "failed";
                    st.state = "failed".into();
                    st.attempts += 1;
                    let delay = self.retry.delay(st.attempts, random_jitter());
                    st.next_attempt_at =
                        Some(now + Duration::from_std(delay).unwrap_or(Duration::seconds(60)));
                    st.last_error = Some(err.clone());
                    st.out_of_date_since.get_or_insert(now);
                    warn!(server = %server, type = %t, target = %target, role = role.as_str(), attempt = st.attempts,
                          retry_in_ms = delay.as_millis() as u64, error = %err, "deployment failed");
                    let event = first.then(|| DeployEvent {
                        kind: "deploy.failed",
                        severity: EventSeverity::Warning,
                        slot: unit.slot.clone(),
                        message: format!(
                            "{server}: deploying {t} {} to target {target} failed: {err}",
                            role.as_str()
                        ),
                        data: json!({"server": server, "target": target, "role": role.as_str(),
                                     "thumbprint": unit.wanted, "reason": err}),
                    });
                    self.store.record_deployment(&st, event.as_ref(), &ctx)?;
                    self.alert_if_lagging(unit, &st, now)?;
                }
            }
        }
        self.verified = true;
        Ok(summary)
    }

    fn alert_if_lagging(
        &mut self,
        unit: &Unit,
        st: &DeployState,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let lag = Duration::minutes(self.config.deploy.lagging_after_minutes.into());
        let Some(since) = st.out_of_date_since else {
            return Ok(());
        };
        if st.lagging_alerted || st.up_to_date() || since + lag > now {
            return Ok(());
        }
        let mut st = st.clone();
        st.lagging_alerted = true;
        let message = format!(
            "{}: {} {} still not deployed to target {} since {} ({})",
            st.server,
            st.usage_type,
            st.role,
            st.target,
            since.format("%Y-%m-%d %H:%M UTC"),
            st.last_error.as_deref().unwrap_or("not attempted")
        );
        warn!(server = %st.server, type = %st.usage_type, target = %st.target, "{message}");
        let event = DeployEvent {
            kind: "replication.lagging",
            severity: EventSeverity::Warning,
            slot: unit.slot.clone(),
            message,
            data: json!({"server": st.server, "target": st.target, "role": st.role, "thumbprint": unit.wanted,
                         "since": since.to_rfc3339(), "reason": st.last_error}),
        };
        let ctx = OpCtx {
            now,
            actor: format!("deploy:{}", st.server),
        };
        self.store.record_deployment(&st, Some(&event), &ctx)
    }

    /// Writes a unit's files and runs its reload. `Ok(true)` when anything
    /// changed on disk or the reload ran.
    fn deploy(
        &mut self,
        unit: &Unit,
        old: Option<String>,
        last_failed: bool,
    ) -> Result<bool, String> {
        let Some(thumbprint) = unit.wanted.clone() else {
            // Nothing pending any more (rolled in, or cancelled): remove the
            // staged files, and tell the service as for any change.
            let mut files = Vec::new();
            let mut removed = Vec::new();
            for (_, path) in &unit.files {
                files.push(path.display().to_string());
                if self.remove(path)? {
                    removed.push(path.display().to_string());
                }
            }
            let mut changed = !removed.is_empty();
            if let Some(cmd) = &unit.target.reload
                && (changed || last_failed)
            {
                let change = Change {
                    old: old.as_deref(),
                    new: None,
                    files: &files,
                    written: &removed,
                };
                self.reload(cmd, unit, &change)?;
                changed = true;
            }
            return Ok(changed);
        };
        let cert = self
            .store
            .lookup_exact(&thumbprint)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("certificate {thumbprint} is not in the store"))?;
        let mut changed = false;
        let mut files = Vec::new();
        let mut written = Vec::new();
        for (f, path) in &unit.files {
            let own = ownership(&unit.target, f).map_err(|e| format!("{}: {e}", path.display()))?;
            let content: Vec<u8> = match f.kind {
                FileKind::Cert => pem::encode("CERTIFICATE", &cert.info.der).into_bytes(),
                FileKind::Chain => cert
                    .chain
                    .iter()
                    .map(|c| pem::encode("CERTIFICATE", &c.der))
                    .collect::<String>()
                    .into_bytes(),
                FileKind::Fullchain => std::iter::once(&cert.info)
                    .chain(&cert.chain)
                    .map(|c| pem::encode("CERTIFICATE", &c.der))
                    .collect::<String>()
                    .into_bytes(),
                FileKind::Key => {
                    let key = self.private_key(&thumbprint)?;
                    pem::encode("PRIVATE KEY", key.pkcs8_der()).into_bytes()
                }
                FileKind::Pfx => {
                    // A PFX differs at every build (salts): rewrite it only
                    // when the certificate changed or the file is gone.
                    if old.as_deref() == Some(thumbprint.as_str())
                        && !last_failed
                        && has_ownership(path, own)
                    {
                        continue;
                    }
                    let key = self.private_key(&thumbprint)?;
                    let pw = secret(f.password_file.as_deref(), f.password_env.as_deref())?;
                    let opts = PfxOptions {
                        legacy: f.legacy,
                        friendly_name: cert.friendly_name.clone(),
                    };
                    pfx::build(&cert.info, &cert.chain, &key, &pw, &opts)?
                }
                FileKind::Jwks => {
                    // The pending key is in the current unit's document;
                    // types without publish_jwks publish none.
                    if unit.role == DeployRole::Pending
                        || !self.config.publishes_jwks(&unit.usage_type)
                    {
                        continue;
                    }
                    serde_json::to_vec_pretty(&self.jwks_of(unit).map_err(|e| e.to_string())?)
                        .expect("JSON")
                }
            };
            if self.plan.is_none() {
                for stale in super::files::remove_stale_temps(path) {
                    warn!(file = %stale.display(), "removed a temporary copy left by an interrupted deployment");
                }
            }
            if !has_content(path, &content) || !has_ownership(path, own) {
                self.write(path, &content, own)?;
                changed = true;
                written.push(path.display().to_string());
            }
            files.push(path.display().to_string());
        }
        if let Some(cmd) = &unit.target.reload
            && (changed || last_failed)
        {
            let change = Change {
                old: old.as_deref(),
                new: Some(&thumbprint),
                files: &files,
                written: &written,
            };
            self.reload(cmd, unit, &change)?;
            changed = true;
        }
        Ok(changed)
    }

    fn private_key(&mut self, thumbprint: &str) -> Result<crate::cert::key::PrivateKey, String> {
        self.store
            .private_key(thumbprint)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| {
                format!(
                    "certificate {} has no private key in the store",
                    &thumbprint[..8]
                )
            })
    }

    /// The unit's JWKS document now; notes when its next key expires.
    fn jwks_of(&mut self, unit: &Unit) -> Result<serde_json::Value, StoreError> {
        let now = self.clock.now();
        let certs = jwks_certs(&self.store, &unit.slot)?;
        for t in certs.iter().map(|c| c.info.not_after).filter(|t| *t > now) {
            self.jwks_expiry = Some(self.jwks_expiry.map_or(t, |n| n.min(t)));
        }
        Ok(jwks_doc(&certs, now))
    }

    /// Whether the unit deploys a JWKS document (re-checked every pass).
    fn has_jwks(&self, unit: &Unit) -> bool {
        unit.role == DeployRole::Current
            && self.config.publishes_jwks(&unit.usage_type)
            && unit.files.iter().any(|(f, _)| f.kind == FileKind::Jwks)
    }
}

/// The units of the configuration (of one server with `only`).
pub fn units(store: &Store, config: &Config, only: Option<&str>) -> Result<Vec<Unit>, StoreError> {
    let slots = store.deploy_slots()?;
    let mut types: Vec<UsageType> = slots.keys().map(|k| k.usage_type.clone()).collect();
    types.sort();
    types.dedup();
    let servers: Vec<_> = config
        .servers
        .iter()
        .filter(|s| only.is_none_or(|o| o.eq_ignore_ascii_case(&s.name)))
        .cloned()
        .collect();
    Ok(plan::plan(&servers, &config.targets, &types, &slots))
}

/// For the engine's --require-staged hold: the (server, target) pairs that
/// stage each slot's pending certificate, by the configuration's targets.
pub fn stagers(config: Arc<Config>) -> crate::schedule::engine::Stagers {
    Box::new(move |store, slots| {
        let units = units(store, &config, None)?;
        Ok(slots.iter().map(|s| plan::stagers(&units, s)).collect())
    })
}

/// The JWKS of a slot at `now`: its current, pending and previous keys,
/// without expired ones.
pub fn jwks_for_slot(
    store: &Store,
    slot: &crate::cert::SlotKey,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, StoreError> {
    Ok(jwks_doc(&jwks_certs(store, slot)?, now))
}

fn jwks_doc(certs: &[crate::store::StoredCert], now: DateTime<Utc>) -> serde_json::Value {
    let refs: Vec<(&crate::cert::CertInfo, &[crate::cert::CertInfo])> = certs
        .iter()
        .map(|c| (&c.info, c.chain.as_slice()))
        .collect();
    plan::jwks(&refs, now)
}

/// The certificates a slot's JWKS is made of: current, pending, previous.
fn jwks_certs(
    store: &Store,
    slot: &crate::cert::SlotKey,
) -> Result<Vec<crate::store::StoredCert>, StoreError> {
    let slots = store.deploy_slots()?;
    let certs = slots
        .iter()
        .find(|(k, _)| k.usage_type == slot.usage_type && k.scope.key() == slot.scope.key())
        .map(|(_, c)| c.clone())
        .unwrap_or_default();
    let mut found = Vec::new();
    for t in [certs.current, certs.pending, certs.previous]
        .into_iter()
        .flatten()
    {
        if let Some(c) = store.lookup_exact(&t)? {
            found.push(c);
        }
    }
    Ok(found)
}

fn ownership(target: &TargetConfig, f: &super::config::FileConfig) -> Result<Ownership, String> {
    let uid = f
        .owner
        .as_deref()
        .or(target.owner.as_deref())
        .map(user_id)
        .transpose()?;
    let gid = f
        .group
        .as_deref()
        .or(target.group.as_deref())
        .map(group_id)
        .transpose()?;
    Ok(Ownership {
        mode: f.mode(),
        uid,
        gid,
    })
}

fn secret(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<zeroize::Zeroizing<String>, String> {
    crate::input::secret(file, env, "PFX password")?
        .ok_or_else(|| "a pfx file needs password_file or password_env".into())
}

/// What a reload is told about the change.
struct Change<'a> {
    old: Option<&'a str>,
    /// None: the unit's files were removed (nothing staged any more).
    new: Option<&'a str>,
    /// Every file of the unit.
    files: &'a [String],
    /// The files this attempt wrote or removed (empty when a failed reload
    /// is retried with nothing new to do).
    written: &'a [String],
}

/// Runs a reload command (sh -c) with the environment describing the
/// change, killed after the target's timeout. Its stderr is read while it
/// runs (a chatty command never blocks on a full pipe) and the first 300
/// characters go into the error.
fn run_reload(cmd: &str, unit: &Unit, change: &Change) -> Result<(), String> {
    // A minimal environment: the change, PATH and HOME, never certroll's
    // own (passwords and secrets given through variables stay here).
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut command = Command::new("/bin/sh");
    command.env_clear().env("PATH", path);
    if let Some(home) = std::env::var_os("HOME") {
        command.env("HOME", home);
    }
    let mut child = command
        .arg("-c")
        .arg(cmd)
        .env("CERTROLL_SERVER", &unit.server.name)
        .env("CERTROLL_POOL", unit.server.pool.as_deref().unwrap_or(""))
        .env("CERTROLL_SITE", unit.server.site.as_deref().unwrap_or(""))
        .env("CERTROLL_TYPE", unit.usage_type.as_str())
        .env("CERTROLL_ROLE", unit.role.as_str())
        .env("CERTROLL_TARGET", &unit.target.name)
        .env("CERTROLL_OLD_THUMBPRINT", change.old.unwrap_or(""))
        .env("CERTROLL_NEW_THUMBPRINT", change.new.unwrap_or(""))
        .env("CERTROLL_FILES", change.files.join(" "))
        .env("CERTROLL_CHANGED_FILES", change.written.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("reload '{cmd}' could not start ({e})"))?;
    // A daemon the command starts may inherit the pipe and keep it open:
    // the reader is never joined, only waited for a moment.
    let (tx, stderr) = std::sync::mpsc::channel();
    if let Some(mut e) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = e.by_ref().take(64 * 1024).read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            let _ = std::io::copy(&mut e, &mut std::io::sink());
        });
    }
    let deadline =
        Instant::now() + StdDuration::from_secs(unit.target.reload_timeout_seconds.into());
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                if status.success() {
                    return Ok(());
                }
                let err = stderr
                    .recv_timeout(StdDuration::from_millis(500))
                    .unwrap_or_default();
                let err: String = err.trim().chars().take(300).collect();
                return Err(format!(
                    "the reload command failed ({status}){}",
                    if err.is_empty() {
                        String::new()
                    } else {
                        format!(": {err}")
                    }
                ));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the reload command did not finish within {} s and was killed",
                    unit.target.reload_timeout_seconds
                ));
            }
            Ok(None) => std::thread::sleep(StdDuration::from_millis(10)),
            Err(e) => return Err(format!("reload '{cmd}': {e}")),
        }
    }
}
