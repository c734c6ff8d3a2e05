//! The backend side of a session: reading replies and sending them on to the
//! client in order, through the ledger.
//!
//! The ledger says what each reply answers: a client's command (forwarded,
//! in runs, straight from the read buffer), a command the proxy sent itself
//! to restore state (swallowed), or a proxy-made reply that must go out in
//! between (`emit_locals`). A `-READONLY` is held at the front of the buffer
//! until the master's `ROLE` tells whether it was demoted (`on_readonly`).
//!
//! A lost backend ends the session when replies were in flight (their outcome
//! is unknown) or when a live server closed it; otherwise the session waits
//! for a master, or takes the next shared connection.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::input::Input;
use super::io::{ClientOut, read_ready};
use super::retry::{self, Retry};
use super::{Avoid, Conn, End, Phase, RETRY_DELAY, Session};
use crate::backend::connect::{answers, is_master};
use crate::proxy::bufpool;
use crate::proxy::ledger::Route;
use crate::proxy::state::{MAX_SHARED_REPLY, replies};
use crate::resp::reply::{self, Kind, ReplyScanner};
use crate::switch::Hint;

/// How long the check "did a live server close us?" may take.
const LIVENESS_TIMEOUT: Duration = Duration::from_millis(300);

/// A bulk reply at least this long, on a connection of the session's own, is
/// passed on as it arrives instead of held until complete.
const STREAM_FROM: usize = 64 * 1024;

/// Room made for each read while a large reply streams through: reads as
/// large as the socket offers, through a buffer that stays this size.
const STREAM_READ: usize = 64 * 1024;

/// A `-READONLY` reply held back while the master's role is checked and,
/// for a retained batch, the rest of its replies come in.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadOnlyReply {
    /// Its length at the front of the backend buffer.
    len: usize,
    /// Whether `ROLE` said the master was demoted, once asked.
    demoted: Option<bool>,
}

impl Session {
    /// Sends proxy-made replies that have reached the front of the ledger.
    pub(super) fn emit_locals(&mut self) -> Result<(), End> {
        while let Some((bytes, close)) = self.ledger.pop_local() {
            self.client_out().send(&bytes)?;
            if close {
                self.input = Input::Stopped;
                self.finish_when_flushed = true;
                break;
            }
        }
        Ok(())
    }

    /// Takes what the backend sent (read from an own connection, or taken
    /// from the session's inbox on a shared one) and routes it; a close or a
    /// read error is a lost backend.
    pub(super) async fn on_backend_readable(&mut self) -> Result<(), End> {
        let Some(backend) = self.backend.as_mut() else {
            return Ok(());
        };
        let stream = match &mut backend.conn {
            Conn::Own(stream) => stream,
            Conn::Shared { inbox, .. } => {
                let lost = inbox.take_into(&mut backend.buf);
                self.route_and_check().await?;
                if lost {
                    return Box::pin(self.on_backend_lost()).await;
                }
                return Ok(());
            }
        };
        let buf = backend.buf.get_or_insert_with(bufpool::take);
        if backend.streaming > 0 {
            buf.reserve(STREAM_READ);
        } else {
            bufpool::reserve_for_read(buf);
        }
        match read_ready(stream, buf).await {
            Ok(0) => return Box::pin(self.on_backend_lost()).await,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(_) => return Box::pin(self.on_backend_lost()).await,
        }
        self.route_and_check().await
    }

