//! The engine: runs due roll jobs and recurring duties. It lives on its own
//! OS thread (std's `recv_timeout` wakes within a fraction of a
//! millisecond; tokio's timer rounds to whole milliseconds) and is the only
//! place in certroll that sleeps.
//!
//! Each turn it recovers expired leases, runs due duties, claims the jobs
//! due within the next `preclaim` under a lease, waits precisely for each
//! one's instant and executes it, then sleeps until the next instant, a
//! lease expiry, a duty, or the poll interval, whichever comes first. On
//! each poll it reads SQLite's `data_version`, which changes when another
//! process commits: a schedule, cancel or roll made elsewhere is noticed
//! within one poll interval without reading any table.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tracing::{debug, error, info, warn};

use super::cron::Duty;
use super::retry::{RetryPolicy, random_jitter};
use crate::cert::SlotKey;
use crate::cert::policy::{self, Severity};
use crate::clock::Clock;
use crate::config::{Config, ServeConfig};
use crate::store::{
    Claimed, ExecOptions, JobFilter, JobResult, RollOutcome, Store, StoreError, StoredCert,
    describe_lateness,
};

pub use super::wait::Msg;

/// Tuning of the engine (from `[serve]` in the configuration).
#[derive(Clone, Debug)]
pub struct EngineSettings {
    pub lease: Duration,
    pub poll: StdDuration,
    pub batch_size: usize,
    pub late_after: Duration,
    pub preclaim: Duration,
    pub retry: RetryPolicy,
}

impl From<&ServeConfig> for EngineSettings {
    fn from(c: &ServeConfig) -> Self {
        EngineSettings {
            lease: Duration::seconds(c.lease_seconds.into()),
            poll: StdDuration::from_millis(c.poll_interval_ms.into()),
            batch_size: c.batch_size as usize,
            late_after: Duration::seconds(c.late_after_seconds.into()),
            preclaim: Duration::milliseconds(c.preclaim_ms.into()),
            retry: RetryPolicy {
                base: StdDuration::from_millis(c.retry_base_ms.into()),
                max: StdDuration::from_secs(c.retry_max_seconds.into()),
                max_attempts: c.max_attempts,
            },
        }
    }
}

/// Called after each committed batch with its results and the instant the
/// commit finished (the benchmark measures lateness with it).
pub type Observer = Box<dyn FnMut(&[JobResult], DateTime<Utc>) + Send>;

/// What a pass over the queue did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassSummary {
    pub succeeded: usize,
    pub failed: usize,
    /// Jobs given back to the queue after a transient error.
    pub retried: usize,
}

impl PassSummary {
    pub fn add(&mut self, other: &PassSummary) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.retried += other.retried;
    }
}

pub struct Engine {
    store: Store,
    config: Arc<Config>,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    owner: String,
    duties: Vec<(Duty, Option<DateTime<Utc>>)>,
    observer: Option<Observer>,
    metrics: Option<Arc<crate::metrics::Registry>>,
    stagers: Option<Stagers>,
    /// Whether this engine holds the leader row of the pool's duties.
    leading: bool,
    /// When that was last taken or renewed.
    lead_checked: Option<DateTime<Utc>>,
    /// The expiry watch under way, a page at a time between rolls.
    scan: Option<ScanProgress>,
    /// What a page of it takes, as last measured (how large a gap it needs).
    page_cost: StdDuration,
    /// What writing a group of rolls before its commit took lately.
    prepare_cost: StdDuration,
}

/// An expiry watch under way: it reads its slots a page at a time in the
/// engine's quiet moments, so that a watch over many slots (at start, or
/// on taking the lead) never holds back a roll due meanwhile.
struct ScanProgress {
    /// The last slot row id read (0: not begun).
    after: i64,
    alerts: usize,
    pages: u32,
    begun: std::time::Instant,
    last_page: std::time::Instant,
}

/// A page runs at the latest this long after the previous one, even when
/// rolls leave no gap (a busy engine still finishes its watch).
const SCAN_STARVATION: StdDuration = StdDuration::from_secs(5);

/// When a page of the expiry watch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    Now,
    At(DateTime<Utc>),
}

/// The expiry watch's pacing, at `now` with the engine's next work at
/// `wake`: a page runs now when it fits before `wake` (its last measured
/// `cost`, twice, and a millisecond), or when the last page was
/// [`SCAN_STARVATION`] ago; else at `wake` or when it would starve.
fn scan_pace(
    now: DateTime<Utc>,
    wake: Option<DateTime<Utc>>,
    cost: StdDuration,
    since_page: StdDuration,
) -> Pace {
    let need = Duration::from_std(cost.saturating_mul(2)).unwrap_or(Duration::days(1))
        + Duration::milliseconds(1);
    let starves = SCAN_STARVATION.saturating_sub(since_page);
    match wake {
        _ if starves.is_zero() => Pace::Now,
        None => Pace::Now,
        Some(w) if w - now > need => Pace::Now,
        Some(w) => Pace::At(w.min(now + Duration::from_std(starves).unwrap_or(Duration::zero()))),
    }
}

