//! What the renewal duty remembers of each slot (`renewals`: one row per
//! slot, about the renewal of its current certificate) and its steps: each
//! one transaction that checks the slot is still as the duty saw it and
//! writes its audit row and its event with the change.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::certs::{self, NewCert};
use super::db::{Exec, vals};
use super::jobs::{ScheduleReport, schedule_tx};
use super::requests::{NewRequest, insert_request};
use super::slots::load_state;
use super::{OpCtx, Store, StoreError, audit, parse_ts, ts};
use crate::cert::renewal::Record;
use crate::cert::{Scope, SlotKey, UsageType};

/// The slot's row id and the id of its current certificate, which must be
/// `for_thumbprint` (the slot row locked on PostgreSQL): a renewal decided
/// on a slot that rolled or changed meanwhile changes nothing.
fn guard(tx: &impl Exec, slot: &SlotKey, for_thumbprint: &str) -> Result<(i64, i64), StoreError> {
    let (slot_id, state) = load_state(tx, slot)?.ok_or_else(|| {
        StoreError::Refused(format!("{slot}: no such slot any more; nothing renewed"))
    })?;
    if state.current.as_deref() != Some(for_thumbprint) {
        return Err(StoreError::Refused(format!(
            "{slot}: its current certificate changed meanwhile (now {}); nothing renewed",
            state.current.as_deref().unwrap_or("none")
        )));
    }
    let cert_id = certs::cert_id(tx, for_thumbprint)?
        .ok_or_else(|| StoreError::Corrupt(format!("certificate {for_thumbprint} vanished")))?;
    Ok((slot_id, cert_id))
}

/// Makes the slot's row about `for_cert_id`, starting afresh when it was
/// about an earlier current certificate.
fn fresh_row(
    tx: &impl Exec,
    slot_id: i64,
    for_cert_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO renewals (slot_id, for_cert_id, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (slot_id) DO UPDATE SET
             for_cert_id = excluded.for_cert_id, attempts = 0, last_error = NULL,
             failed_at = NULL, next_attempt_at = NULL, request_id = NULL, cert_id = NULL,
             overdue_alerted = 0, updated_at = excluded.updated_at
         WHERE renewals.for_cert_id <> excluded.for_cert_id",
        vals![slot_id, for_cert_id, &ts(now)],
    )?;
    Ok(())
}

/// A renewal step's audit row: about the slot, its roles unchanged.
fn audit_row(
    tx: &impl Exec,
    ctx: &OpCtx,
    action: &str,
    slot: &SlotKey,
    thumbprint: Option<&str>,
    detail: &str,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO audit_log (at, actor, action, scope, scope_key, usage_type, thumbprint, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        vals![
            &ts(ctx.now),
            &ctx.actor,
            action,
            &slot.scope.to_string(),
            &slot.scope.key(),
            slot.usage_type.as_str(),
            thumbprint,
            detail
        ],
    )?;
    Ok(())
}

/// What a renewal that made (or was answered with) a certificate did.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub schedule: ScheduleReport,
    pub job_id: Option<i64>,
}

