//! The sentinel core's state and its reactions: monitoring timers, replies from
//! links, hello messages, and the route it offers the data path.
//!
//! The core does no I/O. Every method takes `now`, mutates state, and queues
//! what must be sent in [`Core::outbox`]; the runner (see the module root)
//! carries it out, publishes [`Core::route`] to the switch, and saves state
//! when [`Core::dirty`] is set. Election and failover live in `failover.rs`,
//! answers to the Sentinel API in `answer.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use super::events::{self, Events};
use super::failover::{Failover, Stage};
use super::hello::{self, Hello};
use super::info::{self, ReportedRole};
use super::link::Sent;
use super::node::{Node, Peer, Reconf};
use super::persist::{SavedPeer, SavedState};
use crate::backend::probe::ProbeError;
use crate::resp::value::{self, OwnedFrame};

/// The core's fixed settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The group's name (`mymaster`).
    pub name: String,
    /// Votes for ODOWN.
    pub quorum: u32,
    /// SDOWN after this long without a valid reply.
    pub down_after: Duration,
    /// Sentinel's failover-timeout.
    pub failover_timeout: Duration,
    /// Replicas reconfigured at once.
    pub parallel_syncs: u32,
    /// This proxy never votes or leads.
    pub observer: bool,
    /// The configured voters besides this proxy.
    pub voters: Vec<SocketAddr>,
    /// The sentinel-port address announced in hellos.
    pub announce: SocketAddr,
    /// Where state is saved, if anywhere.
    pub data_dir: Option<PathBuf>,
    /// Accept `SENTINEL SIMULATE-PARTITION` (tests only: set by the
    /// `SENTINEL_PROXY_FAULT_INJECTION=1` environment variable).
    pub fault_injection: bool,
}

/// Sentinel's periods. Fixed in production; `SENTINEL DEBUG` may change them.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// `PING` every this long.
    pub ping: Duration,
    /// `INFO` every this long when nothing is happening.
    pub info: Duration,
    /// Hello every this long.
    pub publish: Duration,
    /// `is-master-down-by-addr` every this long while the master is SDOWN.
    pub ask: Duration,
    /// A replica's `REPLICAOF` must show progress within this long.
    pub reconf_timeout: Duration,
    /// A tick later than this after the previous one means the clock jumped or
    /// the process stalled: enter TILT.
    pub tilt_trigger: Duration,
    /// How long TILT lasts after the last anomaly.
    pub tilt_period: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            ping: Duration::from_millis(1000),
            info: Duration::from_millis(10_000),
            publish: Duration::from_millis(2000),
            ask: Duration::from_millis(1000),
            reconf_timeout: Duration::from_millis(10_000),
            tilt_trigger: Duration::from_millis(2000),
            tilt_period: Duration::from_millis(30_000),
        }
    }
}

/// Which kind of link a message goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A Redis server of the group (command link plus hello subscription).
    Node,
    /// A peer's sentinel port.
    Peer,
}

/// One job for a link.
#[derive(Debug)]
pub struct Outgoing {
    /// The node or peer.
    pub to: SocketAddr,
    /// Its kind.
    pub target: Target,
    /// What the job is.
    pub sent: Sent,
    /// The commands, sent in order.
    pub commands: Vec<Vec<String>>,
}

/// This proxy's vote in a leader election.
#[derive(Debug, Clone)]
pub struct Vote {
    /// The run id voted for.
    pub leader: String,
    /// The epoch of the vote.
    pub epoch: u64,
    /// When it was cast (a vote for another leader fences this proxy for a while).
    pub at: Instant,
}

/// A peer's report of the master is valid this long (Sentinel: 5 ask periods).
const DOWN_REPORT_VALIDITY: u32 = 5;

/// A replica claiming master (or following the wrong one) is corrected only
/// after it has done so for this many hello periods, as Sentinel does.
const FIX_AFTER_PUBLISH_PERIODS: u32 = 4;

