//! Certificate requests waiting for a CA's response. The private key of a
//! request is sealed under the master key (bound to the public key's
//! fingerprint) and never leaves the store in clear; when the response is
//! imported the key moves to the certificate in the same transaction, and
//! the request's copy is wiped. Cancelling wipes it too.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::db::{Exec, Row, vals};
use super::{OpCtx, Store, StoreError, audit, parse_ts, ts};
use crate::cert::key::PrivateKey;
use crate::cert::{Scope, SlotKey, UsageType};

/// The slot a request's events name: its (first) type at its scope.
fn event_slot(usage_type: &str, scope: &str) -> Option<SlotKey> {
    let t = usage_type.split(',').next()?.trim();
    Some(SlotKey::new(
        Scope::parse(scope).ok()?,
        UsageType::from_canonical(t),
    ))
}

/// Writes a request's event (request.created, .completed, .cancelled) in
/// the caller's transaction, with the request's row as it now is.
fn enqueue_request_event(
    tx: &impl Exec,
    ctx: &OpCtx,
    id: i64,
    kind: &str,
    message: &str,
    extra: serde_json::Value,
) -> Result<(), StoreError> {
    let (usage_type, scope, subject, sans, template, csr) = tx
        .row(
            "SELECT usage_type, scope, subject, sans, template, csr FROM requests WHERE id = ?1",
            vals![id],
            |r| {
                Ok((
                    r.text(0)?,
                    r.text(1)?,
                    r.text(2)?,
                    r.text(3)?,
                    r.opt_text(4)?,
                    r.text(5)?,
                ))
            },
        )?
        .ok_or(StoreError::NoSuchRequest(id))?;
    let mut data = serde_json::json!({
        "request_id": id,
        "types": usage_type.split(',').collect::<Vec<_>>(),
        "subject": subject,
        "sans": serde_json::from_str::<serde_json::Value>(&sans).unwrap_or_default(),
        "template": template,
    });
    if kind == "request.created" {
        data["csr"] = serde_json::json!(csr);
    }
    if let (Some(o), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    audit::enqueue(
        tx,
        ctx,
        kind,
        audit::Severity::Info,
        event_slot(&usage_type, &scope).as_ref(),
        message,
        data,
    )?;
    Ok(())
}

/// A request as the store keeps it (without its key).
#[derive(Clone, Debug, Serialize)]
pub struct CertRequest {
    pub id: i64,
    #[serde(rename = "type")]
    pub usage_type: String,
    pub scope: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub key_algorithm: String,
    pub friendly_name: Option<String>,
    /// The CA certificate template named in the request, if any.
    pub template: Option<String>,
    /// SHA-256 of the public key (see `PublicKeyMaterial::fingerprint`).
    pub public_key: String,
    pub csr: String,
    pub state: String,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The thumbprint of the certificate that completed it.
    pub thumbprint: Option<String>,
    /// The validity asked of the CA, in days (`request --days`), if any.
    pub validity_days: Option<u32>,
}

/// A request to record.
pub struct NewRequest<'a> {
    pub usage_type: &'a str,
    pub scope: &'a str,
    pub subject: &'a str,
    pub sans: &'a [String],
    pub key_algorithm: &'a str,
    pub friendly_name: Option<&'a str>,
    pub template: Option<&'a str>,
    pub key: &'a PrivateKey,
    pub csr: &'a str,
    pub validity_days: Option<u32>,
}

const COLUMNS: &str =
    "r.id, r.usage_type, r.scope, r.subject, r.sans, r.key_algorithm, r.friendly_name,
    r.public_key, r.csr, r.state, r.created_at, r.closed_at, c.thumbprint, r.template,
    r.validity_days";

