//! Statements on SQLite (rusqlite, bundled), through its statement cache.

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{Row, Value};
use crate::store::StoreError;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

pub(super) fn exec(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value<'_>],
) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(sql)?
        .execute(rusqlite::params_from_iter(params.iter()))?)
}

pub(super) fn rows<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value<'_>],
    mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(read(&Row::Sqlite(r))?);
    }
    Ok(out)
}

pub(super) fn row<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value<'_>],
    mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    match rows.next()? {
        Some(r) => Ok(Some(read(&Row::Sqlite(r))?)),
        None => Ok(None),
    }
}