/// Longest random pause between ODOWN and a failover attempt: far longer than
/// a vote request's round trip, so the first candidate usually collects the
/// votes before another starts.
pub(super) const MAX_DESYNC: Duration = Duration::from_millis(400);

/// Observers not heard from for this long are forgotten (voters never are).
const FORGET_OBSERVER_AFTER: Duration = Duration::from_secs(60);

/// The sentinel core.
#[derive(Debug)]
pub struct Core {
    /// Fixed settings.
    pub settings: Settings,
    /// Periods.
    pub timers: Timers,
    /// This proxy's run id.
    pub myid: String,
    /// The highest epoch seen.
    pub current_epoch: u64,
    /// The epoch the current master was configured in.
    pub config_epoch: u64,
    /// The master as configured.
    pub master: Node,
    /// Its replicas.
    pub replicas: BTreeMap<SocketAddr, Node>,
    /// Other sentinels, by sentinel-port address.
    pub peers: BTreeMap<SocketAddr, Peer>,
    /// The last vote this proxy cast.
    pub vote: Option<Vote>,
    /// The failover this proxy is leading or attempting.
    pub failover: Option<Failover>,
    /// When the last failover attempt began (retry after twice the timeout).
    pub last_failover_start: Option<Instant>,
    /// The master is objectively down since then.
    pub odown_since: Option<Instant>,
    /// How long after ODOWN this proxy waits before trying a failover.
    pub start_jitter: Duration,
    /// Set by a switch: the old master's last valid reply, until commands
    /// are routed to the new master (the client-visible outage).
    pub unavailable_since: Option<Instant>,
    /// TILT since then (no decisions while the clock is unreliable).
    pub tilt_since: Option<Instant>,
    /// When the previous tick ran.
    pub last_tick: Option<Instant>,
    /// Jobs for the links.
    pub outbox: Vec<Outgoing>,
    /// Event sink.
    pub events: Events,
    /// State worth saving has changed.
    pub dirty: bool,
    /// Nodes and peers this proxy pretends it cannot reach (fault injection
    /// for partition tests): no job reaches them, no hello from them counts.
    pub partitioned: std::collections::BTreeSet<SocketAddr>,
}

impl Core {
    /// A core monitoring `master`, restored from `saved` when given.
    pub fn new(
        settings: Settings,
        master: SocketAddr,
        saved: Option<SavedState>,
        events: Events,
        now: Instant,
    ) -> Core {
        let mut core = Core {
            myid: hello::new_run_id(),
            current_epoch: 0,
            config_epoch: 0,
            master: Node::new(master, now),
            replicas: BTreeMap::new(),
            peers: BTreeMap::new(),
            vote: None,
            failover: None,
            last_failover_start: None,
            odown_since: None,
            start_jitter: Duration::ZERO,
            unavailable_since: None,
            tilt_since: None,
            last_tick: None,
            outbox: Vec::new(),
            events,
            dirty: true,
            partitioned: Default::default(),
            timers: Timers::default(),
            settings,
        };
        // This proxy is a voter by itself; listing its own address as a peer
        // would count it twice.
        let me = core.settings.announce;
        core.settings.voters.retain(|v| *v != me);
        for &addr in &core.settings.voters {
            core.peers.insert(addr, Peer::new(addr, true));
        }
        if let Some(saved) = saved {
            core.restore(saved, now);
        }
        core
    }

