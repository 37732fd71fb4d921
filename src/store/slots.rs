//! Slots: loading their state, applying the domain's transitions (assign,
//! remove) with audit and outbox rows, and the queries behind `get`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::db::{Exec, Value, vals};
use serde_json::json;

use super::audit::{self, Severity};
use super::certs::{self, ImportOutcome, NewCert, StoredCert};
use super::{OpCtx, SlotChange, Store, StoreError, parse_ts, ts};
use crate::cert::slot::{self, AssignPlan, Pending, RemovePlan, SlotState, Transition};
use crate::cert::{Role, Scope, SlotKey, UsageType};

/// A slot with its certificates, for display.
#[derive(Clone, Debug)]
pub struct SlotView {
    pub key: SlotKey,
    pub current: Option<StoredCert>,
    pub previous: Option<StoredCert>,
    pub pending: Option<(StoredCert, DateTime<Utc>)>,
    pub updated_at: DateTime<Utc>,
    /// Since when the previous certificate has been previous.
    pub previous_since: Option<DateTime<Utc>>,
}

/// What `assign` did (or, from `plan_assign`, would do).
#[derive(Clone, Debug)]
pub struct AssignReport {
    pub import: Option<ImportOutcome>,
    pub changes: Vec<SlotChange<AssignPlan>>,
}

// Correlated subqueries rather than LEFT JOINs: with the joins SQLite's
// plan depends on the bound values (STAT4), so the statement expires each
// time rusqlite's cache clears its bindings and is prepared again on every
// use (5x slower; see the store test `cached_statements_are_not_re_prepared`).
const STATE_SQL: &str = "SELECT s.id,
            (SELECT thumbprint FROM certificates WHERE id = s.current_cert),
            (SELECT thumbprint FROM certificates WHERE id = s.previous_cert),
            (SELECT thumbprint FROM certificates WHERE id = s.pending_cert),
            s.effective_at
     FROM slots s
     WHERE ";

fn state_from_row(r: &super::db::Row<'_>) -> Result<(i64, SlotState), StoreError> {
    let (id, current, previous, pending, effective_at) = (
        r.int(0)?,
        r.opt_text(1)?,
        r.opt_text(2)?,
        r.opt_text(3)?,
        r.opt_text(4)?,
    );
    let pending = match (pending, effective_at) {
        (Some(thumbprint), Some(at)) => Some(Pending {
            thumbprint,
            effective_at: parse_ts(&at)?,
        }),
        _ => None,
    };
    Ok((
        id,
        SlotState {
            current,
            previous,
            pending,
        },
    ))
}

