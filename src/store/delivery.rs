//! Notification delivery and the expiry watch's records.
//!
//! Each outbox event is fanned out once to the channels whose filters take
//! it (one `deliveries` row per event and channel). Deliveries are claimed
//! under a lease like roll jobs, so several `serve` processes send each
//! event once per channel; every attempt is recorded; a delivery that keeps
//! failing goes `dead` after a number of attempts or an age.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params, params_from_iter};
use serde_json::json;

use super::audit::{self, Severity};
use super::{OpCtx, Store, StoreError, parse_ts, ts};
use crate::cert::expiry::{AlertKey, CertFacts, ExpiryAlert, SlotFacts};
use crate::cert::{Scope, SlotKey, UsageType};

/// An event as the outbox holds it.
#[derive(Clone, Debug)]
pub struct OutboxEvent {
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub severity: Severity,
    pub scope: Option<String>,
    pub usage_type: Option<String>,
    /// The JSON written with the change (see `audit::enqueue`).
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A delivery claimed under a lease, with its event.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub channel: String,
    pub attempts: u32,
    pub event: OutboxEvent,
}

/// What one attempt came to.
#[derive(Clone, Debug)]
pub enum DeliveryOutcome {
    Delivered {
        detail: String,
    },
    /// Failed; try again at `at` (unless the attempts or age are used up).
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// Failed for good (a 4xx answer, a permanent SMTP error...).
    Dead {
        error: String,
    },
}

/// A delivery as `notifications list` shows it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    pub kind: String,
    pub severity: Severity,
    pub scope: Option<String>,
    pub usage_type: Option<String>,
    pub channel: String,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// One recorded attempt: when, outcome, detail, duration in ms.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub outcome: String,
    pub detail: Option<String>,
    pub duration_ms: i64,
}

/// Chooses the expiry alerts to send from the slots and what was sent.
pub type ExpiryDecision<'a> = &'a dyn Fn(&[SlotFacts], &HashSet<AlertKey>) -> Vec<ExpiryAlert>;

/// The delivery limits a record applies.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryLimits {
    pub max_attempts: u32,
    pub max_age: Duration,
}

/// What a fan-out pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FanOut {
    pub events: usize,
    pub deliveries: usize,
    /// Events older than the age limit when first seen: not sent.
    pub too_old: usize,
}

const EVENT_COLUMNS: &str =
    "o.id, o.event_id, o.kind, o.severity, o.scope, o.usage_type, o.payload, o.created_at";

fn event_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<OutboxEvent, StoreError>> {
    let id: i64 = r.get(0)?;
    let event_id: String = r.get(1)?;
    let kind: String = r.get(2)?;
    let severity: String = r.get(3)?;
    let scope: Option<String> = r.get(4)?;
    let usage_type: Option<String> = r.get(5)?;
    let payload: String = r.get(6)?;
    let created_at: String = r.get(7)?;
    Ok((|| {
        Ok(OutboxEvent {
            id,
            event_id,
            kind,
            severity: Severity::parse(&severity)
                .ok_or_else(|| StoreError::Corrupt(format!("outbox {id}: severity {severity}")))?,
            scope,
            usage_type,
            payload: serde_json::from_str(&payload)
                .map_err(|e| StoreError::Corrupt(format!("outbox {id}: {e}")))?,
            created_at: parse_ts(&created_at)?,
        })
    })())
}

