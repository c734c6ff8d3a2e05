//! Replies from the links: `PING` answers, `INFO` reports (roles, replicas,
//! failover progress, replicas to correct) and peers' answers to
//! `is-master-down-by-addr`.
//!
//! # Sentinel's rules here
//! * **Valid `PING` replies.** `PONG`, `-LOADING` and `-MASTERDOWN` prove the
//!   server alive (it is loading its data set, or is a replica cut off from
//!   its master) and end its silence. Any other error does not, though for a
//!   node it shows the link is up; a broken or timed-out link is down.
//! * **What `INFO` teaches.** The run id (a new one means the server
//!   restarted: `+reboot`), the role (`+role-change`; a master that reports
//!   `slave` for too long is SDOWN, see `health`) and, from the master only,
//!   its replicas: each new one is announced with `+slave` and monitored
//!   from then on. Replicas are never forgotten.
//! * **Failover progress** is read from `INFO` too: the promoted replica
//!   saying `role:master`, the others following it (see `stages`).
//! * **Correcting replicas.** With no failover running, not in TILT, and the
//!   master looking sane (not SDOWN, its last `INFO` says master), a replica
//!   that has reported `role:master` for more than 4 hello periods (8 s) is
//!   told to replicate the master (`+convert-to-slave`: typically an old
//!   master back from the dead). The wait lets a newer configuration arrive
//!   by hello first: a replica that another leader promoted is then the
//!   master, not a replica to correct. A replica that follows another master
//!   is pointed back (`+fix-slave-config`). Both use Sentinel's `REPLICAOF`
//!   transaction (`effect::replicaof`).
//! * **Peers' answers** to `is-master-down-by-addr` are `[down, leader,
//!   epoch]`: `down` is the peer's SDOWN view of the master (for ODOWN), and
//!   `leader` with `epoch` its vote, unless `leader` is `*`.
//!
//! # Where this differs from Sentinel
//! * Any non-error reply to `PING` counts as valid (Sentinel looks for the
//!   text `PONG`).
//! * `+fix-slave-config` comes at the first `INFO` that shows the wrong
//!   master, then at most every 4 hello periods. Sentinel waits
//!   `failover-timeout` after the replica's configuration changed, so that
//!   a failover led by another sentinel can finish first; here the leader's
//!   hello, published the moment its promotion is confirmed, normally makes
//!   this proxy switch before it reads such a replica's `INFO`.
//! * Sentinel also wants the replica not SDOWN during the wait and the
//!   master's `INFO` fresh (under two `INFO` periods old); neither is checked.
//! * A role is master or not: `+role-change` is emitted for every change
//!   (Sentinel emits `-role-change` when the new role contradicts its
//!   configuration).
//! * A peer's answer is acted on at once (ODOWN, election, failover step),
//!   not at the next tick; a peer whose `PING` fails owes a hello before it
//!   counts as in touch again (see `route`).

use std::net::SocketAddr;

use tokio::time::Instant;

use super::{Core, elapsed};
use crate::backend::probe::ProbeError;
use crate::resp::value::{self, OwnedFrame};
use crate::sentinel::effect::{Target, replicaof};
use crate::sentinel::events;
use crate::sentinel::info::{self, ReportedRole};
use crate::sentinel::link::Sent;
use crate::sentinel::node::{self, Node};

/// A replica claiming master is corrected only after it has done so for
/// this many hello periods, as Sentinel does; and no replica is corrected
/// more often than once per this many hello periods. (One following the
/// wrong master is corrected without that first wait, where Sentinel waits
/// `failover-timeout`.)
const FIX_AFTER_PUBLISH_PERIODS: u32 = 4;

impl Core {
    /// The link to `addr` closed with jobs in flight or queued (its
    /// credentials or renamed commands changed, the node left the topology,
    /// a simulated partition began): nothing will report on them, so the
    /// `PING`, `INFO` and `is-master-down-by-addr` they stood for may go out
    /// again on the next link. The silence they measured still counts.
    pub fn jobs_lost(&mut self, addr: SocketAddr) {
        if let Some(node) = self.node_mut(addr) {
            node.ping_sent = None;
            node.info_pending = false;
        }
        if let Some(peer) = self.peers.get_mut(&addr) {
            peer.ping_sent = None;
            peer.ask_pending = false;
        }
    }

