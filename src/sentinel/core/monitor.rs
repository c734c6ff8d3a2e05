//! The core's periodic work, run by [`Core::tick`]: TILT, probes of every
//! node and peer (`PING`, `INFO`, hello), then the health checks and the
//! failover steps.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::{Core, elapsed};
use crate::sentinel::effect::{Outgoing, Target, cmd};
use crate::sentinel::failover::Stage;
use crate::sentinel::hello;
use crate::sentinel::link::Sent;

/// Observers not heard from for this long are forgotten (voters never are).
const FORGET_OBSERVER_AFTER: Duration = Duration::from_secs(60);

impl Core {
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

    /// Enters TILT when ticks come too far apart (the clock jumped or the
    /// process stalled) and leaves it after a quiet `tilt_period`.
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

    /// How often nodes and peers get a `PING` (never less often than
    /// `down-after`, so SDOWN is judged on fresh replies).
    fn ping_period(&self) -> Duration {
        self.timers.ping.min(self.settings.down_after)
    }

    /// Queues the `PING`, `INFO` and hello that are due for the node at `addr`.
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

    /// Queues the `PING` and hello that are due for the peer at `addr`.
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
}
