//! Replication status: for every unit (server × target × type × role) the
//! thumbprint it should have, the one it has, and whether it is up to
//! date. `certroll status`, `certroll check` and `/metrics` read it.

use super::deployer::units;
use super::plan::Unit;
use crate::config::Config;
use crate::store::{DeployState, Store, StoreError};

#[derive(Clone, Debug)]
pub struct StatusRow {
    pub unit: Unit,
    /// The stored deployment state, `None` when never attempted.
    pub state: Option<DeployState>,
    /// The thumbprint last deployed successfully.
    pub has: Option<String>,
    pub up_to_date: bool,
}

/// The rows of every configured server (or of `server` only).
pub fn rows(
    store: &Store,
    config: &Config,
    server: Option<&str>,
) -> Result<Vec<StatusRow>, StoreError> {
    let states = store.deployment_states(server)?;
    Ok(units(store, config, server)?
        .into_iter()
        .map(|u| {
            let st = states
                .iter()
                .find(|s| {
                    s.server == u.server.name
                        && s.usage_type == u.usage_type.as_str()
                        && s.target == u.target.name
                        && s.role == u.role.as_str()
                })
                .cloned();
            let has = st.as_ref().and_then(|s| s.deployed.clone());
            let up_to_date = st.as_ref().is_some_and(|s| s.state == "ok") && has == u.wanted;
            StatusRow {
                unit: u,
                state: st,
                has,
                up_to_date,
            }
        })
        .collect())
}

/// How many servers have at least one unit out of date.
pub fn servers_out_of_date(rows: &[StatusRow]) -> usize {
    let mut names: Vec<&str> = rows
        .iter()
        .filter(|r| !r.up_to_date)
        .map(|r| r.unit.server.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}
