//! `certroll request`: a new key pair and a certificate request (PKCS#10)
//! for the organisation's CA, the seeds' Request-CsCertificate and the
//! wizard's "delay the request"; or, with `--self-signed`, a self-signed
//! certificate for types that allow one (token signing). And `certroll
//! requests`: list, show, cancel the requests waiting for a response.
//!
//! The key is made here and kept sealed in the store; it is never written
//! out. `certroll import` of the CA's response finds the waiting request by
//! its public key and joins the two.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use chrono::Duration;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{self, describe_assign, short};
use super::set::{enforce, findings, lead_time_findings, print_schedule};
use super::{App, UsageError, WhenArgs};
use crate::cert::keygen::{self, KeySpec};
use crate::cert::request::{self, RequestSpec, Subject};
use crate::cert::x509::CertInfo;
use crate::cert::{Scope, SlotKey, UsageType};
use crate::store::{CertRequest, NewCert, NewRequest, StoreError};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
certroll request --type OAuthTokenIssuer --subject-cn oauth.contoso.com --organization Contoso \\\n      \
--country US --output oauth.csr\n  \
# hand oauth.csr to the CA; when it answers:\n  \
certroll import --path oauth.p7b --type OAuthTokenIssuer --effective-date 7/1/2027 --roll\n  \
certroll request --type OAuthTokenIssuer --self-signed --days 730 --effective-date +7d --roll\n  \
certroll request --type WebServicesExternal --acme --subject-cn www.contoso.com --assign\n\n\
--acme orders the certificate from the [acme] CA with this request's CSR (the key stays in certroll).\n\n\
The configured sip_domain is always added to the names; --all-sip-domains adds sip.<domain> for it and \
each --sip-domain. For --scope pool:FQDN the subject defaults to the pool and the names include each \
configured [[server]] of the pool; for server:FQDN, to the server. Extended key usages: the type's required_ekus, else serverAuth and clientAuth.")]
pub struct RequestArgs {
    /// Usage type(s) the certificate is for; each one's policy is checked before anything is made
    #[arg(long = "type", value_name = "T[,T..]", value_parser = crate::cli::TypesArg, hide_possible_values = true)]
    pub types: String,

    /// Scope the certificate is meant for: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S", default_value = "global")]
    pub scope: String,

    /// Subject common name [default: the FQDN of a pool: or server: scope, else the configured sip_domain]
    #[arg(long, value_name = "NAME")]
    pub subject_cn: Option<String>,

    /// A subject alternative name (DNS); repeat it or separate names with commas
    #[arg(long = "san", value_name = "NAME", value_delimiter = ',')]
    pub sans: Vec<String>,

    /// Another SIP domain to name, besides the configured sip_domain (repeatable)
    #[arg(long = "sip-domain", value_name = "DOMAIN", value_delimiter = ',')]
    pub sip_domains: Vec<String>,

    /// Also name sip.<domain> for every SIP domain (the wizard's SIP domain page)
    #[arg(long)]
    pub all_sip_domains: bool,

    /// Subject organisation (O)
    #[arg(long, value_name = "NAME")]
    pub organization: Option<String>,

    /// Subject organisational unit (OU)
    #[arg(long, value_name = "NAME")]
    pub org_unit: Option<String>,

    /// Subject city or locality (L)
    #[arg(long, value_name = "NAME")]
    pub city: Option<String>,

    /// Subject state or province (ST)
    #[arg(long, value_name = "NAME")]
    pub state: Option<String>,

    /// Subject country, two letters (C)
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,

    /// The Microsoft CA certificate template to issue from (the wizard's
    /// alternate template), e.g. WebServer; written into the request as the
    /// template name extension and the CertificateTemplate attribute
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,

    /// Friendly name of the certificate [default: TYPE SCOPE DATE]
    #[arg(long, value_name = "NAME")]
    pub friendly_name: Option<String>,

    /// The new key: rsa2048, rsa3072, rsa4096, ec-p256 or ec-p384
    #[arg(long, value_name = "KIND", default_value = "rsa2048", value_parser = super::key_arg(), hide_possible_values = true, ignore_case = true)]
    pub key: KeySpec,

    /// Write the request (PEM) to FILE instead of standard output; with --self-signed, the certificate
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Make a self-signed certificate now instead of a request (types with self_signed_allowed)
    #[arg(long, conflicts_with = "acme")]
    pub self_signed: bool,

    /// Order the certificate now from the [acme] CA (RFC 8555) instead of writing a request
    #[arg(long)]
    pub acme: bool,

    /// Validity in days: of the self-signed certificate [default: 365]; of a request, what to
    /// expect of the CA (kept with the request: a shorter answer needs --force at import)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: Option<u32>,

