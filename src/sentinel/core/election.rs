//! Leader election, as Redis Sentinel does it.
//!
//! * Election: a candidate bumps the current epoch and asks every voter for
//!   its vote (`is-master-down-by-addr` with its run id). Each voter votes once
//!   per epoch, for the first candidate that asks. A leader needs the votes of
//!   a majority of the voters and at least `quorum` of them. Only configured
//!   voters count; observers neither vote nor lead.
//! * A candidate starts after ODOWN and a random pause, or at once for
//!   `SENTINEL FAILOVER`; a failed attempt is retried after twice the
//!   failover timeout.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{Core, MAX_DESYNC, elapsed, random_below};
use crate::sentinel::events;
use crate::sentinel::failover::{Failover, ForceError, Stage, Vote};

impl Core {
    /// How events name the monitored master (`master <name> <ip> <port>`).
    pub(super) fn what_master(&self) -> String {
        events::master(&self.settings.name, self.master.addr)
    }

    /// Starts an attempt in a new epoch: this proxy becomes a candidate and
    /// asks every voter for its vote at once.
    fn begin(&mut self, forced: bool, now: Instant) {
        // Epochs come from the network too: at the very top one stays put
        // (no vote is then granted twice in it) rather than overflow.
        self.current_epoch = self.current_epoch.saturating_add(1);
        self.dirty = true;
        let epoch = self.current_epoch;
        self.failover = Some(Failover {
            epoch,
            stage: Stage::WaitStart,
            since: now,
            forced,
            promoted: None,
        });
        self.last_failover_start = Some(now);
        self.start_jitter = random_below(MAX_DESYNC);
        metrics::counter!(crate::metrics::FAILOVERS_STARTED).increment(1);
        self.events.emit("+new-epoch", epoch.to_string());
        let what = self.what_master();
        self.events.emit("+try-failover", what);
        // Ask for votes now, not at the next tick: a rival that hears this
        // request before starting its own attempt votes for this one.
        for peer in self.peers.values_mut() {
            peer.last_ask = None;
            peer.ask_pending = false;
        }
        self.ask_peers(now);
    }

    /// Starts a failover when the master is ODOWN, none is running, and the
    /// last attempt is older than twice the failover timeout.
    pub(super) fn start_failover_if_needed(&mut self, now: Instant) {
        let Some(odown_since) = self.odown_since else {
            return;
        };
        if self.failover.is_some() || self.settings.observer {
            return;
        }
        // Voters see ODOWN at nearly the same moment; a random pause lets one
        // of them ask first, so the others vote for it instead of splitting
        // the vote (Sentinel desynchronises its timers for the same reason).
        if now.saturating_duration_since(odown_since) < self.start_jitter {
            return;
        }
        // Retries wait twice the failover timeout, plus a fresh random pause
        // so candidates that collided once do not collide again.
        if !elapsed(
            self.last_failover_start,
            now,
            2 * self.settings.failover_timeout + self.start_jitter,
        ) {
            return;
        }
        self.begin(false, now);
    }

    /// `SENTINEL FAILOVER`: a planned switchover, no agreement on failure needed.
    pub fn force_failover(&mut self, now: Instant) -> Result<(), ForceError> {
        if self.settings.observer {
            return Err(ForceError::Observer);
        }
        if self.failover.is_some() {
            return Err(ForceError::InProgress);
        }
        if self.select_replica(now, true).is_none() {
            return Err(ForceError::NoGoodReplica);
        }
        self.begin(true, now);
        Ok(())
    }

    /// Casts (or repeats) this proxy's vote for `epoch`: one vote per epoch,
    /// for the first candidate that asks. Returns the vote in force.
    pub fn vote_for(&mut self, candidate: &str, epoch: u64, now: Instant) -> Option<Vote> {
        if epoch > self.current_epoch {
            self.current_epoch = epoch;
            self.dirty = true;
            self.events.emit("+new-epoch", epoch.to_string());
        }
        let eligible = !self.settings.observer
            && (candidate == self.myid
                || self
                    .peers
                    .values()
                    .any(|p| p.voter && p.run_id.as_deref() == Some(candidate)));
        let already = self.vote.as_ref().map_or(0, |v| v.epoch);
        if eligible && already < epoch && self.current_epoch <= epoch {
            self.vote = Some(Vote {
                leader: candidate.to_owned(),
                epoch: self.current_epoch,
                at: now,
            });
            self.dirty = true;
            let what = self.what_master();
            self.events.emit(
                "+vote-for-leader",
                format!("{candidate} {}", self.current_epoch),
            );
            tracing::debug!(%what, candidate, epoch, "voted");
            // Voting for someone else: do not start our own attempt soon.
            if candidate != self.myid {
                self.last_failover_start = Some(now);
                self.start_jitter = random_below(MAX_DESYNC);
            }
        }
        self.vote.clone()
    }

    /// The leader of `epoch` if one has enough votes, counting this proxy's
    /// vote (given to the peers' favourite, or to itself).
    pub(super) fn leader_of(&mut self, epoch: u64, forced: bool, now: Instant) -> Option<String> {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for peer in self.peers.values().filter(|p| p.voter) {
            if let Some((leader, e)) = &peer.leader
                && *e == epoch
            {
                *counts.entry(leader.clone()).or_default() += 1;
            }
        }
        let favourite = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(l, _)| l.clone());
        let myid = self.myid.clone();
        let mine = self.vote_for(favourite.as_deref().unwrap_or(&myid), epoch, now);
        if let Some(vote) = mine
            && vote.epoch == epoch
        {
            *counts.entry(vote.leader).or_default() += 1;
        }
        let voters = self.peers.values().filter(|p| p.voter).count() as u32 + 1;
        let (winner, votes) = counts.into_iter().max_by(|a, b| a.1.cmp(&b.1))?;
        let needed = if forced {
            voters / 2 + 1
        } else {
            (voters / 2 + 1).max(self.settings.quorum)
        };
        (votes >= needed).then_some(winner)
    }
}
