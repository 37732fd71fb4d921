//! The store's one way to run a statement, whatever the database: portable
//! SQL with `?N` placeholders, parameters as [`Value`]s, rows read through
//! [`Row`]'s typed getters. SQLite (rusqlite) runs it today; a PostgreSQL
//! backend (issue 12) runs the same statements with `$N` placeholders. The
//! rest of the store writes its domain logic once against [`Exec`]; only
//! what truly differs per backend (DDL, claims, clocks) is written twice.
//!
//! Statements are prepared once per connection (rusqlite's cache), so the
//! hot path of the roll queue re-prepares nothing.

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::StoreError;

/// A statement parameter, borrowed from the caller.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Blob(v)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

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

/// `vals![a, b, c]`: the parameters of a statement, each converted into a
/// [`Value`].
macro_rules! vals {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::db::Value::from($v)),*]
    };
}
pub(crate) use vals;

/// One result row.
pub(crate) struct Row<'r>(&'r rusqlite::Row<'r>);

impl Row<'_> {
    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        Ok(self.0.get(i)?)
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.0.get(i)?)
    }

    pub fn bool(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.0.get(i)?)
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        Ok(self.0.get(i)?)
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.0.get(i)?)
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        Ok(self.0.get(i)?)
    }

    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(i)?)
    }
}

/// Runs statements: a connection, or a transaction of one.
pub(crate) trait Exec {
    /// Runs a statement that returns no rows; the rows it changed.
    fn exec(&self, sql: &str, params: &[Value<'_>]) -> Result<usize, StoreError>;

    /// Every row of a query, each read by `read`.
    fn rows<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError>;

    /// The first row of a query, if any.
    fn row<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut first = None;
        // `rows` reads them all; a query that wants one says LIMIT 1.
        for r in self.rows(sql, params, &mut read)? {
            first.get_or_insert(r);
        }
        Ok(first)
    }
}

impl Exec for rusqlite::Connection {
    fn exec(&self, sql: &str, params: &[Value<'_>]) -> Result<usize, StoreError> {
        Ok(self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params.iter()))?)
    }

    fn rows<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(read(&Row(r))?);
        }
        Ok(out)
    }

    fn row<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        match rows.next()? {
            Some(r) => Ok(Some(read(&Row(r))?)),
            None => Ok(None),
        }
    }
}

/// A transaction or savepoint runs statements as its connection does.
macro_rules! exec_through_connection {
    ($($t:ty),*) => {$(
        impl Exec for $t {
            fn exec(&self, sql: &str, params: &[Value<'_>]) -> Result<usize, StoreError> {
                (**self).exec(sql, params)
            }

            fn rows<T>(
                &self,
                sql: &str,
                params: &[Value<'_>],
                read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
            ) -> Result<Vec<T>, StoreError> {
                (**self).rows(sql, params, read)
            }

            fn row<T>(
                &self,
                sql: &str,
                params: &[Value<'_>],
                read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
            ) -> Result<Option<T>, StoreError> {
                (**self).row(sql, params, read)
            }
        }
    )*};
}
exec_through_connection!(rusqlite::Transaction<'_>, rusqlite::Savepoint<'_>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_bind_and_rows_read_back_typed() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.exec(
            "CREATE TABLE t (i INTEGER, s TEXT, b BLOB, n TEXT)",
            vals![],
        )
        .unwrap();
        let name = String::from("x");
        let none: Option<&str> = None;
        let n = conn
            .exec(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                vals![7i64, &name, &b"\x00\x01"[..], none],
            )
            .unwrap();
        assert_eq!(n, 1);
        let got = conn
            .row("SELECT i, s, b, n FROM t WHERE s = ?1", vals!["x"], |r| {
                Ok((r.int(0)?, r.text(1)?, r.blob(2)?, r.opt_text(3)?))
            })
            .unwrap();
        assert_eq!(got, Some((7, "x".to_string(), vec![0, 1], None)));
        assert_eq!(
            conn.row("SELECT i FROM t WHERE s = ?1", vals!["y"], |r| r.int(0))
                .unwrap(),
            None
        );
    }
}
