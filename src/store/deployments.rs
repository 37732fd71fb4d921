//! Deployment state: what each server's files hold, per type, target and
//! role, with the outcome of the last attempt; and rolls held until every
//! server has staged their certificate.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::audit::{self, Severity};
use super::db::{Exec, vals};
use super::{OpCtx, Store, StoreError, parse_ts, ts};
use crate::cert::slot::SlotCerts;
use crate::cert::{Scope, SlotKey, UsageType};

/// The recorded state of one deployment unit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeployState {
    pub server: String,
    pub usage_type: String,
    pub target: String,
    /// "current" or "pending".
    pub role: String,
    /// The certificate the unit should hold, as last seen.
    pub wanted: Option<String>,
    /// The certificate its files hold (last success).
    pub deployed: Option<String>,
    /// "ok" or "failed".
    pub state: String,
    pub attempts: u32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub deployed_at: Option<DateTime<Utc>>,
    /// Since when `deployed` differs from `wanted` (or the unit fails).
    pub out_of_date_since: Option<DateTime<Utc>>,
    pub lagging_alerted: bool,
}

impl DeployState {
    pub fn up_to_date(&self) -> bool {
        self.state == "ok" && self.deployed == self.wanted
    }
}

/// An event to write with a state.
pub struct DeployEvent {
    pub kind: &'static str,
    pub severity: Severity,
    pub slot: SlotKey,
    pub message: String,
    pub data: serde_json::Value,
}

fn opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.as_deref().map(parse_ts).transpose()
}

impl Store {
    /// Every slot's certificates by thumbprint, for deployment planning.
    pub fn deploy_slots(&self) -> Result<HashMap<SlotKey, SlotCerts>, StoreError> {
        let rows = self.conn.rows(
            "SELECT s.scope, s.usage_type,
                    (SELECT thumbprint FROM certificates WHERE id = s.current_cert),
                    (SELECT thumbprint FROM certificates WHERE id = s.previous_cert),
                    (SELECT thumbprint FROM certificates WHERE id = s.pending_cert)
             FROM slots s
             WHERE s.current_cert IS NOT NULL OR s.pending_cert IS NOT NULL OR s.previous_cert IS NOT NULL",
            vals![],
            |r| {
                Ok((
                    r.text(0)?,
                    r.text(1)?,
                    r.opt_text(2)?,
                    r.opt_text(3)?,
                    r.opt_text(4)?,
                ))
            },
        )?;
        let mut out = HashMap::new();
        for (scope, t, current, previous, pending) in rows {
            out.insert(
                SlotKey::new(
                    Scope::parse(&scope).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    UsageType::from_canonical(t),
                ),
                SlotCerts {
                    current,
                    previous,
                    pending,
                },
            );
        }
        Ok(out)
    }

