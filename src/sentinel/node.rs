//! What the core knows about each monitored Redis server ([`Node`]) and each
//! peer ([`Peer`]): timestamps of the last replies, the last `INFO`, and the
//! subjective health derived from them. Plain data plus small pure helpers;
//! the core decides what to do with it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

use super::info::{InfoReport, ReportedRole};

/// Whether something is down, and since when: a node subjectively (SDOWN,
/// Sentinel's `SRI_S_DOWN` and `s_down_since_time`), or the group's master
/// objectively, by quorum (ODOWN, `SRI_O_DOWN` and `o_down_since_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Liveness {
    /// Not known to be down.
    #[default]
    Up,
    /// Down since `since`.
    Down {
        /// When it was first seen down (kept while it stays down).
        since: Instant,
    },
}

impl Liveness {
    /// Whether it is down.
    pub fn is_down(self) -> bool {
        matches!(self, Liveness::Down { .. })
    }

    /// Since when it is down, if it is.
    pub fn down_since(self) -> Option<Instant> {
        match self {
            Liveness::Up => None,
            Liveness::Down { since } => Some(since),
        }
    }
}

/// The socket address of an IP address and a port as Redis and Sentinel
/// write them apart (`INFO`'s `slave0:ip=…,port=…`, a hello's
/// `master_ip,master_port`); IPv6 addresses come without brackets there, so
/// `format!("{ip}:{port}")` would not parse. `None` for a hostname.
pub fn address(ip: &str, port: u16) -> Option<SocketAddr> {
    ip.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port))
}

/// The socket address of `host` and `port`: `host` is an IP address, or,
/// when `names` allows it (Sentinel's `resolve-hostnames yes`), a host name
/// resolved now (its first IPv4 address, else its first address). The
/// lookup blocks: names are for `/etc/hosts` or a fast local resolver.
pub fn resolve(host: &str, port: u16, names: bool) -> Option<SocketAddr> {
    if let Some(addr) = address(host, port) {
        return Some(addr);
    }
    if !names || host.is_empty() {
        return None;
    }
    let found: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .ok()?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| found.first())
        .copied()
}

/// A Redis server of the group (the master or a replica).
#[derive(Debug)]
pub struct Node {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its run id from the last `INFO` (changes when it restarts).
    pub run_id: Option<String>,
    /// Whether the last job on its link got a reply.
    pub link_up: bool,
    /// When it last gave a valid `PING` reply (or when monitoring began).
    pub last_ok: Instant,
    /// A `PING` is in flight since then.
    pub ping_sent: Option<Instant>,
    /// The oldest `PING` not validly answered was sent then (Sentinel's
    /// `act_ping_time`); cleared by a valid reply.
    pub unanswered_since: Option<Instant>,
    /// When the last `PING` was sent.
    pub last_ping: Option<Instant>,
    /// An `INFO` is in flight.
    pub info_pending: bool,
    /// When the last `INFO` reply arrived; `None` forces an `INFO` at once.
    pub last_info: Option<Instant>,
    /// Ask for `INFO` at the next tick (a session saw trouble), keeping what
    /// the last one confirmed until the answer arrives.
    pub info_due: bool,
    /// The last `INFO` reply, parsed.
    pub info: Option<InfoReport>,
    /// The last `INFO` reply as the node sent it (`SENTINEL INFO-CACHE`).
    pub info_text: Option<String>,
    /// When the role in `INFO` last changed.
    pub role_changed_at: Instant,
    /// When it last became a replica or named another master in `INFO`
    /// (Sentinel's `slave_conf_change_time`): a replica that seems to follow
    /// the wrong master is corrected only a failover timeout after that, so
    /// one that a failover elsewhere just moved is not pulled back.
    pub replication_changed_at: Instant,
    /// When the last hello was published to it.
    pub last_hello: Option<Instant>,
    /// Subjectively down (SDOWN), and since when.
    pub sdown: Liveness,
    /// As the master, it restarted (a new run id) then and has not answered
    /// `PONG` since (Sentinel's `SRI_MASTER_REBOOT`); only kept with
    /// `master-reboot-down-after-period` set.
    pub rebooted_at: Option<Instant>,
    /// When the core last told it whom to replicate (rate limit for fixes).
    pub last_fix: Option<Instant>,
    /// Its part in the reconfiguration phase of a failover.
    pub reconf: Reconf,
    /// The host name it was configured by, if any: looked up again while it
    /// cannot be reached, so a node that comes back at a new address under
    /// the same name is found there.
    pub host: Option<String>,
}

/// A replica's progress while a failover reconfigures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconf {
    /// Nothing asked.
    Idle,
    /// `REPLICAOF new-master` sent at that time.
    Sent(Instant),
    /// It reports the new master, link still syncing.
    InProgress,
    /// It reports the new master with the link up.
    Done,
}

impl Node {
    /// A node first seen now.
    pub fn new(addr: SocketAddr, now: Instant) -> Node {
        Node {
            addr,
            run_id: None,
            link_up: false,
            last_ok: now,
            ping_sent: None,
            unanswered_since: None,
            last_ping: None,
            info_pending: false,
            last_info: None,
            info_due: false,
            info: None,
            role_changed_at: now,
            replication_changed_at: now,
            last_hello: None,
            sdown: Liveness::Up,
            rebooted_at: None,
            last_fix: None,
            reconf: Reconf::Idle,
            host: None,
            info_text: None,
        }
    }

