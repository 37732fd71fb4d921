//! Versioned schema migrations, applied on open. The schema version is
//! SQLite's `user_version`; migration N takes a database from version N-1 to
//! N inside one transaction, so a database made by an older certroll
//! upgrades in place and a crash mid-upgrade leaves the old version intact.
//!
//! Times are stored as RFC 3339 UTC text of fixed width
//! (`2026-07-01T00:00:00.000Z`), so text order is time order.

use rusqlite::{Connection, TransactionBehavior};

use super::{DbError, StoreError};

/// Each entry is one migration; never edit a shipped one, append a new one.
const MIGRATIONS: &[&str] = &[
    // v1: certificates, slots, audit trail, roll jobs and the notification
    // outbox.
    r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE certificates (
    id                  INTEGER PRIMARY KEY,
    thumbprint          TEXT NOT NULL UNIQUE CHECK (length(thumbprint) = 40),
    sha256              TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
    der                 BLOB NOT NULL,
    chain               BLOB NOT NULL DEFAULT x'',
    key_enc             BLOB,
    subject             TEXT NOT NULL,
    issuer              TEXT NOT NULL,
    sans                TEXT NOT NULL,
    serial              TEXT NOT NULL,
    not_before          TEXT NOT NULL,
    not_after           TEXT NOT NULL,
    key_algorithm       TEXT NOT NULL,
    key_bits            INTEGER NOT NULL,
    signature_algorithm TEXT NOT NULL,
    friendly_name       TEXT,
    source_file         TEXT,
    imported_at         TEXT NOT NULL
) STRICT;
CREATE INDEX certificates_not_after ON certificates (not_after);

CREATE TABLE slots (
    id            INTEGER PRIMARY KEY,
    scope         TEXT NOT NULL,
    scope_key     TEXT NOT NULL,
    usage_type    TEXT NOT NULL,
    current_cert  INTEGER REFERENCES certificates (id),
    previous_cert INTEGER REFERENCES certificates (id),
    pending_cert  INTEGER REFERENCES certificates (id),
    effective_at  TEXT,
    updated_at    TEXT NOT NULL,
    UNIQUE (scope_key, usage_type),
    CHECK ((pending_cert IS NULL) = (effective_at IS NULL))
) STRICT;
CREATE INDEX slots_by_type ON slots (usage_type, scope_key);
CREATE INDEX slots_current ON slots (current_cert);
CREATE INDEX slots_previous ON slots (previous_cert);
CREATE INDEX slots_pending ON slots (pending_cert);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY,
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    scope        TEXT,
    scope_key    TEXT,
    usage_type   TEXT,
    thumbprint   TEXT,
    old_current  TEXT,
    old_previous TEXT,
    old_pending  TEXT,
    new_current  TEXT,
    new_previous TEXT,
    new_pending  TEXT,
    detail       TEXT
) STRICT;
CREATE INDEX audit_log_by_slot ON audit_log (usage_type, scope_key, id);
CREATE INDEX audit_log_by_scope ON audit_log (scope_key, id);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    slot_id          INTEGER NOT NULL REFERENCES slots (id),
    cert_id          INTEGER NOT NULL REFERENCES certificates (id),
    due_at           TEXT NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    last_error       TEXT
) STRICT;
CREATE INDEX jobs_due ON jobs (due_at) WHERE state = 'scheduled';
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_slot ON jobs (slot_id, state);
CREATE UNIQUE INDEX jobs_one_live_per_slot ON jobs (slot_id)
    WHERE state IN ('scheduled', 'running');

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    severity   TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    scope      TEXT,
    usage_type TEXT,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX outbox_created ON outbox (created_at);
"#,
    // v2: the roll queue. `run_after` is when a job may next be attempted
    // (its effective instant, or later after a transient failure);
    // `lateness_us` how long after its instant it ran (negative for
    // `roll --now`).
    r#"
ALTER TABLE jobs ADD COLUMN run_after TEXT NOT NULL DEFAULT '';
UPDATE jobs SET run_after = due_at;
ALTER TABLE jobs ADD COLUMN lateness_us INTEGER;
ALTER TABLE jobs ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN finished_by TEXT;
DROP INDEX jobs_due;
CREATE INDEX jobs_runnable ON jobs (run_after, id) WHERE state = 'scheduled';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';
"#,
    // v3: notification delivery (one row per event and channel, leased
    // like jobs, every attempt recorded), the expiry watch's memory of what
    // it sent, and when a slot's previous certificate became previous.
    r#"
