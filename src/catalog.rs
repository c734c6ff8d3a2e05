//! Learns the command table from the master's own `COMMAND` reply (control path).
//!
//! Until it succeeds the data path classifies with the built-in table; module
//! commands and commands of newer Redis versions are classified right once the
//! server has been asked. The table is re-read whenever a new master is
//! published, since a failover may land on a different Redis version.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::backend::connect::Dialer;
use crate::backend::probe::Probe;
use crate::config::Credentials;
use crate::resp::command::CommandTable;
use crate::switch::SwitchReader;

/// Deadline for the `COMMAND` call (its reply is a few hundred kB).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Asks `addr` for `COMMAND` and builds a table from the reply.
pub async fn fetch(dialer: &Dialer, addr: SocketAddr, auth: &Credentials) -> Option<CommandTable> {
    let mut probe = Probe::connect(dialer, addr, auth, COMMAND_TIMEOUT)
        .await
        .ok()?;
    let reply = probe.call(&["COMMAND"]).await.ok()?;
    CommandTable::from_command_reply(&reply)
}

/// Keeps `table` in step with the current master until `cancel` fires.
pub async fn follow(
    dialer: Dialer,
    switch: SwitchReader,
    auth: Credentials,
    table: Arc<ArcSwap<CommandTable>>,
    cancel: CancellationToken,
) {
    let mut learned_from: Option<SocketAddr> = None;
    loop {
        let topology = switch.current();
        if let Some(master) = topology.master.filter(|m| Some(*m) != learned_from) {
            match fetch(&dialer, master, &auth).await {
                Some(learned) => {
                    info!(%master, commands = learned.len(), "command table read from COMMAND");
                    table.store(Arc::new(learned));
                    learned_from = Some(master);
                }
                None => debug!(%master, "COMMAND failed; keeping the current table"),
            }
        }
        let retry = tokio::time::sleep(Duration::from_secs(5));
        tokio::select! {
            // The control path stops.
            _ = cancel.cancelled() => return,
            // A newer snapshot, or the proxy is stopping.
            _ = topology.retired() => {}
            // The last attempt failed: try again.
            _ = retry, if learned_from.is_none() || topology.master != learned_from => {}
        }
        if topology.is_retired() && switch.current().generation == topology.generation {
            // Retired without a successor: the proxy is stopping. Without
            // this wait the loop would spin on the control thread while
            // sessions drain, starving the health endpoints and the core.
            cancel.cancelled().await;
            return;
        }
    }
}
