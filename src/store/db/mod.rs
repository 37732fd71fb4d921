//! The store's one way to run a statement, whatever the database: portable
//! SQL with `?N` placeholders, parameters as [`Value`]s, rows read through
//! [`Row`]'s typed getters, transactions and savepoints through [`Conn`].
//! SQLite ([`sqlite`]) and PostgreSQL ([`postgres`]) run the same
//! statements; the rest of the store writes its domain logic once against
//! [`Exec`], and only what truly differs per backend (DDL, claims, clocks,
//! locks) asks [`Exec::backend`].
//!
//! Statements are prepared once per connection, so the hot path of the
//! roll queue re-prepares nothing.

// The PostgreSQL backend is opened by the next step (the store's location).
#![allow(dead_code)]

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::cell::Cell;

use super::StoreError;

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

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

/// `vals![a, b, c]`: the parameters of a statement, each converted into a
/// [`Value`].
macro_rules! vals {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::db::Value::from($v)),*]
    };
}
pub(crate) use vals;

/// ` AND {t}usage_type IN (?first, ...) AND {t}scope_key = ?n` for the
/// types (any of) and scope given, numbered from `?first`, with their
/// arguments; `t` is the table's alias with its dot, or "".
pub(crate) fn slot_filter(
    t: &str,
    types: &[crate::cert::UsageType],
    scope: Option<&crate::cert::Scope>,
    first: usize,
) -> (String, Vec<String>) {
    let mut cond = String::new();
    let mut args = Vec::new();
    if !types.is_empty() {
        let marks: Vec<String> = (0..types.len())
            .map(|i| format!("?{}", first + i))
            .collect();
        cond.push_str(&format!(" AND {t}usage_type IN ({})", marks.join(", ")));
        args.extend(types.iter().map(|t| t.to_string()));
    }
    if let Some(scope) = scope {
        cond.push_str(&format!(" AND {t}scope_key = ?{}", first + args.len()));
        args.push(scope.key());
    }
    (cond, args)
}

/// The runs a multi-row statement splits its rows into: 128 rows each, then
/// 64, 32, ..., 1, so a statement takes at most eight shapes, each prepared
/// once per connection.
fn row_runs(n: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut size = 128;
    while start < n {
        if n - start >= size {
            runs.push(start..start + size);
            start += size;
        } else {
            size /= 2;
        }
    }
    runs
}

/// Runs one statement over many rows, a run of rows at a time (see
/// [`row_runs`]): `sql` gets the run's `(…), (…)` list, whose placeholders
/// follow the statement's own `head` parameters (`?1` … `?h`), each column
/// written by its template in `cols` (`{}` is the placeholder, e.g.
/// `CAST({} AS BIGINT)` where PostgreSQL cannot infer a type); `bind` gives
/// a row's values, one per column. Returns what `read` makes of the rows
/// the statement returns (`RETURNING`), in order.
pub(crate) fn for_rows<'a, T, R>(
    tx: &impl Exec,
    rows: &'a [T],
    head: &[Value<'a>],
    cols: &[&str],
    sql: impl Fn(&str) -> String,
    bind: impl Fn(&'a T, &mut Vec<Value<'a>>),
    mut read: impl FnMut(&Row<'_>) -> Result<R, StoreError>,
) -> Result<Vec<R>, StoreError> {
    let mut out = Vec::new();
    for run in row_runs(rows.len()) {
        let mut list = String::new();
        let mut n = head.len();
        for i in 0..run.len() {
            list.push_str(if i == 0 { "(" } else { ", (" });
            for (c, template) in cols.iter().enumerate() {
                n += 1;
                if c > 0 {
                    list.push_str(", ");
                }
                list.push_str(&template.replace("{}", &format!("?{n}")));
            }
            list.push(')');
        }
        let mut params: Vec<Value<'a>> = head.to_vec();
        for row in &rows[run] {
            let before = params.len();
            bind(row, &mut params);
            debug_assert_eq!(params.len() - before, cols.len());
        }
        out.extend(tx.rows(&sql(&list), &params, &mut read)?);
    }
    Ok(out)
}

/// One result row.
pub(crate) enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r ::postgres::Row),
}

impl Row<'_> {
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => postgres::opt_int(r, i),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is unexpectedly NULL")))
    }

    pub fn bool(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.int(i)? != 0)
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => Ok(r.try_get(i)?),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is unexpectedly NULL")))
    }

    pub fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => Ok(r.try_get(i)?),
        }
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        self.opt_blob(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is unexpectedly NULL")))
    }
}

