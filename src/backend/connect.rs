//! Opening backend connections with a deadline.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

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
