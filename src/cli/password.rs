//! Passwords for PFX files and encrypted keys: from a file, an environment
//! variable, standard input, or a prompt on the terminal; never from the
//! command line, never logged.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use zeroize::Zeroizing;

use super::UsageError;
use crate::input::MAX_TEXT_FILE;

#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct PasswordArgs {
    /// Read the password from the first line of FILE
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Read the password from the environment variable VAR
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,

    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}

/// Drops one trailing line ending, as `echo pw > file` leaves one.
fn first_line(mut s: String) -> Zeroizing<String> {
    if let Some(i) = s.find(['\n', '\r']) {
        s.truncate(i);
    }
    Zeroizing::new(s)
}

impl PasswordArgs {
    /// The password the operator gave, if any.
    pub fn read(&self) -> Result<Option<Zeroizing<String>>> {
        if let Some(path) = &self.password_file {
            return crate::input::secret(Some(path), None, "password file")
                .map_err(anyhow::Error::msg);
        }
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) => Ok(Some(first_line(v))),
                Err(std::env::VarError::NotPresent) => Err(UsageError(format!(
                    "--password-env {var}: the environment variable is not set"
                ))
                .into()),
                Err(std::env::VarError::NotUnicode(_)) => Err(UsageError(format!(
                    "--password-env {var}: the value is not valid UTF-8"
                ))
                .into()),
            };
        }
        if self.password_stdin {
            let line = crate::input::read_line(&mut std::io::stdin().lock(), MAX_TEXT_FILE)
                .map_err(|e| anyhow::anyhow!("--password-stdin: cannot read the password: {e}"))?;
            let line = String::from_utf8(line)
                .map_err(|_| anyhow::anyhow!("--password-stdin: the password is not UTF-8 text"))?;
            return Ok(Some(Zeroizing::new(line)));
        }
        Ok(None)
    }
}

/// Asks on the terminal, when there is one; `None` otherwise.
pub fn prompt(what: &str) -> Result<Option<Zeroizing<String>>> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let pw = rpassword::prompt_password(format!("Password for {what}: "))
        .context("cannot read the password from the terminal")?;
    Ok(Some(Zeroizing::new(pw)))
}
