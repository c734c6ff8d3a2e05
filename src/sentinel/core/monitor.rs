//! The core's periodic work, run by [`Core::tick`] (the runner calls it every
//! 100 ms, the rate of Sentinel's own timer): TILT, probes of every node and
//! peer (`PING`, `INFO`, hello), then the health checks and the failover steps.
//!
//! # Sentinel's rules here
//! * **Probes.** Every node (the master and each replica) and every peer gets
//!   a `PING` every second, or every `down-after` if that is shorter, so
//!   SDOWN is always judged on a recent reply. Nodes get `INFO` every 10 s; a
//!   replica gets it every second while the master is ODOWN or a failover
//!   runs, or while the replica reports its own master link down (so its
//!   `master_link_down_since_seconds` is fresh when a replica is selected).
//!   A hello goes to every node and every peer every 2 s.
//! * **TILT.** Two ticks more than `tilt-trigger` (2 s) apart mean the process
//!   stalled, and every timeout would look expired for no good reason. In
//!   TILT the core keeps probing and taking in replies and hellos, but judges
//!   nothing itself: no SDOWN or ODOWN change, no questions to the peers, no
//!   failover started or stepped by the timer, no replica corrected, and its
//!   answers to `is-master-down-by-addr` say "not down" (votes are still
//!   given, as in Sentinel). TILT ends `tilt-period` (30 s) after the last
//!   late tick.
//!
//! # Where this differs from Sentinel
//! * At most one `PING` is in flight per node or peer, and the next one goes
//!   a ping period after the last one was sent (Sentinel pings when the last
//!   reply is older than the period, at most every half period).
//! * The replica being promoted gets `INFO` every 100 ms, so the promotion is
//!   seen (and commands routed to it) at once.
//! * In TILT, a failover that already sent its promotion still follows the
//!   `INFO` replies to its end (Sentinel does not act on reported roles in
//!   TILT).
//! * `+tilt` is emitted once when TILT begins; a late tick during TILT extends
//!   it silently (Sentinel emits `+tilt` again). `Instant` is monotonic, so a
//!   wall-clock jump, Sentinel's other TILT cause, cannot trigger it here.
//! * Observers (peers not in the configured voter list) not heard from for
//!   [`FORGET_OBSERVER_AFTER`] are forgotten; Sentinel keeps every sentinel
//!   it has seen until `SENTINEL RESET`. Configured voters are never forgotten.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::{Core, Tilt, elapsed};
use crate::sentinel::effect::{Outgoing, Target, cmd};
use crate::sentinel::failover::Stage;
use crate::sentinel::hello;
use crate::sentinel::link::Sent;

/// Observers not heard from for this long are forgotten (voters never are).
const FORGET_OBSERVER_AFTER: Duration = Duration::from_secs(60);

