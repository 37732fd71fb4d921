//! What a notification says: an email subject and plain-text body, and the
//! webhook's versioned JSON (schema `certroll.event.v1`, documented in the
//! README), built from an outbox event. Pure: certificate details come from
//! a lookup function.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cert::CertInfo;
use crate::store::OutboxEvent;

pub const SCHEMA: &str = "certroll.event.v1";

/// A rendered notification.
#[derive(Clone, Debug)]
pub struct Message {
    pub event_id: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub json: Value,
}

/// Certificate details by thumbprint.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<CertInfo>;

fn short(t: &str) -> String {
    format!("{}…", &t[..t.len().min(8)])
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn cert_json(c: &CertInfo) -> Value {
    json!({
        "thumbprint": c.thumbprint,
        "subject": c.subject,
        "issuer": c.issuer,
        "sans": c.sans,
        "not_before": time(c.not_before),
        "not_after": time(c.not_after),
        "key_algorithm": c.key_algorithm.to_string(),
        "key_bits": c.key_bits,
    })
}

fn cert_line(t: &str, lookup: Lookup<'_>) -> String {
    match lookup(t) {
        Some(c) => format!(
            "{t}\n              {}, valid {} to {} ({} {})",
            crate::text::escape(&c.subject),
            c.not_before.format("%Y-%m-%d %H:%M UTC"),
            c.not_after.format("%Y-%m-%d %H:%M UTC"),
            c.key_algorithm,
            c.key_bits
        ),
        None => t.to_string(),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn lateness_text(us: i64) -> String {
    crate::store::describe_lateness(chrono::Duration::microseconds(us))
}

/// Renders an event for people (subject, body) and machines (JSON).
pub fn render(e: &OutboxEvent, lookup: Lookup<'_>) -> Message {
    let p = &e.payload;
    let d = p.get("data").cloned().unwrap_or(Value::Null);
    let slot = match (&e.usage_type, &e.scope) {
        (Some(t), Some(s)) => Some(format!("{t}@{s}")),
        _ => None,
    };
    let slot_text = slot.clone().unwrap_or_else(|| "(no slot)".into());
    let message = str_at(p, &["message"]).unwrap_or("").to_string();
    let thumb = str_at(&d, &["thumbprint"]).map(str::to_string);

    // The certificates the event is about, by role.
    let mut certs: Vec<(&str, String)> = Vec::new();
    let (new, old) = match e.kind.as_str() {
        "certificate.assigned" | "certificate.removed" => (
            str_at(&d, &["after", "current"]).map(str::to_string),
            str_at(&d, &["before", "current"]).map(str::to_string),
        ),
        "roll.succeeded" => (
            str_at(&d, &["transition", "after", "current"]).map(str::to_string),
            str_at(&d, &["transition", "before", "current"]).map(str::to_string),
        ),
        "roll.scheduled" | "roll.failed" => {
            (thumb.clone(), str_at(&d, &["current"]).map(str::to_string))
        }
        _ => (None, None),
    };
    if let Some(t) = &new {
        certs.push(("new", t.clone()));
    }
    if let Some(t) = &old
        && Some(t) != new.as_ref()
    {
        certs.push(("old", t.clone()));
    }
    if certs.is_empty()
        && let Some(t) = &thumb
    {
        certs.push(("certificate", t.clone()));
    }

    let job_id = d.get("job_id").and_then(Value::as_i64);
    let due = str_at(&d, &["due_at"]).or(str_at(&d, &["effective_at"]));
    let lateness_us = d.get("lateness_us").and_then(Value::as_i64);
    let error = str_at(&d, &["reason"]).map(str::to_string);
    let what = thumb
        .as_deref()
        .or(new.as_deref())
        .map(short)
        .unwrap_or_default();

    let subject = match e.kind.as_str() {
        "roll.succeeded" => format!("[certroll] {slot_text} rolled to {what}"),
        "roll.failed" => format!("[certroll] FAILED: {slot_text} did not roll to {what}"),
        "roll.late" => format!(
            "[certroll] LATE: {slot_text} rolled to {what} {}",
            lateness_us
                .map(lateness_text)
                .unwrap_or_default()
                .replace(" late", " after its instant")
        ),
        "roll.scheduled" => format!(
            "[certroll] {slot_text} will roll to {what} at {}",
            due.unwrap_or("?")
        ),
        "roll.cancelled" => format!("[certroll] {slot_text}: roll to {what} cancelled"),
        "certificate.assigned" => format!("[certroll] {slot_text} now uses {what}"),
        "certificate.removed" => format!("[certroll] {slot_text}: {message}"),
        "notify.test" => "[certroll] test message".to_string(),
        k if k.starts_with("expiry.") => {
            let m = message
                .strip_prefix(&format!("{slot_text}: "))
                .unwrap_or(&message);
            let tag = if e.severity == crate::cert::types::EventSeverity::Critical {
                "CRITICAL: "
            } else {
                ""
            };
            format!("[certroll] {tag}{slot_text}: {m}")
        }
        other => format!("[certroll] {other}: {message}"),
    };
    // People read these: a crafted subject must not forge a header, a line
    // of the body, or terminal codes (the JSON keeps the real values).
    let subject = crate::text::escape(&subject).into_owned();

    let next_step = match e.kind.as_str() {
        "roll.failed" => Some(format!(
            "Fix the cause above, then run 'certroll jobs retry {}', or schedule another certificate with 'certroll set --type ... --effective-date WHEN --roll --force'. The slot is unchanged.",
            job_id.map_or("ID".to_string(), |i| i.to_string())
        )),
        "roll.late" => Some("Check that 'certroll serve' runs continuously (systemctl status certroll).".to_string()),
        "expiry.no_successor" | "expiry.expired" => Some(
            "Import a new certificate and schedule it: certroll import --path NEW.pfx --type TYPE --effective-date WHEN --roll".to_string(),
        ),
        "expiry.pending_short" => Some("Schedule a certificate that stays valid longer (certroll set ... --roll --force).".to_string()),
        "expiry.previous_overlap" => Some("Tokens signed with the previous certificate stop validating when it expires; shorten their lifetime or re-sign them.".to_string()),
        "request.created" => Some(format!(
            "Hand the request below to the CA; when it answers, import its certificate: certroll import --path RESPONSE (add --type and --effective-date WHEN --roll to schedule it). 'certroll requests show {} --csr' prints the request again.",
            d.get("request_id").and_then(Value::as_i64).map_or("ID".to_string(), |i| i.to_string())
        )),
        _ => None,
    };

    let mut body = String::new();
    if !message.is_empty() {
        body.push_str(&crate::text::escape_lines(&message));
        body.push_str("\n\n");
    }
    let mut field = |name: &str, value: String| body.push_str(&format!("{name:<13} {value}\n"));
    field("Event:", format!("{} ({})", e.kind, e.severity));
    field("Slot:", slot_text.clone());
    field("When:", time(e.created_at));
    for (role, t) in &certs {
        let name = match *role {
            "new" => "New:",
            "old" => "Old:",
            _ => "Certificate:",
        };
        field(name, cert_line(t, lookup));
    }
    if let Some(dropped) = d
        .get("dropped")
        .or(d.get("transition").and_then(|t| t.get("dropped")))
        && let Some(list) = dropped.as_array()
        && !list.is_empty()
    {
        let names: Vec<String> = list.iter().filter_map(Value::as_str).map(short).collect();
        field(
            "Left slot:",
            format!("{} (still in the store)", names.join(", ")),
        );
    }
    if let Some(due) = due {
        field("Effective:", due.to_string());
    }
    if e.kind.starts_with("roll.") && e.kind != "roll.scheduled" && e.kind != "roll.cancelled" {
        field("Actual:", time(e.created_at));
    }
    if let Some(us) = lateness_us {
        field("Lateness:", lateness_text(us));
    }
    if let Some(n) = d.get("days_left").and_then(Value::as_i64) {
        field("Days left:", n.to_string());
    }
    if let Some(err) = &error {
        field("Error:", crate::text::escape(err).into_owned());
    }
    if let Some(id) = job_id {
        field("Job:", id.to_string());
    }
    if let Some(step) = &next_step {
        field("Next step:", step.clone());
    }
    field("Event id:", e.event_id.clone());
    if let Some(a) = str_at(p, &["actor"]) {
        field("By:", a.to_string());
    }
    // The certificate request itself, to hand to the CA from the message.
    if e.kind == "request.created"
        && let Some(csr) = str_at(&d, &["csr"])
    {
        body.push('\n');
        body.push_str(csr);
    }

    let certificates: serde_json::Map<String, Value> = certs
        .iter()
        .map(|(role, t)| {
            let v = lookup(t)
                .map(|c| cert_json(&c))
                .unwrap_or_else(|| json!({"thumbprint": t}));
            (role.to_string(), v)
        })
        .collect();
    let json = json!({
        "schema": SCHEMA,
        "event_id": e.event_id,
        "kind": e.kind,
        "severity": e.severity.as_str(),
        "occurred_at": time(e.created_at),
        "actor": str_at(p, &["actor"]),
        "slot": match (&e.scope, &e.usage_type) {
            (Some(s), Some(t)) => json!({"scope": s, "type": t}),
            _ => Value::Null,
        },
        "subject": subject,
        "message": message,
        "certificates": certificates,
        "job": job_id.map(|id| json!({
            "id": id,
            "due_at": due,
            "lateness_ms": lateness_us.map(|us| us as f64 / 1000.0),
        })),
        "error": error,
        "next_step": next_step,
        "data": d,
    });
    Message {
        event_id: e.event_id.clone(),
        kind: e.kind.clone(),
        subject,
        body,
        json,
    }
}

/// A Slack incoming-webhook payload.
pub fn slack(m: &Message) -> Value {
    json!({ "text": format!("*{}*\n```\n{}```", m.subject, m.body) })
}

/// A Microsoft Teams incoming-webhook card.
pub fn teams(m: &Message) -> Value {
    let color = match m.json["severity"].as_str() {
        Some("critical") => "D13438",
        Some("warning") => "FFB900",
        _ => "2E7D32",
    };
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": m.subject,
        "themeColor": color,
        "title": m.subject,
        "text": format!("<pre>{}</pre>", m.body.replace('&', "&amp;").replace('<', "&lt;")),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::cert::types::EventSeverity;

    fn event(kind: &str, severity: EventSeverity, data: Value, message: &str) -> OutboxEvent {
        let at = Utc.with_ymd_and_hms(2027, 7, 1, 0, 0, 0).unwrap();
        OutboxEvent {
            id: 1,
            event_id: "e-1".into(),
            kind: kind.into(),
            severity,
            scope: Some("global".into()),
            usage_type: Some("OAuthTokenIssuer".into()),
            payload: json!({"event_id": "e-1", "kind": kind, "message": message, "actor": "serve:x", "data": data}),
            created_at: at,
        }
    }

    fn no_lookup(_: &str) -> Option<CertInfo> {
        None
    }

    #[test]
    fn a_roll_says_what_happened() {
        let new = "10FD77A6D9C0E2B6D3A10000000000000000AAAA";
        let old = "AB12000000000000000000000000000000000000";
        let e = event(
            "roll.succeeded",
            EventSeverity::Info,
            json!({"job_id": 3, "thumbprint": new, "due_at": "2027-07-01T00:00:00.000Z", "lateness_us": 420,
                   "transition": {"before": {"current": old}, "after": {"current": new, "previous": old}, "dropped": []}}),
            "OAuthTokenIssuer@global rolled",
        );
        let m = render(&e, &no_lookup);
        assert_eq!(
            m.subject,
            "[certroll] OAuthTokenIssuer@global rolled to 10FD77A6…"
        );
        for needle in [
            "New:",
            new,
            "Old:",
            old,
            "Effective:",
            "Actual:",
            "0.4 ms late",
            "Job:",
            "e-1",
        ] {
            assert!(m.body.contains(needle), "{needle} missing:\n{}", m.body);
        }
        let line = |name: &str| {
            m.body
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or("")
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(line("Lateness:"), "0.4 ms late");
        assert_eq!(line("Job:"), "3");
        assert_eq!(m.json["schema"], SCHEMA);
        assert_eq!(m.json["certificates"]["new"]["thumbprint"], new);
        assert_eq!(m.json["job"]["lateness_ms"], 0.42);
        assert_eq!(m.json["slot"]["type"], "OAuthTokenIssuer");
    }

    #[test]
    fn a_failed_roll_gives_the_error_and_the_next_step() {
        let e = event(
            "roll.failed",
            EventSeverity::Critical,
            json!({"job_id": 9, "thumbprint": "F1E37BC1C59B60446F596AA8AC06CD5F75463AFC", "reason": "policy says no"}),
            "roll failed",
        );
        let m = render(&e, &no_lookup);
        assert!(
            m.subject.starts_with(
                "[certroll] FAILED: OAuthTokenIssuer@global did not roll to F1E37BC1…"
            )
        );
        assert!(
            m.body
                .lines()
                .any(|l| l.starts_with("Error:") && l.ends_with("policy says no")),
            "{}",
            m.body
        );
        assert!(m.body.contains("certroll jobs retry 9"), "{}", m.body);
        assert_eq!(m.json["error"], "policy says no");
    }

    #[test]
    fn a_new_request_carries_its_csr_and_what_to_do_with_it() {
        let csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
        let e = event(
            "request.created",
            EventSeverity::Info,
            json!({"request_id": 4, "subject": "CN=contoso.com", "csr": csr}),
            "request 4: CN=contoso.com for OAuthTokenIssuer at global waits for the CA: hand it its CSR",
        );
        let m = render(&e, &no_lookup);
        assert!(
            m.subject.contains("request 4: CN=contoso.com"),
            "{}",
            m.subject
        );
        assert!(m.body.ends_with(csr), "{}", m.body);
        assert!(
            m.body.contains("certroll requests show 4 --csr"),
            "{}",
            m.body
        );
        assert_eq!(m.json["data"]["csr"], csr);
    }

    #[test]
    fn expiry_and_chat_formats() {
        let e = event(
            "expiry.no_successor",
            EventSeverity::Critical,
            json!({"thumbprint": "F1E37BC1C59B60446F596AA8AC06CD5F75463AFC", "days_left": 3}),
            "OAuthTokenIssuer@global: the current certificate F1E37BC1 (contoso.com) expires in 3 day(s), on 2027-07-04 00:00 UTC; nothing is pending to replace it",
        );
        let m = render(&e, &no_lookup);
        assert!(
            m.subject.starts_with(
                "[certroll] CRITICAL: OAuthTokenIssuer@global: the current certificate"
            ),
            "{}",
            m.subject
        );
        assert!(m.body.contains("Next step:"), "{}", m.body);
        assert!(
            slack(&m)["text"]
                .as_str()
                .unwrap()
                .starts_with("*[certroll]")
        );
        assert_eq!(teams(&m)["themeColor"], "D13438");
    }
}
