//! Accounts of the HTTP API and console, their API tokens and login
//! sessions. The store keeps hashes only (see [`crate::auth`]); every
//! change writes its audit row in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::db::{Exec, vals};
use super::{OpCtx, Store, StoreError, parse_ts, ts};
use crate::auth::{self, Role};

/// An account, without its password hash.
#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub has_password: bool,
    pub tokens: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An API token, without its secret.
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Who a request acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

/// A live login session.
#[derive(Clone, Debug)]
pub struct Session {
    pub principal: Principal,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

fn role(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn audit(tx: &impl Exec, ctx: &OpCtx, action: &str, detail: &str) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, ?3, ?4)",
        vals![&ts(ctx.now), &ctx.actor, action, detail],
    )?;
    Ok(())
}

fn user_exists(tx: &impl Exec, name: &str) -> Result<bool, StoreError> {
    Ok(tx
        .row("SELECT 1 FROM users WHERE name = ?1", vals![name], |r| {
            r.int(0)
        })?
        .is_some())
}

fn no_account(name: &str) -> StoreError {
    StoreError::Refused(format!("no account '{name}'"))
}

impl Store {
    pub fn user_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .row("SELECT count(*) FROM users", vals![], |r| r.int(0))?
            .unwrap_or(0))
    }

    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        self.conn.rows(
            "SELECT u.name, u.role, u.password_hash IS NOT NULL, u.created_at, u.updated_at,
                    (SELECT count(*) FROM api_tokens t WHERE t.user_name = u.name)
             FROM users u ORDER BY u.name",
            vals![],
            |r| {
                Ok(User {
                    name: r.text(0)?,
                    role: role(&r.text(1)?)?,
                    has_password: r.bool(2)?,
                    created_at: parse_ts(&r.text(3)?)?,
                    updated_at: parse_ts(&r.text(4)?)?,
                    tokens: r.int(5)?,
                })
            },
        )
    }

    /// Adds an account; refused when the name is taken.
    pub fn add_user(
        &mut self,
        name: &str,
        role: Role,
        password_hash: Option<&str>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        auth::check_name(name).map_err(|e| StoreError::Refused(e.to_string()))?;
        let tx = self.conn.begin()?;
        if user_exists(&tx, name)? {
            return Err(StoreError::Refused(format!(
                "account '{name}' exists already"
            )));
        }
        let now = ts(ctx.now);
        tx.exec(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            vals![name, role.as_str(), password_hash, &now],
        )?;
        audit(&tx, ctx, "user-added", &format!("account {name} ({role})"))?;
        tx.commit()
    }

    /// Sets an account's role and, with `password_hash`, its password; a
    /// new password ends the account's sessions.
    pub fn update_user(
        &mut self,
        name: &str,
        role: Option<Role>,
        password_hash: Option<&str>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        let Some(old) = tx.row("SELECT role FROM users WHERE name = ?1", vals![name], |r| {
            r.text(0)
        })?
        else {
            return Err(no_account(name));
        };
        let now = ts(ctx.now);
        let mut what = Vec::new();
        if let Some(role) = role {
            tx.exec(
                "UPDATE users SET role = ?1, updated_at = ?2 WHERE name = ?3",
                vals![role.as_str(), &now, name],
            )?;
            what.push(format!("role {old} -> {role}"));
        }
        if let Some(hash) = password_hash {
            tx.exec(
                "UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE name = ?3",
                vals![hash, &now, name],
            )?;
            tx.exec("DELETE FROM sessions WHERE user_name = ?1", vals![name])?;
            what.push("new password, sessions ended".to_string());
        }
        audit(
            &tx,
            ctx,
            "user-changed",
            &format!("account {name}: {}", what.join(", ")),
        )?;
        tx.commit()
    }

    /// Removes an account with its tokens and sessions.
    pub fn remove_user(&mut self, name: &str, ctx: &OpCtx) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        tx.exec("DELETE FROM api_tokens WHERE user_name = ?1", vals![name])?;
        tx.exec("DELETE FROM sessions WHERE user_name = ?1", vals![name])?;
        if tx.exec("DELETE FROM users WHERE name = ?1", vals![name])? == 0 {
            return Err(no_account(name));
        }
        audit(
            &tx,
            ctx,
            "user-removed",
            &format!("account {name}, its tokens and sessions"),
        )?;
        tx.commit()
    }

    /// The role and password hash of an account.
    pub fn user_password(&self, name: &str) -> Result<Option<(Role, Option<String>)>, StoreError> {
        self.conn.row(
            "SELECT role, password_hash FROM users WHERE name = ?1",
            vals![name],
            |r| Ok((role(&r.text(0)?)?, r.opt_text(1)?)),
        )
    }

    /// Records a new API token of `user` (its hash).
    pub fn add_token(
        &mut self,
        user: &str,
        token: &auth::NewToken,
        label: &str,
        expires_at: Option<DateTime<Utc>>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        if !user_exists(&tx, user)? {
            return Err(no_account(user));
        }
        tx.exec(
            "INSERT INTO api_tokens (id, user_name, token_hash, label, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            vals![
                &token.id,
                user,
                &auth::secret_hash(&token.token),
                label,
                &ts(ctx.now),
                expires_at.map(ts).as_deref()
            ],
        )?;
        audit(
            &tx,
            ctx,
            "token-added",
            &format!("API token {} of account {user} ({label})", token.id),
        )?;
        tx.commit()
    }

    pub fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        self.conn.rows(
            "SELECT id, user_name, label, created_at, expires_at FROM api_tokens
             WHERE CAST(?1 AS TEXT) IS NULL OR user_name = ?1 ORDER BY user_name, created_at, id",
            vals![user],
            |r| {
                Ok(TokenInfo {
                    id: r.text(0)?,
                    user: r.text(1)?,
                    label: r.text(2)?,
                    created_at: parse_ts(&r.text(3)?)?,
                    expires_at: r.opt_text(4)?.as_deref().map(parse_ts).transpose()?,
                })
            },
        )
    }

    pub fn revoke_token(&mut self, id: &str, ctx: &OpCtx) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        let Some(user) = tx.row(
            "DELETE FROM api_tokens WHERE id = ?1 RETURNING user_name",
            vals![id],
            |r| r.text(0),
        )?
        else {
            return Err(StoreError::Refused(format!("no API token '{id}'")));
        };
        audit(
            &tx,
            ctx,
            "token-revoked",
            &format!("API token {id} of account {user}"),
        )?;
        tx.commit()
    }

    /// Who presents `token` (`certroll_ID_SECRET`) at `now`: its account,
    /// if the token is known, unexpired, and its hash matches.
    pub fn token_principal(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Principal>, StoreError> {
        let Some(id) = auth::token_id(token) else {
            return Ok(None);
        };
        let row = self.conn.row(
            "SELECT t.token_hash, t.expires_at, u.name, u.role
             FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.id = ?1",
            vals![id],
            |r| Ok((r.text(0)?, r.opt_text(1)?, r.text(2)?, r.text(3)?)),
        )?;
        let Some((hash, expires, user, r)) = row else {
            return Ok(None);
        };
        if !auth::constant_time_eq(hash.as_bytes(), auth::secret_hash(token).as_bytes()) {
            return Ok(None);
        }
        if let Some(e) = expires
            && parse_ts(&e)? <= now
        {
            return Ok(None);
        }
        Ok(Some(Principal {
            user,
            role: role(&r)?,
        }))
    }

    /// Opens a session for `user` (logged in at `ctx.now`), keeping the
    /// hash of its id; also drops the sessions that have ended.
    pub fn open_session(
        &mut self,
        user: &str,
        id: &str,
        csrf_token: &str,
        expires_at: DateTime<Utc>,
        ctx: &OpCtx,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        let now = ts(ctx.now);
        tx.exec("DELETE FROM sessions WHERE expires_at <= ?1", vals![&now])?;
        tx.exec(
            "INSERT INTO sessions (id_hash, user_name, csrf_token, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            vals![
                &auth::secret_hash(id),
                user,
                csrf_token,
                &now,
                &ts(expires_at)
            ],
        )?;
        audit(&tx, ctx, "login", &format!("account {user} logged in"))?;
        tx.commit()
    }

    /// The live session with this id at `now`.
    pub fn session(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        let row = self.conn.row(
            "SELECT u.name, u.role, s.csrf_token, s.expires_at
             FROM sessions s JOIN users u ON u.name = s.user_name
             WHERE s.id_hash = ?1 AND s.expires_at > ?2",
            vals![&auth::secret_hash(id), &ts(now)],
            |r| Ok((r.text(0)?, r.text(1)?, r.text(2)?, r.text(3)?)),
        )?;
        row.map(|(user, r, csrf_token, expires)| {
            Ok(Session {
                principal: Principal {
                    user,
                    role: role(&r)?,
                },
                csrf_token,
                expires_at: parse_ts(&expires)?,
            })
        })
        .transpose()
    }

    /// Ends a session (logout). Ending one that has ended already is not
    /// an error.
    pub fn close_session(&mut self, id: &str, ctx: &OpCtx) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        let user = tx.row(
            "DELETE FROM sessions WHERE id_hash = ?1 RETURNING user_name",
            vals![&auth::secret_hash(id)],
            |r| r.text(0),
        )?;
        if let Some(user) = user {
            audit(&tx, ctx, "logout", &format!("account {user} logged out"))?;
        }
        tx.commit()
    }
}
