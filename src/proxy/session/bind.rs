//! Binding a session to the current master, and letting go of it.
//!
//! A session binds at its first command that needs the master (and again
//! after a switch, an idle release or a lost connection). It takes a place on
//! the shared connection when it may (`--share-backend`, default connection
//! state), or opens a connection of its own and restores its state there
//! first: the proxy's AUTH, then AUTH, HELLO, SELECT, CLIENT SETNAME and the
//! like as the client sent them, the WAIT marker, the re-subscriptions. Each
//! of those replies is expected in the ledger, where it is swallowed; a failed
//! one ends the session rather than let a command run in the wrong state.
//!
//! A master that refuses or times out is reported to the control path and
//! retried after a pause, the commands held meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use tokio::time::Instant;
use tracing::debug;

use super::io::send_backend;
use super::{Avoid, Backend, Conn, End, Phase, RETRY_DELAY, Session};
use crate::backend::connect::CONNECT_TIMEOUT;
use crate::proxy::state::{Expect, replies};
use crate::proxy::{Counters, Shared, bufpool};
use crate::resp::reply::ReplyScanner;
use crate::switch::Hint;

impl Session {
    /// Connects to the current master and restores the session's state there.
    /// Returns whether a backend is now bound.
    ///
    /// Nothing is bound while a backend still is, during a switch's drain or
    /// shutdown, without a master, or while the master is avoided (demoted,
    /// or unreachable until its retry instant). A failed connection is
    /// reported as a hint and sets the retry instant; the commands stay held.
    pub(super) async fn bind(&mut self) -> Result<bool, End> {
        if self.backend.is_some() || self.phase != Phase::Serving {
            return Ok(false);
        }
        match self.avoid {
            Some(Avoid::Demoted) => return Ok(false),
            Some(Avoid::Unreachable(at)) if Instant::now() < at => return Ok(false),
            _ => {}
        }
        let Some(target) = self.choose_target() else {
            // `read_fallback error`: held commands are refused at once (the
            // caller's next round refuses them).
            if self.refuses_without_target()
                && let Some(hold) = self.hold.as_mut()
                && !hold.expired
            {
                hold.expired = true;
                return Ok(true);
            }
            return Ok(false);
        };
        let addr = target.addr;
        // Read endpoints keep their own connections: a shared link follows
        // the master.
        let share = self.shared.settings.reads.is_none()
            && !self.own_connection
            && self.ledger.state.is_default();
        let conn = if share {
            let auth = self.shared.settings.backend_auth.as_ref();
            self.shared
                .links
                .link(
                    addr,
                    target.host.as_deref(),
                    self.topology.generation,
                    auth,
                    &self.shared.counters,
                    self.shared.settings.drain_timeout,
                )
                .await
                .map(|link| Conn::Shared {
                    link,
                    inbox: Arc::default(),
                })
        } else {
            (self.shared.dialer)
                .dial(addr, target.host.as_deref(), CONNECT_TIMEOUT)
                .await
                .map(Conn::Own)
        };
        let conn = match conn {
            Ok(conn) => conn,
            Err(error) => {
                if target.reserved {
                    self.shared.read_load.release(addr);
                }
                debug!(%addr, %error, "backend unreachable; holding commands");
                self.shared.hints.send(Hint::Unreachable(addr));
                self.avoid = Some(Avoid::Unreachable(Instant::now() + RETRY_DELAY));
                return Ok(false);
            }
        };
        self.avoid = None;
        let generation = self.topology.generation;
        if self.bound_generation != 0 && self.bound_generation != generation {
            metrics::counter!(crate::metrics::SESSIONS_MOVED).increment(1);
        }
        self.bound_generation = generation;
        // A shared connection carries no session state (its link sends the
        // proxy's AUTH itself); a connection of the session's own is brought
        // to the session's state first.
        let prelude = if share {
            BytesMut::new()
        } else {
            self.restore_prelude()
        };
        self.bind_to(Backend {
            conn,
            addr,
            buf: None,
            replies: ReplyScanner::default(),
            streaming: 0,
            write_shut: false,
            read_place: target.reserved,
        });
        if !prelude.is_empty() {
            send_backend(&mut self.backend, &mut self.to_backend, &prelude, 0)?;
        }
        if !share && let Some(after) = self.shared.settings.idle_release {
            self.idle_check_at = Some(Instant::now() + after);
        }
        Ok(true)
    }

    /// What a new connection of the session's own is sent before anything
    /// else: the proxy's AUTH, the session's state, the WAIT marker, the
    /// re-subscriptions; each one's reply is expected in the ledger.
    fn restore_prelude(&mut self) -> BytesMut {
        let mut prelude = BytesMut::new();
        let mut replays = 0;
        if let Some(auth) = &self.shared.settings.backend_auth {
            prelude.extend_from_slice(auth);
            replays += 1;
        }
        for frame in self.ledger.state.replay_frames() {
            prelude.extend_from_slice(frame);
            replays += 1;
        }
        for _ in 0..replays {
            self.ledger.push(Expect::Replay);
        }
        if std::mem::take(&mut self.used_shared) {
            // Writes this session sent over a shared connection count for a
            // later WAIT on this one only once its replication offset is past
            // them: a replicated no-op moves it there (its replies on the
            // shared connection are all in, so the writes came first).
            prelude.extend_from_slice(replies::WAIT_MARKER);
            self.ledger.push(Expect::Marker);
        }
        for (family, frame, remaining) in self.ledger.state.subscriptions.resubscribe_commands() {
            prelude.extend_from_slice(&frame);
            self.ledger.push(Expect::Resubscribe { family, remaining });
        }
        prelude
    }

    /// Makes `backend` the session's, counted in the backend gauges.
    fn bind_to(&mut self, backend: Backend) {
        backend_gauge(&self.shared.counters, &backend).fetch_add(1, Ordering::Relaxed);
        self.backend = Some(Box::new(backend));
    }

    /// A subscribed session without a backend re-subscribes as soon as it can.
    pub(super) async fn rebind_subscriber(&mut self) -> Result<(), End> {
        if self.backend.is_none()
            && !self.ledger.state.subscriptions.is_empty()
            && !self.input.is_stopped()
        {
            Box::pin(self.bind()).await?;
        }
        Ok(())
    }

    /// Lets go of the session's backend (its own connection is closed, its
    /// place on a shared one given up) and of the output waiting for it.
    pub(super) fn drop_backend(&mut self) {
        // A held `-READONLY` was in the buffer that goes with it.
        self.readonly = None;
        release_backend(&self.shared, &mut self.backend, &mut self.to_backend);
    }
}

/// Lets go of the backend connection (or the session's place on a shared
/// one) and the output that was waiting for it.
pub(super) fn release_backend(
    shared: &Shared,
    backend: &mut Option<Box<Backend>>,
    pending: &mut Option<BytesMut>,
) {
    let counters = &shared.counters;
    if let Some(out) = pending.as_mut() {
        out.clear();
    }
    bufpool::give_back_if_empty(pending);
    if let Some(mut backend) = backend.take() {
        backend_gauge(counters, &backend).fetch_sub(1, Ordering::Relaxed);
        if backend.read_place {
            shared.read_load.release(backend.addr);
        }
        if let Some(buf) = backend.buf.as_mut() {
            buf.clear();
        }
        bufpool::give_back_if_empty(&mut backend.buf);
    }
}

/// The gauge that counts sessions bound the way `backend` is.
fn backend_gauge<'a>(counters: &'a Counters, backend: &Backend) -> &'a AtomicU64 {
    if backend.is_shared() {
        &counters.sessions_on_shared
    } else {
        &counters.own_backends
    }
}
