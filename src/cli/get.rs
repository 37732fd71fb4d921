//! `certroll get`: slots with their current, previous and pending
//! certificates (the seeds' `Get-CsCertificate`).

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use super::App;
use super::output::{self, cert_line};
use crate::cert::Scope;

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Only these usage type(s), comma-separated
    #[arg(long = "type", value_name = "T[,T..]")]
    pub types: Option<String>,

    /// Only this scope: global, site:NAME, pool:FQDN or server:FQDN
    #[arg(long, value_name = "S")]
    pub scope: Option<String>,

    /// Print the slots as a JSON array
    #[arg(long)]
    pub json: bool,
}

pub fn run(app: &App, args: GetArgs) -> Result<()> {
    let types = match &args.types {
        Some(t) => app.parse_types(t)?,
        None => Vec::new(),
    };
    let scope = args.scope.as_deref().map(Scope::parse).transpose()?;
    let store = app.open_store()?;
    let slots = store.slots(&types, scope.as_ref())?;
    if args.json {
        return output::print_json(&Value::Array(slots.iter().map(output::slot_json).collect()));
    }
    if slots.is_empty() {
        say!("no certificate assigned{}", filter_text(&args));
        return Ok(());
    }
    let now = app.now();
    for (i, s) in slots.iter().enumerate() {
        if i > 0 {
            say!();
        }
        say!("{}", s.key);
        let line = |c: Option<&crate::store::StoredCert>| match c {
            Some(c) => cert_line(c, now),
            None => "none".to_string(),
        };
        say!("  current   {}", line(s.current.as_ref()));
        say!("  previous  {}", line(s.previous.as_ref()));
        match &s.pending {
            Some((c, at)) => say!(
                "  pending   {}  effective {}",
                cert_line(c, now),
                output::time(*at)
            ),
            None => say!("  pending   none"),
        }
    }
    Ok(())
}

fn filter_text(args: &GetArgs) -> String {
    match (&args.types, &args.scope) {
        (None, None) => String::new(),
        (Some(t), None) => format!(" for {t}"),
        (None, Some(s)) => format!(" at {s}"),
        (Some(t), Some(s)) => format!(" for {t} at {s}"),
    }
}
