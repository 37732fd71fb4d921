//! The roll queue. Scheduling writes the pending certificate and its job in
//! one transaction. Claiming is one atomic statement that moves due jobs to
//! `running` under a lease (owner, expiry), so any number of processes on
//! one store run each job once. Executing a claimed job is one transaction:
//! the slot change, the job's final state, the audit row and the outbox
//! rows. Jobs claimed together share it: their slots are read in one
//! statement, each job is decided by the domain, and their writes go many
//! rows to a statement; should one of them hit a database error, the batch
//! runs again with each job inside its own savepoint, so a bad one cannot
//! undo the others. A lease whose holder died expires and the job is
//! recovered.

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::audit::{self, Severity};
use super::certs::{self, ImportOutcome, NewCert, StoredCert};
use super::db::{Backend, Exec, Row, Value, vals};
use super::slots::{self, cancel_live_jobs, ensure_slot, load_state, write_state};
use super::{OpCtx, SlotChange, Store, StoreError, parse_ts, ts};
use crate::cert::slot::{self, RollPlan, SchedulePlan, Transition};
use crate::cert::{Scope, SlotKey, UsageType};

/// The states of a roll job: `scheduled → running → succeeded | failed`,
/// and `cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Scheduled,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Scheduled,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|j| j.as_str() == s)
    }

    pub fn is_live(self) -> bool {
        matches!(self, JobState::Scheduled | JobState::Running)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A roll job as stored.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: i64,
    pub slot: SlotKey,
    pub thumbprint: String,
    pub due_at: DateTime<Utc>,
    pub run_after: DateTime<Utc>,
    pub state: JobState,
    pub attempts: u32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub finished_by: Option<String>,
    pub last_error: Option<String>,
    /// How long after its instant the job ran (negative: ahead of it).
    pub lateness_us: Option<i64>,
}

/// Which slots a queue operation looks at.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub types: Vec<UsageType>,
    pub scope: Option<Scope>,
}

impl JobFilter {
    /// SQL conditions on the slot `s`, and their arguments, numbered from
    /// `?first`.
    fn sql(&self, first: usize) -> (String, Vec<String>) {
        super::db::slot_filter("s.", &self.types, self.scope.as_ref(), first)
    }
}

/// What scheduling did (or, from `plan_schedule`, would do).
#[derive(Clone, Debug)]
pub struct ScheduleReport {
    pub import: Option<ImportOutcome>,
    pub changes: Vec<SlotChange<SchedulePlan>>,
    /// The job created for each changed slot.
    pub job_ids: Vec<i64>,
}

/// See [`Store::next_wake`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextWake {
    pub due: Option<DateTime<Utc>>,
    pub lease_expiry: Option<DateTime<Utc>>,
}

/// A job claimed under a lease, ready to execute.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: i64,
    pub slot_id: i64,
    pub cert_id: i64,
    pub slot: SlotKey,
    pub thumbprint: String,
    pub due_at: DateTime<Utc>,
    pub run_after: DateTime<Utc>,
    pub attempts: u32,
    pub lease_expires_at: DateTime<Utc>,
    /// The roll waits until every server has staged the certificate.
    pub require_staged: bool,
    /// Since when it has been held past its instant for staging.
    pub held_since: Option<DateTime<Utc>>,
    /// Promoted at the staging deadline although servers have not staged
    /// it: the `roll.forced` alert (message, data), written in the roll's
    /// own transaction so a crash can neither lose nor repeat it.
    pub forced: Option<(String, serde_json::Value)>,
}

/// The outcome of executing one claimed job.
#[derive(Clone, Debug)]
pub enum RollOutcome {
    Succeeded {
        transition: Transition,
        lateness: Duration,
        late: bool,
    },
    /// The job cannot succeed; the slot is unchanged.
    Failed { reason: String, lateness: Duration },
    /// The lease ran out before the job ran: another process may run it.
    LeaseLost,
    /// A transient error (busy database, I/O): the job is still leased and
    /// should be released for a later attempt.
    Retry { error: String },
}

#[derive(Clone, Debug)]
pub struct JobResult {
    pub job_id: i64,
    pub slot: SlotKey,
    pub thumbprint: String,
    pub due_at: DateTime<Utc>,
    pub attempts: u32,
    pub outcome: RollOutcome,
}

/// Checks a certificate against its slot's policy at the instant of the
/// roll; `Err` carries the reason the roll must fail.
pub type RollCheck<'a> = &'a dyn Fn(&SlotKey, &StoredCert, DateTime<Utc>) -> Result<(), String>;

/// How `execute` runs jobs.
pub struct ExecOptions<'a> {
    pub owner: &'a str,
    pub actor: &'a str,
    /// A roll later than this after its instant raises `roll.late`.
    pub late_after: Duration,
    /// A job claimed more often than this fails for good.
    pub max_attempts: u32,
    pub check: RollCheck<'a>,
    /// The clock, read for each job (lateness is per job).
    pub clock: &'a dyn Fn() -> DateTime<Utc>,
    /// The jobs are prepared ahead of their instant and committed at it
    /// (see `execute_with`): each takes effect at the later of the clock
    /// and its `run_after`.
    pub at_instant: bool,
}

const JOB_COLUMNS: &str =
    "j.id, s.scope, s.usage_type, c.thumbprint, j.due_at, j.run_after, j.state,
    j.attempts, j.lease_owner, j.lease_expires_at, j.created_at, j.created_by, j.started_at,
    j.finished_at, j.finished_by, j.last_error, j.lateness_us";

const JOB_FROM: &str =
    "FROM jobs j JOIN slots s ON s.id = j.slot_id JOIN certificates c ON c.id = j.cert_id";

