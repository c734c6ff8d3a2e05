//! Opening backend connections with a deadline, plain or under TLS.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::reply::{self, ReplyScanner};
use crate::tls::{ClientTls, Stream};

/// How long a connection attempt may take before the node counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// How connections to Redis servers (and peer Sentinels) are opened: plain
/// TCP, or TLS with the proxy's client settings (`tls_backend`). One value
/// for the whole process, cloned wherever a connection is opened, so that
/// sessions, shared links and the control path reach a server the same way.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<ClientTls>>,
}

impl Dialer {
    /// Connections under TLS with `tls`.
    pub fn tls(tls: Arc<ClientTls>) -> Dialer {
        Dialer { tls: Some(tls) }
    }

    /// Whether connections are made under TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects to `addr` (known by `name`, if it has one: under TLS, the
    /// name its certificate is checked against), handshake included, within
    /// `timeout`, with Nagle's algorithm off (replies to small commands must
    /// not wait for more data).
    pub async fn dial(
        &self,
        addr: SocketAddr,
        name: Option<&str>,
        timeout: Duration,
    ) -> io::Result<Stream> {
        let started = tokio::time::Instant::now();
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        tcp.set_nodelay(true)?;
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let secured = async {
            let mut stream = tls.connect(tcp, addr.ip(), name).await?;
            // Under TLS 1.3 a server refuses the proxy's certificate (or
            // its lack of one) only after the handshake: one PING shows the
            // refusal here, where it is reported, not at a client's command.
            ping(&mut stream).await?;
            Ok(stream)
        };
        let left = timeout.saturating_sub(started.elapsed());
        let result = match tokio::time::timeout(left, secured).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake not completed in time",
            )),
        };
        if let Err(error) = &result {
            tls.report_refusal(addr, error);
        }
        result
    }
}

/// Whether a server answers at `addr` within `timeout`: it accepts a
/// connection *and* replies to `PING` (any reply counts, even `-NOAUTH`). A
/// completed connect alone proves nothing: a server that is being killed
/// still completes handshakes from its listen backlog for a moment.
pub async fn answers(dialer: &Dialer, addr: SocketAddr, timeout: Duration) -> bool {
    let check = async {
        let mut stream = dialer.dial(addr, None, timeout).await?;
        ping(&mut stream).await
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Ok(())))
}

/// Sends `PING` on a connection nothing else uses yet and reads the one
/// reply line (any reply counts, `-NOAUTH` too), leaving the connection clean.
pub async fn ping(stream: &mut Stream) -> io::Result<()> {
    stream.write_all(b"PING\r\n").await?;
    stream.flush().await?;
    // Nothing else is in flight, so whatever arrives is this one reply.
    let mut reply = [0u8; 64];
    loop {
        let n = stream.read(&mut reply).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if reply[..n].ends_with(b"\n") {
            return Ok(());
        }
    }
}

/// Whether the node at `addr` still says it is a master (`ROLE`), asked on a
/// new connection that first sends `auth` (a ready AUTH frame) if given.
/// `None` when it does not answer in time or answers something else (an
/// error, a broken reply): the caller cannot tell.
///
/// Sessions ask this when a master answers `-READONLY`: a demoted node says
/// `slave`, while a live master may send that error for its own reasons (a
/// script's `redis.error_reply`, `DEBUG ERROR`), and then it is the client's.
pub async fn is_master(
    dialer: &Dialer,
    addr: SocketAddr,
    auth: Option<&[u8]>,
    timeout: Duration,
) -> Option<bool> {
    match tokio::time::timeout(timeout, ask_role(dialer, addr, auth)).await {
        Ok(Ok(verdict)) => verdict,
        _ => None,
    }
}

/// `ROLE` on a new connection: whether its first word is `master` (`None`
/// if the reply has no such word, e.g. an error).
async fn ask_role(
    dialer: &Dialer,
    addr: SocketAddr,
    auth: Option<&[u8]>,
) -> io::Result<Option<bool>> {
    let mut stream = dialer.dial(addr, None, CONNECT_TIMEOUT).await?;
    let mut request = Vec::with_capacity(64);
    request.extend_from_slice(auth.unwrap_or_default());
    request.extend_from_slice(b"*1\r\n$4\r\nROLE\r\n");
    stream.write_all(&request).await?;
    stream.flush().await?;
    let mut buf = bytes::BytesMut::with_capacity(512);
    let mut scanner = ReplyScanner::default();
    // The AUTH reply comes first; an error there shows again as ROLE's reply.
    let mut skip = usize::from(auth.is_some());
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        while let Some(reply) = scanner
            .scan(&buf)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?
        {
            let frame = buf.split_to(reply.len);
            if skip > 0 {
                skip -= 1;
                continue;
            }
            return Ok(reply::first_word(&frame).map(|(word, _)| word == b"master"));
        }
        if buf.len() > 64 * 1024 {
            return Err(io::ErrorKind::InvalidData.into());
        }
    }
}