    /// Sends complete replies on to the client, in order, swallowing the replies
    /// to commands the proxy sent itself.
    fn route_replies(&mut self) -> Result<(), End> {
        if self.readonly.is_some() {
            // A `-READONLY` at the front waits to be settled; nothing after
            // it goes first.
            return Ok(());
        }
        let Some(backend) = self.backend.as_mut() else {
            return Ok(());
        };
        let Some(buf) = backend.buf.as_mut() else {
            return Ok(());
        };
        // Field by field: the backend's buffer stays borrowed meanwhile.
        let mut out = ClientOut {
            counters: &self.shared.counters,
            stream: &mut self.client,
            pending: &mut self.to_client,
        };
        let mut run_start = 0;
        let mut pos = 0;
        loop {
            if backend.streaming > 0 {
                // The rest of a large bulk reply: passed on as it comes.
                let through = backend.streaming.min(buf.len() - pos);
                if through == 0 {
                    break;
                }
                pos += through;
                backend.streaming -= through;
                if backend.streaming == 0 {
                    // Complete: an ordinary reply, forwarded (checked when
                    // the streaming began).
                    self.ledger.route(b"$", Kind::Other);
                    release_retained(&mut self.cbuf, &mut self.retained, self.ledger.counted());
                }
                continue;
            }
            if let Some((bytes, close)) = self.ledger.pop_local() {
                out.send(&buf[run_start..pos])?;
                run_start = pos;
                out.send(&bytes)?;
                if close {
                    self.input = Input::Stopped;
                    self.finish_when_flushed = true;
                    break;
                }
                continue;
            }
            let reply = match backend.replies.scan(&buf[pos..]) {
                Ok(Some(reply)) => reply,
                Ok(None) => {
                    // An incomplete reply. A large bulk string answering an
                    // ordinary command on the session's own connection is
                    // passed on as it arrives rather than held whole: the
                    // client sees its first bytes at once, and the proxy holds
                    // one read's worth of it, not the whole value.
                    if let Some(total) = reply::large_bulk(&buf[pos..], STREAM_FROM)
                        && matches!(backend.conn, Conn::Own(_))
                        && self.ledger.next_is_plain()
                    {
                        backend.replies = ReplyScanner::default();
                        backend.streaming = total;
                        continue;
                    }
                    break;
                }
                Err(_) => {
                    out.send(&buf[run_start..pos])?;
                    warn!(addr = %backend.addr, "backend sent a malformed reply; closing the session");
                    return Err(End::BackendProtocol);
                }
            };
            let frame = &buf[pos..pos + reply.len];
            if reply.len > MAX_SHARED_REPLY && matches!(backend.conn, Conn::Shared { .. }) {
                // The other sessions waited while this reply came in: the
                // session takes a connection of its own before its next
                // command, so its next large value delays only itself.
                self.own_connection = true;
            }
            match self.ledger.route(frame, reply.kind) {
                Route::Forward => pos += reply.len,
                Route::Swallow => {
                    out.send(&buf[run_start..pos])?;
                    pos += reply.len;
                    run_start = pos;
                }
                Route::ReplayFailed => {
                    out.send(&buf[run_start..pos])?;
                    warn!(addr = %backend.addr, reply = %String::from_utf8_lossy(frame).trim_end(),
                        "restoring session state on the master failed; closing the session");
                    let _ = out.send(replies::REPLAY_FAILED);
                    return Err(End::ReplayFailed);
                }
                // On a read endpoint the replica's `-READONLY` is the
                // client's answer to a write: passed on unchanged.
                Route::Demoted if self.shared.settings.reads.is_some() => {
                    pos += reply.len;
                }
                Route::Demoted => {
                    // Held at the front of the buffer until ROLE tells what
                    // it means (`on_readonly`); nothing after it goes first.
                    self.readonly = Some(ReadOnlyReply {
                        len: reply.len,
                        demoted: None,
                    });
                    break;
                }
            }
            release_retained(&mut self.cbuf, &mut self.retained, self.ledger.counted());
        }
        out.send(&buf[run_start..pos])?;
        // The scanner's progress through an incomplete reply is relative to
        // its start, which is now the front of the buffer.
        buf.advance(pos);
        Ok(())
    }

    /// Routes the replies just received, settling any `-READONLY` among them
    /// by asking the master its `ROLE` before anything after it is routed;
    /// a switch waiting for the last of them then completes.
    async fn route_and_check(&mut self) -> Result<(), End> {
        self.route_replies()?;
        while let Some(held) = self.readonly.take() {
            if !Box::pin(self.on_readonly(held)).await? {
                // Waiting for the rest of a retained batch's replies (held
                // again in `readonly`).
                break;
            }
            self.route_replies()?;
        }
        if matches!(self.phase, Phase::Draining { .. }) && self.ledger.counted() == 0 {
            self.finish_switch()?;
        }
        Ok(())
    }

