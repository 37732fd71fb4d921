//! ACME state: an account per directory URL (its credentials sealed under
//! the master key, like a private key, and never written in clear), and
//! the http-01 answers the CA fetches from `serve`'s listener (any engine
//! of a pool answers: they are in the shared store).

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::db::{Exec, vals};
use super::{OpCtx, Store, StoreError, ts};

fn aad(directory_url: &str) -> Vec<u8> {
    format!("acme-account:{directory_url}").into_bytes()
}

impl Store {
    /// The account credentials (the ACME client's JSON) kept for
    /// `directory_url`, unsealed.
    pub fn acme_account(
        &mut self,
        directory_url: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let blob = self.conn.row(
            "SELECT credentials_enc FROM acme_accounts WHERE directory_url = ?1",
            vals![directory_url],
            |r| r.blob(0),
        )?;
        let Some(blob) = blob else {
            return Ok(None);
        };
        Ok(Some(
            self.master_key(false)?.open(&blob, &aad(directory_url))?,
        ))
    }

    /// Keeps a new account's credentials, sealed, with an audit row. An
    /// account kept meanwhile by another process wins (returns false).
    pub fn save_acme_account(
        &mut self,
        directory_url: &str,
        credentials: &[u8],
        ctx: &OpCtx,
    ) -> Result<bool, StoreError> {
        let sealed = self
            .master_key(true)?
            .seal(credentials, &aad(directory_url))?;
        let tx = self.conn.begin()?;
        let n = tx.exec(
            "INSERT INTO acme_accounts (directory_url, credentials_enc, created_at)
             VALUES (?1, ?2, ?3) ON CONFLICT (directory_url) DO NOTHING",
            vals![directory_url, &sealed[..], &ts(ctx.now)],
        )?;
        if n == 1 {
            tx.exec(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES (?1, ?2, 'acme-account', ?3)",
                vals![&ts(ctx.now), &ctx.actor, &format!("account created at {directory_url}")],
            )?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Publishes an http-01 answer until `expires_at`.
    pub fn put_acme_challenge(
        &mut self,
        token: &str,
        key_authorization: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        tx.exec(
            "INSERT INTO acme_challenges (token, key_authorization, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization,
                                               expires_at = excluded.expires_at",
            vals![token, key_authorization, &ts(expires_at)],
        )?;
        // Answers of orders that never finished (a crash) go with them.
        tx.exec(
            "DELETE FROM acme_challenges WHERE expires_at < ?1",
            vals![&ts(now)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The http-01 answer for `token`, if one is published and current.
    pub fn acme_challenge(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.conn.row(
            "SELECT key_authorization FROM acme_challenges WHERE token = ?1 AND expires_at > ?2",
            vals![token, &ts(now)],
            |r| r.text(0),
        )
    }

    pub fn remove_acme_challenge(&mut self, token: &str) -> Result<(), StoreError> {
        let tx = self.conn.begin()?;
        tx.exec("DELETE FROM acme_challenges WHERE token = ?1", vals![token])?;
        tx.commit()?;
        Ok(())
    }
}
