//! The control plane's one shape: sources of truth about a group, each the
//! only committer of its group's switch.
//!
//! ```text
//!  sentinel::Runner (built-in core) ─┐
//!                                     ├─ Source ─▶ Committer ─▶ switch ─▶ data path
//!  follow::Follower (Sentinels)  ────┘
//! ```
//!
//! A [`Source`] watches one group and decides, again and again, where writes
//! may go now: a master, or none (commands are held). The built-in sentinel
//! core and the follower of existing Sentinels decide in very different ways,
//! but both hand each decision to a [`Committer`], which owns the group's
//! [`SwitchWriter`] and does what every decision needs the same way:
//! publishing only what changed, refusing an older config epoch, and counting
//! switches. Several groups are several sources, each with its own switch.
//!
//! The data path never sees a source: it reads the switch.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::switch::{Reader, StaleEpoch, SwitchWriter, Topology};

/// A source of truth about one group: runs until `stop` is cancelled,
/// committing every decision about the group's master to its [`Committer`].
pub trait Source: Send + 'static {
    /// Watches the group and commits decisions until `stop` is cancelled.
    fn run(self, stop: CancellationToken) -> impl Future<Output = ()> + Send;
}

/// What [`Committer::commit`] did with a decision.
#[derive(Debug)]
pub enum Commit {
    /// The decision was already in force; nothing was published.
    Unchanged,
    /// A new snapshot was published.
    Published {
        /// The snapshot now in force.
        topology: Arc<Topology>,
        /// Commands now go to another master than the last one they went to.
        switched: bool,
    },
    /// The decision names an older config epoch than the one in force: it
    /// was refused (a stale source never moves the proxy back).
    Stale(StaleEpoch),
}

/// The one writer of a group's switch (not `Clone`, like the writer it
/// owns): publishes a source's decisions, each once.
#[derive(Debug)]
pub struct Committer {
    /// The switch's write side.
    writer: SwitchWriter,
    /// The last decision handed in (published or refused as stale).
    decided: (Option<SocketAddr>, u64),
    /// The host name the decided master is known by, and the replicas
    /// read endpoints may use.
    decided_extra: (Option<Arc<str>>, Arc<[Reader]>),
    /// The last master commands were routed to, for counting switches.
    last_master: Option<SocketAddr>,
}

impl Committer {
    /// A committer for `writer`; the snapshot in force counts as decided.
    pub fn new(writer: SwitchWriter) -> Committer {
        let current = writer.current();
        Committer {
            decided: (current.master, current.config_epoch),
            decided_extra: (current.master_host.clone(), Arc::clone(&current.readers)),
            last_master: current.master,
            writer,
        }
    }

    /// The snapshot in force now.
    pub fn current(&self) -> Arc<Topology> {
        self.writer.current()
    }

    /// Makes `master` (or none: hold commands) the group's master under
    /// `config_epoch`, unless that is already the decision in force.
    pub fn commit(&mut self, master: Option<SocketAddr>, config_epoch: u64) -> Commit {
        self.commit_route(master, None, &[], config_epoch)
    }

    /// As [`Committer::commit`], for a master known by host name `host`
    /// (under TLS, the name its certificate is checked against), with the
    /// replicas read endpoints may use.
    pub fn commit_route(
        &mut self,
        master: Option<SocketAddr>,
        host: Option<&str>,
        readers: &[Reader],
        config_epoch: u64,
    ) -> Commit {
        let (decided_host, decided_readers) = &self.decided_extra;
        if (master, config_epoch) == self.decided
            && decided_host.as_deref() == host
            && **decided_readers == *readers
        {
            return Commit::Unchanged;
        }
        self.decided = (master, config_epoch);
        self.decided_extra = (host.map(Arc::from), Arc::from(readers));
        let (host, readers) = self.decided_extra.clone();
        match self
            .writer
            .publish_route(master, host, readers, config_epoch)
        {
            Ok(topology) => {
                let switched =
                    master.is_some() && self.last_master.is_some() && self.last_master != master;
                if switched {
                    metrics::counter!(crate::metrics::SWITCHES).increment(1);
                }
                if master.is_some() {
                    self.last_master = master;
                }
                Commit::Published { topology, switched }
            }
            Err(stale) => Commit::Stale(stale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn committer() -> (Committer, crate::switch::SwitchReader) {
        let (writer, reader) = crate::switch::new(None, 0, &CancellationToken::new());
        (Committer::new(writer), reader)
    }

    #[test]
    fn a_decision_is_published_once() {
        let (mut committer, reader) = committer();
        assert!(matches!(committer.commit(None, 0), Commit::Unchanged));
        assert!(matches!(
            committer.commit(addr(1), 1),
            Commit::Published {
                switched: false,
                ..
            }
        ));
        assert!(matches!(committer.commit(addr(1), 1), Commit::Unchanged));
        assert_eq!(reader.current().generation, 2);
        assert_eq!(reader.current().master, addr(1));
    }

    #[test]
    fn only_a_move_to_another_master_is_a_switch() {
        let (mut committer, _reader) = committer();
        committer.commit(addr(1), 1);
        // Holding commands and coming back to the same master is no switch.
        assert!(matches!(
            committer.commit(None, 1),
            Commit::Published {
                switched: false,
                ..
            }
        ));
        assert!(matches!(
            committer.commit(addr(1), 1),
            Commit::Published {
                switched: false,
                ..
            }
        ));
        // Held, then routed to another node: a switch.
        committer.commit(None, 2);
        assert!(matches!(
            committer.commit(addr(2), 2),
            Commit::Published { switched: true, .. }
        ));
    }

    #[test]
    fn an_older_epoch_is_refused_once_and_changes_nothing() {
        let (mut committer, reader) = committer();
        committer.commit(addr(1), 5);
        assert!(matches!(committer.commit(addr(2), 4), Commit::Stale(_)));
        assert!(matches!(committer.commit(addr(2), 4), Commit::Unchanged));
        assert_eq!(reader.current().master, addr(1));
        assert_eq!(reader.current().config_epoch, 5);
    }
}
