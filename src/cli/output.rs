//! Output formatting: the JSON objects of the command-line contract
//! (`../shared/design.md`) and the text an operator reads.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cert::renewal::Decision;
use crate::cert::slot::{AssignPlan, RemovePlan, SchedulePlan, Transition};
use crate::cert::{CertInfo, SlotKey};
use crate::ops::renew::Candidate;
use crate::store::{SlotChange, SlotView, StoredCert};

/// RFC 3339 UTC, as every time is printed: whole seconds, with the
/// fraction only when there is one (a relative `+2s` instant keeps its
/// milliseconds, so it can be given back exactly).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

static ZONE: std::sync::OnceLock<chrono_tz::Tz> = std::sync::OnceLock::new();

/// The zone text output shows times in (the configuration's), set once
/// when the command starts.
pub fn set_zone(tz: chrono_tz::Tz) {
    let _ = ZONE.set(tz);
}

fn zone() -> chrono_tz::Tz {
    ZONE.get().copied().unwrap_or(chrono_tz::Tz::UTC)
}

/// The one convention of times in text output (get, jobs, timeline,
/// history, ...): local time in the configured zone, with its abbreviation,
/// "2027-07-01 02:00:00 BST". JSON keeps RFC 3339 UTC ([`time`]).
pub fn when(t: DateTime<Utc>) -> String {
    t.with_timezone(&zone())
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// An instant the operator typed, echoed in the configured zone and in UTC:
/// "2027-07-01 02:00:00 BST (2027-07-01 01:00:00 UTC)".
pub fn when_both(t: DateTime<Utc>) -> String {
    let local = when(t);
    let utc = t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    if local == utc {
        utc
    } else {
        format!("{local} ({utc})")
    }
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

/// Prints JSON on stdout (pretty, one document).
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// `133FF843…`: the first 8 hex digits, enough to recognise a certificate.
pub fn short(t: &str) -> String {
    format!("{}…", &t[..t.len().min(8)])
}

pub fn short_opt(t: Option<&str>) -> String {
    t.map(short).unwrap_or_else(|| "none".into())
}

/// "expires 2045-06-01 (in 6763 days)" / "EXPIRED 2021-01-01 (2000 days ago)".
pub fn expiry(c: &CertInfo, now: DateTime<Utc>) -> String {
    let date = c.not_after.format("%Y-%m-%d");
    if c.not_after < now {
        format!(
            "EXPIRED {date} ({} days ago)",
            (now - c.not_after).num_days()
        )
    } else if c.not_before > now {
        format!("not valid before {}", c.not_before.format("%Y-%m-%d"))
    } else {
        format!(
            "expires {date} (in {} days)",
            (c.not_after - now).num_days()
        )
    }
}

/// "RSA 2048", "EC P-256".
pub fn key_desc(c: &CertInfo) -> String {
    match c.key_algorithm {
        crate::cert::x509::KeyAlgorithm::Rsa | crate::cert::x509::KeyAlgorithm::Dsa => {
            format!("{} {}", c.key_algorithm, c.key_bits)
        }
        _ => c.key_algorithm.to_string(),
    }
}

/// One line describing a stored certificate inside a slot listing.
pub fn cert_line(c: &StoredCert, now: DateTime<Utc>) -> String {
    format!(
        "{}  {}  {}{}  {}",
        c.info.thumbprint,
        c.info.label(),
        key_desc(&c.info),
        if c.has_private_key {
            ""
        } else {
            ", no private key"
        },
        expiry(&c.info, now)
    )
}

/// Human text for an assignment plan (`what_if` words it as a prediction).
pub fn describe_assign(
    slot: &SlotKey,
    plan: &AssignPlan,
    thumbprint: &str,
    what_if: bool,
) -> String {
    match plan {
        AssignPlan::AlreadyCurrent => format!(
            "{slot}: {} is already current; nothing changes",
            short(thumbprint)
        ),
        AssignPlan::Change(t) => {
            let verb = if what_if { "would become" } else { "is now" };
            let mut s = format!(
                "{slot}: {} {verb} current; previous: {}",
                short(thumbprint),
                short_opt(t.after.previous.as_deref())
            );
            let dropped = t.dropped();
            if !dropped.is_empty() {
                s.push_str(&format!(
                    " ({} {} the slot and stays in the store)",
                    dropped
                        .iter()
                        .map(|d| short(d))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if what_if { "would leave" } else { "left" }
                ));
            }
            if t.cancels_pending() {
                s.push_str(if what_if {
                    "; the pending roll would be cancelled"
                } else {
                    "; the pending roll was cancelled"
                });
            }
            s
        }
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

/// Human text for a scheduling plan.
pub fn describe_schedule(
    slot: &SlotKey,
    plan: &SchedulePlan,
    thumbprint: &str,
    at: DateTime<Utc>,
    job_id: Option<i64>,
    what_if: bool,
) -> String {
    match plan {
        SchedulePlan::AlreadyCurrent => format!(
            "{slot}: {} is already current; nothing scheduled",
            short(thumbprint)
        ),
        SchedulePlan::AlreadyPending => format!(
            "{slot}: {} is already pending for {}; nothing changes",
            short(thumbprint),
            when(at)
        ),
        SchedulePlan::Conflict(p) => format!(
            "{slot}: {} is already pending for {}; --force replaces it",
            short(&p.thumbprint),
            when(p.effective_at)
        ),
        SchedulePlan::Change(t) => {
            let verb = if what_if { "would become" } else { "becomes" };
            let mut s = format!(
                "{slot}: {} {verb} current at {}",
                short(thumbprint),
                when_both(at)
            );
            if let Some(id) = job_id {
                s.push_str(&format!(" (job {id})"));
            }
            match t.before.current.as_deref() {
                Some(cur) => s.push_str(&format!("; {} will then be previous", short(cur))),
                None => s.push_str("; the slot has no current certificate until then"),
            }
            if let Some(old) = &t.before.pending {
                s.push_str(&format!(
                    "; replaces the roll to {} at {}",
                    short(&old.thumbprint),
                    when(old.effective_at)
                ));
            }
            s
        }
    }
}

/// Checks a file the user asked certroll to write (`--output`, `--path` of
/// `export`) before anything is made: an existing file needs `--force`, and
/// its directory must exist (certroll does not create directories from a
/// mistyped path).
pub fn check_output_path(path: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let name = path.display();
    if path.is_dir() {
        anyhow::bail!("{name}: is a directory; give a file name");
    }
    // --force replaces a regular file, never a link, a FIFO or a device.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let ft = meta.file_type();
        if !ft.is_file() {
            let what = if ft.is_symlink() {
                "a symbolic link"
            } else {
                "not a regular file"
            };
            anyhow::bail!("{name}: is {what}; certroll replaces regular files only");
        }
        if !force {
            anyhow::bail!("{name}: the file exists; --force replaces it");
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        anyhow::bail!("{name}: no such directory {}", parent.display());
    }
    Ok(())
}

/// A slot's renewal under its rollover policy as one line of text (state,
/// then detail).
pub fn renewal_text(c: &Candidate) -> (&'static str, String) {
    let method = c.policy.method.as_str();
    match &c.plan.decision {
        Decision::NoCurrent => ("none", "no current certificate: nothing to renew".into()),
        Decision::Pending(p) => (
            "pending",
            format!(
                "{} becomes current at {}",
                short(&p.thumbprint),
                when(p.effective_at)
            ),
        ),
        Decision::NotYet(t) => (
            "waiting",
            format!(
                "makes the next ({method}) at {}, current at {}",
                when(t.generate_at),
                when(t.promote_at)
            ),
        ),
        Decision::Generate { promote_at } => (
            "due",
            format!(
                "makes the next ({method}, {}) now, current at {}",
                c.policy.key,
                when(*promote_at)
            ),
        ),
        Decision::AwaitingAnswer { request_id } => (
            "requested",
            format!(
                "request {request_id} waits for the CA: import its answer ('certroll requests show {request_id} --csr')"
            ),
        ),
        Decision::ScheduleAnswer {
            thumbprint,
            promote_at,
        } => (
            "answered",
            format!(
                "the CA's answer {} is imported: scheduled now, current at {}",
                short(thumbprint),
                when(*promote_at)
            ),
        ),
        Decision::Withdrawn { thumbprint } => (
            "withdrawn",
            format!(
                "its renewal {} is no longer pending (its roll cancelled, or the slot rolled back): nothing is made again until 'certroll renew --now'",
                short(thumbprint)
            ),
        ),
        Decision::BackingOff {
            until,
            attempts,
            last_error,
        } => (
            "failed",
            format!(
                "{attempts} failed attempt(s), the last: {last_error}; next attempt at {}",
                when(*until)
            ),
        ),
    }
}

pub fn renewal_json(c: &Candidate) -> Value {
    let (state, detail) = renewal_text(c);
    let t = c.plan.timing;
    let r = c.record.as_ref();
    json!({
        "type": c.slot.usage_type,
        "scope": c.slot.scope.to_string(),
        "method": c.policy.method,
        "state": state,
        "detail": detail,
        "current": c.current.as_ref().map(|s| s.info.thumbprint.clone()),
        "current_not_after": c.current.as_ref().map(|s| time(s.info.not_after)),
        "generate_at": t.map(|t| time(t.generate_at)),
        "promote_at": t.map(|t| time(t.promote_at)),
        "critical_at": t.map(|t| time(t.critical_at)),
        "pending": c.pending.as_ref().map(|p| json!({
            "thumbprint": p.thumbprint, "effective_at": time(p.effective_at)})),
        "request_id": r.and_then(|r| r.request_id),
        "attempts": r.map_or(0, |r| r.attempts),
        "last_error": r.and_then(|r| r.last_error.clone()),
        "next_attempt_at": r.and_then(|r| r.next_attempt_at).map(time),
        "overdue": c.plan.overdue,
        "critical": c.plan.critical,
    })
}
