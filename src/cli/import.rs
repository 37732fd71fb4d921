//! `certroll import`: read a PFX/PKCS#12, PEM or DER file (and `--key`),
//! store the certificate with its chain and sealed private key, and with
//! `--type` assign it now (the seeds' `Import-CsCertificate`).

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::json;
use zeroize::Zeroizing;

use super::output::{self, describe_assign, short};
use super::password::{self, PasswordArgs};
use super::set::{enforce, findings, lead_time_findings, print_schedule};
use super::{App, SlotArgs, UsageError, WhenArgs, read_input};
use crate::cert::CertInfo;
use crate::cert::bundle::{self, Entry, ImportError, Input, Parsed};
use crate::cert::key::PrivateKey;
use crate::cert::policy::{self, Severity};
use crate::store::{CertRequest, NewCert, Store};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to import: PFX/PKCS#12, PEM (certificate, chain and key in one file), DER, or a CA's
    /// response to a certroll request (PEM, DER or PKCS#7 .p7b chain): it joins the waiting key
    #[arg(long, value_name = "FILE")]
    pub path: PathBuf,

    /// The private key in its own file (PEM or DER: PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    #[command(flatten)]
    pub password: PasswordArgs,

    #[command(flatten)]
    pub slot: SlotArgs,

    #[command(flatten)]
    pub when: WhenArgs,

    /// In a file with several certificates, the one to import: its friendly name or thumbprint prefix
    #[arg(long, value_name = "NAME|THUMBPRINT")]
    pub entry: Option<String>,

    /// Go ahead despite warnings (policy, a chain without its issuer; never despite errors); with --roll,
    /// also replace a roll already pending in the slot
    #[arg(long)]
    pub force: bool,

    /// Print what would change and change nothing
    #[arg(long)]
    pub what_if: bool,

    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

/// Parses the file, asking for a password on the terminal when the file
/// needs one and none was given.
fn parse_file(args: &ImportArgs, data: &[u8], key: Option<&[u8]>) -> Result<Parsed> {
    let name = args.path.display().to_string();
    let given = args.password.read()?;
    let attempt = |pw: Option<&str>| {
        bundle::parse(&Input {
            data,
            key_file: key,
            password: pw,
        })
    };
    let fail = |e: ImportError| {
        let file = match (&e, &args.key) {
            (ImportError::KeyFile(_), Some(k)) => k.display().to_string(),
            _ => name.clone(),
        };
        anyhow!("{file}: {e}")
    };
    match attempt(given.as_deref().map(|s| s.as_str())) {
        Err(ImportError::PasswordRequired)
        | Err(ImportError::Key(crate::cert::key::KeyError::PasswordRequired))
            if given.is_none() =>
        {
            let pw: Zeroizing<String> = match password::prompt(&name)? {
                Some(pw) => pw,
                None => return Err(fail(ImportError::PasswordRequired)),
            };
            attempt(Some(&pw)).map_err(fail)
        }
        other => other.map_err(fail),
    }
}

