//! The client listener: accepts connections up to `max_clients` and runs a
//! session for each, until shutdown.
//!
//! Shutdown has two steps, one token each: `stop_accepting` ends the accept
//! loop (the port stops taking clients), `shutdown` then tells the running
//! sessions to finish; the caller waits for them on the `TaskTracker`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::Shared;
use super::session;
use super::state::replies;

/// Accepts clients on `listener` until `stop_accepting` is cancelled. Sessions
/// are spawned on `sessions` and told to finish when `shutdown` is cancelled.
///
/// One semaphore permit per session caps them at `max_clients`; a client
/// over the cap gets Redis's `-ERR max number of clients reached` (from a
/// task of its own, so a slow reader cannot stall the loop) and is closed.
/// A failed `accept` (out of file descriptors, say) pauses the loop for
/// 50 ms. Accepted sockets get `TCP_NODELAY`, so that small replies are not
/// held back by Nagle's algorithm. The `accepted`, `closed` and
/// `rejected_max_clients` counters feed the metrics.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_clients: usize,
    sessions: TaskTracker,
    stop_accepting: CancellationToken,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_clients));
    loop {
        let accepted = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                // EMFILE and friends: back off briefly rather than spin.
                warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            debug!(%peer, "refusing client: max_clients reached");
            shared
                .counters
                .rejected_max_clients
                .fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = stream.write_all(replies::MAX_CLIENTS).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        sessions.spawn(async move {
            session::run(stream, Arc::clone(&shared), shutdown).await;
            shared.counters.closed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}
