//! Opening backend connections with a deadline.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a connection attempt may take before the node counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Connects to `addr` within `timeout`, with Nagle's algorithm off (replies to
/// small commands must not wait for more data).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Whether a server answers at `addr` within `timeout`: it accepts a
/// connection *and* replies to `PING` (any reply counts, even `-NOAUTH`). A
/// completed connect alone proves nothing: a server that is being killed
/// still completes handshakes from its listen backlog for a moment.
pub async fn answers(addr: SocketAddr, timeout: Duration) -> bool {
    let check = async {
        let mut stream = TcpStream::connect(addr).await?;
        ping(&mut stream).await
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Ok(())))
}

/// Sends `PING` on a connection nothing else uses yet and reads the one
/// reply line (any reply counts, `-NOAUTH` too), leaving the connection clean.
pub async fn ping(stream: &mut TcpStream) -> io::Result<()> {
    stream.write_all(b"PING\r\n").await?;
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