/// The leader row of the recurring duties (the expiry watch,
/// maintenance): one engine of a pool runs them at a time.
pub const DUTIES_LEADER: &str = "duties";

/// The servers (and targets) that stage each of these slots' pending
/// certificate, for rolls scheduled with --require-staged. Deployment
/// knows them; whoever wires the engine passes this in, so the queue does
/// not depend on deployment. Without it, no roll is held.
pub type Stagers =
    Box<dyn Fn(&Store, &[SlotKey]) -> Result<Vec<Vec<(String, String)>>, StoreError> + Send>;

/// How long before a roll's instant its changes are written at least
/// (under the write lock), so that only the commit remains at the instant.
/// The engine learns how long writing takes (a round trip per statement on
/// PostgreSQL) and starts earlier when it must (see [`prepare_ahead`]).
const PREPARE_AHEAD: Duration = Duration::milliseconds(2);

/// How far ahead of its instant a group's writes start, given what writing
/// a group took lately (`took`): half as much again and half a
/// millisecond, at least [`PREPARE_AHEAD`], at most `limit`.
fn prepare_ahead(took: StdDuration, limit: Duration) -> Duration {
    let want = Duration::from_std(took + took / 2).unwrap_or(limit) + Duration::microseconds(500);
    want.max(PREPARE_AHEAD).min(limit.max(PREPARE_AHEAD))
}

/// `host:pid:nonce`, unique per process run and per engine within it: the
/// nonce is this run's (random), then `.N` for the N-th further engine of
/// the process (the benchmark runs several).
pub fn owner_id() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let run = run_nonce();
    let nonce = if n == 0 {
        run.to_string()
    } else {
        format!("{run}.{n}")
    };
    format!("{}:{}:{nonce}", hostname(), std::process::id())
}

/// This process run's random part of its owner ids.
fn run_nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| format!("{:08x}", (random_jitter() * f64::from(u32::MAX)) as u32))
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Takes or renews the leader row `name` for `owner`. A row held by a
/// process of this host that no longer runs (a crash, kill -9) is taken at
/// once rather than after its expiry.
pub fn take_lead(
    store: &mut Store,
    name: &str,
    owner: &str,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if store.lead(name, owner, ttl, now)? {
        return Ok(true);
    }
    match store.leader(name)? {
        Some((holder, _)) if holder_is_dead(&holder, owner) => {
            info!(duty = name, holder = %holder, "the leader's process is gone: taking the lead");
            store.concede(name, &holder)?;
            store.lead(name, owner, ttl, now)
        }
        _ => Ok(false),
    }
}

/// Whether the lease holder `owner` is a process of this host that no
/// longer runs (or an earlier run of this very pid).
fn holder_is_dead(owner: &str, me: &str) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(nonce), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() || owner == me {
        return false;
    }
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if pid as u32 == std::process::id() {
        // An earlier run of this pid is dead; another engine of this run
        // is not.
        return nonce.split('.').next() != Some(run_nonce());
    }
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

impl Engine {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, crate::schedule::cron::CronError> {
        let settings = EngineSettings::from(&config.serve);
        let mut duties = vec![(
            Duty::new("expiry-scan", &config.expiry.schedule, config.timezone)?,
            None,
        )];
        if let Some(expr) = config.serve.maintenance.as_deref() {
            duties.push((Duty::new("maintenance", expr, config.timezone)?, None));
        }
        Ok(Engine {
            store,
            config,
            settings,
            clock,
            owner: owner_id(),
            duties,
            observer: None,
            metrics: None,
            stagers: None,
            leading: false,
            lead_checked: None,
            scan: None,
            page_cost: StdDuration::from_millis(10),
            prepare_cost: StdDuration::ZERO,
        })
    }