    fn restore(&mut self, saved: SavedState, now: Instant) {
        self.myid = saved.myid;
        self.current_epoch = saved.current_epoch;
        self.config_epoch = saved.config_epoch;
        if let Ok(master) = saved.master.parse() {
            self.master = Node::new(master, now);
        }
        for replica in saved.replicas.iter().filter_map(|r| r.parse().ok()) {
            if replica != self.master.addr {
                self.replicas.insert(replica, Node::new(replica, now));
            }
        }
        for peer in saved.peers {
            let Ok(addr) = peer.addr.parse::<SocketAddr>() else {
                continue;
            };
            let voter = self.settings.voters.contains(&addr);
            let entry = self
                .peers
                .entry(addr)
                .or_insert_with(|| Peer::new(addr, voter));
            entry.run_id = Some(peer.run_id);
        }
        if let Some(leader) = saved.leader {
            // The vote survives the restart, but not as a reason to fence:
            // its time is unknown, so it counts as cast long ago.
            let at = now
                .checked_sub(self.settings.failover_timeout)
                .unwrap_or(now);
            self.vote = Some(Vote {
                leader,
                epoch: saved.leader_epoch,
                at,
            });
        }
        self.dirty = false;
    }

    /// The state to save.
    pub fn saved_state(&self) -> SavedState {
        // Once a failover this proxy leads has promoted a replica, the saved
        // master is that replica (what the hellos announce under the new
        // epoch): a restart before the failover ends must not come back
        // believing in the old master under the new epoch.
        let (master, config_epoch) = self.announced_master();
        let replicas = std::iter::once(self.master.addr)
            .chain(self.replicas.keys().copied())
            .filter(|a| *a != master)
            .map(|a| a.to_string())
            .collect();
        SavedState {
            myid: self.myid.clone(),
            current_epoch: self.current_epoch,
            master_name: self.settings.name.clone(),
            master: master.to_string(),
            config_epoch,
            replicas,
            peers: self
                .peers
                .values()
                .filter_map(|p| {
                    p.run_id.as_ref().map(|id| SavedPeer {
                        addr: p.addr.to_string(),
                        run_id: id.clone(),
                    })
                })
                .collect(),
            leader: self.vote.as_ref().map(|v| v.leader.clone()),
            leader_epoch: self.vote.as_ref().map_or(0, |v| v.epoch),
        }
    }

    // === timers ===

    /// Runs the periodic work: probes, hellos, SDOWN/ODOWN, failover steps.
    pub fn tick(&mut self, now: Instant) {
        self.check_tilt(now);
        let addrs: Vec<SocketAddr> = std::iter::once(self.master.addr)
            .chain(self.replicas.keys().copied())
            .collect();
        for addr in addrs {
            self.probe_node(addr, now);
        }
        let peers: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for addr in peers {
            self.probe_peer(addr, now);
        }
        self.forget_silent_observers(now);
        if self.tilt_since.is_some() {
            return;
        }
        let addrs: Vec<SocketAddr> = std::iter::once(self.master.addr)
            .chain(self.replicas.keys().copied())
            .collect();
        for addr in addrs {
            self.check_sdown(addr, now);
        }
        self.check_odown(now);
        self.ask_peers(now);
        self.start_failover_if_needed(now);
        self.step_failover(now);
    }

    fn check_tilt(&mut self, now: Instant) {
        if let Some(last) = self.last_tick
            && now.saturating_duration_since(last) > self.timers.tilt_trigger
        {
            if self.tilt_since.is_none() {
                self.events.emit("+tilt", "#tilt mode entered".to_owned());
            }
            self.tilt_since = Some(now);
        } else if let Some(since) = self.tilt_since
            && now.saturating_duration_since(since) > self.timers.tilt_period
        {
            self.tilt_since = None;
            self.events.emit("-tilt", "#tilt mode exited".to_owned());
        }
        self.last_tick = Some(now);
    }

    fn node(&self, addr: SocketAddr) -> Option<&Node> {
        if addr == self.master.addr {
            Some(&self.master)
        } else {
            self.replicas.get(&addr)
        }
    }

    fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut Node> {
        if addr == self.master.addr {
            Some(&mut self.master)
        } else {
            self.replicas.get_mut(&addr)
        }
    }

