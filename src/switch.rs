//! The switch: the one seam between the control path and the data path.
//!
//! The control path (the built-in sentinel core, or the follower of existing
//! Sentinels: a [`crate::control::Source`]) owns the truth about which node is the
//! master and publishes it here as a [`Topology`] snapshot. The
//! data path reads snapshots lock-free and learns of a new one through the old
//! snapshot's `retired` future. There is exactly one [`SwitchWriter`]; any number
//! of [`SwitchReader`]s.
//!
//! Invariants:
//! * one `ArcSwap` holds one complete snapshot (master and epochs together);
//! * generations strictly increase and config epochs never decrease:
//!   [`SwitchWriter::publish`] rejects an older config epoch, so a stale source can
//!   never move the proxy back;
//! * the data path only reads; it may send a [`Hint`] (never blocking) when it sees
//!   trouble, and the control path decides what it means.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// One committed view of the group: where writes may go, and since when.
#[derive(Debug)]
pub struct Topology {
    /// Bumped by every publish; sessions compare it to know whether they are current.
    pub generation: u64,
    /// The Sentinel config epoch the master was committed under (0 until a
    /// failover has happened, as in Sentinel).
    pub config_epoch: u64,
    /// The committed master, or `None` while no master may be used (unreachable,
    /// failover in progress): commands are then held, never sent anywhere.
    pub master: Option<SocketAddr>,
    /// The host name the master is known by, if any: under TLS, the name its
    /// certificate is checked against (and sent as SNI).
    pub master_host: Option<Arc<str>>,
    /// The replicas a read endpoint may send its clients to (healthy, in
    /// sync, little lag), best first; empty when none qualifies or no read
    /// endpoint asked.
    pub readers: Arc<[Reader]>,
    /// Cancelled when a newer snapshot replaces this one, or when the proxy
    /// stops (it is a child of the stop token), so a session waits on one
    /// future for both.
    retired: CancellationToken,
}

impl Topology {
    /// Resolves when this snapshot has been replaced by a newer one or the proxy
    /// is stopping. Owned, so a session can keep it pinned across its event loop
    /// without re-registering.
    pub fn retired(&self) -> WaitForCancellationFutureOwned {
        self.retired.clone().cancelled_owned()
    }

    /// Whether a newer snapshot exists.
    pub fn is_retired(&self) -> bool {
        self.retired.is_cancelled()
    }
}

/// A replica a read endpoint may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The host name it is known by, if any (under TLS, the name its
    /// certificate is checked against).
    pub host: Option<Arc<str>>,
}

/// A publish that would move the proxy back to an older config epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stale topology: config epoch {offered} is older than the current {current}")]
pub struct StaleEpoch {
    /// The epoch that was offered.
    pub offered: u64,
    /// The epoch in force.
    pub current: u64,
}

/// Creates the switch with its initial snapshot (generation 1). Cancelling
/// `stop` retires every snapshot, current and future.
pub fn new(
    master: Option<SocketAddr>,
    config_epoch: u64,
    stop: &CancellationToken,
) -> (SwitchWriter, SwitchReader) {
    let shared = Arc::new(ArcSwap::from_pointee(Topology {
        generation: 1,
        config_epoch,
        master,
        master_host: None,
        readers: Arc::from([]),
        retired: stop.child_token(),
    }));
    (
        SwitchWriter {
            shared: Arc::clone(&shared),
            stop: stop.clone(),
        },
        SwitchReader { shared },
    )
}

/// Read side, for the data path: cheap to clone, lock-free to read.
#[derive(Debug, Clone)]
pub struct SwitchReader {
    shared: Arc<ArcSwap<Topology>>,
}

impl SwitchReader {
    /// The snapshot in force now.
    pub fn current(&self) -> Arc<Topology> {
        self.shared.load_full()
    }
}