    /// Who stages what, for the --require-staged hold (see [`Stagers`]).
    pub fn with_stagers(mut self, stagers: Stagers) -> Self {
        self.stagers = Some(stagers);
        self
    }

    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Records rolls and expiry scans into `metrics` (serve's /metrics).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Registry>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs until `Msg::Shutdown`. Errors are those the engine cannot go on
    /// after (the store became unusable).
    pub fn run(mut self, rx: Receiver<Msg>) -> Result<PassSummary, StoreError> {
        let mut total = PassSummary::default();
        let now = self.clock.now();
        for (id, holder) in self
            .store
            .recover_dead(now, &|o| holder_is_dead(o, &self.owner))?
        {
            info!(job.id = id, holder = %holder, "recovered a job whose holder is gone");
        }
        for (duty, next) in &mut self.duties {
            *next = duty.next_after(now);
            let at = next.map_or_else(|| "never".to_string(), |t| t.to_rfc3339());
            info!(duty = duty.name, cron = duty.expr(), next = %at, "duty scheduled");
        }
        // The leader runs the expiry watch when it takes the lead (so at
        // start too): neither a restart nor a new leader skips a day.
        self.leadership(now);
        // Checkpoints happen in quiet moments, not inside a roll's commit.
        self.store.disable_auto_checkpoint()?;
        let mut version = self.store.data_version()?;
        info!(owner = %self.owner, "engine started");
        let mut failures = 0u32;
        loop {
            match rx.try_recv() {
                Ok(Msg::Shutdown) | Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
                _ => {}
            }
            // Work, then learn when to wake next.
            let wake = match self.turn(&rx) {
                Ok((pass, stop)) => {
                    total.add(&pass);
                    if stop {
                        break;
                    }
                    failures = 0;
                    self.next_wake()?
                }
                Err(e) if e.is_transient() => {
                    // Busy past the timeout, disk full...: back off and go on.
                    failures += 1;
                    Some(super::wait::after_store_error(
                        &self.settings.retry,
                        failures,
                        &e,
                        self.clock.now(),
                    ))
                }
                Err(e) => {
                    error!(error = %e, "the store failed; stopping");
                    return Err(e);
                }
            };
            self.checkpoint_if_quiet(wake);
            let wake = self.scan_if_quiet(wake);
            let woke = super::wait::wait(
                &self.store,
                &rx,
                self.clock.as_ref(),
                wake,
                self.settings.poll,
                &mut version,
            );
            if woke == super::wait::Woke::Shutdown {
                break;
            }
        }
        info!(owner = %self.owner, "engine stopping");
        if self.leading {
            // Another engine takes the duties at once, not after the row's
            // expiry.
            match self.store.concede(DUTIES_LEADER, &self.owner) {
                Ok(()) => info!("gave up the lead of the duties"),
                Err(e) => warn!(error = %e, "could not give up the lead of the duties"),
            }
        }
        Ok(total)
    }

    /// Checkpoints the write-ahead log in the gap before the next roll:
    /// small, frequent checkpoints (one roll's pages take well under a
    /// millisecond to copy) instead of one large one inside a commit.
    fn checkpoint_if_quiet(&mut self, wake: Option<DateTime<Utc>>) {
        const GAP: Duration = Duration::milliseconds(3);
        if !self.store.needs_checkpoint() {
            return;
        }
        if wake.is_none_or(|w| w - self.clock.now() > GAP) {
            let wal = self.store.wal_bytes();
            let started = std::time::Instant::now();
            match self.store.checkpoint() {
                Ok(()) => debug!(
                    wal_bytes = wal,
                    took_us = started.elapsed().as_micros() as u64,
                    "checkpoint"
                ),
                Err(e) => debug!(error = %e, "checkpoint skipped"),
            }
        }
    }

    /// The next instant the engine must act: a job's instant (less the
    /// preclaim), a lease's expiry, or a duty.
    fn next_wake(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next = self.store.next_wake()?;
        // While a job is leased, look at each poll whether its holder (a
        // process of this host) died, rather than wait for its lease.
        let poll = Duration::from_std(self.settings.poll).unwrap_or(Duration::seconds(1));
        let times = [
            next.due.map(|d| d - self.settings.preclaim),
            next.lease_expiry,
            next.lease_expiry.map(|_| self.clock.now() + poll),
        ]
        .into_iter()
        .chain(self.duties.iter().map(|(_, n)| *n))
        // The lead is renewed (or looked for) in time.
        .chain(
            self.lead_checked
                .filter(|_| !self.duties.is_empty())
                .map(|t| Some(t + self.settings.lease / 3)),
        );
        Ok(times.flatten().min())
    }

    /// One turn: recover, duties, claim and run what is due. Returns
    /// whether a shutdown arrived meanwhile.
    fn turn(&mut self, rx: &Receiver<Msg>) -> Result<(PassSummary, bool), StoreError> {
        let now = self.clock.now();
        self.run_duties(now);
        let mut total = PassSummary::default();
        loop {
            let now = self.clock.now();
            // Reads first: write transactions only when there is work.
            let next = self.store.next_wake()?;
            if next.lease_expiry.is_some() {
                for (id, holder) in self
                    .store
                    .recover_dead(now, &|o| holder_is_dead(o, &self.owner))?
                {
                    info!(job.id = id, holder = %holder, "recovered a job whose holder is gone");
                }
            }
            if next.lease_expiry.is_some_and(|l| l <= now) {
                for (id, holder) in self.store.recover_expired(now)? {
                    warn!(job.id = id, holder = %holder, "recovered a job whose lease expired");
                }
            } else if next.due.is_none_or(|d| d > now + self.settings.preclaim) {
                return Ok((total, false));
            }
            let claimed = self.store.claim(
                &self.owner,
                now,
                Some(now + self.settings.preclaim),
                self.settings.lease,
                self.settings.batch_size,
                &JobFilter::default(),
            )?;
            if claimed.is_empty() {
                return Ok((total, false));
            }
            info!(
                jobs = claimed.len(),
                first.id = claimed[0].id,
                first.due = %claimed[0].due_at,
                lease_until = %claimed[0].lease_expires_at,
                "claimed"
            );
            for c in &claimed {
                debug!(job.id = c.id, slot = %c.slot, thumbprint = %c.thumbprint, due = %c.due_at, attempt = c.attempts, "claimed job");
            }
            let (pass, stopped) = self.run_claimed(claimed, Some(rx))?;
            total.add(&pass);
            if stopped {
                return Ok((total, true));
            }
        }
    }

    /// Takes or renews the lead of the pool's duties, at most every third
    /// of its time to live (the lease); a renewal that fails concedes it.
    /// Taking the lead runs the expiry watch at once.
    fn leadership(&mut self, now: DateTime<Utc>) {
        if self.duties.is_empty() {
            return;
        }
        let ttl = self.settings.lease;
        if self
            .lead_checked
            .is_some_and(|t| now - t < ttl / 3 && now >= t)
        {
            return;
        }
        self.lead_checked = Some(now);
        let was = self.leading;
        self.leading = match take_lead(&mut self.store, DUTIES_LEADER, &self.owner, ttl, now) {
            Ok(held) => held,
            Err(e) => {
                if was {
                    warn!(error = %e, "could not renew the lead of the duties: conceding it");
                }
                false
            }
        };
        if self.leading && !was {
            info!(owner = %self.owner, "leading the duties of the pool");
            self.begin_expiry_scan();
        } else if was && !self.leading {
            warn!(owner = %self.owner, "no longer leading the duties: another engine runs them");
            if self.scan.take().is_some() {
                info!("expiry scan left to the new leader");
            }
        }
    }

    fn run_duties(&mut self, now: DateTime<Utc>) {
        self.leadership(now);
        for i in 0..self.duties.len() {
            let due = matches!(self.duties[i].1, Some(n) if n <= now);
            if !due {
                continue;
            }
            let name = self.duties[i].0.name;
            if !self.leading {
                debug!(duty = name, "left to the engine that leads the duties");
                self.duties[i].1 = self.duties[i].0.next_after(now);
                continue;
            }
            if name == "expiry-scan" {
                self.begin_expiry_scan();
                self.duties[i].1 = self.duties[i].0.next_after(now);
                continue;
            }
            let started = std::time::Instant::now();
            let result = match name {
                "maintenance" => self.store.maintenance(),
                _ => Ok(()),
            };
            match result {
                Ok(()) => info!(
                    duty = name,
                    took_ms = started.elapsed().as_millis() as u64,
                    "duty done"
                ),
                Err(e) => warn!(duty = name, error = %e, "duty failed"),
            }
            let next = self.duties[i].0.next_after(now);
            self.duties[i].1 = next;
        }
    }

    /// Waits for each claimed job's instant and runs it; jobs due at the same
    /// instant share a transaction. With `rx`, a shutdown between groups
    /// gives the remaining jobs back untouched.
    fn run_claimed(
        &mut self,
        claimed: Vec<Claimed>,
        rx: Option<&Receiver<Msg>>,
    ) -> Result<(PassSummary, bool), StoreError> {
        let mut total = PassSummary::default();
        let mut i = 0;
        while i < claimed.len() {
            if let Some(rx) = rx
                && matches!(rx.try_recv(), Ok(Msg::Shutdown))
            {
                let rest: Vec<i64> = claimed[i..].iter().map(|c| c.id).collect();
                self.store.unclaim(&self.owner, &rest)?;
                info!(jobs = rest.len(), "stopping: gave back jobs not yet due");
                return Ok((total, true));
            }
            let head = claimed[i].run_after;
            self.checkpoint_if_quiet(Some(head));
            // Pages of an expiry watch under way, in the gap before it.
            let ahead = prepare_ahead(self.prepare_cost, self.settings.preclaim / 2);
            let gap_ends = Some(head - ahead);
            while self.scan_pace(gap_ends) == Some(Pace::Now) {
                self.scan_if_quiet(gap_ends);
            }
            // Wake just before the instant, write the group's changes, and
            // commit at the instant: the roll becomes visible at its instant
            // plus the commit's own time (see execute_with).
            let now = self.clock.now();
            if head - ahead > now {
                std::thread::sleep((head - ahead - now).to_std().unwrap_or_default());
            }
            let cutoff = self.clock.now().max(head);
            let end = claimed[i..]
                .iter()
                .position(|c| c.run_after > cutoff)
                .map_or(claimed.len(), |p| i + p);
            let instant = (head > self.clock.now()).then_some(head);
            let ready = self.staging_gate(&claimed[i..end])?;
            let pass = self.execute(&ready, instant)?;
            total.add(&pass);
            i = end;
        }
        Ok((total, false))
    }

    /// Of jobs that require staging, holds those whose servers have not all
    /// staged the certificate (re-checked each poll interval; `roll.held`
    /// once past the instant), and lets through those at the staging
    /// deadline with `roll.forced`. Returns the jobs to run now.
    fn staging_gate(&mut self, jobs: &[Claimed]) -> Result<Vec<Claimed>, StoreError> {
        if !jobs.iter().any(|j| j.require_staged) {
            return Ok(jobs.to_vec());
        }
        let Some(stagers) = &self.stagers else {
            return Ok(jobs.to_vec());
        };
        let slots: Vec<SlotKey> = jobs.iter().map(|j| j.slot.clone()).collect();
        let staging = stagers(&self.store, &slots)?;
        let deadline = Duration::minutes(self.config.deploy.staging_deadline_minutes.into());
        let mut ready = Vec::new();
        for (job, pairs) in jobs.iter().zip(staging) {
            if !job.require_staged {
                ready.push(job.clone());
                continue;
            }
            let lagging =
                self.store
                    .not_staged(job.slot.usage_type.as_str(), &job.thumbprint, &pairs)?;
            let now = self.clock.now();
            let ctx = crate::store::OpCtx {
                now,
                actor: format!("serve:{}", self.owner),
            };
            let names = lagging
                .iter()
                .map(|(s, t)| format!("{s} ({t})"))
                .collect::<Vec<_>>()
                .join(", ");
            if lagging.is_empty() {
                ready.push(job.clone());
            } else if now >= job.due_at + deadline {
                let message = format!(
                    "{}: promoting {} at the staging deadline although {} server(s) have not staged it: {names}",
                    job.slot,
                    job.thumbprint,
                    lagging.len()
                );
                warn!(job.id = job.id, slot = %job.slot, "{message}");
                let data = serde_json::json!({"job_id": job.id, "not_staged": lagging});
                ready.push(Claimed {
                    forced: Some((message, data)),
                    ..job.clone()
                });
            } else {
                let event = (now >= job.due_at && job.held_since.is_none()).then(|| {
                    let message = format!(
                        "{}: the roll to {} is held: {} server(s) have not staged it yet: {names}",
                        job.slot,
                        job.thumbprint,
                        lagging.len()
                    );
                    warn!(job.id = job.id, slot = %job.slot, "{message}");
                    (&job.slot, message, serde_json::json!({"job_id": job.id, "thumbprint": job.thumbprint, "not_staged": lagging}))
                });
                let again =
                    now + Duration::from_std(self.settings.poll).unwrap_or(Duration::seconds(1));
                self.store
                    .hold_job(&self.owner, job.id, again, event, &ctx)?;
            }
        }
        Ok(ready)
    }

    /// Executes claimed jobs (due or not: `roll --now` runs them early) and
    /// handles the outcomes. With `instant`, the jobs are written ahead and
    /// committed at it.
    fn execute(
        &mut self,
        jobs: &[Claimed],
        instant: Option<DateTime<Utc>>,
    ) -> Result<PassSummary, StoreError> {
        let config = self.config.clone();
        let check = move |slot: &SlotKey, cert: &StoredCert, at: DateTime<Utc>| {
            roll_check(&config, slot, cert, at)
        };
        let clock = self.clock.clone();
        let now_fn = move || clock.now();
        let opts = ExecOptions {
            owner: &self.owner,
            actor: &format!("serve:{}", self.owner),
            late_after: self.settings.late_after,
            max_attempts: self.settings.retry.max_attempts,
            check: &check,
            clock: &now_fn,
            at_instant: instant.is_some(),
        };
        let clock = self.clock.clone();
        let started = std::time::Instant::now();
        let mut prepared = None;
        let mut wait_for_instant = || {
            prepared = Some(started.elapsed());
            if let Some(at) = instant {
                let now = clock.now();
                if at > now {
                    std::thread::sleep((at - now).to_std().unwrap_or_default());
                }
            }
        };
        let results = self.store.execute_with(jobs, &opts, &mut wait_for_instant);
        if let (Some(took), Some(_)) = (prepared, instant) {
            // Follow a slower write at once, a faster one gradually.
            self.prepare_cost = if took > self.prepare_cost {
                took
            } else {
                (self.prepare_cost * 7 + took) / 8
            };
        }
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                // Nothing was applied; the jobs are still ours.
                let mut pass = PassSummary::default();
                for job in jobs {
                    self.retry_later(job.id, job.attempts, &e.to_string())?;
                    pass.retried += 1;
                }
                warn!(jobs = jobs.len(), error = %e, "batch failed, will retry");
                return Ok(pass);
            }
        };
        let committed = self.clock.now();
        let mut pass = PassSummary::default();
        for r in &results {
            match &r.outcome {
                RollOutcome::Succeeded {
                    transition,
                    lateness,
                    late,
                } => {
                    pass.succeeded += 1;
                    if let Some(m) = &self.metrics {
                        m.roll_succeeded(
                            lateness.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6,
                            *late,
                        );
                    }
                    let from = transition.before.current.as_deref().unwrap_or("none");
                    if *late {
                        warn!(job.id = r.job_id, slot = %r.slot, from = %from, to = %r.thumbprint,
                              lateness = %describe_lateness(*lateness), "rolled late");
                    } else {
                        info!(job.id = r.job_id, slot = %r.slot, from = %from, to = %r.thumbprint,
                              lateness = %describe_lateness(*lateness), "rolled");
                    }
                }
                RollOutcome::Failed { reason, .. } => {
                    pass.failed += 1;
                    if let Some(m) = &self.metrics {
                        m.roll_failed();
                    }
                    error!(job.id = r.job_id, slot = %r.slot, thumbprint = %r.thumbprint, reason = %reason,
                           "roll failed; the slot is unchanged");
                }
                RollOutcome::LeaseLost => {
                    warn!(job.id = r.job_id, slot = %r.slot, "the job was cancelled, or its lease ran out, before the roll ran: left as it is");
                }
                RollOutcome::Retry { error } => {
                    pass.retried += 1;
                    self.retry_later(r.job_id, r.attempts, error)?;
                }
            }
        }
        if let Some(obs) = self.observer.as_mut() {
            obs(&results, committed);
        }
        Ok(pass)
    }

    fn retry_later(&mut self, job_id: i64, attempts: u32, error: &str) -> Result<(), StoreError> {
        let delay = self.settings.retry.delay(attempts, random_jitter());
        let at = self.clock.now() + Duration::from_std(delay).unwrap_or(Duration::seconds(1));
        warn!(job.id = job_id, attempt = attempts, retry_in_ms = delay.as_millis() as u64, error = %error,
              "transient failure, retrying");
        if let Err(e) = self.store.release(&self.owner, &[job_id], at, error) {
            // The lease will expire and the job will be recovered.
            warn!(job.id = job_id, error = %e, "could not give the job back; its lease will expire");
        }
        Ok(())
    }

    /// Begins the expiry watch (see [`ScanProgress`]); one already under
    /// way goes on.
    fn begin_expiry_scan(&mut self) {
        if self.scan.is_some() {
            debug!("expiry scan already under way");
            return;
        }
        let now = std::time::Instant::now();
        self.scan = Some(ScanProgress {
            after: 0,
            alerts: 0,
            pages: 0,
            begun: now,
            // The first page waits for a gap too, but no longer than this.
            last_page: now,
        });
    }

    /// When the next page of an expiry watch under way runs, if any (see
    /// [`scan_pace`]).
    fn scan_pace(&self, wake: Option<DateTime<Utc>>) -> Option<Pace> {
        let p = self.scan.as_ref()?;
        Some(scan_pace(
            self.clock.now(),
            wake,
            self.page_cost,
            p.last_page.elapsed(),
        ))
    }

    /// Runs one page of the expiry watch under way if [`scan_pace`] says
    /// so. Returns when the engine should wake: `wake`, or sooner for the
    /// watch's next page.
    fn scan_if_quiet(&mut self, wake: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        if self.scan_pace(wake) == Some(Pace::Now)
            && let Err(e) = self.expiry_scan_page()
        {
            warn!(error = %e, "expiry scan failed");
            self.scan = None;
        }
        match self.scan_pace(wake) {
            None => wake,
            Some(Pace::Now) => Some(self.clock.now()),
            Some(Pace::At(t)) => Some(t),
        }
    }

    /// One page of the expiry watch under way; at its end, logs and records
    /// the whole watch.
    fn expiry_scan_page(&mut self) -> Result<(), StoreError> {
        let Some(p) = &mut self.scan else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let (alerts, next) = expiry_scan_from(&mut self.store, &self.config, now, p.after)?;
        let took = started.elapsed();
        // Follow a slower page at once, a faster one gradually.
        self.page_cost = if took > self.page_cost {
            took
        } else {
            (self.page_cost * 3 + took) / 4
        };
        p.pages += 1;
        p.alerts += alerts.len();
        p.last_page = std::time::Instant::now();
        for a in &alerts {
            match a.severity {
                crate::cert::types::EventSeverity::Info => {
                    info!(slot = %a.slot, alert = %a.key.alert, thumbprint = %a.cert.thumbprint, "{}", a.message)
                }
                _ => {
                    warn!(slot = %a.slot, alert = %a.key.alert, thumbprint = %a.cert.thumbprint, "{}", a.message)
                }
            }
        }
        match next {
            Some(after) => p.after = after,
            None => {
                info!(
                    alerts = p.alerts,
                    pages = p.pages,
                    took_ms = p.begun.elapsed().as_millis() as u64,
                    page_ms = self.page_cost.as_secs_f64() * 1000.0,
                    "expiry scan done"
                );
                if let Some(m) = &self.metrics {
                    m.expiry_scanned(now);
                }
                self.scan = None;
            }
        }
        Ok(())
    }

    /// One pass for `certroll roll`: runs the jobs due now (or, with
    /// `early`, every scheduled job the filter selects), without waiting.
    pub fn run_once(
        &mut self,
        filter: &JobFilter,
        early: bool,
    ) -> Result<(PassSummary, Vec<JobResult>), StoreError> {
        let now = self.clock.now();
        for (id, holder) in self
            .store
            .recover_dead(now, &|o| holder_is_dead(o, &self.owner))?
        {
            info!(job.id = id, holder = %holder, "recovered a job whose holder is gone");
        }
        for (id, holder) in self.store.recover_expired(now)? {
            warn!(job.id = id, holder = %holder, "recovered a job whose lease expired");
        }
        let mut all = Vec::new();
        let mut total = PassSummary::default();
        let results = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = results.clone();
        let previous = self.observer.replace(Box::new(move |r: &[JobResult], _| {
            sink.lock().expect("results lock").extend_from_slice(r)
        }));
        loop {
            let now = self.clock.now();
            let claimed = self.store.claim(
                &self.owner,
                now,
                (!early).then_some(now),
                self.settings.lease,
                self.settings.batch_size,
                filter,
            )?;
            if claimed.is_empty() {
                break;
            }
            // `roll --now` is the operator's explicit override of staging.
            let claimed = if early {
                claimed
            } else {
                self.staging_gate(&claimed)?
            };
            if claimed.is_empty() {
                break;
            }
            let pass = self.execute(&claimed, None)?;
            total.add(&pass);
            if pass.succeeded + pass.failed == 0 {
                break;
            }
        }
        self.observer = previous;
        all.extend(results.lock().expect("results lock").drain(..));
        Ok((total, all))
    }
}

