//! The failover, one [`Stage`] at a time, each bounded by
//! `failover-timeout`, as Redis Sentinel runs it:
//!   select the best replica, promote it (`REPLICAOF NO ONE`, or `FAILOVER TO`
//!   on a healthy master for a planned switchover), wait until its `INFO` says
//!   master, reconfigure the other replicas `parallel-syncs` at a time, then
//!   switch the configuration under the new epoch.
//!
//! # The stages, their events and their timeouts
//! * `WaitStart`: the candidate waits to win the election (`+elected-leader`,
//!   `+failover-state-select-slave`); not elected within the election timeout
//!   (10 s, or `failover-timeout` if shorter): `-failover-abort-not-elected`.
//! * `SelectReplica`: the best replica by Sentinel's rules (`select`), at
//!   once: `+selected-slave` and `+failover-state-send-slaveof-noone`, or
//!   `-failover-abort-no-good-slave`.
//! * `Promote`: the promotion goes out as soon as the link to the chosen
//!   replica is up (`+failover-state-wait-promotion`); a link down for
//!   `failover-timeout`: `-failover-abort-slave-timeout`.
//! * `WaitPromotion`: until the replica's `INFO` says `role:master`
//!   (`+promoted-slave`, `+failover-state-reconf-slaves`), when the config
//!   epoch becomes the failover's and commands may go to the new master; not
//!   within `failover-timeout`: `-failover-abort-slave-timeout`. Up to here an
//!   attempt can be aborted; from here on it can only end.
//! * `ReconfReplicas`: `REPLICAOF <new master>` to the other replicas,
//!   `parallel-syncs` at a time (`+slave-reconf-sent`, then
//!   `+slave-reconf-inprog` and `+slave-reconf-done` as their `INFO` shows
//!   the new master and the link up). One sent but silent for 10 s counts as
//!   done (`-slave-reconf-sent-timeout`). The stage ends when every replica
//!   not SDOWN is done, or after `failover-timeout`
//!   (`+failover-end-for-timeout`, and a last `REPLICAOF` to the rest); then
//!   `+failover-end` and `+switch-master`.
//!
//! An aborted attempt is retried no sooner than twice `failover-timeout`
//! after it began (see `election`). Nothing sent is undone: a replica that
//! turns master after an abort is converted back once the master looks
//! sane again (`observe`).
//!
//! # Where this differs from Sentinel
//! * A planned failover (`SENTINEL FAILOVER`) with the master healthy sends
//!   `FAILOVER TO <replica> TIMEOUT <failover-timeout>` to the master, which
//!   stops writes, waits for the replica to catch up and hands over: no
//!   acknowledged write is lost. If the master refuses (an older Redis, a
//!   replica not ready), the replica gets `REPLICAOF NO ONE` after all.
//!   Sentinel always sends `REPLICAOF NO ONE`.
//! * A replica that never connected to its master and has offset 0 is never
//!   selected; and a planned failover judges `INFO` age by the healthy-master
//!   limit (3 `INFO` periods) even when the master is SDOWN.
//! * Replicas are reconfigured whether or not their link is up (the job
//!   waits for the link); only SDOWN ones are skipped. Sentinel skips
//!   disconnected ones.
//! * The end waits neither for the promoted replica to be reachable nor for
//!   the next timer run: the configuration switches at once. At a timeout,
//!   the last `REPLICAOF` goes to every replica not done, without an event
//!   (Sentinel: to the connected ones never sent one, `+slave-reconf-sent-be`).

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
    ///
    /// `reason` is the event (`-failover-abort-…`); the metric's label is
    /// what follows that prefix. The retry timer still runs from the start
    /// of the attempt, so the next one waits twice the failover timeout.
    fn abort(&mut self, reason: &'static str) {
        let label = reason.trim_start_matches("-failover-abort-");
        metrics::counter!(crate::metrics::FAILOVERS_ABORTED, "reason" => label).increment(1);
        let what = self.what_master();
        self.events.emit(reason, what);
        self.failover = None;
    }

    /// Advances the failover by one step.
    ///
    /// Called every tick outside TILT and after each peer's answer. Stages
    /// that need no reply chain at once: an election won selects the replica
    /// and, if its link is up, sends the promotion in the same call.
    /// `WaitPromotion` only watches its timeout (the promotion is seen by
    /// `failover_progress`); `ReconfReplicas` sends the next
    /// reconfigurations and checks the end.
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
                    if self.simulated_failure.after_election {
                        self.crash_now = true;
                        return;
                    }
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
                    self.events.emit("+failover-state-send-slaveof-noone", what);
                    self.enter(Stage::Promote { replica: chosen }, now);
                    self.step_failover(now);
                }
            },
            Stage::Promote { replica: promoted } => {
                let connected = self.replicas.get(&promoted).is_some_and(|n| n.link_up);
                if !connected {
                    if in_stage > timeout {
                        self.abort("-failover-abort-slave-timeout");
                    }
                    return;
                }
                if failover.forced && self.master.link_up && !self.master.sdown.is_down() {
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
                self.enter(Stage::WaitPromotion { replica: promoted }, now);
            }
            Stage::WaitPromotion { .. } => {
                if in_stage > timeout {
                    self.abort("-failover-abort-slave-timeout");
                }
            }
            Stage::ReconfReplicas { promoted } => {
                self.reconfigure_replicas(promoted, &failover, now);
            }
        }
    }

    /// Moves the running failover to `stage`, restarting the stage's clock
    /// (each stage's timeout counts from its own start).
    fn enter(&mut self, stage: Stage, now: Instant) {
        if let Some(f) = &mut self.failover {
            f.enter(stage, now);
        }
    }

    /// `FAILOVER TO` was refused (an old Redis, or the replica is not ready):
    /// promote the replica directly instead.
    ///
    /// Any error counts, a timeout included. Success needs no action: the
    /// handover shows in the promoted replica's `INFO`. The stage is not
    /// checked, only that a failover with a chosen replica is running.
    pub(super) fn failover_to_answered(
        &mut self,
        result: Result<OwnedFrame, ProbeError>,
        _now: Instant,
    ) {
        let Err(error) = result else {
            return;
        };
        let Some(promoted) = self.failover.as_ref().and_then(|f| f.stage.promoted()) else {
            return;
        };
        tracing::info!(%error, "FAILOVER TO refused; promoting with REPLICAOF NO ONE");
        self.send(promoted, Target::Node, Sent::Promote, replicaof(None));
    }

    /// The best replica by Sentinel's rules.
    ///
    /// The candidates are the replicas whose last `INFO` reports the replica
    /// role, less those that never connected and hold offset 0 (below); the
    /// rules themselves are in `select`. `forced` (a planned failover)
    /// applies the healthy-master `INFO` age limit even if the master is
    /// SDOWN, since the master's state does not matter then. A replica
    /// that reports its link down with no down time counts as down for zero.
    pub(super) fn select_replica(&self, now: Instant, forced: bool) -> Option<SocketAddr> {
        let master_down_for = self
            .master
            .sdown
            .down_since()
            .map_or(std::time::Duration::ZERO, |t| {
                now.saturating_duration_since(t)
            });
        let limits = Limits {
            ping_period: self.timers.ping,
            info_period: self.timers.info,
            down_after: self.settings.down_after,
            master_down_for,
            master_sdown: self.master.sdown.is_down() && !forced,
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
                    down: node.sdown.is_down(),
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
    ///
    /// In `WaitPromotion`, the chosen replica reporting `role:master` is the
    /// promotion confirmed: the outage clock is set to the old master's last
    /// valid reply, the config epoch becomes the failover's, the stage moves
    /// to `ReconfReplicas`, hellos announce the new master at once, and the
    /// first reconfigurations go out. In `ReconfReplicas`, a replica that
    /// follows the promoted one moves from sent to in progress while its link
    /// syncs, and to done once the link is up (straight to done if it already
    /// is). Not called in TILT (as in Sentinel).
    pub(super) fn failover_progress(&mut self, addr: SocketAddr, now: Instant) {
        let Some(failover) = self.failover.clone() else {
            return;
        };
        let name = self.settings.name.clone();
        let old_master = self.master.addr;
        match failover.stage {
            Stage::WaitPromotion { replica } if replica == addr => {
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
                self.enter(Stage::ReconfReplicas { promoted: addr }, now);
                // Saved (and announced) from here: the promoted replica under
                // the new epoch, as Sentinel has saved it when it crashes.
                if self.simulated_failure.after_promotion {
                    self.crash_now = true;
                    return;
                }
                self.hello_now();
                self.reconfigure_replicas(
                    addr,
                    &Failover {
                        stage: Stage::ReconfReplicas { promoted: addr },
                        since: now,
                        ..failover
                    },
                    now,
                );
            }
            Stage::ReconfReplicas { promoted } => {
                let Some(node) = self.replicas.get_mut(&addr) else {
                    return;
                };
                if !node.follows(promoted, self.settings.resolve_hostnames) {
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
    ///
    /// First, replicas sent `REPLICAOF` more than `reconf_timeout` ago count
    /// as done. Then idle replicas that are not SDOWN get `REPLICAOF` while
    /// fewer than `parallel-syncs` are sent or in progress. The old master is
    /// not among the replicas yet: it becomes one at the switch and is
    /// converted when it comes back claiming master. The end calls
    /// `switch_master` with the failover's epoch, which clears the failover.
    fn reconfigure_replicas(&mut self, promoted: SocketAddr, failover: &Failover, now: Instant) {
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
            if node.addr == promoted || node.reconf != Reconf::Idle || node.sdown.is_down() {
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
            .filter(|n| n.addr != promoted && !n.sdown.is_down() && n.reconf != Reconf::Done)
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
///
/// Counted from the start of the attempt (`WaitStart` begins with it).
const ELECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
