//! Output formatting: the JSON objects of the command-line contract
//! (`../shared/design.md`) and the text an operator reads.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cert::renewal::Decision;
use crate::cert::slot::{AssignPlan, SchedulePlan};
use crate::cert::{CertInfo, SlotKey};
use crate::ops::renew::Candidate;
use crate::store::StoredCert;

pub use crate::json::{
    assign_change_json, cert_json, info_json, remove_change_json, schedule_change_json, slot_json,
    time,
};

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