fn from_row(r: &Row<'_>) -> Result<CertRequest, StoreError> {
    let id = r.int(0)?;
    Ok(CertRequest {
        id,
        usage_type: r.text(1)?,
        scope: r.text(2)?,
        subject: r.text(3)?,
        sans: serde_json::from_str(&r.text(4)?)
            .map_err(|e| StoreError::Corrupt(format!("request {id}: sans ({e})")))?,
        key_algorithm: r.text(5)?,
        friendly_name: r.opt_text(6)?,
        public_key: r.text(7)?,
        csr: r.text(8)?,
        state: r.text(9)?,
        created_at: parse_ts(&r.text(10)?)?,
        closed_at: r.opt_text(11)?.as_deref().map(parse_ts).transpose()?,
        thumbprint: r.opt_text(12)?,
        template: r.opt_text(13)?,
        validity_days: r.opt_int(14)?.and_then(|d| u32::try_from(d).ok()),
    })
}

fn aad(public_key: &str) -> Vec<u8> {
    format!("request:{public_key}").into_bytes()
}

/// Closes a pending request inside the caller's transaction (the import of
/// its certificate): state completed, the key wiped, the certificate
/// linked, an audit row.
pub(super) fn complete(
    tx: &impl Exec,
    request_id: i64,
    cert_id: i64,
    thumbprint: &str,
    ctx: &OpCtx,
) -> Result<(), StoreError> {
    let n = tx.exec(
        "UPDATE requests SET state = 'completed', key_enc = NULL, closed_at = ?1, cert_id = ?2
         WHERE id = ?3 AND state = 'pending'",
        vals![&ts(ctx.now), cert_id, request_id],
    )?;
    if n == 0 {
        return Err(StoreError::Refused(format!(
            "request {request_id} is no longer waiting (completed or cancelled meanwhile)"
        )));
    }
    audit::record_cert(
        tx,
        ctx,
        "request-completed",
        thumbprint,
        &format!("request {request_id}"),
    )?;
    enqueue_request_event(
        tx,
        ctx,
        request_id,
        "request.completed",
        &format!("request {request_id} answered by the CA: certificate {thumbprint}"),
        serde_json::json!({"thumbprint": thumbprint}),
    )
}

impl Store {
    /// A request's key sealed (bound to its public key's fingerprint), and
    /// that fingerprint.
    pub(super) fn seal_request_key(
        &mut self,
        key: &PrivateKey,
    ) -> Result<(String, Vec<u8>), StoreError> {
        let fp = key
            .public_fingerprint()
            .ok_or_else(|| StoreError::Corrupt("a key certroll cannot fingerprint".into()))?;
        let sealed = self.master_key(true)?.seal(key.pkcs8_der(), &aad(&fp))?;
        Ok((fp, sealed))
    }

    /// Records a request and seals its key, in one transaction with its
    /// audit row. Returns its id.
    pub fn create_request(&mut self, new: &NewRequest<'_>, ctx: &OpCtx) -> Result<i64, StoreError> {
        let (fp, sealed) = self.seal_request_key(new.key)?;
        let tx = self.conn.begin()?;
        let id = insert_request(&tx, new, &fp, &sealed, ctx)?;
        tx.commit()?;
        Ok(id)
    }

    /// Requests, newest first; `state` filters.
    pub fn requests(&self, state: Option<&str>) -> Result<Vec<CertRequest>, StoreError> {
        // Two statements, so that a filtered listing uses requests_by_state.
        let filter = if state.is_some() {
            "WHERE r.state = ?1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM requests r LEFT JOIN certificates c ON c.id = r.cert_id
             {filter} ORDER BY r.id DESC"
        );
        match state {
            Some(s) => self.conn.rows(&sql, vals![s], from_row),
            None => self.conn.rows(&sql, vals![], from_row),
        }
    }

    pub fn request(&self, id: i64) -> Result<Option<CertRequest>, StoreError> {
        self.conn.row(
            &format!("SELECT {COLUMNS} FROM requests r LEFT JOIN certificates c ON c.id = r.cert_id WHERE r.id = ?1"),
            vals![id],
            from_row,
        )
    }

    /// The waiting request whose key has this public key fingerprint, with
    /// its key unsealed.
    pub fn pending_request_for(
        &mut self,
        public_key: &str,
    ) -> Result<Option<(CertRequest, PrivateKey)>, StoreError> {
        let row = self.conn.row(
            "SELECT id, key_enc FROM requests WHERE public_key = ?1 AND state = 'pending'",
            vals![public_key],
            |r| Ok((r.int(0)?, r.blob(1)?)),
        )?;
        let Some((id, blob)) = row else {
            return Ok(None);
        };
        let der = self.master_key(false)?.open(&blob, &aad(public_key))?;
        let key = PrivateKey::from_pkcs8_der(&der)
            .map_err(|e| StoreError::Corrupt(format!("sealed key of request {id}: {e}")))?;
        let req = self.request(id)?.expect("the row just read");
        Ok(Some((req, key)))
    }

