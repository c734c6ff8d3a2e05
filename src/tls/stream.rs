//! A TCP connection, plain or under TLS, driven without waiting.
//!
//! The session reads what is ready and writes what the socket takes, never
//! holding a future across the two (see `proxy::session::io`). rustls is
//! used the same way, without an I/O adapter of its own: records are pulled
//! from the socket with `try_read`, decrypted in place, and the plaintext
//! copied once into the caller's buffer; plaintext to send is encrypted into
//! rustls's buffer and pushed with `try_write`. What rustls has encrypted
//! but the socket did not take yet is [`Stream::has_unsent`]: the caller
//! waits for writability while it is there, exactly as for its own
//! pending output.
//!
//! [`Stream`] also implements `AsyncRead` and `AsyncWrite`, for the places
//! that copy bytes both ways (a replication stream after `SYNC`).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A client or server connection: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (boxed: its buffers are large and most connections are plain).
    Tls(Box<TlsStream>),
}

/// A TCP connection and its rustls state.
pub struct TlsStream {
    tcp: TcpStream,
    tls: rustls::Connection,
    /// Plaintext decrypted and not read yet.
    buffered: usize,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .field("buffered", &self.buffered)
            .finish_non_exhaustive()
    }
}

/// The socket as rustls's blocking `Read`/`Write`, made non-blocking:
/// `WouldBlock` instead of waiting (and the socket's readiness cleared).
struct NoWait<'a>(&'a TcpStream);

impl Read for NoWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NoWait<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS failure as an I/O error (the peer's data or certificate was refused).
fn refused(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl TlsStream {
    /// Completes the handshake of a new connection.
    pub(super) async fn handshake(tcp: TcpStream, tls: rustls::Connection) -> io::Result<Self> {
        let mut stream = TlsStream {
            tcp,
            tls,
            buffered: 0,
        };
        loop {
            while stream.tls.wants_write() {
                match stream.tls.write_tls(&mut NoWait(&stream.tcp)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        stream.tcp.writable().await?
                    }
                    Err(e) => return Err(e),
                }
            }
            if !stream.tls.is_handshaking() {
                return Ok(stream);
            }
            match stream.tls.read_tls(&mut NoWait(&stream.tcp)) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed during the TLS handshake",
                    ));
                }
                Ok(_) => stream.decrypt()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.tcp.readable().await?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Processes the records read so far; on a TLS error, the alert rustls
    /// prepared is sent (best effort) before the error is returned.
    fn decrypt(&mut self) -> io::Result<()> {
        match self.tls.process_new_packets() {
            Ok(state) => {
                self.buffered = state.plaintext_bytes_to_read();
                Ok(())
            }
            Err(error) => {
                let _ = self.tls.write_tls(&mut NoWait(&self.tcp));
                Err(refused(error))
            }
        }
    }

    /// Pulls records from the socket until decrypted bytes are ready, without
    /// waiting: how many there are, `Ok(0)` at the end (a `close_notify`, or
    /// the socket closed), `WouldBlock` when none are ready yet.
    fn fill(&mut self) -> io::Result<usize> {
        loop {
            if self.buffered > 0 {
                return Ok(self.buffered);
            }
            if self.tls.read_tls(&mut NoWait(&self.tcp))? == 0 {
                return Ok(0);
            }
            self.decrypt()?;
            // Records that carry no data (a key update, a ticket) may call
            // for an answer; it goes with the next write if not now.
            self.push_unsent()?;
            if self.buffered == 0 {
                // A close_notify ends the stream; anything else waits for more.
                match self.tls.reader().read(&mut [0u8; 1]) {
                    Ok(_) => return Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Copies up to `out.len()` decrypted bytes (as many as [`Self::fill`]
    /// made ready) into `out`.
    fn take(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.tls.reader().read(out)?;
        self.buffered -= n.min(self.buffered);
        Ok(n)
    }

    /// Writes encrypted bytes rustls holds to the socket until it takes no
    /// more; returns whether all of them are out.
    fn push_unsent(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut NoWait(&self.tcp)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Encrypts what rustls accepts of `bytes` and sends what the socket
    /// takes. `WouldBlock` while earlier records are still unsent.
    fn write_now(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if !self.push_unsent()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.tls.writer().write(bytes)?;
        self.push_unsent()?;
        Ok(n)
    }
}

impl Stream {
    /// Polls until the socket may have bytes to read (at once when TLS
    /// holds decrypted bytes already).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(tcp) => tcp.poll_read_ready(cx),
            Stream::Tls(t) if t.buffered > 0 => Poll::Ready(Ok(())),
            Stream::Tls(t) => t.tcp.poll_read_ready(cx),
        }
    }

    /// Polls until the socket may take more bytes.
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(tcp) => tcp.poll_write_ready(cx),
            Stream::Tls(t) => t.tcp.poll_write_ready(cx),
        }
    }

    /// Waits until the socket may take more bytes.
    pub async fn writable(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Writes what the connection takes of `bytes` now, without waiting
    /// (`WouldBlock` if nothing). Under TLS, bytes taken may still wait in
    /// rustls ([`Stream::has_unsent`]).
    pub fn try_write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.try_write(bytes),
            Stream::Tls(t) => t.write_now(bytes),
        }
    }

    /// Whether bytes already taken still wait to go out (TLS records the
    /// socket did not take): the caller must wait for writability and call
    /// [`Stream::push_unsent`].
    pub fn has_unsent(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.tls.wants_write(),
        }
    }

    /// Sends what waits in [`Stream::has_unsent`]; returns whether all of it
    /// is out.
    pub fn push_unsent(&mut self) -> io::Result<bool> {
        match self {
            Stream::Plain(_) => Ok(true),
            Stream::Tls(t) => t.push_unsent(),
        }
    }

    /// Writes what the connection takes of `output` now, without waiting,
    /// and consumes it from `output`.
    pub fn write_some(&mut self, output: &mut BytesMut) -> io::Result<()> {
        if !self.push_unsent()? {
            return Ok(());
        }
        while !output.is_empty() {
            match self.try_write(output) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => output.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what is ready into `buf`'s spare room, without waiting: how
    /// many bytes, `Ok(0)` at the end (or with no spare room), `WouldBlock`
    /// when nothing is ready.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.try_read_buf(buf),
            Stream::Tls(t) => {
                let ready = t.fill()?;
                let start = buf.len();
                // Only as much room is zeroed as there is plaintext.
                buf.resize(start + ready.min(buf.capacity() - start), 0);
                let taken = t.take(&mut buf[start..]);
                buf.truncate(start + *taken.as_ref().unwrap_or(&0));
                taken
            }
        }
    }

    /// Whether this connection is under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(t) => loop {
                match t.fill() {
                    Ok(0) => return Poll::Ready(Ok(())),
                    Ok(ready) => {
                        // Only as much room is zeroed as there is plaintext.
                        let out = buf.initialize_unfilled_to(buf.remaining().min(ready));
                        let n = t.take(out)?;
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(t.tcp.poll_read_ready(cx))?;
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, bytes),
            Stream::Tls(t) => loop {
                match t.write_now(bytes) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        ready!(t.tcp.poll_write_ready(cx))?;
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(t) => loop {
                if t.push_unsent()? {
                    return Poll::Ready(Ok(()));
                }
                ready!(t.tcp.poll_write_ready(cx))?;
            },
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(t) => {
                t.tls.send_close_notify();
                loop {
                    if t.push_unsent()? {
                        return Pin::new(&mut t.tcp).poll_shutdown(cx);
                    }
                    ready!(t.tcp.poll_write_ready(cx))?;
                }
            }
        }
    }
}
