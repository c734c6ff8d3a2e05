//! One client connection and its way to the master: a backend connection of
//! its own, or (`--share-backend`, while the session is in Redis's default
//! connection state) a place on a connection shared with other sessions
//! ([`shared`](super::shared)).
//!
//! The session is a single task running one event loop (`serve`, which waits
//! in `next_event`) over: shutdown, a new topology (the current snapshot's
//! `retired` future), output waiting to be written, backend readable, client
//! readable, and one timer (hold, drain, retry, idle release). What a command
//! does to the session comes from [`state::decide`](super::state::decide),
//! which reply answers which command from
//! [`Ledger::route`](super::ledger::Ledger::route); the session moves the
//! bytes and decides, per connection, when to bind, hold, switch, drain and end.
//!
//! Bytes are forwarded as received, straight from the read buffer: complete
//! requests are batched into one write to the backend (one submission on a
//! shared connection), complete replies into one write to the client. Buffers
//! are borrowed from [`bufpool`] only while they hold bytes.
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
//!
//! The session's parts, one job per file, each an `impl Session` block:
//! * this file: the session's state, its event loop (`serve`, `next_event`,
//!   `settle`) and its end (`close`);
//! * `input`: reading and framing client requests, and forwarding, holding or
//!   refusing them (`pump`);
//! * `bind`: binding to the current master (or, on a read endpoint, a
//!   replica) and restoring the session's state there; letting go of a backend;
//! * `target`: which node that is;
//! * `replies`: routing replies through the ledger, the `-READONLY` check, a
//!   lost backend;
//! * `retry`: which commands a demoted master refused may run again;
//! * `phase`: a new topology, the drain of a switch, the hold, retry and idle
//!   timers, shutdown;
//! * `pipe`: the byte pipe after SYNC/PSYNC;
//! * `io`: writes that never wait, to either socket, and the output they leave
//!   pending.

mod bind;
mod input;
mod io;
mod phase;
mod pipe;
mod replies;
mod retry;
mod target;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::debug;

use self::input::Input;
use self::io::flush_to;
use self::replies::ReadOnlyReply;
use super::Shared;
use super::bufpool;
use super::ledger::Ledger;
use super::shared::{Inbox, Link};
use crate::resp::reply::ReplyScanner;
use crate::resp::request::RequestScanner;
use crate::switch::Topology;
use crate::tls::Stream;

/// Commands counted locally before they are added to the shared counters.
const COUNTER_FLUSH: u32 = 256;

/// Pause before retrying a master that refused a connection.
const RETRY_DELAY: Duration = Duration::from_millis(200);

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
    /// Bytes still to come of a large bulk reply that is passed on as it
    /// arrives (its ledger entry is settled once the last byte is through).
    streaming: usize,
    /// The client's half-close was passed on (`shutdown(Write)`): Redis
    /// itself now ends the connection, exactly as it would a direct client's,
    /// unblocking a blocked command instead of leaving it to take the next item.
    write_shut: bool,
    /// A place among a read endpoint's replicas is held on `addr`.
    read_place: bool,
}

/// How a session reaches its master.
enum Conn {
    /// A connection of its own (1:1).
    Own(Stream),
    /// A connection shared with other stateless sessions (`--share-backend`).
    Shared {
        /// The shared connection.
        link: Arc<Link>,
        /// Where it leaves this session's replies.
        inbox: Arc<Inbox>,
    },
}

impl Backend {
    /// Whether the session is on a shared connection.
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

/// Where a session stands towards its master and the proxy's life: one of
/// these at a time, each with the deadline that bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Forwarding to the current master (bound, or binding at the next
    /// command).
    Serving,
    /// The master changed while replies were in flight: they are awaited
    /// from the old one until `until`, and nothing new is sent meanwhile.
    Draining {
        /// When the drain gives up and the session ends.
        until: Instant,
    },
    /// The proxy is stopping: nothing more is forwarded, and the replies in
    /// flight are awaited until `until`.
    ShuttingDown {
        /// When the session ends whatever is still in flight.
        until: Instant,
    },
    /// SYNC/PSYNC went out: the session is a replication stream, passed on
    /// unread both ways until either side closes (`pipe`).
    Piping,
}

impl Phase {
    /// The instant this phase ends the session at, if it has one.
    fn deadline(self) -> Option<Instant> {
        match self {
            Phase::Draining { until } | Phase::ShuttingDown { until } => Some(until),
            Phase::Serving | Phase::Piping => None,
        }
    }
}

