//! `certroll store copy --to postgres://...`: an SQLite store copied into
//! an empty PostgreSQL store, row for row with the same ids, in one
//! transaction of the target, then the counts compared.

use super::db::{Backend, Exec, Value};
use super::{Store, StoreError};

/// The tables in an order that satisfies their foreign keys. `meta` is
/// copied apart (the schema version is the target's own); `leaders` are
/// not copied (each engine takes them anew), nor `sessions` (their users
/// log in again).
const TABLES: &[&str] = &[
    "certificates",
    "slots",
    "audit_log",
    "jobs",
    "outbox",
    "deliveries",
    "delivery_attempts",
    "expiry_alerts",
    "deployments",
    "requests",
    "renewals",
    "acme_accounts",
    "users",
    "api_tokens",
];

/// Tables whose `id` is an identity the target must continue after.
const WITH_IDS: &[&str] = &[
    "certificates",
    "slots",
    "audit_log",
    "jobs",
    "outbox",
    "deliveries",
    "delivery_attempts",
    "requests",
];

/// What was copied: rows per table.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, i64)>,
}

enum Owned {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Owned {
    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Int(i) => Value::Int(*i),
            Owned::Text(t) => Value::Text(t),
            Owned::Blob(b) => Value::Blob(b),
        }
    }
}

impl Store {
    fn count(&self, table: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .row(&format!("SELECT count(*) FROM {table}"), &[], |r| r.int(0))?
            .unwrap_or(0))
    }

    /// Copies this (SQLite) store into `target` (PostgreSQL), which must
    /// hold nothing yet: every certificate with its sealed key, slot, job,
    /// audit row, request, outbox row and delivery, with their ids. One
    /// transaction: on any error the target stays empty. The counts are
    /// compared after the copy.
    pub fn copy_into(&self, target: &mut Store) -> Result<CopyReport, StoreError> {
        let Some(src) = self.conn.sqlite() else {
            return Err(StoreError::Refused(
                "the source of a copy is an SQLite store (the data directory's certroll.db)".into(),
            ));
        };
        if target.conn.backend() != Backend::Postgres {
            return Err(StoreError::Refused(
                "the target of a copy is a PostgreSQL store".into(),
            ));
        }
        for t in TABLES {
            let n = target.count(t)?;
            if n > 0 {
                return Err(StoreError::Refused(format!(
                    "the target store is not empty ({n} rows in {t}): copy into an empty database"
                )));
            }
        }
        let master_key_id = self.meta("master_key_id")?;
        let tx = target.conn.begin()?;
        let mut report = CopyReport::default();
        for &table in TABLES {
            let columns: Vec<String> = src
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
                ))?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            let insert = format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                columns.join(", "),
                marks.join(", ")
            );
            let mut stmt = src.prepare(&format!("SELECT {} FROM {table}", columns.join(", ")))?;
            let mut rows = stmt.query([])?;
            let mut n = 0i64;
            while let Some(r) = rows.next()? {
                let mut vals = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    use rusqlite::types::ValueRef;
                    vals.push(match r.get_ref(i)? {
                        ValueRef::Null => Owned::Null,
                        ValueRef::Integer(v) => Owned::Int(v),
                        ValueRef::Real(v) => Owned::Text(v.to_string()),
                        ValueRef::Text(t) => Owned::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => Owned::Blob(b.to_vec()),
                    });
                }
                let params: Vec<Value<'_>> = vals.iter().map(Owned::value).collect();
                tx.exec(&insert, &params)?;
                n += 1;
            }
            report.tables.push((table, n));
        }
        for table in WITH_IDS {
            tx.row(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                   coalesce((SELECT max(id) FROM {table}), 0) + 1, false)::text"
                ),
                &[],
                |_| Ok(()),
            )?;
        }
        if let Some(id) = &master_key_id {
            tx.exec(
                "INSERT INTO meta (key, value) VALUES ('master_key_id', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                super::db::vals![id],
            )?;
        }
        tx.commit()?;
        for (table, n) in &report.tables {
            let copied = target.count(table)?;
            if copied != *n {
                return Err(StoreError::Corrupt(format!(
                    "{table}: {n} rows read, {copied} in the target after the copy"
                )));
            }
        }
        Ok(report)
    }
}