ALTER TABLE outbox ADD COLUMN fanned_out_at TEXT;
CREATE INDEX outbox_unfanned ON outbox (id) WHERE fanned_out_at IS NULL;

CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    outbox_id        INTEGER NOT NULL REFERENCES outbox (id),
    channel          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    delivered_at     TEXT,
    UNIQUE (outbox_id, channel)
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_leases ON deliveries (lease_expires_at) WHERE state = 'sending';
CREATE INDEX deliveries_by_state ON deliveries (state, id);
CREATE INDEX deliveries_by_channel ON deliveries (channel, id);

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    at          TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead', 'lost')),
    detail      TEXT,
    duration_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

CREATE TABLE expiry_alerts (
    cert_id    INTEGER NOT NULL REFERENCES certificates (id),
    scope_key  TEXT NOT NULL,
    usage_type TEXT NOT NULL,
    alert      TEXT NOT NULL,
    sent_at    TEXT NOT NULL,
    PRIMARY KEY (cert_id, scope_key, usage_type, alert)
) STRICT, WITHOUT ROWID;

ALTER TABLE slots ADD COLUMN previous_since TEXT;
UPDATE slots SET previous_since = updated_at WHERE previous_cert IS NOT NULL;
-- Events written before delivery existed are history, not news.
UPDATE outbox SET fanned_out_at = created_at;
"#,
    // v4: deployment state per server, type, target and role (current or
    // staged pending), and rolls that wait for staging.
    r#"
CREATE TABLE deployments (
    server            TEXT NOT NULL,
    usage_type        TEXT NOT NULL,
    target            TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('current', 'pending')),
    wanted            TEXT,
    deployed          TEXT,
    state             TEXT NOT NULL CHECK (state IN ('ok', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_attempt_at   TEXT,
    next_attempt_at   TEXT,
    last_error        TEXT,
    deployed_at       TEXT,
    out_of_date_since TEXT,
    lagging_alerted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (server, usage_type, target, role)
) STRICT, WITHOUT ROWID;

ALTER TABLE jobs ADD COLUMN require_staged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN held_since TEXT;
"#,
    // v5: certificate requests waiting for their CA's response. The key is
    // sealed like a certificate's (bound to the public key's fingerprint)
    // and wiped when the request is completed or cancelled. Certificates
    // gain their public key's fingerprint (filled for existing rows by
    // `backfill_public_keys`), so a certificate renewed with the same key
    // finds it.
    r#"
ALTER TABLE certificates ADD COLUMN public_key TEXT;
CREATE INDEX certificates_by_public_key ON certificates (public_key, id)
    WHERE public_key IS NOT NULL;

CREATE TABLE requests (
    id            INTEGER PRIMARY KEY,
    usage_type    TEXT NOT NULL,
    scope         TEXT NOT NULL,
    subject       TEXT NOT NULL,
    sans          TEXT NOT NULL,
    key_algorithm TEXT NOT NULL,
    friendly_name TEXT,
    template      TEXT,
    public_key    TEXT NOT NULL,
    csr           TEXT NOT NULL,
    key_enc       BLOB,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'completed', 'cancelled')),
    created_at    TEXT NOT NULL,
    closed_at     TEXT,
    cert_id       INTEGER REFERENCES certificates (id),
    CHECK ((state = 'pending') = (key_enc IS NOT NULL))
) STRICT;
CREATE UNIQUE INDEX requests_pending_key ON requests (public_key) WHERE state = 'pending';
CREATE INDEX requests_by_key ON requests (public_key, id);
CREATE INDEX requests_by_state ON requests (state, id);
"#,
    // v6: an imported certificate's issuer is looked for among the stored
    // certificates (by subject) and the chains of its siblings (by issuer);
    // a request keeps the validity it asked for.
    r#"