    /// How often to ask a node for `INFO`: every second while the group is
    /// in trouble (as Sentinel does), fast while a promotion is awaited.
    fn info_period(&self, addr: SocketAddr) -> Duration {
        if let Some(f) = &self.failover
            && f.stage == Stage::WaitPromotion
            && f.promoted == Some(addr)
        {
            return Duration::from_millis(100);
        }
        let troubled = self.odown_since.is_some() || self.failover.is_some();
        let link_down = self
            .node(addr)
            .and_then(|n| n.replicating())
            .is_some_and(|(_, _, up)| !up);
        if addr != self.master.addr && (troubled || link_down) {
            self.timers.ping
        } else {
            self.timers.info
        }
    }

    fn ping_period(&self) -> Duration {
        self.timers.ping.min(self.settings.down_after)
    }

    fn probe_node(&mut self, addr: SocketAddr, now: Instant) {
        let ping_period = self.ping_period();
        let info_period = self.info_period(addr);
        let publish = self.timers.publish;
        let hello = self.hello_payload();
        let Some(node) = self.node_mut(addr) else {
            return;
        };
        let mut jobs = Vec::new();
        if node.ping_sent.is_none() && elapsed(node.last_ping, now, ping_period) {
            node.ping_sent = Some(now);
            node.unanswered_since.get_or_insert(now);
            node.last_ping = Some(now);
            jobs.push((Sent::Ping, vec![cmd(&["PING"])]));
        }
        if !node.info_pending && (node.info_due || elapsed(node.last_info, now, info_period)) {
            node.info_pending = true;
            node.info_due = false;
            jobs.push((Sent::Info, vec![cmd(&["INFO"])]));
        }
        if elapsed(node.last_hello, now, publish) {
            node.last_hello = Some(now);
            jobs.push((Sent::Hello, vec![cmd(&["PUBLISH", hello::CHANNEL, &hello])]));
        }
        for (sent, commands) in jobs {
            self.send(addr, Target::Node, sent, commands);
        }
    }

    fn probe_peer(&mut self, addr: SocketAddr, now: Instant) {
        let ping_period = self.ping_period();
        let publish = self.timers.publish;
        let hello = self.hello_payload();
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        let mut jobs = Vec::new();
        if peer.ping_sent.is_none() && elapsed(peer.last_ping, now, ping_period) {
            peer.ping_sent = Some(now);
            peer.unanswered_since.get_or_insert(now);
            peer.last_ping = Some(now);
            jobs.push((Sent::Ping, vec![cmd(&["PING"])]));
        }
        if elapsed(peer.last_hello, now, publish) {
            peer.last_hello = Some(now);
            jobs.push((Sent::Hello, vec![cmd(&["PUBLISH", hello::CHANNEL, &hello])]));
        }
        for (sent, commands) in jobs {
            self.send(addr, Target::Peer, sent, commands);
        }
    }

    fn forget_silent_observers(&mut self, now: Instant) {
        self.peers.retain(|_, p| {
            p.voter
                || p.last_heard
                    .is_some_and(|t| now.saturating_duration_since(t) < FORGET_OBSERVER_AFTER)
        });
    }

    /// Queues a job.
    pub fn send(&mut self, to: SocketAddr, target: Target, sent: Sent, commands: Vec<Vec<String>>) {
        self.outbox.push(Outgoing {
            to,
            target,
            sent,
            commands,
        });
    }

    /// Publishes a hello to every node and peer now (after a config change),
    /// so the group converges without waiting for the next period.
    pub fn hello_now(&mut self) {
        for node in std::iter::once(&mut self.master).chain(self.replicas.values_mut()) {
            node.last_hello = None;
        }
        for peer in self.peers.values_mut() {
            peer.last_hello = None;
        }
    }

    // === health ===

