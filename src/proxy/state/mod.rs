//! What a session knows about its connection, and what each command does to it.
//!
//! Pure: no sockets, no time. [`decide`] maps one client command to an [`Action`];
//! [`ConnState::apply`] applies a command's effect once its reply shows it
//! succeeded. The session (`proxy/session/`) only executes these decisions.

use std::borrow::Cow;
use std::collections::HashSet;

use bytes::{Bytes, BytesMut};

use crate::resp::command::{CommandInfo, Family, Special, special};
use crate::resp::request::{self, Form, Request};
use crate::resp::value::encode_command;
use crate::secret::same_secret;

/// What the reply to a forwarded command means to the session, in FIFO order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// An ordinary command: forward its reply.
    Reply,
    /// A command that changes connection state once it succeeds.
    Track(Effect),
    /// A (P|S)SUBSCRIBE or (P|S)UNSUBSCRIBE with explicit arguments: one
    /// confirmation per argument, none of them a counted reply.
    PubSub {
        /// Which family's confirmations answer it.
        family: Family,
        /// Confirmations still to come.
        remaining: u32,
    },
    /// An UNSUBSCRIBE-family command without arguments: done when the family
    /// has no subscriptions left.
    UnsubscribeAll(Family),
    /// A reply the proxy makes itself (emitted when it reaches the front).
    Local(Bytes),
    /// A reply the proxy makes itself, after which the session closes.
    LocalThenClose(Bytes),
    /// A command the proxy sent to restore state on a new backend; its reply is
    /// swallowed, and an error reply aborts the session.
    Replay,
    /// A command the proxy sent for its own purposes (the replication marker
    /// before WAIT): its reply, whatever it is, is swallowed.
    Marker,
    /// A re-subscription on a new backend: its confirmations are swallowed.
    Resubscribe {
        /// The family re-subscribed.
        family: Family,
        /// Confirmations still to swallow.
        remaining: u32,
    },
}

impl Expect {
    /// Whether this entry waits for a reply from the backend that answers a
    /// command (as opposed to pub/sub confirmations or proxy-made replies).
    pub fn is_counted(&self) -> bool {
        matches!(self, Expect::Reply | Expect::Track(_) | Expect::Replay)
    }

    /// Whether this entry still waits for anything from the backend.
    pub fn awaits_backend(&self) -> bool {
        !matches!(self, Expect::Local(_) | Expect::LocalThenClose(_))
    }
}

/// A change of connection state, applied when the command's reply arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// AUTH succeeded: replay this frame on a new backend.
    Auth(Bytes),
    /// HELLO succeeded: replay it; the protocol becomes `protocol` if given.
    Hello(Bytes, Option<u8>),
    /// SELECT succeeded.
    Select(Bytes),
    /// CLIENT SETNAME succeeded.
    SetName(Bytes),
    /// READONLY / READWRITE succeeded.
    ReadOnly(Bytes),
    /// MULTI opened a transaction.
    Multi,
    /// EXEC or DISCARD ended it (whatever the reply).
    ExecOrDiscard,
    /// WATCH succeeded.
    Watch,
    /// UNWATCH.
    Unwatch,
    /// MONITOR: from now on the connection is a feed.
    Monitor,
    /// CLIENT TRACKING on or off.
    Tracking(bool),
    /// RESET: back to a fresh connection.
    Reset,
}

