//! The ledger of replies a session is waiting for, and where each reply goes.
//!
//! Every forwarded command appends an [`Expect`]; every reply read from the
//! backend is matched against the front. Pub/sub traffic is told apart by its
//! first word (RESP2 arrays, RESP3 pushes) so messages never consume an entry.
//! Pure: the session executes the [`Route`] it is given.
//!
//! # How a reply is routed
//! 1. Once replies no longer match commands (`MONITOR`, `CLIENT REPLY
//!    OFF|SKIP`), every reply is forwarded and nothing is recorded.
//! 2. A RESP3 push, or a RESP2 array while the session is subscribed or
//!    (re)subscribing, is read by its first word: a `message`, `pmessage`
//!    or `smessage` is forwarded without consuming anything; a
//!    (un)subscribe confirmation updates the subscriptions and the entry
//!    waiting for it; any other push is forwarded. Any other array is an
//!    ordinary reply (a subscribed RESP2 `PING` answers `[pong, ""]`).
//! 3. Otherwise the front [`Expect`] says what the reply means: forwarded,
//!    applied to the connection state on success, or swallowed (the
//!    proxy's own commands), with `-READONLY` and failed replays reported.
//!
//! # Invariants
//! The counters mirror the queue: `counted` is the number of `Reply`,
//! `Track`, `Marker` and `Replay` entries, `replaying` of `Replay` and
//! `Resubscribe` ones, `pubsub_waiting` of `PubSub` and `UnsubscribeAll`
//! ones. Proxy-made replies (`Local`, `LocalThenClose`) count in none.

use crate::resp::command::Family;
use crate::resp::reply::{self, Kind};

use super::queue::Queue;
use super::state::{ConnState, Expect};

/// What to do with one reply from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Send it to the client unchanged.
    Forward,
    /// Drop it: it answers a command the proxy sent itself (replay, resubscribe).
    Swallow,
    /// A replayed command failed: the session cannot be restored honestly.
    ReplayFailed,
    /// `-READONLY` to an ordinary command: the backend may have been demoted,
    /// and then the command did not run (the session decides whether it may
    /// run again on the new master).
    Demoted,
}

/// Pending replies and connection state of one session.
#[derive(Debug)]
pub struct Ledger {
    /// What each awaited reply means, in the order the replies will come,
    /// with the proxy-made replies in their place among them.
    pending: Queue<Expect>,
    /// Entries that wait for a counted reply (Reply, Track, Marker, Replay).
    counted: usize,
    /// Replay and Resubscribe entries outstanding.
    replaying: usize,
    /// PubSub and UnsubscribeAll entries outstanding.
    pubsub_waiting: usize,
    /// Connection state built from successful commands.
    pub state: ConnState,
}

impl Default for Ledger {
    /// An empty ledger for a session in Redis's default connection state.
    fn default() -> Self {
        Self {
            pending: Queue::default(),
            counted: 0,
            replaying: 0,
            pubsub_waiting: 0,
            state: ConnState::new(),
        }
    }
}

/// Pub/sub words that open a reply array or push.
enum PubSubWord {
    /// A published message (`message`, `pmessage`, `smessage`): it answers
    /// no command.
    Message,
    /// A confirmation for one channel or pattern (`subscribe`,
    /// `punsubscribe`, …): `family` is channels, patterns or shard
    /// channels, `subscribe` is false for an unsubscription.
    Confirm { family: Family, subscribe: bool },
}

/// Recognises a pub/sub word, in any case; `None` for any other word.
///
/// The longest words (`punsubscribe`, `sunsubscribe`) have 12 bytes, so a
/// longer word is rejected before it is copied.
fn pubsub_word(word: &[u8]) -> Option<PubSubWord> {
    let mut lower = [0u8; 12];
    let slot = lower.get_mut(..word.len())?;
    slot.copy_from_slice(word);
    slot.make_ascii_lowercase();
    let confirm = |family, subscribe| Some(PubSubWord::Confirm { family, subscribe });
    match &*slot {
        b"message" | b"pmessage" | b"smessage" => Some(PubSubWord::Message),
        b"subscribe" => confirm(Family::Channel, true),
        b"psubscribe" => confirm(Family::Pattern, true),
        b"ssubscribe" => confirm(Family::Shard, true),
        b"unsubscribe" => confirm(Family::Channel, false),
        b"punsubscribe" => confirm(Family::Pattern, false),
        b"sunsubscribe" => confirm(Family::Shard, false),
        _ => None,
    }
}

