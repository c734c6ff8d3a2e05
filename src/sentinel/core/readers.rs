//! The replicas a read endpoint may send its clients to.
//!
//! A replica qualifies when the core can use it and its master vouches for
//! it: it is not SDOWN and answers on its link; its last `INFO` says it
//! replicates from the current master with the link up; and the master's
//! last `INFO` lists it online, with a lag (seconds since its last
//! acknowledgement, Redis's own measure) no more than the endpoint allows.
//! A replica being promoted, one that follows another master, and one the
//! master no longer lists all drop out, and their sessions move.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Core;
use crate::sentinel::info::ReplicaLine;
use crate::sentinel::node::{self, Node};
use crate::switch::Reader;

/// Whether the master's `slaveN:` line is about `replica` (by IP address or
/// by the host name the replica is known by; no lookup).
fn describes(line: &ReplicaLine, replica: &Node) -> bool {
    line.port == replica.addr.port()
        && (node::address(&line.ip, line.port) == Some(replica.addr)
            || replica.host.as_deref() == Some(line.ip.as_str()))
}

impl Core {
    /// The replicas reads may use now, by address; empty unless a read
    /// endpoint asked ([`Core::serves_reads`]).
    pub fn readers(&self) -> Vec<Reader> {
        let Some(max_lag) = self.serves_reads else {
            return Vec::new();
        };
        let master = self.master.addr;
        let names = self.settings.resolve_hostnames;
        let Some(report) = self
            .master
            .info
            .as_ref()
            .filter(|_| self.master.reports_master())
        else {
            return Vec::new();
        };
        let max_lag_secs = max_lag.as_millis() / 1000;
        self.replicas
            .values()
            .filter(|replica| {
                !replica.sdown.is_down()
                    && replica.link_up
                    && replica.follows(master, names)
                    && replica.replicating().is_some_and(|(_, _, up)| up)
                    && report.replicas.iter().any(|line| {
                        line.online
                            && describes(line, replica)
                            && line.lag.is_some_and(|lag| u128::from(lag) <= max_lag_secs)
                    })
            })
            .map(|replica| Reader {
                addr: replica.addr,
                host: replica.host.as_deref().map(Arc::from),
            })
            .collect()
    }

    /// Each known replica's lag in seconds as its master last reported it,
    /// for `/status`.
    pub fn replica_lags(&self) -> Vec<(SocketAddr, u64)> {
        let lines = self.master.info.iter().flat_map(|r| r.replicas.iter());
        let lines: Vec<&ReplicaLine> = lines.collect();
        self.replicas
            .values()
            .filter_map(|replica| {
                let line = lines.iter().find(|l| describes(l, replica))?;
                Some((replica.addr, line.lag?))
            })
            .collect()
    }
}
