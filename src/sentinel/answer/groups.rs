//! The sentinel port's commands as the whole Sentinel answers them: the one
//! table that decides, for each command, whether it is about one group (and
//! which), about every group, or about the Sentinel itself.
//!
//! * About one group, named in the command (`SENTINEL MASTER name`, `REPLICAS`,
//!   `SENTINELS`, `CKQUORUM`, `FAILOVER`, `GET-MASTER-ADDR-BY-NAME`, `SET`,
//!   `REMOVE`): the group's core answers, through [`Core::answer`]'s table; an
//!   unknown name is Sentinel's "No such master" error.
//! * About every group: `MASTERS`, `INFO`, `ROLE`, `RESET pattern`,
//!   `DEBUG`, `SIMULATE-PARTITION`, and the peer protocol, which names a group
//!   by its master's address (`IS-MASTER-DOWN-BY-ADDR`) or inside a hello
//!   (`PUBLISH`).
//! * About the Sentinel: `MYID`, `MONITOR`, `FLUSHCONFIG`, `CONFIG`.

use bytes::Bytes;
use tokio::time::Instant;

use super::{bulk, error, ok};
use crate::resp::value::OwnedFrame;
use crate::sentinel::api::glob_match;
use crate::sentinel::groups::Groups;
use crate::sentinel::{hello, node};

/// Sentinel's reply to a command naming an unknown group.
const NO_SUCH_MASTER: &str = "ERR No such master with that name";

/// `SENTINEL HELP`.
const HELP: &[&str] = &[
    "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CKQUORUM <master-name>",
    "CONFIG SET <param> <value> | CONFIG GET <param>",
    "DEBUG [<param> <value> ...]",
    "FAILOVER <master-name>",
    "FLUSHCONFIG",
    "GET-MASTER-ADDR-BY-NAME <master-name>",
    "INFO-CACHE <master-name> [<master-name> ...]",
    "IS-MASTER-DOWN-BY-ADDR <ip> <port> <current-epoch> <runid>",
    "MASTER <master-name>",
    "MASTERS",
    "MONITOR <name> <ip> <port> <quorum>",
    "MYID",
    "PENDING-SCRIPTS",
    "REMOVE <master-name>",
    "REPLICAS <master-name>",
    "RESET <pattern>",
    "SENTINELS <master-name>",
    "SET <master-name> <option> <value> [<option> <value> ...]",
    "SIMULATE-FAILURE [CRASH-AFTER-ELECTION] [CRASH-AFTER-PROMOTION] [HELP]",
    "(Valkey's names work too: PRIMARY, PRIMARIES, GET-PRIMARY-ADDR-BY-NAME, IS-PRIMARY-DOWN-BY-ADDR)",
];

/// `SENTINEL PENDING-SCRIPTS`: each script call waiting or running, as
/// Sentinel lists it (`argv`, `flags`, `pid`, `run-time` or `run-delay`,
/// `retry-num`).
fn pending_scripts(now: Instant) -> OwnedFrame {
    let calls = crate::sentinel::scripts::pending();
    OwnedFrame::Array(
        calls
            .into_iter()
            .map(|call| {
                let (timing, ms) = if call.running {
                    ("run-time", now.saturating_duration_since(call.since))
                } else {
                    ("run-delay", call.since.saturating_duration_since(now))
                };
                OwnedFrame::Array(vec![
                    bulk("argv"),
                    OwnedFrame::Array(call.argv.into_iter().map(bulk).collect()),
                    bulk("flags"),
                    bulk(if call.running { "running" } else { "scheduled" }),
                    bulk("pid"),
                    bulk(call.pid.unwrap_or(0).to_string()),
                    bulk(timing),
                    bulk(ms.as_millis().to_string()),
                    bulk("retry-num"),
                    bulk(call.retries.to_string()),
                ])
            })
            .collect(),
    )
}

impl Groups {
    /// Answers one command sent to the sentinel port.
    pub fn answer(&mut self, args: &[Bytes], now: Instant) -> OwnedFrame {
        let Some(name) = args.first() else {
            return error("ERR empty command");
        };
        let words: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let reply = match name.to_ascii_lowercase().as_slice() {
            b"sentinel" => self.sentinel_command(&words[1..], now),
            b"info" => OwnedFrame::BulkString(self.info_text(&words[1..], now).into_bytes()),
            b"role" => OwnedFrame::Array(vec![
                bulk("sentinel"),
                OwnedFrame::Array(self.cores.keys().map(|n| bulk(n.clone())).collect()),
            ]),
            b"publish" => self.publish(&words, now),
            _ => {
                let rest: Vec<String> = words[1..].iter().map(|w| format!("'{w}'")).collect();
                error(format!(
                    "ERR unknown command '{}', with args beginning with: {}",
                    words[0],
                    rest.join(" ")
                ))
            }
        };
        self.sync_epochs();
        reply
    }

