//! Where a session stands between its I/O events: a switch to a new master
//! and the drain of the replies still owed by the old one, the hold of
//! commands while no master may be used, the retry of an unreachable master,
//! the release of an idle backend connection, and shutdown.
//!
//! The session is in one [`Phase`] at a time (serving, draining a switch,
//! shutting down, piping a replication stream), and its commands may wait in
//! a [`Hold`] meanwhile. None of this reads or writes a socket: a new
//! topology or a deadline only changes the session's state, and the next
//! `settle` acts on it (binding, refusing held commands, or ending the
//! session). `next_deadline` gives the event loop its one timer.

use tokio::time::Instant;
use tracing::debug;

use super::input::Input;
use super::{Avoid, End, Phase, Session};
use crate::config::OnSwitch;

impl Session {
    /// A new topology was published. A bound session whose master changed
    /// leaves it (or, with `--on-switch close`, ends): at once if nothing is in flight, otherwise once the replies
    /// in flight are in (the drain, bounded by the drain timeout), sending
    /// nothing new meanwhile. A topology without a master changes nothing
    /// yet; either way, a master avoided so far may be tried again.
    pub(super) fn on_new_topology(&mut self) -> Result<(), End> {
        self.avoid = None;
        let Some(backend) = self.backend.as_ref() else {
            return Ok(());
        };
        if self.may_stay_on(backend.addr) {
            return Ok(());
        }
        debug!(from = %backend.addr, to = ?self.topology.master, "switch");
        if self.ledger.counted() == 0 {
            self.finish_switch()
        } else {
            metrics::counter!(crate::metrics::SESSIONS_DRAINED).increment(1);
            self.phase = Phase::Draining {
                until: Instant::now() + self.shared.settings.drain_timeout,
            };
            Ok(())
        }
    }

    /// The old backend has nothing more to deliver after a switch: leave it
    /// (with `--on-switch close`, end the session).
    pub(super) fn finish_switch(&mut self) -> Result<(), End> {
        self.phase = Phase::Serving;
        self.drop_backend();
        self.ledger.forget_backend();
        if self.shared.settings.on_switch == OnSwitch::Close {
            metrics::counter!(crate::metrics::SESSIONS_CLOSED_ON_SWITCH).increment(1);
            return Err(End::SwitchClose);
        }
        if let Some(reason) = self.ledger.state.pin.reason() {
            debug!(reason, "session pinned to the old master; closing it");
            metrics::counter!(crate::metrics::SESSIONS_CLOSED_ON_SWITCH).increment(1);
            return Err(End::Pinned);
        }
        Ok(())
    }

    /// The proxy is stopping: nothing more is forwarded, and the replies in
    /// flight are awaited until the drain timeout (or the end of a switch's
    /// drain already running, if that comes first).
    pub(super) fn begin_shutdown(&mut self) {
        self.input = Input::Stopped;
        let mut until = Instant::now() + self.shared.settings.drain_timeout;
        if let Phase::Draining { until: drain_ends } = self.phase {
            until = until.min(drain_ends);
        }
        self.phase = Phase::ShuttingDown { until };
    }

    /// The earliest instant the session must wake up without I/O.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let settings = &self.shared.settings;
        let hold = self.hold.map(|h| h.since + settings.hold_timeout);
        let retry = match self.avoid {
            Some(Avoid::Unreachable(at))
                if self.hold.is_some() || !self.ledger.state.subscriptions.is_empty() =>
            {
                Some(at)
            }
            _ => None,
        };
        let idle = self.backend.as_ref().and(self.idle_check_at);
        [hold, retry, idle, self.phase.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A deadline passed: a shutdown's or a switch's drain ends the session;
    /// the hold timeout makes the next `pump` refuse the held commands; the
    /// idle check releases a backend idle long enough, or looks again later.
    /// (A retry instant needs nothing here: the next `bind` tries again.)
    pub(super) fn on_timer(&mut self) -> Result<(), End> {
        let now = Instant::now();
        if self.phase.deadline().is_some_and(|t| now >= t) {
            debug!(phase = ?self.phase, "drain timeout; closing the session");
            return Err(End::DrainTimeout);
        }
        if let Some(hold) = self.hold.as_mut()
            && now >= hold.since + self.shared.settings.hold_timeout
        {
            hold.expired = true;
        }
        if let (Some(after), Some(at)) = (self.shared.settings.idle_release, self.idle_check_at)
            && now >= at
        {
            self.idle_check_at = if now >= self.last_active + after {
                self.release_if_idle();
                self.backend.as_ref().map(|_| now + after)
            } else {
                Some(self.last_active + after)
            };
        }
        Ok(())
    }

    /// Gives the backend connection back while the session is idle and stateless.
    fn release_if_idle(&mut self) {
        let idle = self.ledger.is_empty()
            && self.retained == 0
            && self.unsent() == 0
            && self.ledger.state.pin.reason().is_none()
            && self.ledger.state.subscriptions.is_empty();
        if idle {
            debug!("releasing idle backend connection");
            self.drop_backend();
        }
    }
}