/// Commands that wait in the input buffer for a master that may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Hold {
    /// When the first of them started waiting (the hold timeout counts from
    /// here).
    since: Instant,
    /// The wait is for a usable master (none, or the current one avoided),
    /// not just for a first connection: it was counted as a hold, and its
    /// length is recorded when it ends.
    counted: bool,
    /// The hold timeout passed: the next `pump` answers the held commands
    /// with `-MASTERDOWN`.
    expired: bool,
}

/// One client session.
struct Session {
    /// Settings, topology, counters and links shared by every session.
    shared: Arc<Shared>,
    /// The client's connection (plain, or TLS on `--tls-listen`).
    client: Stream,
    /// Client bytes not yet forwarded (plus, at its front, `retained` bytes of
    /// the batch in flight, kept for a retry after `-READONLY`).
    cbuf: Option<BytesMut>,
    /// Frames the client's requests (keeps its place in an incomplete one).
    requests: RequestScanner,
    /// Length of the batch kept at the front of `cbuf` for a retry.
    retained: usize,
    /// Boxed: most of a session's life is spent idle, where it should be small.
    backend: Option<Box<Backend>>,
    /// The topology the session last saw.
    topology: Arc<Topology>,
    /// Which reply answers which command, and the session's connection state.
    ledger: Ledger,
    /// The client passed the proxy's `requirepass` (or there is none).
    authenticated: bool,
    /// Where the client's input stands.
    input: Input,
    /// Serving, draining a switch, shutting down, or piping.
    phase: Phase,
    /// Commands waiting for a master that may be used, if any.
    hold: Option<Hold>,
    /// Why the current master may not be bound right now.
    avoid: Option<Avoid>,
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
    /// A `-READONLY` reply waits at the front of the backend buffer until
    /// `ROLE` tells whether the master was demoted.
    readonly: Option<ReadOnlyReply>,
}

/// Serves one client until it or the proxy is done.
pub async fn run(client: Stream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut session = Session::new(client, shared);
    let end = session.serve(shutdown).await;
    debug!(reason = ?end, "session ended");
}

impl Session {
    /// A session for a client just accepted: unbound, reading, and in
    /// Redis's default connection state.
    fn new(client: Stream, shared: Arc<Shared>) -> Session {
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
            phase: Phase::Serving,
            hold: None,
            avoid: None,
            last_active: Instant::now(),
            idle_check_at: None,
            counted_commands: [0; 7],
            bound_generation: 0,
            to_client: None,
            to_backend: None,
            finish_when_flushed: false,
            own_connection,
            used_shared: false,
            readonly: None,
        }
    }

    /// Adds the local per-class counts to the shared counters.
    fn flush_counters(&mut self) {
        self.shared.counters.add(&self.counted_commands);
        self.counted_commands = [0; 7];
    }

    /// The event loop: settle, arm the one timer, wait for the next event,
    /// act on it; until something ends the session, which then closes.
    async fn serve(&mut self, shutdown: CancellationToken) -> End {
        // The topology's `retired` future also fires when `shutdown` is
        // cancelled (the switch's snapshots are its children): one wait for both.
        let mut retired = Box::pin(self.topology.retired());
        let mut timer: Option<Pin<Box<Sleep>>> = None;
        // When the last client read happened, for the request latency.
        let mut read_at: Option<Instant> = None;
        loop {
            if self.backend.as_deref().is_some_and(|b| b.streaming > 0) {
                // A large value passing through lets the worker go between
                // two of its reads: the other sessions there get their turn
                // instead of waiting behind megabytes of copying.
                tokio::task::yield_now().await;
            }
            let in_flight = self.ledger.counted();
            if let Err(end) = self.settle().await {
                return Box::pin(self.close(end)).await;
            }
            if self.phase == Phase::Piping {
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
                    flush_to(&mut self.client, &mut self.to_client).map_err(|_| End::Client)
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
            if !matches!(self.phase, Phase::ShuttingDown { .. })
                && retired.as_mut().poll(cx).is_ready()
            {
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
                        if ready.is_err() || flush_to(&mut self.client, &mut self.to_client).is_err() {
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
            let refuse = self
                .hold
                .as_mut()
                .is_some_and(|hold| std::mem::take(&mut hold.expired));
            let need_backend = self.pump(refuse)?;
            self.emit_locals()?;
            // Boxed: connecting is rare, and its state would otherwise bloat
            // every idle session's future.
            if !need_backend || !Box::pin(self.bind()).await? {
                break;
            }
        }
        if self.phase == Phase::Piping {
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
