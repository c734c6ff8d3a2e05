//! Health as Sentinel judges it: SDOWN (this proxy gets no valid reply
//! within `down-after`), ODOWN (at least `quorum` voters say SDOWN), and the
//! `is-master-down-by-addr` questions that gather the peers' view.
//!
//! # Sentinel's rules here
//! * **SDOWN** (subjectively down), for the master and each replica: no valid
//!   reply to `PING` for longer than `down-after`. Valid means `PONG` or the
//!   `LOADING` and `MASTERDOWN` errors: the server is alive, just not serving
//!   yet (see `observe`). Silence is measured from the oldest unanswered
//!   `PING` while the link is up, and from the last valid reply while it is
//!   down (`Node::silent_for`). A master that has reported `role:slave` for
//!   longer than `down-after` plus two `INFO` periods is SDOWN too: it will
//!   take no writes, so only a failover gets the group out.
//! * **A rebooted master** (`master-reboot-down-after-period`, off unless
//!   set): a master whose run id changed is SDOWN once that period passes
//!   without a `PONG` from it, even while it answers `LOADING`, so a master
//!   that restarts with a long load (or an empty dataset it is still
//!   loading) is failed over instead of waited for.
//! * **ODOWN** (objectively down), for the master only: it is SDOWN here and
//!   at least `quorum` voters say so, this proxy included. A peer's "down"
//!   answer counts for 5 ask periods (5 s) after it arrived, so ODOWN is a
//!   weak agreement: reports close in time, not one snapshot.
//! * **Asking.** While the master is SDOWN here, every voter is asked
//!   `SENTINEL is-master-down-by-addr <ip> <port> <current-epoch> *` every ask
//!   period (1 s), one question in flight per peer. A candidate waiting for
//!   votes asks with its own run id instead of `*`, which is also a vote
//!   request (see `election`); it asks even while the master is healthy
//!   (`SENTINEL FAILOVER`).
//!
//! # Where this differs from Sentinel
//! * Only configured voters are asked and counted: an observer's view counts
//!   for nothing, and an observer proxy does not count itself towards the
//!   quorum (it still needs the master SDOWN itself for ODOWN).
//! * Until ODOWN, the peers are asked four times per ask period, and each
//!   answer is acted on at once (`observe`): ODOWN, and then the election,
//!   come up to most of a period sooner, that much less pause for the
//!   applications.
//! * Sentinel's `SCRIPT KILL` on a `BUSY` reply is not implemented.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::{Core, MAX_DESYNC, elapsed, random_below};
use crate::sentinel::effect::{Target, cmd};
use crate::sentinel::events;
use crate::sentinel::failover::Stage;
use crate::sentinel::info::ReportedRole;
use crate::sentinel::link::Sent;
use crate::sentinel::node::Liveness;

/// A peer's report of the master is valid this long (Sentinel: 5 ask periods).
///
/// A multiple of the ask period (`Timers::ask`, 1 s): a "down" answer counts
/// towards ODOWN for 5 s after it arrived, unless a later answer says "up".
const DOWN_REPORT_VALIDITY: u32 = 5;

impl Core {
    /// Marks or clears SDOWN for the node at `addr`: silent for `down-after`,
    /// a master that has reported the replica role for too long, or a master
    /// that restarted and gave no `PONG` for `master_reboot_down_after`.
    ///
    /// "Too long" is `down-after` plus two `INFO` periods since the role
    /// last changed (Sentinel's margin: time for two more `INFO` reports).
    /// Emits `+sdown` or `-sdown` on a change only; an address that is
    /// neither the master nor a known replica is ignored.
    pub(super) fn check_sdown(&mut self, addr: SocketAddr, now: Instant) {
        let down_after = self.settings.down_after;
        let info_period = self.timers.info;
        let reboot_down_after = self.settings.master_reboot_down_after;
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
        // A master that restarted and has not served since, for too long.
        let rebooted_for_long = is_master
            && node
                .rebooted_at
                .zip(reboot_down_after)
                .is_some_and(|(at, after)| now.saturating_duration_since(at) > after);
        let down = node.is_silent(now, down_after) || demoted_for_long || rebooted_for_long;
        let what = if is_master {
            events::master(&name, addr)
        } else {
            events::replica(addr, &name, master_addr)
        };
        match (down, node.sdown) {
            (true, Liveness::Up) => {
                node.sdown = Liveness::Down { since: now };
                self.events.emit("+sdown", what);
            }
            (false, Liveness::Down { .. }) => {
                node.sdown = Liveness::Up;
                self.events.emit("-sdown", what);
            }
            _ => {}
        }
    }

    /// The voters (this proxy included unless it observes) that say the
    /// master is down now.
    ///
    /// This proxy counts when it sees the master SDOWN; a voter peer counts
    /// when its last "down" answer is at most [`DOWN_REPORT_VALIDITY`] ask
    /// periods old. Observers and unknown peers never count.
    fn down_votes(&self, now: Instant) -> u32 {
        let validity = DOWN_REPORT_VALIDITY * self.timers.ask;
        let mine = u32::from(!self.settings.observer && self.master.sdown.is_down());
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

    /// Marks or clears ODOWN: the master is SDOWN here and at least `quorum`
    /// voters say so within the report validity.
    ///
    /// Entering ODOWN draws a fresh random `start_jitter`, the pause before
    /// this proxy may start a failover (see `election`), and emits
    /// `+odown <master> #quorum <votes>/<quorum>`; leaving it emits `-odown`.
    /// A switch of master clears ODOWN without an event.
    pub(super) fn check_odown(&mut self, now: Instant) {
        let odown = self.master.sdown.is_down() && self.down_votes(now) >= self.settings.quorum;
        let what = events::master(&self.settings.name, self.master.addr);
        match (odown, self.odown) {
            (true, Liveness::Up) => {
                self.odown = Liveness::Down { since: now };
                self.start_jitter = random_below(MAX_DESYNC);
                let votes = self.down_votes(now);
                let quorum = self.settings.quorum;
                self.events
                    .emit("+odown", format!("{what} #quorum {votes}/{quorum}"));
            }
            (false, Liveness::Down { .. }) => {
                self.odown = Liveness::Up;
                self.events.emit("-odown", what);
            }
            _ => {}
        }
    }

    /// While the master is SDOWN (or a failover awaits votes), asks every
    /// peer whether it agrees, and for its vote when this proxy is a candidate.
    ///
    /// Only voters are asked, each at most once per period and never while
    /// an earlier question to it is unanswered. The question carries this
    /// proxy's current epoch and its run id while its failover is in
    /// `WaitStart` (a vote request), `*` otherwise (Sentinel sends its run
    /// id for the whole failover; only the election needs it).
    pub(super) fn ask_peers(&mut self, now: Instant) {
        let candidate = self
            .failover
            .as_ref()
            .filter(|f| f.stage == Stage::WaitStart);
        if !self.master.sdown.is_down() && candidate.is_none() {
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
        let period = if !self.odown.is_down() {
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
}
