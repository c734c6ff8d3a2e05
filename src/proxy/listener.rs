//! The client listener: accepts connections up to `max_clients` and runs a
//! session for each, until shutdown.
//!
//! Shutdown has two steps, one token each: `stop_accepting` ends the accept
//! loop (the port stops taking clients), `shutdown` then tells the running
//! sessions to finish; the caller waits for them on the `TaskTracker`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::session;
use crate::accept::{Admission, accept_until};
use crate::tls::{ServerTls, Stream};
use tracing::warn;

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
    let serve_one = |tcp, peer| {
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        async move {
            let client = match tls {
                None => Stream::Plain(tcp),
                Some(tls) => match tls.accept(tcp).await {
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
