//! Answers to the Sentinel API commands that need the core's state: `SENTINEL …`,
//! `INFO`, `ROLE` and `PUBLISH` (hello messages from peers). Replies use Redis
//! Sentinel's field names and formats, so Sentinel-aware clients and real
//! Sentinels read them unchanged.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::core::Core;
use super::failover::Stage;
use super::hello;
use super::node::{Node, Peer};
use crate::resp::value::OwnedFrame;

fn bulk(s: impl Into<String>) -> OwnedFrame {
    OwnedFrame::BulkString(s.into().into_bytes())
}

fn error(s: impl Into<String>) -> OwnedFrame {
    OwnedFrame::Error(s.into())
}

fn ok() -> OwnedFrame {
    OwnedFrame::SimpleString(b"OK".to_vec())
}

/// A flat `[key, value, …]` array, as Sentinel answers `SENTINEL master` in
/// RESP2. A command answering one must be listed in the sentinel port's
/// `core_shape` (api.rs), which makes it a map for RESP3 clients.
fn fields(pairs: Vec<(&str, String)>) -> OwnedFrame {
    OwnedFrame::Array(
        pairs
            .into_iter()
            .flat_map(|(k, v)| [bulk(k), bulk(v)])
            .collect(),
    )
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

fn since(now: Instant, t: Option<Instant>) -> String {
    t.map_or("0".to_owned(), |t| millis(now.saturating_duration_since(t)))
}

impl Core {
    /// Answers one command sent to the sentinel port.
    pub fn answer(&mut self, args: &[Bytes], now: Instant) -> OwnedFrame {
        let Some(name) = args.first() else {
            return error("ERR empty command");
        };
        let words: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        match name.to_ascii_lowercase().as_slice() {
            b"sentinel" => self.sentinel_command(&words[1..], now),
            b"info" => OwnedFrame::BulkString(self.info_text(now).into_bytes()),
            b"role" => OwnedFrame::Array(vec![
                bulk("sentinel"),
                OwnedFrame::Array(vec![bulk(self.settings.name.clone())]),
            ]),
            b"publish" => match words.as_slice() {
                [_, channel, payload] if channel == hello::CHANNEL => {
                    self.take_hello(payload, now);
                    OwnedFrame::Integer(1)
                }
                [_, _, _] => error("ERR Only HELLO messages are accepted by Sentinel instances."),
                _ => error("ERR wrong number of arguments for 'publish' command"),
            },
            _ => {
                let rest: Vec<String> = words[1..].iter().map(|w| format!("'{w}'")).collect();
                error(format!(
                    "ERR unknown command '{}', with args beginning with: {}",
                    words[0],
                    rest.join(" ")
                ))
            }
        }
    }

    fn sentinel_command(&mut self, args: &[String], now: Instant) -> OwnedFrame {
        let Some(sub) = args.first() else {
            return error("ERR wrong number of arguments for 'sentinel' command");
        };
        let sub = sub.to_ascii_lowercase();
        fn named(args: &[String]) -> Option<&str> {
            args.get(1).map(String::as_str)
        }
        match (sub.as_str(), args.len()) {
            ("myid", 1) => bulk(self.myid.clone()),
            ("masters", 1) => OwnedFrame::Array(vec![self.master_fields(now)]),
            ("master", 2) => self.if_named(named(args), |core| core.master_fields(now)),
            ("replicas" | "slaves", 2) => self.if_named(named(args), |core| {
                OwnedFrame::Array(
                    core.replicas
                        .values()
                        .map(|n| core.replica_fields(n, now))
                        .collect(),
                )
            }),
            ("sentinels", 2) => self.if_named(named(args), |core| {
                OwnedFrame::Array(
                    core.peers
                        .values()
                        .filter(|p| p.run_id.is_some() || p.voter)
                        .map(|p| core.peer_fields(p, now))
                        .collect(),
                )
            }),
            ("get-master-addr-by-name", 2) => {
                if named(args) != Some(self.settings.name.as_str()) {
                    return OwnedFrame::Null;
                }
                let (addr, _) = self.announced_master();
                OwnedFrame::Array(vec![
                    bulk(addr.ip().to_string()),
                    bulk(addr.port().to_string()),
                ])
            }
            ("is-master-down-by-addr", 5) => self.is_master_down(&args[1..], now),
            ("ckquorum", 2) => self.if_named(named(args), |core| core.ckquorum(now)),
            ("failover", 2) => self.if_named(named(args), |core| match core.force_failover(now) {
                Ok(()) => ok(),
                Err(e) => error(e.to_string()),
            }),
            ("reset", 2) => {
                let matched = args[1] == "*" || args[1] == self.settings.name;
                if matched {
                    self.reset(now);
                }
                OwnedFrame::Integer(i64::from(matched))
            }
            ("flushconfig", 1) => {
                self.dirty = true;
                ok()
            }
            ("config", 3) if args[1].eq_ignore_ascii_case("get") => self.config_get(&args[2]),
            ("simulate-partition", _) if self.settings.fault_injection => {
                self.simulate_partition(&args[1..])
            }
            ("debug", 1) => self.debug_timers(),
            ("debug", n) if n % 2 == 1 => self.set_timers(&args[1..]),
            _ => error(format!(
                "ERR Unknown sentinel subcommand or wrong number of arguments for '{sub}'"
            )),
        }
    }

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

    fn master_fields(&self, now: Instant) -> OwnedFrame {
        let (addr, _) = self.announced_master();
        let node = &self.master;
        let mut flags = vec!["master"];
        if node.sdown_since.is_some() {
            flags.push("s_down");
        }
        if self.odown_since.is_some() {
            flags.push("o_down");
        }
        if !node.link_up {
            flags.push("disconnected");
        }
        if self.failover.is_some() {
            flags.push("failover_in_progress");
        }
        if self
            .failover
            .as_ref()
            .is_some_and(|f| f.stage >= Stage::ReconfReplicas)
        {
            flags.push("promoted");
        }
        let mut pairs = vec![
            ("name", self.settings.name.clone()),
            ("ip", addr.ip().to_string()),
            ("port", addr.port().to_string()),
            ("runid", node.run_id.clone().unwrap_or_default()),
            ("flags", flags.join(",")),
        ];
        pairs.extend(self.link_fields(node, now));
        if let Some(t) = node.sdown_since {
            pairs.push(("s-down-time", millis(now.saturating_duration_since(t))));
        }
        if let Some(t) = self.odown_since {
            pairs.push(("o-down-time", millis(now.saturating_duration_since(t))));
        }
        pairs.extend([
            ("config-epoch", self.config_epoch.to_string()),
            ("num-slaves", self.replicas.len().to_string()),
            (
                "num-other-sentinels",
                self.peers
                    .values()
                    .filter(|p| p.run_id.is_some())
                    .count()
                    .to_string(),
            ),
            ("quorum", self.settings.quorum.to_string()),
            ("failover-timeout", millis(self.settings.failover_timeout)),
            ("parallel-syncs", self.settings.parallel_syncs.to_string()),
        ]);
        if let Some(f) = &self.failover {
            pairs.push(("failover-state", format!("{:?}", f.stage)));
        }
        fields(pairs)
    }

    fn link_fields(&self, node: &Node, now: Instant) -> Vec<(&'static str, String)> {
        let role = if node.reports_master() {
            "master"
        } else {
            "slave"
        };
        vec![
            ("link-pending-commands", "0".to_owned()),
            ("link-refcount", "1".to_owned()),
            ("last-ping-sent", since(now, node.ping_sent)),
            ("last-ok-ping-reply", millis(node.last_reply_age(now))),
            ("last-ping-reply", millis(node.last_reply_age(now))),
            ("down-after-milliseconds", millis(self.settings.down_after)),
            (
                "info-refresh",
                node.last_info
                    .map_or("0".to_owned(), |t| millis(now.saturating_duration_since(t))),
            ),
            ("role-reported", role.to_owned()),
            (
                "role-reported-time",
                millis(now.saturating_duration_since(node.role_changed_at)),
            ),
        ]
    }

    fn replica_fields(&self, node: &Node, now: Instant) -> OwnedFrame {
        let mut flags = vec!["slave"];
        if node.sdown_since.is_some() {
            flags.push("s_down");
        }
        if !node.link_up {
            flags.push("disconnected");
        }
        let mut pairs = vec![
            ("name", node.addr.to_string()),
            ("ip", node.addr.ip().to_string()),
            ("port", node.addr.port().to_string()),
            ("runid", node.run_id.clone().unwrap_or_default()),
            ("flags", flags.join(",")),
        ];
        pairs.extend(self.link_fields(node, now));
        if let Some(super::info::ReportedRole::Replica(r)) = node.role() {
            let down = if r.link_up {
                Duration::ZERO
            } else {
                r.link_down_since.unwrap_or_default()
            };
            pairs.extend([
                ("master-link-down-time", millis(down)),
                (
                    "master-link-status",
                    if r.link_up { "ok" } else { "err" }.to_owned(),
                ),
                ("master-host", r.master_host.clone()),
                ("master-port", r.master_port.to_string()),
                ("slave-priority", r.priority.to_string()),
                ("slave-repl-offset", r.offset.to_string()),
                ("replica-announced", u8::from(r.announced).to_string()),
            ]);
        }
        fields(pairs)
    }

    fn peer_fields(&self, peer: &Peer, now: Instant) -> OwnedFrame {
        let mut flags = vec!["sentinel"];
        if !self.in_touch(peer, now) {
            flags.push("s_down");
        }
        if !peer.link_up {
            flags.push("disconnected");
        }
        let run_id = peer.run_id.clone().unwrap_or_default();
        let (leader, leader_epoch) = peer.leader.clone().unwrap_or(("*".to_owned(), 0));
        fields(vec![
            (
                "name",
                if run_id.is_empty() {
                    peer.addr.to_string()
                } else {
                    run_id.clone()
                },
            ),
            ("ip", peer.addr.ip().to_string()),
            ("port", peer.addr.port().to_string()),
            ("runid", run_id),
            ("flags", flags.join(",")),
            ("last-ok-ping-reply", since(now, peer.last_heard)),
            ("voted-leader", leader),
            ("voted-leader-epoch", leader_epoch.to_string()),
            ("voter", u8::from(peer.voter).to_string()),
        ])
    }

    /// `SENTINEL is-master-down-by-addr ip port epoch runid`: this proxy's view
    /// of the master and, when `runid` is not `*`, its vote.
    fn is_master_down(&mut self, args: &[String], now: Instant) -> OwnedFrame {
        let [ip, port, epoch, runid] = args else {
            return error("ERR wrong number of arguments");
        };
        let (Ok(epoch), Ok(addr)) = (
            epoch.parse::<u64>(),
            format!("{ip}:{port}").parse::<SocketAddr>(),
        ) else {
            return error("ERR invalid epoch or address");
        };
        // An observer's view never counts towards anyone's ODOWN.
        let down = !self.settings.observer
            && self.tilt_since.is_none()
            && addr == self.master.addr
            && self.master.sdown_since.is_some();
        let from_partitioned = self.peers.values().any(|p| {
            p.run_id.as_deref() == Some(runid.as_str()) && self.partitioned.contains(&p.addr)
        });
        if from_partitioned {
            // Across a simulated partition the request would never arrive.
            return error("ERR simulated partition");
        }
        let (leader, leader_epoch) = if runid == "*" {
            ("*".to_owned(), 0)
        } else {
            match self.vote_for(runid, epoch, now) {
                Some(vote) => (vote.leader, vote.epoch),
                None => ("*".to_owned(), 0),
            }
        };
        OwnedFrame::Array(vec![
            OwnedFrame::Integer(i64::from(down)),
            bulk(leader),
            OwnedFrame::Integer(leader_epoch as i64),
        ])
    }

    fn ckquorum(&self, now: Instant) -> OwnedFrame {
        let voters = self.peers.values().filter(|p| p.voter).count() as u32
            + u32::from(!self.settings.observer);
        let usable = self.peers_in_touch(now) + u32::from(!self.settings.observer);
        let majority = voters / 2 + 1;
        let mut problems = Vec::new();
        if usable < self.settings.quorum {
            problems.push(format!(
                "{usable} usable voters, {} needed for quorum",
                self.settings.quorum
            ));
        }
        if usable < majority {
            problems.push(format!(
                "{usable} usable voters, {majority} needed for a majority to authorize a failover"
            ));
        }
        if problems.is_empty() {
            OwnedFrame::SimpleString(
                format!(
                    "OK {usable} usable Sentinels. Quorum and failover authorization can be reached"
                )
                .into_bytes(),
            )
        } else {
            error(format!("NOQUORUM {}", problems.join("; ")))
        }
    }

    /// `SENTINEL RESET`: forget replicas and discovered peers; they are found
    /// again from `INFO` and hellos within seconds.
    fn reset(&mut self, now: Instant) {
        self.replicas.clear();
        self.peers.retain(|_, p| p.voter);
        self.failover = None;
        self.odown_since = None;
        self.master = Node::new(self.master.addr, now);
        self.dirty = true;
        self.events.emit(
            "+reset-master",
            super::events::master(&self.settings.name, self.master.addr),
        );
    }

    fn config_get(&self, pattern: &str) -> OwnedFrame {
        let announce = self.settings.announce;
        let known = [
            ("announce-ip", announce.ip().to_string()),
            ("announce-port", announce.port().to_string()),
            ("announce-hostnames", "no".to_owned()),
            ("resolve-hostnames", "no".to_owned()),
        ];
        let pairs = known
            .into_iter()
            .filter(|(k, _)| pattern == "*" || pattern.eq_ignore_ascii_case(k))
            .collect();
        fields(pairs)
    }

    /// `SENTINEL SIMULATE-PARTITION [ip:port …]`: from now on, pretend the
    /// listed nodes and peers are unreachable (none listed: heal). Only with
    /// fault injection enabled, for partition tests on loopback.
    fn simulate_partition(&mut self, addrs: &[String]) -> OwnedFrame {
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

    fn debug_timers(&self) -> OwnedFrame {
        let t = &self.timers;
        fields(vec![
            ("info-period", millis(t.info)),
            ("ping-period", millis(t.ping)),
            ("ask-period", millis(t.ask)),
            ("publish-period", millis(t.publish)),
            ("default-down-after", millis(self.settings.down_after)),
            ("tilt-trigger", millis(t.tilt_trigger)),
            ("tilt-period", millis(t.tilt_period)),
            ("slave-reconf-timeout", millis(t.reconf_timeout)),
            (
                "default-failover-timeout",
                millis(self.settings.failover_timeout),
            ),
        ])
    }

    /// `SENTINEL DEBUG name ms [name ms …]`: changes timers, for tests.
    fn set_timers(&mut self, pairs: &[String]) -> OwnedFrame {
        let mut timers = self.timers;
        for pair in pairs.chunks_exact(2) {
            let Ok(ms) = pair[1].parse::<u64>() else {
                return error(format!(
                    "ERR Invalid argument '{}' for SENTINEL DEBUG",
                    pair[1]
                ));
            };
            let d = Duration::from_millis(ms.max(1));
            match pair[0].to_ascii_lowercase().as_str() {
                "info-period" => timers.info = d,
                "ping-period" => timers.ping = d,
                "ask-period" => timers.ask = d,
                "publish-period" => timers.publish = d,
                "tilt-trigger" => timers.tilt_trigger = d,
                "tilt-period" => timers.tilt_period = d,
                "slave-reconf-timeout" => timers.reconf_timeout = d,
                other => return error(format!("ERR Unknown timer '{other}'")),
            }
        }
        self.timers = timers;
        ok()
    }

    /// The snapshot for `/status`, `/readyz` and the topology metrics.
    pub fn status(&self, now: Instant) -> crate::status::Status {
        use super::info::ReportedRole;
        use crate::status::{NodeStatus, PeerStatus, Status};
        let master_offset = self.master.info.as_ref().map(|i| i.master_repl_offset);
        let node = |n: &Node, role: &'static str| NodeStatus {
            addr: n.addr.to_string(),
            role,
            reported_role: match n.role() {
                Some(ReportedRole::Master) => "master",
                Some(ReportedRole::Replica(_)) => "replica",
                _ => "unknown",
            },
            up: n.link_up
                && n.unanswered_since
                    .is_none_or(|t| now.saturating_duration_since(t) < self.settings.down_after),
            sdown: n.sdown_since.is_some(),
            lag_bytes: match (n.role(), master_offset) {
                (Some(ReportedRole::Replica(r)), Some(m)) => Some(m.saturating_sub(r.offset)),
                _ => None,
            },
        };
        let (master, _) = self.announced_master();
        Status {
            source: "sentinel-core",
            master_name: self.settings.name.clone(),
            master: Some(master.to_string()),
            held_reason: self.route(now).0.is_none().then(|| {
                self.fence_reason(now)
                    .unwrap_or("the master's role is not confirmed yet")
                    .to_owned()
            }),
            current_epoch: self.current_epoch,
            config_epoch: self.config_epoch,
            sdown: self.master.sdown_since.is_some(),
            odown: self.odown_since.is_some(),
            tilt: self.tilt_since.is_some(),
            failover: self.failover.as_ref().map(|f| format!("{:?}", f.stage)),
            nodes: std::iter::once(node(&self.master, "master"))
                .chain(self.replicas.values().map(|n| node(n, "replica")))
                .collect(),
            peers: self
                .peers
                .values()
                .map(|p| PeerStatus {
                    addr: p.addr.to_string(),
                    run_id: p.run_id.clone(),
                    voter: p.voter,
                    reachable: self.in_touch(p, now),
                })
                .collect(),
            quorum_reachable: self.has_majority(now),
            recent_events: self
                .events
                .recent()
                .map(|e| format!("{} {}", e.channel, e.message))
                .collect(),
        }
    }

    /// `INFO`: the server and sentinel sections, as Sentinel prints them.
    pub fn info_text(&self, now: Instant) -> String {
        let (addr, _) = self.announced_master();
        let status = if self.odown_since.is_some() {
            "odown"
        } else if self.master.sdown_since.is_some() {
            "sdown"
        } else {
            "ok"
        };
        let sentinels = self.peers.values().filter(|p| p.run_id.is_some()).count() + 1;
        let fence = self.fence_reason(now).unwrap_or("none");
        format!(
            "# Server\r\nredis_version:7.0.0\r\nredis_mode:sentinel\r\nrun_id:{}\r\n\
             tcp_port:{}\r\nsentinel_proxy_version:{}\r\n\r\n\
             # Sentinel\r\nsentinel_masters:1\r\nsentinel_tilt:{}\r\n\
             sentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\n\
             sentinel_simulate_failure_flags:0\r\nsentinel_current_epoch:{}\r\n\
             sentinel_fenced:{}\r\n\
             master0:name={},status={status},address={addr},slaves={},sentinels={sentinels}\r\n",
            self.myid,
            self.settings.announce.port(),
            env!("CARGO_PKG_VERSION"),
            u8::from(self.tilt_since.is_some()),
            self.current_epoch,
            fence,
            self.settings.name,
            self.replicas.len(),
        )
    }
}
