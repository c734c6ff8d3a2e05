//! The client listener: accepts connections up to `max_clients` and runs a
//! session for each, until shutdown.
//!
//! Shutdown has two steps, one token each: `stop_accepting` ends the accept
//! loop (the port stops taking clients), `shutdown` then tells the running
//! sessions to finish; the caller waits for them on the `TaskTracker`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use super::Shared;
use super::session;
use crate::accept::{Admission, Place, accept_until};
use crate::tls::{ServerTls, Stream};

/// Accepts clients on `listener` until `stop_accepting` is cancelled. Sessions
/// are spawned on `sessions` and told to finish when `shutdown` is cancelled.
/// With `tls`, each connection's handshake runs first, in its own task (a
/// client that fails it is logged and closed).
///
/// Admission is [`accept_until`]'s: at most `max_clients` sessions, Redis's
/// `-ERR max number of clients reached` for the next one, `TCP_NODELAY` on
/// every accepted socket. The `accepted`, `closed` and
/// `rejected_max_clients` counters feed the metrics.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_clients: usize,
    sessions: TaskTracker,
    stop_accepting: CancellationToken,
    shutdown: CancellationToken,
    tls: Option<Arc<ServerTls>>,
) {
    let admission = Admission {
        port: "client port",
        max_clients,
    };
    let counters = Arc::clone(&shared.counters);
    let refused = move || {
        counters
            .rejected_max_clients
            .fetch_add(1, Ordering::Relaxed);
    };
    let serve_one = |tcp, peer, place| {
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let connection = Accepted { tcp, peer, place };
        serve_client(
            connection,
            Arc::clone(&shared),
            shutdown.clone(),
            tls.clone(),
        )
    };
    accept_until(
        listener,
        admission,
        &sessions,
        &stop_accepting,
        refused,
        serve_one,
    )
    .await;
}

/// A connection just admitted: its socket, its peer, its place.
pub(crate) struct Accepted {
    /// The socket.
    pub(crate) tcp: TcpStream,
    /// The client's address (for logs).
    pub(crate) peer: SocketAddr,
    /// Its place among `max_clients`, freed when the session ends.
    pub(crate) place: Place,
}

/// The task of one client connection: the TLS handshake if the endpoint has
/// one, then the session. Spawned as it is (see [`accept_until`]); its size
/// is most of what an idle client costs.
pub(crate) async fn serve_client(
    connection: Accepted,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tls: Option<Arc<ServerTls>>,
) {
    let Accepted { tcp, peer, place } = connection;
    let _place = place;
    let client = match tls {
        None => Stream::Plain(tcp),
        // Boxed: the handshake's state (rustls's buffers) would otherwise be
        // part of every session's task, TLS or not.
        Some(tls) => match Box::pin(tls.accept(tcp)).await {
            Ok(client) => client,
            Err(error) => {
                warn!(%peer, %error, "TLS handshake failed");
                metrics::counter!(crate::metrics::TLS_HANDSHAKE_FAILURES).increment(1);
                shared.counters.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
    };
    session::run(client, Arc::clone(&shared), shutdown).await;
    shared.counters.closed.fetch_add(1, Ordering::Relaxed);
}
