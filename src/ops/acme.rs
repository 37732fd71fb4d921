//! Certificates from an ACME CA (RFC 8555), with `instant-acme`: the
//! account is created once per directory and kept sealed in the store;
//! each order is answered by http-01 (serve's listener, through the store,
//! or files in a webroot) or dns-01 (a hook, certbot's convention), and
//! finalised with certroll's own CSR, so the key never leaves certroll.
//!
//! The client is asynchronous: it runs on a runtime of its own, built and
//! dropped here, between the store's (synchronous) steps. Callers are OS
//! threads (the renewal duty, the command line), never a tokio worker.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use crate::cert::CertInfo;
use crate::cert::key::PrivateKey;
use crate::cert::request::RequestSpec;
use crate::config::AcmeConfig;
use crate::store::{OpCtx, Store};

/// A certificate an ACME CA issued, with the chain it sent.
#[derive(Debug)]
pub struct Issued {
    pub cert: CertInfo,
    pub chain: Vec<CertInfo>,
}

/// Why an order failed, in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AcmeError(pub String);

fn err(what: &str) -> impl Fn(instant_acme::Error) -> AcmeError + '_ {
    move |e| AcmeError(format!("{what}: {}", one_line(&e.to_string())))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A challenge to answer: where, and with what.
struct Challenge {
    domain: String,
    token: String,
    key_authorization: String,
    dns_value: String,
}

fn runtime() -> Result<tokio::runtime::Runtime, AcmeError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AcmeError(format!("cannot start the ACME client: {e}")))
}

fn builder(cfg: &AcmeConfig) -> Result<instant_acme::AccountBuilder, AcmeError> {
    match &cfg.ca_file {
        Some(ca) => Account::builder_with_root(ca).map_err(|e| {
            AcmeError(format!(
                "[acme] ca_file {}: {}",
                ca.display(),
                one_line(&e.to_string())
            ))
        }),
        None => Account::builder().map_err(err("the ACME client")),
    }
}

/// The account for the configured directory: the stored one, or a new one
/// (stored sealed before it is used).
fn account(
    rt: &tokio::runtime::Runtime,
    store: &mut Store,
    cfg: &AcmeConfig,
    url: &str,
    ctx: &OpCtx,
) -> Result<Account, AcmeError> {
    let stored = store
        .acme_account(url)
        .map_err(|e| AcmeError(format!("the ACME account: {e}")))?;
    if let Some(json) = stored {
        let creds: AccountCredentials = serde_json::from_slice(&json)
            .map_err(|e| AcmeError(format!("the stored ACME account is unreadable: {e}")))?;
        return rt
            .block_on(builder(cfg)?.from_credentials(creds))
            .map_err(err("the ACME account"));
    }
    let eab = match (&cfg.eab_kid, &cfg.eab_hmac_key_file) {
        (Some(kid), Some(file)) => {
            let text = crate::input::secret(Some(file), None, "EAB HMAC key")
                .map_err(|e| AcmeError(format!("[acme] eab_hmac_key_file: {e}")))?
                .unwrap_or_default();
            use base64ct::Encoding;
            let key = base64ct::Base64UrlUnpadded::decode_vec(text.trim().trim_end_matches('='))
                .map_err(|_| {
                    AcmeError(format!(
                        "[acme] eab_hmac_key_file {}: not a base64url key",
                        file.display()
                    ))
                })?;
            Some(ExternalAccountKey::new(kid.clone(), &key))
        }
        _ => None,
    };
    let contact: Vec<&str> = cfg.contact.iter().map(String::as_str).collect();
    let (account, creds) = rt
        .block_on(builder(cfg)?.create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            url.to_string(),
            eab.as_ref(),
        ))
        .map_err(err("creating the ACME account"))?;
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(&creds).map_err(|e| AcmeError(format!("the ACME account: {e}")))?,
    );
    store
        .save_acme_account(url, &json, ctx)
        .map_err(|e| AcmeError(format!("keeping the ACME account: {e}")))?;
    tracing::info!(
        directory = url,
        account = account.id(),
        "ACME account created"
    );
    Ok(account)
}

