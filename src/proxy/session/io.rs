//! The session's low-level I/O: reads that take only what is ready, and
//! writes that never wait.
//!
//! A write goes to the socket at once; what the socket does not take is kept
//! in a pooled buffer (`to_client`, `to_backend`) and written when the socket
//! is writable again, and while any waits the session stops reading the other
//! side. So the session's future holds no write state, and a copy is made
//! only when a peer reads slowly. Commands for a shared connection are handed
//! to its link instead of written.

use std::io;
use std::pin::Pin;
use std::task::Poll;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncRead;
use tokio::net::TcpStream;

use super::{Backend, Conn, End, Session};
use crate::proxy::{Counters, bufpool};
use crate::tls::Stream;

impl Session {
    /// Where replies to the client go.
    pub(super) fn client_out(&mut self) -> ClientOut<'_> {
        ClientOut {
            counters: &self.shared.counters,
            stream: &mut self.client,
            pending: &mut self.to_client,
        }
    }

    /// Writes what the backend's socket takes of the waiting output.
    pub(super) fn flush_to_backend(&mut self) -> Result<(), End> {
        let Some(Conn::Own(stream)) = self.backend.as_deref_mut().map(|b| &mut b.conn) else {
            bufpool::give_back_if_empty(&mut self.to_backend);
            return Ok(());
        };
        flush_to(stream, &mut self.to_backend).map_err(|_| End::BackendLost)
    }
}

/// Reads what is ready without waiting (`WouldBlock` if nothing is). Unlike
/// `try_read`, a short read clears the socket's readiness, which saves the
/// `EAGAIN` system call per request that a second attempt would cost.
pub(super) async fn read_ready<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> io::Result<usize> {
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
pub(super) struct ClientOut<'a> {
    /// Where the bytes sent to clients are counted.
    pub(super) counters: &'a Counters,
    /// The client's connection.
    pub(super) stream: &'a mut Stream,
    /// Output the socket did not take yet (the session's `to_client`).
    pub(super) pending: &'a mut Option<BytesMut>,
}

impl ClientOut<'_> {
    /// Sends `bytes` to the client after any output already waiting.
    pub(super) fn send(&mut self, bytes: &[u8]) -> Result<(), End> {
        self.counters.add_bytes_out(bytes.len());
        send_to(self.stream, self.pending, bytes).map_err(|_| End::Client)
    }
}

/// Sends `bytes` (commands that will get `replies` replies) to the backend,
/// after any output already waiting.
pub(super) fn send_backend(
    backend: &mut Option<Box<Backend>>,
    pending: &mut Option<BytesMut>,
    bytes: &[u8],
    replies: u64,
) -> Result<(), End> {
    match backend.as_deref_mut().map(|b| &mut b.conn) {
        Some(Conn::Own(stream)) => send_to(stream, pending, bytes).map_err(|_| End::BackendLost),
        Some(Conn::Shared { link, inbox }) => link
            .submit(bytes, replies, inbox)
            .map_err(|_| End::BackendLost),
        None => Err(End::BackendLost),
    }
}

/// Complete commands in a session's input buffer, not sent yet: after the
/// retained bytes at its front (sent already, kept for a retry), if any.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// Where they start: the retained bytes end here.
    pub(super) start: usize,
    /// They are `buf[start..end]`.
    pub(super) end: usize,
    /// Replies they will get.
    pub(super) replies: u64,
}

impl Batch {
    /// An empty batch after `retained` bytes.
    pub(super) fn after(retained: usize) -> Batch {
        Batch {
            start: retained,
            end: retained,
            replies: 0,
        }
    }

    /// Whether it holds no command.
    pub(super) fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Sends the batch to the backend and consumes it from `buf`, with the
    /// retained bytes before it: once something else is in flight they can
    /// no longer be retried (the caller stops counting them as retained).
    pub(super) fn flush(
        &mut self,
        backend: &mut Option<Box<Backend>>,
        pending: &mut Option<BytesMut>,
        buf: &mut BytesMut,
    ) -> Result<(), End> {
        if !self.is_empty() {
            send_backend(backend, pending, &buf[self.start..self.end], self.replies)?;
        }
        buf.advance(self.end);
        *self = Batch::default();
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

/// As `send`, to the client's or the backend's connection: under TLS, bytes
/// rustls took but the socket did not yet are output waiting too (an empty
/// `pending` buffer keeps the session waiting for writability until they
/// are out).
fn send_to(stream: &mut Stream, pending: &mut Option<BytesMut>, bytes: &[u8]) -> io::Result<()> {
    if let Stream::Plain(tcp) = stream {
        return send(tcp, pending, bytes);
    }
    if bytes.is_empty() {
        return Ok(());
    }
    if let Some(out) = pending.as_mut() {
        out.extend_from_slice(bytes);
        return Ok(());
    }
    let mut written = 0;
    while written < bytes.len() {
        match stream.try_write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if written < bytes.len() || stream.has_unsent() {
        let mut out = bufpool::take();
        out.extend_from_slice(&bytes[written..]);
        *pending = Some(out);
    }
    Ok(())
}

/// Writes as much of `pending` as the connection takes now (under TLS,
/// records rustls still holds go first, and keep `pending` until they are
/// out).
pub(super) fn flush_to(stream: &mut Stream, pending: &mut Option<BytesMut>) -> io::Result<()> {
    if let Some(out) = pending.as_mut() {
        stream.write_some(out)?;
        if out.is_empty() && stream.has_unsent() && !stream.push_unsent()? {
            return Ok(());
        }
    }
    bufpool::give_back_if_empty(pending);
    Ok(())
}
