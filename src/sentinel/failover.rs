//! A failover attempt's data and this proxy's vote: plain data, shared by
//! the core's election, its failover stages and the Sentinel API.
//!
//! The behaviour is in the core: `core/election.rs` (who leads) and
//! `core/stages.rs` (the stages). Election and failover follow Redis
//! Sentinel:
//!
//! * Election: a candidate bumps the current epoch and asks every voter for
//!   its vote (`is-master-down-by-addr` with its run id). Each voter votes once
//!   per epoch, for the first candidate that asks. A leader needs the votes of
//!   a majority of the voters and at least `quorum` of them. Only configured
//!   voters count; observers neither vote nor lead.
//! * Failover, one [`Stage`] at a time, each bounded by `failover-timeout`:
//!   select the best replica, promote it (`REPLICAOF NO ONE`, or `FAILOVER TO`
//!   on a healthy master for a planned switchover), wait until its `INFO` says
//!   master, reconfigure the other replicas `parallel-syncs` at a time, then
//!   switch the configuration under the new epoch.

use std::net::SocketAddr;

use tokio::time::Instant;

/// Where a failover is. From `Promote` on, the stage carries the replica it
/// promotes: no stage can be reached without one chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Waiting to be elected leader for the epoch.
    WaitStart,
    /// Choosing the replica to promote.
    SelectReplica,
    /// Sending the promotion to the chosen replica.
    Promote {
        /// The replica chosen.
        replica: SocketAddr,
    },
    /// Waiting for the chosen replica to report the master role.
    WaitPromotion {
        /// The replica promoted.
        replica: SocketAddr,
    },
    /// Pointing the other replicas at the new master.
    ReconfReplicas {
        /// The new master (the replica promoted).
        promoted: SocketAddr,
    },
}

impl Stage {
    /// The stage as Redis Sentinel names it in `SENTINEL MASTER`'s
    /// `failover-state` field (`sentinelFailoverStateStr`), and as `/status`
    /// shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::WaitStart => "wait_start",
            Stage::SelectReplica => "select_slave",
            Stage::Promote { .. } => "send_slaveof_noone",
            Stage::WaitPromotion { .. } => "wait_promotion",
            Stage::ReconfReplicas { .. } => "reconf_slaves",
        }
    }

    /// The replica chosen for promotion, once there is one.
    pub fn promoted(self) -> Option<SocketAddr> {
        match self {
            Stage::WaitStart | Stage::SelectReplica => None,
            Stage::Promote { replica } | Stage::WaitPromotion { replica } => Some(replica),
            Stage::ReconfReplicas { promoted } => Some(promoted),
        }
    }

    /// The replica promoted, once its `INFO` said master: the failover is
    /// then past the point of no return (announced, saved, routed to).
    pub fn reconfiguring(self) -> Option<SocketAddr> {
        match self {
            Stage::ReconfReplicas { promoted } => Some(promoted),
            _ => None,
        }
    }
}

/// A failover this proxy attempts or leads.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The epoch it runs in (becomes the new config epoch).
    pub epoch: u64,
    /// Its stage.
    pub stage: Stage,
    /// When the stage began.
    pub since: Instant,
    /// Requested by `SENTINEL FAILOVER`: no ODOWN needed, the master is healthy.
    pub forced: bool,
}

impl Failover {
    /// Moves to `stage`, which began `now`.
    pub fn enter(&mut self, stage: Stage, now: Instant) {
        self.stage = stage;
        self.since = now;
    }
}

/// Why `SENTINEL FAILOVER` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForceError {
    /// One is running.
    #[error("INPROG Failover already in progress")]
    InProgress,
    /// No replica qualifies.
    #[error("NOGOODSLAVE No suitable replica to promote")]
    NoGoodReplica,
    /// This proxy is an observer.
    #[error("ERR this proxy is an observer: it never leads a failover")]
    Observer,
}

/// This proxy's vote in a leader election.
#[derive(Debug, Clone)]
pub struct Vote {
    /// The run id voted for.
    pub leader: String,
    /// The epoch of the vote.
    pub epoch: u64,
    /// When it was cast (a vote for another leader fences this proxy for a while).
    pub at: Instant,
}
