//! What other Sentinels send to the sentinel port: the peer protocol.
//!
//! `SENTINEL IS-MASTER-DOWN-BY-ADDR` asks this proxy whether it sees the
//! master down (for the asker's ODOWN) and, with a run id, for its vote in an
//! epoch. Across a simulated partition a request is refused as if it never
//! arrived. (Hellos that peers `PUBLISH` to the sentinel port are taken by
//! the Sentinel's table, `groups.rs`, for whichever group they name.)

use tokio::time::Instant;

use super::{bulk, error};
use crate::resp::value::OwnedFrame;
use crate::sentinel::core::Core;
use crate::sentinel::node;

impl Core {
    /// `SENTINEL is-master-down-by-addr ip port epoch runid`: this proxy's view
    /// of the master and, when `runid` is not `*`, its vote.
    pub(super) fn is_master_down(&mut self, args: &[String], now: Instant) -> OwnedFrame {
        let [ip, port, epoch, runid] = args else {
            return error("ERR wrong number of arguments");
        };
        let (Ok(epoch), Some(addr)) = (
            epoch.parse::<u64>(),
            port.parse::<u16>()
                .ok()
                .and_then(|port| node::address(ip, port)),
        ) else {
            return error("ERR invalid epoch or address");
        };
        // An observer's view never counts towards anyone's ODOWN.
        let down = !self.settings.observer
            && !self.tilt.is_on()
            && addr == self.master.addr
            && self.master.sdown.is_down();
        let from_partitioned = self.peers.values().any(|p| {
            p.run_id.as_deref() == Some(runid.as_str()) && self.partitioned.contains(&p.addr)
        });
        if from_partitioned {
            // Across a simulated partition the request would never arrive.
            return error("ERR simulated partition");
        }
        let (leader, leader_epoch) = if runid == "*" {
            ("*".to_owned(), 0)
        } else {
            match self.vote_for(runid, epoch, now) {
                Some(vote) => (vote.leader, vote.epoch),
                None => ("*".to_owned(), 0),
            }
        };
        OwnedFrame::Array(vec![
            OwnedFrame::Integer(i64::from(down)),
            bulk(leader),
            OwnedFrame::Integer(i64::try_from(leader_epoch).unwrap_or(i64::MAX)),
        ])
    }
}
