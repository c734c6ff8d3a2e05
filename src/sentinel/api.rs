//! The Sentinel protocol port: a small RESP2/RESP3 server in front of the
//! sentinel core.
//!
//! What it does: accepts clients (up to `max_clients`), parses their requests
//! (multibulk and inline, pipelined), answers the connection-level commands
//! itself (PING, QUIT, AUTH, HELLO, CLIENT SETNAME/GETNAME/ID, RESET and the
//! pub/sub commands) and hands every other command to the core as a [`Request`],
//! writing back whatever frame the core answers. Sentinel events published on a
//! broadcast channel reach subscribers as `message` / `pmessage` frames.
//!
//! Protocol: a connection speaks RESP2 until `HELLO 3`, then RESP3 as Redis
//! Sentinel 7.0 does (`HELLO 2` and `RESET` go back to RESP2). The core and
//! this file build RESP2 frames; what RESP2 leaves unsaid (this flat array is a
//! map, that one a push, this null a null array) is a [`Shape`], and
//! [`put_frame`] is the one place where a frame, its shape and the connection's
//! [`Protocol`] become bytes. In RESP3 maps are `%`, pub/sub confirmations and
//! messages are `>` pushes, nulls are `_`, and a subscribed client may run any
//! command.
//!
//! What it does not do: it knows nothing about masters, replicas or failovers
//! beyond which of the core's replies Sentinel sends as maps ([`core_shape`]).
//!
//! Invariants:
//! * replies leave in request order; a client waits for the core at most
//!   [`CORE_TIMEOUT`] per command and is then told the core is unavailable;
//! * memory per client is bounded: a request over [`MAX_REQUEST`] is a protocol
//!   error, and a subscriber whose pending output passes [`MAX_OUTPUT`] (or that
//!   lags behind the event channel) is disconnected rather than buffered;
//! * nothing here panics on network input.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use std::fmt::Write as _;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::resp::ProtocolError;
use crate::resp::request::{self, RequestScanner, Scanned};
use crate::resp::value::OwnedFrame;
use crate::secret::same_secret;

/// Largest single request accepted; sentinel commands are tiny.
pub const MAX_REQUEST: usize = 1024 * 1024;

/// Pending output at which a subscriber is disconnected rather than buffered.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// How long a client waits for the core to answer one command.
pub const CORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pending output above which requests are not read or answered until the
/// client drains its replies.
const OUTPUT_HIGH: usize = 64 * 1024;

/// Room made in the input buffer before each read.
const READ_CHUNK: usize = 4096;

/// How long final replies (QUIT, protocol error, shutdown, max clients) may
/// take to write before the socket is closed anyway.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (out of file descriptors, …).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// One command for the sentinel core to answer (everything that needs its state:
/// `SENTINEL …`, `INFO`, `ROLE`, `PUBLISH`, unknown commands).
#[derive(Debug)]
pub struct Request {
    /// The command's words as the client sent them, name first (any case).
    pub args: Vec<Bytes>,
    /// Where the core sends the reply. Dropping it makes the client see
    /// `-ERR sentinel core unavailable`.
    pub reply: oneshot::Sender<OwnedFrame>,
}

/// One Sentinel event as published on the sentinel port's pub/sub: `channel` is
/// the event type (`+sdown`, `+switch-master`; `__sentinel__:hello` is NOT sent
/// here), `message` its text (`master mymaster 127.0.0.1 6379`).
#[derive(Debug, Clone)]
pub struct Event {
    /// The event type, used as the pub/sub channel name.
    pub channel: String,
    /// The event's text, the pub/sub payload.
    pub message: String,
}

/// Settings of the sentinel port, fixed at start-up.
#[derive(Clone)]
pub struct Options {
    /// Password clients must `AUTH` with (as the `default` user), if any.
    pub requirepass: Option<String>,
    /// Connections served at once; more are refused with Redis's error.
    pub max_clients: usize,
}

impl std::fmt::Debug for Options {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field(
                "requirepass",
                &self.requirepass.as_ref().map(|_| "<redacted>"),
            )
            .field("max_clients", &self.max_clients)
            .finish()
    }
}

/// Replies this server makes itself, in Redis's words.
mod replies {
    /// Success.
    pub const OK: &[u8] = b"+OK\r\n";
    /// `PING` outside pub/sub.
    pub const PONG: &[u8] = b"+PONG\r\n";
    /// `RESET`.
    pub const RESET: &[u8] = b"+RESET\r\n";
    /// Any command but AUTH/HELLO/QUIT/RESET before authenticating.
    pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required.\r\n";
    /// HELLO without AUTH before authenticating.
    pub const NOAUTH_HELLO: &[u8] = b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";
    /// A wrong user or password.
    pub const WRONGPASS: &[u8] =
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    /// `AUTH <password>` when no password is configured.
    pub const AUTH_UNCONFIGURED: &[u8] = b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n";
    /// `HELLO <n>` for a version that never existed.
    pub const NOPROTO: &[u8] = b"-NOPROTO unsupported protocol version\r\n";
    /// `HELLO <not a number>`.
    pub const BAD_PROTOCOL: &[u8] = b"-ERR Protocol version is not an integer or out of range\r\n";
    /// `CLIENT SETNAME` with a space or control character.
    pub const BAD_NAME: &[u8] =
        b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n";
    /// The core did not answer (gone, or slower than the timeout).
    pub const CORE_UNAVAILABLE: &[u8] = b"-ERR sentinel core unavailable\r\n";
    /// Too many connections.
    pub const MAX_CLIENTS: &[u8] = b"-ERR max number of clients reached\r\n";
}

/// Commands a client may send before authenticating.
const BEFORE_AUTH: &[&[u8]] = &[b"auth", b"hello", b"quit", b"reset"];

/// Commands a RESP2 client may send while subscribed (a RESP3 client may send
/// any: its replies and messages cannot be confused).
const WHILE_SUBSCRIBED: &[&[u8]] = &[
    b"subscribe",
    b"psubscribe",
    b"unsubscribe",
    b"punsubscribe",
    b"ping",
    b"quit",
    b"reset",
];

/// Longest client-supplied word echoed back in an error.
const MAX_ECHOED: usize = 128;

/// What the connection does after a request was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The reply is in the output buffer.
    Answered,
    /// The reply is in the output buffer; close once it is written.
    Close,
    /// Send the request to the core and write its answer.
    Core,
}

/// Channels (exact names) or patterns (globs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `SUBSCRIBE` / `UNSUBSCRIBE`.
    Channel,
    /// `PSUBSCRIBE` / `PUNSUBSCRIBE`.
    Pattern,
}

impl Kind {
    /// The confirmation word for subscribing.
    fn subscribed(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
        }
    }

    /// The confirmation word for unsubscribing.
    fn unsubscribed(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
        }
    }
}

/// The RESP version a connection speaks, chosen with `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Protocol {
    /// Every connection starts here, and `RESET` comes back here, as in Redis.
    #[default]
    Resp2,
    /// After `HELLO 3`: maps, pushes and `_` nulls.
    Resp3,
}

impl Protocol {
    /// HELLO's `proto` field.
    fn number(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// What a reply means beyond its RESP2 frame: RESP2 sends maps and pushes as
/// plain arrays and has two nulls, RESP3 tells them all apart. [`put_frame`]
/// reads it; nested frames are [`Shape::Plain`] unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Arrays are arrays; a null is the null bulk string (`$-1` in RESP2).
    Plain,
    /// An array whose null is the null array (`*-1` in RESP2), as Sentinel
    /// answers `SENTINEL get-master-addr-by-name` for an unknown name.
    Array,
    /// A flat `[key, value, …]` array that RESP3 sends as a map (`%`).
    Map,
    /// An array of such flat arrays: each element is a map in RESP3.
    Maps,
    /// Pub/sub confirmations and messages: a push (`>`) in RESP3.
    Push,
}

/// Per-connection state: everything a request can change. Pure: no I/O.
#[derive(Debug, Default)]
struct Session {
    /// The client's id (`CLIENT ID`, HELLO's `id`).
    id: u64,
    /// `CLIENT SETNAME`, if any.
    name: Option<Bytes>,
    /// Whether AUTH succeeded (only consulted when a password is required).
    authenticated: bool,
    /// The RESP version replies are written in.
    protocol: Protocol,
    /// Subscribed channels.
    channels: BTreeSet<Bytes>,
    /// Subscribed patterns.
    patterns: BTreeSet<Bytes>,
}

impl Session {
    /// A fresh session for client `id`.
    fn new(id: u64) -> Session {
        Session {
            id,
            ..Session::default()
        }
    }

    /// Channels plus patterns: the count Redis reports in confirmations.
    fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Whether the client is in RESP2's pub/sub mode, where replies and
    /// messages share one kind of frame and so few commands are allowed.
    fn resp2_subscribed(&self) -> bool {
        self.protocol == Protocol::Resp2 && self.subscriptions() > 0
    }

    /// Appends `frame` as `shape` in this connection's protocol.
    fn put(&self, out: &mut BytesMut, frame: &OwnedFrame, shape: Shape) {
        put_frame(out, frame, shape, self.protocol);
    }