/// What `certroll roll --dry-run` found a due job would do.
#[derive(Clone, Debug)]
pub struct PlannedRoll {
    pub job: crate::store::Job,
    /// The slot after the roll, or why the roll would fail.
    pub outcome: Result<crate::cert::slot::Transition, String>,
}

impl Engine {
    /// `certroll roll --dry-run`: the jobs a run would take (due now, or
    /// with `early` every scheduled one the filter selects) and what each
    /// would do, by the rules the run applies; nothing is claimed or
    /// changed. A roll held for staging is reported as it would run.
    pub fn plan_once(
        &self,
        filter: &JobFilter,
        early: bool,
    ) -> Result<Vec<PlannedRoll>, StoreError> {
        let now = self.clock.now();
        let mut jobs: Vec<_> = self
            .store
            .jobs(Some(crate::store::JobState::Scheduled), filter, None)?
            .into_iter()
            .filter(|j| early || j.run_after <= now)
            .collect();
        jobs.sort_by_key(|j| (j.due_at, j.id));
        let mut out = Vec::new();
        for job in jobs {
            let state = self.store.slot_state(&job.slot)?.unwrap_or_default();
            let outcome = match crate::cert::slot::roll(&state, &job.thumbprint) {
                crate::cert::slot::RollPlan::Promote(t) => {
                    let cert = self.store.find_cert(&job.thumbprint)?;
                    roll_check(&self.config, &job.slot, &cert, now).map(|()| t)
                }
                other => Err(other.refusal().unwrap_or_default()),
            };
            out.push(PlannedRoll { job, outcome });
        }
        Ok(out)
    }
}

