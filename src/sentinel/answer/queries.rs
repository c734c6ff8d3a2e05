//! `SENTINEL` queries: what the core knows about the master, its replicas and
//! the other Sentinels, in Redis Sentinel's field names and order.
//!
//! * MASTERS and MASTER answer the master's field list
//!   ([`Core::master_fields`]), MASTERS as a list of one;
//! * REPLICAS (SLAVES) a list of replica field lists;
//! * SENTINELS a list of peer field lists;
//! * GET-MASTER-ADDR-BY-NAME the announced master's `[ip, port]`;
//! * CKQUORUM whether enough voters are in touch to reach ODOWN and to
//!   authorize a failover;
//! * INFO-CACHE the last `INFO` of each node of the named groups.
//!
//! None of them changes the state. Field lists are flat `[key, value, …]`
//! arrays built with `fields`; the sentinel port sends them as maps to RESP3
//! clients. Times are milliseconds since the event, `0` when it never
//! happened, as Sentinel prints them.

use std::time::Duration;

use tokio::time::Instant;

use super::{bulk, error, fields, millis, since};
use crate::resp::value::OwnedFrame;
use crate::sentinel::core::Core;
use crate::sentinel::groups::Groups;
use crate::sentinel::info::ReportedRole;
use crate::sentinel::node::{Node, Peer};

impl Core {
    /// `SENTINEL REPLICAS` (`SLAVES`): one field list per known replica, in
    /// address order, except those whose `INFO` says `replica_announced:0`
    /// (they stay in `num-slaves`, as in Sentinel).
    pub(super) fn replica_list(&self, now: Instant) -> OwnedFrame {
        OwnedFrame::Array(
            self.replicas
                .values()
                .filter(|n| !matches!(n.role(), Some(ReportedRole::Replica(r)) if !r.announced))
                .map(|n| self.replica_fields(n, now))
                .collect(),
        )
    }

    /// `SENTINEL SENTINELS`: one field list per peer heard from (it has a run
    /// id) or configured as a voter, in address order.
    pub(super) fn sentinel_list(&self, now: Instant) -> OwnedFrame {
        OwnedFrame::Array(
            self.peers
                .values()
                .filter(|p| p.run_id.is_some() || p.voter)
                .map(|p| self.peer_fields(p, now))
                .collect(),
        )
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME`: `[ip, port]` of the announced master,
    /// or a null (a null array for RESP2 clients) for any other name.
    pub(super) fn master_addr_by_name(&self, name: Option<&str>) -> OwnedFrame {
        if name != Some(self.settings.name.as_str()) {
            return OwnedFrame::Null;
        }
        let (addr, _) = self.announced_master();
        OwnedFrame::Array(vec![
            bulk(self.shown_host(addr)),
            bulk(addr.port().to_string()),
        ])
    }

    /// `SENTINEL MASTER`: the master's fields, flags (`s_down`, `o_down`,
    /// `failover_in_progress`, …) and the monitoring settings. `promoted` is
    /// set once a failover reconfigures the replicas, `s-down-time` and
    /// `o-down-time` appear only while the master is down, and
    /// `failover-state` only during a failover.
    pub(super) fn master_fields(&self, now: Instant) -> OwnedFrame {
        let (addr, _) = self.announced_master();
        let node = &self.master;
        let mut flags = vec!["master"];
        if node.sdown.is_down() {
            flags.push("s_down");
        }
        if self.odown.is_down() {
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
            .is_some_and(|f| f.stage.reconfiguring().is_some())
        {
            flags.push("promoted");
        }
        let mut pairs = vec![
            ("name", self.settings.name.clone()),
            ("ip", self.shown_host(addr)),
            ("port", addr.port().to_string()),
            ("runid", node.run_id.clone().unwrap_or_default()),
            ("flags", flags.join(",")),
        ];
        pairs.extend(self.link_fields(node, now));
        if let Some(t) = node.sdown.down_since() {
            pairs.push(("s-down-time", millis(now.saturating_duration_since(t))));
        }
        if let Some(t) = self.odown.down_since() {
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
            pairs.push(("failover-state", f.stage.as_str().to_owned()));
        }
        fields(pairs)
    }

    /// The fields Sentinel shows for the link to any monitored node, master
    /// or replica: ping times, `INFO` age and the role the node reports.
    /// There is one link per node here, so the pending commands are always 0
    /// and the reference count 1.
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

    /// One replica's fields, with what its `INFO` reports about replication
    /// (its master, link status, priority, offset) once it reported as a
    /// replica.
    fn replica_fields(&self, node: &Node, now: Instant) -> OwnedFrame {
        let mut flags = vec!["slave"];
        if node.sdown.is_down() {
            flags.push("s_down");
        }
        if !node.link_up {
            flags.push("disconnected");
        }
        let host = self.shown_host(node.addr);
        let name = match node.addr.ip() {
            std::net::IpAddr::V6(_) if host.contains(':') => {
                format!("[{host}]:{}", node.addr.port())
            }
            _ => format!("{host}:{}", node.addr.port()),
        };
        let mut pairs = vec![
            ("name", name),
            ("ip", host),
            ("port", node.addr.port().to_string()),
            ("runid", node.run_id.clone().unwrap_or_default()),
            ("flags", flags.join(",")),
        ];
        pairs.extend(self.link_fields(node, now));
        if let Some(ReportedRole::Replica(r)) = node.role() {
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

    /// One peer Sentinel's fields, with its last vote. A peer not heard from
    /// yet (no run id) is named by its address; `s_down` means it is not in
    /// touch.
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

    /// `SENTINEL CKQUORUM`: `+OK` when the voters in touch (this proxy
    /// included unless it observes) reach both the quorum and a majority;
    /// `-NOQUORUM` naming what is missing otherwise. The majority counts
    /// every voter, in touch or not.
    pub(super) fn ckquorum(&self, now: Instant) -> OwnedFrame {
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
}

impl Groups {
    /// `SENTINEL INFO-CACHE name…`: for each named group that exists, its
    /// name and the last `INFO` of the master then of each replica, each as
    /// `[milliseconds since it arrived, the text or null]`.
    pub(super) fn info_cache(&self, names: &[String], now: Instant) -> OwnedFrame {
        let mut reply = Vec::new();
        for name in names {
            let Some(core) = self.cores.get(name) else {
                continue;
            };
            let nodes = std::iter::once(&core.master).chain(core.replicas.values());
            let cached = nodes
                .map(|node| {
                    OwnedFrame::Array(vec![
                        OwnedFrame::Integer(node.last_info.map_or(0, |t| {
                            i64::try_from(now.saturating_duration_since(t).as_millis())
                                .unwrap_or(i64::MAX)
                        })),
                        node.info_text
                            .as_ref()
                            .map_or(OwnedFrame::Null, |text| bulk(text.clone())),
                    ])
                })
                .collect();
            reply.push(bulk(name.clone()));
            reply.push(OwnedFrame::Array(cached));
        }
        OwnedFrame::Array(reply)
    }
}