    /// The latest closed (completed or cancelled) request with this public
    /// key fingerprint: a response arriving after its request was closed.
    pub fn closed_request_for(&self, public_key: &str) -> Result<Option<CertRequest>, StoreError> {
        let id = self.conn.row(
            "SELECT id FROM requests WHERE public_key = ?1 AND state <> 'pending'
             ORDER BY id DESC LIMIT 1",
            vals![public_key],
            |r| r.int(0),
        )?;
        match id {
            Some(id) => self.request(id),
            None => Ok(None),
        }
    }

    /// How many requests wait for a response.
    pub fn pending_request_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .row(
                "SELECT count(*) FROM requests WHERE state = 'pending'",
                vals![],
                |r| r.int(0),
            )?
            .unwrap_or(0))
    }

    /// Cancels a waiting request and wipes its key, with its audit row.
    pub fn cancel_request(&mut self, id: i64, ctx: &OpCtx) -> Result<CertRequest, StoreError> {
        let tx = self.conn.begin()?;
        let state = tx.row("SELECT state FROM requests WHERE id = ?1", vals![id], |r| {
            r.text(0)
        })?;
        match state.as_deref() {
            None => return Err(StoreError::NoSuchRequest(id)),
            Some("pending") => {}
            Some(other) => {
                return Err(StoreError::Refused(format!(
                    "request {id} is {other}, not waiting"
                )));
            }
        }
        tx.exec(
            "UPDATE requests SET state = 'cancelled', key_enc = NULL, closed_at = ?1 WHERE id = ?2",
            vals![&ts(ctx.now), id],
        )?;
        tx.exec(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, 'request-cancelled', ?3)",
            vals![&ts(ctx.now), &ctx.actor, &format!("request {id}: its key was wiped")],
        )?;
        enqueue_request_event(
            &tx,
            ctx,
            id,
            "request.cancelled",
            &format!("request {id} cancelled: its key was wiped"),
            serde_json::json!({}),
        )?;
        tx.commit()?;
        Ok(self.request(id)?.expect("the row just updated"))
    }
}

/// Records a request with its sealed key, audit row and `request.created`
/// event, in the caller's transaction. Returns its id.
pub(super) fn insert_request(
    tx: &impl Exec,
    new: &NewRequest<'_>,
    fp: &str,
    sealed: &[u8],
    ctx: &OpCtx,
) -> Result<i64, StoreError> {
    let now = ts(ctx.now);
    let id = tx
        .row(
            "INSERT INTO requests (usage_type, scope, subject, sans, key_algorithm, friendly_name,
                    public_key, csr, key_enc, state, created_at, template, validity_days)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?11, ?12)
                 RETURNING id",
            vals![
                new.usage_type,
                new.scope,
                new.subject,
                &serde_json::to_string(new.sans).expect("JSON"),
                new.key_algorithm,
                new.friendly_name,
                fp,
                new.csr,
                sealed,
                &now,
                new.template,
                new.validity_days,
            ],
            |r| r.int(0),
        )?
        .ok_or_else(|| StoreError::Corrupt("an INSERT returned no id".into()))?;
    tx.exec(
            "INSERT INTO audit_log (at, actor, action, scope, usage_type, detail) VALUES (?1, ?2, 'request', ?3, ?4, ?5)",
            vals![&now, &ctx.actor, new.scope, new.usage_type, &format!("request {id}: {}", new.subject)],
        )?;
    enqueue_request_event(
        tx,
        ctx,
        id,
        "request.created",
        &format!(
            "request {id}: {} for {} at {} waits for the CA: hand it its CSR",
            new.subject, new.usage_type, new.scope
        ),
        serde_json::json!({}),
    )?;
    Ok(id)
}