/// What to do with one client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward the bytes as received; the reply means `Expect`.
    Forward(Expect),
    /// Forward, then stop reading the client: QUIT (nothing after it may run).
    ForwardLast,
    /// Forward; no reply will come for it (CLIENT REPLY OFF/SKIP): replies can no
    /// longer be matched to commands from here on.
    ForwardUncounted,
    /// Send this frame instead of the client's: a HELLO whose AUTH the proxy
    /// checked and accepted (the client is authenticated from now on), with the
    /// AUTH part stripped.
    Substitute(Bytes, Expect),
    /// Answer locally; nothing reaches the backend.
    Local(&'static [u8]),
    /// Answer locally (proxy AUTH), marking the client authenticated if `true`.
    Authenticate(bool),
    /// Answer locally and close.
    LocalThenClose(&'static [u8]),
    /// SYNC / PSYNC: once nothing else is in flight, forward it and everything
    /// after it, and from then on pass bytes both ways unread (a replication
    /// stream is not a sequence of replies).
    Pipe,
}

/// Replies the proxy makes itself: Redis's words ([`crate::resp::words`])
/// and the client port's own.
pub mod replies {
    pub use crate::resp::words::{
        AUTH_ARITY, MAX_CLIENTS, NOAUTH, NOAUTH_HELLO, OK, SYNTAX, WRONGPASS,
    };

    /// A command held for longer than `hold_timeout` without a master.
    pub const MASTERDOWN: &[u8] =
        b"-MASTERDOWN no master is reachable (failover in progress or master down); command not executed\r\n";
    /// Sent on a read endpoint instead of forwarding while no replica
    /// qualifies and `read_fallback` is not `master`.
    pub const NO_REPLICA: &[u8] =
        b"-MASTERDOWN no replica is fit for reads (down, out of sync or lagging); command not executed\r\n";
    /// A replicated no-op sent before WAIT on a session that used a shared
    /// connection (its reply is swallowed).
    pub const WAIT_MARKER: &[u8] =
        b"*3\r\n$7\r\nPUBLISH\r\n$23\r\n__sentinel_proxy__:wait\r\n$0\r\n\r\n";
    /// State could not be restored on a new master.
    pub const REPLAY_FAILED: &[u8] =
        b"-ERR connection state could not be restored on the new master (AUTH/SELECT/HELLO failed)\r\n";
}

/// Connection state a new backend must be given, and state that pins a session
/// to its backend. Kept small for idle sessions: the rarely used parts are boxed.
#[derive(Debug, Default)]
pub struct ConnState {
    /// Frames to replay on a new backend; allocated at the first state change.
    replay: Option<Box<ReplayFrames>>,
    /// RESP version in use (2 unless HELLO 3 succeeded).
    pub protocol: u8,
    /// State that cannot be carried to a new backend, if any.
    pub pin: Pins,
    /// Subscribed channels, patterns and shard channels.
    pub subscriptions: Subscriptions,
}

/// The client's last successful state-changing commands, as sent.
#[derive(Debug, Default)]
struct ReplayFrames {
    hello: Option<Bytes>,
    auth: Option<Bytes>,
    select: Option<Bytes>,
    setname: Option<Bytes>,
    readonly: Option<Bytes>,
}

/// Reasons a session cannot move to another backend (several may hold at once).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pins {
    /// Inside MULTI.
    pub multi: bool,
    /// Keys are WATCHed.
    pub watch: bool,
    /// MONITOR feed.
    pub monitor: bool,
    /// CLIENT TRACKING on.
    pub tracking: bool,
    /// CLIENT REPLY OFF/SKIP: replies no longer match commands.
    pub uncounted: bool,
}

impl Pins {
    /// The first reason that pins the session, for logs.
    pub fn reason(&self) -> Option<&'static str> {
        [
            (self.multi, "MULTI"),
            (self.watch, "WATCH"),
            (self.monitor, "MONITOR"),
            (self.tracking, "CLIENT TRACKING"),
            (self.uncounted, "CLIENT REPLY"),
        ]
        .into_iter()
        .find_map(|(on, name)| on.then_some(name))
    }

    /// Whether replies can no longer be matched to commands.
    pub fn replies_unmatched(&self) -> bool {
        self.monitor || self.uncounted
    }
}

/// The subscriptions of a session, per family (allocated at the first one).
#[derive(Debug, Default)]
pub struct Subscriptions {
    sets: Option<Box<[HashSet<Bytes>; 3]>>,
}

impl Subscriptions {
    fn set(&mut self, family: Family) -> &mut HashSet<Bytes> {
        let sets = self.sets.get_or_insert_with(Default::default);
        &mut sets[family_index(family)]
    }

    /// Records a subscription confirmed by the server.
    pub fn add(&mut self, family: Family, name: &[u8]) {
        self.set(family).insert(Bytes::copy_from_slice(name));
    }

    /// Records an unsubscription confirmed by the server.
    pub fn remove(&mut self, family: Family, name: &[u8]) {
        self.set(family).remove(name);
    }

    /// Subscriptions in one family.
    pub fn count(&mut self, family: Family) -> usize {
        self.set(family).len()
    }

    /// Whether there are no subscriptions at all.
    pub fn is_empty(&self) -> bool {
        self.sets
            .as_ref()
            .is_none_or(|sets| sets.iter().all(HashSet::is_empty))
    }

    /// Forgets everything (RESET).
    pub fn clear(&mut self) {
        self.sets = None;
    }

    /// The commands that re-create these subscriptions on a new backend, with the
    /// number of confirmations each will produce.
    pub fn resubscribe_commands(&self) -> Vec<(Family, Bytes, u32)> {
        let mut out = Vec::new();
        let Some(sets) = self.sets.as_ref() else {
            return out;
        };
        for family in [Family::Channel, Family::Pattern, Family::Shard] {
            let set = &sets[family_index(family)];
            if set.is_empty() {
                continue;
            }
            let mut args: Vec<&[u8]> = vec![family.subscribe_command()];
            args.extend(set.iter().map(|b| &b[..]));
            let mut frame = BytesMut::new();
            encode_command(&mut frame, &args);
            out.push((
                family,
                frame.freeze(),
                u32::try_from(set.len()).unwrap_or(u32::MAX),
            ));
        }
        out
    }
}