/// Write side, for the control path. Not `Clone`: there is one writer.
#[derive(Debug)]
pub struct SwitchWriter {
    shared: Arc<ArcSwap<Topology>>,
    /// Parent of every snapshot's `retired` token.
    stop: CancellationToken,
}

impl SwitchWriter {
    /// Publishes a new snapshot and retires the previous one. Rejects a config
    /// epoch older than the current one.
    pub fn publish(
        &self,
        master: Option<SocketAddr>,
        config_epoch: u64,
    ) -> Result<Arc<Topology>, StaleEpoch> {
        self.publish_route(master, None, Arc::from([]), config_epoch)
    }

    /// As [`SwitchWriter::publish`], for a master known by host name `host`,
    /// with the replicas read endpoints may use.
    pub fn publish_route(
        &self,
        master: Option<SocketAddr>,
        master_host: Option<Arc<str>>,
        readers: Arc<[Reader]>,
        config_epoch: u64,
    ) -> Result<Arc<Topology>, StaleEpoch> {
        let current = self.shared.load_full();
        if config_epoch < current.config_epoch {
            return Err(StaleEpoch {
                offered: config_epoch,
                current: current.config_epoch,
            });
        }
        let next = Arc::new(Topology {
            generation: current.generation + 1,
            config_epoch,
            master,
            master_host,
            readers,
            retired: self.stop.child_token(),
        });
        self.shared.store(Arc::clone(&next));
        current.retired.cancel();
        Ok(next)
    }

    /// The snapshot in force now.
    pub fn current(&self) -> Arc<Topology> {
        self.shared.load_full()
    }

    /// A reader for the same switch.
    pub fn reader(&self) -> SwitchReader {
        SwitchReader {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Something the data path noticed that the control path should check at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// The master answered `-READONLY`: it has been demoted.
    Demoted(SocketAddr),
    /// A connection to the master could not be made.
    Unreachable(SocketAddr),
}

/// Sender of [`Hint`]s; never blocks (a full queue means a check is coming anyway).
#[derive(Debug, Clone)]
pub struct HintSender {
    tx: mpsc::Sender<Hint>,
}

impl HintSender {
    /// Sends a hint if there is room; drops it otherwise.
    pub fn send(&self, hint: Hint) {
        let _ = self.tx.try_send(hint);
    }
}

/// A bounded hint channel: sessions hold the sender, the control path the receiver.
pub fn hints() -> (HintSender, mpsc::Receiver<Hint>) {
    let (tx, rx) = mpsc::channel(64);
    (HintSender { tx }, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[tokio::test]
    async fn publish_retires_the_previous_snapshot() {
        let (writer, reader) = new(addr(1), 1, &CancellationToken::new());
        let first = reader.current();
        let retired = first.retired();
        writer.publish(addr(2), 2).expect("newer epoch");
        retired.await;
        assert!(first.is_retired());
        let now = reader.current();
        assert_eq!(now.master, addr(2));
        assert_eq!(now.generation, 2);
        assert!(!now.is_retired());
    }

    #[tokio::test]
    async fn stopping_retires_every_snapshot() {
        let stop = CancellationToken::new();
        let (writer, reader) = new(addr(1), 1, &stop);
        let first = reader.current();
        writer.publish(addr(2), 2).expect("newer epoch");
        let second = reader.current();
        assert!(!second.is_retired());
        stop.cancel();
        second.retired().await;
        assert!(first.is_retired() && second.is_retired());
    }

    #[test]
    fn an_older_config_epoch_is_rejected() {
        let (writer, reader) = new(addr(1), 5, &CancellationToken::new());
        let err = writer.publish(addr(2), 4).expect_err("stale");
        assert_eq!(
            err,
            StaleEpoch {
                offered: 4,
                current: 5
            }
        );
        assert_eq!(reader.current().master, addr(1));
        // The same epoch is accepted: the master may become unreachable and return.
        writer.publish(None, 5).expect("same epoch");
        writer.publish(addr(1), 5).expect("same epoch");
        assert_eq!(reader.current().generation, 3);
    }
}