fn query_state(
    conn: &impl Exec,
    cond: &str,
    args: &[Value<'_>],
) -> Result<Option<(i64, SlotState)>, StoreError> {
    // Inside a PostgreSQL transaction the slot row stays locked until it
    // commits: the change about to be written is decided on what was read.
    let lock = conn.for_update(Some("s"));
    conn.row(&format!("{STATE_SQL}{cond}{lock}"), args, state_from_row)
}

/// A slot that holds at least one certificate (the others are shown
/// nowhere).
const HOLDS_ANY: &str =
    "(current_cert IS NOT NULL OR previous_cert IS NOT NULL OR pending_cert IS NOT NULL)";

impl Store {
    /// The slot's current, previous and pending thumbprints, if it exists.
    pub fn slot_state(&self, slot: &SlotKey) -> Result<Option<SlotState>, StoreError> {
        Ok(load_state(&self.conn, slot)?.map(|(_, s)| s))
    }
}

pub(super) fn load_state(
    conn: &impl Exec,
    slot: &SlotKey,
) -> Result<Option<(i64, SlotState)>, StoreError> {
    query_state(
        conn,
        "s.scope_key = ?1 AND s.usage_type = ?2",
        vals![&slot.scope.key(), slot.usage_type.as_str()],
    )
}

/// The states of the slots with these ids (locked for update inside a
/// PostgreSQL transaction, in the order of their ids), many to a statement.
pub(super) fn load_states_by_ids(
    conn: &impl Exec,
    ids: &[i64],
) -> Result<HashMap<i64, SlotState>, StoreError> {
    let lock = conn.for_update(Some("s"));
    let rows = super::db::for_rows(
        conn,
        ids,
        &[],
        &["CAST({} AS BIGINT)"],
        |list| format!("{STATE_SQL}s.id IN (VALUES {list}) ORDER BY s.id{lock}"),
        |id, p| p.push(Value::Int(*id)),
        state_from_row,
    )?;
    Ok(rows.into_iter().collect())
}

fn existing_state(conn: &impl Exec, slot: &SlotKey) -> Result<(i64, SlotState), StoreError> {
    match load_state(conn, slot)? {
        Some((id, state)) if !state.is_empty() => Ok((id, state)),
        _ => Err(StoreError::NoSuchSlot(slot.to_string())),
    }
}

pub(super) fn ensure_slot(
    tx: &impl Exec,
    slot: &SlotKey,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO slots (scope, scope_key, usage_type, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (scope_key, usage_type) DO NOTHING",
        vals![
            &slot.scope.to_string(),
            &slot.scope.key(),
            slot.usage_type.as_str(),
            &ts(now)
        ],
    )?;
    Ok(())
}

fn id_of(tx: &impl Exec, thumbprint: Option<&str>) -> Result<Option<i64>, StoreError> {
    match thumbprint {
        None => Ok(None),
        Some(t) => certs::cert_id(tx, t)?
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("certificate {t} vanished"))),
    }
}

pub(super) fn write_state(
    tx: &impl Exec,
    slot_id: i64,
    state: &SlotState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The right-hand sides read the old row: previous_since moves only when
    // the previous certificate changes.
    let effective = state.pending.as_ref().map(|p| ts(p.effective_at));
    tx.exec(
        "UPDATE slots SET current_cert = ?1, previous_cert = ?2, pending_cert = ?3,
                          effective_at = ?4, updated_at = ?5,
                          previous_since = CASE WHEN previous_cert IS NOT DISTINCT FROM ?2 THEN previous_since
                                                WHEN ?2 IS NULL THEN NULL ELSE ?5 END
         WHERE id = ?6",
        vals![
            id_of(tx, state.current.as_deref())?,
            id_of(tx, state.previous.as_deref())?,
            id_of(tx, state.pending.as_ref().map(|p| p.thumbprint.as_str()))?,
            effective.as_ref(),
            &ts(now),
            slot_id,
        ],
    )?;
    Ok(())
}

/// Cancels the live roll job of a slot whose pending certificate went
/// away, with its audit row and `roll.cancelled` event: scheduled, or
/// claimed by a process that has not run it yet (its lease is taken away;
/// the holder's compare-and-set then changes nothing, so the roll neither
/// runs nor fails at its instant).
pub(super) fn cancel_live_jobs(
    tx: &impl Exec,
    slot: &SlotKey,
    slot_id: i64,
    ctx: &OpCtx,
    why: &str,
) -> Result<Vec<i64>, StoreError> {
    let ids = tx.rows(
        "UPDATE jobs SET state = 'cancelled', finished_at = ?1, finished_by = ?2, last_error = ?3,
                lease_owner = NULL, lease_expires_at = NULL
         WHERE slot_id = ?4 AND state IN ('scheduled', 'running')
         RETURNING id, (SELECT thumbprint FROM certificates WHERE id = cert_id)",
        vals![&ts(ctx.now), &ctx.actor, why, slot_id],
        |r| Ok((r.int(0)?, r.text(1)?)),
    )?;
    for (id, thumbprint) in &ids {
        audit::record_job(tx, ctx, "cancel", slot, thumbprint, *id, why)?;
        audit::enqueue(
            tx,
            ctx,
            "roll.cancelled",
            Severity::Info,
            Some(slot),
            &format!("roll of {slot} to {thumbprint} cancelled: {why}"),
            json!({"job_id": id, "thumbprint": thumbprint, "reason": why}),
        )?;
    }
    Ok(ids.into_iter().map(|(id, _)| id).collect())
}