fn family_index(family: Family) -> usize {
    match family {
        Family::Channel => 0,
        Family::Pattern => 1,
        Family::Shard => 2,
    }
}

impl ConnState {
    /// A fresh connection's state.
    pub fn new() -> Self {
        Self {
            protocol: 2,
            ..Self::default()
        }
    }

    /// Applies the effect of a command whose reply arrived (`ok`: not an error).
    pub fn apply(&mut self, effect: Effect, ok: bool) {
        match effect {
            // These end the transaction whatever the reply (EXECABORT included).
            Effect::ExecOrDiscard => {
                self.pin.multi = false;
                self.pin.watch = false;
            }
            _ if !ok => {}
            Effect::Auth(frame) => self.frames().auth = Some(frame),
            Effect::Hello(frame, protocol) => {
                if let Some(p) = protocol {
                    self.protocol = p;
                }
                self.frames().hello = Some(frame);
            }
            Effect::Select(frame) => self.frames().select = Some(frame),
            Effect::SetName(frame) => self.frames().setname = Some(frame),
            Effect::ReadOnly(frame) => self.frames().readonly = Some(frame),
            Effect::Multi => self.pin.multi = true,
            Effect::Watch => self.pin.watch = true,
            Effect::Unwatch => self.pin.watch = false,
            Effect::Monitor => self.pin.monitor = true,
            Effect::Tracking(on) => self.pin.tracking = on,
            Effect::Reset => {
                *self = ConnState::new();
            }
        }
    }

    /// Whether the connection is in Redis's default state (nothing to replay,
    /// no subscriptions, nothing pinned): it may share a backend connection.
    pub fn is_default(&self) -> bool {
        self.replay_frames().next().is_none()
            && self.subscriptions.is_empty()
            && self.pin.reason().is_none()
    }

    /// Frames that restore this state on a new backend, in order.
    pub fn replay_frames(&self) -> impl Iterator<Item = &Bytes> {
        self.replay
            .iter()
            .flat_map(|r| [&r.hello, &r.auth, &r.select, &r.setname, &r.readonly])
            .flatten()
    }

    fn frames(&mut self) -> &mut ReplayFrames {
        self.replay.get_or_insert_with(Default::default)
    }
}

/// Whether a command may travel over a shared backend connection
/// ([`super::shared`]): an ordinary command ([`decide`] forwards it as is)
/// that its table entry allows ([`CommandInfo::shareable`]), sent in
/// multibulk form (an inline command Redis rejects would close the connection
/// for everyone) and at most [`MAX_SHARED_REQUEST`] long.
pub fn shareable(action: &Action, info: CommandInfo, req: &Request) -> bool {
    matches!(action, Action::Forward(Expect::Reply))
        && req.form == Form::Multibulk
        && req.len <= MAX_SHARED_REQUEST
        && info.shareable
}

/// Largest request sent over a shared connection: a session that sends
/// larger values gets a connection of its own, so they neither delay the
/// other sessions' commands nor pile up in the proxy when Redis reads slowly.
pub const MAX_SHARED_REQUEST: usize = 64 * 1024;

/// Largest reply a session receives over a shared connection before it moves
/// to a connection of its own: the replies of every other session on the
/// connection queue behind a large one, so a client that reads large values
/// must not keep reading them there.
pub const MAX_SHARED_REPLY: usize = 64 * 1024;

/// `CLIENT SETINFO …`: what client libraries send first on every connection.
pub fn is_client_setinfo(frame: &[u8], req: &Request) -> bool {
    let mut args = request::args(frame, req);
    let name = args.next().unwrap_or_default();
    let sub = args.next().unwrap_or_default();
    name.eq_ignore_ascii_case(b"client") && sub.eq_ignore_ascii_case(b"setinfo")
}

