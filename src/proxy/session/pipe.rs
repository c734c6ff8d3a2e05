//! The session after SYNC or PSYNC: a byte pipe between the client and its
//! own backend connection.
//!
//! A replication stream is not a sequence of replies, so from here on nothing
//! is framed, routed or counted per command: bytes are copied both ways until
//! either side closes, and only a switch to another master (or shutdown) ends
//! the pipe early. A shared connection never becomes a pipe: SYNC needs a
//! connection of the session's own.

use std::pin::Pin;

use tokio::io::AsyncWriteExt;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::debug;

use super::{Conn, End, Session};

impl Session {
    /// The session after SYNC/PSYNC: a replication stream (an RDB payload,
    /// then the master's commands, with bare newlines as keep-alives) is not a
    /// sequence of replies, so bytes pass both ways unread from here on, each
    /// side's close passed on to the other. The stream belongs to the master
    /// it started on: a switch to another master ends it, as a replica's link
    /// ends when its master goes away.
    pub(super) async fn pipe(
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
                stream.flush().await.map_err(|_| End::BackendLost)?;
            }
            for out in [self.to_client.take(), early].into_iter().flatten() {
                counters.add_bytes_out(out.len());
                self.client.write_all(&out).await.map_err(|_| End::Client)?;
            }
            // Under TLS, records rustls still holds (and, after an empty
            // `to_client`, records an earlier write left) go out now.
            self.client.flush().await.map_err(|_| End::Client)?;
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
}