    /// A `-READONLY` reply is at the front of the backend buffer. A master
    /// that still says `master` sent it on purpose (a script's error, `DEBUG
    /// ERROR`): the client gets it unchanged at once. Otherwise the node was
    /// demoted: the control path is told, and commands of a retained batch
    /// that it refused (so they did not run) are retried on the new master
    /// (`retry`); any other refusal is forwarded and the session ends after
    /// the replies still in flight.
    ///
    /// Returns whether it is settled: `false` while the rest of a retained
    /// batch's replies are awaited (`held` then stays in place).
    async fn on_readonly(&mut self, mut held: ReadOnlyReply) -> Result<bool, End> {
        let Some(addr) = self.backend.as_ref().map(|b| b.addr) else {
            return Ok(true);
        };
        let demoted = match held.demoted {
            Some(demoted) => demoted,
            None => {
                let auth = self.shared.settings.backend_auth.as_deref();
                let is_master = is_master(&self.shared.dialer, addr, auth, LIVENESS_TIMEOUT).await;
                let demoted = is_master != Some(true);
                if demoted {
                    self.shared.hints.send(Hint::Demoted(addr));
                }
                held.demoted = Some(demoted);
                demoted
            }
        };
        let Some(buf) = self.backend.as_mut().and_then(|b| b.buf.as_mut()) else {
            return Ok(true);
        };
        let plan = match (demoted, self.cbuf.as_ref()) {
            (true, Some(cbuf)) if self.retained > 0 && !self.ledger.state.pin.multi => {
                retry::plan(&cbuf[..self.retained], buf, held.len, self.ledger.counted())
            }
            _ => Retry::No,
        };
        debug!(%addr, demoted, retained = self.retained, awaited = self.ledger.counted(), ?plan, "settling -READONLY");
        match plan {
            Retry::Wait => {
                self.readonly = Some(held);
                Ok(false)
            }
            Retry::Yes {
                resend_from,
                replies,
            } => {
                info!(%addr, "master answered -READONLY; retrying on the new master");
                // None of these ran: their replies are dropped, and their
                // bytes stay at the front of the input, unsent.
                // The ledger took the held one already; it takes the rest.
                buf.advance(held.len);
                let mut left = replies - held.len;
                while let Ok(Some(reply)) = ReplyScanner::default().scan(&buf[..left]) {
                    self.ledger.route(&buf[..reply.len], reply.kind);
                    buf.advance(reply.len);
                    left -= reply.len;
                }
                if let Some(cbuf) = self.cbuf.as_mut() {
                    cbuf.advance(resend_from);
                }
                self.retained = 0;
                if self.topology.master == Some(addr) {
                    // Not replaced yet: wait for the topology that replaces it
                    // (a newer one may have come during a drain already).
                    self.avoid = Some(Avoid::Demoted);
                }
                self.drop_backend();
                Ok(true)
            }
            Retry::No => {
                ClientOut {
                    counters: &self.shared.counters,
                    stream: &mut self.client,
                    pending: &mut self.to_client,
                }
                .send(&buf[..held.len])?;
                buf.advance(held.len);
                release_retained(&mut self.cbuf, &mut self.retained, self.ledger.counted());
                if demoted {
                    info!(%addr, "master answered -READONLY; closing the session after its replies");
                    self.input = Input::Stopped;
                }
                Ok(true)
            }
        }
    }

    /// The backend connection closed or failed. With replies in flight their
    /// outcome is unknown, and the session ends; so it does when the client's
    /// half-close had been passed on (Redis closed it as asked), or when
    /// pinned state (MULTI, WATCH, …) cannot move. During a switch's drain
    /// the switch completes. A lost shared connection is replaced at the next
    /// command. An idle own connection closed by a server that still answers
    /// (CLIENT KILL, its idle `timeout`) ends the session, as the client would
    /// see directly; otherwise the master is gone: the control path is told,
    /// and the session waits for a master.
    pub(super) async fn on_backend_lost(&mut self) -> Result<(), End> {
        let Some((addr, shared, write_shut)) = self
            .backend
            .as_ref()
            .map(|b| (b.addr, b.is_shared(), b.write_shut))
        else {
            return Ok(());
        };
        self.drop_backend();
        if write_shut {
            // Redis closed a connection whose client had gone: what it answered
            // was passed on; whatever it did not answer, it never will.
            return Err(End::Finished);
        }
        if self.input.is_stopped() && !self.ledger.awaits_backend() {
            // Done (QUIT and the like): the session ends once its output is out.
            return Ok(());
        }
        if self.ledger.counted() > 0 {
            debug!(%addr, in_flight = self.ledger.counted(), "backend lost with replies in flight");
            return Err(End::BackendLost);
        }
        self.ledger.forget_backend();
        if matches!(self.phase, Phase::Draining { .. }) {
            return self.finish_switch();
        }
        if let Some(reason) = self.ledger.state.pin.reason() {
            debug!(%addr, reason, "backend lost while pinned");
            return Err(End::Pinned);
        }
        if shared {
            // Not this client's connection: whoever closed it, the session
            // takes the next shared connection at its next command.
            return Ok(());
        }
        // Idle connection lost. A live server that closed it (CLIENT KILL, its
        // idle timeout) still answers: then the client must see the close, as
        // it would directly. Otherwise the master is gone: wait for a master.
        if Box::pin(answers(&self.shared.dialer, addr, LIVENESS_TIMEOUT)).await {
            debug!(%addr, "backend closed by a live server");
            return Err(End::ServerClosed);
        }
        debug!(%addr, "master gone; the session waits for a master");
        self.shared.hints.send(Hint::Unreachable(addr));
        self.avoid = Some(Avoid::Unreachable(Instant::now() + RETRY_DELAY));
        Ok(())
    }
}

/// The batch kept at the front of `cbuf` for a retry after `-READONLY`
/// (`retained` bytes) is done with once nothing is in flight anymore.
fn release_retained(cbuf: &mut Option<BytesMut>, retained: &mut usize, in_flight: usize) {
    if *retained > 0 && in_flight == 0 {
        if let Some(cbuf) = cbuf.as_mut() {
            cbuf.advance(*retained);
        }
        *retained = 0;
    }
}
