//! Host names: a master configured by name (`--master redis-0.cache:6379`,
//! `SENTINEL MONITOR` with `resolve-hostnames yes`) is looked up again while
//! it cannot be reached, so a master that restarts at a new address under the
//! same name (a Kubernetes pod, a VM moved) is found there, as Sentinel finds
//! it when it resolves names at every reconnect.
//!
//! The core does no lookups: [`Core::names_to_look_up`] says which names
//! the runner should resolve, and [`Core::readdress`] takes the answer.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::Core;
use crate::sentinel::node::Node;

impl Core {
    /// The master's host name, with its current address, while the master
    /// cannot be reached (its link is down): the name may point elsewhere
    /// now.
    pub fn names_to_look_up(&self) -> Option<(SocketAddr, String)> {
        let master = &self.master;
        let host = master.host.as_ref()?;
        (!master.link_up).then(|| (master.addr, host.clone()))
    }

    /// The master's name now resolves to `new` instead of `old`: the master
    /// is the node at `new` from now on, under the same config epoch. Its
    /// role must be confirmed there by `INFO` before the route names it.
    pub fn readdress(&mut self, old: SocketAddr, new: SocketAddr, now: Instant) {
        if self.master.addr != old || old == new {
            return;
        }
        tracing::info!(
            group = %self.settings.name,
            host = ?self.master.host,
            %old,
            %new,
            "the master's host name points to a new address"
        );
        let host = self.master.host.take();
        self.replicas.remove(&new);
        self.master = Node::new(new, now);
        self.master.host = host;
        self.dirty = true;
    }
}