    fn check_sdown(&mut self, addr: SocketAddr, now: Instant) {
        let down_after = self.settings.down_after;
        let info_period = self.timers.info;
        let is_master = addr == self.master.addr;
        let name = self.settings.name.clone();
        let master_addr = self.master.addr;
        let Some(node) = self.node_mut(addr) else {
            return;
        };
        // A master that keeps saying it is a replica is as good as down.
        let demoted_for_long = is_master
            && matches!(node.role(), Some(ReportedRole::Replica(_)))
            && now.saturating_duration_since(node.role_changed_at) > down_after + 2 * info_period;
        let down = node.is_silent(now, down_after) || demoted_for_long;
        let what = if is_master {
            events::master(&name, addr)
        } else {
            events::replica(addr, &name, master_addr)
        };
        match (down, node.sdown_since) {
            (true, None) => {
                node.sdown_since = Some(now);
                self.events.emit("+sdown", what);
            }
            (false, Some(_)) => {
                node.sdown_since = None;
                self.events.emit("-sdown", what);
            }
            _ => {}
        }
    }

    /// The voters (this proxy included unless it observes) that say the
    /// master is down now.
    fn down_votes(&self, now: Instant) -> u32 {
        let validity = DOWN_REPORT_VALIDITY * self.timers.ask;
        let mine = u32::from(!self.settings.observer && self.master.sdown_since.is_some());
        let theirs = self
            .peers
            .values()
            .filter(|p| p.voter)
            .filter(|p| {
                p.says_down_at
                    .is_some_and(|t| now.saturating_duration_since(t) <= validity)
            })
            .count() as u32;
        mine + theirs
    }

    fn check_odown(&mut self, now: Instant) {
        let odown =
            self.master.sdown_since.is_some() && self.down_votes(now) >= self.settings.quorum;
        let what = events::master(&self.settings.name, self.master.addr);
        match (odown, self.odown_since) {
            (true, None) => {
                self.odown_since = Some(now);
                self.start_jitter = random_below(MAX_DESYNC);
                let votes = self.down_votes(now);
                let quorum = self.settings.quorum;
                self.events
                    .emit("+odown", format!("{what} #quorum {votes}/{quorum}"));
            }
            (false, Some(_)) => {
                self.odown_since = None;
                self.events.emit("-odown", what);
            }
            _ => {}
        }
    }

    /// While the master is SDOWN (or a failover awaits votes), asks every
    /// peer whether it agrees, and for its vote when this proxy is a candidate.
    pub(super) fn ask_peers(&mut self, now: Instant) {
        let candidate = self
            .failover
            .as_ref()
            .filter(|f| f.stage == Stage::WaitStart);
        if self.master.sdown_since.is_none() && candidate.is_none() {
            return;
        }
        let runid = match candidate {
            Some(_) => self.myid.clone(),
            None => "*".to_owned(),
        };
        let epoch = self.current_epoch.to_string();
        let master = self.master.addr;
        // Until a quorum agrees, ask four times as often as Sentinel: every
        // quarter period saved here is a quarter period less of pause for
        // the applications.
        let period = if self.odown_since.is_none() {
            self.timers.ask / 4
        } else {
            self.timers.ask
        };
        let mut asked = Vec::new();
        for peer in self.peers.values_mut() {
            if !peer.voter || peer.ask_pending || !elapsed(peer.last_ask, now, period) {
                continue;
            }
            peer.ask_pending = true;
            peer.last_ask = Some(now);
            asked.push(peer.addr);
        }
        for addr in asked {
            let ip = master.ip().to_string();
            let port = master.port().to_string();
            self.send(
                addr,
                Target::Peer,
                Sent::AskMasterDown,
                vec![cmd(&[
                    "SENTINEL",
                    "is-master-down-by-addr",
                    &ip,
                    &port,
                    &epoch,
                    &runid,
                ])],
            );
        }
    }

    // === replies ===

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

    // === hellos ===

