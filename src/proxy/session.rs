//! One client connection and its backend connection (1:1).
//!
//! The session is a single task running one `select!` loop over: shutdown, a new
//! topology (the current snapshot's `retired` future), backend readable, client
//! readable, and one timer (hold, drain, retry, idle release). Everything it
//! decides comes from [`state::decide`](super::state::decide) and
//! [`Ledger::route`](super::ledger::Ledger::route); this file only moves bytes.
//!
//! Bytes are forwarded as received, straight from the read buffer: complete
//! requests are batched into one write to the backend, complete replies into one
//! write to the client. Buffers are borrowed from [`bufpool`] only while they hold
//! bytes.
//!
//! Guarantees (see the README's "What clients see during a failover"):
//! * a command is sent only to the master of the current topology, after the
//!   session's state (AUTH, HELLO, SELECT, CLIENT SETNAME, subscriptions) was
//!   restored there; while there is none, it is held, then refused with
//!   `-MASTERDOWN` (never executed);
//! * if the backend is lost with replies in flight, the client connection is
//!   closed (the outcome is unknown), as a direct connection would be;
//! * a backend closed by a live server (CLIENT KILL, `timeout`, QUIT) closes the
//!   client connection: outside a switch nothing is hidden;
//! * a client that closes its sending side has that passed on to its backend
//!   connection once everything it sent is forwarded, so Redis ends it as it
//!   would a direct client's (a blocked BLPOP is dropped, not left to take the
//!   next item); a client that closes entirely takes the connection along;
//! * after SYNC/PSYNC the session is a byte pipe (`pipe`);
//! * a `-READONLY` is passed on unchanged once `ROLE` says the node is still
//!   master; only a demotion makes the session retry or close.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::{debug, info, warn};

use super::Shared;
use super::bufpool;
use super::ledger::{Ledger, Route};
use super::shared::{Inbox, Link};
use super::state::{Action, Expect, decide, is_client_setinfo, replies, shareable};
use crate::backend::connect::{CONNECT_TIMEOUT, answers, connect, is_master};
use crate::config::OnSwitch;
use crate::resp::reply::ReplyScanner;
use crate::resp::request::{RequestScanner, Scanned};
use crate::switch::{Hint, Topology};

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

/// Commands counted locally before they are added to the shared counters.
const COUNTER_FLUSH: u32 = 256;

/// Pause before retrying a master that refused a connection.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// How long the check "did a live server close us?" may take.
const LIVENESS_TIMEOUT: Duration = Duration::from_millis(300);

/// Why a session ended (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed or its socket failed.
    Client,
    /// Done: QUIT, a protocol error, or input closed with nothing left in flight.
    Finished,
    /// The backend was lost with replies in flight (outcome unknown).
    BackendLost,
    /// A live server closed the backend connection.
    ServerClosed,
    /// Pinned state (MULTI, WATCH, MONITOR, …) cannot move to a new master.
    Pinned,
    /// `--on-switch close`.
    SwitchClose,
    /// In-flight replies did not arrive within the drain timeout.
    DrainTimeout,
    /// Restoring state on a new master failed.
    ReplayFailed,
    /// The client sent more than the query buffer limit.
    QueryBufferLimit,
    /// The backend sent bytes that are not RESP.
    BackendProtocol,
}

/// What woke the session up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// The proxy is shutting down.
    Shutdown,
    /// A new topology was published.
    NewTopology,
    /// The client's socket can take more of the waiting output.
    ClientWritable,
    /// The backend's socket can take more of the waiting output.
    BackendWritable,
    /// Replies (or a close) from the backend.
    BackendReadable,
    /// The backend socket failed.
    BackendFailed,
    /// Commands (or a close) from the client.
    ClientReadable,
    /// The client socket failed.
    ClientFailed,
    /// The hold, drain, retry or idle deadline passed.
    Timer,
}

/// The backend side of a session.
struct Backend {
    conn: Conn,
    addr: SocketAddr,
    buf: Option<BytesMut>,
    replies: ReplyScanner,
    /// The client's half-close was passed on (`shutdown(Write)`): Redis
    /// itself now ends the connection, exactly as it would a direct client's,
    /// unblocking a blocked command instead of leaving it to take the next item.
    write_shut: bool,
}

/// How a session reaches its master.
enum Conn {
    /// A connection of its own (1:1).
    Own(TcpStream),
    /// A connection shared with other stateless sessions (`--share-backend`).
    Shared {
        /// The shared connection.
        link: Arc<Link>,
        /// Where it leaves this session's replies.
        inbox: Arc<Inbox>,
    },
}

impl Backend {
    fn is_shared(&self) -> bool {
        matches!(self.conn, Conn::Shared { .. })
    }
}

/// Why the session may not bind to the current master right now.
#[derive(Debug, Clone, Copy)]
enum Avoid {
    /// It answered `-READONLY`: wait for a new topology.
    Demoted,
    /// It refused or timed out: retry at the given instant.
    Unreachable(Instant),
}

