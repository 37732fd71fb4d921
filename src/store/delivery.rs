//! Notification delivery and the expiry watch's records.
//!
//! Each outbox event is fanned out once to the channels whose filters take
//! it (one `deliveries` row per event and channel). Deliveries are claimed
//! under a lease like roll jobs, so several `serve` processes send each
//! event once per channel; every attempt is recorded; a delivery that keeps
//! failing goes `dead` after a number of attempts or an age.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::audit::{self, Severity};
use super::db::{Backend, Exec, Row, Value, vals};
use super::{OpCtx, Store, StoreError, parse_ts, ts};
use crate::cert::expiry::{AlertKey, CertFacts, ExpiryAlert, SlotFacts};
use crate::cert::{Scope, SlotKey, UsageType};

/// Slots the expiry watch reads at a time: a page is one short read and
/// one short transaction, so an engine can fit it between rolls.
pub const EXPIRY_PAGE: usize = 250;

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

fn event_from_row(r: &Row<'_>) -> Result<OutboxEvent, StoreError> {
    let id = r.int(0)?;
    let severity = r.text(3)?;
    Ok(OutboxEvent {
        id,
        event_id: r.text(1)?,
        kind: r.text(2)?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| StoreError::Corrupt(format!("outbox {id}: severity {severity}")))?,
        scope: r.opt_text(4)?,
        usage_type: r.opt_text(5)?,
        payload: serde_json::from_str(&r.text(6)?)
            .map_err(|e| StoreError::Corrupt(format!("outbox {id}: {e}")))?,
        created_at: parse_ts(&r.text(7)?)?,
    })
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
        let tx = self.conn.begin()?;
        // On PostgreSQL, events another notifier is routing are left to it.
        let lock = match tx.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let events = tx.rows(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM outbox o WHERE o.fanned_out_at IS NULL ORDER BY o.id LIMIT {limit}{lock}"
            ),
            vals![],
            event_from_row,
        )?;
        let now_ts = ts(now);
        let mut out = FanOut::default();
        for e in &events {
            out.events += 1;
            if now - e.created_at > max_age {
                out.too_old += 1;
            } else {
                for channel in route(e) {
                    out.deliveries += tx.exec(
                        "INSERT INTO deliveries (outbox_id, channel, state, next_attempt_at, created_at)
                         VALUES (?1, ?2, 'pending', ?3, ?3) ON CONFLICT DO NOTHING",
                        vals![e.id, &channel, &now_ts],
                    )?;
                }
            }
            tx.exec(
                "UPDATE outbox SET fanned_out_at = ?1 WHERE id = ?2",
                vals![&now_ts, e.id],
            )?;
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
        let tx = self.conn.begin()?;
        let (expiry, now_ts) = (ts(now + lease), ts(now));
        // As jobs are claimed (see `Store::claim`): on PostgreSQL rows
        // another notifier is claiming are skipped, and the lease ends by
        // the database's clock.
        let (sql, params) = match tx.backend() {
            Backend::Sqlite => (
                format!(
                    "UPDATE deliveries SET state = 'sending', lease_owner = ?1, lease_expires_at = ?2,
                            attempts = attempts + 1
                     WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?3
                                  ORDER BY next_attempt_at, id LIMIT {limit})
                     RETURNING id, outbox_id, channel, attempts"
                ),
                vec![Value::from(owner), Value::from(&expiry), Value::from(&now_ts)],
            ),
            Backend::Postgres => (
                format!(
                    "WITH c AS MATERIALIZED (
                         SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?3
                         ORDER BY next_attempt_at, id LIMIT {limit} FOR UPDATE SKIP LOCKED)
                     UPDATE deliveries SET state = 'sending', lease_owner = ?1,
                            lease_expires_at = certroll_ts(now() + ?2::bigint * interval '1 millisecond'),
                            attempts = deliveries.attempts + 1
                     FROM c WHERE deliveries.id = c.id
                     RETURNING deliveries.id, deliveries.outbox_id, deliveries.channel, deliveries.attempts"
                ),
                vec![
                    Value::from(owner),
                    Value::Int(lease.num_milliseconds()),
                    Value::from(&now_ts),
                ],
            ),
        };
        let rows = tx.rows(&sql, &params, |r| {
            Ok((
                r.int(0)?,
                r.int(1)?,
                r.text(2)?,
                u32::try_from(r.int(3)?).unwrap_or(u32::MAX),
            ))
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, outbox_id, channel, attempts) in rows {
            let event = tx
                .row(
                    &format!("SELECT {EVENT_COLUMNS} FROM outbox o WHERE o.id = ?1"),
                    vals![outbox_id],
                    event_from_row,
                )?
                .ok_or_else(|| StoreError::Corrupt(format!("delivery {id}: no outbox row")))?;
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
        let tx = self.conn.begin()?;
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
            let changed = tx.exec(
                "UPDATE deliveries SET state = ?1, next_attempt_at = ?2, last_error = ?3,
                        lease_owner = NULL, lease_expires_at = NULL,
                        delivered_at = CASE WHEN ?1 = 'delivered' THEN ?4 ELSE delivered_at END
                 WHERE id = ?5 AND state = 'sending' AND lease_owner = ?6",
                vals![
                    state,
                    &ts(next),
                    (state != "delivered").then_some(&detail),
                    &ts(now),
                    d.id,
                    owner
                ],
            )?;
            let outcome_name = if changed == 1 { outcome_name } else { "lost" };
            tx.exec(
                "INSERT INTO delivery_attempts (delivery_id, at, outcome, detail, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                vals![
                    d.id,
                    &ts(now),
                    outcome_name,
                    &detail,
                    i64::try_from(*duration_ms).unwrap_or(i64::MAX)
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Gives deliveries whose sender's lease expired back to the queue.
    pub fn recover_expired_deliveries(&mut self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let db_now = match self.conn.backend() {
            Backend::Sqlite => "?1",
            Backend::Postgres => "certroll_ts(now())",
        };
        self.conn.exec(
            &format!(
                "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL,
                        next_attempt_at = ?1, last_error = 'the sender stopped before finishing'
                 WHERE state = 'sending' AND lease_expires_at <= {db_now}"
            ),
            vals![&ts(now)],
        )
    }

    /// When the delivery queue next needs attention: now if events wait to
    /// be fanned out, else the earliest retry or lease expiry.
    pub fn next_delivery_wake(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let unfanned = self.conn.row(
            "SELECT id FROM outbox WHERE fanned_out_at IS NULL LIMIT 1",
            vals![],
            |r| r.int(0),
        )?;
        if unfanned.is_some() {
            return Ok(Some(now));
        }
        let due = self
            .conn
            .row(
                "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'",
                vals![],
                |r| r.opt_text(0),
            )?
            .flatten();
        let lease = self
            .conn
            .row(
                "SELECT min(lease_expires_at) FROM deliveries WHERE state = 'sending' AND lease_expires_at > ''",
                vals![],
                |r| r.opt_text(0),
            )?
            .flatten();
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
            args.push(s.to_string());
            sql.push_str(&format!(" AND d.state = ?{}", args.len()));
        }
        if let Some(c) = channel {
            args.push(c.to_string());
            sql.push_str(&format!(" AND d.channel = ?{}", args.len()));
        }
        sql.push_str(" ORDER BY d.id DESC");
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let params: Vec<Value<'_>> = args.iter().map(Value::from).collect();
        self.conn.rows(&sql, &params, |r| {
            Ok(Delivery {
                id: r.int(0)?,
                event_id: r.text(1)?,
                kind: r.text(2)?,
                severity: Severity::parse(&r.text(3)?).unwrap_or(Severity::Info),
                scope: r.opt_text(4)?,
                usage_type: r.opt_text(5)?,
                channel: r.text(6)?,
                state: r.text(7)?,
                attempts: u32::try_from(r.int(8)?).unwrap_or(u32::MAX),
                next_attempt_at: parse_ts(&r.text(9)?)?,
                last_error: r.opt_text(10)?,
                created_at: parse_ts(&r.text(11)?)?,
                delivered_at: r.opt_text(12)?.as_deref().map(parse_ts).transpose()?,
            })
        })
    }

    /// The attempts of one delivery: (at, outcome, detail, duration ms).
    pub fn delivery_attempts(&self, id: i64) -> Result<Vec<Attempt>, StoreError> {
        self.conn.rows(
            "SELECT at, outcome, detail, duration_ms FROM delivery_attempts WHERE delivery_id = ?1 ORDER BY id",
            vals![id],
            |r| {
                Ok(Attempt {
                    at: parse_ts(&r.text(0)?)?,
                    outcome: r.text(1)?,
                    detail: r.opt_text(2)?,
                    duration_ms: r.int(3)?,
                })
            },
        )
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
                let state = self.conn.row(
                    "SELECT state FROM deliveries WHERE id = ?1",
                    vals![id],
                    |r| r.text(0),
                )?;
                match state.as_deref() {
                    None => return Err(StoreError::Refused(format!("no notification delivery {id}"))),
                    Some("dead") => {}
                    Some(other) => {
                        return Err(StoreError::Refused(format!(
                            "delivery {id} is {other}: only a dead delivery can be retried"
                        )));
                    }
                }
                self.conn.exec(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1 WHERE id = ?2 AND state = 'dead'",
                    vals![&ts(now), id],
                )?
            }
            None => self.conn.exec(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?1 WHERE state = 'dead'",
                vals![&ts(now)],
            )?,
        };
        Ok(n)
    }

    /// Deliveries by state, per channel: (channel, state, count).
    pub fn delivery_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.conn.rows(
            "SELECT channel, state, count(*) FROM deliveries GROUP BY channel, state ORDER BY channel, state",
            &[],
            |r| Ok((r.text(0)?, r.text(1)?, r.int(2)?)),
        )
    }

    /// Events committed but not yet routed to channels (by `fan_out`).
    pub fn unrouted_events(&self) -> Result<i64, StoreError> {
        // SQLite's planner needs telling to count from the partial index.
        let sql = match self.conn.backend() {
            Backend::Sqlite => {
                "SELECT count(*) FROM outbox INDEXED BY outbox_unfanned WHERE fanned_out_at IS NULL"
            }
            Backend::Postgres => "SELECT count(*) FROM outbox WHERE fanned_out_at IS NULL",
        };
        Ok(self.conn.row(sql, &[], |r| r.int(0))?.unwrap_or(0))
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
        struct Slot {
            id: i64,
            scope: String,
            usage_type: String,
            current: Option<i64>,
            previous: Option<i64>,
            previous_since: Option<String>,
            updated_at: String,
            pending: Option<i64>,
            effective_at: Option<String>,
            last_job: Option<i64>,
            last_state: Option<String>,
            last_error: Option<String>,
        }
        // The slot's latest job, read three times by the same index walk:
        // scalar subqueries both databases plan the same way.
        let latest = |col: &str| {
            format!(
                "(SELECT j.{col} FROM jobs j WHERE j.slot_id = s.id ORDER BY j.id DESC LIMIT 1)"
            )
        };
        let rows = self.conn.rows(
            &format!(
                "SELECT s.id, s.scope, s.usage_type, s.current_cert, s.previous_cert, s.previous_since, s.updated_at,
                        s.pending_cert, s.effective_at, {}, {}, {}
                 FROM slots s
                 WHERE s.id > ?1
                   AND (s.current_cert IS NOT NULL OR s.previous_cert IS NOT NULL OR s.pending_cert IS NOT NULL)
                 ORDER BY s.id LIMIT {limit}",
                latest("id"),
                latest("state"),
                latest("last_error")
            ),
            vals![after],
            |r| {
                Ok(Slot {
                    id: r.int(0)?,
                    scope: r.text(1)?,
                    usage_type: r.text(2)?,
                    current: r.opt_int(3)?,
                    previous: r.opt_int(4)?,
                    previous_since: r.opt_text(5)?,
                    updated_at: r.text(6)?,
                    pending: r.opt_int(7)?,
                    effective_at: r.opt_text(8)?,
                    last_job: r.opt_int(9)?,
                    last_state: r.opt_text(10)?,
                    last_error: r.opt_text(11)?,
                })
            },
        )?;
        let last = rows.last().map_or(after, |r| r.id);
        // Every certificate of the page in one statement per run of ids.
        let mut ids: Vec<i64> = rows
            .iter()
            .flat_map(|s| [s.current, s.previous, s.pending])
            .flatten()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let certs: HashMap<i64, CertFacts> = super::db::for_rows(
            &self.conn,
            &ids,
            &[],
            &["CAST({} AS BIGINT)"],
            |list| {
                format!(
                    "SELECT id, thumbprint, subject, not_before, not_after FROM certificates WHERE id IN (VALUES {list})"
                )
            },
            |id, p| p.push(Value::Int(*id)),
            |r| {
                let subject = r.text(2)?;
                let label = subject
                    .split(", ")
                    .find_map(|p| p.strip_prefix("CN="))
                    .unwrap_or(&subject)
                    .to_string();
                Ok(CertFacts {
                    id: r.int(0)?,
                    thumbprint: r.text(1)?,
                    label,
                    not_before: parse_ts(&r.text(3)?)?,
                    not_after: parse_ts(&r.text(4)?)?,
                })
            },
        )?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
        let facts = |id: i64| -> Result<CertFacts, StoreError> {
            certs.get(&id).cloned().ok_or_else(|| {
                StoreError::Corrupt(format!("slot refers to missing certificate {id}"))
            })
        };
        let mut out = Vec::new();
        for s in rows {
            let failed_roll = match (s.last_job, s.last_state.as_deref()) {
                (Some(j), Some("failed")) => Some((j, s.last_error.unwrap_or_default())),
                _ => None,
            };
            out.push(SlotFacts {
                slot: SlotKey::new(
                    Scope::parse(&s.scope).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    UsageType::from_canonical(s.usage_type),
                ),
                current: s.current.map(facts).transpose()?,
                previous: match s.previous {
                    Some(p) => Some((
                        facts(p)?,
                        parse_ts(s.previous_since.as_deref().unwrap_or(&s.updated_at))?,
                    )),
                    None => None,
                },
                pending: match (s.pending, s.effective_at) {
                    (Some(p), Some(at)) => Some((facts(p)?, parse_ts(&at)?)),
                    _ => None,
                },
                failed_roll,
            });
        }
        Ok((out, last))
    }

    /// One page of the expiry watch: the next `limit` slots with
    /// certificates after row id `after` (0 to begin). In one transaction,
    /// reads what was already sent for them, lets `decide` choose the
    /// alerts, and records each with its outbox event. Returns the alerts
    /// sent and where the next page begins (`None`: the watch is done).
    pub fn expiry_scan_from(
        &mut self,
        ctx: &OpCtx,
        after: i64,
        limit: usize,
        decide: ExpiryDecision<'_>,
    ) -> Result<(Vec<ExpiryAlert>, Option<i64>), StoreError> {
        let (facts, last) = self.slot_facts_page(after, limit.max(1))?;
        if facts.is_empty() {
            return Ok((Vec::new(), None));
        }
        let alerts = self.expiry_scan_page(ctx, &facts, decide)?;
        Ok((alerts, Some(last)))
    }

    fn expiry_scan_page(
        &mut self,
        ctx: &OpCtx,
        facts: &[SlotFacts],
        decide: ExpiryDecision<'_>,
    ) -> Result<Vec<ExpiryAlert>, StoreError> {
        let tx = self.conn.begin()?;
        let mut sent = HashSet::new();
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
        sent.extend(super::db::for_rows(
            &tx,
            &ids,
            &[],
            &["CAST({} AS BIGINT)"],
            |list| {
                format!(
                    "SELECT cert_id, scope_key, usage_type, alert FROM expiry_alerts WHERE cert_id IN (VALUES {list})"
                )
            },
            |id, p| p.push(Value::Int(*id)),
            |r| {
                Ok(AlertKey {
                    cert_id: r.int(0)?,
                    scope_key: r.text(1)?,
                    usage_type: r.text(2)?,
                    alert: r.text(3)?,
                })
            },
        )?);
        let alerts = decide(facts, &sent);
        for a in &alerts {
            tx.exec(
                "INSERT INTO expiry_alerts (cert_id, scope_key, usage_type, alert, sent_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                vals![a.key.cert_id, &a.key.scope_key, &a.key.usage_type, &a.key.alert, &ts(ctx.now)],
            )?;
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
