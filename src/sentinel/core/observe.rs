//! Replies from the links: `PING` answers, `INFO` reports (roles, replicas,
//! failover progress, replicas to correct) and peers' answers to
//! `is-master-down-by-addr`.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::{Core, elapsed};
use crate::backend::probe::ProbeError;
use crate::resp::value::{self, OwnedFrame};
use crate::sentinel::effect::{Target, replicaof};
use crate::sentinel::events;
use crate::sentinel::info::{self, ReportedRole};
use crate::sentinel::link::Sent;
use crate::sentinel::node::Node;

/// A replica claiming master (or following the wrong one) is corrected only
/// after it has done so for this many hello periods, as Sentinel does.
const FIX_AFTER_PUBLISH_PERIODS: u32 = 4;

impl Core {
    /// Takes in one reply from a link.
    pub fn observe(
        &mut self,
        addr: SocketAddr,
        sent: Sent,
        result: Result<OwnedFrame, ProbeError>,
        now: Instant,
    ) {
        if self.peers.contains_key(&addr) && self.node(addr).is_none() {
            return self.observe_peer(addr, sent, result, now);
        }
        match sent {
            Sent::Ping => {
                let Some(node) = self.node_mut(addr) else {
                    return;
                };
                node.ping_sent = None;
                node.link_up = result.is_ok() || matches!(result, Err(ProbeError::Refused(_)));
                if valid_ping_reply(&result) {
                    node.last_ok = now;
                    node.unanswered_since = None;
                } else if !node.link_up {
                    // The link broke (a CLIENT KILL on a promoted replica
                    // does that): reconnect and ask again at the next tick
                    // rather than a ping period later, so a live node is not
                    // taken for a silent one.
                    node.last_ping = None;
                }
            }
            Sent::Info => {
                let Some(node) = self.node_mut(addr) else {
                    return;
                };
                node.info_pending = false;
                match result {
                    Ok(frame) => {
                        node.link_up = true;
                        if let Some(text) = value::as_str(&frame) {
                            let report = info::parse(text);
                            self.take_info(addr, report, now);
                        }
                    }
                    Err(_) => node.link_up = false,
                }
            }
            Sent::FailoverTo => self.failover_to_answered(result, now),
            Sent::Promote | Sent::Reconfigure | Sent::Hello | Sent::AskMasterDown => {
                if let Err(error) = result {
                    tracing::debug!(%addr, ?sent, %error, "control command failed");
                }
            }
        }
    }

    /// Takes in a peer's reply: its `PING` answer or its view of the master
    /// and its vote (`is-master-down-by-addr`).
    fn observe_peer(
        &mut self,
        addr: SocketAddr,
        sent: Sent,
        result: Result<OwnedFrame, ProbeError>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        peer.link_up = result.is_ok();
        match sent {
            Sent::Ping => {
                peer.ping_sent = None;
                if valid_ping_reply(&result) {
                    peer.last_heard = Some(now);
                    peer.unanswered_since = None;
                } else {
                    peer.hello_owed = true;
                    if !peer.link_up {
                        peer.last_ping = None;
                    }
                }
            }
            Sent::AskMasterDown => {
                peer.ask_pending = false;
                let Ok(OwnedFrame::Array(items)) = result else {
                    return;
                };
                let [down, leader, epoch] = items.as_slice() else {
                    return;
                };
                peer.last_heard = Some(now);
                if matches!(down, OwnedFrame::Integer(1)) {
                    peer.says_down_at = Some(now);
                } else {
                    peer.says_down_at = None;
                }
                if let (Some(leader), OwnedFrame::Integer(epoch)) = (value::as_str(leader), epoch)
                    && leader != "*"
                {
                    peer.leader = Some((leader.to_owned(), (*epoch).max(0) as u64));
                }
                // Act on the answer now, not at the next tick: it may complete
                // the quorum or the election.
                if self.tilt_since.is_none() {
                    self.check_odown(now);
                    self.start_failover_if_needed(now);
                    self.step_failover(now);
                }
            }
            _ => {}
        }
    }

    /// Learns from one node's `INFO`: run id, role, replicas, failover progress.
    fn take_info(&mut self, addr: SocketAddr, report: info::InfoReport, now: Instant) {
        let name = self.settings.name.clone();
        let master_addr = self.master.addr;
        let is_master = addr == master_addr;
        let Some(node) = self.node_mut(addr) else {
            return;
        };
        let what = if is_master {
            events::master(&name, addr)
        } else {
            events::replica(addr, &name, master_addr)
        };
        let mut emitted = Vec::new();
        if let (Some(old), Some(new)) = (&node.run_id, &report.run_id)
            && old != new
        {
            emitted.push(("+reboot", what.clone()));
        }
        if report.run_id.is_some() {
            node.run_id = report.run_id.clone();
        }
        let was_master = node.reports_master();
        let now_master = matches!(report.role, ReportedRole::Master);
        if node.info.is_some() && was_master != now_master {
            node.role_changed_at = now;
            let role = if now_master { "master" } else { "slave" };
            emitted.push((
                "+role-change",
                format!("{what} new reported role is {role}"),
            ));
        } else if node.info.is_none() {
            node.role_changed_at = now;
        }
        let discovered: Vec<SocketAddr> = if is_master {
            report
                .replicas
                .iter()
                .filter_map(|r| format!("{}:{}", r.ip, r.port).parse().ok())
                .collect()
        } else {
            Vec::new()
        };
        node.info = Some(report);
        node.last_info = Some(now);
        for (kind, text) in emitted {
            self.events.emit(kind, text);
        }
        for replica in discovered {
            if replica != self.master.addr && !self.replicas.contains_key(&replica) {
                self.replicas.insert(replica, Node::new(replica, now));
                self.events
                    .emit("+slave", events::replica(replica, &name, self.master.addr));
                self.dirty = true;
            }
        }
        self.failover_progress(addr, now);
        if self.tilt_since.is_none() && self.failover.is_none() {
            self.fix_replica_config(addr, now);
        }
    }

    /// A replica that claims to be master (an old master back from the dead)
    /// or follows another master is told to replicate ours, once it has done
    /// so for a while and our master is healthy (Sentinel's rules).
    fn fix_replica_config(&mut self, addr: SocketAddr, now: Instant) {
        if addr == self.master.addr
            || self.master.sdown_since.is_some()
            || !self.master.reports_master()
        {
            return;
        }
        let wait = FIX_AFTER_PUBLISH_PERIODS * self.timers.publish;
        let master = self.master.addr;
        let name = self.settings.name.clone();
        let Some(node) = self.replicas.get_mut(&addr) else {
            return;
        };
        if !elapsed(node.last_fix, now, wait) {
            return;
        }
        let kind = if node.reports_master() {
            if now.saturating_duration_since(node.role_changed_at) <= wait {
                return;
            }
            "+convert-to-slave"
        } else if node.replicating().is_some() && !node.follows(master) {
            "+fix-slave-config"
        } else {
            return;
        };
        node.last_fix = Some(now);
        self.events.emit(kind, events::replica(addr, &name, master));
        let commands = replicaof(Some(master));
        self.send(addr, Target::Node, Sent::Reconfigure, commands);
    }
}

/// A valid answer to `PING`: `PONG`, or the errors Sentinel accepts as proof
/// of life (`LOADING`, `MASTERDOWN`).
fn valid_ping_reply(result: &Result<OwnedFrame, ProbeError>) -> bool {
    match result {
        Ok(_) => true,
        Err(ProbeError::Refused(m)) => m.starts_with("LOADING") || m.starts_with("MASTERDOWN"),
        Err(_) => false,
    }
}