    /// Handles one request (`args[0]` is the command name), appending the reply
    /// to `out` unless the core must answer.
    fn handle(&mut self, args: &[Bytes], requirepass: Option<&str>, out: &mut BytesMut) -> Step {
        let Some(first) = args.first() else {
            return Step::Answered;
        };
        let name = first.to_ascii_lowercase();
        if requirepass.is_some() && !self.authenticated && !BEFORE_AUTH.contains(&&name[..]) {
            out.put_slice(replies::NOAUTH);
            return Step::Answered;
        }
        if self.resp2_subscribed() && !WHILE_SUBSCRIBED.contains(&&name[..]) {
            put_error(
                out,
                &format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    shown(&name)
                ),
            );
            return Step::Answered;
        }
        let rest = &args[1..];
        match &name[..] {
            b"ping" => self.ping(rest, out),
            b"quit" => {
                out.put_slice(replies::OK);
                return Step::Close;
            }
            b"auth" => self.auth(rest, requirepass, out),
            b"hello" => self.hello(rest, requirepass, out),
            b"client" => self.client(rest, out),
            b"subscribe" => self.subscribe(Kind::Channel, rest, out),
            b"psubscribe" => self.subscribe(Kind::Pattern, rest, out),
            b"unsubscribe" => self.unsubscribe(Kind::Channel, rest, out),
            b"punsubscribe" => self.unsubscribe(Kind::Pattern, rest, out),
            b"reset" => self.reset(rest, requirepass, out),
            _ => return Step::Core,
        }
        Step::Answered
    }

    /// `PING [message]`; in RESP2's pub/sub mode Redis answers with a `pong`
    /// array.
    fn ping(&self, rest: &[Bytes], out: &mut BytesMut) {
        let message = match rest {
            [] => None,
            [message] => Some(message),
            _ => return put_arity(out, "ping"),
        };
        match (self.resp2_subscribed(), message) {
            (true, message) => {
                let pong = OwnedFrame::Array(vec![
                    OwnedFrame::BulkString(b"pong".to_vec()),
                    OwnedFrame::BulkString(message.map_or_else(Vec::new, |m| m.to_vec())),
                ]);
                self.put(out, &pong, Shape::Plain);
            }
            (false, None) => out.put_slice(replies::PONG),
            (false, Some(message)) => {
                self.put(out, &OwnedFrame::BulkString(message.to_vec()), Shape::Plain)
            }
        }
    }

    /// `AUTH [user] password`.
    fn auth(&mut self, rest: &[Bytes], requirepass: Option<&str>, out: &mut BytesMut) {
        let accepted = match (rest, requirepass) {
            ([_], None) => return out.put_slice(replies::AUTH_UNCONFIGURED),
            ([pass], Some(password)) => same_secret(pass, password.as_bytes()),
            ([user, pass], _) => credentials_ok(requirepass, user, pass),
            _ => return put_arity(out, "auth"),
        };
        if accepted {
            self.authenticated = true;
            out.put_slice(replies::OK);
        } else {
            out.put_slice(replies::WRONGPASS);
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`. Like Redis, the
    /// protocol changes only once everything else succeeded, and the reply is
    /// already in the new one.
    fn hello(&mut self, rest: &[Bytes], requirepass: Option<&str>, out: &mut BytesMut) {
        let (protocol, options) = match rest.split_first() {
            None => (self.protocol, rest),
            Some((version, options)) => match parse_version(version) {
                Ok(protocol) => (protocol, options),
                Err(refusal) => return refusal.put(out),
            },
        };
        let (auth, setname) = match hello_options(options) {
            Ok(parsed) => parsed,
            Err(refusal) => return refusal.put(out),
        };
        if let Some((user, pass)) = auth {
            if !credentials_ok(requirepass, user, pass) {
                return out.put_slice(replies::WRONGPASS);
            }
            self.authenticated = true;
        }
        if requirepass.is_some() && !self.authenticated {
            return out.put_slice(replies::NOAUTH_HELLO);
        }
        if let Some(name) = setname {
            self.name = (!name.is_empty()).then(|| name.clone());
        }
        self.protocol = protocol;
        self.put(out, &self.hello_map(), Shape::Map);
    }

    /// HELLO's reply: a map (a flat array in RESP2). In sentinel mode Redis
    /// leaves out the `role` field it sends elsewhere: six fields.
    fn hello_map(&self) -> OwnedFrame {
        let text = |s: &str| OwnedFrame::BulkString(s.as_bytes().to_vec());
        let id = i64::try_from(self.id).unwrap_or(i64::MAX);
        OwnedFrame::Array(vec![
            text("server"),
            text("redis"),
            text("version"),
            text("7.0.0"),
            text("proto"),
            OwnedFrame::Integer(self.protocol.number()),
            text("id"),
            OwnedFrame::Integer(id),
            text("mode"),
            text("sentinel"),
            text("modules"),
            OwnedFrame::Array(Vec::new()),
        ])
    }

    /// `CLIENT SETNAME | GETNAME | ID`; other subcommands are unknown here.
    fn client(&mut self, rest: &[Bytes], out: &mut BytesMut) {
        let Some((sub, args)) = rest.split_first() else {
            return put_arity(out, "client");
        };
        let sub_lower = sub.to_ascii_lowercase();
        match (&sub_lower[..], args) {
            (b"setname", [name]) => {
                if !valid_name(name) {
                    return out.put_slice(replies::BAD_NAME);
                }
                self.name = (!name.is_empty()).then(|| name.clone());
                out.put_slice(replies::OK);
            }
            (b"getname", []) => {
                let name = self.name.as_ref();
                let frame = name.map_or(OwnedFrame::Null, |n| OwnedFrame::BulkString(n.to_vec()));
                self.put(out, &frame, Shape::Plain);
            }
            (b"id", []) => self.put(
                out,
                &OwnedFrame::Integer(i64::try_from(self.id).unwrap_or(i64::MAX)),
                Shape::Plain,
            ),
            (b"setname" | b"getname" | b"id", _) => {
                put_arity(out, &format!("client|{}", shown(&sub_lower)))
            }
            _ => put_error(
                out,
                &format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", shown(sub)),
            ),
        }
    }

    /// `SUBSCRIBE` / `PSUBSCRIBE`: one confirmation per name, even a repeated one.
    fn subscribe(&mut self, kind: Kind, names: &[Bytes], out: &mut BytesMut) {
        if names.is_empty() {
            return put_arity(out, &String::from_utf8_lossy(kind.subscribed()));
        }
        for name in names {
            self.set_mut(kind).insert(name.clone());
            self.confirm(out, kind.subscribed(), Some(name));
        }
    }

    /// `UNSUBSCRIBE` / `PUNSUBSCRIBE`: the named ones, or all of that kind. With
    /// nothing to drop Redis still confirms once, with a null name.
    fn unsubscribe(&mut self, kind: Kind, names: &[Bytes], out: &mut BytesMut) {
        let names: Vec<Bytes> = if names.is_empty() {
            self.set_mut(kind).iter().cloned().collect()
        } else {
            names.to_vec()
        };
        if names.is_empty() {
            return self.confirm(out, kind.unsubscribed(), None);
        }
        for name in &names {
            self.set_mut(kind).remove(name);
            self.confirm(out, kind.unsubscribed(), Some(name));
        }
    }

    /// Appends `[word, name, count]` (a push in RESP3).
    fn confirm(&self, out: &mut BytesMut, word: &[u8], name: Option<&Bytes>) {
        let name = name.map_or(OwnedFrame::Null, |n| OwnedFrame::BulkString(n.to_vec()));
        let count = i64::try_from(self.subscriptions()).unwrap_or(i64::MAX);
        let confirmation = OwnedFrame::Array(vec![
            OwnedFrame::BulkString(word.to_vec()),
            name,
            OwnedFrame::Integer(count),
        ]);
        self.put(out, &confirmation, Shape::Push);
    }

    /// The set of `kind`.
    fn set_mut(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
        }
    }

    /// `RESET`: back to a fresh connection (same id), RESP2 included. Like
    /// Redis, a password-protected client must authenticate again.
    fn reset(&mut self, rest: &[Bytes], requirepass: Option<&str>, out: &mut BytesMut) {
        if !rest.is_empty() {
            return put_arity(out, "reset");
        }
        *self = Session {
            authenticated: requirepass.is_none(),
            ..Session::new(self.id)
        };
        out.put_slice(replies::RESET);
    }

    /// Appends the frames `event` produces for this subscriber: a `message` if
    /// its channel is subscribed, a `pmessage` per matching pattern (pushes
    /// in RESP3). Written word by word: no frame is built per event.
    fn deliver(&self, event: &Event, out: &mut BytesMut) {
        let channel = event.channel.as_bytes();
        let message = event.message.as_bytes();
        if self.channels.contains(channel) {
            put_header(out, b'>', 3, self.protocol);
            for word in [&b"message"[..], channel, message] {
                put_bulk(out, word);
            }
        }
        for pattern in &self.patterns {
            if glob_match(pattern, channel) {
                put_header(out, b'>', 4, self.protocol);
                for word in [&b"pmessage"[..], pattern, channel, message] {
                    put_bulk(out, word);
                }
            }
        }
    }
}

/// A refusal computed by a helper: a fixed reply or a message to send as `-<message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// A complete reply line.
    Fixed(&'static [u8]),
    /// An error message without the leading `-`, free of line breaks.
    Message(String),
}

impl Refusal {
    /// Appends the refusal to `out`.
    fn put(self, out: &mut BytesMut) {
        match self {
            Refusal::Fixed(reply) => out.put_slice(reply),
            Refusal::Message(message) => put_error(out, &message),
        }
    }
}

/// Reads HELLO's protocol version: 2 or 3, as Redis serves.
fn parse_version(version: &[u8]) -> Result<Protocol, Refusal> {
    let parsed = std::str::from_utf8(version)
        .ok()
        .and_then(|v| v.parse::<i64>().ok());
    match parsed {
        None => Err(Refusal::Fixed(replies::BAD_PROTOCOL)),
        Some(2) => Ok(Protocol::Resp2),
        Some(3) => Ok(Protocol::Resp3),
        Some(_) => Err(Refusal::Fixed(replies::NOPROTO)),
    }
}

/// HELLO's options after the version: `AUTH user pass`, then `SETNAME name`.
type HelloOptions<'a> = (Option<(&'a Bytes, &'a Bytes)>, Option<&'a Bytes>);

/// Parses HELLO's options; a bad client name is refused before anything else
/// happens, like Redis.
fn hello_options(mut options: &[Bytes]) -> Result<HelloOptions<'_>, Refusal> {
    let (mut auth, mut setname) = (None, None);
    while let Some((option, tail)) = options.split_first() {
        let lower = option.to_ascii_lowercase();
        options = match (&lower[..], tail) {
            (b"auth", [user, pass, more @ ..]) => {
                auth = Some((user, pass));
                more
            }
            (b"setname", [name, more @ ..]) => {
                if !valid_name(name) {
                    return Err(Refusal::Fixed(replies::BAD_NAME));
                }
                setname = Some(name);
                more
            }
            _ => {
                return Err(Refusal::Message(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    shown(option)
                )));
            }
        };
    }
    Ok((auth, setname))
}

