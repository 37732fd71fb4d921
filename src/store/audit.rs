//! The append-only audit trail (triggers refuse UPDATE and DELETE) and the
//! notification outbox. Both are written inside the transaction of the
//! change they describe.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::db::{Exec, Value, vals};
use super::{OpCtx, Store, StoreError, parse_ts, ts};
use crate::cert::slot::{SlotState, Transition};
use crate::cert::{Scope, SlotKey, UsageType};

/// Which thumbprints a slot held in each role, as the audit row keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Roles {
    pub current: Option<String>,
    pub previous: Option<String>,
    pub pending: Option<String>,
}

impl From<&SlotState> for Roles {
    fn from(s: &SlotState) -> Self {
        Roles {
            current: s.current.clone(),
            previous: s.previous.clone(),
            pending: s.pending.as_ref().map(|p| p.thumbprint.clone()),
        }
    }
}

/// One row of the audit trail.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    #[serde(flatten)]
    pub slot: Option<SlotKey>,
    pub thumbprint: Option<String>,
    pub before: Roles,
    pub after: Roles,
    pub detail: Option<String>,
}

pub(super) fn record_cert(
    tx: &impl Exec,
    ctx: &OpCtx,
    action: &str,
    thumbprint: &str,
    detail: &str,
) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO audit_log (at, actor, action, thumbprint, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        vals![&ts(ctx.now), &ctx.actor, action, thumbprint, detail],
    )?;
    Ok(())
}

/// An audit row about a roll job (cancel, retry): the slot's roles are not
/// changed by the row itself.
pub(super) fn record_job(
    tx: &impl Exec,
    ctx: &OpCtx,
    action: &str,
    slot: &SlotKey,
    thumbprint: &str,
    job_id: i64,
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
            &format!("job {job_id}: {detail}"),
        ],
    )?;
    Ok(())
}

pub(super) fn record_slot_change(
    tx: &impl Exec,
    ctx: &OpCtx,
    action: &str,
    slot: &SlotKey,
    thumbprint: Option<&str>,
    t: &Transition,
    detail: &str,
) -> Result<(), StoreError> {
    let (b, a) = (Roles::from(&t.before), Roles::from(&t.after));
    tx.exec(
        "INSERT INTO audit_log (at, actor, action, scope, scope_key, usage_type, thumbprint,
            old_current, old_previous, old_pending, new_current, new_previous, new_pending, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        vals![
            &ts(ctx.now),
            &ctx.actor,
            action,
            &slot.scope.to_string(),
            &slot.scope.key(),
            slot.usage_type.as_str(),
            thumbprint,
            b.current.as_ref(),
            b.previous.as_ref(),
            b.pending.as_ref(),
            a.current.as_ref(),
            a.previous.as_ref(),
            a.pending.as_ref(),
            (!detail.is_empty()).then_some(detail),
        ],
    )?;
    Ok(())
}

pub use crate::cert::types::EventSeverity as Severity;

/// Writes one event to the outbox; the notification service delivers it.
/// Returns the event id receivers use to drop duplicates.
pub(super) fn enqueue(
    tx: &impl Exec,
    ctx: &OpCtx,
    kind: &str,
    severity: Severity,
    slot: Option<&SlotKey>,
    message: &str,
    data: serde_json::Value,
) -> Result<String, StoreError> {
    let event_id = uuid::Uuid::new_v4().to_string();
    let payload = serde_json::json!({
        "event_id": event_id,
        "kind": kind,
        "severity": severity.as_str(),
        "at": ts(ctx.now),
        "actor": ctx.actor,
        "scope": slot.map(|s| s.scope.to_string()),
        "type": slot.map(|s| s.usage_type.to_string()),
        "message": message,
        "data": data,
    });
    let scope = slot.map(|s| s.scope.to_string());
    tx.exec(
        "INSERT INTO outbox (event_id, kind, severity, scope, usage_type, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        vals![
            &event_id,
            kind,
            severity.as_str(),
            scope.as_ref(),
            slot.map(|s| s.usage_type.as_str()),
            &payload.to_string(),
            &ts(ctx.now),
        ],
    )?;
    Ok(event_id)
}

/// Which audit rows to show.
#[derive(Clone, Debug, Default)]
pub struct HistoryFilter {
    pub types: Vec<UsageType>,
    pub scope: Option<Scope>,
    /// Only the newest N rows (still printed oldest first).
    pub limit: Option<usize>,
}

impl Store {
    /// The audit trail, oldest first.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at, actor, action, scope, usage_type, thumbprint, old_current, old_previous,
                    old_pending, new_current, new_previous, new_pending, detail
             FROM audit_log WHERE 1 = 1",
        );
        let (cond, args) = super::db::slot_filter("", &filter.types, filter.scope.as_ref(), 1);
        sql.push_str(&cond);
        sql.push_str(" ORDER BY id DESC");
        if let Some(n) = filter.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let params: Vec<Value<'_>> = args.iter().map(Value::from).collect();
        let rows = self.conn.rows(&sql, &params, |r| {
            Ok((
                r.int(0)?,
                r.text(1)?,
                r.text(2)?,
                r.text(3)?,
                r.opt_text(4)?,
                r.opt_text(5)?,
                r.opt_text(6)?,
                [
                    r.opt_text(7)?,
                    r.opt_text(8)?,
                    r.opt_text(9)?,
                    r.opt_text(10)?,
                    r.opt_text(11)?,
                    r.opt_text(12)?,
                ],
                r.opt_text(13)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, at, actor, action, scope, usage_type, thumbprint, roles, detail) = row;
            let [oc, op, oq, nc, np, nq]: [Option<String>; 6] = roles;
            let slot = match (scope, usage_type) {
                (Some(s), Some(t)) => Some(SlotKey::new(
                    Scope::parse(&s).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    UsageType::from_canonical(t),
                )),
                _ => None,
            };
            out.push(AuditEntry {
                id,
                at: parse_ts(&at)?,
                actor,
                action,
                slot,
                thumbprint,
                before: Roles {
                    current: oc,
                    previous: op,
                    pending: oq,
                },
                after: Roles {
                    current: nc,
                    previous: np,
                    pending: nq,
                },
                detail,
            });
        }
        out.reverse();
        Ok(out)
    }

    /// Number of outbox rows (for tests and diagnostics until the
    /// notification service reads them).
    pub fn outbox_kinds(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.conn.rows(
            "SELECT kind, payload FROM outbox ORDER BY id",
            vals![],
            |r| Ok((r.text(0)?, r.text(1)?)),
        )
    }
}