impl Store {
    /// Every slot's renewal record, keyed by slot.
    pub fn renewal_records(&self) -> Result<HashMap<SlotKey, Record>, StoreError> {
        let rows = self.conn.rows(
            "SELECT s.scope, s.usage_type, fc.thumbprint, r.attempts, r.last_error,
                    r.next_attempt_at, r.request_id, q.state,
                    CASE WHEN q.state = 'completed' AND q.cert_id IS NOT DISTINCT FROM r.cert_id
                         THEN NULL ELSE qc.thumbprint END,
                    mc.thumbprint, r.overdue_alerted
             FROM renewals r
             JOIN slots s ON s.id = r.slot_id
             JOIN certificates fc ON fc.id = r.for_cert_id
             LEFT JOIN requests q ON q.id = r.request_id
             LEFT JOIN certificates qc ON qc.id = q.cert_id
             LEFT JOIN certificates mc ON mc.id = r.cert_id
             ORDER BY r.slot_id",
            vals![],
            |r| {
                let scope =
                    Scope::parse(&r.text(0)?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let slot = SlotKey::new(scope, UsageType::from_canonical(r.text(1)?));
                let record = Record {
                    for_thumbprint: r.text(2)?,
                    attempts: u32::try_from(r.int(3)?).unwrap_or(u32::MAX),
                    last_error: r.opt_text(4)?,
                    next_attempt_at: r.opt_text(5)?.as_deref().map(parse_ts).transpose()?,
                    request_id: r.opt_int(6)?,
                    request_open: r.opt_text(7)?.as_deref() == Some("pending"),
                    answer: r.opt_text(8)?,
                    made: r.opt_text(9)?,
                    overdue_alerted: r.int(10)? != 0,
                };
                Ok((slot, record))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    /// Schedules the certificate a renewal of `slot`'s current certificate
    /// (`for_thumbprint`) made (`new`, imported with its key) or was
    /// answered with (`new` None: already stored), to become current at
    /// `at`; in one transaction with the renewal's record, its audit row
    /// and `renewal.generated`. Refused, changing nothing, when the slot's
    /// current certificate is no longer `for_thumbprint` or another roll is
    /// pending.
    #[allow(clippy::too_many_arguments)]
    pub fn renew_with_cert(
        &mut self,
        slot: &SlotKey,
        for_thumbprint: &str,
        new: Option<&NewCert<'_>>,
        thumbprint: &str,
        at: DateTime<Utc>,
        require_staged: bool,
        method: &str,
        ctx: &OpCtx,
    ) -> Result<Renewed, StoreError> {
        let sealed = self.seal_for_import(new, thumbprint)?;
        let tx = self.conn.begin()?;
        let (slot_id, for_cert_id) = guard(&tx, slot, for_thumbprint)?;
        let schedule = schedule_tx(
            &tx,
            new.map(|n| (n, sealed.as_ref())),
            thumbprint,
            std::slice::from_ref(slot),
            at,
            false,
            require_staged,
            ctx,
        )?;
        let cert_id = certs::cert_id(&tx, thumbprint)?
            .ok_or_else(|| StoreError::Corrupt(format!("certificate {thumbprint} vanished")))?;
        fresh_row(&tx, slot_id, for_cert_id, ctx.now)?;
        tx.exec(
            "UPDATE renewals SET cert_id = ?1, attempts = 0, last_error = NULL, failed_at = NULL,
                    next_attempt_at = NULL, updated_at = ?2
             WHERE slot_id = ?3",
            vals![cert_id, &ts(ctx.now), slot_id],
        )?;
        let when = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        audit_row(
            &tx,
            ctx,
            "renew",
            slot,
            Some(thumbprint),
            &format!("{method}: renews {for_thumbprint}; current at {when}"),
        )?;
        let job_id = schedule.job_ids.first().copied();
        audit::enqueue(
            &tx,
            ctx,
            "renewal.generated",
            audit::Severity::Info,
            Some(slot),
            &format!("{slot}: renewed by {method} with {thumbprint}, current at {when}"),
            json!({"thumbprint": thumbprint, "replaces": for_thumbprint, "method": method,
                   "effective_at": when, "job_id": job_id}),
        )?;
        crate::failpoint::crash_point("renewal.before-commit");
        tx.commit()?;
        crate::failpoint::crash_point("renewal.committed");
        Ok(Renewed { schedule, job_id })
    }

    /// Records the request a renewal made for its CA (method `request`),
    /// with `request.created` (carrying the CSR) and `renewal.requested`,
    /// in one transaction. Returns the request's id.
    pub fn renew_with_request(
        &mut self,
        slot: &SlotKey,
        for_thumbprint: &str,
        new: &NewRequest<'_>,
        ctx: &OpCtx,
    ) -> Result<i64, StoreError> {
        let (fp, sealed) = self.seal_request_key(new.key)?;
        let tx = self.conn.begin()?;
        let (slot_id, for_cert_id) = guard(&tx, slot, for_thumbprint)?;
        let open = tx.row(
            "SELECT q.id FROM renewals r JOIN requests q ON q.id = r.request_id
             WHERE r.slot_id = ?1 AND r.for_cert_id = ?2 AND q.state = 'pending'",
            vals![slot_id, for_cert_id],
            |r| r.int(0),
        )?;
        if let Some(id) = open {
            return Err(StoreError::Refused(format!(
                "{slot}: request {id} already waits for the CA; nothing made"
            )));
        }
        let id = insert_request(&tx, new, &fp, &sealed, ctx)?;
        fresh_row(&tx, slot_id, for_cert_id, ctx.now)?;
        tx.exec(
            "UPDATE renewals SET request_id = ?1, attempts = 0, last_error = NULL,
                    failed_at = NULL, next_attempt_at = NULL, updated_at = ?2
             WHERE slot_id = ?3",
            vals![id, &ts(ctx.now), slot_id],
        )?;
        audit_row(
            &tx,
            ctx,
            "renew",
            slot,
            None,
            &format!("request: renews {for_thumbprint} with request {id}"),
        )?;
        audit::enqueue(
            &tx,
            ctx,
            "renewal.requested",
            audit::Severity::Info,
            Some(slot),
            &format!(
                "{slot}: request {id} made to renew {for_thumbprint}: its answer, once imported, is scheduled"
            ),
            json!({"request_id": id, "replaces": for_thumbprint}),
        )?;
        tx.commit()?;
        Ok(id)
    }

    /// Records a failed attempt to renew `slot`'s current certificate, the
    /// next one at `next_attempt_at`, with its audit row and
    /// `renewal.failed`. Returns the attempts so far.
    pub fn renewal_failed(
        &mut self,
        slot: &SlotKey,
        for_thumbprint: &str,
        error: &str,
        next_attempt_at: impl Fn(u32) -> DateTime<Utc>,
        ctx: &OpCtx,
    ) -> Result<u32, StoreError> {
        let tx = self.conn.begin()?;
        let (slot_id, for_cert_id) = guard(&tx, slot, for_thumbprint)?;
        fresh_row(&tx, slot_id, for_cert_id, ctx.now)?;
        let attempts = tx
            .row(
                "UPDATE renewals SET attempts = attempts + 1, last_error = ?1, failed_at = ?2,
                        updated_at = ?2
                 WHERE slot_id = ?3 RETURNING attempts",
                vals![error, &ts(ctx.now), slot_id],
                |r| r.int(0),
            )?
            .ok_or_else(|| StoreError::Corrupt("renewal row vanished".into()))?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        let next = next_attempt_at(attempts);
        tx.exec(
            "UPDATE renewals SET next_attempt_at = ?1 WHERE slot_id = ?2",
            vals![&ts(next), slot_id],
        )?;
        let when = next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        audit_row(
            &tx,
            ctx,
            "renew-failed",
            slot,
            None,
            &format!("attempt {attempts}: {error}; next attempt at {when}"),
        )?;
        audit::enqueue(
            &tx,
            ctx,
            "renewal.failed",
            audit::Severity::Warning,
            Some(slot),
            &format!(
                "{slot}: renewal failed (attempt {attempts}): {error}; next attempt at {when}"
            ),
            json!({"error": error, "attempts": attempts, "next_attempt_at": when,
                   "current": for_thumbprint}),
        )?;
        tx.commit()?;
        Ok(attempts)
    }

    /// Raises `renewal.overdue` (critical) once per current certificate:
    /// its promotion instant came and nothing is pending. Returns whether
    /// it was raised now (false: already raised, or the slot changed).
    pub fn renewal_overdue(
        &mut self,
        slot: &SlotKey,
        for_thumbprint: &str,
        message: &str,
        data: serde_json::Value,
        ctx: &OpCtx,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.begin()?;
        let (slot_id, for_cert_id) = match guard(&tx, slot, for_thumbprint) {
            Ok(ids) => ids,
            Err(StoreError::Refused(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        fresh_row(&tx, slot_id, for_cert_id, ctx.now)?;
        let n = tx.exec(
            "UPDATE renewals SET overdue_alerted = 1, updated_at = ?1
             WHERE slot_id = ?2 AND overdue_alerted = 0",
            vals![&ts(ctx.now), slot_id],
        )?;
        if n == 0 {
            return Ok(false);
        }
        audit::enqueue(
            &tx,
            ctx,
            "renewal.overdue",
            audit::Severity::Critical,
            Some(slot),
            message,
            data,
        )?;
        tx.commit()?;
        Ok(true)
    }
}
