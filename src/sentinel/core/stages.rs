//! The failover, one [`Stage`] at a time, each bounded by
//! `failover-timeout`, as Redis Sentinel runs it:
//!   select the best replica, promote it (`REPLICAOF NO ONE`, or `FAILOVER TO`
//!   on a healthy master for a planned switchover), wait until its `INFO` says
//!   master, reconfigure the other replicas `parallel-syncs` at a time, then
//!   switch the configuration under the new epoch.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::Core;
use crate::backend::probe::ProbeError;
use crate::resp::value::OwnedFrame;
use crate::sentinel::effect::{Target, cmd, replicaof};
use crate::sentinel::events;
use crate::sentinel::failover::{Failover, Stage};
use crate::sentinel::info::ReportedRole;
use crate::sentinel::link::Sent;
use crate::sentinel::node::Reconf;
use crate::sentinel::select::{self, Candidate, Limits};

impl Core {
    /// Gives up the failover, counting and announcing why.
    fn abort(&mut self, reason: &'static str) {
        let label = reason.trim_start_matches("-failover-abort-");
        metrics::counter!(crate::metrics::FAILOVERS_ABORTED, "reason" => label).increment(1);
        let what = self.what_master();
        self.events.emit(reason, what);
        self.failover = None;
    }

    /// Advances the failover by one step.
    pub(super) fn step_failover(&mut self, now: Instant) {
        let Some(failover) = self.failover.clone() else {
            return;
        };
        let timeout = self.settings.failover_timeout;
        let in_stage = now.saturating_duration_since(failover.since);
        match failover.stage {
            Stage::WaitStart => {
                let leader = self.leader_of(failover.epoch, failover.forced, now);
                if leader.as_deref() == Some(self.myid.as_str()) {
                    let what = self.what_master();
                    metrics::counter!(crate::metrics::FAILOVERS_LED).increment(1);
                    self.events.emit(
                        "+elected-leader",
                        format!("{what} #epoch {}", failover.epoch),
                    );
                    self.events.emit("+failover-state-select-slave", what);
                    self.enter(Stage::SelectReplica, now);
                    self.step_failover(now);
                } else if in_stage > timeout.min(ELECTION_TIMEOUT) {
                    self.abort("-failover-abort-not-elected");
                }
            }
            Stage::SelectReplica => match self.select_replica(now, failover.forced) {
                None => self.abort("-failover-abort-no-good-slave"),
                Some(chosen) => {
                    let what = events::replica(chosen, &self.settings.name, self.master.addr);
                    self.events.emit("+selected-slave", what.clone());
                    if let Some(f) = &mut self.failover {
                        f.promoted = Some(chosen);
                    }
                    self.events.emit("+failover-state-send-slaveof-noone", what);
                    self.enter(Stage::Promote, now);
                    self.step_failover(now);
                }
            },
            Stage::Promote => {
                let Some(promoted) = failover.promoted else {
                    return self.abort("-failover-abort-no-good-slave");
                };
                let connected = self.replicas.get(&promoted).is_some_and(|n| n.link_up);
                if !connected {
                    if in_stage > timeout {
                        self.abort("-failover-abort-slave-timeout");
                    }
                    return;
                }
                if failover.forced && self.master.link_up && self.master.sdown_since.is_none() {
                    // The master is healthy: let it hand over itself, so it
                    // stops writes and waits for the replica to catch up.
                    let ms = timeout.as_millis().to_string();
                    let ip = promoted.ip().to_string();
                    let port = promoted.port().to_string();
                    let master = self.master.addr;
                    self.send(
                        master,
                        Target::Node,
                        Sent::FailoverTo,
                        vec![cmd(&["FAILOVER", "TO", &ip, &port, "TIMEOUT", &ms])],
                    );
                } else {
                    self.send(promoted, Target::Node, Sent::Promote, replicaof(None));
                }
                let what = events::replica(promoted, &self.settings.name, self.master.addr);
                self.events.emit("+failover-state-wait-promotion", what);
                self.enter(Stage::WaitPromotion, now);
            }
            Stage::WaitPromotion => {
                if in_stage > timeout {
                    self.abort("-failover-abort-slave-timeout");
                }
            }
            Stage::ReconfReplicas => self.reconfigure_replicas(&failover, now),
        }
    }

