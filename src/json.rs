//! The JSON objects of the command-line contract (`../shared/design.md`):
//! the same shapes on the command line's `--json` and in the HTTP API.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cert::CertInfo;
use crate::cert::policy::{Finding, Severity};
use crate::cert::slot::{AssignPlan, RemovePlan, SchedulePlan, Transition};
use crate::store::{CertRequest, Job, SlotChange, SlotView, StoredCert};

/// RFC 3339 UTC, as every time is printed: whole seconds, with the
/// fraction only when there is one (a relative `+2s` instant keeps its
/// milliseconds, so it can be given back exactly).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The certificate object of the contract.
pub fn cert_json(c: &StoredCert) -> Value {
    let mut v = info_json(&c.info);
    let o = v.as_object_mut().expect("an object");
    o.insert("has_private_key".into(), json!(c.has_private_key));
    o.insert("friendly_name".into(), json!(c.friendly_name));
    o.insert("source_file".into(), json!(c.source_file));
    o.insert("imported_at".into(), json!(time(c.imported_at)));
    o.insert(
        "chain".into(),
        json!(
            c.chain
                .iter()
                .map(|x| json!({"thumbprint": x.thumbprint, "subject": x.subject}))
                .collect::<Vec<_>>()
        ),
    );
    v
}

/// The facts of a parsed certificate (not yet stored).
pub fn info_json(c: &CertInfo) -> Value {
    json!({
        "thumbprint": c.thumbprint,
        "sha256": c.sha256,
        "subject": c.subject,
        "issuer": c.issuer,
        "sans": c.sans,
        "serial": c.serial,
        "not_before": time(c.not_before),
        "not_after": time(c.not_after),
        "key_algorithm": c.key_algorithm.to_string(),
        "key_bits": c.key_bits,
        "signature_algorithm": c.signature_algorithm,
    })
}

/// The slot object of the contract.
pub fn slot_json(s: &SlotView) -> Value {
    json!({
        "scope": s.key.scope.to_string(),
        "type": s.key.usage_type.to_string(),
        "current": s.current.as_ref().map(cert_json),
        "previous": s.previous.as_ref().map(cert_json),
        "pending": s.pending.as_ref().map(|(c, at)| {
            let mut v = cert_json(c);
            v["effective_at"] = json!(time(*at));
            v
        }),
        "updated_at": time(s.updated_at),
    })
}

fn transition_json(t: &Transition) -> Value {
    let roles = |s: &crate::cert::slot::SlotState| {
        json!({
            "current": s.current,
            "previous": s.previous,
            "pending": s.pending.as_ref().map(|p| &p.thumbprint),
        })
    };
    json!({"before": roles(&t.before), "after": roles(&t.after), "dropped": t.dropped()})
}

pub fn assign_change_json(c: &SlotChange<AssignPlan>) -> Value {
    let mut v = json!({"scope": c.slot.scope.to_string(), "type": c.slot.usage_type.to_string()});
    match &c.plan {
        AssignPlan::AlreadyCurrent => v["outcome"] = json!("already-current"),
        AssignPlan::Change(t) => {
            v["outcome"] = json!("assigned");
            merge(&mut v, transition_json(t));
        }
    }
    v
}

pub fn remove_change_json(c: &SlotChange<RemovePlan>) -> Value {
    let mut v = json!({"scope": c.slot.scope.to_string(), "type": c.slot.usage_type.to_string()});
    match &c.plan {
        RemovePlan::Nothing => v["outcome"] = json!("nothing-to-remove"),
        RemovePlan::Change(t) => {
            v["outcome"] = json!("removed");
            merge(&mut v, transition_json(t));
        }
    }
    v
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

pub fn schedule_change_json(c: &SlotChange<SchedulePlan>, job_id: Option<i64>) -> Value {
    let mut v = json!({"scope": c.slot.scope.to_string(), "type": c.slot.usage_type.to_string()});
    match &c.plan {
        SchedulePlan::AlreadyCurrent => v["outcome"] = json!("already-current"),
        SchedulePlan::AlreadyPending => v["outcome"] = json!("already-pending"),
        SchedulePlan::Conflict(p) => {
            v["outcome"] = json!("conflict");
            v["pending"] =
                json!({"thumbprint": p.thumbprint, "effective_at": time(p.effective_at)});
        }
        SchedulePlan::Change(t) => {
            v["outcome"] = json!("scheduled");
            v["job_id"] = json!(job_id);
            merge(&mut v, transition_json(t));
        }
    }
    v
}

/// The job object of the contract.
pub fn job_json(j: &Job) -> Value {
    json!({
        "id": j.id,
        "scope": j.slot.scope.to_string(),
        "type": j.slot.usage_type.to_string(),
        "thumbprint": j.thumbprint,
        "due_at": time(j.due_at),
        "state": j.state.as_str(),
        "attempts": j.attempts,
        "started_at": j.started_at.map(time),
        "finished_at": j.finished_at.map(time),
        "last_error": j.last_error,
        "run_after": time(j.run_after),
        "lateness_ms": j.lateness_us.map(|us| us as f64 / 1000.0),
        "lease_owner": j.lease_owner,
        "lease_expires_at": j.lease_expires_at.map(time),
        "created_at": time(j.created_at),
        "created_by": j.created_by,
        "finished_by": j.finished_by,
    })
}

/// The request object of the contract.
pub fn request_json(r: &CertRequest) -> Value {
    let mut v = serde_json::to_value(r).expect("JSON");
    v["created_at"] = json!(time(r.created_at));
    v["closed_at"] = json!(r.closed_at.map(time));
    v
}

/// Each scheduling change with the id of the job it made (a change makes
/// one; nothing else does, nor anything under `what_if`).
pub fn with_job_ids<'a>(
    changes: &'a [SlotChange<SchedulePlan>],
    job_ids: &[i64],
    what_if: bool,
) -> Vec<(&'a SlotChange<SchedulePlan>, Option<i64>)> {
    let mut jobs = job_ids.iter();
    changes
        .iter()
        .map(|c| {
            let id = match (&c.plan, what_if) {
                (SchedulePlan::Change(_), false) => jobs.next().copied(),
                _ => None,
            };
            (c, id)
        })
        .collect()
}

/// The outcome of scheduling a roll: `set --roll`, `import --roll`, the
/// API's schedule.
pub fn schedule_json(
    changes: &[SlotChange<SchedulePlan>],
    job_ids: &[i64],
    at: DateTime<Utc>,
    what_if: bool,
    cert: Option<Value>,
) -> Value {
    let mut v = json!({
        "what_if": what_if,
        "effective_at": time(at),
        "changes": with_job_ids(changes, job_ids, what_if)
            .iter()
            .map(|(c, id)| schedule_change_json(c, *id))
            .collect::<Vec<_>>(),
    });
    if let Some(c) = cert {
        v["certificate"] = c;
    }
    v
}

/// The outcome of assigning now: `set`, the API's assign.
pub fn assign_json(changes: &[SlotChange<AssignPlan>], what_if: bool, cert: &StoredCert) -> Value {
    json!({
        "what_if": what_if,
        "certificate": cert_json(cert),
        "changes": changes.iter().map(assign_change_json).collect::<Vec<_>>(),
    })
}

/// A policy finding: its severity, rule and the one-line message.
pub fn finding_json(f: &Finding) -> Value {
    json!({
        "severity": match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        "rule": f.rule,
        "message": f.to_string(),
    })
}