fn job_from_row(r: &Row<'_>) -> Result<Job, StoreError> {
    let id = r.int(0)?;
    let opt = |i| -> Result<Option<DateTime<Utc>>, StoreError> {
        r.opt_text(i)?.as_deref().map(parse_ts).transpose()
    };
    let state = r.text(6)?;
    Ok(Job {
        id,
        slot: SlotKey::new(
            Scope::parse(&r.text(1)?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            UsageType::from_canonical(r.text(2)?),
        ),
        thumbprint: r.text(3)?,
        due_at: parse_ts(&r.text(4)?)?,
        run_after: parse_ts(&r.text(5)?)?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("job {id}: state {state}")))?,
        attempts: attempts(r, 7)?,
        lease_owner: r.opt_text(8)?,
        lease_expires_at: opt(9)?,
        created_at: parse_ts(&r.text(10)?)?,
        created_by: r.text(11)?,
        started_at: opt(12)?,
        finished_at: opt(13)?,
        finished_by: r.opt_text(14)?,
        last_error: r.opt_text(15)?,
        lateness_us: r.opt_int(16)?,
    })
}

fn attempts(r: &Row<'_>, i: usize) -> Result<u32, StoreError> {
    let n = r.int(i)?;
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} attempts")))
}

fn us(d: Duration) -> i64 {
    d.num_microseconds().unwrap_or(i64::MAX)
}

/// "3.2 s late", "0.4 ms late", "2 h 5 min early".
pub fn describe_lateness(d: Duration) -> String {
    let (word, d) = if d < Duration::zero() {
        ("early", -d)
    } else {
        ("late", d)
    };
    let ms = d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
    let text = if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else if ms < 120_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms < 7_200_000.0 {
        format!("{} min", (ms / 60_000.0).round())
    } else {
        format!("{:.1} h", ms / 3_600_000.0)
    };
    format!("{text} {word}")
}

impl Store {
    /// What scheduling `thumbprint` at `at` in each slot would do (reads only).
    pub fn plan_schedule(
        &self,
        thumbprint: &str,
        slots: &[SlotKey],
        at: DateTime<Utc>,
        replace: bool,
    ) -> Result<Vec<SlotChange<SchedulePlan>>, StoreError> {
        slots
            .iter()
            .map(|slot| {
                let state = load_state(&self.conn, slot)?
                    .map(|(_, s)| s)
                    .unwrap_or_default();
                Ok(SlotChange {
                    slot: slot.clone(),
                    plan: slot::schedule(&state, thumbprint, at, replace),
                })
            })
            .collect()
    }

    /// Imports `import` (if given) and schedules `thumbprint` to become
    /// current at `at` in every slot (rule 2), with one job per slot, all
    /// in one transaction. An existing pending roll is a conflict unless
    /// `replace`, which cancels its job (audited).
    pub fn schedule(
        &mut self,
        import: Option<&NewCert<'_>>,
        thumbprint: &str,
        slots: &[SlotKey],
        at: DateTime<Utc>,
        replace: bool,
        ctx: &OpCtx,
    ) -> Result<ScheduleReport, StoreError> {
        self.schedule_with(import, thumbprint, slots, at, replace, false, ctx)
    }

    /// As `schedule`; with `require_staged` the roll waits until every
    /// server that takes the slot has staged the certificate.
    #[allow(clippy::too_many_arguments)]
    pub fn schedule_with(
        &mut self,
        import: Option<&NewCert<'_>>,
        thumbprint: &str,
        slots: &[SlotKey],
        at: DateTime<Utc>,
        replace: bool,
        require_staged: bool,
        ctx: &OpCtx,
    ) -> Result<ScheduleReport, StoreError> {
        let sealed = self.seal_for_import(import, thumbprint)?;
        let tx = self.conn.begin()?;
        let report = schedule_tx(
            &tx,
            import.map(|new| (new, sealed.as_ref())),
            thumbprint,
            slots,
            at,
            replace,
            require_staged,
            ctx,
        )?;
        tx.commit()?;
        Ok(report)
    }

