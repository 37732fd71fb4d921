//! Certificate rows: import (idempotent, adding a missing key or chain),
//! lookup by thumbprint or unique prefix, listing, and key unsealing.

use super::db::{Exec, Row, Value, vals};
use chrono::{DateTime, Utc};

use super::{LookupError, OpCtx, Store, StoreError, audit, parse_ts, ts};
use crate::cert::key::PrivateKey;
use crate::cert::x509::{CertInfo, split_der_certs};

/// A certificate to import.
pub struct NewCert<'a> {
    pub cert: &'a CertInfo,
    pub chain: &'a [CertInfo],
    pub key: Option<&'a PrivateKey>,
    pub friendly_name: Option<&'a str>,
    pub source_file: Option<&'a str>,
    /// The waiting certificate request this certificate answers: it is
    /// completed (and its copy of the key wiped) in the same transaction.
    pub request: Option<i64>,
}

/// What an import did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ImportOutcome {
    /// The certificate was not in the store before.
    pub added: bool,
    /// It was, without a private key, and now has one.
    pub key_added: bool,
    /// It was, without a chain, and now has one.
    pub chain_added: bool,
}

impl ImportOutcome {
    pub fn changed(&self) -> bool {
        self.added || self.key_added || self.chain_added
    }
}

/// A certificate as the store holds it.
#[derive(Clone, Debug)]
pub struct StoredCert {
    pub id: i64,
    pub info: CertInfo,
    pub chain: Vec<CertInfo>,
    pub has_private_key: bool,
    pub friendly_name: Option<String>,
    pub source_file: Option<String>,
    pub imported_at: DateTime<Utc>,
}

pub(super) const CERT_COLUMNS: &str =
    "id, der, chain, key_enc IS NOT NULL, friendly_name, source_file, imported_at";

pub(super) fn cert_from_row(row: &Row<'_>) -> Result<StoredCert, StoreError> {
    let id = row.int(0)?;
    let corrupt =
        |e: crate::cert::x509::CertError| StoreError::Corrupt(format!("certificate row {id}: {e}"));
    Ok(StoredCert {
        id,
        info: CertInfo::from_der(&row.blob(1)?).map_err(corrupt)?,
        chain: split_der_certs(&row.blob(2)?).map_err(corrupt)?,
        has_private_key: row.bool(3)?,
        friendly_name: row.opt_text(4)?,
        source_file: row.opt_text(5)?,
        imported_at: parse_ts(&row.text(6)?)?,
    })
}

pub(super) fn load_cert_by_id(conn: &impl Exec, id: i64) -> Result<StoredCert, StoreError> {
    conn.row(
        &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE id = ?1"),
        vals![id],
        cert_from_row,
    )?
    .ok_or_else(|| StoreError::Corrupt(format!("no certificate row {id}")))
}

/// The certificates with these ids, many to a statement.
pub(super) fn load_certs_by_ids(
    conn: &impl Exec,
    ids: &[i64],
) -> Result<Vec<StoredCert>, StoreError> {
    super::db::for_rows(
        conn,
        ids,
        &[],
        &["CAST({} AS BIGINT)"],
        |list| format!("SELECT {CERT_COLUMNS} FROM certificates WHERE id IN (VALUES {list})"),
        |id, p| p.push(Value::Int(*id)),
        cert_from_row,
    )
}

pub(super) fn cert_id(conn: &impl Exec, thumbprint: &str) -> Result<Option<i64>, StoreError> {
    conn.row(
        "SELECT id FROM certificates WHERE thumbprint = ?1",
        vals![thumbprint],
        |r| r.int(0),
    )
}

/// Normalises what an operator pastes: Windows shows thumbprints with
/// spaces (and sometimes an invisible left-to-right mark); OpenSSL with
/// colons.
pub fn normalise_thumbprint(input: &str) -> Result<String, LookupError> {
    let cleaned: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':' && *c != '\u{200e}')
        .collect::<String>()
        .to_ascii_uppercase();
    if cleaned.len() < 8 || cleaned.len() > 40 || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(LookupError::Invalid(input.trim().to_string()));
    }
    Ok(cleaned)
}

/// The sealed form of a key, bound to its certificate's thumbprint.
pub(super) struct SealedKey(pub(super) Vec<u8>);

/// Inserts the certificate, or completes the existing row (key, chain),
/// and closes the request it answers. Runs inside the caller's
/// transaction; writes the audit rows.
pub(super) fn upsert(
    tx: &impl Exec,
    new: &NewCert<'_>,
    sealed: Option<&SealedKey>,
    ctx: &OpCtx,
) -> Result<(i64, ImportOutcome), StoreError> {
    let (id, outcome) = upsert_cert(tx, new, sealed, ctx)?;
    if let Some(request) = new.request {
        super::requests::complete(tx, request, id, &new.cert.thumbprint, ctx)?;
    }
    Ok((id, outcome))
}