    /// This proxy's hello payload, naming the master it believes in.
    pub fn hello_payload(&self) -> String {
        let (master, config_epoch) = self.announced_master();
        Hello {
            ip: self.settings.announce.ip().to_string(),
            port: self.settings.announce.port(),
            run_id: self.myid.clone(),
            current_epoch: self.current_epoch,
            master_name: self.settings.name.clone(),
            master_ip: master.ip().to_string(),
            master_port: master.port(),
            master_config_epoch: config_epoch,
        }
        .to_payload()
    }

    /// The master to announce: the promoted replica once a failover this
    /// proxy leads has promoted it (so peers switch at once), else the master.
    pub fn announced_master(&self) -> (SocketAddr, u64) {
        match &self.failover {
            Some(f) if f.stage == Stage::ReconfReplicas => {
                (f.promoted.unwrap_or(self.master.addr), f.epoch)
            }
            _ => (self.master.addr, self.config_epoch),
        }
    }

    /// Takes in a hello (from a node's channel or a peer's `PUBLISH`).
    pub fn take_hello(&mut self, payload: &str, now: Instant) {
        let Ok(hello) = Hello::parse(payload) else {
            tracing::debug!(payload, "ignoring a malformed hello");
            return;
        };
        if hello.run_id == self.myid || hello.master_name != self.settings.name {
            return;
        }
        let Ok(addr) = hello.sentinel_addr().parse::<SocketAddr>() else {
            return;
        };
        if self.partitioned.contains(&addr) {
            return;
        }
        self.learn_peer(addr, &hello.run_id, now);
        if hello.current_epoch > self.current_epoch {
            self.current_epoch = hello.current_epoch;
            self.dirty = true;
            self.events
                .emit("+new-epoch", self.current_epoch.to_string());
        }
        let Ok(announced) =
            format!("{}:{}", hello.master_ip, hello.master_port).parse::<SocketAddr>()
        else {
            return;
        };
        if hello.master_config_epoch > self.config_epoch {
            if announced != self.master.addr {
                let from = events::sentinel(&hello.run_id, addr, &self.settings.name, announced);
                self.events.emit("+config-update-from", from);
                self.switch_master(announced, hello.master_config_epoch, now);
            } else {
                self.config_epoch = hello.master_config_epoch;
                self.dirty = true;
            }
        }
    }

    fn learn_peer(&mut self, addr: SocketAddr, run_id: &str, now: Instant) {
        let voter = self.settings.voters.contains(&addr);
        let name = self.settings.name.clone();
        let master = self.master.addr;
        // The same run id at a new address: the peer moved.
        let moved = self
            .peers
            .iter()
            .find(|(a, p)| **a != addr && p.run_id.as_deref() == Some(run_id))
            .map(|(a, _)| *a);
        if let Some(old) = moved
            && let Some(mut peer) = self.peers.remove(&old)
        {
            if peer.voter && !self.settings.voters.contains(&old) {
                peer.voter = false;
            }
            self.events.emit(
                "+sentinel-address-switch",
                format!(
                    "master {name} {} {} ip {} port {} for {run_id}",
                    master.ip(),
                    master.port(),
                    addr.ip(),
                    addr.port()
                ),
            );
            // A voter keeps its configured address entry.
            if peer.voter {
                self.peers.insert(old, peer);
            }
        }
        let peer = self
            .peers
            .entry(addr)
            .or_insert_with(|| Peer::new(addr, voter));
        let announce = match &peer.run_id {
            None => true,
            Some(known) if known != run_id => {
                self.events.emit(
                    "-dup-sentinel",
                    format!(
                        "master {name} {} {} #duplicate of {addr} or {known}",
                        master.ip(),
                        master.port()
                    ),
                );
                true
            }
            Some(_) => false,
        };
        peer.run_id = Some(run_id.to_owned());
        peer.last_heard = Some(now);
        peer.last_hello_heard = Some(now);
        peer.hello_owed = false;
        if announce {
            self.dirty = true;
            self.events
                .emit("+sentinel", events::sentinel(run_id, addr, &name, master));
        }
    }

