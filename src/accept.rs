//! The accept loop both Redis-speaking ports share: the client port
//! ([`crate::proxy::listener`]) and the sentinel port
//! ([`crate::sentinel::api`]).
//!
//! What a port does with a connection is its own; how connections are
//! admitted is the same everywhere, as on Redis: at most `maxclients` at a
//! time, the next one told `-ERR max number of clients reached` and closed,
//! small replies never held back by Nagle's algorithm, and a failed `accept`
//! (out of file descriptors, say) answered by a short pause rather than a
//! busy loop. A TLS handshake comes after admission, in the connection's own
//! task ([`crate::tls::ServerTls::accept`]), so a slow one never stalls the
//! loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::resp::words::MAX_CLIENTS;

/// Pause after a failed `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long the refusal of a client over the limit may take to write
/// before its socket is closed anyway.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection's place among a port's `max_clients`: the task serving the
/// connection holds it, and dropping it frees the place.
pub type Place = OwnedSemaphorePermit;

/// One port's way of admitting connections.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    /// The port's name in logs (`client port`, `sentinel port`).
    pub port: &'static str,
    /// Connections served at once; the next is refused.
    pub max_clients: usize,
}

/// Accepts connections on `listener` until `stop` is cancelled, running
/// `serve(stream, peer, place)` for each on `tasks`; the future `serve`
/// returns must hold `place` until the connection is done (it is spawned as
/// it is: wrapping it in another future would store it twice, and a session
/// is mostly idle memory). A connection over the limit is refused (on
/// `tasks` as well, so that a shutdown waits for the refusal too) after
/// `on_refused` is called. Returns when `stop` is cancelled; the caller
/// waits on `tasks` for the connections still open.
pub async fn accept_until<S, F>(
    listener: TcpListener,
    admission: Admission,
    tasks: &TaskTracker,
    stop: &CancellationToken,
    on_refused: impl Fn(),
    mut serve: S,
) where
    S: FnMut(TcpStream, SocketAddr, Place) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let places = Arc::new(Semaphore::new(
        admission.max_clients.min(Semaphore::MAX_PERMITS),
    ));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                warn!(%error, port = admission.port, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
            debug!(%peer, port = admission.port, "refusing client: max clients reached");
            on_refused();
            tasks.spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(serve(stream, peer, place));
    }
}

/// Tells a client over the limit why it is closed, without waiting on it long.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, stream.write_all(MAX_CLIENTS)).await;
}