    /// With --self-signed or --acme: assign the certificate now
    #[arg(long, conflicts_with = "effective_date")]
    pub assign: bool,

    #[command(flatten)]
    pub when: WhenArgs,

    /// Replace --output if it exists; go ahead despite policy warnings of a self-signed certificate
    #[arg(long)]
    pub force: bool,

    /// Print the outcome as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RequestsArgs {
    #[command(subcommand)]
    pub command: RequestsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RequestsCommand {
    /// List certificate requests, newest first
    List {
        /// Only requests in this state: pending, completed or cancelled
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one request
    Show {
        id: i64,
        /// Print its CSR (PEM) only, to hand to the CA again
        #[arg(long, conflicts_with = "json")]
        csr: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a waiting request and wipe its key: a response to it can no longer be imported with its key
    Cancel {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

use crate::json::request_json;

fn request_line(r: &CertRequest) -> String {
    let mut line = format!(
        "{:>4}  {:<9}  {}  {}  {}  {}",
        r.id, r.state, r.usage_type, r.scope, r.subject, r.key_algorithm
    );
    line.push_str(&format!("  created {}", output::when(r.created_at)));
    if let Some(t) = &r.thumbprint {
        line.push_str(&format!("  -> {}", short(t)));
    }
    line
}

/// The spec both forms are made from, with the policy checked.
fn build_spec(
    app: &App,
    args: &RequestArgs,
    types: &[UsageType],
    scope: &Scope,
) -> Result<RequestSpec> {
    let sip = app.config.sip_domain.clone();
    // As the wizard: a pool's or server's certificate is named after it.
    let cn = match (&args.subject_cn, scope, &sip) {
        (Some(cn), _, _) => cn.trim().to_string(),
        (None, Scope::Pool(fqdn) | Scope::Server(fqdn), _) => fqdn.clone(),
        (None, _, Some(d)) => d.clone(),
        (None, _, None) => {
            return Err(UsageError(
                "--subject-cn is needed (no sip_domain is configured to default to)".into(),
            )
            .into());
        }
    };
    let mut sip_domains: Vec<String> = sip.into_iter().collect();
    sip_domains.extend(args.sip_domains.iter().cloned());
    // A pool's certificate goes to each of its servers: it names them too.
    let mut extra = args.sans.clone();
    extra.extend(crate::ops::renew::pool_servers(&app.config, scope));
    let sans = request::compose_sans(&cn, &extra, &sip_domains, args.all_sip_domains)
        .map_err(|e| UsageError(e.to_string()))?;
    let mut ekus: Vec<String> = Vec::new();
    for t in types {
        for e in request::ekus_for(app.config.policy(t)) {
            if !ekus.contains(&e) {
                ekus.push(e);
            }
        }
    }
    let spec = RequestSpec {
        subject: Subject {
            common_name: cn,
            organization: args.organization.clone(),
            org_unit: args.org_unit.clone(),
            city: args.city.clone(),
            state: args.state.clone(),
            country: args.country.as_ref().map(|c| c.trim().to_ascii_uppercase()),
        },
        sans,
        ekus,
        key: args.key,
        template: args.template.clone(),
    };
    let mut refusals = Vec::new();
    for t in types {
        let policy = app.config.policy(t);
        if args.self_signed && !policy.self_signed_allowed {
            refusals.push(format!(
                "{t} policy, rule self-signed: {t} certificates must come from a CA (set self_signed_allowed in [policy.{t}] to allow it)"
            ));
        }
        for (rule, msg) in request::evaluate(policy, app.config.sip_domain.as_deref(), &spec) {
            refusals.push(format!("{t} policy, rule {rule}: {msg}"));
        }
    }
    if !refusals.is_empty() {
        return Err(anyhow!("{}; nothing was made", refusals.join("; ")));
    }
    Ok(spec)
}

/// Writes `text` to `path` through a temporary file (mode 0644: a request
/// or a certificate is public).
fn write_public(path: &std::path::Path, text: &str) -> Result<()> {
    let own = crate::deploy::files::Ownership {
        mode: 0o644,
        uid: None,
        gid: None,
    };
    crate::deploy::files::write_atomic(path, text.as_bytes(), own).map_err(|e| anyhow!("{e}"))
}

pub fn run(app: &App, args: RequestArgs) -> Result<()> {
    let types = app.parse_types(&args.types)?;
    let slots = app.slots(&types, &args.scope)?;
    app.check_slots(&slots, args.force)?;
    let at = args.when.instant(app)?;
    let issues = args.self_signed || args.acme;
    if args.assign && !issues {
        return Err(UsageError(
            "--assign needs --self-signed or --acme: a request has no certificate yet".into(),
        )
        .into());
    }
    if args.acme && app.config.acme.directory_url.is_none() {
        return Err(UsageError(
            "--acme: no ACME CA is configured: set [acme] directory_url".into(),
        )
        .into());
    }
    if at.is_some() && !issues {
        return Err(UsageError(
            "--effective-date and --roll schedule a certificate: a request has none yet (import the CA's response with them)".into(),
        )
        .into());
    }
    if let Some(t) = &args.template {
        if issues {
            return Err(UsageError(
                "--template names an enterprise CA's template: not for --self-signed or --acme"
                    .into(),
            )
            .into());
        }
        request::check_template(t).map_err(|e| UsageError(e.to_string()))?;
    }
    if let Some(out) = &args.output {
        output::check_output_path(out, args.force)?;
    }
    let spec = build_spec(app, &args, &types, &slots[0].scope)?;
    let ctx = app.ctx();
    let friendly = args.friendly_name.clone().unwrap_or_else(|| {
        format!(
            "{} {} {}",
            args.types.replace(',', "+"),
            slots[0].scope,
            ctx.now
                .with_timezone(&app.config.timezone)
                .format("%Y-%m-%d")
        )
    });
    let key = keygen::generate(spec.key).map_err(|e| anyhow!("{e}"))?;
    if issues {
        return self_signed(app, &args, &types, &slots, at, &spec, key, &friendly);
    }

    let csr = request::csr_pem(&spec, &key).map_err(|e| UsageError(e.to_string()))?;
    let mut store = app.open_store()?;
    let scope = slots[0].scope.to_string();
    let type_names: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    let id = store.create_request(
        &NewRequest {
            usage_type: &type_names.join(","),
            scope: &scope,
            subject: &spec.subject.to_rfc4514(),
            sans: &spec.sans,
            key_algorithm: &spec.key.to_string(),
            friendly_name: Some(&friendly),
            template: args.template.as_deref(),
            key: &key,
            csr: &csr,
            validity_days: args.days,
        },
        &ctx,
    )?;
    let req = store.request(id)?.ok_or(StoreError::NoSuchRequest(id))?;
    if let Some(out) = &args.output {
        write_public(out, &csr).map_err(|e| {
            anyhow!("{e:#}; request {id} is recorded: write its CSR with 'certroll requests show {id} --csr'")
        })?;
    }
    if args.json {
        let mut v = request_json(&req);
        v["output"] = json!(args.output.as_ref().map(|p| p.display().to_string()));
        return output::print_json(&v);
    }
    let summary = format!(
        "request {id}: {} for {} at {} ({}; names {}); the key stays in the store",
        req.subject,
        req.usage_type,
        req.scope,
        req.key_algorithm,
        req.sans.join(", ")
    );
    match &args.output {
        Some(out) => {
            say!("{summary}");
            say!(
                "CSR written to {}: hand it to the CA, then import its answer with 'certroll import --path RESPONSE'",
                out.display()
            );
        }
        None => {
            // The request on stdout (for a pipe or a redirect), the words on stderr.
            tell!("{summary}");
            let mut o = std::io::stdout().lock();
            o.write_all(csr.as_bytes())?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn self_signed(
    app: &App,
    args: &RequestArgs,
    types: &[UsageType],
    slots: &[SlotKey],
    at: Option<chrono::DateTime<chrono::Utc>>,
    spec: &RequestSpec,
    key: crate::cert::key::PrivateKey,
    friendly: &str,
) -> Result<()> {
    let mut ctx = app.ctx();
    let mut store = app.open_store()?;
    let (cert, chain, source) = if args.acme {
        let issued = crate::ops::acme::order(&mut store, &app.config.acme, spec, &key, &ctx)
            .map_err(|e| anyhow!("ACME: {e}; nothing was stored"))?;
        // The order took a while: the certificate is judged (and assigned)
        // as of now, after its issuance.
        ctx.now = app.now();
        (
            issued.cert,
            issued.chain,
            "ordered by certroll from its ACME CA",
        )
    } else {
        // An hour back, so that servers with a slow clock accept it at once.
        let now = chrono::SubsecRound::trunc_subsecs(ctx.now, 0);
        let not_before = now - Duration::hours(1);
        let not_after = now + Duration::days(args.days.unwrap_or(365).into());
        let der =
            request::self_signed(spec, &key, not_before, not_after).map_err(|e| anyhow!("{e}"))?;
        (
            CertInfo::from_der(&der).map_err(|e| anyhow!("{e}"))?,
            Vec::new(),
            "self-signed by certroll",
        )
    };
    let mut all = findings(app, types, &cert, &chain, true, at.unwrap_or(ctx.now))?;
    if let Some(at) = at {
        all.extend(lead_time_findings(app, &store, slots, at)?);
    }
    enforce(&all, args.force)?;
    let new = NewCert {
        cert: &cert,
        chain: &chain,
        key: Some(&key),
        friendly_name: Some(friendly),
        source_file: Some(source),
        request: None,
    };
    if let Some(out) = &args.output {
        // Written before the store changes: a failure leaves nothing behind.
        write_public(out, &crate::cert::pem::encode("CERTIFICATE", &cert.der))?;
    }
    let kind = if args.acme {
        format!("issued by {}", cert.issuer)
    } else {
        "self-signed".to_string()
    };
    let line = format!(
        "{kind}: {} {} ({}, private key, {})",
        cert.thumbprint,
        cert.label(),
        output::key_desc(&cert),
        output::expiry(&cert, ctx.now)
    );
    if let Some(at) = at {
        args.when.check_staging(app, &store, slots)?;
        let plans = store.plan_schedule(&cert.thumbprint, slots, at, args.force)?;
        crate::ops::set::refuse_conflicts(&app.config, &plans)?;
        let report = store.schedule_with(
            Some(&new),
            &cert.thumbprint,
            slots,
            at,
            args.force,
            args.when.require_staged,
            &ctx,
        )?;
        if !args.json {
            say!("{line}");
        }
        let stored = store
            .lookup_exact(&cert.thumbprint)?
            .map(|c| output::cert_json(&c));
        return print_schedule(
            &report.changes,
            &report.job_ids,
            &cert.thumbprint,
            at,
            false,
            args.json,
            stored,
        );
    }
    let targets: &[SlotKey] = if args.assign { slots } else { &[] };
    let report = store.assign(Some(&new), &cert.thumbprint, targets, &ctx)?;
    if args.json {
        let stored = store
            .lookup_exact(&cert.thumbprint)?
            .map(|c| output::cert_json(&c));
        return output::print_json(&json!({
            "certificate": stored,
            "changes": report.changes.iter().map(output::assign_change_json).collect::<Vec<_>>(),
        }));
    }
    say!("{line}");
    for c in &report.changes {
        say!(
            "{}",
            describe_assign(&c.slot, &c.plan, &cert.thumbprint, false)
        );
    }
    if targets.is_empty() {
        say!(
            "stored, not assigned: 'certroll set --type {} --thumbprint {}' assigns it (add --effective-date WHEN --roll to schedule)",
            args.types,
            short(&cert.thumbprint)
        );
    }
    Ok(())
}

pub fn run_requests(app: &App, args: RequestsArgs) -> Result<()> {
    match args.command {
        RequestsCommand::List { state, json } => {
            if let Some(s) = &state
                && !["pending", "completed", "cancelled"].contains(&s.as_str())
            {
                return Err(UsageError(format!(
                    "--state {s}: use pending, completed or cancelled"
                ))
                .into());
            }
            let store = app.open_store_read_only()?;
            let list = store.requests(state.as_deref())?;
            if json {
                return output::print_json(&Value::Array(list.iter().map(request_json).collect()));
            }
            if list.is_empty() {
                say!("no certificate requests");
            }
            for r in &list {
                say!("{}", request_line(r));
            }
            Ok(())
        }
        RequestsCommand::Show { id, csr, json } => {
            let store = app.open_store_read_only()?;
            let r = store.request(id)?.ok_or(StoreError::NoSuchRequest(id))?;
            if csr {
                print!("{}", r.csr);
                return Ok(());
            }
            if json {
                return output::print_json(&request_json(&r));
            }
            say!("request {}  {}", r.id, r.state);
            say!("  for        {} at {}", r.usage_type, r.scope);
            say!("  subject    {}", r.subject);
            say!("  names      {}", r.sans.join(", "));
            say!("  key        {} (sealed in the store)", r.key_algorithm);
            if let Some(t) = &r.template {
                say!("  template   {t}");
            }
            if let Some(f) = &r.friendly_name {
                say!("  friendly   {f}");
            }
            say!("  created    {}", output::when(r.created_at));
            if let Some(c) = r.closed_at {
                say!("  closed     {}", output::when(c));
            }
            if let Some(t) = &r.thumbprint {
                say!("  answered by {t}");
            }
            Ok(())
        }
        RequestsCommand::Cancel { id, json } => {
            let mut store = app.open_store()?;
            let r = store.cancel_request(id, &app.ctx())?;
            if json {
                return output::print_json(&request_json(&r));
            }
            say!(
                "request {id} cancelled: its key was wiped; a response to it can no longer be imported with its key"
            );
            Ok(())
        }
    }
}