fn upsert_cert(
    tx: &impl Exec,
    new: &NewCert<'_>,
    sealed: Option<&SealedKey>,
    ctx: &OpCtx,
) -> Result<(i64, ImportOutcome), StoreError> {
    let c = new.cert;
    let chain: Vec<u8> = new
        .chain
        .iter()
        .flat_map(|x| x.der.iter().copied())
        .collect();
    let existing = tx.row(
        "SELECT id, key_enc IS NOT NULL, length(chain) FROM certificates WHERE thumbprint = ?1",
        vals![&c.thumbprint],
        |r| Ok((r.int(0)?, r.bool(1)?, r.int(2)?)),
    )?;
    match existing {
        None => {
            tx.exec(
                    "INSERT INTO certificates (thumbprint, sha256, der, chain, key_enc, subject, issuer,
                        sans, serial, not_before, not_after, key_algorithm, key_bits,
                        signature_algorithm, friendly_name, source_file, imported_at, public_key)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
",
                    vals![
                        &c.thumbprint,
                        &c.sha256,
                        &c.der[..],
                        &chain[..],
                        sealed.map(|s| &s.0[..]),
                        &c.subject,
                        &c.issuer,
                        &serde_json::to_string(&c.sans).expect("strings serialise"),
                        &c.serial,
                        &ts(c.not_before),
                        &ts(c.not_after),
                        &c.key_algorithm.to_string(),
                        c.key_bits,
                        &c.signature_algorithm,
                        new.friendly_name,
                        new.source_file,
                        &ts(ctx.now),
                        c.public_key.fingerprint().as_ref(),
                    ],
                )?;
            // (Not RETURNING: SQLite then plans scans of the tables that
            // reference certificates.)
            let id = cert_id(tx, &c.thumbprint)?.ok_or_else(|| {
                StoreError::Corrupt("the certificate just inserted is gone".into())
            })?;
            let detail = format!(
                "{}{}",
                new.source_file
                    .map(|f| format!("from {f}"))
                    .unwrap_or_default(),
                if sealed.is_some() {
                    ", with private key"
                } else {
                    ", without private key"
                }
            );
            audit::record_cert(
                tx,
                ctx,
                "import",
                &c.thumbprint,
                detail.trim_start_matches(", "),
            )?;
            Ok((
                id,
                ImportOutcome {
                    added: true,
                    ..Default::default()
                },
            ))
        }
        Some((id, has_key, chain_len)) => {
            let mut outcome = ImportOutcome::default();
            if let (false, Some(s)) = (has_key, sealed) {
                tx.exec(
                    "UPDATE certificates SET key_enc = ?1 WHERE id = ?2",
                    vals![&s.0[..], id],
                )?;
                audit::record_cert(tx, ctx, "key-added", &c.thumbprint, "private key added")?;
                outcome.key_added = true;
            }
            if chain_len == 0 && !chain.is_empty() {
                tx.exec(
                    "UPDATE certificates SET chain = ?1 WHERE id = ?2",
                    vals![&chain[..], id],
                )?;
                audit::record_cert(tx, ctx, "chain-added", &c.thumbprint, "issuer chain added")?;
                outcome.chain_added = true;
            }
            Ok((id, outcome))
        }
    }
}

