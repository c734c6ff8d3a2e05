//! The read endpoint's settings: where it listens, how much lag a replica
//! may have, and where its clients go when no replica qualifies.

use std::net::SocketAddr;
use std::time::Duration;

use super::cli::{ReadFallback, Settings};
use super::{ConfigError, Source, invalid, millis, resolve};

/// The read endpoints' settings (the first group's endpoint, and what every
/// group's `read_listen` uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadConfig {
    /// The first group's read endpoint, if any.
    pub listen: Option<SocketAddr>,
    /// Most lag a replica may have to serve reads.
    pub max_lag: Duration,
    /// Where clients go when no replica qualifies.
    pub fallback: ReadFallback,
}

/// Validates the read settings; a read endpoint needs the built-in core,
/// which monitors the replicas.
pub(super) fn reads(s: &Settings, source: &Source) -> Result<ReadConfig, ConfigError> {
    let listen = s
        .read_listen
        .as_deref()
        .map(|a| resolve("read_listen", a))
        .transpose()?;
    if listen.is_some() && matches!(source, Source::Sentinels(_)) {
        return Err(invalid(
            "read_listen",
            "needs the built-in sentinel core (master): following Sentinels, the proxy does not monitor replicas",
        ));
    }
    Ok(ReadConfig {
        listen,
        max_lag: millis(
            "max_replica_lag_ms",
            s.max_replica_lag_ms.unwrap_or(10_000),
            0,
        )?,
        fallback: s.read_fallback.unwrap_or(ReadFallback::Master),
    })
}
