//! Which node a session is bound to: on an endpoint of the master, the
//! master; on a read endpoint, a replica the control path says qualifies
//! (the one the session is on, while it still does; otherwise the one with
//! the fewest sessions), else the endpoint's fallback.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Session;
use crate::config::ReadFallback;

/// A node to bind to: its address, the host name it is known by, and
/// whether a place was reserved on it among a read endpoint's replicas.
pub(super) struct Target {
    pub(super) addr: SocketAddr,
    pub(super) host: Option<Arc<str>>,
    pub(super) reserved: bool,
}

impl Session {
    /// The node to bind to now; on a read endpoint a place is reserved on
    /// the replica chosen (given back if the connection fails, or when the
    /// session leaves it). `None`: commands wait (or, with `read_fallback
    /// error`, are refused).
    pub(super) fn choose_target(&self) -> Option<Target> {
        let topology = &self.topology;
        let master = || {
            topology.master.map(|addr| Target {
                addr,
                host: topology.master_host.clone(),
                reserved: false,
            })
        };
        let Some(fallback) = self.shared.settings.reads else {
            return master();
        };
        match self.shared.read_load.reserve(&topology.readers) {
            Some(reader) => Some(Target {
                addr: reader.addr,
                host: reader.host.clone(),
                reserved: true,
            }),
            None if fallback == ReadFallback::Master => master(),
            None => None,
        }
    }

    /// Whether a session bound to `addr` stays there under the current
    /// topology. On an endpoint of the master, a topology without a master
    /// keeps the connection (a pause that ends with the same master costs
    /// the session nothing, not even its MULTI). On a read endpoint, a
    /// replica stays while it qualifies, and the master (the fallback) while
    /// no replica does.
    pub(super) fn may_stay_on(&self, addr: SocketAddr) -> bool {
        let topology = &self.topology;
        match self.shared.settings.reads {
            None => topology.master.is_none_or(|master| master == addr),
            Some(fallback) => {
                topology.readers.iter().any(|r| r.addr == addr)
                    || (topology.readers.is_empty()
                        && fallback == ReadFallback::Master
                        && topology.master == Some(addr))
            }
        }
    }

    /// Whether commands that find no node are refused at once
    /// (`read_fallback error`) rather than held.
    pub(super) fn refuses_without_target(&self) -> bool {
        self.shared.settings.reads == Some(ReadFallback::Error)
    }
}
