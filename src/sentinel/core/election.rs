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
//!
//! # Sentinel's rules here
//! * **Epochs.** The current epoch only grows: a vote request or a hello with
//!   a higher one is adopted (`+new-epoch`), and a candidate takes the next
//!   one for its attempt. Two candidates may take the same epoch; as each
//!   voter votes once in it, at most one of them can win it.
//! * **Voting** (`vote_for`). A vote is granted only for an epoch no lower
//!   than the current one and higher than the epoch of the last vote cast,
//!   so at most once per epoch; asking again returns the same vote. The
//!   runner saves the vote (when a data directory is set) before the answer
//!   leaves, so a restart cannot vote twice. A voter that votes for someone
//!   else waits twice the failover timeout (plus a random pause) before an
//!   attempt of its own.
//! * **Counting** (`leader_of`). The candidate counts the votes its peers
//!   reported for the epoch, casts its own for the peers' favourite (or for
//!   itself if none has a vote yet), and has a leader once one name holds
//!   the majority and the quorum. The candidate leads only if that name is
//!   its own; otherwise it gives up after the election timeout (see
//!   `stages`).
//!
//! # Where this differs from Sentinel
//! * The voters are the configured voters plus this proxy unless it is an
//!   observer, not every sentinel ever seen, and a vote goes only to this
//!   proxy or to a voter whose run id a hello has taught.
//! * `SENTINEL FAILOVER` still needs an election, won by a majority of the
//!   voters (not the quorum). Sentinel's forced failover skips the election
//!   and acts alone; here one epoch still has at most one leader.
//! * The first attempt after ODOWN waits a random pause below `MAX_DESYNC`
//!   (400 ms); Sentinel starts at once and spreads its sentinels apart by
//!   randomising its timer rate and its retry time (by up to 1 s).
//! * A tie for the peers' favourite goes to the smallest run id, so every
//!   voter that breaks it picks the same candidate.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{Core, MAX_DESYNC, elapsed, random_below};
use crate::sentinel::events;
use crate::sentinel::failover::{Failover, ForceError, Stage, Vote};

impl Core {
    /// How events name the monitored master (`master <name> <ip> <port>`).
    ///
    /// Used by the election and the failover stages, whose events are about
    /// the master rather than one node.
    pub(super) fn what_master(&self) -> String {
        events::master(&self.settings.name, self.master.addr)
    }

    /// Starts an attempt in a new epoch: this proxy becomes a candidate and
    /// asks every voter for its vote at once.
    ///
    /// The failover starts in `WaitStart`, `forced` for `SENTINEL FAILOVER`.
    /// The attempt's time is the retry timer's origin, and the random pause
    /// is drawn afresh for the next retry. Emits `+new-epoch` and
    /// `+try-failover`. Every peer's ask timer is reset, so the vote request
    /// goes out now even if a question is still unanswered. This proxy's
    /// own vote is cast later, by `leader_of`.
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
    ///
    /// Also: never for an observer, and only once ODOWN has lasted
    /// `start_jitter`. The retry wait is twice the failover timeout plus
    /// `start_jitter`; it also runs from the last vote given to another
    /// candidate, and a switch of master clears it.
    pub(super) fn start_failover_if_needed(&mut self, now: Instant) {
        let Some(odown_since) = self.odown.down_since() else {
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
    ///
    /// Refused for an observer, while a failover runs, or when no replica
    /// would be selected now (`NOGOODSLAVE`). Otherwise the attempt starts at
    /// once, without the random pause or the retry wait, but the election
    /// must still be won by a majority of the voters.
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
    ///
    /// A higher `epoch` is adopted first (`+new-epoch`). The vote is granted
    /// (`+vote-for-leader`) when this proxy is not an observer, `candidate`
    /// is itself or a voter known by run id (any asker when every Sentinel
    /// votes, as in Sentinel: `Settings::discover_voters`), no vote was cast in `epoch` or
    /// later, and `epoch` is not behind the current epoch. Otherwise the
    /// earlier vote is returned unchanged, whatever its epoch; the caller
    /// compares epochs. A vote for another also holds off this proxy's own
    /// attempts for twice the failover timeout, and fences its writes (see
    /// `route`).
    pub fn vote_for(&mut self, candidate: &str, epoch: u64, now: Instant) -> Option<Vote> {
        if epoch > self.current_epoch {
            self.current_epoch = epoch;
            self.dirty = true;
            self.events.emit("+new-epoch", epoch.to_string());
        }
        let eligible = !self.settings.observer
            && (candidate == self.myid
                || self.settings.discover_voters
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
    ///
    /// Only voter peers' votes for exactly `epoch` count. The voters are the
    /// voter peers plus this proxy; the winner needs a majority of them and,
    /// unless `forced`, at least `quorum` votes. Takes `&mut self` because
    /// casting the vote changes state.
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
