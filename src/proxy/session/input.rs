//! The client side of a session: reading what the client sends, framing it
//! into requests, and deciding for each one whether it is forwarded, answered
//! by the proxy, held until a master may be used, or refused.
//!
//! `pump` is the one place requests leave the input buffer. It scans the
//! complete requests, asks [`decide`] what each one does, and sends runs of
//! forwarded ones to the backend as one batch, straight from the buffer. A
//! request that needs a master while none may be used stays in the buffer
//! (held) and the caller binds; after the hold timeout it is answered
//! `-MASTERDOWN` instead. A batch sent with nothing else in flight (one
//! command, or only reads and writes) is kept at the front of the buffer
//! (`retained`) until its replies, so that what a demoted master refused
//! with `-READONLY` can be retried (`retry`).
//!
//! Reading stops (back-pressure) while output for the backend waits, while
//! too many replies are in flight, and while too many bytes are held; after
//! QUIT or a protocol error the client is still read, only to see its close.
//!
//! The input buffer, `cbuf`, holds from its front: the `retained` bytes of
//! the batch in flight kept for a retry, then complete commands not
//! forwarded yet (held, or waiting for room on a shared connection), then
//! the start of a command still being received.

use std::io;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::bind::release_backend;
use super::io::{Batch, read_ready, send_backend};
use super::{Backend, Conn, End, Hold, Phase, Session};
use crate::proxy::bufpool;
use crate::proxy::state::{Action, Expect, decide, is_client_setinfo, replies, shareable};
use crate::resp::command::Class;
use crate::resp::request::{RequestScanner, Scanned};

/// Largest unforwarded input kept per client (Redis's `client-query-buffer-limit`).
const MAX_QUERY_BUFFER: usize = 1024 * 1024 * 1024;

/// Complete commands held (no master yet) before the session stops reading.
const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;

/// Replies in flight before the session stops reading (back-pressure).
const MAX_IN_FLIGHT: usize = 64 * 1024;

/// Commands one session may have in flight on a shared connection. The
/// shared connection cannot stop reading for one slow session, and the others'
/// replies queue behind its replies: what one session may have owed to it
/// there is kept small (enough for the usual pipelines).
const MAX_SHARED_IN_FLIGHT: usize = 32;

/// Longest command name a batch remembers its last lookup for (every
/// common command's name is shorter).
const LAST_NAME: usize = 16;

/// Where the session's input stands. A stop and the client's close may come
/// in either order; `StoppedEof` is where both have been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Input {
    /// Reading and forwarding commands.
    Open,
    /// The client closed its side: finish what was received, then end.
    Eof,
    /// QUIT, a protocol error or shutdown: nothing more is forwarded. What
    /// the client still sends is read and dropped, as Redis drops what follows
    /// a QUIT, so that its close is seen and passed on like any other.
    Stopped,
    /// Stopped, and then the client closed its side.
    StoppedEof,
}

impl Input {
    /// Whether nothing more is forwarded.
    pub(super) fn is_stopped(self) -> bool {
        matches!(self, Input::Stopped | Input::StoppedEof)
    }

    /// Whether the client closed its sending side.
    pub(super) fn client_done(self) -> bool {
        matches!(self, Input::Eof | Input::StoppedEof)
    }
}

impl Session {
    /// Whether the event loop waits for the client's socket to be readable.
    /// Not while output for the backend waits, while too many replies are in
    /// flight (on a shared connection: while this client's replies wait, or
    /// it owes `MAX_SHARED_IN_FLIGHT`), nor once the held commands reach
    /// `MAX_HELD_BYTES`; after QUIT or a protocol error, only to see the close.
    pub(super) fn wants_client_input(&self) -> bool {
        let shared_busy = self.backend.as_deref().is_some_and(Backend::is_shared)
            && (self.to_client.is_some() || self.ledger.counted() >= MAX_SHARED_IN_FLIGHT);
        if self.input == Input::Stopped {
            // Only to see the close: what arrives is dropped.
            return self.phase != Phase::Piping;
        }
        self.input == Input::Open
            && self.to_backend.is_none()
            && !shared_busy
            && self.ledger.counted() < MAX_IN_FLIGHT
            && (self.hold.is_none() || self.unsent() < MAX_HELD_BYTES)
    }