impl Store {
    /// Finds a certificate by its thumbprint or a unique prefix of 8+ hex
    /// digits.
    pub fn find_cert(&self, query: &str) -> Result<StoredCert, StoreError> {
        let t = normalise_thumbprint(query)?;
        if t.len() == 40 {
            return match cert_id(&self.conn, &t)? {
                Some(id) => load_cert_by_id(&self.conn, id),
                None => Err(LookupError::NotFound(t).into()),
            };
        }
        // A range of the thumbprint index: every thumbprint is upper-case
        // hex, so those with the prefix sort before the prefix and 'G'.
        let hits = self.conn.rows(
            "SELECT id, thumbprint FROM certificates WHERE thumbprint >= ?1 AND thumbprint < ?2
             ORDER BY thumbprint LIMIT 6",
            vals![&t, &format!("{t}G")],
            |r| Ok((r.int(0)?, r.text(1)?)),
        )?;
        match hits.as_slice() {
            [] => Err(LookupError::NotFound(t).into()),
            [(id, _)] => load_cert_by_id(&self.conn, *id),
            many => Err(LookupError::Ambiguous {
                prefix: t,
                candidates: many
                    .iter()
                    .take(5)
                    .map(|(_, th)| th.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into()),
        }
    }

    /// Whether the store holds this exact certificate, and with a key.
    pub fn lookup_exact(&self, thumbprint: &str) -> Result<Option<StoredCert>, StoreError> {
        match cert_id(&self.conn, thumbprint)? {
            Some(id) => Ok(Some(load_cert_by_id(&self.conn, id)?)),
            None => Ok(None),
        }
    }

    /// One page of the stored certificates, soonest expiry first, and how
    /// many there are in all.
    pub fn certs_page(
        &self,
        limit: usize,
        offset: usize,
    ) -> Result<(i64, Vec<StoredCert>), StoreError> {
        let total = self
            .conn
            .row("SELECT count(*) FROM certificates", vals![], |r| r.int(0))?
            .unwrap_or(0);
        let rows = self.conn.rows(
            &format!(
                "SELECT {CERT_COLUMNS} FROM certificates
                 ORDER BY not_after, thumbprint LIMIT {limit} OFFSET {offset}"
            ),
            vals![],
            cert_from_row,
        )?;
        Ok((total, rows))
    }

    /// Every stored certificate, soonest expiry first; with `expiring_before`,
    /// only those whose `not_after` is at or before it.
    pub fn certs(
        &self,
        expiring_before: Option<DateTime<Utc>>,
    ) -> Result<Vec<StoredCert>, StoreError> {
        self.conn.rows(
            &format!(
                "SELECT {CERT_COLUMNS} FROM certificates
                 WHERE CAST(?1 AS TEXT) IS NULL OR not_after <= ?1
                 ORDER BY not_after, thumbprint"
            ),
            vals![expiring_before.map(ts).as_ref()],
            cert_from_row,
        )
    }

    /// Certificates the store holds that may have issued `cert`: stored
    /// certificates whose subject is its issuer, and the first link of
    /// the chains of certificates with the same issuer. Each once; the
    /// caller checks names, key identifiers and signatures.
    pub fn issuer_candidates(&self, cert: &CertInfo) -> Result<Vec<CertInfo>, StoreError> {
        let mut out: Vec<CertInfo> = Vec::new();
        let ders = self.conn.rows(
            "SELECT der FROM certificates WHERE subject = ?1 LIMIT 16",
            vals![&cert.issuer],
            |r| r.blob(0),
        )?;
        out.extend(ders.iter().filter_map(|der| CertInfo::from_der(der).ok()));
        let chains = self.conn.rows(
            "SELECT chain FROM certificates WHERE issuer = ?1 AND length(chain) > 0
             ORDER BY id DESC LIMIT 4",
            vals![&cert.issuer],
            |r| r.blob(0),
        )?;
        for chain in chains {
            if let Ok(chain) = split_der_certs(&chain) {
                out.extend(chain);
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|c| seen.insert(c.thumbprint.clone()));
        Ok(out)
    }

    /// `chain` (the issuers a file brought, nearest first) completed with
    /// the issuers the store holds, up to a self-issued root.
    pub fn complete_chain(
        &self,
        leaf: &CertInfo,
        chain: &[CertInfo],
    ) -> Result<Vec<CertInfo>, StoreError> {
        let mut out = chain.to_vec();
        for _ in 0..8 {
            let last = out.last().unwrap_or(leaf);
            if last.is_self_issued() {
                break;
            }
            let known = self.issuer_candidates(last)?;
            let longer = crate::cert::chain::complete(leaf, &out, &known);
            if longer.len() == out.len() {
                break;
            }
            out = longer;
        }
        Ok(out)
    }

    /// The newest stored certificate that has a private key for this public
    /// key fingerprint (a certificate renewed with the same key takes it).
    pub fn key_holder_for(&self, public_key: &str) -> Result<Option<String>, StoreError> {
        self.conn.row(
            "SELECT thumbprint FROM certificates
             WHERE public_key = ?1 AND key_enc IS NOT NULL ORDER BY id DESC LIMIT 1",
            vals![public_key],
            |r| r.text(0),
        )
    }

    /// Seals a key for storage (creating the master key on first use).
    pub(super) fn seal_key(
        &mut self,
        key: &PrivateKey,
        thumbprint: &str,
    ) -> Result<SealedKey, StoreError> {
        let master = self.master_key(true)?;
        Ok(SealedKey(
            master.seal(key.pkcs8_der(), thumbprint.as_bytes())?,
        ))
    }

    /// Decrypts the private key of a stored certificate.
    pub fn private_key(&mut self, thumbprint: &str) -> Result<Option<PrivateKey>, StoreError> {
        let blob = self.conn.row(
            "SELECT key_enc FROM certificates WHERE thumbprint = ?1",
            vals![thumbprint],
            |r| r.opt_blob(0),
        )?;
        let Some(Some(blob)) = blob else {
            return Ok(None);
        };
        let der = self.master_key(false)?.open(&blob, thumbprint.as_bytes())?;
        PrivateKey::from_pkcs8_der(&der)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("sealed key of {thumbprint}: {e}")))
    }

    /// Imports a certificate on its own (no assignment), in one transaction
    /// with its audit row.
    pub fn import(&mut self, new: &NewCert<'_>, ctx: &OpCtx) -> Result<ImportOutcome, StoreError> {
        let report = self.assign(Some(new), &new.cert.thumbprint, &[], ctx)?;
        Ok(report.import.expect("an import was asked for"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_are_normalised() {
        assert_eq!(
            normalise_thumbprint("10 fd 77 a6 d9 c0").unwrap(),
            "10FD77A6D9C0"
        );
        assert_eq!(
            normalise_thumbprint("\u{200e}ab:cd:ef:01").unwrap(),
            "ABCDEF01"
        );
        assert!(normalise_thumbprint("abc").is_err());
        assert!(normalise_thumbprint("xyz12345").is_err());
        assert!(normalise_thumbprint(&"A".repeat(41)).is_err());
    }
}
