//! Leadership of recurring duties: one engine of a pool at a time holds a
//! duty's row until its expiry, which only the holder renews. On
//! PostgreSQL the expiry is the database's clock (a host whose clock is off
//! neither steals nor keeps the row); on SQLite, whose processes share one
//! host, the caller's `now`.

use chrono::{DateTime, Duration, Utc};

use super::db::{Backend, Exec, vals};
use super::{Store, StoreError, ts};

impl Store {
    /// Takes or renews the leader row `name` for `holder` for `ttl`:
    /// `true` if `holder` holds it now (it held it, or its holder's time
    /// ran out). One statement: two engines never both win.
    pub fn lead(
        &mut self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (now_sql, until_sql) = match self.conn.backend() {
            Backend::Sqlite => ("?3", "?4"),
            Backend::Postgres => (
                "certroll_ts(now())",
                "certroll_ts(now() + ?4::bigint * interval '1 millisecond')",
            ),
        };
        let sql = format!(
            "INSERT INTO leaders (name, holder, expires_at, since)
             VALUES (?1, ?2, {until_sql}, {now_sql})
             ON CONFLICT (name) DO UPDATE
                SET holder = excluded.holder, expires_at = excluded.expires_at,
                    since = CASE WHEN leaders.holder = excluded.holder THEN leaders.since
                                 ELSE excluded.since END
              WHERE leaders.holder = excluded.holder OR leaders.expires_at <= {now_sql}
             RETURNING holder"
        );
        let (now_ts, until_ts) = (ts(now), ts(now + ttl));
        let won = match self.conn.backend() {
            Backend::Sqlite => {
                self.conn
                    .row(&sql, vals![name, holder, &now_ts, &until_ts], |r| r.text(0))?
            }
            // ?3 is unused there: numbered parameters must all be bound,
            // so the statement takes the same four.
            Backend::Postgres => self.conn.row(
                &sql.replace("?4", "?3"),
                vals![name, holder, ttl.num_milliseconds()],
                |r| r.text(0),
            )?,
        };
        Ok(won.as_deref() == Some(holder))
    }

    /// Gives the row up (the engine stops), so another takes it at once.
    pub fn concede(&mut self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.conn.exec(
            "DELETE FROM leaders WHERE name = ?1 AND holder = ?2",
            vals![name, holder],
        )?;
        Ok(())
    }

    /// Who holds the row `name`, and until when.
    pub fn leader(&self, name: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        self.conn
            .row(
                "SELECT holder, expires_at FROM leaders WHERE name = ?1",
                vals![name],
                |r| Ok((r.text(0)?, r.text(1)?)),
            )?
            .map(|(h, t)| Ok((h, super::parse_ts(&t)?)))
            .transpose()
    }
}
