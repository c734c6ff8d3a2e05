//! The sentinel port's sockets: the accept loop and one task per client.
//!
//! [`accept_loop`] admits up to `max_clients` connections (refusing the rest
//! with Redis's error) and, on shutdown, waits for every one to close. Each
//! [`Connection`] reads requests (multibulk and inline, pipelined), lets its
//! [`Session`] answer the connection-level ones, asks the core for the rest
//! ([`ask_core`], bounded by a timeout) and writes replies in request order.
//! While the session has subscriptions it also holds an event receiver and
//! queues `message` / `pmessage` frames.
//!
//! Back-pressure and limits: requests are not read or answered while more
//! than [`OUTPUT_HIGH`] bytes of replies wait for the client; a request over
//! [`MAX_REQUEST`] is a protocol error; a subscriber whose pending output
//! passes [`MAX_OUTPUT`], or that lags behind the event channel, is
//! disconnected rather than buffered.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::encode::{Shape, core_shape, put_core_reply, put_error};
use super::session::{Session, Step};
use super::{Event, MAX_OUTPUT, MAX_REQUEST, Request};
use crate::accept::{Admission, Place, accept_until};
use crate::resp::ProtocolError;
use crate::resp::request::{self, RequestScanner, Scanned};
use crate::resp::value::OwnedFrame;
use crate::tls::{ServerTls, Stream};

/// Pending output above which requests are not read or answered until the
/// client drains its replies.
const OUTPUT_HIGH: usize = 64 * 1024;

/// Room made in the input buffer before each read.
const READ_CHUNK: usize = 4096;

/// How long final replies (QUIT, protocol error, shutdown) may
/// take to write before the socket is closed anyway.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What every connection shares.
#[derive(Debug)]
pub(super) struct Shared {
    /// Where requests for the core go.
    pub(super) core: mpsc::Sender<Request>,
    /// Events for subscribers; a receiver exists only while a client subscribes.
    pub(super) events: broadcast::Sender<Event>,
    /// Who may log in (`ACL SETUSER`, `requirepass`).
    pub(super) users: std::sync::Mutex<super::acl::Users>,
    /// Which user each client is logged in as, by client id (for `CLIENT
    /// KILL USER` and `ACL DELUSER`).
    pub(super) logged_in: std::sync::Mutex<std::collections::HashMap<u64, String>>,
    /// Orders to close clients, by id; every connection listens.
    pub(super) kills: broadcast::Sender<std::sync::Arc<[u64]>>,
    /// Connection counts, for `INFO`.
    pub(super) stats: Arc<super::PortStats>,
    /// How long a client waits for the core ([`CORE_TIMEOUT`](super::CORE_TIMEOUT), shorter in tests).
    pub(super) core_timeout: Duration,
}

/// Accepts clients until `stop` ([`accept_until`]: at most `max_clients`,
/// Redis's refusal for the next), then waits for their connections to close.
pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_clients: usize,
    stop: CancellationToken,
    tls: Option<Arc<ServerTls>>,
) {
    let connections = TaskTracker::new();
    let admission = Admission {
        port: "sentinel port",
        max_clients,
    };
    let mut last_id = 0u64;
    let serve_one = |tcp, peer, place: Place| {
        last_id += 1;
        let (shared, stop, id, tls) = (Arc::clone(&shared), stop.clone(), last_id, tls.clone());
        let kills = shared.kills.subscribe();
        shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
        shared.stats.connected.fetch_add(1, Ordering::Relaxed);
        async move {
            let _place = place;
            let stream = match tls {
                None => Ok(Stream::Plain(tcp)),
                // Boxed: the handshake's state stays out of plain connections' tasks.
                Some(tls) => Box::pin(tls.accept(tcp)).await,
            };
            let end = match stream {
                Ok(stream) => Connection::new(id, kills).run(stream, &shared, &stop).await,
                Err(error) => {
                    warn!(%peer, %error, "sentinel port: TLS handshake failed");
                    metrics::counter!(crate::metrics::TLS_HANDSHAKE_FAILURES).increment(1);
                    End::ClientGone
                }
            };
            if let Ok(mut logged_in) = shared.logged_in.lock() {
                logged_in.remove(&id);
            }
            shared.stats.connected.fetch_sub(1, Ordering::Relaxed);
            debug!(%peer, id, ?end, "sentinel port: connection closed");
        }
    };
    accept_until(listener, admission, &connections, &stop, || {}, serve_one).await;
    connections.close();
    connections.wait().await;
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
    /// Closed by `CLIENT KILL` or `ACL DELUSER` (the reply to the client
    /// that asked is written first).
    Killed,
}

