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
//! this module build RESP2 frames; what RESP2 leaves unsaid (this flat array is
//! a map, that one a push, this null a null array) is a `Shape`, and
//! `put_frame` is the one place where a frame, its shape and the connection's
//! `Protocol` become bytes (all three in `encode.rs`). In RESP3 maps are `%`,
//! pub/sub confirmations and messages are `>` pushes, nulls are `_`, and a
//! subscribed client may run any command.
//!
//! What it does not do: it knows nothing about masters, replicas or failovers
//! beyond which of the core's replies Sentinel sends as maps (`core_shape`).
//!
//! # Layout
//! * this file: what the rest of the proxy sees ([`serve`], [`Request`],
//!   [`Event`], [`Options`], the limits) and the replies made here;
//! * `connection.rs`: the accept loop and one task per client (reading,
//!   framing, asking the core, delivering events, back-pressure);
//! * `session.rs`: the connection-level commands, pure (no I/O);
//! * `encode.rs`: RESP2/RESP3 encoding of frames and the shapes of core replies;
//! * `glob.rs`: `PSUBSCRIBE` pattern matching;
//! * `commands.rs`: the commands the port knows (`COMMAND COUNT/LIST`) and
//!   their arities.
//!
//! Invariants:
//! * replies leave in request order; a client waits for the core at most
//!   [`CORE_TIMEOUT`] per command and is then told the core is unavailable;
//! * memory per client is bounded: a request over [`MAX_REQUEST`] is a protocol
//!   error, and a subscriber whose pending output passes [`MAX_OUTPUT`] (or that
//!   lags behind the event channel) is disconnected rather than buffered;
//! * nothing here panics on network input.

mod acl;
mod commands;
mod connection;
mod encode;
mod glob;
mod session;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use self::connection::{Shared, accept_loop};
pub use self::glob::glob_match;
use crate::resp::value::OwnedFrame;
use crate::tls::ServerTls;

/// Largest single request accepted; sentinel commands are tiny.
pub const MAX_REQUEST: usize = 1024 * 1024;

/// Pending output at which a subscriber is disconnected rather than buffered.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// `CLIENT KILL` orders a connection may fall behind on before it misses one.
const KILL_ORDERS: usize = 64;

/// How long a client waits for the core to answer one command.
pub const CORE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Where the port counts its connections (for `INFO`).
    pub stats: Arc<PortStats>,
}

/// The sentinel port's connection counts, as `INFO` shows them
/// (`connected_clients`, `total_connections_received`).
#[derive(Debug, Default)]
pub struct PortStats {
    /// Connections accepted since start.
    pub accepted: std::sync::atomic::AtomicU64,
    /// Connections open now.
    pub connected: std::sync::atomic::AtomicU64,
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

/// Replies this server makes itself, in Redis's words. Shared by the
/// connection-level commands ([`session`]), the connection task
/// ([`connection`]) and the core's replies ([`encode`]).
mod replies {
    pub use crate::resp::words::{
        AUTH_UNCONFIGURED, BAD_NAME, BAD_PROTOCOL, NOAUTH, NOAUTH_HELLO, NOPROTO, OK, PONG,
        WRONGPASS,
    };

    /// `RESET`.
    pub const RESET: &[u8] = b"+RESET\r\n";
    /// The core did not answer (gone, or slower than the timeout).
    pub const CORE_UNAVAILABLE: &[u8] = b"-ERR sentinel core unavailable\r\n";
}

/// Serves the sentinel port on `listener` until `stop` is cancelled; then stops
/// accepting, closes every connection (each finishes the command in progress
/// first) and returns once they are all gone.
pub async fn serve(
    listener: Option<TcpListener>,
    tls: Option<(TcpListener, Arc<ServerTls>)>,
    core: mpsc::Sender<Request>,
    events: broadcast::Sender<Event>,
    options: Options,
    stop: CancellationToken,
) {
    let (kills, _) = broadcast::channel(KILL_ORDERS);
    let shared = Arc::new(Shared {
        core,
        events,
        stats: options.stats,
        users: std::sync::Mutex::new(acl::Users::new(options.requirepass.as_deref())),
        logged_in: Default::default(),
        kills,
        core_timeout: CORE_TIMEOUT,
    });
    let tls_port = tls.map(|(listener, tls)| {
        let (shared, stop) = (Arc::clone(&shared), stop.clone());
        tokio::spawn(async move {
            accept_loop(listener, shared, options.max_clients, stop, Some(tls)).await;
        })
    });
    match listener {
        Some(listener) => accept_loop(listener, shared, options.max_clients, stop, None).await,
        None => stop.cancelled().await,
    }
    if let Some(tls_port) = tls_port {
        let _ = tls_port.await;
    }
}