    /// Makes `new` the master under `epoch`: the old master and every other
    /// known node become its replicas.
    pub fn switch_master(&mut self, new: SocketAddr, epoch: u64, now: Instant) {
        let old = self.master.addr;
        let name = self.settings.name.clone();
        let led = self
            .failover
            .as_ref()
            .is_some_and(|f| f.stage == Stage::ReconfReplicas);
        if old != new {
            self.events.scripts.client_reconfig(&name, led, old, new);
        }
        let new_node = match self.replicas.remove(&new) {
            Some(mut node) => {
                // Its role must be confirmed before any write goes there: an
                // INFO that still calls it a replica is forgotten (it would
                // also look like a master demoted long ago); one that already
                // says master (the promotion the leader saw confirmed) stands,
                // so the route does not drop to None until the next INFO.
                // Its silence is measured afresh.
                if !node.reports_master() {
                    node.info = None;
                    node.last_info = None;
                    node.role_changed_at = now;
                }
                node.sdown_since = None;
                node.unanswered_since = None;
                node.last_ok = now;
                node
            }
            None => Node::new(new, now),
        };
        let already_routed = self.announced_master().0 == new;
        let mut old_node = std::mem::replace(&mut self.master, new_node);
        if old != new {
            if !already_routed {
                self.unavailable_since = Some(old_node.last_ok);
            }
            if let Some(odown) = self.odown_since {
                metrics::histogram!(crate::metrics::FAILOVER_SECONDS)
                    .record(now.saturating_duration_since(odown).as_secs_f64());
            }
        }
        if old != new {
            old_node.sdown_since = None;
            old_node.last_ok = now;
            old_node.unanswered_since = None;
            self.replicas.insert(old, old_node);
        }
        for node in self.replicas.values_mut() {
            node.reconf = Reconf::Idle;
        }
        self.config_epoch = epoch;
        self.failover = None;
        self.odown_since = None;
        // What peers said about the old master says nothing about the new one.
        for peer in self.peers.values_mut() {
            peer.says_down_at = None;
            peer.leader = None;
        }
        // Confirm the new master's role now rather than at the next tick.
        self.master.info_pending = true;
        self.send(new, Target::Node, Sent::Info, vec![cmd(&["INFO"])]);
        // A new master may fail over as soon as it is down (Sentinel resets
        // the retry timer with the master).
        self.last_failover_start = None;
        self.dirty = true;
        self.events.emit(
            "+switch-master",
            format!(
                "{name} {} {} {} {}",
                old.ip(),
                old.port(),
                new.ip(),
                new.port()
            ),
        );
        let replicas: Vec<SocketAddr> = self.replicas.keys().copied().collect();
        for replica in replicas {
            self.events
                .emit("+slave", events::replica(replica, &name, new));
        }
        self.hello_now();
    }

    // === the route for the data path ===

    /// Whether this proxy is in touch with a majority of the voters (itself
    /// included): each answers `PING` (within `down-after`) and has sent a
    /// recent hello. Without it, writes are fenced. Requiring hellos, which
    /// carry each voter's config, means a proxy coming back from a partition
    /// learns of a failover it missed before it routes anything.
    pub fn has_majority(&self, now: Instant) -> bool {
        let voters = self.peers.values().filter(|p| p.voter).count() as u32;
        if voters == 0 {
            return true;
        }
        let me = u32::from(!self.settings.observer);
        let heard = self.peers_in_touch(now);
        heard + me > (voters + me) / 2
    }

    /// The voters this proxy is in touch with: each answers `PING` within
    /// `down-after` and has sent a hello since its last failed `PING`, and
    /// recently. One predicate for fencing, `ckquorum` and `/status`.
    pub fn peers_in_touch(&self, now: Instant) -> u32 {
        self.peers
            .values()
            .filter(|p| p.voter && self.in_touch(p, now))
            .count() as u32
    }