/// Where the session's input stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
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
    fn is_stopped(self) -> bool {
        matches!(self, Input::Stopped | Input::StoppedEof)
    }

    /// Whether the client closed its sending side.
    fn client_done(self) -> bool {
        matches!(self, Input::Eof | Input::StoppedEof)
    }
}

/// One client session.
struct Session {
    shared: Arc<Shared>,
    client: TcpStream,
    /// Client bytes not yet forwarded (plus, at its front, `retained` bytes of
    /// the one command in flight, kept for a retry after `-READONLY`).
    cbuf: Option<BytesMut>,
    requests: RequestScanner,
    retained: usize,
    /// Boxed: most of a session's life is spent idle, where it should be small.
    backend: Option<Box<Backend>>,
    topology: Arc<Topology>,
    ledger: Ledger,
    authenticated: bool,
    input: Input,
    /// When commands started waiting for a master.
    held_since: Option<Instant>,
    /// A switch is draining in-flight replies until this instant.
    draining_until: Option<Instant>,
    /// Shutdown: finish in-flight replies until this instant.
    shutdown_until: Option<Instant>,
    avoid: Option<Avoid>,
    close_after_drain: bool,
    /// The hold timeout passed: answer held commands with -MASTERDOWN.
    refuse_held: bool,
    /// The current hold waits for a usable master (and was counted as such).
    hold_counted: bool,
    /// Last client activity, when idle release is on.
    last_active: Instant,
    /// When to check next whether the backend has been idle long enough.
    idle_check_at: Option<Instant>,
    /// Commands seen by class, added to the shared counters now and then.
    counted_commands: [u32; 7],
    /// The topology generation of the last bind (0: never bound); a bind in
    /// a later generation means the session moved with a switch.
    bound_generation: u64,
    /// Output the client's socket did not take yet (a slow reader): while any
    /// is waiting, nothing more is read from the backend.
    to_client: Option<BytesMut>,
    /// Output the backend's socket did not take yet: while any is waiting,
    /// nothing more is read from the client.
    to_backend: Option<BytesMut>,
    /// A proxy-made reply that ends the session was queued: end once the
    /// client has been sent everything.
    finish_when_flushed: bool,
    /// The session needs a connection of its own (it used or changed
    /// connection state): it no longer takes a shared one.
    own_connection: bool,
    /// Commands went over a shared connection: a later WAIT must first make
    /// the session's own connection's replication offset cover them.
    used_shared: bool,
    /// SYNC/PSYNC went out: the session is a replication stream, passed on
    /// unread both ways until either side closes.
    piping: bool,
    /// A `-READONLY` reply waits at the front of the backend buffer until
    /// `ROLE` tells whether the master was demoted.
    readonly: Option<ReadOnlyReply>,
}

/// A `-READONLY` reply held back while the master's role is checked.
#[derive(Debug, Clone, Copy)]
struct ReadOnlyReply {
    /// Its length at the front of the backend buffer.
    len: usize,
    /// It answered the session's only command in flight, outside MULTI: if
    /// the master was demoted, that command did not run and may be retried.
    sole: bool,
}

/// Serves one client until it or the proxy is done.
pub async fn run(client: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut session = Session::new(client, shared);
    let end = session.serve(shutdown).await;
    debug!(reason = ?end, "session ended");
}

impl Session {
    fn new(client: TcpStream, shared: Arc<Shared>) -> Session {
        let topology = shared.switch.current();
        let authenticated = shared.settings.requirepass.is_none();
        let own_connection = !shared.settings.share_backend;
        Session {
            shared,
            client,
            cbuf: None,
            requests: RequestScanner::default(),
            retained: 0,
            backend: None,
            topology,
            ledger: Ledger::default(),
            authenticated,
            input: Input::Open,
            held_since: None,
            draining_until: None,
            shutdown_until: None,
            avoid: None,
            close_after_drain: false,
            refuse_held: false,
            hold_counted: false,
            last_active: Instant::now(),
            idle_check_at: None,
            counted_commands: [0; 7],
            bound_generation: 0,
            to_client: None,
            to_backend: None,
            finish_when_flushed: false,
            own_connection,
            used_shared: false,
            piping: false,
            readonly: None,
        }
    }

