//! `certroll user`: the accounts of the HTTP API and console. There is no
//! default account: the API and console refuse to start until one exists.

use anyhow::Result;
use chrono::Duration;
use clap::{Args, Subcommand};
use serde_json::json;

use super::password::{self, PasswordArgs};
use super::{App, UsageError, output};
use crate::auth::{self, Role};

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account (the password is asked twice on the terminal, or read with --password-file/-env/-stdin)
    Add(AddArgs),
    /// List the accounts and their roles
    List(ListArgs),
    /// Change an account's role or password (a new password ends its sessions)
    Set(SetArgs),
    /// Remove an account with its API tokens and sessions
    Remove(NameArg),
    /// API tokens: a token acts as its account, with its role
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The account's name (letters, digits and . _ @ -)
    pub name: String,
    /// viewer (reads), operator (also changes certificates and slots) or admin
    #[arg(long, value_name = "ROLE", value_parser = ["viewer", "operator", "admin"])]
    pub role: String,
    /// An account for API tokens only: no password, no console login
    #[arg(long)]
    pub no_password: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    pub name: String,
    /// The new role
    #[arg(long, value_name = "ROLE", value_parser = ["viewer", "operator", "admin"])]
    pub role: Option<String>,
    /// Set a new password (asked on the terminal, or read with --password-file/-env/-stdin)
    #[arg(long)]
    pub new_password: bool,
    #[command(flatten)]
    pub password: PasswordArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NameArg {
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an API token for an account; it is printed once, only its hash is kept
    Add(TokenAddArgs),
    /// List API tokens (never their secrets)
    List(TokenListArgs),
    /// Revoke an API token by its id
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenAddArgs {
    /// The account the token acts as
    pub name: String,
    /// What the token is for, shown in listings
    #[arg(long, default_value = "")]
    pub label: String,
    /// The token stops working after this many days [default: never]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub expires_days: Option<u32>,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Only this account's tokens
    pub name: Option<String>,
    /// Print as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (the 8 hex digits after certroll_)
    pub id: String,
}

/// The new password: given with --password-*, else asked twice on the
/// terminal.
fn new_password(args: &PasswordArgs, name: &str) -> Result<zeroize::Zeroizing<String>> {
    let pw = match args.read()? {
        Some(pw) => pw,
        None => {
            let Some(first) = password::prompt(&format!("account {name}"))? else {
                return Err(UsageError(
                    "no terminal to ask the password on: give it with --password-file, --password-env or --password-stdin".into(),
                )
                .into());
            };
            let again = password::prompt(&format!("account {name} (again)"))?.unwrap_or_default();
            if again.as_str() != first.as_str() {
                return Err(UsageError("the passwords differ; nothing changed".into()).into());
            }
            first
        }
    };
    auth::check_password(&pw).map_err(|e| UsageError(format!("account {name}: {e}")))?;
    Ok(pw)
}

pub fn run(app: &App, args: UserArgs) -> Result<()> {
    match args.command {
        UserCommand::Add(a) => {
            auth::check_name(&a.name).map_err(|e| UsageError(e.to_string()))?;
            let role = Role::parse(&a.role)?;
            let hash = if a.no_password {
                None
            } else {
                Some(auth::hash_password(&new_password(&a.password, &a.name)?)?)
            };
            let mut store = app.open_store()?;
            store.add_user(&a.name, role, hash.as_deref(), &app.ctx())?;
            say!(
                "account {} added ({role}{})",
                a.name,
                if a.no_password {
                    ", no password: give it an API token with 'certroll user token add'"
                } else {
                    ""
                }
            );
            Ok(())
        }
        UserCommand::List(a) => {
            let users = app.open_store_read_only()?.users()?;
            if a.json {
                return output::print_json(&json!(users));
            }
            if users.is_empty() {
                say!("no accounts: add one with 'certroll user add NAME --role admin'");
            }
            for u in users {
                say!(
                    "{:<24} {:<8} {} {} token(s), added {}",
                    u.name,
                    u.role,
                    if u.has_password {
                        "password"
                    } else {
                        "no password"
                    },
                    u.tokens,
                    output::when(u.created_at)
                );
            }
            Ok(())
        }
        UserCommand::Set(a) => {
            if a.role.is_none() && !a.new_password {
                return Err(
                    UsageError("nothing to change: give --role or --new-password".into()).into(),
                );
            }
            let role = a.role.as_deref().map(Role::parse).transpose()?;
            let hash = if a.new_password {
                Some(auth::hash_password(&new_password(&a.password, &a.name)?)?)
            } else {
                None
            };
            let mut store = app.open_store()?;
            store.update_user(&a.name, role, hash.as_deref(), &app.ctx())?;
            say!("account {} changed", a.name);
            Ok(())
        }
        UserCommand::Remove(a) => {
            app.open_store()?.remove_user(&a.name, &app.ctx())?;
            say!(
                "account {} removed, with its API tokens and sessions",
                a.name
            );
            Ok(())
        }
        UserCommand::Token(TokenCommand::Add(a)) => {
            let ctx = app.ctx();
            let expires = a.expires_days.map(|d| ctx.now + Duration::days(d.into()));
            let token = auth::new_token()?;
            app.open_store()?
                .add_token(&a.name, &token, &a.label, expires, &ctx)?;
            tell!(
                "API token {} for account {}{}: it is shown once; send it as 'Authorization: Bearer TOKEN'",
                token.id,
                a.name,
                expires.map_or(String::new(), |e| format!(", expires {}", output::when(e)))
            );
            // The token alone on stdout, for a script to capture.
            say!("{}", token.token.as_str());
            Ok(())
        }
        UserCommand::Token(TokenCommand::List(a)) => {
            let tokens = app.open_store_read_only()?.tokens(a.name.as_deref())?;
            if a.json {
                return output::print_json(&json!(tokens));
            }
            for t in tokens {
                say!(
                    "{} {:<24} added {}{}{}",
                    t.id,
                    t.user,
                    output::when(t.created_at),
                    t.expires_at
                        .map_or(String::new(), |e| format!(", expires {}", output::when(e))),
                    if t.label.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", t.label)
                    }
                );
            }
            Ok(())
        }
        UserCommand::Token(TokenCommand::Revoke(a)) => {
            app.open_store()?.revoke_token(&a.id, &app.ctx())?;
            say!("API token {} revoked", a.id);
            Ok(())
        }
    }
}