pub(super) fn transition_json(t: &Transition) -> serde_json::Value {
    json!({
        "before": audit::Roles::from(&t.before),
        "after": audit::Roles::from(&t.after),
        "dropped": t.dropped(),
    })
}

impl Store {
    /// Seals the key of a certificate being imported, before the
    /// transaction (sealing may create the master key), and only when the
    /// store does not already hold that key.
    pub(super) fn seal_for_import(
        &mut self,
        import: Option<&NewCert<'_>>,
        thumbprint: &str,
    ) -> Result<Option<certs::SealedKey>, StoreError> {
        match import.and_then(|n| n.key) {
            Some(key)
                if !self
                    .lookup_exact(thumbprint)?
                    .is_some_and(|c| c.has_private_key) =>
            {
                Ok(Some(self.seal_key(key, thumbprint)?))
            }
            _ => Ok(None),
        }
    }

    /// What assigning `thumbprint` now to each slot would do (reads only).
    pub fn plan_assign(
        &self,
        thumbprint: &str,
        slots: &[SlotKey],
    ) -> Result<Vec<SlotChange<AssignPlan>>, StoreError> {
        slots
            .iter()
            .map(|slot| {
                let state = load_state(&self.conn, slot)?
                    .map(|(_, s)| s)
                    .unwrap_or_default();
                Ok(SlotChange {
                    slot: slot.clone(),
                    plan: slot::assign_now(&state, thumbprint),
                })
            })
            .collect()
    }

    /// Imports `import` (if given) and makes `thumbprint` current in every
    /// slot of `slots` (rule 1), all in one transaction with the audit and
    /// outbox rows: all or nothing.
    pub fn assign(
        &mut self,
        import: Option<&NewCert<'_>>,
        thumbprint: &str,
        slots: &[SlotKey],
        ctx: &OpCtx,
    ) -> Result<AssignReport, StoreError> {
        // Seal before the transaction (it may create the master key), and
        // only when the store does not already hold this key.
        let sealed = match import.and_then(|n| n.key) {
            Some(key)
                if !self
                    .lookup_exact(thumbprint)?
                    .is_some_and(|c| c.has_private_key) =>
            {
                Some(self.seal_key(key, thumbprint)?)
            }
            _ => None,
        };
        let tx = self.conn.begin()?;
        let import_outcome = match import {
            Some(new) => Some(certs::upsert(&tx, new, sealed.as_ref(), ctx)?.1),
            None => None,
        };
        if certs::cert_id(&tx, thumbprint)?.is_none() {
            return Err(super::LookupError::NotFound(thumbprint.to_string()).into());
        }
        let mut changes = Vec::new();
        for slot in slots {
            ensure_slot(&tx, slot, ctx.now)?;
            let (slot_id, state) = load_state(&tx, slot)?.expect("slot ensured above");
            let plan = slot::assign_now(&state, thumbprint);
            if let AssignPlan::Change(t) = &plan {
                write_state(&tx, slot_id, &t.after, ctx.now)?;
                if t.cancels_pending() {
                    cancel_live_jobs(
                        &tx,
                        slot,
                        slot_id,
                        ctx,
                        "superseded by an immediate assignment",
                    )?;
                }
                let detail = match t.before.current.as_deref() {
                    Some(old) => format!("replaces {old}"),
                    None => String::new(),
                };
                audit::record_slot_change(&tx, ctx, "assign", slot, Some(thumbprint), t, &detail)?;
                audit::enqueue(
                    &tx,
                    ctx,
                    "certificate.assigned",
                    Severity::Info,
                    Some(slot),
                    &format!("{slot} now uses {thumbprint}"),
                    transition_json(t),
                )?;
            }
            changes.push(SlotChange {
                slot: slot.clone(),
                plan,
            });
        }
        tx.commit()?;
        Ok(AssignReport {
            import: import_outcome,
            changes,
        })
    }