    /// Whether `peer` counts as reachable (see [`Core::peers_in_touch`]).
    pub fn in_touch(&self, peer: &Peer, now: Instant) -> bool {
        let hello_window = self.settings.down_after + 2 * self.timers.publish;
        !peer.hello_owed
            && peer.heard_within(now, self.settings.down_after)
            && peer.hello_within(now, hello_window)
    }

    /// Why the data path may not use the master now, if it may not.
    pub fn fence_reason(&self, now: Instant) -> Option<&'static str> {
        if !self.has_majority(now) {
            return Some("no majority of voters reachable");
        }
        let promoted = self
            .failover
            .as_ref()
            .is_some_and(|f| f.stage == Stage::ReconfReplicas);
        if self.odown_since.is_some() && !promoted {
            return Some("master objectively down");
        }
        if let Some(f) = &self.failover
            && f.stage != Stage::ReconfReplicas
        {
            return Some("failover in progress");
        }
        if let Some(vote) = &self.vote
            && vote.epoch > self.config_epoch
            && vote.leader != self.myid
            && now.saturating_duration_since(vote.at) < self.settings.failover_timeout
        {
            return Some("voted for a failover leader");
        }
        None
    }

    /// Where the data path may send commands now, and under which config
    /// epoch: the master once its `INFO` confirms the role and nothing fences
    /// it; `None` holds commands.
    pub fn route(&self, now: Instant) -> (Option<SocketAddr>, u64) {
        let (addr, epoch) = self.announced_master();
        if self.fence_reason(now).is_some() {
            return (None, epoch);
        }
        let confirmed = self
            .node(addr)
            .is_some_and(|n| n.last_info.is_some() && n.reports_master());
        (confirmed.then_some(addr), epoch)
    }

    /// Every address the core wants a link to, and its kind.
    pub fn link_targets(&self) -> Vec<(SocketAddr, Target)> {
        std::iter::once(self.master.addr)
            .chain(self.replicas.keys().copied())
            .map(|a| (a, Target::Node))
            .chain(self.peers.keys().map(|a| (*a, Target::Peer)))
            .collect()
    }

    /// A session saw trouble on `addr`: check it at once. The route stays
    /// as it is until the checks answer (one refused connection, e.g. Redis
    /// at its `maxclients`, must not hold every session's commands).
    pub fn hint(&mut self, addr: SocketAddr) {
        if let Some(node) = self.node_mut(addr) {
            node.info_due = true;
            node.last_ping = None;
        }
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

/// A random duration below `max`, from the standard library's randomly
/// keyed hasher (no dependency needed for a jitter).
pub(super) fn random_below(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(max.as_nanos() as u64);
    let millis = max.as_millis().max(1) as u64;
    Duration::from_millis(hasher.finish() % millis)
}

/// Whether `period` has passed since `last` (or nothing happened yet).
pub fn elapsed(last: Option<Instant>, now: Instant, period: Duration) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= period)
}

/// One command as owned strings.
pub fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// `REPLICAOF` (to `master`, or `NO ONE`) in a transaction with
/// `CONFIG REWRITE` and disconnection of normal clients, as Sentinel sends it:
/// clients of a node that changed role must reconnect and ask again.
pub fn replicaof(master: Option<SocketAddr>) -> Vec<Vec<String>> {
    let target = match master {
        Some(m) => vec![
            "REPLICAOF".to_owned(),
            m.ip().to_string(),
            m.port().to_string(),
        ],
        None => cmd(&["REPLICAOF", "NO", "ONE"]),
    };
    vec![
        cmd(&["MULTI"]),
        target,
        cmd(&["CONFIG", "REWRITE"]),
        cmd(&["CLIENT", "KILL", "TYPE", "normal"]),
        cmd(&["EXEC"]),
    ]
}