    /// The role its last `INFO` reported.
    pub fn role(&self) -> Option<&ReportedRole> {
        self.info.as_ref().map(|i| &i.role)
    }

    /// Whether its last `INFO` says master.
    pub fn reports_master(&self) -> bool {
        matches!(self.role(), Some(ReportedRole::Master))
    }

    /// The master it replicates from, per its last `INFO`, and whether the link is up.
    pub fn replicating(&self) -> Option<(&str, u16, bool)> {
        match self.role() {
            Some(ReportedRole::Replica(r)) => Some((&r.master_host, r.master_port, r.link_up)),
            _ => None,
        }
    }

    /// Whether it replicates from `master` according to its last `INFO`
    /// (a master named by host name counts when `names` allows resolving it).
    pub fn follows(&self, master: SocketAddr, names: bool) -> bool {
        self.replicating().is_some_and(|(host, port, _)| {
            port == master.port() && resolve(host, port, names) == Some(master)
        })
    }

    /// How long it has failed to answer: since its last valid reply when the
    /// link is down (a dead process refuses connections at once), else since
    /// the oldest unanswered `PING`; zero when it answers. (Measuring a live
    /// link from the last reply would flag a healthy node just before each
    /// periodic `PING`.)
    pub fn silent_for(&self, now: Instant) -> Duration {
        if !self.link_up {
            // Refused or broken: it has been silent since its last valid
            // reply (Sentinel counts a disconnected link the same way).
            return now.saturating_duration_since(self.last_ok);
        }
        match self.unanswered_since {
            Some(sent) => now.saturating_duration_since(sent),
            None => Duration::ZERO,
        }
    }

    /// How long ago it last answered `PING` validly.
    pub fn last_reply_age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_ok)
    }

    /// Whether it has been silent for longer than `down_after`.
    pub fn is_silent(&self, now: Instant, down_after: Duration) -> bool {
        self.silent_for(now) > down_after
    }
}

/// Another sentinel: a proxy or a Redis Sentinel.
#[derive(Debug)]
pub struct Peer {
    /// Its sentinel port.
    pub addr: SocketAddr,
    /// Its run id, once a hello told it.
    pub run_id: Option<String>,
    /// Whether it is one of the configured voters.
    pub voter: bool,
    /// Whether the last job on its link got a reply.
    pub link_up: bool,
    /// When it last answered anything (a `PING` reply or a hello).
    pub last_heard: Option<Instant>,
    /// When its last hello arrived (hellos carry the config it believes in).
    pub last_hello_heard: Option<Instant>,
    /// A `PING` failed since its last hello: until the next hello, what it
    /// believes is unknown (a failover may have happened meanwhile).
    pub hello_owed: bool,
    /// A `PING` is in flight since then.
    pub ping_sent: Option<Instant>,
    /// The oldest `PING` not answered was sent then; cleared by a reply.
    pub unanswered_since: Option<Instant>,
    /// When the last `PING` was sent.
    pub last_ping: Option<Instant>,
    /// When the last hello was sent to it.
    pub last_hello: Option<Instant>,
    /// When it last said the master is down.
    pub says_down_at: Option<Instant>,
    /// An `is-master-down-by-addr` is in flight.
    pub ask_pending: bool,
    /// When it was last asked.
    pub last_ask: Option<Instant>,
    /// Whom it voted for, and in which epoch.
    pub leader: Option<(String, u64)>,
    /// When it was taken back from the saved state, for one not heard from
    /// since: an observer is forgotten only when silent that long.
    pub restored_at: Option<Instant>,
}

impl Peer {
    /// Whether a hello from it arrived within `window`.
    pub fn hello_within(&self, now: Instant, window: Duration) -> bool {
        self.last_hello_heard
            .is_some_and(|t| now.saturating_duration_since(t) <= window)
    }

    /// A peer first known now (from the configuration or a hello).
    pub fn new(addr: SocketAddr, voter: bool) -> Peer {
        Peer {
            addr,
            run_id: None,
            voter,
            link_up: false,
            last_heard: None,
            last_hello_heard: None,
            hello_owed: true,
            ping_sent: None,
            unanswered_since: None,
            last_ping: None,
            last_hello: None,
            says_down_at: None,
            ask_pending: false,
            last_ask: None,
            leader: None,
            restored_at: None,
        }
    }

    /// Whether it counts as reachable: it has answered, and no `PING` (nor a
    /// broken link) has gone unanswered for longer than `window`. Measured
    /// like a node's SDOWN, from the oldest unanswered `PING`, so the gap
    /// between two periodic `PING`s never looks like silence.
    pub fn heard_within(&self, now: Instant, window: Duration) -> bool {
        let Some(heard) = self.last_heard else {
            return false;
        };
        match self.unanswered_since {
            Some(sent) => now.saturating_duration_since(sent) <= window,
            None => self.link_up || now.saturating_duration_since(heard) <= window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn addresses_written_apart_join_for_both_ip_versions_but_not_names() {
        assert_eq!(address("10.0.0.5", 6379), "10.0.0.5:6379".parse().ok());
        assert_eq!(address("::1", 6379), "[::1]:6379".parse().ok());
        assert_eq!(address("fe80::2", 26379), "[fe80::2]:26379".parse().ok());
        assert_eq!(address("redis-0.redis", 6379), None);
    }
}
