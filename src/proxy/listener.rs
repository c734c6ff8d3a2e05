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

/// Accepts clients on `listener` until `stop_accepting` is cancelled. Sessions
/// are spawned on `sessions` and told to finish when `shutdown` is cancelled.
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
    let serve_one = |stream, _peer| {
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        async move {
            session::run(stream, Arc::clone(&shared), shutdown).await;
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