/// Runs statements: a connection, or a transaction or savepoint of one.
pub(crate) trait Exec {
    /// The database underneath.
    fn backend(&self) -> Backend;

    /// Whether statements run inside a transaction (row locks taken with
    /// `FOR UPDATE` hold until it ends).
    fn in_tx(&self) -> bool;

    /// Runs a statement that returns no rows; the rows it changed.
    fn exec(&self, sql: &str, params: &[Value<'_>]) -> Result<usize, StoreError>;

    /// Every row of a query, each read by `read`.
    fn rows<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError>;

    /// The first row of a query, if any (a query that wants one says
    /// LIMIT 1 or selects by a unique key).
    fn row<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut first = None;
        for r in self.rows(sql, params, &mut read)? {
            first.get_or_insert(r);
        }
        Ok(first)
    }

    /// `" FOR UPDATE"` (optionally `OF` a table) inside a PostgreSQL
    /// transaction, where the rows read are about to change and another
    /// process may change them too; nothing on SQLite, whose write
    /// transactions already exclude each other.
    fn for_update(&self, of: Option<&str>) -> String {
        if self.backend() == Backend::Postgres && self.in_tx() {
            match of {
                Some(t) => format!(" FOR UPDATE OF {t}"),
                None => " FOR UPDATE".to_string(),
            }
        } else {
            String::new()
        }
    }
}

/// A connection to the store's database.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::PgConn>),
}

impl Conn {
    /// Statements without parameters or results, run as one batch.
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => c.batch(sql),
        }
    }

    /// Starts a write transaction: on SQLite `BEGIN IMMEDIATE`, which takes
    /// the database's write lock at once (so a transaction never fails half
    /// way for a lock another took); on PostgreSQL `BEGIN`, with row locks
    /// taken by the statements (`FOR UPDATE`, compare-and-set updates).
    /// Dropped without [`Tx::commit`], it rolls back.
    pub fn begin(&mut self) -> Result<Tx<'_>, StoreError> {
        match self {
            Conn::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Conn::Postgres(c) => c.begin()?,
        }
        Ok(Tx {
            conn: self,
            open: true,
            savepoints: Cell::new(0),
        })
    }

    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    pub fn sqlite_mut(&mut self) -> Option<&mut rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    pub fn postgres(&self) -> Option<&postgres::PgConn> {
        match self {
            Conn::Sqlite(_) => None,
            Conn::Postgres(c) => Some(c),
        }
    }
}

impl Exec for Conn {
    fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    fn in_tx(&self) -> bool {
        false
    }

    fn exec(&self, sql: &str, params: &[Value<'_>]) -> Result<usize, StoreError> {
        match self {
            Conn::Sqlite(c) => sqlite::exec(c, sql, params),
            Conn::Postgres(c) => c.exec(sql, params),
        }
    }

    fn rows<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Conn::Sqlite(c) => sqlite::rows(c, sql, params, read),
            Conn::Postgres(c) => c.rows(sql, params, read),
        }
    }

    fn row<T>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self {
            Conn::Sqlite(c) => sqlite::row(c, sql, params, read),
            Conn::Postgres(c) => Ok(c.rows(sql, params, read)?.into_iter().next()),
        }
    }
}

/// A write transaction (see [`Conn::begin`]).
pub(crate) struct Tx<'c> {
    conn: &'c Conn,
    open: bool,
    savepoints: Cell<u32>,
}

impl Tx<'_> {
    /// Statements without parameters or results, inside the transaction.
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.conn.batch(sql)
    }

    /// Commits; on failure the transaction is rolled back (when it is
    /// dropped) and nothing of it applies.
    pub fn commit(mut self) -> Result<(), StoreError> {
        self.conn.batch("COMMIT")?;
        self.open = false;
        Ok(())
    }

    pub fn rollback(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.conn.batch("ROLLBACK")
    }

    /// A savepoint inside the transaction: dropped without
    /// [`Savepoint::release`], its changes are undone and the transaction
    /// goes on.
    pub fn savepoint(&self) -> Result<Savepoint<'_>, StoreError> {
        let n = self.savepoints.get() + 1;
        let name = format!("sp{n}");
        self.conn.batch(&format!("SAVEPOINT {name}"))?;
        self.savepoints.set(n);
        Ok(Savepoint {
            tx: self,
            name,
            open: true,
        })
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // A failed COMMIT may have ended the transaction already; the
            // error of a ROLLBACK then says only that.
            let _ = self.conn.batch("ROLLBACK");
        }
    }
}