CREATE INDEX certificates_by_subject ON certificates (subject);
CREATE INDEX certificates_by_issuer ON certificates (issuer, id) WHERE length(chain) > 0;
-- The validity asked of the CA, compared with its answer.
ALTER TABLE requests ADD COLUMN validity_days INTEGER;
"#,
    // v7: recurring duties (the expiry watch, maintenance) run on one engine
    // of a pool at a time: the one holding the duty's leader row, until its
    // expiry, renewed only by its holder.
    r#"
CREATE TABLE leaders (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    since      TEXT NOT NULL
) STRICT;
"#,
    // v8: rollover policies. A slot's renewal of its current certificate
    // (`for_cert_id`): failures and the next attempt, the request made for
    // a CA, the certificate made, whether the overdue alert went out. A row
    // for another certificate than the slot's current one is stale.
    r#"
CREATE TABLE renewals (
    slot_id         INTEGER PRIMARY KEY REFERENCES slots (id),
    for_cert_id     INTEGER NOT NULL REFERENCES certificates (id),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    failed_at       TEXT,
    next_attempt_at TEXT,
    request_id      INTEGER REFERENCES requests (id),
    cert_id         INTEGER REFERENCES certificates (id),
    overdue_alerted INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT NOT NULL
) STRICT;

-- Children of their foreign keys: an insert or delete of a certificate or
-- request looks for them by index.
CREATE INDEX renewals_by_for_cert ON renewals (for_cert_id);
CREATE INDEX renewals_by_cert ON renewals (cert_id) WHERE cert_id IS NOT NULL;
CREATE INDEX renewals_by_request ON renewals (request_id) WHERE request_id IS NOT NULL;
"#,
    // v9: ACME. An account per directory URL, its credentials (key and
    // URL) sealed under the master key like a private key; and the
    // http-01 answers waiting for the CA to fetch them from any engine's
    // listener.
    r#"
CREATE TABLE acme_accounts (
    directory_url   TEXT PRIMARY KEY,
    credentials_enc BLOB NOT NULL,
    created_at      TEXT NOT NULL
) STRICT;
CREATE TABLE acme_challenges (
    token             TEXT PRIMARY KEY,
    key_authorization TEXT NOT NULL,
    expires_at        TEXT NOT NULL
) STRICT;
"#,
    // v10: accounts of the HTTP API and console. Only hashes are kept:
    // the password's Argon2id PHC string, an API token's SHA-256, a
    // session id's SHA-256 (with the session's CSRF token).
    r#"
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    password_hash TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL REFERENCES users (name),
    token_hash  TEXT NOT NULL,
    label       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT
) STRICT;
CREATE INDEX api_tokens_by_user ON api_tokens (user_name);
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL REFERENCES users (name),
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT;
CREATE INDEX sessions_by_user ON sessions (user_name);
"#,
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Fills `certificates.public_key` for rows stored before v5, in the
/// migration's transaction.
fn backfill_public_keys(tx: &Connection) -> Result<(), StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = tx
        .prepare("SELECT id, der FROM certificates")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(DbError::from)?;
    for (id, der) in rows {
        let info = crate::cert::CertInfo::from_der(&der)
            .map_err(|e| StoreError::Corrupt(format!("certificate {id}: {e}")))?;
        tx.execute(
            "UPDATE certificates SET public_key = ?1 WHERE id = ?2",
            rusqlite::params![info.public_key.fingerprint(), id],
        )
        .map_err(DbError::from)?;
    }
    Ok(())
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // Up to date (the usual case): a plain read, no write lock.
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(DbError::from)?;
    if version == CURRENT_VERSION {
        return Ok(());
    }
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(DbError::from)?;
        // Read inside the write lock: another process may have migrated
        // while this one waited.
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(DbError::from)?;
        if version > CURRENT_VERSION {
            return Err(StoreError::NewerSchema {
                found: version,
                known: CURRENT_VERSION,
            });
        }
        if version == CURRENT_VERSION {
            return Ok(());
        }
        tx.execute_batch(MIGRATIONS[version as usize])
            .map_err(DbError::from)?;
        if version + 1 == 5 {
            backfill_public_keys(&tx)?;
        }
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(DbError::from)?;
        tx.commit().map_err(DbError::from)?;
        tracing::info!(
            from = version,
            to = version + 1,
            "migrated the store schema"
        );
    }
}