/// The expiry watch over `store` at `now` with `config`'s rules: records
/// and returns the alerts due (each sent once).
pub fn expiry_scan(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<crate::cert::expiry::ExpiryAlert>, StoreError> {
    let mut all = Vec::new();
    let mut after = Some(0);
    while let Some(from) = after {
        let (alerts, next) = expiry_scan_from(store, config, now, from)?;
        all.extend(alerts);
        after = next;
    }
    Ok(all)
}

/// One page of the expiry watch: the slots after row id `after`. Returns
/// the alerts it sent and where the next page begins (`None`: done).
pub fn expiry_scan_from(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    after: i64,
) -> Result<(Vec<crate::cert::expiry::ExpiryAlert>, Option<i64>), StoreError> {
    let ctx = crate::store::OpCtx {
        now,
        actor: "serve:expiry-watch".into(),
    };
    let rules = |slot: &SlotKey| config.expiry_rules(slot);
    store.expiry_scan_from(&ctx, after, crate::store::EXPIRY_PAGE, &|facts, sent| {
        crate::cert::expiry::scan(facts, &rules, now, sent)
    })
}

/// The policy a roll must still satisfy at its instant: errors fail it
/// (warnings were accepted when it was scheduled).
pub fn roll_check(
    config: &Config,
    slot: &SlotKey,
    cert: &StoredCert,
    at: DateTime<Utc>,
) -> Result<(), String> {
    let Some(p) = config.try_policy(&slot.usage_type) else {
        return Err(format!(
            "usage type {} is no longer in the configuration",
            slot.usage_type
        ));
    };
    let errors: Vec<String> = policy::evaluate(
        &slot.usage_type,
        p,
        config.sip_domain.as_deref(),
        &cert.info,
        cert.has_private_key,
        at,
    )
    .into_iter()
    .filter(|f| f.severity == Severity::Error)
    .map(|f| f.to_string())
    .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_watch_pages_in_gaps_and_never_starves() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .to_utc();
        let ms = Duration::milliseconds;
        let cost = StdDuration::from_millis(10);
        let recent = StdDuration::from_millis(100);
        // Nothing to do, or a gap of more than twice a page and 1 ms: now.
        assert_eq!(scan_pace(now, None, cost, recent), Pace::Now);
        assert_eq!(scan_pace(now, Some(now + ms(22)), cost, recent), Pace::Now);
        // A roll sooner than that: after it.
        assert_eq!(
            scan_pace(now, Some(now + ms(21)), cost, recent),
            Pace::At(now + ms(21))
        );
        assert_eq!(
            scan_pace(now, Some(now - ms(5)), cost, recent),
            Pace::At(now - ms(5))
        );
        // A slower page needs a larger gap.
        assert_eq!(
            scan_pace(
                now,
                Some(now + ms(60)),
                StdDuration::from_millis(30),
                recent
            ),
            Pace::At(now + ms(60))
        );
        // Rolls back to back: a page once the last is 5 s old, and the
        // engine wakes for that moment if nothing comes first.
        assert_eq!(
            scan_pace(now, Some(now + ms(1)), cost, SCAN_STARVATION),
            Pace::Now
        );
        assert_eq!(
            scan_pace(
                now,
                Some(now + ms(10_000)),
                StdDuration::from_secs(9),
                recent
            ),
            Pace::At(now + ms(4_900))
        );
    }

    #[test]
    fn writes_start_early_enough_for_what_they_took() {
        let ms = StdDuration::from_millis;
        let limit = Duration::milliseconds(25);
        // Quick writes (SQLite): the floor.
        assert_eq!(prepare_ahead(StdDuration::ZERO, limit), PREPARE_AHEAD);
        assert_eq!(prepare_ahead(ms(1), limit), PREPARE_AHEAD);
        // 3 ms of round trips (PostgreSQL): 5 ms ahead.
        assert_eq!(prepare_ahead(ms(3), limit), Duration::milliseconds(5));
        // Never past the limit (half the preclaim), never under the floor.
        assert_eq!(prepare_ahead(ms(100), limit), limit);
        assert_eq!(prepare_ahead(ms(100), Duration::zero()), PREPARE_AHEAD);
    }

    #[test]
    fn owner_ids_name_host_and_pid() {
        let me = owner_id();
        assert!(me.starts_with(&format!("{}:{}:", hostname(), std::process::id())));
        assert_ne!(me, owner_id());
        // An earlier run of this pid, another host, garbage.
        assert!(holder_is_dead(
            &format!("{}:{}:00000000", hostname(), std::process::id()),
            &me
        ));
        assert!(!holder_is_dead(&me, &me));
        // Another engine of this same process is alive.
        let sibling = owner_id();
        assert!(!holder_is_dead(&sibling, &me));
        assert!(!holder_is_dead(&me, &sibling));
        assert!(!holder_is_dead("elsewhere.example:1:00", &me));
        assert!(!holder_is_dead("nonsense", &me));
        // pid 1 exists; a pid beyond pid_max does not.
        assert!(!holder_is_dead(&format!("{}:1:00", hostname()), &me));
        assert!(holder_is_dead(
            &format!("{}:2147483646:00", hostname()),
            &me
        ));
    }
}