/// Runs statements on its connection, inside an open transaction.
trait InTx {
    fn conn(&self) -> &Conn;
}

impl InTx for Tx<'_> {
    fn conn(&self) -> &Conn {
        self.conn
    }
}

impl InTx for Savepoint<'_> {
    fn conn(&self) -> &Conn {
        self.tx.conn
    }
}

impl<T: InTx> Exec for T {
    fn backend(&self) -> Backend {
        self.conn().backend()
    }

    fn in_tx(&self) -> bool {
        true
    }

    fn exec(&self, sql: &str, params: &[Value<'_>]) -> Result<usize, StoreError> {
        self.conn().exec(sql, params)
    }

    fn rows<U>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnMut(&Row<'_>) -> Result<U, StoreError>,
    ) -> Result<Vec<U>, StoreError> {
        self.conn().rows(sql, params, read)
    }

    fn row<U>(
        &self,
        sql: &str,
        params: &[Value<'_>],
        read: impl FnMut(&Row<'_>) -> Result<U, StoreError>,
    ) -> Result<Option<U>, StoreError> {
        self.conn().row(sql, params, read)
    }
}

/// See [`Tx::savepoint`].
pub(crate) struct Savepoint<'t> {
    tx: &'t Tx<'t>,
    name: String,
    open: bool,
}

impl Savepoint<'_> {
    /// Keeps the savepoint's changes in the transaction.
    pub fn release(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.finish(false)
    }

    /// Undoes the savepoint's changes; the transaction goes on.
    pub fn rollback(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.finish(true)
    }

    fn finish(&self, undo: bool) -> Result<(), StoreError> {
        self.tx.savepoints.set(self.tx.savepoints.get() - 1);
        if undo {
            self.tx.conn.batch(&format!(
                "ROLLBACK TO SAVEPOINT {0}; RELEASE SAVEPOINT {0}",
                self.name
            ))
        } else {
            self.tx
                .conn
                .batch(&format!("RELEASE SAVEPOINT {}", self.name))
        }
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.finish(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Conn {
        Conn::Sqlite(rusqlite::Connection::open_in_memory().unwrap())
    }

    #[test]
    fn values_bind_and_rows_read_back_typed() {
        let conn = memory();
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

    #[test]
    fn rows_run_in_few_shapes_and_each_is_bound_once() {
        let sizes = |n| row_runs(n).iter().map(|r| r.len()).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(300), [128, 128, 32, 8, 4]);
        assert_eq!(row_runs(300).last().unwrap().end, 300);
        let conn = memory();
        conn.batch("CREATE TABLE t (i INTEGER, s TEXT)").unwrap();
        let rows: Vec<(i64, String)> = (0..300).map(|i| (i, format!("r{i}"))).collect();
        let back = for_rows(
            &conn,
            &rows,
            vals!["x-"],
            &["CAST({} AS BIGINT)", "{}"],
            |list| format!("INSERT INTO t (i, s) SELECT column1, ?1 || column2 FROM (VALUES {list}) RETURNING i"),
            |(i, s), p| {
                p.push(Value::Int(*i));
                p.push(Value::from(s));
            },
            |r| r.int(0),
        )
        .unwrap();
        assert_eq!(back.len(), 300);
        let all = conn
            .rows("SELECT i, s FROM t ORDER BY i", vals![], |r| {
                Ok((r.int(0)?, r.text(1)?))
            })
            .unwrap();
        let want: Vec<(i64, String)> = (0..300).map(|i| (i, format!("x-r{i}"))).collect();
        assert_eq!(all, want);
    }

    #[test]
    fn a_dropped_transaction_or_savepoint_rolls_back() {
        let mut conn = memory();
        conn.batch("CREATE TABLE t (i INTEGER)").unwrap();
        {
            let tx = conn.begin().unwrap();
            tx.exec("INSERT INTO t VALUES (1)", vals![]).unwrap();
        }
        {
            let tx = conn.begin().unwrap();
            tx.exec("INSERT INTO t VALUES (2)", vals![]).unwrap();
            {
                let sp = tx.savepoint().unwrap();
                sp.exec("INSERT INTO t VALUES (3)", vals![]).unwrap();
            }
            let sp = tx.savepoint().unwrap();
            sp.exec("INSERT INTO t VALUES (4)", vals![]).unwrap();
            sp.release().unwrap();
            tx.commit().unwrap();
        }
        let all = conn
            .rows("SELECT i FROM t ORDER BY i", vals![], |r| r.int(0))
            .unwrap();
        assert_eq!(all, vec![2, 4]);
    }
}