    /// Atomically moves up to `limit` scheduled jobs to `running` under a
    /// lease held by `owner` until `now + lease`. With `due_before`, only
    /// jobs whose `run_after` is at or before it; without, every scheduled
    /// job the filter selects (`roll --now`).
    pub fn claim(
        &mut self,
        owner: &str,
        now: DateTime<Utc>,
        due_before: Option<DateTime<Utc>>,
        lease: Duration,
        limit: usize,
        filter: &JobFilter,
    ) -> Result<Vec<Claimed>, StoreError> {
        let backend = self.conn.backend();
        // ?1 owner, ?2 the lease's expiry (SQLite) or its length in ms
        // (PostgreSQL, which ends it by its own clock), ?3 now, then the
        // instant and the filter.
        let (expiry, now_ts) = (ts(now + lease), ts(now));
        let due = due_before.map(ts);
        let mut params: Vec<Value<'_>> = vec![
            Value::from(owner),
            match backend {
                Backend::Sqlite => Value::from(&expiry),
                Backend::Postgres => Value::Int(lease.num_milliseconds()),
            },
            Value::from(&now_ts),
        ];
        let due_cond = match &due {
            Some(d) => {
                params.push(Value::from(d));
                " AND j.run_after <= ?4"
            }
            None => "",
        };
        let (cond, filter_args) = filter.sql(params.len() + 1);
        params.extend(filter_args.iter().map(Value::from));
        let from = if cond.is_empty() {
            "FROM jobs j"
        } else {
            "FROM jobs j JOIN slots s ON s.id = j.slot_id"
        };
        const RETURNING: &str = "RETURNING jobs.id, jobs.slot_id, jobs.cert_id, jobs.due_at,
                       jobs.run_after, jobs.attempts, jobs.lease_expires_at,
                       (SELECT scope FROM slots WHERE slots.id = jobs.slot_id),
                       (SELECT usage_type FROM slots WHERE slots.id = jobs.slot_id),
                       (SELECT thumbprint FROM certificates WHERE certificates.id = jobs.cert_id),
                       jobs.require_staged, jobs.held_since";
        // LIMIT is a literal: a bound LIMIT makes SQLite re-prepare the
        // statement at every use (its plan depends on the value).
        let sql = match backend {
            // The write lock of BEGIN IMMEDIATE makes the claim exclusive.
            Backend::Sqlite => format!(
                "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_expires_at = ?2,
                        attempts = attempts + 1, started_at = ?3
                 WHERE id IN (SELECT j.id {from} WHERE j.state = 'scheduled'{due_cond}{cond}
                              ORDER BY j.run_after, j.id LIMIT {limit})
                 {RETURNING}"
            ),
            // Rows another engine is claiming are skipped, not waited for;
            // the materialised CTE locks exactly the rows the UPDATE
            // changes, never more than the limit; the lease ends by the
            // database's clock, whatever the host's says.
            Backend::Postgres => format!(
                "WITH c AS MATERIALIZED (
                     SELECT j.id {from} WHERE j.state = 'scheduled'{due_cond}{cond}
                     ORDER BY j.run_after, j.id LIMIT {limit} FOR UPDATE OF j SKIP LOCKED)
                 UPDATE jobs SET state = 'running', lease_owner = ?1,
                        lease_expires_at = certroll_ts(now() + ?2::bigint * interval '1 millisecond'),
                        attempts = jobs.attempts + 1, started_at = ?3
                 FROM c WHERE jobs.id = c.id
                 {RETURNING}"
            ),
        };
        let tx = self.conn.begin()?;
        if backend == Backend::Postgres {
            // A claim need not wait for the disk: lost in a crash of the
            // server, the jobs are simply still scheduled, and the claimer's
            // compare-and-set then changes nothing. One flush fewer before
            // each instant.
            tx.batch("SET LOCAL synchronous_commit = off")?;
        }
        let rows = tx.rows(&sql, &params, |r| {
            Ok(Claimed {
                id: r.int(0)?,
                slot_id: r.int(1)?,
                cert_id: r.int(2)?,
                slot: SlotKey::new(
                    Scope::parse(&r.text(7)?).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    UsageType::from_canonical(r.text(8)?),
                ),
                thumbprint: r.text(9)?,
                due_at: parse_ts(&r.text(3)?)?,
                run_after: parse_ts(&r.text(4)?)?,
                attempts: attempts(r, 5)?,
                lease_expires_at: parse_ts(&r.text(6)?)?,
                require_staged: r.bool(10)?,
                held_since: r.opt_text(11)?.as_deref().map(parse_ts).transpose()?,
                forced: None,
            })
        })?;
        tx.commit()?;
        let mut out = rows;
        out.sort_by_key(|a| (a.run_after, a.id));
        Ok(out)
    }

    /// Runs claimed jobs in one transaction. The fast path runs them
    /// together (see `execute_group`); if any of them hits a database error, the whole
    /// transaction is rolled back and the batch runs again with each job in
    /// its own savepoint, so that the bad job is set aside for a retry and
    /// cannot undo the others. On `Err` (the commit failed) nothing was
    /// applied and the jobs are still leased.
    pub fn execute(
        &mut self,
        jobs: &[Claimed],
        opts: &ExecOptions<'_>,
    ) -> Result<Vec<JobResult>, StoreError> {
        self.execute_with(jobs, opts, &mut || {})
    }

    /// As `execute`, calling `before_commit` between writing the batch and
    /// committing it: the engine waits there for the jobs' instant, so a
    /// roll becomes visible at its instant plus only the commit's own time.
    pub fn execute_with(
        &mut self,
        jobs: &[Claimed],
        opts: &ExecOptions<'_>,
        before_commit: &mut dyn FnMut(),
    ) -> Result<Vec<JobResult>, StoreError> {
        if let Some(results) = self.execute_batch(jobs, opts, false, before_commit)? {
            return Ok(results);
        }
        Ok(self
            .execute_batch(jobs, opts, true, before_commit)?
            .expect("with savepoints every job has an outcome"))
    }

    /// `Ok(None)`: a job failed without savepoints; nothing was applied.
    fn execute_batch(
        &mut self,
        jobs: &[Claimed],
        opts: &ExecOptions<'_>,
        savepoints: bool,
        before_commit: &mut dyn FnMut(),
    ) -> Result<Option<Vec<JobResult>>, StoreError> {
        let Store {
            conn, cert_cache, ..
        } = self;
        if cert_cache.len() > 1024 {
            cert_cache.clear();
        }
        let tx = conn.begin()?;
        by_key(&tx)?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        if savepoints {
            for job in jobs {
                let sp = tx.savepoint()?;
                match execute_group(&sp, std::slice::from_ref(job), opts, cert_cache) {
                    Ok(mut o) => {
                        let o = o.pop().expect("one outcome per job");
                        if matches!(o, RollOutcome::LeaseLost) {
                            sp.rollback()?;
                        } else {
                            sp.release()?;
                        }
                        outcomes.push(o);
                    }
                    Err(e) => {
                        sp.rollback()?;
                        outcomes.push(RollOutcome::Retry {
                            error: e.to_string(),
                        });
                    }
                }
            }
        } else {
            // One group: a slot has at most one live job (the unique index
            // jobs_one_live_per_slot), so no two of these jobs share a slot
            // and each slot's state, read once, is the one its job changes.
            match execute_group(&tx, jobs, opts, cert_cache) {
                Ok(o) => outcomes.extend(o),
                Err(_) => {
                    tx.rollback()?;
                    return Ok(None);
                }
            }
        }
        let results = jobs
            .iter()
            .zip(outcomes)
            .map(|(job, outcome)| JobResult {
                job_id: job.id,
                slot: job.slot.clone(),
                thumbprint: job.thumbprint.clone(),
                due_at: job.due_at,
                attempts: job.attempts,
                outcome,
            })
            .collect();
        before_commit();
        crate::failpoint::crash_point("roll.before-commit");
        tx.commit()?;
        crate::failpoint::crash_point("roll.committed");
        Ok(Some(results))
    }

    /// Gives leased jobs back to the queue, to be tried again at `run_after`.
    pub fn release(
        &mut self,
        owner: &str,
        ids: &[i64],
        run_after: DateTime<Utc>,
        error: &str,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.begin()?;
        let mut n = 0;
        for id in ids {
            n += tx.exec(
                "UPDATE jobs SET state = 'scheduled', lease_owner = NULL, lease_expires_at = NULL,
                        run_after = ?1, last_error = ?2
                 WHERE id = ?3 AND state = 'running' AND lease_owner = ?4",
                vals![&ts(run_after), error, *id, owner],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Gives claimed jobs back untouched (the engine is stopping before
    /// their instant): the claim's attempt does not count.
    pub fn unclaim(&mut self, owner: &str, ids: &[i64]) -> Result<usize, StoreError> {
        let tx = self.conn.begin()?;
        let mut n = 0;
        for id in ids {
            n += tx.exec(
                "UPDATE jobs SET state = 'scheduled', lease_owner = NULL, lease_expires_at = NULL,
                        attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
                 WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
                vals![*id, owner],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Housekeeping: lets SQLite refresh its statistics and truncates the
    /// write-ahead log; on PostgreSQL, autovacuum does this.
    pub fn maintenance(&mut self) -> Result<(), StoreError> {
        if let Some(c) = self.conn.sqlite() {
            c.execute_batch("PRAGMA optimize;")?;
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// Puts back in the queue every job whose lease expired by `now` (its
    /// holder died or hung; on PostgreSQL by the database's clock). Returns
    /// (job id, old holder).
    pub fn recover_expired(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        // On PostgreSQL by the database's clock; SQLite's processes share
        // one host's.
        let db_now = match self.conn.backend() {
            Backend::Sqlite => "?1",
            Backend::Postgres => "certroll_ts(now())",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'scheduled', lease_owner = NULL, lease_expires_at = NULL,
                    run_after = CASE WHEN due_at > ?1 THEN due_at ELSE ?1 END,
                    last_error = 'lease of ' || lease_owner || ' expired'
             WHERE state = 'running' AND lease_expires_at <= {db_now}
             RETURNING id, last_error"
        );
        // RETURNING gives the new row, whose lease_owner is NULL: the old
        // holder is read back from the error written with it.
        let rows = self.conn.rows(&sql, vals![&ts(now)], |r| {
            let error = r.opt_text(1)?.unwrap_or_default();
            let holder = error
                .strip_prefix("lease of ")
                .and_then(|e| e.strip_suffix(" expired"))
                .unwrap_or_default()
                .to_string();
            Ok((r.int(0)?, holder))
        })?;
        Ok(rows)
    }

    /// Puts back in the queue the jobs leased by holders `is_dead` says are
    /// gone (a process of this host that no longer runs), without waiting
    /// for their leases to expire.
    pub fn recover_dead(
        &mut self,
        now: DateTime<Utc>,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let owners = self.conn.rows(
            "SELECT DISTINCT lease_owner FROM jobs WHERE state = 'running' AND lease_expires_at > ''",
            &[],
            |r| r.opt_text(0),
        )?;
        let mut out = Vec::new();
        for owner in owners.into_iter().flatten().filter(|o| is_dead(o)) {
            let rows = self.conn.rows(
                "UPDATE jobs SET state = 'scheduled', lease_owner = NULL, lease_expires_at = NULL,
                        run_after = CASE WHEN due_at > ?1 THEN due_at ELSE ?1 END,
                        last_error = 'holder ' || ?2 || ' died'
                 WHERE state = 'running' AND lease_owner = ?2 AND lease_expires_at > ''
                 RETURNING id",
                vals![&ts(now), &owner],
                |r| r.int(0),
            )?;
            out.extend(rows.into_iter().map(|id| (id, owner.clone())));
        }
        Ok(out)
    }

    /// When the queue next needs attention: the earliest `run_after` of a
    /// scheduled job, and the earliest expiry of a lease (read from the
    /// partial indexes; no table scan).
    pub fn next_wake(&self) -> Result<NextWake, StoreError> {
        // SQLite's planner takes jobs_by_state and reads every scheduled
        // job (40 ms over 100,000, at every wake); the partial indexes
        // answer from their first entry.
        let (runnable, leases) = match self.conn.backend() {
            Backend::Sqlite => ("INDEXED BY jobs_runnable", "INDEXED BY jobs_leases"),
            Backend::Postgres => ("", ""),
        };
        let due = self.conn.row(
            &format!("SELECT min(run_after) FROM jobs {runnable} WHERE state = 'scheduled'"),
            &[],
            |r| r.opt_text(0),
        )?;
        let lease = self.conn.row(
            &format!(
                "SELECT min(lease_expires_at) FROM jobs {leases} WHERE state = 'running' AND lease_expires_at > ''"
            ),
            &[],
            |r| r.opt_text(0),
        )?;
        Ok(NextWake {
            due: due.flatten().as_deref().map(parse_ts).transpose()?,
            lease_expiry: lease.flatten().as_deref().map(parse_ts).transpose()?,
        })
    }

    /// Changes whenever another process commits a change the engine cares
    /// about (SQLite's `data_version`; on PostgreSQL the notifications
    /// heard, or a change counter its triggers advance): a constant-time
    /// way to notice other processes.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        match &self.conn {
            super::db::Conn::Sqlite(c) => Ok(c.query_row("PRAGMA data_version", [], |r| r.get(0))?),
            super::db::Conn::Postgres(c) => c.change_counter(),
        }
    }

    /// `certroll bench`: moves every scheduled job (and its slot's
    /// pending instant) to `at`.
    pub fn bench_move_due(&mut self, at: DateTime<Utc>) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        tx.exec(
            "UPDATE jobs SET due_at = ?1, run_after = ?1 WHERE state = 'scheduled'",
            vals![&ts(at)],
        )?;
        tx.exec(
            "UPDATE slots SET effective_at = ?1 WHERE pending_cert IS NOT NULL",
            vals![&ts(at)],
        )?;
        tx.commit()
    }

    /// `certroll bench`: the limit of the store's own writes for a burst.
    /// Batch after batch, as the engine goes: claims `batch` scheduled jobs
    /// and prepares each one's rows (a promotion, as a roll writes them),
    /// neither timed, then times only the writing, the statements a roll's
    /// transaction runs (final job states, slot promotions, audit rows,
    /// events) and the commit. Returns the time and how many jobs were
    /// written.
    pub fn bench_write_limit(
        &mut self,
        owner: &str,
        batch: usize,
    ) -> Result<(std::time::Duration, usize), StoreError> {
        let now = Utc::now();
        let ctx = OpCtx {
            now,
            actor: format!("serve:{owner}"),
        };
        let (mut took, mut done) = (std::time::Duration::ZERO, 0);
        loop {
            let lease = Duration::hours(1);
            let chunk = self.claim(owner, now, None, lease, batch, &JobFilter::default())?;
            if chunk.is_empty() {
                return Ok((took, done));
            }
            let tx = self.conn.begin()?;
            let ids: Vec<i64> = chunk.iter().map(|j| j.slot_id).collect();
            let states = slots::load_states_by_ids(&tx, &ids)?;
            tx.rollback()?;
            let mut decisions = Vec::with_capacity(chunk.len());
            for job in &chunk {
                let state = states.get(&job.slot_id).cloned().unwrap_or_default();
                let RollPlan::Promote(t) = slot::roll(&state, &job.thumbprint) else {
                    return Err(StoreError::Corrupt(format!(
                        "job {} has nothing to promote",
                        job.id
                    )));
                };
                decisions.push(promotion(job, &ctx, t, now - job.due_at, false));
            }
            let started = std::time::Instant::now();
            let tx = self.conn.begin()?;
            by_key(&tx)?;
            write_group(&tx, &chunk, decisions, owner)?;
            tx.commit()?;
            took += started.elapsed();
            done += chunk.len();
        }
    }

    /// `certroll bench`: spreads the scheduled jobs, in id order, `step`
    /// apart from `start`.
    pub fn bench_spread_due(
        &mut self,
        start: DateTime<Utc>,
        step: Duration,
    ) -> Result<(), StoreError> {
        let ids = self.conn.rows(
            "SELECT id, slot_id FROM jobs WHERE state = 'scheduled' ORDER BY id",
            &[],
            |r| Ok((r.int(0)?, r.int(1)?)),
        )?;
        let rows: Vec<(i64, i64, String)> = ids
            .iter()
            .enumerate()
            .map(|(i, (id, slot))| (*id, *slot, ts(start + step * (i as i32))))
            .collect();
        // Many rows to a statement: on PostgreSQL one statement per row
        // would take seconds for 10,000 jobs, eating the window's lead.
        let tx = self.conn.begin()?;
        let cols = ["CAST({} AS BIGINT)", "CAST({} AS TEXT)"];
        for (table, set) in [
            ("jobs", "due_at = v.column2, run_after = v.column2"),
            ("slots", "effective_at = v.column2"),
        ] {
            super::db::for_rows(
                &tx,
                &rows,
                &[],
                &cols,
                |list| {
                    format!(
                        "UPDATE {table} SET {set} FROM (VALUES {list}) AS v WHERE {table}.id = v.column1"
                    )
                },
                |(job, slot, at), p| {
                    p.extend([
                        Value::Int(if table == "jobs" { *job } else { *slot }),
                        Value::from(at),
                    ])
                },
                |_| Ok(()),
            )?;
        }
        tx.commit()
    }

    pub fn job(&self, id: i64) -> Result<Option<Job>, StoreError> {
        self.conn.row(
            &format!("SELECT {JOB_COLUMNS} {JOB_FROM} WHERE j.id = ?1"),
            vals![id],
            job_from_row,
        )
    }

    /// Jobs, newest first, optionally in one state and for some slots.
    pub fn jobs(
        &self,
        state: Option<JobState>,
        filter: &JobFilter,
        limit: Option<usize>,
    ) -> Result<Vec<Job>, StoreError> {
        let (state_cond, mut args) = match state {
            Some(s) => (" AND j.state = ?1", vec![s.as_str().to_string()]),
            None => ("", vec![]),
        };
        let (cond, filter_args) = filter.sql(args.len() + 1);
        args.extend(filter_args);
        let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let sql = format!(
            "SELECT {JOB_COLUMNS} {JOB_FROM} WHERE 1 = 1{state_cond}{cond} ORDER BY j.id DESC{limit}"
        );
        let params: Vec<Value<'_>> = args.iter().map(Value::from).collect();
        self.conn.rows(&sql, &params, job_from_row)
    }

    /// Counts of jobs by state.
    pub fn job_counts(&self) -> Result<Vec<(JobState, i64)>, StoreError> {
        let mut out = Vec::new();
        for s in JobState::ALL {
            let n = self.conn.row(
                "SELECT count(*) FROM jobs WHERE state = ?1",
                vals![s.as_str()],
                |r| r.int(0),
            )?;
            out.push((s, n.unwrap_or(0)));
        }
        Ok(out)
    }

    /// Cancels a scheduled job: its certificate stops being pending, the
    /// slot's current and previous stay as they are.
    pub fn cancel_job(&mut self, id: i64, ctx: &OpCtx) -> Result<Job, StoreError> {
        let job = self.job(id)?.ok_or(StoreError::NoSuchJob(id))?;
        if !matches!(job.state, JobState::Scheduled | JobState::Running) {
            return Err(StoreError::Refused(format!(
                "job {id} is {}: only a scheduled job can be cancelled",
                job.state
            )));
        }
        let tx = self.conn.begin()?;
        let changed = tx.exec(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?1, finished_by = ?2,
                    last_error = 'cancelled by ' || ?2, lease_owner = NULL, lease_expires_at = NULL
             WHERE id = ?3 AND state IN ('scheduled', 'running')",
            vals![&ts(ctx.now), &ctx.actor, id],
        )?;
        if changed == 0 {
            return Err(StoreError::Refused(format!(
                "job {id} ran meanwhile; it can no longer be cancelled"
            )));
        }
        let (slot_id, state) = load_state(&tx, &job.slot)?
            .ok_or_else(|| StoreError::NoSuchSlot(job.slot.to_string()))?;
        if state
            .pending
            .as_ref()
            .is_some_and(|p| p.thumbprint == job.thumbprint)
        {
            let mut after = state.clone();
            after.pending = None;
            write_state(&tx, slot_id, &after, ctx.now)?;
            let t = Transition {
                before: state,
                after,
            };
            audit::record_slot_change(
                &tx,
                ctx,
                "cancel",
                &job.slot,
                Some(&job.thumbprint),
                &t,
                &format!("job {id}"),
            )?;
        } else {
            audit::record_job(
                &tx,
                ctx,
                "cancel",
                &job.slot,
                &job.thumbprint,
                id,
                "cancelled",
            )?;
        }
        audit::enqueue(
            &tx,
            ctx,
            "roll.cancelled",
            Severity::Info,
            Some(&job.slot),
            &format!(
                "roll of {} to {} cancelled by {}",
                job.slot, job.thumbprint, ctx.actor
            ),
            json!({"job_id": id, "thumbprint": job.thumbprint, "reason": "cancelled"}),
        )?;
        tx.commit()?;
        self.job(id)?.ok_or(StoreError::NoSuchJob(id))
    }

    /// Queues a failed job again, to run at once.
    pub fn retry_job(&mut self, id: i64, ctx: &OpCtx) -> Result<Job, StoreError> {
        let job = self.job(id)?.ok_or(StoreError::NoSuchJob(id))?;
        if job.state != JobState::Failed {
            return Err(StoreError::Refused(format!(
                "job {id} is {}: only a failed job can be retried",
                job.state
            )));
        }
        let tx = self.conn.begin()?;
        let (_, state) = load_state(&tx, &job.slot)?
            .ok_or_else(|| StoreError::NoSuchSlot(job.slot.to_string()))?;
        if state
            .pending
            .as_ref()
            .is_none_or(|p| p.thumbprint != job.thumbprint)
        {
            return Err(StoreError::Refused(format!(
                "{}: {} is no longer pending there; schedule it again with set --effective-date WHEN --roll",
                job.slot, job.thumbprint
            )));
        }
        // On PostgreSQL a failed statement aborts the transaction: the
        // update runs in a savepoint, so the refusal can be told apart.
        let sp = tx.savepoint()?;
        let updated = sp.exec(
            "UPDATE jobs SET state = 'scheduled', run_after = ?1, attempts = 0, lease_owner = NULL,
                    lease_expires_at = NULL, finished_at = NULL, finished_by = NULL
             WHERE id = ?2 AND state = 'failed'",
            vals![&ts(ctx.now), id],
        );
        match &updated {
            Ok(_) => sp.release()?,
            Err(_) => sp.rollback()?,
        }
        match updated {
            Ok(1) => {}
            Ok(_) => return Err(StoreError::Refused(format!("job {id} changed meanwhile"))),
            Err(StoreError::Db(e)) if e.is_constraint() => {
                return Err(StoreError::Refused(format!(
                    "{} already has a live roll job",
                    job.slot
                )));
            }
            Err(e) => return Err(e),
        }
        audit::record_job(
            &tx,
            ctx,
            "retry",
            &job.slot,
            &job.thumbprint,
            id,
            "queued again",
        )?;
        tx.commit()?;
        self.job(id)?.ok_or(StoreError::NoSuchJob(id))
    }
}

/// One job, inside its savepoint. `Err` means a transient error.
/// Every statement of a roll's transaction finds its rows by key, a few
/// hundred at a time. PostgreSQL's planner, guessing from statistics (none
/// yet on a new table, stale after a burst of updates), would rather hash
/// the whole table: a scan of every slot or job per statement, slower as
/// the pool grows; or walk a whole index (every running job, every slot
/// pending the same certificate) and filter it for each row. Inside the
/// transaction it is told to go by the indexes, one row at a time, and the
/// statements compare the columns that are not the key through an
/// expression (`+slots.pending_cert`; the lease's state and owner in one
/// CASE), which no index or partial index matches.
fn by_key(tx: &super::db::Tx<'_>) -> Result<(), StoreError> {
    if tx.backend() == Backend::Postgres {
        tx.batch(
            "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;
             SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off;
             SET LOCAL enable_material = off",
        )?;
    }
    Ok(())
}

/// What running one job writes, decided from the state read for it.
struct Decision {
    outcome: RollOutcome,
    /// The job's final row: state, finished_at, last_error, lateness_us;
    /// `None` when its lease ran out (nothing is written).
    finish: Option<(&'static str, String, Option<String>, i64)>,
    /// The slot's promotion: slot id, pending certificate id, the instant.
    promote: Option<(i64, i64, String)>,
    audit: Vec<audit::AuditRow>,
    events: Vec<audit::EventRow>,
}

/// Runs jobs of distinct slots together: their slots read (and locked) in
/// one statement, each job decided by the domain, then their writes many to
/// a statement (see [`write_group`]). One outcome per job, in order.
fn execute_group(
    tx: &impl Exec,
    jobs: &[Claimed],
    opts: &ExecOptions<'_>,
    certs_cache: &mut HashMap<i64, StoredCert>,
) -> Result<Vec<RollOutcome>, StoreError> {
    let ctxs: Vec<OpCtx> = jobs
        .iter()
        .map(|job| {
            let now = (opts.clock)();
            OpCtx {
                now: if opts.at_instant {
                    now.max(job.run_after)
                } else {
                    now
                },
                actor: opts.actor.to_string(),
            }
        })
        .collect();
    let live: Vec<&Claimed> = jobs
        .iter()
        .zip(&ctxs)
        .filter(|(job, ctx)| ctx.now < job.lease_expires_at)
        .map(|(job, _)| job)
        .collect();
    let slot_ids: Vec<i64> = live.iter().map(|j| j.slot_id).collect();
    let states = slots::load_states_by_ids(tx, &slot_ids)?;
    let mut missing: Vec<i64> = live
        .iter()
        .map(|j| j.cert_id)
        .filter(|id| !certs_cache.contains_key(id))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    for cert in certs::load_certs_by_ids(tx, &missing)? {
        certs_cache.insert(cert.id, cert);
    }
    let decisions = jobs
        .iter()
        .zip(&ctxs)
        .map(|(job, ctx)| decide(job, opts, ctx, &states, certs_cache))
        .collect::<Result<Vec<_>, _>>()?;
    write_group(tx, jobs, decisions, opts.owner)
}

/// Writes what the jobs' decisions say, many rows to a statement: the
/// jobs' final states, each a compare-and-set on the lease `owner` holds,
/// then the slots of those that changed, the audit rows and the events.
/// One outcome per job, in order.
fn write_group(
    tx: &impl Exec,
    jobs: &[Claimed],
    decisions: Vec<Decision>,
    owner: &str,
) -> Result<Vec<RollOutcome>, StoreError> {
    let finished: HashSet<i64> = super::db::for_rows(
        tx,
        &jobs
            .iter()
            .zip(&decisions)
            .filter_map(|(job, d)| d.finish.as_ref().map(|f| (job.id, f)))
            .collect::<Vec<_>>(),
        // The owner comes with each row, not as a parameter of its own:
        // compared with a bound value, the lease owner's index would make
        // SQLite's plan depend on it (re-prepared at every use).
        &[],
        &[
            "CAST({} AS BIGINT)",
            "CAST({} AS TEXT)",
            "CAST({} AS TEXT)",
            "CAST({} AS TEXT)",
            "CAST({} AS BIGINT)",
            "CAST({} AS TEXT)",
        ],
        |list| {
            format!(
                "UPDATE jobs SET state = v.column2, finished_at = v.column3, finished_by = v.column6,
                        last_error = v.column4, lateness_us = v.column5, lease_expires_at = NULL
                 FROM (VALUES {list}) AS v
                 WHERE jobs.id = v.column1
                   AND CASE WHEN jobs.state = 'running' THEN jobs.lease_owner END = v.column6
                 RETURNING jobs.id"
            )
        },
        |(id, (state, at, error, lateness)), p| {
            p.extend([
                Value::Int(*id),
                Value::from(*state),
                Value::from(at),
                Value::from(error.as_ref()),
                Value::Int(*lateness),
                Value::from(owner),
            ]);
        },
        |r| r.int(0),
    )?
    .into_iter()
    .collect();

    let mut outcomes = Vec::with_capacity(jobs.len());
    let (mut moves, mut audits, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for (job, d) in jobs.iter().zip(decisions) {
        if d.finish.is_none() || !finished.contains(&job.id) {
            outcomes.push(RollOutcome::LeaseLost);
            continue;
        }
        moves.extend(d.promote.map(|m| (job.id, m)));
        audits.extend(d.audit);
        events.extend(d.events);
        outcomes.push(d.outcome);
    }
    let moved: HashSet<i64> = super::db::for_rows(
        tx,
        &moves,
        &[],
        &[
            "CAST({} AS BIGINT)",
            "CAST({} AS BIGINT)",
            "CAST({} AS TEXT)",
        ],
        |list| {
            format!(
                "UPDATE slots SET previous_cert = current_cert, current_cert = pending_cert,
                        pending_cert = NULL, effective_at = NULL, updated_at = v.column3,
                        previous_since = CASE WHEN current_cert IS NULL THEN NULL ELSE v.column3 END
                 FROM (VALUES {list}) AS v
                 WHERE slots.id = v.column1 AND +slots.pending_cert = v.column2
                 RETURNING slots.id"
            )
        },
        |(_, (slot_id, cert_id, at)), p| {
            p.extend([Value::Int(*slot_id), Value::Int(*cert_id), Value::from(at)]);
        },
        |r| r.int(0),
    )?
    .into_iter()
    .collect();
    if let Some((job_id, _)) = moves.iter().find(|(_, m)| !moved.contains(&m.0)) {
        return Err(StoreError::Corrupt(format!(
            "slot of job {job_id} changed under its lock"
        )));
    }
    audit::insert(tx, &audits)?;
    audit::insert_events(tx, &events)?;
    Ok(outcomes)
}

/// Decides one job on its slot's state (pure: the writes are returned).
fn decide(
    job: &Claimed,
    opts: &ExecOptions<'_>,
    ctx: &OpCtx,
    states: &HashMap<i64, slot::SlotState>,
    certs_cache: &HashMap<i64, StoredCert>,
) -> Result<Decision, StoreError> {
    let now = ctx.now;
    if now >= job.lease_expires_at {
        return Ok(Decision {
            outcome: RollOutcome::LeaseLost,
            finish: None,
            promote: None,
            audit: Vec::new(),
            events: Vec::new(),
        });
    }
    let lateness = now - job.due_at;
    let state = states
        .get(&job.slot_id)
        .ok_or_else(|| StoreError::Corrupt(format!("job {} points at no slot", job.id)))?;
    let late = lateness > opts.late_after;
    let failure = if job.attempts > opts.max_attempts {
        format!("gave up after {} attempts", job.attempts - 1)
    } else {
        match slot::roll(state, &job.thumbprint) {
            plan @ (RollPlan::PendingGone | RollPlan::PendingReplaced(_)) => plan
                .refusal()
                .expect("a plan that is not a promotion is refused"),
            RollPlan::Promote(t) => {
                let cert = certs_cache.get(&job.cert_id).ok_or_else(|| {
                    StoreError::Corrupt(format!("no certificate row {}", job.cert_id))
                })?;
                match (opts.check)(&job.slot, cert, now) {
                    Err(reason) => reason,
                    Ok(()) => return Ok(promotion(job, ctx, t, lateness, late)),
                }
            }
        }
    };
    let reason = failure;
    let mut events = vec![audit::EventRow::new(
        ctx,
        "roll.failed",
        Severity::Critical,
        Some(&job.slot),
        &format!(
            "roll of {} to {} failed: {reason}; the slot is unchanged",
            job.slot, job.thumbprint
        ),
        json!({"job_id": job.id, "thumbprint": job.thumbprint, "reason": reason,
               "due_at": ts(job.due_at), "lateness_us": us(lateness), "current": state.current}),
    )];
    if late {
        events.push(late_event(
            ctx,
            job,
            lateness,
            &format!("job {}: {reason}", job.id),
        ));
    }
    Ok(Decision {
        finish: Some(("failed", ts(now), Some(reason.clone()), us(lateness))),
        promote: None,
        audit: vec![audit::AuditRow::job(
            ctx,
            "roll-failed",
            &job.slot,
            &job.thumbprint,
            job.id,
            &reason,
        )],
        events,
        outcome: RollOutcome::Failed { reason, lateness },
    })
}

fn promotion(
    job: &Claimed,
    ctx: &OpCtx,
    t: Transition,
    lateness: Duration,
    late: bool,
) -> Decision {
    let mut events = Vec::new();
    if let Some((message, data)) = &job.forced {
        events.push(audit::EventRow::new(
            ctx,
            "roll.forced",
            Severity::Critical,
            Some(&job.slot),
            message,
            data.clone(),
        ));
    }
    let how = describe_lateness(lateness);
    events.push(audit::EventRow::new(
        ctx,
        "roll.succeeded",
        Severity::Info,
        Some(&job.slot),
        &format!("{} rolled to {} ({how})", job.slot, job.thumbprint),
        json!({"job_id": job.id, "thumbprint": job.thumbprint, "due_at": ts(job.due_at),
               "lateness_us": us(lateness), "transition": slots::transition_json(&t)}),
    ));
    if late {
        events.push(late_event(ctx, job, lateness, &format!("job {}", job.id)));
    }
    Decision {
        finish: Some(("succeeded", ts(ctx.now), None, us(lateness))),
        promote: Some((job.slot_id, job.cert_id, ts(ctx.now))),
        audit: vec![audit::AuditRow::slot_change(
            ctx,
            "roll",
            &job.slot,
            Some(&job.thumbprint),
            &t,
            &format!("job {}, {how}", job.id),
        )],
        events,
        outcome: RollOutcome::Succeeded {
            transition: t,
            lateness,
            late,
        },
    }
}

fn late_event(ctx: &OpCtx, job: &Claimed, lateness: Duration, detail: &str) -> audit::EventRow {
    audit::EventRow::new(
        ctx,
        "roll.late",
        Severity::Warning,
        Some(&job.slot),
        &format!(
            "roll of {} to {} ran {} its instant {} ({detail})",
            job.slot,
            job.thumbprint,
            describe_lateness(lateness).replace(" late", " after"),
            job.due_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        json!({"job_id": job.id, "thumbprint": job.thumbprint, "due_at": ts(job.due_at), "lateness_us": us(lateness)}),
    )
}

/// `Store::schedule_with` inside the caller's transaction (a renewal
/// schedules its certificate in the transaction that records it).
#[allow(clippy::too_many_arguments)]
pub(super) fn schedule_tx(
    tx: &impl Exec,
    import: Option<(&NewCert<'_>, Option<&certs::SealedKey>)>,
    thumbprint: &str,
    slots: &[SlotKey],
    at: DateTime<Utc>,
    replace: bool,
    require_staged: bool,
    ctx: &OpCtx,
) -> Result<ScheduleReport, StoreError> {
    let import_outcome = match import {
        Some((new, sealed)) => Some(certs::upsert(tx, new, sealed, ctx)?.1),
        None => None,
    };
    let cert_id = certs::cert_id(tx, thumbprint)?
        .ok_or_else(|| super::LookupError::NotFound(thumbprint.to_string()))?;
    let mut changes = Vec::new();
    let mut job_ids = Vec::new();
    for slot in slots {
        ensure_slot(tx, slot, ctx.now)?;
        let (slot_id, state) = load_state(tx, slot)?.expect("slot ensured above");
        let plan = slot::schedule(&state, thumbprint, at, replace);
        match &plan {
            SchedulePlan::Conflict(p) => {
                return Err(StoreError::Refused(format!(
                    "{slot} already has pending certificate {} effective {}; --force replaces it",
                    p.thumbprint,
                    p.effective_at
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                )));
            }
            SchedulePlan::Change(t) => {
                if t.before.pending.is_some() {
                    let running = tx.row(
                        "SELECT id FROM jobs WHERE slot_id = ?1 AND state = 'running'",
                        vals![slot_id],
                        |r| r.int(0),
                    )?;
                    if let Some(id) = running {
                        return Err(StoreError::Refused(format!(
                            "{slot}: roll job {id} is running right now; try again in a moment"
                        )));
                    }
                    cancel_live_jobs(tx, slot, slot_id, ctx, "replaced by a new scheduled roll")?;
                }
                write_state(tx, slot_id, &t.after, ctx.now)?;
                let job_id = tx
                        .row(
                            "INSERT INTO jobs (slot_id, cert_id, due_at, run_after, state, created_at, created_by, require_staged)
                             VALUES (?1, ?2, ?3, ?3, 'scheduled', ?4, ?5, ?6)
                             RETURNING id",
                            vals![slot_id, cert_id, &ts(at), &ts(ctx.now), &ctx.actor, require_staged],
                            |r| r.int(0),
                        )?
                        .ok_or_else(|| StoreError::Corrupt("INSERT returned no job id".into()))?;
                job_ids.push(job_id);
                let when = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
                audit::record_slot_change(
                    tx,
                    ctx,
                    "schedule",
                    slot,
                    Some(thumbprint),
                    t,
                    &format!("job {job_id}, effective {when}"),
                )?;
                audit::enqueue(
                    tx,
                    ctx,
                    "roll.scheduled",
                    Severity::Info,
                    Some(slot),
                    &format!("{slot} rolls to {thumbprint} at {when}"),
                    json!({"job_id": job_id, "thumbprint": thumbprint, "effective_at": when,
                               "current": t.before.current}),
                )?;
            }
            SchedulePlan::AlreadyCurrent | SchedulePlan::AlreadyPending => {}
        }
        changes.push(SlotChange {
            slot: slot.clone(),
            plan,
        });
    }
    Ok(ScheduleReport {
        import: import_outcome,
        changes,
        job_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_reads_naturally() {
        assert_eq!(
            describe_lateness(Duration::microseconds(420)),
            "0.4 ms late"
        );
        assert_eq!(
            describe_lateness(Duration::milliseconds(3200)),
            "3.2 s late"
        );
        assert_eq!(describe_lateness(Duration::minutes(-5)), "5 min early");
        assert_eq!(describe_lateness(Duration::hours(30)), "30.0 h late");
    }
}
