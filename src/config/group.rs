//! More groups in one process: the `[[group]]` tables of the config file.
//!
//! The top-level settings (`master_name`, `master`, `listen`, …) are the
//! first group, as they always were. Each `[[group]]` table adds one more,
//! monitored and failed over by the same built-in sentinel core with the same
//! voters, each with its own master, quorum and timings (the top-level ones
//! unless it gives its own) and, when it has a `listen` address, a client
//! endpoint of its own. A group without `listen` is monitored and failed over
//! but serves no clients, like a group added at run time with `SENTINEL
//! MONITOR`.
//!
//! ```toml
//! [[group]]
//! name = "cache"
//! master = "10.0.0.5:6379"
//! listen = "127.0.0.1:6380"
//! quorum = 2
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, CoreConfig, count, invalid, millis, millis_or_off, resolve};

/// One `[[group]]` table, as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSettings {
    /// The group's name, as Sentinel knows it.
    pub name: Option<String>,
    /// Its master, `HOST:PORT`.
    pub master: Option<String>,
    /// Its client endpoint, if it serves clients.
    pub listen: Option<String>,
    /// Its read endpoint (clients served by its replicas), if any.
    pub read_listen: Option<String>,
    /// Votes for ODOWN [default: the top-level quorum].
    pub quorum: Option<u64>,
    /// SDOWN after this long without a valid reply [default: the top-level value].
    pub down_after_ms: Option<u64>,
    /// `master-reboot-down-after-period`; 0 is off [default: the top-level value].
    pub master_reboot_down_after_ms: Option<u64>,
    /// Sentinel's failover-timeout [default: the top-level value].
    pub failover_timeout_ms: Option<u64>,
    /// Replicas reconfigured at once [default: the top-level value].
    pub parallel_syncs: Option<u64>,
}

/// One more group, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// Its name.
    pub name: String,
    /// Its master.
    pub master: SocketAddr,
    /// The host name `master` was given by, if not an IP address.
    pub master_host: Option<String>,
    /// Its client endpoint, if it serves clients.
    pub listen: Option<SocketAddr>,
    /// Its read endpoint, if any.
    pub read_listen: Option<SocketAddr>,
    /// Votes for ODOWN.
    pub quorum: u32,
    /// SDOWN after this long without a valid reply.
    pub down_after: Duration,
    /// A restarted master is SDOWN after this long without `PONG`; `None`: off.
    pub master_reboot_down_after: Option<Duration>,
    /// Sentinel's failover-timeout.
    pub failover_timeout: Duration,
    /// Replicas reconfigured at once.
    pub parallel_syncs: u32,
}

/// Validates the `[[group]]` tables against the first group (`first_name`,
/// `first_listen`) and its sentinel core settings, whose timings they inherit.
pub(super) fn groups(
    tables: &[GroupSettings],
    first_name: &str,
    first_listen: Option<SocketAddr>,
    core: &CoreConfig,
) -> Result<Vec<GroupConfig>, ConfigError> {
    let mut groups: Vec<GroupConfig> = Vec::new();
    for (index, table) in tables.iter().enumerate() {
        let group = group(table, index, core)?;
        let which = format!("[[group]] '{}'", group.name);
        if group.name == first_name || groups.iter().any(|g| g.name == group.name) {
            return Err(invalid(
                "group",
                format!("{which}: the name is used by another group; each group needs its own"),
            ));
        }
        if let Some(listen) = group.listen {
            let taken =
                Some(listen) == first_listen || groups.iter().any(|g| g.listen == Some(listen));
            if taken {
                return Err(invalid(
                    "group",
                    format!("{which}: listen {listen} is another group's endpoint"),
                ));
            }
        }
        groups.push(group);
    }
    Ok(groups)
}

/// Validates one table (the `index`th, for messages).
fn group(
    table: &GroupSettings,
    index: usize,
    core: &CoreConfig,
) -> Result<GroupConfig, ConfigError> {
    let name = match table.name.as_deref() {
        Some(name) if !name.is_empty() && !name.contains(char::is_whitespace) => name.to_owned(),
        _ => {
            return Err(invalid(
                "group",
                format!(
                    "[[group]] number {}: name is required, a non-empty name without spaces",
                    index + 1
                ),
            ));
        }
    };
    // Field errors name the field inside the group's table.
    let within = |error: ConfigError| match error {
        ConfigError::Invalid { field, message } => {
            invalid("group", format!("[[group]] '{name}': {field}: {message}"))
        }
        other => other,
    };
    let master = match table.master.as_deref() {
        Some(master) => resolve("master", master).map_err(within)?,
        None => return Err(within(invalid("master", "required: HOST:PORT"))),
    };
    let listen = table
        .listen
        .as_deref()
        .map(|l| resolve("listen", l))
        .transpose()
        .map_err(within)?;
    let read_listen = table
        .read_listen
        .as_deref()
        .map(|l| resolve("read_listen", l))
        .transpose()
        .map_err(within)?;
    let quorum = match table.quorum {
        Some(n) => count("quorum", n).map_err(within)?,
        None => core.quorum,
    };
    let parallel_syncs = match table.parallel_syncs {
        Some(n) => count("parallel_syncs", n).map_err(within)?,
        None => core.parallel_syncs,
    };
    let down_after = match table.down_after_ms {
        Some(ms) => millis("down_after_ms", ms, 10).map_err(within)?,
        None => core.down_after,
    };
    let failover_timeout = match table.failover_timeout_ms {
        Some(ms) => millis("failover_timeout_ms", ms, 100).map_err(within)?,
        None => core.failover_timeout,
    };
    let master_reboot_down_after = match table.master_reboot_down_after_ms {
        Some(ms) => millis_or_off("master_reboot_down_after_ms", Some(ms)).map_err(within)?,
        None => core.master_reboot_down_after,
    };
    Ok(GroupConfig {
        name,
        master,
        master_host: table.master.as_deref().and_then(super::host_name),
        listen,
        read_listen,
        quorum,
        down_after,
        master_reboot_down_after,
        failover_timeout,
        parallel_syncs,
    })
}