impl Store {
    /// Gives each new outbox event one delivery per channel `route` names
    /// for it. Events older than `max_age` are marked seen and not sent.
    pub fn fan_out(
        &mut self,
        now: DateTime<Utc>,
        max_age: Duration,
        limit: usize,
        route: &dyn Fn(&OutboxEvent) -> Vec<String>,
    ) -> Result<FanOut, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let events: Vec<OutboxEvent> = tx
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM outbox o WHERE o.fanned_out_at IS NULL ORDER BY o.id LIMIT {limit}"
            ))?
            .query_map([], event_from_row)?
            .collect::<Result<Result<_, _>, _>>()??;
        let mut out = FanOut::default();
        for e in &events {
            out.events += 1;
            if now - e.created_at > max_age {
                out.too_old += 1;
            } else {
                for channel in route(e) {
                    out.deliveries += tx
                        .prepare_cached(
                            "INSERT OR IGNORE INTO deliveries (outbox_id, channel, state, next_attempt_at, created_at)
                             VALUES (?1, ?2, 'pending', ?3, ?3)",
                        )?
                        .execute(params![e.id, channel, ts(now)])?;
                }
            }
            tx.prepare_cached("UPDATE outbox SET fanned_out_at = ?1 WHERE id = ?2")?
                .execute(params![ts(now), e.id])?;
        }
        tx.commit()?;
        Ok(out)
    }

    /// Moves up to `limit` due deliveries to `sending` under a lease.
    pub fn claim_deliveries(
        &mut self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows: Vec<(i64, i64, String, u32)> = tx
            .prepare_cached(&format!(
                "UPDATE deliveries SET state = 'sending', lease_owner = ?1, lease_expires_at = ?2,
                        attempts = attempts + 1
                 WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?3
                              ORDER BY next_attempt_at, id LIMIT {limit})
                 RETURNING id, outbox_id, channel, attempts"
            ))?
            .query_map(params![owner, ts(now + lease), ts(now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, outbox_id, channel, attempts) in rows {
            let event = tx
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM outbox o WHERE o.id = ?1"
                ))?
                .query_row([outbox_id], event_from_row)??;
            out.push(ClaimedDelivery {
                id,
                channel,
                attempts,
                event,
            });
        }
        tx.commit()?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    /// Records attempts: delivered, retried later, or dead (when the
    /// outcome says so, or the attempts or age are used up). Only rows this
    /// `owner` still holds are touched.
    pub fn record_deliveries(
        &mut self,
        owner: &str,
        now: DateTime<Utc>,
        limits: DeliveryLimits,
        results: &[(ClaimedDelivery, DeliveryOutcome, u64)],
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (d, outcome, duration_ms) in results {
            let (state, outcome_name, detail, next) = match outcome {
                DeliveryOutcome::Delivered { detail } => {
                    ("delivered", "delivered", detail.clone(), now)
                }
                DeliveryOutcome::Dead { error } => ("dead", "dead", error.clone(), now),
                DeliveryOutcome::Retry { error, at } => {
                    let too_many = d.attempts >= limits.max_attempts;
                    let too_old = *at - d.event.created_at > limits.max_age;
                    if too_many || too_old {
                        let why = if too_many {
                            format!("{error} (gave up after {} attempts)", d.attempts)
                        } else {
                            format!(
                                "{error} (gave up: older than {} h)",
                                limits.max_age.num_hours()
                            )
                        };
                        ("dead", "dead", why, now)
                    } else {
                        ("pending", "retry", error.clone(), *at)
                    }
                }
            };
            let changed = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = ?1, next_attempt_at = ?2, last_error = ?3,
                            lease_owner = NULL, lease_expires_at = NULL,
                            delivered_at = CASE WHEN ?1 = 'delivered' THEN ?4 ELSE delivered_at END
                     WHERE id = ?5 AND state = 'sending' AND lease_owner = ?6",
                )?
                .execute(params![
                    state,
                    ts(next),
                    (state != "delivered").then_some(&detail),
                    ts(now),
                    d.id,
                    owner
                ])?;
            let outcome_name = if changed == 1 { outcome_name } else { "lost" };
            tx.prepare_cached(
                "INSERT INTO delivery_attempts (delivery_id, at, outcome, detail, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                d.id,
                ts(now),
                outcome_name,
                detail,
                *duration_ms as i64
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Gives deliveries whose sender's lease expired back to the queue.
    pub fn recover_expired_deliveries(&mut self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL,
                        next_attempt_at = ?1, last_error = 'the sender stopped before finishing'
                 WHERE state = 'sending' AND lease_expires_at <= ?1",
            )?
            .execute([ts(now)])?)
    }

    /// When the delivery queue next needs attention: now if events wait to
    /// be fanned out, else the earliest retry or lease expiry.
    pub fn next_delivery_wake(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let unfanned: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM outbox WHERE fanned_out_at IS NULL LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        if unfanned.is_some() {
            return Ok(Some(now));
        }
        let due: Option<String> = self
            .conn
            .prepare_cached("SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'")?
            .query_row([], |r| r.get(0))?;
        let lease: Option<String> = self
            .conn
            .prepare_cached("SELECT min(lease_expires_at) FROM deliveries WHERE state = 'sending' AND lease_expires_at > ''")?
            .query_row([], |r| r.get(0))?;
        let times = [due, lease]
            .into_iter()
            .flatten()
            .map(|s| parse_ts(&s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(times.into_iter().min())
    }

    /// Deliveries, newest first.
    pub fn deliveries(
        &self,
        state: Option<&str>,
        channel: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut sql = String::from(
            "SELECT d.id, o.event_id, o.kind, o.severity, o.scope, o.usage_type, d.channel, d.state, d.attempts,
                    d.next_attempt_at, d.last_error, d.created_at, d.delivered_at
             FROM deliveries d JOIN outbox o ON o.id = d.outbox_id WHERE 1 = 1",
        );
        let mut args: Vec<String> = Vec::new();
        if let Some(s) = state {
            sql.push_str(" AND d.state = ?");
            args.push(s.to_string());
        }
        if let Some(c) = channel {
            sql.push_str(" AND d.channel = ?");
            args.push(c.to_string());
        }
        sql.push_str(" ORDER BY d.id DESC");
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, u32>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, String>(11)?,
                r.get::<_, Option<String>>(12)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                event_id,
                kind,
                severity,
                scope,
                usage_type,
                channel,
                state,
                attempts,
                next,
                last_error,
                created,
                delivered,
            ) = row?;
            out.push(Delivery {
                id,
                event_id,
                kind,
                severity: Severity::parse(&severity).unwrap_or(Severity::Info),
                scope,
                usage_type,
                channel,
                state,
                attempts,
                next_attempt_at: parse_ts(&next)?,
                last_error,
                created_at: parse_ts(&created)?,
                delivered_at: delivered.as_deref().map(parse_ts).transpose()?,
            });
        }
        Ok(out)
    }

    /// The attempts of one delivery: (at, outcome, detail, duration ms).
    pub fn delivery_attempts(&self, id: i64) -> Result<Vec<Attempt>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, outcome, detail, duration_ms FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([id], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (at, outcome, detail, duration_ms) = r?;
            out.push(Attempt {
                at: parse_ts(&at)?,
                outcome,
                detail,
                duration_ms,
            });
        }
        Ok(out)
    }

    /// Queues dead deliveries again (one, or all with `None`). Returns how
    /// many.
    pub fn retry_deliveries(
        &mut self,
        id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let n = match id {
            Some(id) => {
                let state: Option<String> = self
                    .conn
                    .query_row("SELECT state FROM deliveries WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?;
                match state.as_deref() {
                    None => return Err(StoreError::Refused(format!("no notification delivery {id}"))),
                    Some("dead") => {}
                    Some(other) => {
                        return Err(StoreError::Refused(format!(
                            "delivery {id} is {other}: only a dead delivery can be retried"
                        )));
                    }
                }
                self.conn.execute(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1 WHERE id = ?2 AND state = 'dead'",
                    params![ts(now), id],
                )?
            }
            None => self.conn.execute(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1 WHERE state = 'dead'",
                [ts(now)],
            )?,
        };
        Ok(n)
    }

    /// Deliveries by state, per channel: (channel, state, count).
    pub fn delivery_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT channel, state, count(*) FROM deliveries GROUP BY channel, state ORDER BY channel, state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Events committed but not yet routed to channels (by `fan_out`).
    pub fn unrouted_events(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM outbox INDEXED BY outbox_unfanned WHERE fanned_out_at IS NULL",
            [],
            |r| r.get(0),
        )?)
    }

    /// Everything the expiry watch and `check` look at, slot by slot.
    pub fn slot_facts(&self) -> Result<Vec<SlotFacts>, StoreError> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let (page, last) = self.slot_facts_page(after, 1000)?;
            if page.is_empty() {
                out.sort_by(|a: &SlotFacts, b: &SlotFacts| {
                    (a.slot.usage_type.as_str(), a.slot.scope.key())
                        .cmp(&(b.slot.usage_type.as_str(), b.slot.scope.key()))
                });
                return Ok(out);
            }
            out.extend(page);
            after = last;
        }
    }

    /// Up to `limit` slots with certificates whose row id is above `after`,
    /// and the last row id read.
    fn slot_facts_page(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<SlotFacts>, i64), StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT s.scope, s.usage_type, s.current_cert, s.previous_cert, s.previous_since, s.updated_at,
                    s.pending_cert, s.effective_at,
                    (SELECT j.id || char(31) || coalesce(j.last_error, '') FROM jobs j
                     WHERE j.slot_id = s.id AND j.state IN ('failed', 'succeeded', 'cancelled', 'scheduled', 'running')
                     ORDER BY j.id DESC LIMIT 1),
                    (SELECT j.state FROM jobs j WHERE j.slot_id = s.id ORDER BY j.id DESC LIMIT 1)
                    , s.id
             FROM slots s
             WHERE s.id > ?1
               AND (s.current_cert IS NOT NULL OR s.previous_cert IS NOT NULL OR s.pending_cert IS NOT NULL)
             ORDER BY s.id LIMIT {limit}"
        ))?;
        type Row = (
            String,
            String,
            Option<i64>,
            Option<i64>,
            Option<String>,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
        );
        let rows: Vec<Row> = stmt
            .query_map([after], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let last = rows.last().map_or(after, |r| r.10);
        let facts = |id: i64| -> Result<CertFacts, StoreError> {
            let (thumbprint, subject, not_before, not_after): (String, String, String, String) =
                self.conn
                    .prepare_cached(
                        "SELECT thumbprint, subject, not_before, not_after FROM certificates WHERE id = ?1",
                    )?
                    .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            let label = subject
                .split(", ")
                .find_map(|p| p.strip_prefix("CN="))
                .unwrap_or(&subject)
                .to_string();
            Ok(CertFacts {
                id,
                thumbprint,
                label,
                not_before: parse_ts(&not_before)?,
                not_after: parse_ts(&not_after)?,
            })
        };
        let mut out = Vec::new();
        for (
            scope,
            usage_type,
            cur,
            prev,
            prev_since,
            updated,
            pend,
            eff,
            last_job,
            last_state,
            _,
        ) in rows
        {
            let failed_roll = match (last_job, last_state.as_deref()) {
                (Some(j), Some("failed")) => {
                    let (id, err) = j.split_once('\u{1f}').unwrap_or((&j, ""));
                    Some((id.parse().unwrap_or(0), err.to_string()))
                }
                _ => None,
            };
            out.push(SlotFacts {
                slot: SlotKey::new(
                    Scope::parse(&scope).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    UsageType::from_canonical(usage_type),
                ),
                current: cur.map(facts).transpose()?,
                previous: match prev {
                    Some(p) => Some((
                        facts(p)?,
                        parse_ts(prev_since.as_deref().unwrap_or(&updated))?,
                    )),
                    None => None,
                },
                pending: match (pend, eff) {
                    (Some(p), Some(at)) => Some((facts(p)?, parse_ts(&at)?)),
                    _ => None,
                },
                failed_roll,
            });
        }
        Ok((out, last))
    }

    /// The expiry watch: in one transaction, reads the slots and what was
    /// already sent, lets `decide` choose the alerts, and records each with
    /// its outbox event. Returns the alerts sent.
    pub fn expiry_scan(
        &mut self,
        ctx: &OpCtx,
        decide: ExpiryDecision<'_>,
    ) -> Result<Vec<ExpiryAlert>, StoreError> {
        // Page by page, so that memory stays small however many slots.
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (facts, last) = self.slot_facts_page(after, 1000)?;
            if facts.is_empty() {
                return Ok(all);
            }
            after = last;
            all.extend(self.expiry_scan_page(ctx, &facts, decide)?);
        }
    }

    fn expiry_scan_page(
        &mut self,
        ctx: &OpCtx,
        facts: &[SlotFacts],
        decide: ExpiryDecision<'_>,
    ) -> Result<Vec<ExpiryAlert>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut sent = HashSet::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT cert_id, scope_key, usage_type, alert FROM expiry_alerts WHERE cert_id = ?1",
            )?;
            let mut ids: Vec<i64> = facts
                .iter()
                .flat_map(|f| {
                    [
                        f.current.as_ref().map(|c| c.id),
                        f.previous.as_ref().map(|p| p.0.id),
                        f.pending.as_ref().map(|p| p.0.id),
                    ]
                })
                .flatten()
                .collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                for row in stmt.query_map([id], |r| {
                    Ok(AlertKey {
                        cert_id: r.get(0)?,
                        scope_key: r.get(1)?,
                        usage_type: r.get(2)?,
                        alert: r.get(3)?,
                    })
                })? {
                    sent.insert(row?);
                }
            }
        }
        let alerts = decide(facts, &sent);
        for a in &alerts {
            tx.prepare_cached(
                "INSERT INTO expiry_alerts (cert_id, scope_key, usage_type, alert, sent_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![a.key.cert_id, a.key.scope_key, a.key.usage_type, a.key.alert, ts(ctx.now)])?;
            audit::enqueue(
                &tx,
                ctx,
                a.kind,
                a.severity,
                Some(&a.slot),
                &a.message,
                json!({
                    "role": a.role,
                    "alert": a.key.alert,
                    "thumbprint": a.cert.thumbprint,
                    "not_after": ts(a.cert.not_after),
                    "days_left": a.days_left,
                }),
            )?;
        }
        tx.commit()?;
        Ok(alerts)
    }

    /// A certificate's display facts by thumbprint, for messages.
    pub fn cert_summary(&self, thumbprint: &str) -> Result<Option<super::StoredCert>, StoreError> {
        self.lookup_exact(thumbprint)
    }
}