pub fn run(app: &App, args: ImportArgs) -> Result<()> {
    let name = args.path.display().to_string();
    // Check the cheap things (types, scope) before reading anything.
    let types = match &args.slot.types {
        Some(t) => app.parse_types(t)?,
        None if args.slot.scope != "global" => {
            return Err(UsageError("--scope needs --type".into()).into());
        }
        None => Vec::new(),
    };
    let slots = app.slots(&types, &args.slot.scope)?;
    app.check_slots(&slots, args.force)?;
    let at = args.when.instant(app)?;
    if at.is_some() && types.is_empty() {
        return Err(UsageError("--effective-date and --roll need --type".into()).into());
    }

    let data = read_input(&args.path)?;
    let key_data = args.key.as_deref().map(read_input).transpose()?;
    let parsed = parse_file(&args, &data, key_data.as_deref())?;
    for note in &parsed.notes {
        tell!("note: {name}: {note}");
    }

    let ctx = app.ctx();
    let now = ctx.now;
    let sip = app.config.sip_domain.as_deref();
    let fits = |e: &Entry| {
        types.iter().all(|t| {
            policy::evaluate(
                t,
                app.config.policy(t),
                sip,
                &e.cert,
                e.key.is_some(),
                at.unwrap_or(now),
            )
            .iter()
            .all(|f| f.severity != Severity::Error)
        })
    };
    let idx = bundle::select(&parsed.entries, args.entry.as_deref(), fits)
        .map_err(|e| anyhow!("{name}: {e}"))?;
    let entry = &parsed.entries[idx];
    let cert = &entry.cert;

    let mut store = app.open_store()?;
    // The chain as it will be stored and deployed: the file's, completed
    // with the issuers the store already holds.
    let chain = store.complete_chain(cert, &entry.chain)?;
    let mut import_findings = crate::cert::chain::findings(cert, &chain);
    let existing = store.lookup_exact(&cert.thumbprint)?;
    let found = if entry.key.is_none() && !existing.as_ref().is_some_and(|c| c.has_private_key) {
        stored_key(&mut store, &name, cert)?
    } else {
        None
    };
    let request_key = found.as_ref().map(FoundKey::key);
    let has_key = entry.key.is_some()
        || request_key.is_some()
        || existing.as_ref().is_some_and(|c| c.has_private_key);
    // The CA's answer against what its request asked.
    if let Some(req) = found.as_ref().and_then(FoundKey::request) {
        let asked =
            crate::cert::answer::Asked::from_csr(req.id, &req.csr, &req.sans, req.validity_days);
        if let Some(t) = app.parse_types(&req.usage_type)?.first() {
            import_findings.extend(crate::cert::answer::findings(t, &asked, cert));
        }
    }
    if let Some(req) = found.as_ref().and_then(FoundKey::request)
        && types.is_empty()
    {
        // The response is checked against the types it was requested for.
        let req_types = app.parse_types(&req.usage_type)?;
        let mut all = findings(app, &req_types, cert, &chain, true, now)?;
        all.extend(import_findings.iter().cloned());
        enforce(&all, args.force)?;
    } else if types.is_empty() {
        enforce(&import_findings, args.force)?;
    }

    if cert.not_after < now {
        return Err(anyhow!(
            "{name}: certificate {} ({}) expired on {}; nothing imported",
            short(&cert.thumbprint),
            cert.label(),
            cert.not_after.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    if types.is_empty() {
        if cert.not_before > now {
            tell!(
                "note: {name}: certificate {} is not valid before {}; it can be scheduled, not assigned now",
                short(&cert.thumbprint),
                cert.not_before.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
    } else {
        let mut all = findings(app, &types, cert, &chain, has_key, at.unwrap_or(now))?;
        all.extend(import_findings);
        if let Some(at) = at {
            all.extend(lead_time_findings(app, &store, &slots, at)?);
        }
        enforce(&all, args.force)?;
    }
    if chain.len() > entry.chain.len() {
        tell!(
            "note: {name}: chain completed from the store: {}",
            chain[entry.chain.len()..]
                .iter()
                .map(|c| c.label())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let source = args
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned());
    let new = NewCert {
        cert,
        chain: &chain,
        key: entry.key.as_ref().or(request_key),
        friendly_name: entry.friendly_name.as_deref().or(found
            .as_ref()
            .and_then(FoundKey::request)
            .and_then(|r| r.friendly_name.as_deref())),
        source_file: source.as_deref(),
        request: found.as_ref().and_then(FoundKey::completes).map(|r| r.id),
    };
    // What the import adds (the store's upsert decides the same way).
    let status = match &existing {
        None => Status::New,
        Some(e) if !e.has_private_key && (entry.key.is_some() || request_key.is_some()) => {
            Status::KeyAdded
        }
        Some(e) if e.chain.is_empty() && !chain.is_empty() => Status::ChainAdded,
        Some(_) => Status::Unchanged,
    };
    let stored_json = |store: &crate::store::Store| -> Result<serde_json::Value> {
        Ok(match store.lookup_exact(&cert.thumbprint)? {
            Some(s) => output::cert_json(&s),
            None => {
                let mut v = output::info_json(cert);
                v["has_private_key"] = json!(has_key);
                v
            }
        })
    };

    if let Some(at) = at {
        args.when.check_staging(app, &store, &slots)?;
        let plans = store.plan_schedule(&cert.thumbprint, &slots, at, args.force)?;
        crate::ops::set::refuse_conflicts(&app.config, &plans)?;
        let (changes, job_ids) = if args.what_if {
            (plans, Vec::new())
        } else {
            let report = store.schedule_with(
                Some(&new),
                &cert.thumbprint,
                &slots,
                at,
                args.force,
                args.when.require_staged,
                &ctx,
            )?;
            (report.changes, report.job_ids)
        };
        if !args.json {
            say!(
                "{}",
                import_line(&args, &parsed, cert, has_key, status, now)
            );
            print_answered(found.as_ref(), args.what_if);
        }
        let mut cert_json = stored_json(&store)?;
        if let Some(r) = found.as_ref().and_then(FoundKey::completes) {
            cert_json["request"] = json!(r.id);
        }
        return print_schedule(
            &changes,
            &job_ids,
            &cert.thumbprint,
            at,
            args.what_if,
            args.json,
            Some(cert_json),
        );
    }

    let changes = if args.what_if {
        store.plan_assign(&cert.thumbprint, &slots)?
    } else {
        store
            .assign(Some(&new), &cert.thumbprint, &slots, &ctx)?
            .changes
    };
    if args.json {
        return output::print_json(&json!({
            "what_if": args.what_if,
            "file": name,
            "format": parsed.format.to_string(),
            "status": status.as_str(),
            "certificate": stored_json(&store)?,
            "changes": changes.iter().map(output::assign_change_json).collect::<Vec<_>>(),
            "notes": parsed.notes,
            "request": found.as_ref().and_then(FoundKey::request).map(|r| r.id),
        }));
    }
    say!(
        "{}",
        import_line(&args, &parsed, cert, has_key, status, now)
    );
    print_answered(found.as_ref(), args.what_if);
    let prefix = if args.what_if { "what if: " } else { "" };
    for c in &changes {
        say!(
            "{prefix}{}",
            describe_assign(&c.slot, &c.plan, &cert.thumbprint, args.what_if)
        );
    }
    Ok(())
}

/// Where the store holds the key of a certificate that came without it.
enum FoundKey {
    /// A request's key. `completes`: the request waits and this import
    /// completes it; otherwise the CA answered a completed request again
    /// and the key is taken from the certificate that holds it now.
    Request {
        request: Box<CertRequest>,
        key: PrivateKey,
        completes: bool,
    },
    /// Another certificate's key: renewed with the same key.
    SameKey(PrivateKey),
}

impl FoundKey {
    fn key(&self) -> &PrivateKey {
        match self {
            FoundKey::Request { key, .. } | FoundKey::SameKey(key) => key,
        }
    }

    fn request(&self) -> Option<&CertRequest> {
        match self {
            FoundKey::Request { request, .. } => Some(request),
            FoundKey::SameKey(_) => None,
        }
    }

    /// The waiting request this import completes.
    fn completes(&self) -> Option<&CertRequest> {
        match self {
            FoundKey::Request {
                request,
                completes: true,
                ..
            } => Some(request),
            _ => None,
        }
    }
}

/// Finds the stored key of `cert` by its public key: a waiting request's
/// (the CA's answer), else a stored certificate's, naming the closed
/// request it answers if any. Notes each case, and a near miss, on stderr.
fn stored_key(store: &mut Store, name: &str, cert: &CertInfo) -> Result<Option<FoundKey>> {
    let Some(fp) = cert.public_key.fingerprint() else {
        return Ok(None);
    };
    if let Some((request, key)) = store.pending_request_for(&fp)? {
        return Ok(Some(FoundKey::Request {
            request: Box::new(request),
            key,
            completes: true,
        }));
    }
    let holder = match store.key_holder_for(&fp)? {
        Some(t) if t != cert.thumbprint => store
            .private_key(&t)?
            .filter(|k| k.public_fingerprint().as_deref() == Some(fp.as_str()))
            .map(|k| (t, k)),
        _ => None,
    };
    let closed = store.closed_request_for(&fp)?;
    let this = short(&cert.thumbprint);
    Ok(match (closed, holder) {
        (Some(r), Some((t, key))) if r.state == "completed" => {
            tell!(
                "note: {name}: certificate {this} answers request {} again: it takes the key of certificate {}, the first answer",
                r.id,
                short(&t)
            );
            Some(FoundKey::Request {
                request: Box::new(r),
                key,
                completes: false,
            })
        }
        (_, Some((t, key))) => {
            tell!(
                "note: {name}: certificate {this} has the public key of certificate {}: it takes that private key (renewed with the same key)",
                short(&t)
            );
            Some(FoundKey::SameKey(key))
        }
        (Some(r), None) => {
            let why = match r.thumbprint.as_deref().filter(|_| r.state == "completed") {
                Some(t) => format!(
                    "was completed by certificate {}, which no longer has the key",
                    short(t)
                ),
                None => "was cancelled and its key wiped".to_string(),
            };
            tell!(
                "note: {name}: certificate {this} answers request {}, which {why}: it comes in without a private key",
                r.id
            );
            None
        }
        (None, None) => {
            let waiting = store.pending_request_count()?;
            if waiting > 0 {
                tell!(
                    "note: {name}: certificate {this} answers none of the {waiting} waiting request(s): its public key is none of theirs"
                );
            }
            None
        }
    })
}

/// "request 3 completed: ..." for a CA's response.
fn print_answered(found: Option<&FoundKey>, what_if: bool) {
    if let Some(r) = found.and_then(FoundKey::completes) {
        say!(
            "{}request {} {} for {} at {}: the certificate joins the private key made with it",
            if what_if { "what if: " } else { "" },
            r.id,
            if what_if {
                "would be completed"
            } else {
                "completed"
            },
            r.usage_type,
            r.scope
        );
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    New,
    KeyAdded,
    ChainAdded,
    Unchanged,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::New => "imported",
            Status::KeyAdded => "private key added",
            Status::ChainAdded => "chain added",
            Status::Unchanged => "already in the store",
        }
    }
}

/// "imported: 133F… oauth1.contoso.com (PKCS#12, RSA 2048, private key, expires …)".
fn import_line(
    args: &ImportArgs,
    parsed: &Parsed,
    cert: &crate::cert::CertInfo,
    has_key: bool,
    status: Status,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let line = format!(
        "{} {} ({}, {}, {}, {})",
        cert.thumbprint,
        cert.label(),
        parsed.format,
        output::key_desc(cert),
        if has_key {
            "private key"
        } else {
            "no private key"
        },
        output::expiry(cert, now),
    );
    match (args.what_if, status) {
        (_, Status::Unchanged) => format!(
            "{}{line}: already in the store, unchanged",
            if args.what_if { "what if: " } else { "" }
        ),
        (true, Status::New) => format!("what if: would import: {line}"),
        (true, Status::KeyAdded) => format!("what if: would add the private key of: {line}"),
        (true, Status::ChainAdded) => format!("what if: would add the chain of: {line}"),
        (false, s) => format!("{}: {line}", s.as_str()),
    }
}