    /// Moves the running failover to `stage`.
    fn enter(&mut self, stage: Stage, now: Instant) {
        if let Some(f) = &mut self.failover {
            f.enter(stage, now);
        }
    }

    /// `FAILOVER TO` was refused (an old Redis, or the replica is not ready):
    /// promote the replica directly instead.
    pub(super) fn failover_to_answered(
        &mut self,
        result: Result<OwnedFrame, ProbeError>,
        _now: Instant,
    ) {
        let Err(error) = result else {
            return;
        };
        let Some(promoted) = self.failover.as_ref().and_then(|f| f.promoted) else {
            return;
        };
        tracing::info!(%error, "FAILOVER TO refused; promoting with REPLICAOF NO ONE");
        self.send(promoted, Target::Node, Sent::Promote, replicaof(None));
    }

    /// The best replica by Sentinel's rules.
    pub(super) fn select_replica(&self, now: Instant, forced: bool) -> Option<SocketAddr> {
        let master_down_for = self
            .master
            .sdown_since
            .map_or(std::time::Duration::ZERO, |t| {
                now.saturating_duration_since(t)
            });
        let limits = Limits {
            ping_period: self.timers.ping,
            info_period: self.timers.info,
            down_after: self.settings.down_after,
            master_down_for,
            master_sdown: self.master.sdown_since.is_some() && !forced,
        };
        let candidates: Vec<Candidate> = self
            .replicas
            .values()
            .filter_map(|node| {
                let info = node.info.as_ref()?;
                let ReportedRole::Replica(state) = &info.role else {
                    return None;
                };
                // A replica that never connected to its master since it
                // started (Redis reports its link down "since -1") and has no
                // replication offset holds none of the master's data:
                // promoting it would lose everything. (A replica of an empty
                // master can be at offset 0 too, but it has connected.)
                if !state.link_up && state.link_down_since.is_none() && state.offset == 0 {
                    return None;
                }
                Some(Candidate {
                    addr: node.addr,
                    run_id: node.run_id.clone(),
                    down: node.sdown_since.is_some(),
                    connected: node.link_up,
                    last_reply_age: node.last_reply_age(now),
                    info_age: node.last_info.map_or(std::time::Duration::MAX, |t| {
                        now.saturating_duration_since(t)
                    }),
                    master_link_down: if state.link_up {
                        std::time::Duration::ZERO
                    } else {
                        state.link_down_since.unwrap_or(std::time::Duration::ZERO)
                    },
                    priority: state.priority,
                    offset: state.offset,
                })
            })
            .collect();
        select::select(&candidates, &limits)
    }

