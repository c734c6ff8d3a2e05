//! The connection-level commands of the sentinel port, answered without the
//! core: PING, QUIT, AUTH, HELLO, CLIENT SETNAME/GETNAME/ID/KILL, ACL, COMMAND,
//! RESET and the pub/sub commands (SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE,
//! PUNSUBSCRIBE).
//!
//! A [`Session`] is one client's state (id, name, authentication, protocol,
//! subscriptions) and [`Session::handle`] answers one request into an output
//! buffer, or says the core must answer it ([`Step::Core`]). It is pure, no
//! I/O, so every reply can be tested byte for byte; the connection task owns
//! the socket.
//!
//! Redis's rules, kept here: before authenticating only AUTH, HELLO, QUIT and
//! RESET are served; a RESP2 client with subscriptions may only (un)subscribe,
//! PING, QUIT and RESET (a RESP3 client may run anything); HELLO changes the
//! protocol only once everything else in it succeeded; words echoed in errors
//! are cleaned and bounded ([`shown`]).

use std::collections::BTreeSet;

use bytes::{BufMut, Bytes, BytesMut};

use super::acl::{DEFAULT_USER, Users};
use super::encode::{Protocol, Shape, put_bulk, put_error, put_frame, put_header, shown};
use super::glob::glob_match;
use super::{Event, replies};
use crate::resp::value::OwnedFrame;

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

/// What the connection does after a request was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// The reply is in the output buffer.
    Answered,
    /// The reply is in the output buffer; close once it is written.
    Close,
    /// Send the request to the core and write its answer.
    Core,
    /// Close the connections logged in as one of `users` (`CLIENT KILL
    /// USER`, `ACL DELUSER`), except client `skip`; with `count`, the reply
    /// is the number closed (the connection knows who is logged in as whom),
    /// else it is in the output buffer already.
    Kill {
        /// Whose connections.
        users: Vec<String>,
        /// A client spared (`SKIPME yes`: the caller).
        skip: Option<u64>,
        /// Reply with the number of connections closed.
        count: bool,
    },
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

#[derive(Debug, Default)]
pub(super) struct Session {
    /// The client's id (`CLIENT ID`, HELLO's `id`).
    id: u64,
    /// `CLIENT SETNAME`, if any.
    pub(super) name: Option<Bytes>,
    /// The user logged in, once there is one: the default user from the
    /// first command on when it needs no password, else the user of a
    /// successful `AUTH`/`HELLO … AUTH`.
    pub(super) user: Option<String>,
    /// Whether the first command was seen (the default user is decided then).
    admitted: bool,
    /// The RESP version replies are written in.
    pub(super) protocol: Protocol,
    /// Subscribed channels.
    channels: BTreeSet<Bytes>,
    /// Subscribed patterns.
    patterns: BTreeSet<Bytes>,
}

impl Session {
    /// A fresh session for client `id`.
    pub(super) fn new(id: u64) -> Session {
        Session {
            id,
            ..Session::default()
        }
    }

    /// The client's id.
    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Logs a new (or `RESET`) client in as the default user when that user
    /// needs no password, as Redis does when it accepts a connection; once.
    pub(super) fn admit(&mut self, users: &Users) {
        if !self.admitted {
            self.admitted = true;
            if users.open_by_default() {
                self.user = Some(DEFAULT_USER.to_owned());
            }
        }
    }