impl Ledger {
    /// Appends what the reply to a just-forwarded command will mean. Once
    /// replies no longer match commands (MONITOR, CLIENT REPLY OFF) nothing is
    /// recorded for the backend: every reply is forwarded as it comes.
    ///
    /// Proxy-made replies are still queued then, so they keep their place.
    pub fn push(&mut self, expect: Expect) {
        if self.state.pin.replies_unmatched() && expect.awaits_backend() {
            return;
        }
        match expect {
            Expect::Reply | Expect::Track(_) | Expect::Marker => self.counted += 1,
            Expect::Replay => {
                self.counted += 1;
                self.replaying += 1;
            }
            Expect::Resubscribe { .. } => self.replaying += 1,
            Expect::PubSub { .. } | Expect::UnsubscribeAll(_) => self.pubsub_waiting += 1,
            Expect::Local(_) | Expect::LocalThenClose(_) => {}
        }
        self.pending.push_back(expect);
    }

    /// A proxy-made reply at the front, ready to go out: `(bytes, close_after)`.
    ///
    /// The session calls it before routing each backend reply, so a local
    /// reply goes out exactly between the replies of the commands around it.
    pub fn pop_local(&mut self) -> Option<(bytes::Bytes, bool)> {
        match self.pending.front()? {
            Expect::Local(b) => {
                let b = b.clone();
                self.pending.pop_front();
                Some((b, false))
            }
            Expect::LocalThenClose(b) => {
                let b = b.clone();
                self.pending.pop_front();
                Some((b, true))
            }
            _ => None,
        }
    }

    /// Replies still expected that answer commands.
    ///
    /// Includes the proxy's own replayed and marker commands. The session
    /// limits what it pipelines by it, and leaves a backend cleanly only when
    /// it is 0 (otherwise it drains first, or ends if the backend is lost).
    pub fn counted(&self) -> usize {
        self.counted
    }

    /// Whether anything is still expected from the backend.
    ///
    /// Counted replies, a restoration in flight, or pub/sub confirmations.
    pub fn awaits_backend(&self) -> bool {
        self.counted > 0 || self.replaying > 0 || self.pubsub_waiting > 0
    }

    /// Whether state restoration on a new backend is still in flight.
    ///
    /// That is, replayed commands or resubscriptions not yet confirmed.
    pub fn replaying(&self) -> bool {
        self.replaying > 0
    }