    /// Where replies to the client go.
    fn client_out(&mut self) -> ClientOut<'_> {
        ClientOut {
            counters: &self.shared.counters,
            stream: &self.client,
            pending: &mut self.to_client,
        }
    }

    /// Adds the local per-class counts to the shared counters.
    fn flush_counters(&mut self) {
        self.shared.counters.add(&self.counted_commands);
        self.counted_commands = [0; 7];
    }

    async fn serve(&mut self, shutdown: CancellationToken) -> End {
        // The topology's `retired` future also fires when `shutdown` is
        // cancelled (the switch's snapshots are its children): one wait for both.
        let mut retired = Box::pin(self.topology.retired());
        let mut timer: Option<Pin<Box<Sleep>>> = None;
        // When the last client read happened, for the request latency.
        let mut read_at: Option<Instant> = None;
        loop {
            let in_flight = self.ledger.counted();
            if let Err(end) = self.settle().await {
                return Box::pin(self.close(end)).await;
            }
            if self.piping {
                let end = Box::pin(self.pipe(&shutdown, &mut retired)).await;
                return Box::pin(self.close(end)).await;
            }
            if let Some(at) = read_at.take()
                && self.ledger.counted() > in_flight
            {
                self.shared.counters.request_latency.record(at.elapsed());
            }
            let deadline = self.next_deadline();
            match (&mut timer, deadline) {
                (Some(t), Some(at)) if t.deadline() != at => t.as_mut().reset(at),
                (None, Some(at)) => timer = Some(Box::pin(tokio::time::sleep_until(at))),
                _ => {}
            }
            // An armed but stale timer (deadline gone) is not polled.
            let armed = if deadline.is_some() {
                timer.as_mut()
            } else {
                None
            };
            let event = self.next_event(&shutdown, &mut retired, armed).await;
            let result = match event {
                Event::Shutdown => {
                    self.begin_shutdown();
                    Ok(())
                }
                Event::NewTopology => {
                    self.topology = self.shared.switch.current();
                    retired = Box::pin(self.topology.retired());
                    self.on_new_topology()
                }
                Event::ClientWritable => {
                    flush_pending(&self.client, &mut self.to_client).map_err(|_| End::Client)
                }
                Event::BackendWritable => self.flush_to_backend(),
                Event::BackendReadable => {
                    let measure = self.shared.settings.measure_latency;
                    let (start, in_flight) = (measure.then(Instant::now), self.ledger.counted());
                    let result = self.on_backend_readable().await;
                    if let Some(start) = start
                        && self.ledger.counted() < in_flight
                    {
                        self.shared.counters.reply_latency.record(start.elapsed());
                    }
                    result
                }
                Event::BackendFailed => Box::pin(self.on_backend_lost()).await,
                Event::ClientReadable => {
                    if self.shared.settings.measure_latency {
                        read_at = Some(Instant::now());
                    }
                    self.on_client_readable().await
                }
                Event::ClientFailed => Err(End::Client),
                Event::Timer => self.on_timer(),
            };
            if let Err(end) = result {
                return Box::pin(self.close(end)).await;
            }
        }
    }

    /// Waits for the next thing to act on. Readiness is polled straight from
    /// the sockets (their wakers live in the sockets, not in this future), so an
    /// idle session costs little memory. Earlier checks win: shutdown, a new
    /// topology, output waiting to be written, replies, then new commands.
    async fn next_event(
        &self,
        shutdown: &CancellationToken,
        retired: &mut Pin<Box<WaitForCancellationFutureOwned>>,
        mut timer: Option<&mut Pin<Box<Sleep>>>,
    ) -> Event {
        let read_client = self.wants_client_input();
        std::future::poll_fn(|cx| {
            // Once shutting down, the (cancelled) retired future is not polled.
            if self.shutdown_until.is_none() && retired.as_mut().poll(cx).is_ready() {
                return Poll::Ready(if shutdown.is_cancelled() {
                    Event::Shutdown
                } else {
                    Event::NewTopology
                });
            }
            if self.to_client.is_some()
                && let Poll::Ready(ready) = self.client.poll_write_ready(cx)
            {
                return Poll::Ready(ready.map_or(Event::ClientFailed, |()| Event::ClientWritable));
            }
            if let Some(backend) = self.backend.as_deref() {
                match &backend.conn {
                    Conn::Own(stream) => {
                        if self.to_backend.is_some()
                            && let Poll::Ready(ready) = stream.poll_write_ready(cx)
                        {
                            return Poll::Ready(
                                ready.map_or(Event::BackendFailed, |()| Event::BackendWritable),
                            );
                        }
                        if self.to_client.is_none()
                            && let Poll::Ready(ready) = stream.poll_read_ready(cx)
                        {
                            return Poll::Ready(
                                ready.map_or(Event::BackendFailed, |()| Event::BackendReadable),
                            );
                        }
                    }
                    Conn::Shared { inbox, .. } => {
                        if self.to_client.is_none() && inbox.poll_ready(cx).is_ready() {
                            return Poll::Ready(Event::BackendReadable);
                        }
                    }
                }
            }
            if read_client && let Poll::Ready(ready) = self.client.poll_read_ready(cx) {
                return Poll::Ready(ready.map_or(Event::ClientFailed, |()| Event::ClientReadable));
            }
            if let Some(t) = timer.as_mut()
                && t.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Event::Timer);
            }
            Poll::Pending
        })
        .await
    }

    /// Ends the session: replies already routed to the client are delivered
    /// first (bounded by the drain timeout) unless the client itself is gone.
    async fn close(&mut self, end: End) -> End {
        if end != End::Client {
            let deadline = Instant::now() + self.shared.settings.drain_timeout;
            while self.to_client.is_some() {
                tokio::select! {
                    ready = self.client.writable() => {
                        if ready.is_err() || flush_pending(&self.client, &mut self.to_client).is_err() {
                            break;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
        self.release();
        end
    }

    /// Brings the session to a resting state after any event: proxy-made replies
    /// written, held commands forwarded if possible, end conditions checked.
    async fn settle(&mut self) -> Result<(), End> {
        loop {
            self.emit_locals()?;
            let refuse = std::mem::take(&mut self.refuse_held);
            let need_backend = self.pump(refuse)?;
            self.emit_locals()?;
            // Boxed: connecting is rare, and its state would otherwise bloat
            // every idle session's future.
            if !need_backend || !Box::pin(self.bind()).await? {
                break;
            }
        }
        if self.piping {
            return Ok(());
        }
        if self.finish_when_flushed && self.to_client.is_none() {
            return Err(End::Finished);
        }
        self.rebind_subscriber().await?;
        if self.input.client_done() {
            self.pass_on_half_close().await;
        }
        let nothing_left = !self.ledger.awaits_backend() && self.ledger.is_empty();
        match self.input {
            Input::Stopped | Input::StoppedEof if nothing_left => return Err(End::Finished),
            Input::Eof if nothing_left && !self.has_complete_unsent() => return Err(End::Finished),
            _ => {}
        }
        if self.ledger.state.pin.replies_unmatched() && self.input != Input::Open {
            return Err(End::Finished);
        }
        bufpool::give_back_if_empty(&mut self.cbuf);
        if let Some(backend) = self.backend.as_mut() {
            bufpool::give_back_if_empty(&mut backend.buf);
        }
        // Flushed in batches under load, and whenever the session goes quiet,
        // so a scrape sees every command that has been answered.
        let counted = self.counted_commands.iter().sum::<u32>();
        if counted >= COUNTER_FLUSH || (counted > 0 && self.ledger.counted() == 0) {
            self.flush_counters();
        }
        Ok(())
    }

    /// The client closed its sending side: once every complete command it sent
    /// is out (after QUIT or a protocol error: every command before it), the
    /// backend connection's sending side is closed too. Redis then does what
    /// it does for a direct client: it answers what it read and closes, and a
    /// blocked command (BLPOP, WAIT, XREAD BLOCK, …) is dropped rather than
    /// left behind on a connection nobody reads.
    async fn pass_on_half_close(&mut self) {
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

    /// Sends proxy-made replies that have reached the front of the ledger.
    fn emit_locals(&mut self) -> Result<(), End> {
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

    /// Writes what the backend's socket takes of the waiting output.
    fn flush_to_backend(&mut self) -> Result<(), End> {
        let Some(Conn::Own(stream)) = self.backend.as_deref().map(|b| &b.conn) else {
            bufpool::give_back_if_empty(&mut self.to_backend);
            return Ok(());
        };
        flush_pending(stream, &mut self.to_backend).map_err(|_| End::BackendLost)
    }

    /// Bytes received from the client and not forwarded yet.
    fn unsent(&self) -> usize {
        self.cbuf.as_ref().map_or(0, |b| b.len() - self.retained)
    }

    /// Whether a complete command waits in the input buffer.
    fn has_complete_unsent(&self) -> bool {
        let Some(buf) = self.cbuf.as_ref() else {
            return false;
        };
        matches!(
            RequestScanner::default().scan(&buf[self.retained..]),
            Ok(Some(_))
        )
    }

    fn wants_client_input(&self) -> bool {
        let shared_busy = self.backend.as_deref().is_some_and(Backend::is_shared)
            && (self.to_client.is_some() || self.ledger.counted() >= MAX_SHARED_IN_FLIGHT);
        if self.input == Input::Stopped {
            // Only to see the close: what arrives is dropped.
            return !self.piping;
        }
        self.input == Input::Open
            && self.to_backend.is_none()
            && !shared_busy
            && self.ledger.counted() < MAX_IN_FLIGHT
            && (self.held_since.is_none() || self.unsent() < MAX_HELD_BYTES)
    }

    async fn on_client_readable(&mut self) -> Result<(), End> {
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

    /// Forwards or answers the complete commands in the input buffer. With
    /// `refuse`, commands that need the backend are answered `-MASTERDOWN`.
    /// Returns whether a command waits for a backend (the caller binds one).
    fn pump(&mut self, refuse: bool) -> Result<bool, End> {
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
            self.held_since = None;
            self.hold_counted = false;
            return Ok(false);
        };
        // Bytes past a retained command mean it is no longer alone in flight.
        if self.retained > 0 && buf.len() > self.retained {
            buf.advance(self.retained);
            self.retained = 0;
        }
        if self.retained > 0 || buf.is_empty() {
            self.held_since = None;
            self.hold_counted = false;
            return Ok(false);
        }
        let in_flight_before = self.ledger.counted();
        let table = self.shared.commands.load();
        let on_shared = self.backend.as_deref().is_some_and(Backend::is_shared);
        let mut batch = Batch::default();
        // Whether this batch is one plain forwarded command and nothing else
        // (only such a command may be retried after -READONLY).
        let mut forwarded = 0usize;
        let mut plain = true;
        let mut need_backend = false;
        loop {
            let scanned = match self.requests.scan(&buf[batch.end..]) {
                Ok(Some(scanned)) => scanned,
                Ok(None) => break,
                Err(error) => {
                    batch.flush(&self.backend, &mut self.to_backend, buf)?;
                    self.ledger.push(Expect::LocalThenClose(error.reply()));
                    self.input = Input::Stopped;
                    debug!(%error, "client protocol error");
                    break;
                }
            };
            let req = match scanned {
                Scanned::Empty(n) => {
                    if batch.end == 0 {
                        buf.advance(n);
                    } else if on_shared {
                        // Only commands go over a shared connection.
                        batch.flush(&self.backend, &mut self.to_backend, buf)?;
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
            let info = table.info(&name);
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
                && self.draining_until.is_none()
                && !self.ledger.replaying();
            if forwards && on_shared && !share {
                // This command uses or changes connection state (or the
                // session was told to leave): the session moves to a
                // connection of its own, once its replies on the shared one
                // are in (so they keep their order). Nothing else goes out
                // on the shared connection meanwhile.
                batch.flush(&self.backend, &mut self.to_backend, buf)?;
                self.own_connection = true;
                if self.ledger.is_empty() {
                    release_backend(
                        &self.shared.counters,
                        &mut self.backend,
                        &mut self.to_backend,
                    );
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
                batch.flush(&self.backend, &mut self.to_backend, buf)?;
                if self.ledger.is_empty() {
                    self.counted_commands[class.index()] += 1;
                    send_backend(&self.backend, &mut self.to_backend, buf, 0)?;
                    buf.clear();
                    self.piping = true;
                }
                break;
            }
            self.counted_commands[class.index()] += 1;
            let local = match action {
                _ if forwards && refuse => {
                    metrics::counter!(crate::metrics::COMMANDS_REFUSED).increment(1);
                    Some((Bytes::from_static(replies::MASTERDOWN), false))
                }
                Action::Forward(expect) => {
                    self.ledger.push(expect);
                    batch.end += req.len;
                    batch.replies += 1;
                    forwarded += 1;
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
                    batch.flush(&self.backend, &mut self.to_backend, buf)?;
                    buf.advance(req.len);
                    send_backend(&self.backend, &mut self.to_backend, &replacement, 1)?;
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
                batch.flush(&self.backend, &mut self.to_backend, buf)?;
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
        if batch.end > 0 {
            // A lone command with nothing else in flight is kept until its reply:
            // if that reply is -READONLY it was not executed and can be retried.
            let lone = forwarded == 1
                && plain
                && in_flight_before == 0
                && batch.end == buf.len()
                && !self.ledger.state.pin.multi;
            if lone {
                send_backend(
                    &self.backend,
                    &mut self.to_backend,
                    &buf[..batch.end],
                    batch.replies,
                )?;
                self.retained = batch.end;
            } else {
                batch.flush(&self.backend, &mut self.to_backend, buf)?;
            }
        }
        if need_backend {
            if self.held_since.is_none() {
                self.held_since = Some(Instant::now());
            }
            // Waiting for a first connection is not a hold; waiting because
            // no master may be used is, and is counted once.
            let no_master = self.topology.master.is_none() || self.avoid.is_some();
            if no_master && !self.hold_counted {
                self.hold_counted = true;
                metrics::counter!(crate::metrics::COMMANDS_HELD).increment(1);
            }
            return Ok(true);
        }
        if let Some(since) = self.held_since.take()
            && std::mem::take(&mut self.hold_counted)
        {
            metrics::histogram!(crate::metrics::HOLD_SECONDS).record(since.elapsed().as_secs_f64());
        }
        Ok(false)
    }

    /// Connects to the current master and restores the session's state there.
    /// Returns whether a backend is now bound.
    async fn bind(&mut self) -> Result<bool, End> {
        if self.backend.is_some() || self.draining_until.is_some() || self.shutdown_until.is_some()
        {
            return Ok(false);
        }
        let Some(addr) = self.topology.master else {
            return Ok(false);
        };
        match self.avoid {
            Some(Avoid::Demoted) => return Ok(false),
            Some(Avoid::Unreachable(at)) if Instant::now() < at => return Ok(false),
            _ => {}
        }
        let share = !self.own_connection && self.ledger.state.is_default();
        let conn = if share {
            let auth = self.shared.settings.backend_auth.as_ref();
            self.shared
                .links
                .link(
                    addr,
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
            connect(addr, CONNECT_TIMEOUT).await.map(Conn::Own)
        };
        let conn = match conn {
            Ok(conn) => conn,
            Err(error) => {
                debug!(%addr, %error, "master unreachable; holding commands");
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
            write_shut: false,
        });
        if !prelude.is_empty() {
            send_backend(&self.backend, &mut self.to_backend, &prelude, 0)?;
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
    async fn rebind_subscriber(&mut self) -> Result<(), End> {
        if self.backend.is_none()
            && !self.ledger.state.subscriptions.is_empty()
            && !self.input.is_stopped()
        {
            Box::pin(self.bind()).await?;
        }
        Ok(())
    }

    async fn on_backend_readable(&mut self) -> Result<(), End> {
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
        bufpool::reserve_for_read(buf);
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
        let Some(backend) = self.backend.as_mut() else {
            return Ok(());
        };
        let Some(buf) = backend.buf.as_mut() else {
            return Ok(());
        };
        // Field by field: the backend's buffer stays borrowed meanwhile.
        let mut out = ClientOut {
            counters: &self.shared.counters,
            stream: &self.client,
            pending: &mut self.to_client,
        };
        let mut run_start = 0;
        let mut pos = 0;
        loop {
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
                Ok(None) => break,
                Err(_) => {
                    out.send(&buf[run_start..pos])?;
                    warn!(addr = %backend.addr, "backend sent a malformed reply; closing the session");
                    return Err(End::BackendProtocol);
                }
            };
            let frame = &buf[pos..pos + reply.len];
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
                Route::Demoted { sole } => {
                    // Held at the front of the buffer until ROLE tells what
                    // it means (`on_readonly`); nothing after it goes first.
                    self.readonly = Some(ReadOnlyReply {
                        len: reply.len,
                        sole,
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
            Box::pin(self.on_readonly(held)).await?;
            self.route_replies()?;
        }
        if self.draining_until.is_some() && self.ledger.counted() == 0 {
            self.finish_switch()?;
        }
        Ok(())
    }

    /// A `-READONLY` reply is at the front of the backend buffer. A master
    /// that still says `master` sent it on purpose (a script's error, `DEBUG
    /// ERROR`): the client gets it unchanged at once. Otherwise the node was
    /// demoted: the control path is told, and a command that was alone in
    /// flight (so it did not run) is retried on the new master; with others in
    /// flight the error is forwarded and the session ends after their replies.
    async fn on_readonly(&mut self, held: ReadOnlyReply) -> Result<(), End> {
        let Some(addr) = self.backend.as_ref().map(|b| b.addr) else {
            return Ok(());
        };
        let auth = self.shared.settings.backend_auth.as_deref();
        let demoted = is_master(addr, auth, LIVENESS_TIMEOUT).await != Some(true);
        let Some(buf) = self.backend.as_mut().and_then(|b| b.buf.as_mut()) else {
            return Ok(());
        };
        let retry = demoted && held.sole && self.retained > 0;
        if !retry {
            ClientOut {
                counters: &self.shared.counters,
                stream: &self.client,
                pending: &mut self.to_client,
            }
            .send(&buf[..held.len])?;
        }
        buf.advance(held.len);
        if demoted {
            self.shared.hints.send(Hint::Demoted(addr));
        }
        if retry {
            info!(%addr, "master answered -READONLY; retrying the command on the new master");
            // Not executed: its bytes stay at the front of the input, unsent.
            self.retained = 0;
            self.avoid = Some(Avoid::Demoted);
            self.drop_backend();
        } else {
            release_retained(&mut self.cbuf, &mut self.retained, self.ledger.counted());
            if demoted {
                info!(%addr, "master answered -READONLY; closing the session after its replies");
                self.input = Input::Stopped;
            }
        }
        Ok(())
    }

    /// The backend connection closed or failed.
    async fn on_backend_lost(&mut self) -> Result<(), End> {
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
        if self.draining_until.is_some() {
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
        if Box::pin(answers(addr, LIVENESS_TIMEOUT)).await {
            debug!(%addr, "backend closed by a live server");
            return Err(End::ServerClosed);
        }
        debug!(%addr, "master gone; the session waits for a master");
        self.shared.hints.send(Hint::Unreachable(addr));
        self.avoid = Some(Avoid::Unreachable(Instant::now() + RETRY_DELAY));
        Ok(())
    }

    /// The session after SYNC/PSYNC: a replication stream (an RDB payload,
    /// then the master's commands, with bare newlines as keep-alives) is not a
    /// sequence of replies, so bytes pass both ways unread from here on, each
    /// side's close passed on to the other. The stream belongs to the master
    /// it started on: a switch to another master ends it, as a replica's link
    /// ends when its master goes away.
    async fn pipe(
        &mut self,
        shutdown: &CancellationToken,
        retired: &mut Pin<Box<WaitForCancellationFutureOwned>>,
    ) -> End {
        let Some(backend) = self.backend.as_deref_mut() else {
            return End::BackendLost;
        };
        let Conn::Own(stream) = &mut backend.conn else {
            return End::BackendLost;
        };
        let addr = backend.addr;
        // What was read or queued before the switch to a pipe goes first.
        let early = backend.buf.take();
        let counters = &self.shared.counters;
        let flushed = async {
            if let Some(out) = self.to_backend.take() {
                stream.write_all(&out).await.map_err(|_| End::BackendLost)?;
            }
            for out in [self.to_client.take(), early].into_iter().flatten() {
                counters.add_bytes_out(out.len());
                self.client.write_all(&out).await.map_err(|_| End::Client)?;
            }
            Ok(())
        };
        if let Err(end) = flushed.await {
            return end;
        }
        debug!(%addr, "replication stream: passing bytes through");
        let mut copy = std::pin::pin!(tokio::io::copy_bidirectional(&mut self.client, stream));
        loop {
            tokio::select! {
                // Either side closed (or failed); the other was told.
                result = &mut copy => {
                    if let Ok((to_backend, to_client)) = result {
                        counters.add_bytes_in(usize::try_from(to_backend).unwrap_or(usize::MAX));
                        counters.add_bytes_out(usize::try_from(to_client).unwrap_or(usize::MAX));
                    }
                    return End::Finished;
                }
                // A new topology, or shutdown (which retires every snapshot).
                () = retired.as_mut() => {
                    if shutdown.is_cancelled() {
                        return End::Finished;
                    }
                    let topology = self.shared.switch.current();
                    if topology.master.is_some_and(|master| master != addr) {
                        debug!(%addr, "replication stream ends: the master changed");
                        return End::Pinned;
                    }
                    *retired = Box::pin(topology.retired());
                }
            }
        }
    }

    fn on_new_topology(&mut self) -> Result<(), End> {
        self.avoid = None;
        let Some(backend) = self.backend.as_ref() else {
            return Ok(());
        };
        // No master for now (a failover, or this proxy is fenced): hold new
        // commands but keep the connection, so a pause that ends with the
        // same master costs the session nothing (not even its MULTI).
        if self.topology.master.is_none() || Some(backend.addr) == self.topology.master {
            return Ok(());
        }
        debug!(from = %backend.addr, to = ?self.topology.master, "switch");
        if self.shared.settings.on_switch == OnSwitch::Close {
            self.close_after_drain = true;
        }
        if self.ledger.counted() == 0 {
            self.finish_switch()
        } else {
            metrics::counter!(crate::metrics::SESSIONS_DRAINED).increment(1);
            self.draining_until = Some(Instant::now() + self.shared.settings.drain_timeout);
            Ok(())
        }
    }

    /// The old backend has nothing more to deliver: leave it.
    fn finish_switch(&mut self) -> Result<(), End> {
        self.draining_until = None;
        self.drop_backend();
        self.ledger.forget_backend();
        if self.close_after_drain {
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

    fn begin_shutdown(&mut self) {
        self.input = Input::Stopped;
        self.shutdown_until = Some(Instant::now() + self.shared.settings.drain_timeout);
    }

    /// The earliest instant the session must wake up without I/O.
    fn next_deadline(&self) -> Option<Instant> {
        let settings = &self.shared.settings;
        let hold = self.held_since.map(|t| t + settings.hold_timeout);
        let retry = match self.avoid {
            Some(Avoid::Unreachable(at))
                if self.held_since.is_some() || !self.ledger.state.subscriptions.is_empty() =>
            {
                Some(at)
            }
            _ => None,
        };
        let idle = self.backend.as_ref().and(self.idle_check_at);
        [hold, retry, idle, self.draining_until, self.shutdown_until]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_timer(&mut self) -> Result<(), End> {
        let now = Instant::now();
        if self.shutdown_until.is_some_and(|t| now >= t) {
            return Err(End::DrainTimeout);
        }
        if self.draining_until.is_some_and(|t| now >= t) {
            debug!("drain timeout on switch; closing the session");
            return Err(End::DrainTimeout);
        }
        if let Some(since) = self.held_since
            && now >= since + self.shared.settings.hold_timeout
        {
            self.refuse_held = true;
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

    fn drop_backend(&mut self) {
        release_backend(
            &self.shared.counters,
            &mut self.backend,
            &mut self.to_backend,
        );
    }

    /// Returns buffers before the session's memory is freed.
    fn release(&mut self) {
        self.flush_counters();
        if let Some(out) = self.to_client.as_mut() {
            out.clear();
        }
        bufpool::give_back_if_empty(&mut self.to_client);
        self.drop_backend();
        if let Some(buf) = self.cbuf.as_mut() {
            buf.clear();
        }
        bufpool::give_back_if_empty(&mut self.cbuf);
    }
}

/// The command kept at the front of `cbuf` for a retry after `-READONLY`
/// (`retained` bytes) is done with once nothing is in flight anymore.
fn release_retained(cbuf: &mut Option<BytesMut>, retained: &mut usize, in_flight: usize) {
    if *retained > 0 && in_flight == 0 {
        if let Some(cbuf) = cbuf.as_mut() {
            cbuf.advance(*retained);
        }
        *retained = 0;
    }
}

/// Lets go of the backend connection (or the session's place on a shared
/// one) and the output that was waiting for it.
fn release_backend(
    counters: &super::Counters,
    backend: &mut Option<Box<Backend>>,
    pending: &mut Option<BytesMut>,
) {
    if let Some(out) = pending.as_mut() {
        out.clear();
    }
    bufpool::give_back_if_empty(pending);
    if let Some(mut backend) = backend.take() {
        backend_gauge(counters, &backend).fetch_sub(1, Ordering::Relaxed);
        if let Some(buf) = backend.buf.as_mut() {
            buf.clear();
        }
        bufpool::give_back_if_empty(&mut backend.buf);
    }
}

/// The gauge that counts sessions bound the way `backend` is.
fn backend_gauge<'a>(counters: &'a super::Counters, backend: &Backend) -> &'a AtomicU64 {
    if backend.is_shared() {
        &counters.sessions_on_shared
    } else {
        &counters.own_backends
    }
}

/// Reads what is ready without waiting (`WouldBlock` if nothing is). Unlike
/// `try_read`, a short read clears the socket's readiness, which saves the
/// `EAGAIN` system call per request that a second attempt would cost.
async fn read_ready(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, buf) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => Poll::Ready(Err(io::ErrorKind::WouldBlock.into())),
        }
    })
    .await
}

/// The client's side of the session, for writing: its socket, the output
/// waiting for it, and the counter of bytes sent to clients.
struct ClientOut<'a> {
    counters: &'a super::Counters,
    stream: &'a TcpStream,
    pending: &'a mut Option<BytesMut>,
}

impl ClientOut<'_> {
    /// Sends `bytes` to the client after any output already waiting.
    fn send(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.counters.add_bytes_out(bytes.len());
        send(self.stream, self.pending, bytes).map_err(|_| End::Client)
    }
}

/// Sends `bytes` (commands that will get `replies` replies) to the backend,
/// after any output already waiting.
fn send_backend(
    backend: &Option<Box<Backend>>,
    pending: &mut Option<BytesMut>,
    bytes: &[u8],
    replies: u64,
) -> Result<(), End> {
    match backend.as_deref().map(|b| &b.conn) {
        Some(Conn::Own(stream)) => send(stream, pending, bytes).map_err(|_| End::BackendLost),
        Some(Conn::Shared { link, inbox }) => link
            .submit(bytes, replies, inbox)
            .map_err(|_| End::BackendLost),
        None => Err(End::BackendLost),
    }
}

/// Complete commands at the front of a session's input buffer, not sent yet.
#[derive(Debug, Default)]
struct Batch {
    /// They are `buf[..end]`.
    end: usize,
    /// Replies they will get.
    replies: u64,
}

impl Batch {
    /// Sends the batch to the backend and consumes it from `buf`.
    fn flush(
        &mut self,
        backend: &Option<Box<Backend>>,
        pending: &mut Option<BytesMut>,
        buf: &mut BytesMut,
    ) -> Result<(), End> {
        if self.end > 0 {
            send_backend(backend, pending, &buf[..self.end], self.replies)?;
            buf.advance(self.end);
            *self = Batch::default();
        }
        Ok(())
    }
}

/// Writes `bytes` now, after any output already waiting in `pending`; what the
/// socket does not take is kept in `pending` (a pooled buffer) and written
/// when the socket is writable again. Never waits, so the session's future
/// holds no write state: a copy is made only when a peer reads slowly.
fn send(stream: &TcpStream, pending: &mut Option<BytesMut>, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if let Some(out) = pending.as_mut() {
        out.extend_from_slice(bytes);
        return Ok(());
    }
    let written = match stream.try_write(bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if written < bytes.len() {
        let mut out = bufpool::take();
        out.extend_from_slice(&bytes[written..]);
        *pending = Some(out);
    }
    Ok(())
}

/// Writes as much of `pending` as the socket takes now.
fn flush_pending(stream: &TcpStream, pending: &mut Option<BytesMut>) -> io::Result<()> {
    if let Some(out) = pending.as_mut() {
        super::write_some(stream, out)?;
    }
    bufpool::give_back_if_empty(pending);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory per idle client is dominated by this future: keep it small
    /// (it was 2.3 kB before the rarely used state was boxed, and 1 kB before
    /// writes stopped awaiting and readiness was polled from the sockets).
    #[tokio::test]
    async fn session_future_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (writer, reader) = crate::switch::new(None, 0, &CancellationToken::new());
        let (hints, _rx) = crate::switch::hints();
        let shared = Arc::new(Shared {
            switch: reader,
            hints,
            commands: Default::default(),
            counters: Default::default(),
            links: Default::default(),
            settings: super::super::Settings {
                hold_timeout: Duration::from_secs(1),
                drain_timeout: Duration::from_secs(1),
                idle_release: None,
                on_switch: OnSwitch::Rebind,
                requirepass: None,
                backend_auth: None,
                share_backend: false,
                measure_latency: false,
            },
        });
        let future = run(client, shared, CancellationToken::new());
        let size = std::mem::size_of_val(&future);
        eprintln!(
            "session future: {size} bytes (Session {} bytes)",
            std::mem::size_of::<Session>()
        );
        drop(writer);
        assert!(size < 768, "session future is {size} bytes");
    }
}