    /// Recorded deployment states (of one server, or all), ordered.
    pub fn deployment_states(&self, server: Option<&str>) -> Result<Vec<DeployState>, StoreError> {
        let rows = self.conn.rows(
            "SELECT server, usage_type, target, role, wanted, deployed, state, attempts, last_attempt_at,
                    next_attempt_at, last_error, deployed_at, out_of_date_since, lagging_alerted
             FROM deployments WHERE CAST(?1 AS TEXT) IS NULL OR server = ?1
             ORDER BY server, usage_type, target, role",
            vals![server],
            |r| {
                Ok((
                    (r.text(0)?, r.text(1)?, r.text(2)?, r.text(3)?),
                    (
                        r.opt_text(4)?,
                        r.opt_text(5)?,
                        r.text(6)?,
                        u32::try_from(r.int(7)?).unwrap_or(u32::MAX),
                    ),
                    (
                        r.opt_text(8)?,
                        r.opt_text(9)?,
                        r.opt_text(10)?,
                        r.opt_text(11)?,
                        r.opt_text(12)?,
                        r.bool(13)?,
                    ),
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (
                (server, usage_type, target, role),
                (wanted, deployed, state, attempts),
                (last, next, err, at, since, alerted),
            ) = row;
            out.push(DeployState {
                server,
                usage_type,
                target,
                role,
                wanted,
                deployed,
                state,
                attempts,
                last_attempt_at: opt_ts(last)?,
                next_attempt_at: opt_ts(next)?,
                last_error: err,
                deployed_at: opt_ts(at)?,
                out_of_date_since: opt_ts(since)?,
                lagging_alerted: alerted,
            });
        }
        Ok(out)
    }

    /// Writes a unit's state, and its event if any, in one transaction.
    pub fn record_deployment(
        &mut self,
        st: &DeployState,
        event: Option<&DeployEvent>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        tx.exec(
            "INSERT INTO deployments (server, usage_type, target, role, wanted, deployed, state, attempts,
                 last_attempt_at, next_attempt_at, last_error, deployed_at, out_of_date_since, lagging_alerted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (server, usage_type, target, role) DO UPDATE SET
                 wanted = excluded.wanted, deployed = excluded.deployed, state = excluded.state,
                 attempts = excluded.attempts, last_attempt_at = excluded.last_attempt_at,
                 next_attempt_at = excluded.next_attempt_at, last_error = excluded.last_error,
                 deployed_at = excluded.deployed_at, out_of_date_since = excluded.out_of_date_since,
                 lagging_alerted = excluded.lagging_alerted",
            vals![
                &st.server,
                &st.usage_type,
                &st.target,
                &st.role,
                st.wanted.as_ref(),
                st.deployed.as_ref(),
                &st.state,
                st.attempts,
                st.last_attempt_at.map(ts).as_ref(),
                st.next_attempt_at.map(ts).as_ref(),
                st.last_error.as_ref(),
                st.deployed_at.map(ts).as_ref(),
                st.out_of_date_since.map(ts).as_ref(),
                st.lagging_alerted,
            ],
        )?;
        if let Some(e) = event {
            audit::enqueue(
                &tx,
                ctx,
                e.kind,
                e.severity,
                Some(&e.slot),
                &e.message,
                e.data.clone(),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Of the (server, target) pairs, those that have not staged
    /// `thumbprint` for `usage_type`.
    pub fn not_staged(
        &self,
        usage_type: &str,
        thumbprint: &str,
        pairs: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut out = Vec::new();
        for (server, target) in pairs {
            let row = self.conn.row(
                "SELECT deployed, state FROM deployments
                 WHERE server = ?1 AND usage_type = ?2 AND target = ?3 AND role = 'pending'",
                vals![server, usage_type, target],
                |r| Ok((r.opt_text(0)?, r.text(1)?)),
            )?;
            let staged = matches!(&row, Some((Some(d), s)) if d == thumbprint && s == "ok");
            if !staged {
                out.push((server.clone(), target.clone()));
            }
        }
        Ok(out)
    }

    /// Puts a claimed job back, not counting the attempt, to be looked at
    /// again at `run_after`: the roll is held for staging. With `event`, the
    /// first hold past the instant is recorded (held_since) and announced.
    pub fn hold_job(
        &mut self,
        owner: &str,
        id: i64,
        run_after: DateTime<Utc>,
        event: Option<(&SlotKey, String, serde_json::Value)>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        let held_since = event.as_ref().map(|_| ts(ctx.now));
        tx.exec(
            "UPDATE jobs SET state = 'scheduled', lease_owner = NULL, lease_expires_at = NULL,
                    attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, run_after = ?1,
                    held_since = coalesce(held_since, ?2)
             WHERE id = ?3 AND state = 'running' AND lease_owner = ?4",
            vals![&ts(run_after), held_since.as_ref(), id, owner],
        )?;
        if let Some((slot, message, data)) = event {
            audit::enqueue(
                &tx,
                ctx,
                "roll.held",
                Severity::Warning,
                Some(slot),
                &message,
                data,
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}