    /// Takes in one reply from a link.
    ///
    /// A reply from a peer's address (that is not also a node) goes to
    /// `observe_peer`. For a node: a `PING` reply ends the one in flight,
    /// sets `link_up` (any reply, even an error, shows a live link), and a
    /// valid one resets the silence; on a broken link the next `PING` goes at
    /// the next tick. An `INFO` reply is parsed and learnt from (`take_info`).
    /// A `FAILOVER TO` reply may change how the promotion is sent
    /// (`failover_to_answered`). Replies to promotions, reconfigurations and
    /// hellos are not read, since their effect shows in the next `INFO`;
    /// their errors are only logged.
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
                let was_up = node.link_up;
                node.link_up = link_works(&result);
                if result.is_ok() {
                    // PONG: a restarted master serves again.
                    node.rebooted_at = None;
                }
                if valid_ping_reply(&result) {
                    node.last_ok = now;
                    node.unanswered_since = None;
                } else if was_up && !node.link_up {
                    // The link broke (a CLIENT KILL on a promoted replica
                    // does that): reconnect and ask again at the next tick
                    // rather than a ping period later, so a live node is not
                    // taken for a silent one. A node that still cannot be
                    // reached is tried again at the ping period, not at
                    // every tick.
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
                            // A reply that is no INFO at all (a `+QUEUED` from
                            // a connection left in MULTI) teaches nothing.
                            let is_info = report.run_id.is_some()
                                || !matches!(report.role, info::ReportedRole::Unknown);
                            if is_info {
                                node.info_text = Some(text.to_owned());
                                self.take_info(addr, report, now);
                            }
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
    ///
    /// Unlike a node's, a peer's link counts as up only on a non-error
    /// reply. A valid `PING` reply marks the peer heard; an invalid one
    /// sets `hello_owed`, so the peer is not in touch again until its next
    /// hello tells what it believes now. A well-formed answer to the question
    /// records its "down" view (or clears it) and its vote, then, outside
    /// TILT, re-judges ODOWN, the start of a failover and its next step at
    /// once. A malformed answer changes nothing but ends the question.
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
        peer.link_up = link_works(&result);
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
                if !self.tilt.is_on() {
                    self.check_odown(now);
                    self.start_failover_if_needed(now);
                    self.step_failover(now);
                }
            }
            _ => {}
        }
    }

    /// Learns from one node's `INFO`: run id, role, replicas, failover progress.
    ///
    /// A changed run id is a restart (`+reboot`; the master's restart also
    /// starts the `master-reboot-down-after-period` clock, which the next
    /// `PONG` stops). `role_changed_at` moves
    /// when the node goes from master to not master or back (`+role-change`),
    /// and at its first `INFO`, which sets the clock without an event. The
    /// master's `slaveN:` lines add replicas not yet known (`+slave`, and the
    /// state is marked for saving); a line with an IPv6 address is skipped,
    /// as `ip:port` does not parse for it. Then the failover, if any, is followed
    /// (even in TILT), and with none running and outside TILT the node may be
    /// corrected (`fix_replica_config`).
    fn take_info(&mut self, addr: SocketAddr, report: info::InfoReport, now: Instant) {
        let name = self.settings.name.clone();
        let master_addr = self.master.addr;
        let is_master = addr == master_addr;
        let reboot_rule = self.settings.master_reboot_down_after.is_some();
        let names = self.settings.resolve_hostnames;
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
            if is_master && reboot_rule {
                node.rebooted_at = Some(now);
            }
        }
        if report.run_id.is_some() {
            node.run_id = report.run_id.clone();
        }
        let followed = node.replicating().map(|(host, port, _)| (host, port));
        let follows = match &report.role {
            ReportedRole::Replica(r) => Some((r.master_host.as_str(), r.master_port)),
            _ => None,
        };
        let moved = follows.is_some() && follows != followed;
        if node.info.is_none() || moved {
            node.replication_changed_at = now;
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
        // Replicas by address, with the host name `INFO` gave, if a name.
        let discovered: Vec<(SocketAddr, Option<String>)> = if is_master {
            report
                .replicas
                .iter()
                .filter_map(|r| {
                    let addr = node::resolve(&r.ip, r.port, names)?;
                    let host =
                        r.ip.parse::<std::net::IpAddr>()
                            .is_err()
                            .then(|| r.ip.clone());
                    Some((addr, host))
                })
                .collect()
        } else {
            Vec::new()
        };
        node.info = Some(report);
        node.last_info = Some(now);
        for (kind, text) in emitted {
            self.events.emit(kind, text);
        }
        for (replica, host) in discovered {
            if replica != self.master.addr && !self.replicas.contains_key(&replica) {
                let mut node = Node::new(replica, now);
                node.host = host;
                self.replicas.insert(replica, node);
                self.events
                    .emit("+slave", events::replica(replica, &name, self.master.addr));
                self.dirty = true;
                // Its first PING and INFO go out now, not at the next tick:
                // until its INFO is in, it cannot be chosen for promotion, and
                // a `SENTINEL FAILOVER` sent right after the replica appears in
                // `SENTINEL REPLICAS` must find it (Sentinel connects to a new
                // replica and asks at once too).
                self.probe_node(replica, now);
            }
        }
        // As in Sentinel, nothing a report shows is acted on in TILT: the
        // clock that says how long things took cannot be trusted.
        if self.tilt.is_on() {
            return;
        }
        self.failover_progress(addr, now);
        if self.failover.is_none() {
            self.fix_replica_config(addr, now);
        }
    }

    /// A replica that claims to be master (an old master back from the dead)
    /// or follows another master is told to replicate ours, when our master
    /// is healthy (Sentinel's rules).
    ///
    /// Healthy means not SDOWN and reporting `role:master`. A replica
    /// claiming master is corrected once it has claimed so for
    /// [`FIX_AFTER_PUBLISH_PERIODS`] hello periods (`+convert-to-slave`); one
    /// that follows another master once it has done so for a failover
    /// timeout and is not SDOWN (`+fix-slave-config`). Either way
    /// a replica is corrected at most once per that many hello periods, and a
    /// replica whose `INFO` shows neither role is left alone. "Follows"
    /// compares the reported `master_host` with our master's IP, so a
    /// replica that names its master by host name counts as following
    /// another master.
    fn fix_replica_config(&mut self, addr: SocketAddr, now: Instant) {
        if addr == self.master.addr || self.master.sdown.is_down() || !self.master.reports_master()
        {
            return;
        }
        let wait = FIX_AFTER_PUBLISH_PERIODS * self.timers.publish;
        let failover_timeout = self.settings.failover_timeout;
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
        } else if node.replicating().is_some()
            && !node.follows(master, self.settings.resolve_hostnames)
        {
            if now.saturating_duration_since(node.replication_changed_at) <= failover_timeout
                || node.sdown.is_down()
            {
                return;
            }
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

/// Whether a reply came back over a working link: any reply, an error reply
/// too (the node or peer answered, even if it refused).
fn link_works(result: &Result<OwnedFrame, ProbeError>) -> bool {
    matches!(result, Ok(_) | Err(ProbeError::Refused(_)))
}

/// A valid answer to `PING`: `PONG`, or the errors Sentinel accepts as proof
/// of life (`LOADING`, `MASTERDOWN`).
///
/// Any non-error reply counts as `PONG`. A `BUSY` (a long script), `NOAUTH`
/// or any other error does not: such a server is up but of no use.
fn valid_ping_reply(result: &Result<OwnedFrame, ProbeError>) -> bool {
    match result {
        Ok(_) => true,
        Err(ProbeError::Refused(m)) => m.starts_with("LOADING") || m.starts_with("MASTERDOWN"),
        Err(_) => false,
    }
}