    /// Follows a replica's `INFO` through the promotion and reconfiguration.
    pub(super) fn failover_progress(&mut self, addr: SocketAddr, now: Instant) {
        let Some(failover) = self.failover.clone() else {
            return;
        };
        let name = self.settings.name.clone();
        let old_master = self.master.addr;
        match failover.stage {
            Stage::WaitPromotion if failover.promoted == Some(addr) => {
                let promoted = self.replicas.get(&addr).is_some_and(|n| n.reports_master());
                if !promoted {
                    return;
                }
                let what = events::replica(addr, &name, old_master);
                self.events.emit("+promoted-slave", what);
                // Commands are routed to it from now: the outage ends here.
                self.unavailable_since = Some(self.master.last_ok);
                self.events
                    .emit("+failover-state-reconf-slaves", self.what_master());
                self.config_epoch = self.config_epoch.max(failover.epoch);
                self.dirty = true;
                self.enter(Stage::ReconfReplicas, now);
                self.hello_now();
                self.reconfigure_replicas(
                    &Failover {
                        stage: Stage::ReconfReplicas,
                        since: now,
                        ..failover
                    },
                    now,
                );
            }
            Stage::ReconfReplicas => {
                let Some(promoted) = failover.promoted else {
                    return;
                };
                let Some(node) = self.replicas.get_mut(&addr) else {
                    return;
                };
                if !node.follows(promoted) {
                    return;
                }
                let link_up = node.replicating().is_some_and(|(_, _, up)| up);
                let what = events::replica(addr, &name, old_master);
                match node.reconf {
                    Reconf::Sent(_) if !link_up => {
                        node.reconf = Reconf::InProgress;
                        self.events.emit("+slave-reconf-inprog", what);
                    }
                    Reconf::Sent(_) | Reconf::InProgress if link_up => {
                        node.reconf = Reconf::Done;
                        self.events.emit("+slave-reconf-done", what);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Points replicas at the promoted one, `parallel-syncs` at a time, and
    /// ends the failover once all are done (or the timeout passed).
    fn reconfigure_replicas(&mut self, failover: &Failover, now: Instant) {
        let Some(promoted) = failover.promoted else {
            return;
        };
        let name = self.settings.name.clone();
        let old_master = self.master.addr;
        let reconf_timeout = self.timers.reconf_timeout;
        // Sent but silent too long: count it as done (Sentinel does the same).
        for node in self.replicas.values_mut() {
            if let Reconf::Sent(at) = node.reconf
                && now.saturating_duration_since(at) > reconf_timeout
            {
                node.reconf = Reconf::Done;
                self.events.emit(
                    "-slave-reconf-sent-timeout",
                    events::replica(node.addr, &name, old_master),
                );
            }
        }
        let in_flight = self
            .replicas
            .values()
            .filter(|n| matches!(n.reconf, Reconf::Sent(_) | Reconf::InProgress))
            .count() as u32;
        let mut budget = self.settings.parallel_syncs.saturating_sub(in_flight);
        let mut to_send = Vec::new();
        for node in self.replicas.values_mut() {
            if budget == 0 {
                break;
            }
            if node.addr == promoted || node.reconf != Reconf::Idle || node.sdown_since.is_some() {
                continue;
            }
            node.reconf = Reconf::Sent(now);
            budget -= 1;
            to_send.push(node.addr);
        }
        for addr in to_send {
            self.send(
                addr,
                Target::Node,
                Sent::Reconfigure,
                replicaof(Some(promoted)),
            );
            self.events.emit(
                "+slave-reconf-sent",
                events::replica(addr, &name, old_master),
            );
        }
        let pending = self
            .replicas
            .values()
            .filter(|n| n.addr != promoted && n.sdown_since.is_none() && n.reconf != Reconf::Done)
            .count();
        let timed_out =
            now.saturating_duration_since(failover.since) > self.settings.failover_timeout;
        if pending == 0 || timed_out {
            if timed_out {
                self.events
                    .emit("+failover-end-for-timeout", self.what_master());
                // Point the stragglers at the new master without tracking them.
                let stragglers: Vec<SocketAddr> = self
                    .replicas
                    .values()
                    .filter(|n| n.addr != promoted && n.reconf != Reconf::Done)
                    .map(|n| n.addr)
                    .collect();
                for addr in stragglers {
                    self.send(
                        addr,
                        Target::Node,
                        Sent::Reconfigure,
                        replicaof(Some(promoted)),
                    );
                }
            }
            self.events.emit("+failover-end", self.what_master());
            metrics::counter!(crate::metrics::FAILOVERS_SUCCEEDED).increment(1);
            self.switch_master(promoted, failover.epoch, now);
        }
    }
}

/// A candidate that is not elected within this long gives up (Sentinel's
/// election timeout; the failover timeout if that is shorter).
const ELECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