impl Core {
    /// Runs the periodic work, in Sentinel's order: the TILT check, the due
    /// probes of every node and peer, forgetting silent observers; then,
    /// unless in TILT, SDOWN for every node, ODOWN for the master, questions
    /// to the peers, a new failover attempt if one is due, and the next step
    /// of the running one. Everything it wants sent lands in `outbox`.
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
        if self.tilt.is_on() {
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

    /// Enters TILT when ticks come too far apart (the clock jumped or the
    /// process stalled) and leaves it after a quiet `tilt_period`.
    ///
    /// Each late tick (more than `tilt_trigger` after the previous one)
    /// restarts the period; `+tilt` marks only the first, `-tilt` the exit.
    fn check_tilt(&mut self, now: Instant) {
        if let Some(last) = self.last_tick
            && now.saturating_duration_since(last) > self.timers.tilt_trigger
        {
            if !self.tilt.is_on() {
                self.events.emit("+tilt", "#tilt mode entered".to_owned());
            }
            self.tilt = Tilt::On { since: now };
        } else if let Tilt::On { since } = self.tilt
            && now.saturating_duration_since(since) > self.timers.tilt_period
        {
            self.tilt = Tilt::Off;
            self.events.emit("-tilt", "#tilt mode exited".to_owned());
        }
        self.last_tick = Some(now);
    }

    /// How often to ask a node for `INFO`: every second while the group is
    /// in trouble (as Sentinel does), fast while a promotion is awaited.
    ///
    /// In order: 100 ms for the replica a failover of this proxy waits to see
    /// promoted; the ping period for any other replica while the master is
    /// ODOWN, a failover runs, or the replica reports its master link down;
    /// the `INFO` period (10 s) otherwise, and for the master unless a read
    /// endpoint needs its replicas' lag (then the ping period).
    fn info_period(&self, addr: SocketAddr) -> Duration {
        if let Some(f) = &self.failover
            && f.stage == (Stage::WaitPromotion { replica: addr })
        {
            return Duration::from_millis(100);
        }
        let troubled = self.odown.is_down() || self.failover.is_some();
        let link_down = self
            .node(addr)
            .and_then(|n| n.replicating())
            .is_some_and(|(_, _, up)| !up);
        if addr != self.master.addr && (troubled || link_down) {
            self.timers.ping
        } else if addr == self.master.addr && self.serves_reads.is_some() {
            // Its `slaveN:` lines carry the replicas' lag.
            self.timers.ping
        } else {
            self.timers.info
        }
    }

    /// How often nodes and peers get a `PING` (never less often than
    /// `down-after`, so SDOWN is judged on fresh replies): the shorter of
    /// the ping period (1 s) and `down-after`, as in Sentinel.
    fn ping_period(&self) -> Duration {
        self.timers.ping.min(self.settings.down_after)
    }

    /// Queues the `PING`, `INFO` and hello that are due for the node at `addr`.
    ///
    /// A `PING` goes out when none is in flight and a ping period has passed
    /// since the last one; sending it starts `unanswered_since` (Sentinel's
    /// `act_ping_time`) unless an older unanswered one already did, and SDOWN
    /// is measured from there. `INFO` goes out when none is in flight and it
    /// is due (its period passed, or `info_due` was set by a hint). The hello
    /// is a `PUBLISH` on the node's `__sentinel__:hello` channel, where every
    /// sentinel subscribed to that node hears it.
    pub(super) fn probe_node(&mut self, addr: SocketAddr, now: Instant) {
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

    /// Queues the `PING` and hello that are due for the peer at `addr`.
    ///
    /// Same `PING` rule as for nodes. Peers get no `INFO`; the hello is
    /// published straight to their sentinel port (Sentinel accepts `PUBLISH`
    /// on the hello channel), so peers hear this proxy even when it reaches
    /// no Redis server.
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

    /// Drops observers not heard from for [`FORGET_OBSERVER_AFTER`].
    ///
    /// One taken back from the saved state counts from its restoration until
    /// it is heard from; voters stay whatever happens, since the majority
    /// and the quorum are counted over them.
    fn forget_silent_observers(&mut self, now: Instant) {
        self.peers.retain(|_, p| {
            p.voter
                || p.last_heard
                    .or(p.restored_at)
                    .is_some_and(|t| now.saturating_duration_since(t) < FORGET_OBSERVER_AFTER)
        });
    }

    /// Queues a job for the link to `to` (of kind `target`) in `outbox`.
    ///
    /// The runner hands the outbox to the links after the call that filled
    /// it returns. A job for a simulated partition is answered there with an
    /// I/O error instead, and one the link's queue cannot take with a
    /// timeout, so nothing waits forever for its reply.
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
    ///
    /// It only marks every hello as due; the probes of the next tick send
    /// them, with the payload of that moment.
    pub fn hello_now(&mut self) {
        for node in std::iter::once(&mut self.master).chain(self.replicas.values_mut()) {
            node.last_hello = None;
        }
        for peer in self.peers.values_mut() {
            peer.last_hello = None;
        }
    }
}
