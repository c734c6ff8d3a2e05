//! A minimal raw TCP RESP client for byte-level assertions.
//!
//! It sends arbitrary bytes and reads back exactly one complete reply at a
//! time, framing replies by parsing RESP2/RESP3 type bytes and lengths
//! without interpreting them. Every read is bounded by a timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Timeout applied to connecting and to each read or write unless changed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Nesting depth beyond which a reply is treated as malformed.
const MAX_DEPTH: usize = 64;

/// A raw RESP connection.
pub struct RespClient {
    stream: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl RespClient {
    /// Connects to `addr`, panicking if that fails within [`DEFAULT_TIMEOUT`].
    pub fn connect(addr: SocketAddr) -> RespClient {
        Self::try_connect(addr, DEFAULT_TIMEOUT)
            .unwrap_or_else(|err| panic!("connect to {addr}: {err}"))
    }

    /// Connects to `addr`; `timeout` bounds the connect and later reads and
    /// writes.
    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<RespClient> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(RespClient {
            stream,
            buf: Vec::new(),
            timeout,
        })
    }

    /// Changes the timeout for subsequent reads and writes.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.stream
            .set_write_timeout(Some(timeout))
            .expect("set write timeout");
    }

    /// The underlying socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// Writes `bytes` as they are, panicking on error.
    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes)
            .unwrap_or_else(|err| panic!("send {}: {err}", show(bytes)));
    }

    /// Writes `bytes` as they are.
    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends one command encoded as a RESP array of bulk strings.
    pub fn send_command(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&encode_command(&args));
    }

    /// Sends one command and returns the raw bytes of its reply.
    pub fn command(&mut self, args: &[&str]) -> Vec<u8> {
        self.send_command(args);
        self.read_reply()
    }

    /// Reads exactly one complete reply (including any RESP3 attribute that
    /// precedes it; a push frame counts as one reply). Panics on error,
    /// timeout or end of stream.
    pub fn read_reply(&mut self) -> Vec<u8> {
        self.try_read_reply()
            .unwrap_or_else(|err| panic!("read reply: {err}"))
    }

    /// Reads exactly one complete reply; errors with `TimedOut` if none
    /// arrived within the timeout, `UnexpectedEof` if the peer closed the
    /// connection first and `InvalidData` if the bytes are not RESP.
    pub fn try_read_reply(&mut self) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match reply_len(&self.buf) {
                Ok(Some(len)) => return Ok(self.buf.drain(..len).collect()),
                Ok(None) => {}
                Err(msg) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{msg} in {}", show(&self.buf)),
                    ));
                }
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed with incomplete reply {}",
                        show(&self.buf)
                    ),
                ));
            }
        }
    }

    /// Reads until the peer closes the connection and returns every byte
    /// not consumed yet. A connection reset counts as closed. Panics if the
    /// connection is still open after the timeout.
    pub fn read_until_closed(&mut self) -> Vec<u8> {
        self.try_read_until_closed()
            .unwrap_or_else(|err| panic!("read until closed: {err}"))
    }

    /// Like [`read_until_closed`](Self::read_until_closed), returning errors.
    pub fn try_read_until_closed(&mut self) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline) {
                Ok(0) => return Ok(std::mem::take(&mut self.buf)),
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(std::mem::take(&mut self.buf));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Returns `true` if the peer closes the connection (or resets it)
    /// within `timeout` without sending anything more.
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        let saved = self.timeout;
        self.timeout = timeout;
        let result = self.try_read_until_closed();
        self.timeout = saved;
        matches!(result, Ok(ref rest) if rest.is_empty())
    }

    /// Closes the write half of the connection.
    pub fn shutdown_write(&self) {
        // The peer may already have closed the connection.
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads once into the buffer; returns the number of bytes read.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "timed out after {:?}; buffered {}",
                    self.timeout,
                    show(&self.buf)
                ),
            ));
        }
        self.stream
            .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "timed out after {:?}; buffered {}",
                            self.timeout,
                            show(&self.buf)
                        ),
                    ));
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Length of the first complete RESP2/RESP3 reply in `buf`: `Ok(Some(len))`
/// if complete, `Ok(None)` if more bytes are needed, `Err` if malformed.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    frame_end(buf, 0, 0)
}

/// Renders bytes for error messages, escaping non-printable ones.
pub fn show(bytes: &[u8]) -> String {
    format!("b\"{}\"", bytes.escape_ascii())
}

fn frame_end(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("reply nested deeper than {MAX_DEPTH}"));
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some((header, after)) = line(buf, pos + 1) else {
        return Ok(None);
    };
    match kind {
        // Simple string, error, integer, null, double, boolean, big number.
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(after)),
        // Bulk string, blob error, verbatim string.
        b'$' | b'!' | b'=' => {
            if header == b"?" {
                return streamed_string_end(buf, after);
            }
            let len = parse_len(header)?;
            if len < 0 {
                return Ok(Some(after));
            }
            blob_end(buf, after, len as usize)
        }
        // Array, set, push, map, attribute.
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            if header == b"?" {
                return streamed_aggregate_end(buf, after, depth);
            }
            let len = parse_len(header)?;
            if len < 0 {
                return Ok(Some(after));
            }
            let count = if matches!(kind, b'%' | b'|') {
                2 * len as usize
            } else {
                len as usize
            };
            let mut pos = after;
            for _ in 0..count {
                match frame_end(buf, pos, depth + 1)? {
                    Some(end) => pos = end,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute is followed by the reply it describes.
                return frame_end(buf, pos, depth + 1);
            }
            Ok(Some(pos))
        }
        other => Err(format!("unexpected RESP type byte {:?}", other as char)),
    }
}

/// Finds the CRLF-terminated line starting at `start`; returns its content
/// and the position after the CRLF.
fn line(buf: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(start..)?;
    let idx = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..idx], start + idx + 2))
}

fn parse_len(header: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(header)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("invalid length {}", show(header)))
}

fn blob_end(buf: &[u8], start: usize, len: usize) -> Result<Option<usize>, String> {
    let end = start + len + 2;
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[end - 2..end] != b"\r\n" {
        return Err(format!("blob of length {len} not followed by CRLF"));
    }
    Ok(Some(end))
}

/// `$?` streamed string: `;<len>\r\n<data>\r\n` chunks ended by `;0\r\n`.
fn streamed_string_end(buf: &[u8], mut pos: usize) -> Result<Option<usize>, String> {
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        if kind != b';' {
            return Err(format!(
                "expected streamed string chunk, got {:?}",
                kind as char
            ));
        }
        let Some((header, after)) = line(buf, pos + 1) else {
            return Ok(None);
        };
        let len = parse_len(header)?;
        if len <= 0 {
            return Ok(Some(after));
        }
        match blob_end(buf, after, len as usize)? {
            Some(end) => pos = end,
            None => return Ok(None),
        }
    }
}

/// `*?`, `~?`, `%?` streamed aggregate: elements ended by `.\r\n`.
fn streamed_aggregate_end(
    buf: &[u8],
    mut pos: usize,
    depth: usize,
) -> Result<Option<usize>, String> {
    loop {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'.') => {
                return Ok(line(buf, pos + 1).map(|(_, after)| after));
            }
            Some(_) => match frame_end(buf, pos, depth + 1)? {
                Some(end) => pos = end,
                None => return Ok(None),
            },
        }
    }
}