impl End {
    /// Whether pending replies are still worth writing before closing.
    fn flushes(self) -> bool {
        matches!(
            self,
            End::InputClosed | End::Quit | End::Protocol | End::Stopped | End::Killed
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
    /// Orders to close clients.
    kills: broadcast::Receiver<Arc<[u64]>>,
    /// The user last recorded in [`Shared::logged_in`] for this client.
    recorded_user: Option<String>,
}

impl Connection {
    /// A connection for client `id`, with empty buffers.
    fn new(id: u64, kills: broadcast::Receiver<Arc<[u64]>>) -> Connection {
        Connection {
            input: BytesMut::new(),
            output: BytesMut::new(),
            scanner: RequestScanner::default(),
            session: Session::new(id),
            events: None,
            kills,
            recorded_user: None,
        }
    }

    /// Serves `stream` until the client leaves, misbehaves, or `stop`.
    async fn run(mut self, stream: Stream, shared: &Shared, stop: &CancellationToken) -> End {
        // One reader and one writer over the (plain or TLS) connection.
        let (mut reader, mut writer) = tokio::io::split(stream);
        // Logged in from the start, so `CLIENT KILL USER` counts a client
        // that has not sent anything yet.
        if let Ok(users) = shared.users.lock() {
            self.session.admit(&users);
        }
        self.record_user(shared);
        let end = loop {
            if let Some(end) = self.answer_requests(shared, stop).await {
                break end;
            }
            if self.output.len() < OUTPUT_HIGH {
                self.input.reserve(READ_CHUNK);
            }
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
                // `CLIENT KILL` or `ACL DELUSER` on another connection.
                order = self.kills.recv() => {
                    if let Ok(ids) = order && ids.contains(&self.session.id()) {
                        break End::Killed;
                    }
                }
            }
        };
        if end.flushes() && !self.output.is_empty() {
            let flushed = async {
                writer.write_all(&self.output).await?;
                writer.flush().await
            };
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, flushed).await;
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
            let step = match shared.users.lock() {
                Ok(mut users) => self.session.handle(&args, &mut users, &mut self.output),
                Err(_) => {
                    put_error(&mut self.output, "ERR sentinel port unavailable");
                    return Some(End::Protocol);
                }
            };
            self.record_user(shared);
            match step {
                Step::Answered => {}
                Step::Close => return Some(End::Quit),
                Step::Kill { users, skip, count } => {
                    let victims: Vec<u64> = match shared.logged_in.lock() {
                        Ok(logged_in) => logged_in
                            .iter()
                            .filter(|(id, user)| Some(**id) != skip && users.contains(user))
                            .map(|(id, _)| *id)
                            .collect(),
                        Err(_) => Vec::new(),
                    };
                    if count {
                        let killed = i64::try_from(victims.len()).unwrap_or(i64::MAX);
                        put_core_reply(
                            &mut self.output,
                            Some(&mut OwnedFrame::Integer(killed)),
                            Shape::Plain,
                            self.session.protocol,
                        );
                    }
                    let me = victims.contains(&self.session.id());
                    let _ = shared.kills.send(victims.into());
                    if me {
                        return Some(End::Killed);
                    }
                }
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

    /// Keeps [`Shared::logged_in`] up to date with the session's user.
    fn record_user(&mut self, shared: &Shared) {
        if self.session.user == self.recorded_user {
            return;
        }
        self.recorded_user = self.session.user.clone();
        if let Ok(mut logged_in) = shared.logged_in.lock() {
            match &self.recorded_user {
                Some(user) => logged_in.insert(self.session.id(), user.clone()),
                None => logged_in.remove(&self.session.id()),
            };
        }
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