/// Whether `user`/`pass` log in as the default user: with no password
/// configured, the default user accepts any password (Redis's `nopass`).
fn credentials_ok(requirepass: Option<&str>, user: &[u8], pass: &[u8]) -> bool {
    let password_ok = requirepass.is_none_or(|password| same_secret(pass, password.as_bytes()));
    user == b"default" && password_ok
}

/// Redis accepts client names made of printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// A client-supplied word made safe to echo in an error line: lossy UTF-8, no
/// line breaks, at most [`MAX_ECHOED`] characters.
fn shown(word: &[u8]) -> String {
    String::from_utf8_lossy(word)
        .chars()
        .take(MAX_ECHOED)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Appends `-<message>\r\n`; `message` must already be free of line breaks.
fn put_error(out: &mut BytesMut, message: &str) {
    out.put_u8(b'-');
    out.put_slice(message.as_bytes());
    out.put_slice(b"\r\n");
}

/// Appends Redis's arity error for `command`.
fn put_arity(out: &mut BytesMut, command: &str) {
    put_error(
        out,
        &format!("ERR wrong number of arguments for '{command}' command"),
    );
}

/// Appends `frame`, meaning `shape`, in `protocol`: the one place where a
/// reply becomes bytes. Simple strings, errors, integers and bulk strings are
/// the same in both versions; a map is `%` with half as many entries as its
/// flat array, a push `>`, any null `_` in RESP3. Core frames are shallow, so
/// the recursion is too.
fn put_frame(out: &mut BytesMut, frame: &OwnedFrame, shape: Shape, protocol: Protocol) {
    match frame {
        OwnedFrame::SimpleString(text) => {
            out.put_u8(b'+');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        OwnedFrame::Error(message) => put_error(out, message),
        OwnedFrame::Integer(n) => put_line(out, b':', n),
        OwnedFrame::BulkString(data) => put_bulk(out, data),
        OwnedFrame::Null => out.put_slice(match (protocol, shape) {
            (Protocol::Resp3, _) => b"_\r\n",
            (Protocol::Resp2, Shape::Array) => b"*-1\r\n",
            (Protocol::Resp2, _) => b"$-1\r\n",
        }),
        OwnedFrame::Array(items) => {
            let (kind, inner) = match shape {
                Shape::Map if items.len() % 2 == 0 => (b'%', Shape::Plain),
                Shape::Maps => (b'*', Shape::Map),
                Shape::Push => (b'>', Shape::Plain),
                Shape::Plain | Shape::Array | Shape::Map => (b'*', Shape::Plain),
            };
            put_header(out, kind, items.len(), protocol);
            for item in items {
                put_frame(out, item, inner, protocol);
            }
        }
    }
}

/// Appends the header of an aggregate of `len` frames: `kind` is RESP3's type
/// byte (`*`, `%` counting pairs, `>`); RESP2 writes every kind as `*`.
fn put_header(out: &mut BytesMut, kind: u8, len: usize, protocol: Protocol) {
    match (protocol, kind) {
        (Protocol::Resp3, b'%') => put_line(out, b'%', len / 2),
        (Protocol::Resp3, kind) => put_line(out, kind, len),
        (Protocol::Resp2, _) => put_line(out, b'*', len),
    }
}

/// Appends `$<len>\r\n<data>\r\n`.
fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    put_line(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// Appends `<kind><number>\r\n`.
fn put_line(out: &mut BytesMut, kind: u8, number: impl std::fmt::Display) {
    out.put_u8(kind);
    // Writing into a `BytesMut` cannot fail.
    let _ = write!(out, "{number}\r\n");
}

/// How Sentinel shapes the core's replies, which the core builds as RESP2
/// frames: `SENTINEL MASTER`, `CONFIG GET` and `DEBUG` are maps, `MASTERS`,
/// `REPLICAS` (`SLAVES`) and `SENTINELS` arrays of maps, and an unknown name
/// in `GET-MASTER-ADDR-BY-NAME` a null array. Errors and `+OK` (`CONFIG SET`,
/// `DEBUG name ms`) are not arrays, so their shape does not matter.
fn core_shape(args: &[Bytes]) -> Shape {
    let (Some(command), Some(sub)) = (args.first(), args.get(1)) else {
        return Shape::Plain;
    };
    if !command.eq_ignore_ascii_case(b"sentinel") {
        return Shape::Plain;
    }
    match sub.to_ascii_lowercase().as_slice() {
        b"master" | b"config" | b"debug" => Shape::Map,
        b"masters" | b"replicas" | b"slaves" | b"sentinels" => Shape::Maps,
        b"get-master-addr-by-name" => Shape::Array,
        _ => Shape::Plain,
    }
}

/// Replaces line breaks inside simple strings and errors from the core, which
/// the encoder would write verbatim and so break the client's framing.
fn scrub(frame: &mut OwnedFrame) {
    let line_break = |c: char| c == '\r' || c == '\n';
    match frame {
        OwnedFrame::SimpleString(text) => {
            for byte in text.iter_mut().filter(|b| matches!(b, b'\r' | b'\n')) {
                *byte = b' ';
            }
        }
        OwnedFrame::Error(text) if text.contains(line_break) => {
            *text = text.replace(line_break, " ");
        }
        OwnedFrame::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// Serves the sentinel port on `listener` until `stop` is cancelled; then stops
/// accepting, closes every connection (each finishes the command in progress
/// first) and returns once they are all gone.
pub async fn serve(
    listener: TcpListener,
    core: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    options: Options,
    stop: CancellationToken,
) {
    let shared = Arc::new(Shared {
        core,
        events,
        requirepass: options.requirepass,
        core_timeout: CORE_TIMEOUT,
    });
    accept_loop(listener, shared, options.max_clients, stop).await;
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    /// Where requests for the core go.
    core: mpsc::Sender<Request>,
    /// Events for subscribers; a receiver exists only while a client subscribes.
    events: broadcast::Sender<Event>,
    /// The password clients must present, if any.
    requirepass: Option<String>,
    /// How long a client waits for the core ([`CORE_TIMEOUT`], shorter in tests).
    core_timeout: Duration,
}

/// Accepts clients until `stop`, then waits for their connections to close.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_clients: usize,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_clients.min(Semaphore::MAX_PERMITS)));
    let connections = TaskTracker::new();
    let mut last_id = 0u64;
    loop {
        let accepted = tokio::select! {
            // Shutdown: stop accepting; connections see `stop` themselves.
            _ = stop.cancelled() => break,
            // A new client.
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                // EMFILE and friends: back off briefly rather than spin.
                warn!(%error, "sentinel port: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            debug!(%peer, "sentinel port: refusing client, max_clients reached");
            connections.spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        last_id += 1;
        let (shared, stop, id) = (Arc::clone(&shared), stop.clone(), last_id);
        connections.spawn(async move {
            let end = Connection::new(id).run(stream, &shared, &stop).await;
            debug!(%peer, id, ?end, "sentinel port: connection closed");
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
}

/// Tells a client over the limit why it is closed, without waiting on it long.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, stream.write_all(replies::MAX_CLIENTS)).await;
}

/// Why a connection ended (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed its sending side: replies already made are still sent.
    InputClosed,
    /// The socket failed.
    ClientGone,
    /// `QUIT`.
    Quit,
    /// Malformed or oversized input.
    Protocol,
    /// The server is shutting down.
    Stopped,
    /// A subscriber fell behind the event channel by this many events.
    Lagged(u64),
    /// A subscriber stopped reading: pending output passed [`MAX_OUTPUT`].
    SlowSubscriber,
    /// The event channel closed (cannot happen while [`Shared`] holds a sender).
    EventsClosed,
}

impl End {
    /// Whether pending replies are still worth writing before closing.
    fn flushes(self) -> bool {
        matches!(
            self,
            End::InputClosed | End::Quit | End::Protocol | End::Stopped
        )
    }
}

/// Input that ends the connection, in the words sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum InputError {
    /// The request scanner refused the bytes.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A single request over [`MAX_REQUEST`].
    #[error("Protocol error: request bigger than {MAX_REQUEST} bytes")]
    TooBig,
}

/// One client connection: its buffers, its session and its event receiver.
struct Connection {
    /// Bytes read and not yet parsed; starts at a request boundary.
    input: BytesMut,
    /// Replies and events not yet written.
    output: BytesMut,
    /// Finds request boundaries in `input`, resumably.
    scanner: RequestScanner,
    /// What the client's commands changed.
    session: Session,
    /// Events, only while the session has subscriptions.
    events: Option<broadcast::Receiver<Event>>,
}

impl Connection {
    /// A connection for client `id`, with empty buffers.
    fn new(id: u64) -> Connection {
        Connection {
            input: BytesMut::new(),
            output: BytesMut::new(),
            scanner: RequestScanner::default(),
            session: Session::new(id),
            events: None,
        }
    }

    /// Serves `stream` until the client leaves, misbehaves, or `stop`.
    async fn run(
        mut self,
        mut stream: TcpStream,
        shared: &Shared,
        stop: &CancellationToken,
    ) -> End {
        let end = loop {
            if let Some(end) = self.answer_requests(shared, stop).await {
                break end;
            }
            if self.output.len() < OUTPUT_HIGH {
                self.input.reserve(READ_CHUNK);
            }
            let (mut reader, mut writer) = stream.split();
            tokio::select! {
                // Shutdown: close even an idle connection.
                _ = stop.cancelled() => break End::Stopped,
                // Requests, read only while replies drain (back-pressure).
                read = reader.read_buf(&mut self.input), if self.output.len() < OUTPUT_HIGH => {
                    match read {
                        Ok(0) => break End::InputClosed,
                        Ok(_) => {}
                        Err(_) => break End::ClientGone,
                    }
                }
                // Replies and events, written as the socket takes them.
                written = writer.write(&self.output), if !self.output.is_empty() => match written {
                    Ok(n) if n > 0 => self.output.advance(n),
                    _ => break End::ClientGone,
                },
                // An event for this subscriber.
                event = next_event(&mut self.events), if self.events.is_some() => {
                    if let Err(end) = self.deliver(event) {
                        break end;
                    }
                }
            }
        };
        if end.flushes() && !self.output.is_empty() {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, stream.write_all(&self.output)).await;
        }
        end
    }

    /// Answers complete requests in order while the output has room. `Some`
    /// when the connection must end (QUIT, bad input, shutdown).
    async fn answer_requests(&mut self, shared: &Shared, stop: &CancellationToken) -> Option<End> {
        while self.output.len() < OUTPUT_HIGH {
            if stop.is_cancelled() {
                return Some(End::Stopped);
            }
            let args = match self.next_request() {
                Ok(Some(args)) => args,
                Ok(None) => return None,
                Err(error) => {
                    put_error(&mut self.output, &format!("ERR {error}"));
                    return Some(End::Protocol);
                }
            };
            let step = self
                .session
                .handle(&args, shared.requirepass.as_deref(), &mut self.output);
            match step {
                Step::Answered => {}
                Step::Close => return Some(End::Quit),
                Step::Core => {
                    let shape = core_shape(&args);
                    let mut frame = ask_core(&shared.core, args, shared.core_timeout).await;
                    put_core_reply(
                        &mut self.output,
                        frame.as_mut(),
                        shape,
                        self.session.protocol,
                    );
                }
            }
            self.follow_subscriptions(&shared.events);
        }
        None
    }

    /// Takes the next complete request off `input`: its words, name first.
    fn next_request(&mut self) -> Result<Option<Vec<Bytes>>, InputError> {
        loop {
            let found = self.scanner.scan(&self.input)?;
            let request = match found {
                None if self.input.len() > MAX_REQUEST => return Err(InputError::TooBig),
                None => return Ok(None),
                Some(Scanned::Empty(len)) => {
                    self.input.advance(len);
                    continue;
                }
                Some(Scanned::Request(request)) => request,
            };
            if request.len > MAX_REQUEST {
                return Err(InputError::TooBig);
            }
            let frame = self.input.split_to(request.len).freeze();
            let args = request::args(&frame, &request)
                .map(|word| match word {
                    Cow::Borrowed(word) => frame.slice_ref(word),
                    Cow::Owned(word) => Bytes::from(word),
                })
                .collect();
            return Ok(Some(args));
        }
    }

    /// Holds an event receiver exactly while the session has subscriptions, so
    /// clients that never subscribe cannot lag.
    fn follow_subscriptions(&mut self, events: &broadcast::Sender<Event>) {
        match (self.session.subscriptions() > 0, self.events.is_some()) {
            (true, false) => self.events = Some(events.subscribe()),
            (false, true) => self.events = None,
            _ => {}
        }
    }

    /// Queues an event's frames, or ends a subscriber that cannot keep up.
    fn deliver(&mut self, received: Result<Event, RecvError>) -> Result<(), End> {
        match received {
            Ok(event) => {
                self.session.deliver(&event, &mut self.output);
                if self.output.len() > MAX_OUTPUT {
                    return Err(End::SlowSubscriber);
                }
                Ok(())
            }
            Err(RecvError::Lagged(missed)) => Err(End::Lagged(missed)),
            Err(RecvError::Closed) => Err(End::EventsClosed),
        }
    }
}

/// The next event, or never when there is no receiver (the `select!` arm is
/// disabled then anyway).
async fn next_event(events: &mut Option<broadcast::Receiver<Event>>) -> Result<Event, RecvError> {
    match events {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Asks the core to answer `args`; `None` if it is gone or slower than `timeout`.
async fn ask_core(
    core: &mpsc::Sender<Request>,
    args: Vec<Bytes>,
    timeout: Duration,
) -> Option<OwnedFrame> {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        core.send(Request { args, reply }).await.ok()?;
        answer.await.ok()
    };
    tokio::time::timeout(timeout, asked).await.ok().flatten()
}

/// Appends the core's answer as `shape` in `protocol`, or the "unavailable"
/// error without one.
fn put_core_reply(
    out: &mut BytesMut,
    frame: Option<&mut OwnedFrame>,
    shape: Shape,
    protocol: Protocol,
) {
    match frame {
        Some(frame) => {
            scrub(frame);
            put_frame(out, frame, shape, protocol);
        }
        None => out.put_slice(replies::CORE_UNAVAILABLE),
    }
}

/// Redis-style glob matching for `PSUBSCRIBE` patterns: `*` (any run), `?` (any
/// one byte), `[...]` (a set, `^` negates it, `a-z` ranges) and `\` (take the
/// next byte literally). Case-sensitive, like Redis's pub/sub.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern past it, and the first
    // text position that `*` has not yet tried to swallow.
    let mut star: Option<(usize, usize)> = None;
    loop {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            Some(_) => {
                if let Some(&byte) = text.get(t) {
                    let (matched, next) = match_one(pattern, p, byte);
                    if matched {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
            }
            None if t == text.len() => return true,
            None => {}
        }
        // Mismatch: let the last `*` swallow one more byte, if any remain.
        match star {
            Some((after_star, tried)) if tried < text.len() => {
                star = Some((after_star, tried + 1));
                p = after_star;
                t = tried + 1;
            }
            _ => return false,
        }
    }
}

/// Matches the single-byte pattern token at `p` (anything but `*`) against
/// `byte`; returns whether it matched and where the next token starts.
fn match_one(pattern: &[u8], p: usize, byte: u8) -> (bool, usize) {
    match pattern[p] {
        b'?' => (true, p + 1),
        b'[' => match_set(pattern, p + 1, byte),
        _ => {
            let (literal, next) = literal_at(pattern, p);
            (literal == byte, next)
        }
    }
}

/// The literal byte at `p`, honouring a `\` escape (a trailing `\` is itself),
/// and the position after it.
fn literal_at(pattern: &[u8], p: usize) -> (u8, usize) {
    match (pattern[p], pattern.get(p + 1)) {
        (b'\\', Some(&escaped)) => (escaped, p + 2),
        (literal, _) => (literal, p + 1),
    }
}

/// Matches a `[...]` set whose body starts at `p`. An unterminated set ends
/// with the pattern.
fn match_set(pattern: &[u8], mut p: usize, byte: u8) -> (bool, usize) {
    let negated = pattern.get(p) == Some(&b'^');
    if negated {
        p += 1;
    }
    let mut found = false;
    loop {
        match pattern.get(p) {
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(_) => {
                let (low, next) = literal_at(pattern, p);
                let is_range = pattern.get(next) == Some(&b'-')
                    && pattern.get(next + 1).is_some_and(|&end| end != b']');
                if is_range {
                    let (high, after) = literal_at(pattern, next + 1);
                    let (low, high) = (low.min(high), low.max(high));
                    found |= (low..=high).contains(&byte);
                    p = after;
                } else {
                    found |= low == byte;
                    p = next;
                }
            }
        }
    }
    (found != negated, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one command (words split on spaces) through `session`.
    fn exec(session: &mut Session, requirepass: Option<&str>, line: &str) -> (Step, String) {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        let mut out = BytesMut::new();
        let step = session.handle(&args, requirepass, &mut out);
        (step, String::from_utf8_lossy(&out).into_owned())
    }

    /// The reply `line` gets from a fresh session (no password).
    fn reply(line: &str) -> String {
        exec(&mut Session::new(7), None, line).1
    }

    #[test]
    fn ping_quit_and_unknown_commands() {
        assert_eq!(reply("PING"), "+PONG\r\n");
        assert_eq!(reply("ping hi"), "$2\r\nhi\r\n");
        assert_eq!(
            reply("PING a b"),
            "-ERR wrong number of arguments for 'ping' command\r\n"
        );
        assert_eq!(
            exec(&mut Session::new(1), None, "QUIT"),
            (Step::Close, "+OK\r\n".into())
        );
        for line in ["SENTINEL MYID", "INFO", "ROLE", "PUBLISH ch x", "NOPE"] {
            assert_eq!(
                exec(&mut Session::new(1), None, line),
                (Step::Core, "".into())
            );
        }
    }

    #[test]
    fn auth_without_a_password_configured() {
        assert!(reply("AUTH secret").starts_with("-ERR AUTH <password> called without"));
        assert_eq!(reply("AUTH default anything"), "+OK\r\n");
        assert!(reply("AUTH alice x").starts_with("-WRONGPASS"));
        assert_eq!(
            reply("AUTH"),
            "-ERR wrong number of arguments for 'auth' command\r\n"
        );
    }

    #[test]
    fn requirepass_gates_everything_but_auth_hello_quit_reset() {
        let pass = Some("s3cret");
        let mut session = Session::new(1);
        assert_eq!(
            exec(&mut session, pass, "PING").1,
            "-NOAUTH Authentication required.\r\n"
        );
        assert_eq!(exec(&mut session, pass, "SENTINEL MYID").0, Step::Answered);
        assert!(
            exec(&mut session, pass, "HELLO")
                .1
                .starts_with("-NOAUTH HELLO must")
        );
        assert!(
            exec(&mut session, pass, "AUTH wrong")
                .1
                .starts_with("-WRONGPASS")
        );
        assert!(
            exec(&mut session, pass, "AUTH bob s3cret")
                .1
                .starts_with("-WRONGPASS")
        );
        assert_eq!(exec(&mut session, pass, "AUTH default s3cret").1, "+OK\r\n");
        assert_eq!(exec(&mut session, pass, "SENTINEL MYID").0, Step::Core);
        assert_eq!(exec(&mut session, pass, "RESET").1, "+RESET\r\n");
        assert!(exec(&mut session, pass, "PING").1.starts_with("-NOAUTH"));
        assert_eq!(exec(&mut session, pass, "AUTH s3cret").1, "+OK\r\n");
        assert_eq!(exec(&mut session, pass, "QUIT").0, Step::Close);
    }

    /// HELLO's six fields after `header`, for client 7 speaking `proto`.
    fn hello_reply(header: &str, proto: u8) -> String {
        format!(
            "{header}\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
             $5\r\nproto\r\n:{proto}\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n\
             $7\r\nmodules\r\n*0\r\n"
        )
    }

    #[test]
    fn hello_answers_a_flat_map_in_resp2() {
        let expected = hello_reply("*12", 2);
        assert_eq!(reply("HELLO"), expected);
        assert_eq!(reply("HELLO 2"), expected);
        let mut session = Session::new(7);
        let (_, out) = exec(
            &mut session,
            Some("pw"),
            "HELLO 2 AUTH default pw SETNAME app",
        );
        assert_eq!(out, expected);
        assert!(session.authenticated);
        assert_eq!(session.name.as_deref(), Some(&b"app"[..]));
    }

    /// `HELLO 3` switches to RESP3 as Redis Sentinel 7.0 does: the reply is
    /// already a map (six fields, no `role` in sentinel mode); `HELLO` alone
    /// keeps the version; `HELLO 2` and `RESET` go back to RESP2.
    #[test]
    fn hello_3_switches_to_resp3_and_back() {
        let mut session = Session::new(7);
        assert_eq!(exec(&mut session, None, "HELLO 3").1, hello_reply("%6", 3));
        assert_eq!(session.protocol, Protocol::Resp3);
        assert_eq!(exec(&mut session, None, "HELLO").1, hello_reply("%6", 3));
        assert_eq!(exec(&mut session, None, "CLIENT GETNAME").1, "_\r\n");
        assert_eq!(exec(&mut session, None, "HELLO 2").1, hello_reply("*12", 2));
        assert_eq!(exec(&mut session, None, "CLIENT GETNAME").1, "$-1\r\n");
        exec(&mut session, None, "HELLO 3");
        assert_eq!(exec(&mut session, None, "RESET").1, "+RESET\r\n");
        assert_eq!(session.protocol, Protocol::Resp2);
        assert_eq!(exec(&mut session, None, "HELLO").1, hello_reply("*12", 2));
    }

    /// `HELLO 3 AUTH user pass SETNAME name` authenticates, names and
    /// switches at once; a refused one changes nothing, not even the version.
    #[test]
    fn hello_3_with_auth_and_setname() {
        let pass = Some("pw");
        let mut session = Session::new(7);
        assert!(
            exec(&mut session, pass, "HELLO 3 AUTH default nope SETNAME app")
                .1
                .starts_with("-WRONGPASS")
        );
        assert!(
            exec(&mut session, pass, "HELLO 3")
                .1
                .starts_with("-NOAUTH HELLO must")
        );
        assert_eq!(
            (
                session.protocol,
                session.name.as_ref(),
                session.authenticated
            ),
            (Protocol::Resp2, None, false)
        );
        assert_eq!(
            exec(&mut session, pass, "HELLO 3 AUTH default pw SETNAME app").1,
            hello_reply("%6", 3)
        );
        assert_eq!(
            exec(&mut session, pass, "CLIENT GETNAME").1,
            "$3\r\napp\r\n"
        );
        assert_eq!(
            exec(&mut session, pass, "HELLO 2 SETNAME bad\tname").1,
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        );
        assert_eq!(session.protocol, Protocol::Resp3);
    }

    #[test]
    fn hello_refusals() {
        for version in ["0", "1", "4", "-3"] {
            assert_eq!(
                reply(&format!("HELLO {version}")),
                "-NOPROTO unsupported protocol version\r\n"
            );
        }
        assert!(reply("HELLO two").starts_with("-ERR Protocol version is not an integer"));
        assert_eq!(
            reply("HELLO 2 AUTH default"),
            "-ERR Syntax error in HELLO option 'AUTH'\r\n"
        );
        assert_eq!(
            reply("HELLO 2 FOO"),
            "-ERR Syntax error in HELLO option 'FOO'\r\n"
        );
        assert!(reply("HELLO 2 SETNAME a\nb").starts_with("-ERR Client names cannot"));
        let mut session = Session::new(1);
        assert!(
            exec(&mut session, Some("pw"), "HELLO 2 AUTH default no")
                .1
                .starts_with("-WRONGPASS")
        );
        assert!(!session.authenticated);
    }

    #[test]
    fn client_setname_getname_id() {
        let mut session = Session::new(42);
        assert_eq!(exec(&mut session, None, "CLIENT GETNAME").1, "$-1\r\n");
        assert_eq!(
            exec(&mut session, None, "client setname app-1").1,
            "+OK\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "CLIENT GETNAME").1,
            "$5\r\napp-1\r\n"
        );
        assert!(
            exec(&mut session, None, "CLIENT SETNAME a\tb")
                .1
                .starts_with("-ERR Client names cannot")
        );
        assert_eq!(exec(&mut session, None, "CLIENT SETNAME ").1, "+OK\r\n");
        assert_eq!(exec(&mut session, None, "CLIENT GETNAME").1, "$-1\r\n");
        assert_eq!(exec(&mut session, None, "CLIENT ID").1, ":42\r\n");
        assert_eq!(
            exec(&mut session, None, "CLIENT KILL 1.2.3.4:5").1,
            "-ERR unknown subcommand 'KILL'. Try CLIENT HELP.\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "CLIENT ID x").1,
            "-ERR wrong number of arguments for 'client|id' command\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "CLIENT").1,
            "-ERR wrong number of arguments for 'client' command\r\n"
        );
    }

    #[test]
    fn subscriptions_count_channels_and_patterns() {
        let mut session = Session::new(1);
        assert_eq!(
            exec(&mut session, None, "SUBSCRIBE +sdown +odown").1,
            "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$6\r\n+odown\r\n:2\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "PSUBSCRIBE +* +sdown").1,
            "*3\r\n$10\r\npsubscribe\r\n$2\r\n+*\r\n:3\r\n*3\r\n$10\r\npsubscribe\r\n$6\r\n+sdown\r\n:4\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "SUBSCRIBE +sdown").1,
            "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:4\r\n",
            "a repeated subscription is confirmed but not counted"
        );
        assert_eq!(
            exec(&mut session, None, "UNSUBSCRIBE").1,
            "*3\r\n$11\r\nunsubscribe\r\n$6\r\n+odown\r\n:3\r\n*3\r\n$11\r\nunsubscribe\r\n$6\r\n+sdown\r\n:2\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "PUNSUBSCRIBE nope").1,
            "*3\r\n$12\r\npunsubscribe\r\n$4\r\nnope\r\n:2\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "PUNSUBSCRIBE")
                .1
                .matches("punsubscribe")
                .count(),
            2
        );
        assert_eq!(
            exec(&mut session, None, "UNSUBSCRIBE").1,
            "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "SUBSCRIBE").1,
            "-ERR wrong number of arguments for 'subscribe' command\r\n"
        );
    }

    #[test]
    fn subscribed_clients_are_limited_like_redis() {
        let mut session = Session::new(1);
        exec(&mut session, None, "SUBSCRIBE +sdown");
        assert_eq!(
            exec(&mut session, None, "SENTINEL MYID"),
            (
                Step::Answered,
                "-ERR Can't execute 'sentinel': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n".into()
            )
        );
        assert_eq!(
            exec(&mut session, None, "PING").1,
            "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "PING x").1,
            "*2\r\n$4\r\npong\r\n$1\r\nx\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "CLIENT SETNAME n").0,
            Step::Answered
        );
        assert_eq!(session.name, None);
        assert_eq!(exec(&mut session, None, "RESET").1, "+RESET\r\n");
        assert_eq!(session.subscriptions(), 0);
        assert_eq!(exec(&mut session, None, "SENTINEL MYID").0, Step::Core);
    }

    /// In RESP3 confirmations and messages are pushes (`>`), a null channel
    /// is `_`, and a subscribed client may run any command, plain `PING`
    /// included, as with Redis Sentinel 7.0.
    #[test]
    fn resp3_subscribers_get_pushes_and_keep_every_command() {
        let mut session = Session::new(1);
        exec(&mut session, None, "HELLO 3");
        assert_eq!(
            exec(&mut session, None, "SUBSCRIBE +sdown").1,
            ">3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n"
        );
        assert_eq!(
            exec(&mut session, None, "PSUBSCRIBE +*").1,
            ">3\r\n$10\r\npsubscribe\r\n$2\r\n+*\r\n:2\r\n"
        );
        assert_eq!(exec(&mut session, None, "PING").1, "+PONG\r\n");
        assert_eq!(exec(&mut session, None, "PING x").1, "$1\r\nx\r\n");
        assert_eq!(exec(&mut session, None, "SENTINEL MYID").0, Step::Core);
        assert_eq!(exec(&mut session, None, "CLIENT SETNAME n").1, "+OK\r\n");
        let event = Event {
            channel: "+sdown".into(),
            message: "master m 127.0.0.1 6379".into(),
        };
        let mut out = BytesMut::new();
        session.deliver(&event, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            ">3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n\
             >4\r\n$8\r\npmessage\r\n$2\r\n+*\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n"
        );
        exec(&mut session, None, "UNSUBSCRIBE");
        exec(&mut session, None, "PUNSUBSCRIBE");
        assert_eq!(
            exec(&mut session, None, "UNSUBSCRIBE").1,
            ">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
        );
    }

    /// The core's flat arrays become maps in RESP3 where Sentinel sends maps;
    /// RESP2 bytes stay as they were, except the null array Sentinel sends for
    /// an unknown master name.
    #[test]
    fn core_replies_are_shaped_like_sentinels() {
        let words = |line: &str| -> Vec<Bytes> {
            line.split(' ')
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect()
        };
        let pair = |k: &str, v: &str| {
            [
                OwnedFrame::BulkString(k.as_bytes().to_vec()),
                OwnedFrame::BulkString(v.as_bytes().to_vec()),
            ]
        };
        let master = OwnedFrame::Array([pair("name", "m"), pair("ip", "::1")].concat());
        let shaped = |line: &str, frame: &OwnedFrame, protocol| {
            let mut out = BytesMut::new();
            put_core_reply(
                &mut out,
                Some(&mut frame.clone()),
                core_shape(&words(line)),
                protocol,
            );
            String::from_utf8_lossy(&out).into_owned()
        };
        let flat = "$4\r\nname\r\n$1\r\nm\r\n$2\r\nip\r\n$3\r\n::1\r\n";
        for line in [
            "SENTINEL MASTER m",
            "sentinel config get *",
            "SENTINEL DEBUG",
        ] {
            assert_eq!(
                shaped(line, &master, Protocol::Resp3),
                format!("%2\r\n{flat}")
            );
            assert_eq!(
                shaped(line, &master, Protocol::Resp2),
                format!("*4\r\n{flat}")
            );
        }
        let list = OwnedFrame::Array(vec![master.clone(), master.clone()]);
        for line in [
            "SENTINEL MASTERS",
            "SENTINEL REPLICAS m",
            "SENTINEL slaves m",
            "SENTINEL SENTINELS m",
        ] {
            assert_eq!(
                shaped(line, &list, Protocol::Resp3),
                format!("*2\r\n%2\r\n{flat}%2\r\n{flat}")
            );
            assert_eq!(
                shaped(line, &list, Protocol::Resp2),
                format!("*2\r\n*4\r\n{flat}*4\r\n{flat}")
            );
        }
        let by_name = "SENTINEL get-master-addr-by-name nosuch";
        assert_eq!(shaped(by_name, &OwnedFrame::Null, Protocol::Resp3), "_\r\n");
        assert_eq!(
            shaped(by_name, &OwnedFrame::Null, Protocol::Resp2),
            "*-1\r\n"
        );
        let addr = OwnedFrame::Array(pair("127.0.0.1", "6379").to_vec());
        let addr_bytes = "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n";
        assert_eq!(shaped(by_name, &addr, Protocol::Resp3), addr_bytes);
        assert_eq!(shaped(by_name, &addr, Protocol::Resp2), addr_bytes);
        let role = OwnedFrame::Array(vec![
            OwnedFrame::BulkString(b"sentinel".to_vec()),
            OwnedFrame::Array(vec![OwnedFrame::BulkString(b"m".to_vec())]),
        ]);
        assert_eq!(
            shaped("ROLE", &role, Protocol::Resp3),
            "*2\r\n$8\r\nsentinel\r\n*1\r\n$1\r\nm\r\n"
        );
        let error = OwnedFrame::Error("ERR No such master with that name".into());
        assert_eq!(
            shaped("SENTINEL MASTER x", &error, Protocol::Resp3),
            "-ERR No such master with that name\r\n"
        );
        let odd = OwnedFrame::Array(vec![OwnedFrame::Integer(1)]);
        assert_eq!(
            shaped("SENTINEL MASTER m", &odd, Protocol::Resp3),
            "*1\r\n:1\r\n",
            "an odd array cannot be a map: sent as it is"
        );
    }

    #[test]
    fn events_become_message_and_pmessage_frames() {
        let mut session = Session::new(1);
        exec(&mut session, None, "SUBSCRIBE +sdown");
        exec(&mut session, None, "PSUBSCRIBE +* *down -*");
        let event = Event {
            channel: "+sdown".into(),
            message: "master m 127.0.0.1 6379".into(),
        };
        let mut out = BytesMut::new();
        session.deliver(&event, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "*3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n\
             *4\r\n$8\r\npmessage\r\n$5\r\n*down\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n\
             *4\r\n$8\r\npmessage\r\n$2\r\n+*\r\n$6\r\n+sdown\r\n$23\r\nmaster m 127.0.0.1 6379\r\n",
            "patterns in byte order, each one that matches"
        );
        out.clear();
        let other = Event {
            channel: "+tilt".into(),
            message: String::new(),
        };
        Session::new(2).deliver(&other, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn core_replies_cannot_break_framing() {
        let mut frame = OwnedFrame::Array(vec![
            OwnedFrame::Error("ERR bad\r\n+OK".into()),
            OwnedFrame::SimpleString(b"a\nb".to_vec()),
            OwnedFrame::BulkString(b"x\r\ny".to_vec()),
        ]);
        let mut out = BytesMut::new();
        put_core_reply(&mut out, Some(&mut frame), Shape::Plain, Protocol::Resp2);
        assert_eq!(&out[..], b"*3\r\n-ERR bad  +OK\r\n+a b\r\n$4\r\nx\r\ny\r\n");
        out.clear();
        put_core_reply(&mut out, None, Shape::Map, Protocol::Resp3);
        assert_eq!(&out[..], b"-ERR sentinel core unavailable\r\n");
    }

    #[test]
    fn echoed_words_are_sanitized_and_bounded() {
        assert_eq!(shown(b"a\r\nb"), "a  b");
        assert_eq!(shown(&[b'x'; 500]).len(), MAX_ECHOED);
    }

    #[test]
    fn options_never_print_the_password() {
        let options = Options {
            requirepass: Some("hunter2".into()),
            max_clients: 10,
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }

    #[test]
    fn glob_literals_and_wildcards() {
        assert!(glob_match(b"+sdown", b"+sdown"));
        assert!(!glob_match(b"+sdown", b"-sdown"));
        assert!(!glob_match(b"+sdown", b"+sdow"));
        assert!(!glob_match(b"+sdow", b"+sdown"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"+*", b"+switch-master"));
        assert!(!glob_match(b"+*", b"-sdown"));
        assert!(glob_match(b"*down", b"+odown"));
        assert!(glob_match(b"a*b*c", b"aXXbYYbZc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYYbZ"));
        assert!(glob_match(b"**x", b"x"));
        assert!(glob_match(b"?sdown", b"+sdown"));
        assert!(!glob_match(b"?", b""));
        assert!(!glob_match(b"", b"x"));
        assert!(glob_match(b"", b""));
    }

    #[test]
    fn glob_sets_ranges_and_escapes() {
        assert!(glob_match(b"[+-]sdown", b"-sdown"));
        assert!(glob_match(b"[+-]sdown", b"+sdown"));
        assert!(!glob_match(b"[^+]sdown", b"+sdown"));
        assert!(glob_match(b"[^+]sdown", b"-sdown"));
        assert!(glob_match(b"h[a-c]llo", b"hbllo"));
        assert!(glob_match(b"h[c-a]llo", b"hbllo"), "reversed range");
        assert!(!glob_match(b"h[a-c]llo", b"hdllo"));
        assert!(glob_match(b"[a-]", b"-"), "a trailing '-' is literal");
        assert!(glob_match(b"\\*", b"*"));
        assert!(!glob_match(b"\\*", b"x"));
        assert!(glob_match(b"[\\]]", b"]"));
        assert!(glob_match(b"a\\", b"a\\"), "a trailing '\\' is literal");
        assert!(
            glob_match(b"[ab", b"b"),
            "an unterminated set ends with the pattern"
        );
        assert!(!glob_match(b"[]x", b"x"), "an empty set matches nothing");
        assert!(!glob_match(b"A*", b"a"), "case-sensitive");
    }

    #[test]
    fn glob_backtracking_stays_linear_per_star() {
        let text = vec![b'a'; 10_000];
        assert!(!glob_match(b"*a*a*b", &text));
        assert!(glob_match(b"*a*a*a", &text));
    }

    /// Tests over loopback: a real listener, a fake core, a raw client socket.
    mod over_tcp {
        use super::*;
        use tokio::task::JoinHandle;

        /// What the fake core does with requests.
        #[derive(Clone, Copy)]
        enum Core {
            /// Answers `SENTINEL MYID` with [`MYID`], `SENTINEL MASTER` with a
            /// one-field map, `SENTINEL GET-MASTER-ADDR-BY-NAME` with a null,
            /// anything else with an error.
            Answers,
            /// Its receiver is dropped: sends fail.
            Gone,
            /// Drops every reply sender unanswered.
            DropsReplies,
            /// Keeps every reply sender and never answers.
            Silent,
        }

        const MYID: &str = "0123456789abcdef0123456789abcdef01234567";

        /// A running sentinel port.
        struct Server {
            addr: std::net::SocketAddr,
            events: broadcast::Sender<Event>,
            stop: CancellationToken,
            served: JoinHandle<()>,
        }

        async fn start(core: Core, requirepass: Option<&str>, max_clients: usize) -> Server {
            start_with(core, requirepass, max_clients, 16).await
        }

        async fn start_with(
            core: Core,
            requirepass: Option<&str>,
            max_clients: usize,
            event_capacity: usize,
        ) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (core_tx, core_rx) = mpsc::channel(8);
            spawn_core(core, core_rx);
            let (events, _) = broadcast::channel(event_capacity);
            let shared = Arc::new(Shared {
                core: core_tx,
                events: events.clone(),
                requirepass: requirepass.map(str::to_owned),
                core_timeout: Duration::from_millis(200),
            });
            let stop = CancellationToken::new();
            let served = tokio::spawn(accept_loop(listener, shared, max_clients, stop.clone()));
            Server {
                addr,
                events,
                stop,
                served,
            }
        }

        fn spawn_core(core: Core, mut requests: mpsc::Receiver<Request>) {
            if let Core::Gone = core {
                return drop(requests);
            }
            tokio::spawn(async move {
                let mut kept = Vec::new();
                while let Some(request) = requests.recv().await {
                    let words: Vec<String> = request
                        .args
                        .iter()
                        .map(|w| String::from_utf8_lossy(w).to_ascii_uppercase())
                        .collect();
                    let frame = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                        ["SENTINEL", "MYID"] => OwnedFrame::BulkString(MYID.as_bytes().to_vec()),
                        ["SENTINEL", "MASTER", _] => OwnedFrame::Array(vec![
                            OwnedFrame::BulkString(b"quorum".to_vec()),
                            OwnedFrame::BulkString(b"1".to_vec()),
                        ]),
                        ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", _] => OwnedFrame::Null,
                        _ => OwnedFrame::Error(format!("ERR unknown command '{}'", words[0])),
                    };
                    match core {
                        Core::Answers => {
                            let _ = request.reply.send(frame);
                        }
                        Core::Silent => kept.push(request.reply),
                        Core::DropsReplies | Core::Gone => {}
                    }
                }
            });
        }

        impl Server {
            async fn connect(&self) -> TcpStream {
                TcpStream::connect(self.addr).await.unwrap()
            }

            fn publish(&self, channel: &str, message: &str) {
                let event = Event {
                    channel: channel.into(),
                    message: message.into(),
                };
                // No receiver (nobody subscribed) is not an error for a publisher.
                let _ = self.events.send(event);
            }
        }

        /// Sends `request` and expects exactly `reply` back.
        async fn roundtrip(client: &mut TcpStream, request: &str, reply: &str) {
            client.write_all(request.as_bytes()).await.unwrap();
            expect(client, reply).await;
        }

        /// Reads exactly `reply.len()` bytes and compares them to `reply`.
        async fn expect(client: &mut TcpStream, reply: &str) {
            let mut got = vec![0; reply.len()];
            tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
                .await
                .expect("reply within 5 s")
                .expect("reply");
            assert_eq!(String::from_utf8_lossy(&got), reply);
        }

        /// Expects the server to close the connection with nothing more to say.
        async fn expect_closed(client: &mut TcpStream) {
            let mut rest = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
                .await
                .expect("closed within 5 s")
                .expect("clean close");
            assert_eq!(String::from_utf8_lossy(&rest), "");
        }

        const PING: &str = "*1\r\n$4\r\nPING\r\n";
        const MYID_REQUEST: &str = "*2\r\n$8\r\nSENTINEL\r\n$4\r\nmyid\r\n";

        fn myid_reply() -> String {
            format!("${}\r\n{MYID}\r\n", MYID.len())
        }

        #[tokio::test]
        async fn ping_single_pipelined_and_inline() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            roundtrip(&mut client, PING, "+PONG\r\n").await;
            roundtrip(&mut client, &PING.repeat(2), "+PONG\r\n+PONG\r\n").await;
            roundtrip(
                &mut client,
                "PING\r\n\r\nping hi\n",
                "+PONG\r\n$2\r\nhi\r\n",
            )
            .await;
        }

        #[tokio::test]
        async fn core_answers_in_pipeline_order() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            let pipeline = format!("{PING}{MYID_REQUEST}PING\r\nSENTINEL NOPE\r\n");
            let replies = format!(
                "+PONG\r\n{}+PONG\r\n-ERR unknown command 'SENTINEL'\r\n",
                myid_reply()
            );
            roundtrip(&mut client, &pipeline, &replies).await;
        }

        #[tokio::test]
        async fn requirepass_flows() {
            let server = start(Core::Answers, Some("s3cret"), 8).await;
            let mut client = server.connect().await;
            roundtrip(
                &mut client,
                MYID_REQUEST,
                "-NOAUTH Authentication required.\r\n",
            )
            .await;
            roundtrip(
                &mut client,
                "AUTH nope\r\n",
                "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
            )
            .await;
            roundtrip(&mut client, "AUTH default s3cret\r\n", "+OK\r\n").await;
            roundtrip(&mut client, MYID_REQUEST, &myid_reply()).await;

            let mut other = server.connect().await;
            roundtrip(
                &mut other,
                "HELLO 2 AUTH default s3cret SETNAME tool\r\nCLIENT GETNAME\r\n",
                "*12\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
                 $5\r\nproto\r\n:2\r\n$2\r\nid\r\n:2\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n\
                 $7\r\nmodules\r\n*0\r\n$4\r\ntool\r\n",
            )
            .await;
            roundtrip(&mut other, "QUIT\r\n", "+OK\r\n").await;
            expect_closed(&mut other).await;
        }

        #[tokio::test]
        async fn auth_without_requirepass_uses_redis_words() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            roundtrip(
                &mut client,
                "AUTH pw\r\n",
                "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
            )
            .await;
        }

        #[tokio::test]
        async fn subscribers_get_message_frames() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            roundtrip(
                &mut client,
                "SUBSCRIBE +sdown\r\n",
                "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n",
            )
            .await;
            server.publish("+odown", "not subscribed");
            server.publish("+sdown", "master mymaster 127.0.0.1 6379");
            expect(
                &mut client,
                "*3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$30\r\nmaster mymaster 127.0.0.1 6379\r\n",
            )
            .await;
            roundtrip(
                &mut client,
                MYID_REQUEST,
                "-ERR Can't execute 'sentinel': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
            )
            .await;
            roundtrip(&mut client, PING, "*2\r\n$4\r\npong\r\n$0\r\n\r\n").await;
            roundtrip(
                &mut client,
                "UNSUBSCRIBE\r\n",
                "*3\r\n$11\r\nunsubscribe\r\n$6\r\n+sdown\r\n:0\r\n",
            )
            .await;
            server.publish("+sdown", "after unsubscribing");
            roundtrip(&mut client, MYID_REQUEST, &myid_reply()).await;
        }

        /// After `HELLO 3` over a real socket: a map for HELLO, RESP3 for the
        /// core's replies (map, `_`), pushes for pub/sub; `RESET` is RESP2
        /// again.
        #[tokio::test]
        async fn resp3_after_hello_3() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            let by_name = "SENTINEL get-master-addr-by-name nosuch\r\n";
            roundtrip(&mut client, by_name, "*-1\r\n").await;
            roundtrip(
                &mut client,
                "HELLO 3\r\n",
                "%6\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n\
                 $5\r\nproto\r\n:3\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n\
                 $7\r\nmodules\r\n*0\r\n",
            )
            .await;
            roundtrip(&mut client, by_name, "_\r\n").await;
            roundtrip(
                &mut client,
                "SENTINEL MASTER mymaster\r\n",
                "%1\r\n$6\r\nquorum\r\n$1\r\n1\r\n",
            )
            .await;
            roundtrip(
                &mut client,
                "SUBSCRIBE +sdown\r\n",
                ">3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n",
            )
            .await;
            server.publish("+sdown", "master mymaster 127.0.0.1 6379");
            expect(
                &mut client,
                ">3\r\n$7\r\nmessage\r\n$6\r\n+sdown\r\n$30\r\nmaster mymaster 127.0.0.1 6379\r\n",
            )
            .await;
            roundtrip(&mut client, MYID_REQUEST, &myid_reply()).await;
            roundtrip(&mut client, "RESET\r\n", "+RESET\r\n").await;
            roundtrip(&mut client, by_name, "*-1\r\n").await;
        }

        #[tokio::test]
        async fn pattern_subscribers_get_pmessage_frames() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            roundtrip(
                &mut client,
                "PSUBSCRIBE +*\r\n",
                "*3\r\n$10\r\npsubscribe\r\n$2\r\n+*\r\n:1\r\n",
            )
            .await;
            server.publish("-sdown", "master mymaster 127.0.0.1 6379");
            server.publish("+switch-master", "mymaster 127.0.0.1 6379 127.0.0.1 6380");
            expect(
                &mut client,
                "*4\r\n$8\r\npmessage\r\n$2\r\n+*\r\n$14\r\n+switch-master\r\n\
                 $38\r\nmymaster 127.0.0.1 6379 127.0.0.1 6380\r\n",
            )
            .await;
            roundtrip(&mut client, "RESET\r\n", "+RESET\r\n").await;
            roundtrip(&mut client, PING, "+PONG\r\n").await;
        }

        #[tokio::test]
        async fn protocol_errors_answer_then_close() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            roundtrip(
                &mut client,
                "PING\r\n*1\r\n+PING\r\n",
                "+PONG\r\n-ERR Protocol error: expected '$', got '+'\r\n",
            )
            .await;
            expect_closed(&mut client).await;
        }

        #[tokio::test]
        async fn oversized_requests_are_refused() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            // Exactly one byte over the limit, so the server has read everything
            // when it closes (unread input would turn the close into a reset).
            let mut request = b"*2\r\n$4\r\nECHO\r\n$2000000\r\n".to_vec();
            request.resize(MAX_REQUEST + 1, b'x');
            client.write_all(&request).await.unwrap();
            expect(
                &mut client,
                "-ERR Protocol error: request bigger than 1048576 bytes\r\n",
            )
            .await;
            expect_closed(&mut client).await;
        }

        #[tokio::test]
        async fn a_missing_core_is_an_error_not_a_hang() {
            for core in [Core::Gone, Core::DropsReplies, Core::Silent] {
                let server = start(core, None, 8).await;
                let mut client = server.connect().await;
                let unavailable = "-ERR sentinel core unavailable\r\n";
                roundtrip(&mut client, MYID_REQUEST, unavailable).await;
                roundtrip(
                    &mut client,
                    &format!("{MYID_REQUEST}{PING}"),
                    &format!("{unavailable}+PONG\r\n"),
                )
                .await;
            }
        }

        #[tokio::test]
        async fn clients_over_the_limit_are_refused() {
            let server = start(Core::Answers, None, 1).await;
            let mut first = server.connect().await;
            roundtrip(&mut first, PING, "+PONG\r\n").await;
            let mut second = server.connect().await;
            expect(&mut second, "-ERR max number of clients reached\r\n").await;
            expect_closed(&mut second).await;
            drop(first);
            // The slot is released once the first connection's task notices.
            let retry = async {
                loop {
                    let mut client = server.connect().await;
                    client.write_all(PING.as_bytes()).await.unwrap();
                    let mut head = [0u8; 1];
                    client.read_exact(&mut head).await.unwrap();
                    if head[0] == b'+' {
                        break client;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            let mut third = tokio::time::timeout(Duration::from_secs(5), retry)
                .await
                .expect("a slot frees up");
            expect(&mut third, "PONG\r\n").await;
        }

        #[tokio::test]
        async fn lagging_subscribers_are_disconnected() {
            let server = start_with(Core::Answers, None, 8, 4).await;
            let mut client = server.connect().await;
            roundtrip(
                &mut client,
                "SUBSCRIBE +sdown\r\n",
                "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n",
            )
            .await;
            // The test runtime is single-threaded: the connection cannot read
            // events while this loop runs, so it falls behind.
            for _ in 0..10 {
                server.publish("+sdown", "x");
            }
            expect_closed(&mut client).await;
        }

        #[tokio::test]
        async fn subscribers_that_stop_reading_are_disconnected() {
            let server = start_with(Core::Answers, None, 8, 1024).await;
            let mut client = server.connect().await;
            roundtrip(
                &mut client,
                "SUBSCRIBE +sdown\r\n",
                "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n",
            )
            .await;
            let big = "x".repeat(64 * 1024);
            let mut sent = 0usize;
            // Capacity 1024 and a yield per event: the connection keeps up with
            // the channel, so only its unwritten output can end it.
            while sent < 64 * 1024 * 1024 {
                server.publish("+sdown", &big);
                sent += big.len();
                tokio::task::yield_now().await;
                // Once the connection is gone its receiver is dropped.
                if server.events.receiver_count() == 0 {
                    break;
                }
            }
            assert_eq!(
                server.events.receiver_count(),
                0,
                "still subscribed after {sent} bytes"
            );
            let mut received = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut received))
                .await
                .expect("closed within 5 s")
                .expect("clean close");
            assert!(
                received.len() < sent,
                "only part of the {sent} bytes arrived"
            );
        }

        #[tokio::test]
        async fn stop_closes_idle_connections_and_returns() {
            let server = start(Core::Answers, None, 8).await;
            let mut client = server.connect().await;
            roundtrip(&mut client, PING, "+PONG\r\n").await;
            server.stop.cancel();
            expect_closed(&mut client).await;
            tokio::time::timeout(Duration::from_secs(5), server.served)
                .await
                .expect("serve returns after stop")
                .unwrap();
            assert!(TcpStream::connect(server.addr).await.is_err());
        }
    }
}
