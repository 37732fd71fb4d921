//! `certroll export`: a stored certificate with its private key and chain
//! as a PFX file (mode 0600), for a server that needs the file itself.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;

use super::password::{self, PasswordArgs};
use super::{App, UsageError};
use crate::cert::pfx::{self, PfxOptions};
use crate::deploy::files::{Ownership, write_atomic};

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The certificate: its thumbprint, or a unique prefix of at least 8 hex digits
    #[arg(long, value_name = "X")]
    pub thumbprint: String,

    /// The PFX file to write (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub path: PathBuf,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// 3DES and SHA-1 (for old Windows) instead of AES-256 and SHA-256
    #[arg(long)]
    pub legacy: bool,

    /// Replace the file if it exists
    #[arg(long)]
    pub force: bool,
}

pub fn run(app: &App, args: ExportArgs) -> Result<()> {
    let name = args.path.display().to_string();
    super::output::check_output_path(&args.path, args.force)?;
    let mut store = app.open_store()?;
    let cert = store.find_cert(&args.thumbprint)?;
    let key = store.private_key(&cert.info.thumbprint)?.ok_or_else(|| {
        anyhow!(
            "certificate {} ({}) has no private key in the store; nothing to export",
            &cert.info.thumbprint[..8],
            cert.info.label()
        )
    })?;
    let pw = match args.password.read()? {
        Some(pw) => pw,
        None => password::prompt(&format!("the new PFX {name}"))?.ok_or_else(|| {
            UsageError(
                "give the PFX password with --password-file, --password-env or --password-stdin"
                    .into(),
            )
        })?,
    };
    let opts = PfxOptions {
        legacy: args.legacy,
        friendly_name: cert.friendly_name.clone(),
    };
    let der = pfx::build(&cert.info, &cert.chain, &key, &pw, &opts).map_err(|e| anyhow!(e))?;
    write_atomic(
        &args.path,
        &der,
        Ownership {
            mode: 0o600,
            uid: None,
            gid: None,
        },
    )?;
    say!(
        "exported {} {} with its private key and {} chain certificate(s) to {name} ({})",
        cert.info.thumbprint,
        cert.info.label(),
        cert.chain.len(),
        if args.legacy {
            "3DES, SHA-1 MAC"
        } else {
            "AES-256, SHA-256 MAC"
        }
    );
    Ok(())
}
