//! A read-only snapshot of what the control path knows, for `/status`,
//! `/readyz` and the topology metrics. The control path publishes a new one
//! whenever something changes; readers never block it.

use serde::Serialize;
use tokio::sync::watch;

/// The group as this proxy sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// `sentinel-core` or `following-sentinels`.
    pub source: &'static str,
    /// The group's name.
    pub master_name: String,
    /// The master as configured (or announced by the Sentinels).
    pub master: Option<String>,
    /// Why commands are held now, if they are.
    pub held_reason: Option<String>,
    /// Sentinel's current epoch.
    pub current_epoch: u64,
    /// The config epoch of the master.
    pub config_epoch: u64,
    /// This proxy sees the master subjectively down.
    pub sdown: bool,
    /// A quorum agrees the master is down.
    pub odown: bool,
    /// TILT mode (the clock or the process stalled).
    pub tilt: bool,
    /// The stage of a failover this proxy leads, if any.
    pub failover: Option<String>,
    /// The master and its replicas.
    pub nodes: Vec<NodeStatus>,
    /// Other sentinels.
    pub peers: Vec<PeerStatus>,
    /// A majority of the voters is reachable.
    pub quorum_reachable: bool,
    /// The latest Sentinel events, oldest first (`+sdown master mymaster …`).
    pub recent_events: Vec<String>,
    /// The other groups this proxy monitors (`[[group]]` tables, `SENTINEL
    /// MONITOR`), each described the same way; `/readyz` and the topology
    /// metrics are about the first group only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Status>,
}

/// One Redis server of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// Its address.
    pub addr: String,
    /// `master` or `replica` in the configuration.
    pub role: &'static str,
    /// What its `INFO` says: `master`, `replica` or `unknown`.
    pub reported_role: &'static str,
    /// It answers `PING`.
    pub up: bool,
    /// Subjectively down.
    pub sdown: bool,
    /// Replication lag behind the master in bytes (replicas with known offsets).
    pub lag_bytes: Option<u64>,
    /// Seconds since the replica last acknowledged, as its master reports it
    /// (`lag=` in `INFO`; what a read endpoint's `max_replica_lag_ms` is
    /// compared with).
    pub lag_seconds: Option<u64>,
}

/// One other sentinel (proxy or Redis Sentinel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// Its sentinel port.
    pub addr: String,
    /// Its run id, once known.
    pub run_id: Option<String>,
    /// A configured voter (else an observer).
    pub voter: bool,
    /// Heard from within down-after.
    pub reachable: bool,
}

/// Creates the channel the control path publishes on.
pub fn channel() -> (watch::Sender<Status>, watch::Receiver<Status>) {
    watch::channel(Status::default())
}
