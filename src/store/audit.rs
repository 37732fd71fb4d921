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

/// An audit row about to be written (see [`insert`]).
pub(super) struct AuditRow {
    at: String,
    actor: String,
    action: String,
    slot: Option<(String, String, String)>,
    thumbprint: Option<String>,
    before: Roles,
    after: Roles,
    detail: Option<String>,
}

impl AuditRow {
    fn new(ctx: &OpCtx, action: &str, slot: Option<&SlotKey>, thumbprint: Option<&str>) -> Self {
        AuditRow {
            at: ts(ctx.now),
            actor: ctx.actor.clone(),
            action: action.to_string(),
            slot: slot.map(|s| {
                (
                    s.scope.to_string(),
                    s.scope.key(),
                    s.usage_type.as_str().to_string(),
                )
            }),
            thumbprint: thumbprint.map(str::to_string),
            before: Roles::default(),
            after: Roles::default(),
            detail: None,
        }
    }

    /// About a roll job (cancel, retry, failure): the slot's roles are not
    /// changed by the row itself.
    pub(super) fn job(
        ctx: &OpCtx,
        action: &str,
        slot: &SlotKey,
        thumbprint: &str,
        job_id: i64,
        detail: &str,
    ) -> Self {
        AuditRow {
            detail: Some(format!("job {job_id}: {detail}")),
            ..AuditRow::new(ctx, action, Some(slot), Some(thumbprint))
        }
    }

    /// A change of a slot's roles.
    pub(super) fn slot_change(
        ctx: &OpCtx,
        action: &str,
        slot: &SlotKey,
        thumbprint: Option<&str>,
        t: &Transition,
        detail: &str,
    ) -> Self {
        AuditRow {
            before: Roles::from(&t.before),
            after: Roles::from(&t.after),
            detail: (!detail.is_empty()).then(|| detail.to_string()),
            ..AuditRow::new(ctx, action, Some(slot), thumbprint)
        }
    }
}

/// Writes audit rows, many to a statement.
pub(super) fn insert(tx: &impl Exec, rows: &[AuditRow]) -> Result<(), StoreError> {
    super::db::for_rows(
        tx,
        rows,
        &[],
        &["{}"; 14],
        |list| {
            format!(
                "INSERT INTO audit_log (at, actor, action, scope, scope_key, usage_type, thumbprint,
                    old_current, old_previous, old_pending, new_current, new_previous, new_pending, detail)
                 VALUES {list}"
            )
        },
        |r, p| {
            let slot = r.slot.as_ref();
            p.extend([
                Value::from(&r.at),
                Value::from(&r.actor),
                Value::from(&r.action),
                Value::from(slot.map(|s| &s.0)),
                Value::from(slot.map(|s| &s.1)),
                Value::from(slot.map(|s| &s.2)),
                Value::from(r.thumbprint.as_ref()),
                Value::from(r.before.current.as_ref()),
                Value::from(r.before.previous.as_ref()),
                Value::from(r.before.pending.as_ref()),
                Value::from(r.after.current.as_ref()),
                Value::from(r.after.previous.as_ref()),
                Value::from(r.after.pending.as_ref()),
                Value::from(r.detail.as_ref()),
            ]);
        },
        |_| Ok(()),
    )?;
    Ok(())
}

pub(super) fn record_cert(
    tx: &impl Exec,
    ctx: &OpCtx,
    action: &str,
    thumbprint: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let row = AuditRow {
        detail: Some(detail.to_string()),
        ..AuditRow::new(ctx, action, None, Some(thumbprint))
    };
    insert(tx, &[row])
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
    insert(
        tx,
        &[AuditRow::job(ctx, action, slot, thumbprint, job_id, detail)],
    )
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
    insert(
        tx,
        &[AuditRow::slot_change(
            ctx, action, slot, thumbprint, t, detail,
        )],
    )
}

pub use crate::cert::types::EventSeverity as Severity;

/// An event about to be written to the outbox (see [`insert_events`]).
pub(super) struct EventRow {
    pub(super) event_id: String,
    kind: String,
    severity: Severity,
    scope: Option<String>,
    usage_type: Option<String>,
    payload: String,
    created_at: String,
}

impl EventRow {
    pub(super) fn new(
        ctx: &OpCtx,
        kind: &str,
        severity: Severity,
        slot: Option<&SlotKey>,
        message: &str,
        data: serde_json::Value,
    ) -> Self {
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
        EventRow {
            event_id,
            kind: kind.to_string(),
            severity,
            scope: slot.map(|s| s.scope.to_string()),
            usage_type: slot.map(|s| s.usage_type.as_str().to_string()),
            payload: payload.to_string(),
            created_at: ts(ctx.now),
        }
    }
}

/// Writes events to the outbox, many to a statement; the notification
/// service delivers them.
pub(super) fn insert_events(tx: &impl Exec, rows: &[EventRow]) -> Result<(), StoreError> {
    super::db::for_rows(
        tx,
        rows,
        &[],
        &["{}"; 7],
        |list| {
            format!(
                "INSERT INTO outbox (event_id, kind, severity, scope, usage_type, payload, created_at)
                 VALUES {list}"
            )
        },
        |r, p| {
            p.extend([
                Value::from(&r.event_id),
                Value::from(&r.kind),
                Value::from(r.severity.as_str()),
                Value::from(r.scope.as_ref()),
                Value::from(r.usage_type.as_ref()),
                Value::from(&r.payload),
                Value::from(&r.created_at),
            ]);
        },
        |_| Ok(()),
    )?;
    Ok(())
}

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
    let row = EventRow::new(ctx, kind, severity, slot, message, data);
    insert_events(tx, std::slice::from_ref(&row))?;
    Ok(row.event_id)
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
