//! The master the data path may use: switching it under a new config
//! epoch, fencing writes while this proxy cannot be sure, and the route the
//! runner publishes to the switch.
//!
//! # Sentinel's rule here: switching
//! `switch_master` is Sentinel's reset of a master to a new address: the new
//! master's replicas are the old master and every other known node, the
//! failover and per-replica reconfiguration state are cleared, and so is
//! what the peers said about the old master. It emits `+switch-master` and
//! one `+slave` per replica, and runs the client-reconfig script. It ends a
//! failover this proxy leads, and it takes a newer configuration from a
//! hello.
//!
//! # This proxy's addition: fencing and the route
//! Sentinel only tells clients where the master is; this proxy carries the
//! writes, so it withholds the master whenever it might be the wrong one.
//! [`Core::route`] is `None` (sessions hold commands, up to the hold
//! timeout) while [`Core::fence_reason`] gives one of:
//! * `no majority of voters reachable`: this proxy is in touch with no
//!   majority of the voters, itself included, so a failover could happen
//!   without its hearing of it. In touch means answering `PING` within
//!   `down-after`, and a hello since the last failed `PING` and within
//!   `down-after` plus two hello periods: a proxy back from a partition hears
//!   of a failover it missed before it routes anything. With no voter
//!   configured (a lone proxy) there is always a majority.
//! * `master objectively down`: ODOWN, unless this proxy leads a failover
//!   whose promoted replica has confirmed the master role.
//! * `failover in progress`: this proxy's failover, before that confirmation.
//! * `voted for a failover leader`: this proxy voted for another candidate,
//!   in an epoch above its config epoch, less than `failover-timeout` ago:
//!   that leader may be promoting a replica now.
//!
//! Otherwise the route is the announced master once an `INFO` from it says
//! `role:master`, so a new master takes commands only once it has confirmed
//! its role.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::Core;
use crate::sentinel::effect::{Target, cmd};
use crate::sentinel::events;
use crate::sentinel::link::Sent;
use crate::sentinel::node::{Liveness, Node, Peer, Reconf};

impl Core {
    /// Makes `new` the master under `epoch`: the old master and every other
    /// known node become its replicas.
    ///
    /// The client-reconfig script runs first, as `leader` when this is the
    /// end of this proxy's own failover, `observer` otherwise (Sentinel's
    /// leader runs it when the promotion is confirmed). The outage clock
    /// starts at the old master's last valid reply unless commands already
    /// go to `new`; the time since ODOWN is recorded as the failover's
    /// duration. The old master's silence is forgiven, as a replica it is
    /// judged afresh. The new master's `INFO` is asked for at once, and the
    /// retry timer is cleared, so a new master that fails can be failed over
    /// at once (Sentinel resets it too). The state is marked for saving and
    /// the new configuration goes out in hellos now. Called with the current
    /// master (a newer epoch for the same master), the nodes stay as they
    /// are and no script runs, but the rest, events included, still happens.
    pub fn switch_master(&mut self, new: SocketAddr, epoch: u64, now: Instant) {
        let old = self.master.addr;
        let name = self.settings.name.clone();
        let led = self
            .failover
            .as_ref()
            .is_some_and(|f| f.stage.reconfiguring().is_some());
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
                node.sdown = Liveness::Up;
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
            if let Some(odown) = self.odown.down_since() {
                metrics::histogram!(crate::metrics::FAILOVER_SECONDS)
                    .record(now.saturating_duration_since(odown).as_secs_f64());
            }
        }
        if old != new {
            old_node.sdown = Liveness::Up;
            old_node.last_ok = now;
            old_node.unanswered_since = None;
            self.replicas.insert(old, old_node);
        }
        for node in self.replicas.values_mut() {
            node.reconf = Reconf::Idle;
        }
        self.config_epoch = epoch;
        self.failover = None;
        self.odown = Liveness::Up;
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

    /// Whether this proxy is in touch with a majority of the voters (itself
    /// included): each answers `PING` (within `down-after`) and has sent a
    /// recent hello. Without it, writes are fenced. Requiring hellos, which
    /// carry each voter's config, means a proxy coming back from a partition
    /// learns of a failover it missed before it routes anything.
    ///
    /// An observer counts the voter peers only (it is not a voter itself):
    /// it needs more than half of them. With no voter peers, always true.
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
    ///
    /// The hello window is `down-after` plus two hello periods, enough for
    /// one lost hello; `hello_owed` is set by a failed `PING` and cleared by
    /// the next hello.
    pub fn in_touch(&self, peer: &Peer, now: Instant) -> bool {
        let hello_window = self.settings.down_after + 2 * self.timers.publish;
        !peer.hello_owed
            && peer.heard_within(now, self.settings.down_after)
            && peer.hello_within(now, hello_window)
    }

    /// Why the data path may not use the master now, if it may not.
    ///
    /// The reasons, checked in this order, are the strings listed in the
    /// module documentation; `/status`, the sentinel port's `INFO` and the
    /// runner's log show them.
    /// A vote given to another leader fences only while its epoch is above
    /// the config epoch (no newer configuration has arrived yet) and for at
    /// most `failover-timeout`; a vote restored from disk counts as cast that
    /// long ago, so it does not fence.
    pub fn fence_reason(&self, now: Instant) -> Option<&'static str> {
        if !self.has_majority(now) {
            return Some("no majority of voters reachable");
        }
        let promoted = self
            .failover
            .as_ref()
            .is_some_and(|f| f.stage.reconfiguring().is_some());
        if self.odown.is_down() && !promoted {
            return Some("master objectively down");
        }
        if let Some(f) = &self.failover
            && f.stage.reconfiguring().is_none()
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
    ///
    /// The master is the announced one, so the leader of a failover routes
    /// to the promoted replica as soon as it has confirmed the role, before
    /// the other replicas are reconfigured. The epoch is returned even with
    /// `None`: the switch refuses a topology older than the one it holds.
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
}