    /// Reads what the client sent onto the end of the input buffer; `pump`
    /// frames it next. A read of nothing is the client's half-close. Once the
    /// input is stopped, what arrives is dropped and only the close is noted.
    /// Past the query buffer limit the session ends.
    pub(super) async fn on_client_readable(&mut self) -> Result<(), End> {
        let buf = self.cbuf.get_or_insert_with(bufpool::take);
        let kept = buf.len();
        bufpool::reserve_for_read(buf);
        let read = read_ready(&mut self.client, buf).await;
        if self.input == Input::Stopped {
            // Nothing more is forwarded: only a close matters.
            buf.truncate(kept);
            return match read {
                Ok(0) => {
                    self.input = Input::StoppedEof;
                    Ok(())
                }
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(_) => Err(End::Client),
            };
        }
        match read {
            Ok(0) => {
                self.input = Input::Eof;
                return Ok(());
            }
            Ok(n) => self.shared.counters.add_bytes_in(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(_) => return Err(End::Client),
        }
        if buf.len() > MAX_QUERY_BUFFER {
            warn!("closing client that reached the query buffer limit");
            return Err(End::QueryBufferLimit);
        }
        if self.shared.settings.idle_release.is_some() {
            self.last_active = Instant::now();
        }
        Ok(())
    }

    /// Bytes received from the client and not forwarded yet (the retained
    /// command is not counted: it was sent).
    pub(super) fn unsent(&self) -> usize {
        self.cbuf.as_ref().map_or(0, |b| b.len() - self.retained)
    }

    /// Whether a complete command waits in the input buffer, not sent yet:
    /// until there is none, a client's half-close is not passed on.
    pub(super) fn has_complete_unsent(&self) -> bool {
        let Some(buf) = self.cbuf.as_ref() else {
            return false;
        };
        matches!(
            RequestScanner::default().scan(&buf[self.retained..]),
            Ok(Some(_))
        )
    }

    /// The client closed its sending side: once every complete command it sent
    /// is out (after QUIT or a protocol error: every command before it), the
    /// backend connection's sending side is closed too. Redis then does what
    /// it does for a direct client: it answers what it read and closes, and a
    /// blocked command (BLPOP, WAIT, XREAD BLOCK, …) is dropped rather than
    /// left behind on a connection nobody reads.
    pub(super) async fn pass_on_half_close(&mut self) {
        let unsent_matters = !self.input.is_stopped();
        if self.to_backend.is_some() || (unsent_matters && self.has_complete_unsent()) {
            return;
        }
        let Some(backend) = self.backend.as_deref_mut() else {
            return;
        };
        let Conn::Own(stream) = &mut backend.conn else {
            // A shared connection carries other clients' commands; this
            // session's own commands are never blocking there.
            return;
        };
        if !backend.write_shut {
            backend.write_shut = true;
            // An error means the connection is gone already; reading says so.
            let _ = stream.shutdown().await;
        }
    }

    /// Forwards or answers the complete commands in the input buffer. With
    /// `refuse`, commands that need the backend are answered `-MASTERDOWN`.
    /// Returns whether a command waits for a backend (the caller binds one).
    ///
    /// Every command gets its place in the ledger in the order it came,
    /// forwarded or answered here, so that replies reach the client in order.
    /// A run of forwarded commands goes out as one batch; a proxy-made reply,
    /// a rewritten HELLO or a protocol error sends the batch before it first.
    /// On a shared connection, a command that uses connection state ends the
    /// run: the session moves to a connection of its own once its replies on
    /// the shared one are in. A held command starts the hold clock
    /// (`hold`); forwarding it stops the clock.
    pub(super) fn pump(&mut self, refuse: bool) -> Result<bool, End> {
        if self.input.is_stopped() {
            return Ok(false);
        }
        if let Some(Conn::Shared { link, .. }) = self.backend.as_deref().map(|b| &b.conn)
            && !link.is_current()
            && self.ledger.is_empty()
        {
            // The shared connection closed (or a newer one replaced it)
            // while this session owed it nothing: take the current one.
            self.drop_backend();
        }
        if self.to_client.is_some() && self.backend.as_deref().is_some_and(Backend::is_shared) {
            // A client that does not keep up with its replies gets a
            // connection of its own, so the back-pressure reaches Redis rather
            // than the shared connection (it moves once its replies are out).
            self.own_connection = true;
        }
        let Some(buf) = self.cbuf.as_mut() else {
            self.hold = None;
            return Ok(false);
        };
        if buf.len() == self.retained {
            self.hold = None;
            return Ok(false);
        }
        let in_flight_before = self.ledger.counted();
        let table = self.shared.commands.load();
        let on_shared = self.backend.as_deref().is_some_and(Backend::is_shared);
        // A retained batch stays at the front while what follows can join it
        // (the batch keeps it; anything sent otherwise lets it go).
        let mut batch = Batch::after(self.retained);
        // The scan stopped at a command not complete yet, not at one it kept.
        let mut incomplete_tail = false;
        // Whether this batch is plain forwarded commands and nothing else,
        // and, past one command, only reads and writes (only such a batch
        // may be retried after -READONLY: see `retry`).
        let mut forwarded = 0usize;
        let mut plain = true;
        let mut data_only = true;
        let mut need_backend = false;
        // The last name looked up in this batch, as sent, and its entry: a
        // pipeline mostly repeats one command, which then costs a compare.
        let mut last_name = [0u8; LAST_NAME];
        let mut last_len = usize::MAX;
        let mut last_info = table.info(b"");
        loop {
            let scanned = match self.requests.scan(&buf[batch.end..]) {
                Ok(Some(scanned)) => scanned,
                Ok(None) => {
                    incomplete_tail = true;
                    break;
                }
                Err(error) => {
                    batch.flush(&mut self.backend, &mut self.to_backend, buf)?;
                    self.ledger.push(Expect::LocalThenClose(error.reply()));
                    self.input = Input::Stopped;
                    debug!(%error, "client protocol error");
                    break;
                }
            };
            let req = match scanned {
                Scanned::Empty(n) => {
                    if batch.is_empty() {
                        batch.flush(&mut self.backend, &mut self.to_backend, buf)?;
                        buf.advance(n);
                    } else if on_shared {
                        // Only commands go over a shared connection.
                        batch.flush(&mut self.backend, &mut self.to_backend, buf)?;
                        buf.advance(n);
                    } else {
                        batch.end += n;
                    }
                    continue;
                }
                Scanned::Request(req) => req,
            };
            let frame = &buf[batch.end..batch.end + req.len];
            let name = req.name(frame);
            let info = if last_name.get(..last_len) == Some(&*name) {
                last_info
            } else {
                let info = table.info(&name);
                if let Some(slot) = last_name.get_mut(..name.len()) {
                    slot.copy_from_slice(&name);
                    last_len = name.len();
                    last_info = info;
                }
                info
            };
            let class = info.class;
            let requirepass = self.shared.settings.requirepass.as_deref();
            let mut action = decide(frame, &req, requirepass, self.authenticated);
            if !self.own_connection
                && matches!(action, Action::Forward(_))
                && req.argc == 4
                && is_client_setinfo(frame, &req)
            {
                // Client libraries name themselves on every new connection; a
                // shared connection cannot carry one client's name, and this
                // must not cost the session its place on it.
                action = Action::Local(replies::OK);
            }
            let share = !self.own_connection && shareable(&action, info, &req);
            if action == Action::ForwardLast
                && (on_shared || (self.backend.is_none() && self.ledger.is_empty()))
            {
                // QUIT with no backend connection of its own: answer it here
                // rather than open one (or wait for a master) just to be told
                // +OK; on a shared one it would end every session's link.
                action = Action::LocalThenClose(replies::OK);
            }
            let forwards = matches!(
                action,
                Action::Forward(_)
                    | Action::ForwardLast
                    | Action::ForwardUncounted
                    | Action::Substitute(..)
                    | Action::Pipe
            );
            // While no master may be used (failover, fencing), a bound
            // session keeps its connection but sends nothing new on it.
            let ready = self.backend.is_some()
                && self.topology.master.is_some()
                && self.phase == Phase::Serving
                && !self.ledger.replaying();
            if forwards && on_shared && !share {
                // This command uses or changes connection state (or the
                // session was told to leave): the session moves to a
                // connection of its own, once its replies on the shared one
                // are in (so they keep their order). Nothing else goes out
                // on the shared connection meanwhile.
                batch.flush(&mut self.backend, &mut self.to_backend, buf)?;
                self.own_connection = true;
                if self.ledger.is_empty() {
                    release_backend(&self.shared, &mut self.backend, &mut self.to_backend);
                    need_backend = true;
                }
                break;
            }
            if forwards && !share {
                // The next bind opens a connection of the session's own.
                self.own_connection = true;
            }
            if forwards && on_shared && self.ledger.counted() >= MAX_SHARED_IN_FLIGHT {
                // Enough owed on the shared connection: the rest waits.
                break;
            }
            if forwards && !ready && !refuse {
                // Held: it stays in the buffer until a master is bound.
                need_backend = true;
                break;
            }
            if action == Action::Pipe && !refuse {
                // Earlier replies are matched first; then SYNC and whatever
                // follows it go out as received, and nothing is read anymore.
                batch.flush(&mut self.backend, &mut self.to_backend, buf)?;
                if self.ledger.is_empty() {
                    self.counted_commands[class.index()] += 1;
                    send_backend(&mut self.backend, &mut self.to_backend, buf, 0)?;
                    buf.clear();
                    self.phase = Phase::Piping;
                }
                break;
            }
            self.counted_commands[class.index()] += 1;
            let local = match action {
                _ if forwards && refuse => {
                    metrics::counter!(crate::metrics::COMMANDS_REFUSED).increment(1);
                    let refusal = if self.shared.settings.reads.is_some() {
                        replies::NO_REPLICA
                    } else {
                        replies::MASTERDOWN
                    };
                    Some((Bytes::from_static(refusal), false))
                }
                Action::Forward(expect) => {
                    self.ledger.push(expect);
                    batch.end += req.len;
                    batch.replies += 1;
                    forwarded += 1;
                    data_only &= matches!(class, Class::Read | Class::Write);
                    None
                }
                Action::ForwardLast => {
                    self.ledger.push(Expect::Reply);
                    batch.end += req.len;
                    batch.replies += 1;
                    plain = false;
                    self.input = Input::Stopped;
                    break;
                }
                Action::ForwardUncounted => {
                    self.ledger.state.pin.uncounted = true;
                    batch.end += req.len;
                    plain = false;
                    None
                }
                Action::Substitute(replacement, expect) => {
                    // Only a HELLO whose AUTH the proxy accepted is rewritten.
                    self.authenticated = true;
                    batch.flush(&mut self.backend, &mut self.to_backend, buf)?;
                    buf.advance(req.len);
                    send_backend(&mut self.backend, &mut self.to_backend, &replacement, 1)?;
                    self.ledger.push(expect);
                    plain = false;
                    continue;
                }
                Action::Local(reply) => Some((Bytes::from_static(reply), false)),
                Action::Authenticate(ok) => {
                    self.authenticated |= ok;
                    let reply = if ok { replies::OK } else { replies::WRONGPASS };
                    Some((Bytes::from_static(reply), false))
                }
                Action::LocalThenClose(reply) => {
                    self.input = Input::Stopped;
                    Some((Bytes::from_static(reply), true))
                }
                // Handled above: piped, or refused by the first arm.
                Action::Pipe => None,
            };
            if let Some((reply, close)) = local {
                batch.flush(&mut self.backend, &mut self.to_backend, buf)?;
                buf.advance(req.len);
                plain = false;
                self.ledger.push(if close {
                    Expect::LocalThenClose(reply)
                } else {
                    Expect::Local(reply)
                });
                if close {
                    break;
                }
            }
        }
        self.used_shared |= on_shared && forwarded > 0;
        // What is still kept: nothing once something went out on its own.
        self.retained = batch.start;
        if !batch.is_empty() {
            // A batch sent with nothing else in flight but a retained one is
            // kept with it until their replies: what a demoted master refused
            // with -READONLY did not run and can be retried. A lone command
            // may be any; more are only reads and writes (no blocking one
            // among them to wait for), and joining a retained batch they
            // must be too.
            let alone = if batch.start > 0 {
                data_only
            } else {
                in_flight_before == 0 && (forwarded == 1 || data_only)
            };
            let retain = alone
                && plain
                && (batch.end == buf.len() || incomplete_tail)
                && !self.ledger.state.pin.multi;
            if retain {
                send_backend(
                    &mut self.backend,
                    &mut self.to_backend,
                    &buf[batch.start..batch.end],
                    batch.replies,
                )?;
                self.retained = batch.end;
            } else {
                batch.flush(&mut self.backend, &mut self.to_backend, buf)?;
                self.retained = 0;
            }
        }
        if need_backend {
            let hold = self.hold.get_or_insert_with(|| Hold {
                since: Instant::now(),
                counted: false,
                expired: false,
            });
            // Waiting for a first connection is not a hold; waiting because
            // no master may be used is, and is counted once.
            let no_master = self.topology.master.is_none() || self.avoid.is_some();
            if no_master && !hold.counted {
                hold.counted = true;
                metrics::counter!(crate::metrics::COMMANDS_HELD).increment(1);
            }
            return Ok(true);
        }
        if let Some(hold) = self.hold.take()
            && hold.counted
        {
            metrics::histogram!(crate::metrics::HOLD_SECONDS)
                .record(hold.since.elapsed().as_secs_f64());
        }
        Ok(false)
    }
}