    /// `SENTINEL <subcommand> …` at the Sentinel's level; `words[0]` is the
    /// subcommand.
    fn sentinel_command(&mut self, words: &[String], now: Instant) -> OwnedFrame {
        let Some(sub) = words.first() else {
            return error("ERR wrong number of arguments for 'sentinel' command");
        };
        let sub = sub.to_ascii_lowercase();
        match (sub.as_str(), words.len()) {
            ("myid", 1) => bulk(self.myid.clone()),
            ("masters" | "primaries", 1) => OwnedFrame::Array(
                self.cores
                    .values()
                    .map(|core| core.master_fields(now))
                    .collect(),
            ),
            ("monitor", 5) => self.monitor_command(&words[1..], now),
            ("remove", 2) => match self.remove(&words[1]) {
                Ok(()) => ok(),
                Err(e) => error(e.to_string()),
            },
            ("set", _) => self.set_command(&words[1..]),
            ("reset", 2) => {
                let pattern = words[1].as_bytes();
                let mut reset = 0;
                for (name, core) in &mut self.cores {
                    if glob_match(pattern, name.as_bytes()) {
                        core.reset(now);
                        reset += 1;
                    }
                }
                OwnedFrame::Integer(reset)
            }
            ("flushconfig", 1) => {
                self.dirty = true;
                ok()
            }
            ("is-master-down-by-addr" | "is-primary-down-by-addr", 5) => {
                let addr = words[2]
                    .parse::<u16>()
                    .ok()
                    .and_then(|port| node::address(&words[1], port));
                let group = self
                    .cores
                    .values_mut()
                    .find(|core| Some(core.master.addr) == addr);
                match group {
                    Some(core) => core.group_command(words, now),
                    None if addr.is_none() => error("ERR invalid epoch or address"),
                    // Sentinel's answer about a master it does not monitor:
                    // not down, no vote.
                    None => OwnedFrame::Array(vec![
                        OwnedFrame::Integer(0),
                        bulk("*"),
                        OwnedFrame::Integer(0),
                    ]),
                }
            }
            ("debug", n) if n % 2 == 1 => self.debug_command(&words[1..]),
            ("simulate-failure", _) => self.simulate_failure_command(&words[1..]),
            ("pending-scripts", 1) => pending_scripts(now),
            ("help", 1) => OwnedFrame::Array(HELP.iter().map(|line| bulk(*line)).collect()),
            ("info-cache", n) if n >= 2 => self.info_cache(&words[1..], now),
            ("simulate-partition", _) if self.template.fault_injection => {
                let mut reply = ok();
                for core in self.cores.values_mut() {
                    reply = core.group_command(words, now);
                }
                reply
            }
            ("config", _) => self.config_command(&words[1..]),
            (
                "master" | "primary" | "replicas" | "slaves" | "sentinels" | "ckquorum"
                | "failover",
                2,
            ) => match self.cores.get_mut(&words[1]) {
                Some(core) => core.group_command(words, now),
                None => error(NO_SUCH_MASTER),
            },
            ("get-master-addr-by-name" | "get-primary-addr-by-name", 2) => {
                match self.cores.get_mut(&words[1]) {
                    Some(core) => core.group_command(words, now),
                    None => OwnedFrame::Null,
                }
            }
            _ => error(format!(
                "ERR unknown subcommand '{sub}'. Try SENTINEL HELP."
            )),
        }
    }

    /// `PUBLISH __sentinel__:hello payload`: a hello from a peer, taken by
    /// the group it names (hellos about other names are dropped there).
    fn publish(&mut self, words: &[String], now: Instant) -> OwnedFrame {
        match words {
            [_, channel, payload] if channel == hello::CHANNEL => {
                for core in self.cores.values_mut() {
                    core.take_hello(payload, now);
                }
                OwnedFrame::Integer(1)
            }
            [_, _, _] => error("ERR Only HELLO messages are accepted by Sentinel instances."),
            _ => error("ERR wrong number of arguments for 'publish' command"),
        }
    }
}