/// Orders a certificate for `spec`'s names with `key`'s CSR.
pub fn order(
    store: &mut Store,
    cfg: &AcmeConfig,
    spec: &RequestSpec,
    key: &PrivateKey,
    ctx: &OpCtx,
) -> Result<Issued, AcmeError> {
    let url = cfg
        .directory_url
        .as_deref()
        .ok_or_else(|| AcmeError("[acme] directory_url is not configured".into()))?;
    let csr_pem = crate::cert::request::csr_pem(spec, key).map_err(|e| AcmeError(e.to_string()))?;
    let csr_der = crate::cert::pem::parse_blocks(&csr_pem)
        .ok()
        .and_then(|mut b| (!b.is_empty()).then(|| b.remove(0).der))
        .ok_or_else(|| AcmeError("the CSR could not be encoded".into()))?;
    let kind = match cfg.challenge.as_str() {
        "dns-01" => ChallengeType::Dns01,
        _ => ChallengeType::Http01,
    };
    let rt = runtime()?;
    let account = account(&rt, store, cfg, url, ctx)?;
    let identifiers: Vec<Identifier> = spec
        .sans
        .iter()
        .map(|n| Identifier::Dns(n.clone()))
        .collect();
    let mut order = rt
        .block_on(account.new_order(&NewOrder::new(&identifiers)))
        .map_err(err("creating the order"))?;
    // The challenges to answer.
    let challenges: Vec<Challenge> = rt.block_on(async {
        let mut out = Vec::new();
        let mut authzs = order.authorizations();
        while let Some(a) = authzs.next().await {
            let mut a = a.map_err(err("reading the order's authorizations"))?;
            if a.status == AuthorizationStatus::Valid {
                continue;
            }
            if a.status != AuthorizationStatus::Pending {
                return Err(AcmeError(format!(
                    "authorization for {} is {:?}",
                    a.identifier(),
                    a.status
                )));
            }
            let domain = a.identifier().to_string();
            let ch = a.challenge(kind.clone()).ok_or_else(|| {
                AcmeError(format!(
                    "the CA offers no {} challenge for {domain}",
                    cfg.challenge
                ))
            })?;
            let ka = ch.key_authorization();
            out.push(Challenge {
                domain,
                token: ch.token.clone(),
                key_authorization: ka.as_str().to_string(),
                dns_value: ka.dns_value(),
            });
        }
        Ok::<_, AcmeError>(out)
    })?;
    let deadline = ctx.now + chrono::Duration::seconds(cfg.timeout_seconds.into());
    let result = publish(store, cfg, &challenges, ctx.now, deadline).and_then(|()| {
        rt.block_on(async {
            let mut authzs = order.authorizations();
            while let Some(a) = authzs.next().await {
                let mut a = a.map_err(err("reading the order's authorizations"))?;
                if a.status != AuthorizationStatus::Pending {
                    continue;
                }
                if let Some(mut ch) = a.challenge(kind.clone()) {
                    ch.set_ready()
                        .await
                        .map_err(err("answering the challenge"))?;
                }
            }
            let retry = RetryPolicy::new()
                .initial_delay(StdDuration::from_millis(250))
                .timeout(StdDuration::from_secs(cfg.timeout_seconds.into()));
            let status = order
                .poll_ready(&retry)
                .await
                .map_err(err("validating the order"))?;
            if status != OrderStatus::Ready {
                let why = order
                    .state()
                    .error
                    .as_ref()
                    .map(|p| one_line(&p.to_string()))
                    .unwrap_or_else(|| format!("order {status:?}"));
                return Err(AcmeError(format!(
                    "the CA did not validate the names: {why}"
                )));
            }
            order
                .finalize_csr(&csr_der)
                .await
                .map_err(err("finalizing the order"))?;
            order
                .poll_certificate(&retry)
                .await
                .map_err(err("fetching the certificate"))
        })
    });
    unpublish(store, cfg, &challenges);
    let chain_pem = result?;
    let mut certs = crate::cert::pem::parse_blocks(&chain_pem)
        .map_err(|e| AcmeError(format!("the CA's certificate: {e}")))?
        .into_iter()
        .map(|b| {
            CertInfo::from_der(&b.der).map_err(|e| AcmeError(format!("the CA's certificate: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(AcmeError("the CA sent no certificate".into()));
    }
    let cert = certs.remove(0);
    if key.public_fingerprint().is_none()
        || key.public_fingerprint() != cert.public_key.fingerprint()
    {
        return Err(AcmeError(
            "the CA's certificate is not for the key certroll made".into(),
        ));
    }
    Ok(Issued { cert, chain: certs })
}

fn run_hook(cmd: &str, c: &Challenge) -> Result<(), AcmeError> {
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("CERTBOT_DOMAIN", c.domain.trim_start_matches("*."))
        .env("CERTBOT_VALIDATION", &c.dns_value)
        .env("CERTBOT_TOKEN", &c.token)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| AcmeError(format!("dns hook '{cmd}': {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(AcmeError(format!(
            "dns hook '{cmd}' for {} failed ({}): {}",
            c.domain,
            out.status,
            crate::text::escape(stderr.trim())
        )));
    }
    Ok(())
}

/// Makes each answer visible to the CA.
fn publish(
    store: &mut Store,
    cfg: &AcmeConfig,
    challenges: &[Challenge],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(), AcmeError> {
    for c in challenges {
        match (cfg.challenge.as_str(), &cfg.webroot, &cfg.dns_hook) {
            ("dns-01", _, Some(hook)) => run_hook(hook, c)?,
            (_, Some(root), _) => {
                let dir = root.join(".well-known/acme-challenge");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| AcmeError(format!("webroot {}: {e}", dir.display())))?;
                let own = crate::deploy::files::Ownership {
                    mode: 0o644,
                    uid: None,
                    gid: None,
                };
                crate::deploy::files::write_atomic(
                    &dir.join(&c.token),
                    c.key_authorization.as_bytes(),
                    own,
                )
                .map_err(|e| AcmeError(format!("webroot: {e}")))?;
            }
            _ => store
                .put_acme_challenge(&c.token, &c.key_authorization, now, until)
                .map_err(|e| AcmeError(format!("publishing the http-01 answer: {e}")))?,
        }
    }
    Ok(())
}

/// Takes the answers down again (failures only logged).
fn unpublish(store: &mut Store, cfg: &AcmeConfig, challenges: &[Challenge]) {
    for c in challenges {
        let r = match (cfg.challenge.as_str(), &cfg.webroot, &cfg.dns_cleanup_hook) {
            ("dns-01", _, Some(hook)) => run_hook(hook, c),
            ("dns-01", _, None) => Ok(()),
            (_, Some(root), _) => {
                let _ =
                    std::fs::remove_file(root.join(".well-known/acme-challenge").join(&c.token));
                Ok(())
            }
            _ => store
                .remove_acme_challenge(&c.token)
                .map_err(|e| AcmeError(e.to_string())),
        };
        if let Err(e) = r {
            tracing::warn!(domain = %c.domain, error = %e, "could not take an ACME answer down");
        }
    }
}