    /// What removing `role` from each slot would do. A slot that holds
    /// nothing at all is an error (a mistyped scope, most likely).
    pub fn plan_remove(
        &self,
        slots: &[SlotKey],
        role: Role,
    ) -> Result<Vec<SlotChange<RemovePlan>>, StoreError> {
        slots
            .iter()
            .map(|slot| {
                let (_, state) = existing_state(&self.conn, slot)?;
                Ok(SlotChange {
                    slot: slot.clone(),
                    plan: slot::remove(&state, role),
                })
            })
            .collect()
    }

    /// Clears `role` in every slot (rule 8), in one transaction: all or
    /// nothing.
    pub fn remove(
        &mut self,
        slots: &[SlotKey],
        role: Role,
        ctx: &OpCtx,
    ) -> Result<Vec<SlotChange<RemovePlan>>, StoreError> {
        let tx = self.conn.begin()?;
        let mut out = Vec::new();
        for slot in slots {
            let (slot_id, state) = existing_state(&tx, slot)?;
            let plan = slot::remove(&state, role);
            if let RemovePlan::Change(t) = &plan {
                write_state(&tx, slot_id, &t.after, ctx.now)?;
                if t.cancels_pending() {
                    cancel_live_jobs(
                        &tx,
                        slot,
                        slot_id,
                        ctx,
                        &format!("pending certificate removed by {}", ctx.actor),
                    )?;
                }
                let removed = state.get(role).expect("the plan found it");
                let action = format!("remove-{role}");
                audit::record_slot_change(&tx, ctx, &action, slot, Some(removed), t, "")?;
                let severity = if role == Role::Current {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                audit::enqueue(
                    &tx,
                    ctx,
                    "certificate.removed",
                    severity,
                    Some(slot),
                    &format!("{role} certificate {removed} removed from {slot}"),
                    transition_json(t),
                )?;
            }
            out.push(SlotChange {
                slot: slot.clone(),
                plan,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Slots holding at least one certificate, by type then scope; filtered
    /// by types (any of) and scope when given.
    pub fn slots(
        &self,
        types: &[UsageType],
        scope: Option<&Scope>,
    ) -> Result<Vec<SlotView>, StoreError> {
        self.slot_views(types, scope, None)
    }

    /// One page of [`Store::slots`]: at most `limit` slots after the first
    /// `offset`, and how many there are in all.
    pub fn slots_page(
        &self,
        types: &[UsageType],
        scope: Option<&Scope>,
        limit: usize,
        offset: usize,
    ) -> Result<(i64, Vec<SlotView>), StoreError> {
        let (cond, args) = super::db::slot_filter("", types, scope, 1);
        let params: Vec<Value<'_>> = args.iter().map(Value::from).collect();
        let total = self
            .conn
            .row(
                &format!("SELECT count(*) FROM slots WHERE {HOLDS_ANY}{cond}"),
                &params,
                |r| r.int(0),
            )?
            .unwrap_or(0);
        Ok((total, self.slot_views(types, scope, Some((limit, offset)))?))
    }

    fn slot_views(
        &self,
        types: &[UsageType],
        scope: Option<&Scope>,
        page: Option<(usize, usize)>,
    ) -> Result<Vec<SlotView>, StoreError> {
        let mut sql = format!(
            "SELECT scope, usage_type, current_cert, previous_cert, pending_cert, effective_at, updated_at,
                    previous_since
             FROM slots
             WHERE {HOLDS_ANY}"
        );
        let (cond, args) = super::db::slot_filter("", types, scope, 1);
        sql.push_str(&cond);
        sql.push_str(" ORDER BY usage_type, scope_key");
        if let Some((limit, offset)) = page {
            sql.push_str(&format!(" LIMIT {limit} OFFSET {offset}"));
        }
        let params: Vec<Value<'_>> = args.iter().map(Value::from).collect();
        let rows = self.conn.rows(&sql, &params, |r| {
            Ok((
                r.text(0)?,
                r.text(1)?,
                r.opt_int(2)?,
                r.opt_int(3)?,
                r.opt_int(4)?,
                r.opt_text(5)?,
                r.text(6)?,
                r.opt_text(7)?,
            ))
        })?;
        let mut cache: HashMap<i64, StoredCert> = HashMap::new();
        let mut cert = |id: Option<i64>| -> Result<Option<StoredCert>, StoreError> {
            let Some(id) = id else { return Ok(None) };
            if let Some(c) = cache.get(&id) {
                return Ok(Some(c.clone()));
            }
            let c = certs::load_cert_by_id(&self.conn, id)?;
            cache.insert(id, c.clone());
            Ok(Some(c))
        };
        let mut out = Vec::new();
        for (scope, usage_type, cur, prev, pend, eff, updated, since) in rows {
            let pending = match (cert(pend)?, eff) {
                (Some(c), Some(at)) => Some((c, parse_ts(&at)?)),
                _ => None,
            };
            out.push(SlotView {
                key: SlotKey::new(
                    Scope::parse(&scope).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    UsageType::from_canonical(usage_type),
                ),
                current: cert(cur)?,
                previous: cert(prev)?,
                pending,
                updated_at: parse_ts(&updated)?,
                previous_since: since.as_deref().map(parse_ts).transpose()?,
            });
        }
        Ok(out)
    }

    /// The slots and roles a certificate holds.
    pub fn assignments(&self, cert_id: i64) -> Result<Vec<(SlotKey, Role)>, StoreError> {
        let rows = self.conn.rows(
            "SELECT scope, usage_type, CASE WHEN current_cert = ?1 THEN 1 ELSE 0 END,
                    CASE WHEN previous_cert = ?1 THEN 1 ELSE 0 END
             FROM slots
             WHERE current_cert = ?1 OR previous_cert = ?1 OR pending_cert = ?1
             ORDER BY usage_type, scope_key",
            vals![cert_id],
            |r| Ok((r.text(0)?, r.text(1)?, r.bool(2)?, r.bool(3)?)),
        )?;
        let mut out = Vec::new();
        for (scope, t, is_cur, is_prev) in rows {
            let key = SlotKey::new(
                Scope::parse(&scope).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                UsageType::from_canonical(t),
            );
            let role = if is_cur {
                Role::Current
            } else if is_prev {
                Role::Previous
            } else {
                Role::Pending
            };
            out.push((key, role));
        }
        Ok(out)
    }
}

/// The change a rollback undoes: the last audited change that made
/// `current` the slot's current certificate (its action and instant), and
/// when it was a roll, the roll's job.
fn change_that_made(
    conn: &impl Exec,
    slot: &SlotKey,
    slot_id: i64,
    current: Option<&str>,
) -> Result<Option<Undone>, StoreError> {
    let Some(current) = current else {
        return Ok(None);
    };
    let change = conn.row(
        "SELECT action, at FROM audit_log
         WHERE usage_type = ?1 AND scope_key = ?2 AND new_current = ?3
           AND old_current IS DISTINCT FROM new_current
         ORDER BY id DESC LIMIT 1",
        vals![slot.usage_type.as_str(), &slot.scope.key(), current],
        |r| Ok((r.text(0)?, parse_ts(&r.text(1)?)?)),
    )?;
    let Some((action, at)) = change else {
        return Ok(None);
    };
    let job = if action == "roll" {
        let cert_id = id_of(conn, Some(current))?;
        conn.row(
            "SELECT id FROM jobs
             WHERE slot_id = ?1 AND state = 'succeeded' AND cert_id = ?2
             ORDER BY id DESC LIMIT 1",
            vals![slot_id, cert_id],
            |r| r.int(0),
        )?
    } else {
        None
    };
    Ok(Some(Undone { action, at, job }))
}

/// A change a rollback undoes.
#[derive(Clone, Debug)]
pub struct Undone {
    /// The audit action: roll, assign, rollback, import...
    pub action: String,
    pub at: DateTime<Utc>,
    /// The roll's job, for a roll.
    pub job: Option<i64>,
}

/// The slot's row id and state (locked on PostgreSQL), which must still
/// hold `expect` (current, previous) as the caller checked it; else
/// refused, "`nothing`".
fn as_checked(
    tx: &impl Exec,
    slot: &SlotKey,
    expect: (&str, &str),
    nothing: &str,
) -> Result<(i64, SlotState), StoreError> {
    let (slot_id, state) =
        load_state(tx, slot)?.ok_or_else(|| StoreError::NoSuchSlot(slot.to_string()))?;
    if state.current.as_deref() != Some(expect.0) || state.previous.as_deref() != Some(expect.1) {
        return Err(StoreError::Refused(format!(
            "{slot} changed meanwhile (current {}, previous {}); {nothing}",
            state.current.as_deref().unwrap_or("none"),
            state.previous.as_deref().unwrap_or("none")
        )));
    }
    Ok((slot_id, state))
}

/// What a rollback of a slot would do, and the roll it would undo.
#[derive(Clone, Debug)]
pub struct RollbackReport {
    pub slot: SlotKey,
    pub plan: slot::RollbackPlan,
    /// The change that made the current certificate current.
    pub undoes: Option<Undone>,
}

impl RollbackReport {
    /// "rollback of roll 12 (2026-12-01T10:00:00Z)", "rollback of the
    /// assignment of 2026-...", ...
    pub fn describe(&self) -> String {
        match &self.undoes {
            Some(u) => {
                let at = u.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                match (u.action.as_str(), u.job) {
                    ("roll", Some(job)) => format!("rollback of roll {job} ({at})"),
                    ("assign" | "import", _) => format!("rollback of the assignment of {at}"),
                    (other, _) => format!("rollback of the {other} of {at}"),
                }
            }
            None => "rollback".to_string(),
        }
    }

    /// The job of the roll it undoes, if a roll.
    pub fn undone_job(&self) -> Option<i64> {
        self.undoes.as_ref().and_then(|u| u.job)
    }
}

impl Store {
    /// What rolling `slot` back now would do (reads only).
    pub fn plan_rollback(
        &self,
        slot: &SlotKey,
        remove_bad: bool,
    ) -> Result<RollbackReport, StoreError> {
        let (slot_id, state) = load_state(&self.conn, slot)?.unwrap_or_default();
        Ok(RollbackReport {
            slot: slot.clone(),
            plan: slot::rollback(&state, remove_bad),
            undoes: change_that_made(&self.conn, slot, slot_id, state.current.as_deref())?,
        })
    }

    /// Rolls `slot` back now: its previous certificate current again, the
    /// current one previous (or removed, with `remove_bad`), in one
    /// transaction with its audit row (`rollback`, naming the roll it
    /// undoes) and `certificate.rolled_back`. `expect` is the slot as the
    /// caller checked it (current, previous): a slot changed since is
    /// refused, changing nothing.
    pub fn rollback(
        &mut self,
        slot: &SlotKey,
        expect: (&str, &str),
        remove_bad: bool,
        ctx: &OpCtx,
    ) -> Result<RollbackReport, StoreError> {
        let tx = self.conn.begin()?;
        let (slot_id, state) = as_checked(&tx, slot, expect, "nothing rolled back")?;
        let plan = slot::rollback(&state, remove_bad);
        let slot::RollbackPlan::Change(t) = &plan else {
            return Err(StoreError::Refused(plan.refusal(slot).unwrap_or_default()));
        };
        let undoes = change_that_made(&tx, slot, slot_id, state.current.as_deref())?;
        let report = RollbackReport {
            slot: slot.clone(),
            plan: plan.clone(),
            undoes,
        };
        write_state(&tx, slot_id, &t.after, ctx.now)?;
        let mut detail = format!("{}: {} back from {}", report.describe(), expect.1, expect.0);
        if remove_bad {
            detail.push_str(&format!(", {} removed", expect.0));
        }
        audit::record_slot_change(&tx, ctx, "rollback", slot, Some(expect.1), t, &detail)?;
        let mut data = transition_json(t);
        data["rolled_back_job"] = json!(report.undone_job());
        data["removed"] = json!(remove_bad.then_some(expect.0));
        audit::enqueue(
            &tx,
            ctx,
            "certificate.rolled_back",
            Severity::Warning,
            Some(slot),
            &format!("{slot} rolled back to {} ({detail})", expect.1),
            data,
        )?;
        tx.commit()?;
        Ok(report)
    }
}

impl Store {
    /// Schedules a rollback of `slot` at `at`: its previous certificate
    /// pending, to become current again by an ordinary roll (which makes
    /// the current one previous), with an audit row naming the roll it
    /// undoes. `expect` as for [`Store::rollback`].
    pub fn schedule_rollback(
        &mut self,
        slot: &SlotKey,
        expect: (&str, &str),
        at: DateTime<Utc>,
        require_staged: bool,
        ctx: &OpCtx,
    ) -> Result<(RollbackReport, super::ScheduleReport), StoreError> {
        let tx = self.conn.begin()?;
        let (slot_id, state) = as_checked(&tx, slot, expect, "nothing scheduled")?;
        let plan = slot::rollback(&state, false);
        if let Some(why) = plan.refusal(slot) {
            return Err(StoreError::Refused(why));
        }
        let undoes = change_that_made(&tx, slot, slot_id, state.current.as_deref())?;
        let report = RollbackReport {
            slot: slot.clone(),
            plan,
            undoes,
        };
        let schedule = super::jobs::schedule_tx(
            &tx,
            None,
            expect.1,
            std::slice::from_ref(slot),
            at,
            false,
            require_staged,
            ctx,
        )?;
        let job = schedule.job_ids.first().copied().unwrap_or_default();
        let when = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        audit::record_job(
            &tx,
            ctx,
            "rollback",
            slot,
            expect.1,
            job,
            &format!(
                "{}: {} back from {}, effective {when}",
                report.describe(),
                expect.1,
                expect.0
            ),
        )?;
        tx.commit()?;
        Ok((report, schedule))
    }
}

impl Store {
    /// Retires `slot`'s previous certificate after its overlap (a rollover
    /// policy's `retire_previous_after_hours`): it leaves the slot, in one
    /// transaction with its audit row (`retire`) and `certificate.retired`.
    /// `expect` (current, previous) is the slot as the caller checked it; a
    /// slot changed since is refused, changing nothing.
    pub fn retire_previous(
        &mut self,
        slot: &SlotKey,
        expect: (&str, &str),
        detail: &str,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        let (slot_id, state) = as_checked(&tx, slot, expect, "nothing retired")?;
        let RemovePlan::Change(t) = slot::remove(&state, Role::Previous) else {
            return Err(StoreError::Refused(format!(
                "{slot} has no previous certificate"
            )));
        };
        write_state(&tx, slot_id, &t.after, ctx.now)?;
        audit::record_slot_change(&tx, ctx, "retire", slot, Some(expect.1), &t, detail)?;
        audit::enqueue(
            &tx,
            ctx,
            "certificate.retired",
            Severity::Info,
            Some(slot),
            &format!(
                "{slot}: previous certificate {} retired ({detail})",
                expect.1
            ),
            transition_json(&t),
        )?;
        tx.commit()?;
        Ok(())
    }
}