    /// Whether anything at all is queued (replies or proxy-made replies).
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Forgets entries that awaited a backend that is gone (after a switch in
    /// which nothing counted was in flight: only pub/sub bookkeeping remains).
    ///
    /// Proxy-made replies stay queued and every counter goes to 0. The
    /// subscriptions are connection state and stay: the session
    /// resubscribes them on the next backend.
    pub fn forget_backend(&mut self) {
        self.pending.retain(|e| !e.awaits_backend());
        self.counted = 0;
        self.replaying = 0;
        self.pubsub_waiting = 0;
    }

    /// Whether RESP2 arrays may be pub/sub traffic (subscribed, or subscribing).
    ///
    /// Outside it, an array is always an ordinary reply, even one that
    /// happens to start with `message`.
    fn pubsub_context(&self) -> bool {
        self.pubsub_waiting > 0 || self.replaying > 0 || !self.state.subscriptions.is_empty()
    }

    /// Whether the next reply from the backend goes to the client unchanged
    /// and changes nothing the ledger keeps: it answers an ordinary command,
    /// or replies no longer match commands (MONITOR). Such a reply may be
    /// passed on before it is complete.
    pub fn next_is_plain(&self) -> bool {
        self.state.pin.replies_unmatched() || matches!(self.pending.front(), Some(Expect::Reply))
    }

    /// Decides where one complete reply goes and updates the bookkeeping.
    ///
    /// `frame` is the whole reply and `kind` its type; the steps are in the
    /// module documentation. `-READONLY` to an ordinary or tracked command
    /// is [`Route::Demoted`] (its effect is not applied); an error to a
    /// replayed command or a resubscription is [`Route::ReplayFailed`]; a
    /// reply when nothing is expected is forwarded rather than hidden.
    pub fn route(&mut self, frame: &[u8], kind: Kind) -> Route {
        if self.state.pin.replies_unmatched() {
            return Route::Forward;
        }
        if kind == Kind::Push || (kind == Kind::Array && self.pubsub_context()) {
            match reply::first_word(frame).and_then(|(w, _)| pubsub_word(w)) {
                Some(PubSubWord::Message) => return Route::Forward,
                Some(PubSubWord::Confirm { family, subscribe }) => {
                    return self.confirm(frame, family, subscribe);
                }
                None if kind == Kind::Push => return Route::Forward,
                None => {}
            }
        }
        let Some(expect) = self.pending.pop_front() else {
            // Nothing expected: forward rather than hide what the server said.
            return Route::Forward;
        };
        let is_error = kind == Kind::Error;
        match expect {
            Expect::Reply | Expect::Track(_) if is_error && frame.starts_with(b"-READONLY") => {
                self.counted -= 1;
                Route::Demoted
            }
            Expect::Reply => {
                self.counted -= 1;
                Route::Forward
            }
            Expect::Track(effect) => {
                self.counted -= 1;
                self.state.apply(effect, !is_error);
                Route::Forward
            }
            Expect::Marker => {
                self.counted -= 1;
                Route::Swallow
            }
            Expect::Replay => {
                self.counted -= 1;
                self.replaying -= 1;
                if is_error {
                    Route::ReplayFailed
                } else {
                    Route::Swallow
                }
            }
            Expect::Resubscribe { .. } => {
                self.replaying -= 1;
                Route::ReplayFailed
            }
            Expect::PubSub { .. } | Expect::UnsubscribeAll(_) => {
                // Only an error (e.g. wrong arity) answers these with a counted reply.
                self.pubsub_waiting -= 1;
                Route::Forward
            }
            Expect::Local(_) | Expect::LocalThenClose(_) => {
                // The session emits proxy-made replies before routing; keep order.
                self.pending.push_front(expect);
                Route::Forward
            }
        }
    }

    /// A subscribe/unsubscribe confirmation.
    ///
    /// A subscription confirmed for a pending resubscription of the same
    /// family is swallowed (the client already saw it on the old backend).
    /// Any other confirmation updates the subscriptions, counts towards the
    /// first waiting entry of its family (an `UnsubscribeAll` only for an
    /// unsubscription), and is forwarded. `PubSub` is done after one
    /// confirmation per argument, `UnsubscribeAll` when the family has no
    /// subscription left.
    fn confirm(&mut self, frame: &[u8], family: Family, subscribe: bool) -> Route {
        let channel = reply::element(frame, 1).and_then(reply::string_payload);
        if subscribe {
            let resub = self
                .pending
                .iter()
                .position(|e| matches!(e, Expect::Resubscribe { family: f, .. } if *f == family));
            if let Some(at) = resub {
                if let Some(Expect::Resubscribe { remaining, .. }) = self.pending.get_mut(at) {
                    *remaining -= 1;
                    if *remaining == 0 {
                        self.pending.remove(at);
                        self.replaying -= 1;
                    }
                }
                return Route::Swallow;
            }
            if let Some(channel) = channel {
                self.state.subscriptions.add(family, channel);
            }
        } else if let Some(channel) = channel {
            self.state.subscriptions.remove(family, channel);
        }
        let left = self.state.subscriptions.count(family);
        let waiting = self.pending.iter().position(|e| match e {
            Expect::PubSub { family: f, .. } => *f == family,
            Expect::UnsubscribeAll(f) => !subscribe && *f == family,
            _ => false,
        });
        if let Some(at) = waiting {
            let done = match self.pending.get_mut(at) {
                Some(Expect::PubSub { remaining, .. }) => {
                    *remaining = remaining.saturating_sub(1);
                    *remaining == 0
                }
                Some(Expect::UnsubscribeAll(_)) => left == 0,
                _ => false,
            };
            if done {
                self.pending.remove(at);
                self.pubsub_waiting -= 1;
            }
        }
        Route::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::state::Effect;
    use bytes::Bytes;

    /// A simple-string `OK` reply.
    const OK: &[u8] = b"+OK\r\n";

    /// Routes `frame`, a complete reply, as the session would.
    fn route(ledger: &mut Ledger, frame: &[u8]) -> Route {
        let reply = crate::resp::reply::ReplyScanner::default()
            .scan(frame)
            .expect("valid")
            .expect("complete");
        ledger.route(frame, reply.kind)
    }

    /// Replies answer entries in order; a tracked `SELECT` that succeeded joins the
    /// state to replay.
    #[test]
    fn replies_are_matched_in_order_and_effects_applied_on_success() {
        let mut ledger = Ledger::default();
        ledger.push(Expect::Track(Effect::Select(Bytes::from_static(
            b"SELECT 1\r\n",
        ))));
        ledger.push(Expect::Reply);
        assert_eq!(ledger.counted(), 2);
        assert_eq!(route(&mut ledger, OK), Route::Forward);
        assert_eq!(route(&mut ledger, b"$1\r\nv\r\n"), Route::Forward);
        assert_eq!(ledger.counted(), 0);
        assert_eq!(ledger.state.replay_frames().count(), 1);
    }

    /// RESP2 while subscribed: confirmations complete their entries, messages
    /// consume nothing, `PING`'s array answers its command, `UNSUBSCRIBE`
    /// without arguments ends when no channel is left.
    #[test]
    fn resp2_subscriber_messages_do_not_consume_replies() {
        let mut ledger = Ledger::default();
        ledger.push(Expect::PubSub {
            family: Family::Channel,
            remaining: 2,
        });
        let confirm_a = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n";
        let confirm_b = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n";
        assert_eq!(route(&mut ledger, confirm_a), Route::Forward);
        assert!(ledger.awaits_backend());
        assert_eq!(route(&mut ledger, confirm_b), Route::Forward);
        assert!(!ledger.awaits_backend());
        let message = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n";
        assert_eq!(route(&mut ledger, message), Route::Forward);
        ledger.push(Expect::Reply); // PING while subscribed
        assert_eq!(route(&mut ledger, message), Route::Forward);
        assert_eq!(ledger.counted(), 1);
        assert_eq!(
            route(&mut ledger, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
            Route::Forward
        );
        assert_eq!(ledger.counted(), 0);
        ledger.push(Expect::UnsubscribeAll(Family::Channel));
        let unsub_a = b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n";
        let unsub_b = b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n";
        route(&mut ledger, unsub_a);
        assert!(ledger.awaits_backend());
        route(&mut ledger, unsub_b);
        assert!(!ledger.awaits_backend());
        assert!(ledger.state.subscriptions.is_empty());
    }

    /// Confirmations of a resubscription on a new backend are swallowed.
    #[test]
    fn resubscription_confirmations_are_swallowed() {
        let mut ledger = Ledger::default();
        ledger.state.subscriptions.add(Family::Channel, b"a");
        ledger.push(Expect::Resubscribe {
            family: Family::Channel,
            remaining: 1,
        });
        assert!(ledger.replaying());
        let confirm = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n";
        assert_eq!(route(&mut ledger, confirm), Route::Swallow);
        assert!(!ledger.replaying());
    }

    /// A RESP3 push answers no command, whatever its word.
    #[test]
    fn resp3_pushes_never_answer_commands() {
        let mut ledger = Ledger::default();
        ledger.push(Expect::Reply);
        let invalidate = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";
        assert_eq!(route(&mut ledger, invalidate), Route::Forward);
        assert_eq!(ledger.counted(), 1);
    }

    /// `-READONLY` to an ordinary command is reported (and counts as its
    /// reply); any other error is the client's.
    #[test]
    fn readonly_is_reported() {
        let readonly = b"-READONLY You can't write against a read only replica.\r\n";
        let mut ledger = Ledger::default();
        ledger.push(Expect::Reply);
        ledger.push(Expect::Reply);
        assert_eq!(route(&mut ledger, readonly), Route::Demoted);
        assert_eq!(ledger.counted(), 1);
        assert_eq!(route(&mut ledger, b"-ERR no\r\n"), Route::Forward);
        assert_eq!(ledger.counted(), 0);
    }

    /// An error to a replayed command fails the replay; success is swallowed.
    #[test]
    fn a_failed_replay_is_reported() {
        let mut ledger = Ledger::default();
        ledger.push(Expect::Replay);
        assert_eq!(
            route(&mut ledger, b"-WRONGPASS nope\r\n"),
            Route::ReplayFailed
        );
        ledger.push(Expect::Replay);
        assert_eq!(route(&mut ledger, OK), Route::Swallow);
    }
}
