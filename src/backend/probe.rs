//! A small request/response connection for the control path.
//!
//! Sends commands the proxy composes itself and decodes their RESP2 replies into
//! owned frames. Every call has a deadline; a connection that misses one is
//! dropped by its owner.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connect::Dialer;
use crate::config::Credentials;
use crate::resp::value::{self, OwnedFrame};
use crate::tls::Stream;

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The node could not be reached or the connection broke.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The node did not answer in time.
    #[error("timed out")]
    Timeout,
    /// The node answered something that is not RESP.
    #[error("malformed reply")]
    Malformed,
    /// The node answered with an error reply.
    #[error("error reply: {0}")]
    Refused(String),
    /// The connection was closed by the node.
    #[error("connection closed")]
    Closed,
}

/// One control-path connection.
#[derive(Debug)]
pub struct Probe {
    stream: Stream,
    buf: BytesMut,
    timeout: Duration,
}

impl Probe {
    /// Connects the way `dialer` does and, if credentials are given,
    /// authenticates.
    pub async fn connect(
        dialer: &Dialer,
        addr: SocketAddr,
        auth: &Credentials,
        timeout: Duration,
    ) -> Result<Probe, ProbeError> {
        Probe::connect_named(dialer, addr, None, auth, timeout).await
    }

    /// As [`Probe::connect`], to a node known by host name `name` (under
    /// TLS, the name its certificate is checked against).
    pub async fn connect_named(
        dialer: &Dialer,
        addr: SocketAddr,
        name: Option<&str>,
        auth: &Credentials,
        timeout: Duration,
    ) -> Result<Probe, ProbeError> {
        let stream = dialer.dial(addr, name, timeout).await?;
        let mut probe = Probe {
            stream,
            buf: BytesMut::with_capacity(4096),
            timeout,
        };
        if let Some(pass) = &auth.pass {
            match &auth.user {
                Some(user) => probe.call(&["AUTH", user, pass]).await?,
                None => probe.call(&["AUTH", pass]).await?,
            };
        }
        Ok(probe)
    }

    /// Sends one command and reads its reply. An error reply is [`ProbeError::Refused`].
    pub async fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<OwnedFrame, ProbeError> {
        self.send(args).await?;
        match tokio::time::timeout(self.timeout, self.read_frame()).await {
            Err(_) => Err(ProbeError::Timeout),
            Ok(Ok(OwnedFrame::Error(message))) => Err(ProbeError::Refused(message)),
            Ok(result) => result,
        }
    }

    /// Sends a command without reading a reply (SUBSCRIBE: replies come as a stream).
    pub async fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<(), ProbeError> {
        let mut out = BytesMut::new();
        value::encode_command(&mut out, args);
        let write = async {
            self.stream.write_all(&out).await?;
            // Under TLS, records may still wait in rustls.
            self.stream.flush().await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| ProbeError::Timeout)??;
        Ok(())
    }

    /// Reads the next frame with no deadline (for subscriptions; wrap it in your own).
    pub async fn read_frame(&mut self) -> Result<OwnedFrame, ProbeError> {
        loop {
            if let Some((frame, used)) =
                value::decode(&self.buf).map_err(|_| ProbeError::Malformed)?
            {
                let _ = self.buf.split_to(used);
                return Ok(frame);
            }
            if self.buf.len() > 64 * 1024 * 1024 {
                return Err(ProbeError::Malformed);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(ProbeError::Closed);
            }
        }
    }
}

/// What `ROLE` says a node is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A master.
    Master,
    /// A replica.
    Replica,
    /// A Sentinel, or anything else.
    Other,
}

/// Asks the node behind `probe` for its `ROLE`.
pub async fn role_of(probe: &mut Probe) -> Result<Role, ProbeError> {
    let reply = probe.call(&["ROLE"]).await?;
    let OwnedFrame::Array(items) = reply else {
        return Err(ProbeError::Malformed);
    };
    Ok(match items.first().and_then(value::as_str) {
        Some("master") => Role::Master,
        Some("slave") | Some("replica") => Role::Replica,
        _ => Role::Other,
    })
}
