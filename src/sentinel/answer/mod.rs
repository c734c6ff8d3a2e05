//! Answers to the sentinel port's commands that need the Sentinel's state:
//! `SENTINEL …`, `INFO`, `ROLE` and `PUBLISH` (hello messages from peers).
//! Replies use Redis Sentinel's field names and formats, so Sentinel-aware
//! clients and real Sentinels read them unchanged.
//!
//! Two tables, and every subcommand is listed in exactly one of them:
//! * `groups.rs`: the entry point, [`Groups::answer`]: commands about the
//!   Sentinel or every group (MYID, MASTERS, MONITOR, REMOVE, SET, RESET,
//!   FLUSHCONFIG, CONFIG, DEBUG, INFO, ROLE, PUBLISH); a command naming one
//!   group goes to that group's table;
//! * this file, [`Core::group_command`]: commands about one group.
//!
//! The handlers live by family:
//! * `queries.rs`: what a group knows (MASTER, REPLICAS/SLAVES, SENTINELS,
//!   GET-MASTER-ADDR-BY-NAME, CKQUORUM);
//! * `monitor.rs`: the groups themselves at run time (MONITOR, SET);
//! * `configuration.rs`: RESET, CONFIG GET/SET and the DEBUG timers;
//! * `failover.rs`: FAILOVER and, with fault injection, SIMULATE-PARTITION;
//! * `peer.rs`: what peers send (IS-MASTER-DOWN-BY-ADDR);
//! * `status.rs`: a group's whole-state reports: its `INFO` line and the
//!   `/status` snapshot;
//! * `info.rs`: `INFO`, by section.
//!
//! The core builds RESP2 frames; the sentinel port decides which of them are
//! maps for RESP3 clients (`core_shape` in the port's encoder).
//!
//! [`Groups::answer`]: crate::sentinel::groups::Groups::answer

mod configuration;
mod failover;
mod groups;
mod info;
mod monitor;
mod peer;
mod queries;
mod status;

use std::time::Duration;

use tokio::time::Instant;

use super::core::Core;
use crate::resp::value::OwnedFrame;

/// A bulk string holding `s`.
fn bulk(s: impl Into<String>) -> OwnedFrame {
    OwnedFrame::BulkString(s.into().into_bytes())
}

/// An error reply; `s` starts with its code (`ERR`, `NOQUORUM`, …).
fn error(s: impl Into<String>) -> OwnedFrame {
    OwnedFrame::Error(s.into())
}

/// `+OK`.
fn ok() -> OwnedFrame {
    OwnedFrame::SimpleString(b"OK".to_vec())
}

/// A flat `[key, value, …]` array, as Sentinel answers `SENTINEL master` in
/// RESP2. A command answering one must be listed in the sentinel port's
/// `core_shape` (`api/encode.rs`), which makes it a map for RESP3 clients.
fn fields(pairs: Vec<(&str, String)>) -> OwnedFrame {
    OwnedFrame::Array(
        pairs
            .into_iter()
            .flat_map(|(k, v)| [bulk(k), bulk(v)])
            .collect(),
    )
}

/// A duration in whole milliseconds, as Sentinel prints them.
fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Milliseconds from `t` to `now`, or `0` when `t` never happened.
fn since(now: Instant, t: Option<Instant>) -> String {
    t.map_or("0".to_owned(), |t| millis(now.saturating_duration_since(t)))
}

impl Core {
    /// `SENTINEL <subcommand> …` about this group: the table of every
    /// subcommand that concerns one group, matched on its lower-case name and
    /// its word count (`args[0]` is the subcommand). The Sentinel's own table
    /// ([`Groups::answer`](crate::sentinel::groups::Groups::answer), in
    /// `groups.rs`) hands these over once it has found the group. A name or
    /// arity not listed is Sentinel's "unknown subcommand" error. Valkey's
    /// names (`PRIMARY`, `GET-PRIMARY-ADDR-BY-NAME`, `IS-PRIMARY-DOWN-BY-ADDR`)
    /// are answered like Redis's.
    pub fn group_command(&mut self, args: &[String], now: Instant) -> OwnedFrame {
        let Some(sub) = args.first() else {
            return error("ERR wrong number of arguments for 'sentinel' command");
        };
        let sub = sub.to_ascii_lowercase();
        /// The master name a subcommand was given, if any.
        fn named(args: &[String]) -> Option<&str> {
            args.get(1).map(String::as_str)
        }
        match (sub.as_str(), args.len()) {
            // Queries.
            ("master" | "primary", 2) => self.if_named(named(args), |core| core.master_fields(now)),
            ("replicas" | "slaves", 2) => self.if_named(named(args), |core| core.replica_list(now)),
            ("sentinels", 2) => self.if_named(named(args), |core| core.sentinel_list(now)),
            ("get-master-addr-by-name" | "get-primary-addr-by-name", 2) => {
                self.master_addr_by_name(named(args))
            }
            ("ckquorum", 2) => self.if_named(named(args), |core| core.ckquorum(now)),
            // The peer protocol.
            ("is-master-down-by-addr" | "is-primary-down-by-addr", 5) => {
                self.is_master_down(&args[1..], now)
            }
            // Failover and fault injection.
            ("failover", 2) => self.if_named(named(args), |core| core.failover_command(now)),
            ("simulate-partition", _) if self.settings.fault_injection => {
                self.simulate_partition(&args[1..])
            }
            _ => error(format!(
                "ERR unknown subcommand '{sub}'. Try SENTINEL HELP."
            )),
        }
    }

    /// Runs `answer` when `name` is the monitored master's name; Sentinel's
    /// "No such master" error otherwise.
    fn if_named(
        &mut self,
        name: Option<&str>,
        answer: impl FnOnce(&mut Core) -> OwnedFrame,
    ) -> OwnedFrame {
        if name == Some(self.settings.name.as_str()) {
            answer(self)
        } else {
            error("ERR No such master with that name")
        }
    }
}