/// Decides what to do with one complete client command. `frame` is the
/// command's bytes, `request` its scan; `requirepass` the proxy's own password
/// and `authenticated` whether this client has given it.
pub fn decide(
    frame: &[u8],
    req: &Request,
    requirepass: Option<&str>,
    authenticated: bool,
) -> Action {
    let name = req.name(frame);
    let kind = special(&name);
    if let Some(password) = requirepass {
        match kind {
            Special::Auth => return proxy_auth(frame, req, password),
            Special::Quit if !authenticated => return Action::LocalThenClose(replies::OK),
            Special::Hello => return hello_at_proxy(frame, req, password, authenticated),
            _ if !authenticated => return Action::Local(replies::NOAUTH),
            _ => {}
        }
    }
    let copy = || Bytes::copy_from_slice(frame);
    let track = |effect| Action::Forward(Expect::Track(effect));
    match kind {
        Special::None => Action::Forward(Expect::Reply),
        Special::Auth => track(Effect::Auth(copy())),
        Special::Hello => track(Effect::Hello(copy(), hello_protocol(frame, req))),
        Special::Select => track(Effect::Select(copy())),
        Special::ReadOnly => track(Effect::ReadOnly(copy())),
        Special::Multi => track(Effect::Multi),
        Special::ExecOrDiscard => track(Effect::ExecOrDiscard),
        Special::Watch => track(Effect::Watch),
        Special::Unwatch => track(Effect::Unwatch),
        Special::Monitor => track(Effect::Monitor),
        Special::Reset => track(Effect::Reset),
        Special::Quit => Action::ForwardLast,
        Special::Sync => Action::Pipe,
        Special::Client => client_subcommand(frame, req),
        Special::Subscribe(family) | Special::Unsubscribe(family) => {
            let channels = req.argc.saturating_sub(1);
            match (kind, channels) {
                // No channels: an arity error reply answers it.
                (Special::Subscribe(_), 0) => Action::Forward(Expect::Reply),
                (Special::Unsubscribe(_), 0) => Action::Forward(Expect::UnsubscribeAll(family)),
                _ => Action::Forward(Expect::PubSub {
                    family,
                    remaining: u32::try_from(channels).unwrap_or(u32::MAX),
                }),
            }
        }
    }
}

/// CLIENT subcommands that change what the session must track.
fn client_subcommand(frame: &[u8], req: &Request) -> Action {
    let mut args = request::args(frame, req).skip(1);
    let sub = args.next().unwrap_or_default();
    let arg = args.next().unwrap_or_default();
    if sub.eq_ignore_ascii_case(b"setname") {
        Action::Forward(Expect::Track(Effect::SetName(Bytes::copy_from_slice(
            frame,
        ))))
    } else if sub.eq_ignore_ascii_case(b"tracking") {
        Action::Forward(Expect::Track(Effect::Tracking(
            arg.eq_ignore_ascii_case(b"on"),
        )))
    } else if sub.eq_ignore_ascii_case(b"reply") && !arg.eq_ignore_ascii_case(b"on") {
        Action::ForwardUncounted
    } else {
        Action::Forward(Expect::Reply)
    }
}

/// The protocol version a HELLO asks for, if it names one.
fn hello_protocol(frame: &[u8], req: &Request) -> Option<u8> {
    let version = request::args(frame, req).nth(1)?;
    match &*version {
        b"2" => Some(2),
        b"3" => Some(3),
        _ => None,
    }
}

/// AUTH at a proxy with `requirepass`: checked here, never forwarded.
fn proxy_auth(frame: &[u8], req: &Request, password: &str) -> Action {
    let args: Vec<Cow<[u8]>> = request::args(frame, req).skip(1).collect();
    match args.as_slice() {
        [pass] => Action::Authenticate(same_secret(pass, password.as_bytes())),
        [user, pass] => {
            Action::Authenticate(&**user == b"default" && same_secret(pass, password.as_bytes()))
        }
        _ => Action::Local(replies::AUTH_ARITY),
    }
}

/// HELLO at a proxy with `requirepass`: its AUTH part is checked here and the
/// rest (protocol version, SETNAME) forwarded.
fn hello_at_proxy(frame: &[u8], req: &Request, password: &str, authenticated: bool) -> Action {
    let args: Vec<Cow<[u8]>> = request::args(frame, req).collect();
    let Some(auth_at) = args.iter().position(|a| a.eq_ignore_ascii_case(b"auth")) else {
        return if authenticated {
            Action::Forward(Expect::Track(Effect::Hello(
                Bytes::copy_from_slice(frame),
                hello_protocol(frame, req),
            )))
        } else {
            Action::Local(replies::NOAUTH_HELLO)
        };
    };
    let (Some(user), Some(pass)) = (args.get(auth_at + 1), args.get(auth_at + 2)) else {
        return Action::Local(replies::SYNTAX);
    };
    if &**user != b"default" || !same_secret(pass, password.as_bytes()) {
        return Action::Local(replies::WRONGPASS);
    }
    let rest: Vec<&[u8]> = args[..auth_at]
        .iter()
        .chain(&args[auth_at + 3..])
        .map(|arg| &**arg)
        .collect();
    let mut out = BytesMut::new();
    encode_command(&mut out, &rest);
    let frame = out.freeze();
    let protocol = match rest.get(1).copied() {
        Some(b"3") => Some(3),
        Some(b"2") => Some(2),
        _ => None,
    };
    Action::Substitute(frame.clone(), Expect::Track(Effect::Hello(frame, protocol)))
}

#[cfg(test)]
mod tests;