    /// Channels plus patterns: the count Redis reports in confirmations.
    pub(super) fn subscriptions(&self) -> usize {
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
    pub(super) fn handle(&mut self, args: &[Bytes], users: &mut Users, out: &mut BytesMut) -> Step {
        let Some(first) = args.first() else {
            return Step::Answered;
        };
        self.admit(users);
        let name = first.to_ascii_lowercase();
        if self.user.is_none() && !BEFORE_AUTH.contains(&&name[..]) {
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
        if let Some(sub) = rest.first().filter(|_| &name[..] == b"sentinel") {
            let sub = String::from_utf8_lossy(&sub.to_ascii_lowercase()).into_owned();
            if super::commands::arity_ok("sentinel", &sub, args.len()) == Some(false) {
                put_arity(out, &format!("sentinel|{}", shown(sub.as_bytes())));
                return Step::Answered;
            }
        }
        match &name[..] {
            b"ping" => self.ping(rest, out),
            b"quit" => {
                out.put_slice(replies::OK);
                return Step::Close;
            }
            b"auth" => self.auth(rest, users, out),
            b"hello" => self.hello(rest, users, out),
            b"client" => return self.client(rest, out),
            b"acl" => return self.acl(rest, users, out),
            b"subscribe" => self.subscribe(Kind::Channel, rest, out),
            b"psubscribe" => self.subscribe(Kind::Pattern, rest, out),
            b"unsubscribe" => self.unsubscribe(Kind::Channel, rest, out),
            b"punsubscribe" => self.unsubscribe(Kind::Pattern, rest, out),
            b"reset" => self.reset(rest, out),
            b"command" => self.put(out, &super::commands::answer(rest), Shape::Plain),
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
    fn auth(&mut self, rest: &[Bytes], users: &Users, out: &mut BytesMut) {
        let (user, pass) = match rest {
            [_] if !users.default_has_password() => {
                return out.put_slice(replies::AUTH_UNCONFIGURED);
            }
            [pass] => (DEFAULT_USER.as_bytes(), pass),
            [user, pass] => (&user[..], pass),
            _ => return put_arity(out, "auth"),
        };
        if users.login(user, pass) {
            self.user = Some(String::from_utf8_lossy(user).into_owned());
            out.put_slice(replies::OK);
        } else {
            out.put_slice(replies::WRONGPASS);
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`. Like Redis, the
    /// protocol changes only once everything else succeeded, and the reply is
    /// already in the new one.
    fn hello(&mut self, rest: &[Bytes], users: &Users, out: &mut BytesMut) {
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
            if !users.login(user, pass) {
                return out.put_slice(replies::WRONGPASS);
            }
            self.user = Some(String::from_utf8_lossy(user).into_owned());
        }
        if self.user.is_none() {
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

    /// `CLIENT SETNAME | GETNAME | ID | KILL USER name [SKIPME yes|no]`;
    /// other subcommands are unknown here.
    fn client(&mut self, rest: &[Bytes], out: &mut BytesMut) -> Step {
        let Some((sub, args)) = rest.split_first() else {
            put_arity(out, "client");
            return Step::Answered;
        };
        let sub_lower = sub.to_ascii_lowercase();
        if &sub_lower[..] == b"kill" {
            return self.client_kill(args, out);
        }
        match (&sub_lower[..], args) {
            (b"setname", [name]) => {
                if !valid_name(name) {
                    out.put_slice(replies::BAD_NAME);
                    return Step::Answered;
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
        Step::Answered
    }

    /// `CLIENT KILL USER name [SKIPME yes|no]`: the connection closes the
    /// user's connections and answers how many (the caller's own too, unless
    /// `SKIPME yes`, the default; its reply is written first).
    fn client_kill(&self, args: &[Bytes], out: &mut BytesMut) -> Step {
        if let [_addr] = args {
            // The old `CLIENT KILL ip:port` form: clients are not known by
            // address here.
            put_error(out, "ERR No such client");
            return Step::Answered;
        }
        let mut user = None;
        let mut skip = Some(self.id);
        let mut pairs = args.chunks_exact(2);
        for pair in &mut pairs {
            let value = &pair[1];
            match &pair[0].to_ascii_lowercase()[..] {
                b"user" => user = Some(String::from_utf8_lossy(value).into_owned()),
                b"skipme" if value.eq_ignore_ascii_case(b"yes") => skip = Some(self.id),
                b"skipme" if value.eq_ignore_ascii_case(b"no") => skip = None,
                _ => {
                    put_error(out, "ERR syntax error");
                    return Step::Answered;
                }
            }
        }
        match (user, pairs.remainder().is_empty()) {
            (Some(user), true) => Step::Kill {
                users: vec![user],
                skip,
                count: true,
            },
            _ => {
                put_error(out, "ERR syntax error");
                Step::Answered
            }
        }
    }

    /// `ACL SETUSER | DELUSER | WHOAMI | USERS` (see [`Users`]).
    fn acl(&self, rest: &[Bytes], users: &mut Users, out: &mut BytesMut) -> Step {
        let Some((sub, args)) = rest.split_first() else {
            put_arity(out, "acl");
            return Step::Answered;
        };
        let sub_lower = sub.to_ascii_lowercase();
        match (&sub_lower[..], args) {
            (b"setuser", [name, rules @ ..]) => {
                match users.set_user(&String::from_utf8_lossy(name), rules) {
                    Ok(()) => out.put_slice(replies::OK),
                    Err(error) => put_error(out, &error),
                }
            }
            (b"deluser", names) if !names.is_empty() => match users.delete(names) {
                Ok(deleted) => {
                    let count = i64::try_from(deleted.len()).unwrap_or(i64::MAX);
                    self.put(out, &OwnedFrame::Integer(count), Shape::Plain);
                    return Step::Kill {
                        users: deleted,
                        skip: None,
                        count: false,
                    };
                }
                Err(error) => put_error(out, &error),
            },
            (b"whoami", []) => {
                let name = self.user.clone().unwrap_or_default();
                self.put(
                    out,
                    &OwnedFrame::BulkString(name.into_bytes()),
                    Shape::Plain,
                );
            }
            (b"users", []) => {
                let names = users
                    .names()
                    .into_iter()
                    .map(|n| OwnedFrame::BulkString(n.into_bytes()))
                    .collect();
                self.put(out, &OwnedFrame::Array(names), Shape::Plain);
            }
            (b"setuser" | b"deluser" | b"whoami" | b"users", _) => {
                put_arity(out, &format!("acl|{}", shown(&sub_lower)))
            }
            _ => put_error(
                out,
                &format!("ERR unknown subcommand '{}'. Try ACL HELP.", shown(sub)),
            ),
        }
        Step::Answered
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
    /// Redis, the client is logged in as the default user again if it needs
    /// no password, else must authenticate again.
    fn reset(&mut self, rest: &[Bytes], out: &mut BytesMut) {
        if !rest.is_empty() {
            return put_arity(out, "reset");
        }
        *self = Session::new(self.id);
        out.put_slice(replies::RESET);
    }

    /// Appends the frames `event` produces for this subscriber: a `message` if
    /// its channel is subscribed, a `pmessage` per matching pattern (pushes
    /// in RESP3). Written word by word: no frame is built per event.
    pub(super) fn deliver(&self, event: &Event, out: &mut BytesMut) {
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

/// Redis accepts client names made of printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// Appends Redis's arity error for `command`.
fn put_arity(out: &mut BytesMut, command: &str) {
    put_error(
        out,
        &format!("ERR wrong number of arguments for '{command}' command"),
    );
}
