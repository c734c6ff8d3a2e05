//! `SENTINEL` commands that act on failover: FAILOVER, SIMULATE-FAILURE (crash
//! on purpose at a point of a failover, as Sentinel does, for testing), and
//! SIMULATE-PARTITION when fault injection is enabled.
//!
//! The failover itself (election, stages, promotion) is the core's
//! `failover` module; FAILOVER here only starts one without waiting for an
//! agreement that the master is down, and turns a refusal into Sentinel's
//! error text. SIMULATE-PARTITION makes the core treat chosen addresses as
//! unreachable, so partition tests can run on loopback.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::{bulk, error, ok};
use crate::resp::value::OwnedFrame;
use crate::sentinel::core::{Core, SimulatedFailure};
use crate::sentinel::groups::Groups;

impl Core {
    /// `SENTINEL FAILOVER name`: forces a failover now; `+OK` once it started,
    /// the reason as an error when it cannot.
    pub(super) fn failover_command(&mut self, now: Instant) -> OwnedFrame {
        match self.force_failover(now) {
            Ok(()) => ok(),
            Err(e) => error(e.to_string()),
        }
    }

    /// `SENTINEL SIMULATE-PARTITION [ip:port …]`: from now on, pretend the
    /// listed nodes and peers are unreachable (none listed: heal). Only with
    /// fault injection enabled, for partition tests on loopback.
    pub(super) fn simulate_partition(&mut self, addrs: &[String]) -> OwnedFrame {
        let parsed: Result<std::collections::BTreeSet<SocketAddr>, _> =
            addrs.iter().map(|a| a.parse::<SocketAddr>()).collect();
        match parsed {
            Ok(set) => {
                tracing::warn!(unreachable = ?set, "simulated partition");
                self.partitioned = set;
                ok()
            }
            Err(_) => error("ERR addresses must be ip:port"),
        }
    }
}

impl Groups {
    /// `SENTINEL SIMULATE-FAILURE [CRASH-AFTER-ELECTION] [CRASH-AFTER-PROMOTION]
    /// [HELP]`: clears the flags, then sets the ones named, for every group;
    /// `HELP` lists them.
    pub(super) fn simulate_failure_command(&mut self, words: &[String]) -> OwnedFrame {
        let mut flags = SimulatedFailure::default();
        for word in words {
            match word.to_ascii_lowercase().as_str() {
                "crash-after-election" => flags.after_election = true,
                "crash-after-promotion" => flags.after_promotion = true,
                "help" => {
                    return OwnedFrame::Array(vec![
                        bulk("crash-after-election"),
                        bulk("crash-after-promotion"),
                    ]);
                }
                _ => return error("ERR Unknown failure simulation specified"),
            }
        }
        self.simulated_failure = flags;
        for core in self.cores.values_mut() {
            core.simulated_failure = flags;
        }
        ok()
    }
}
