//! The sentinel core's state: what it knows about the group, and the
//! small lookups every part of it uses.
//!
//! The core does no I/O. Every method takes `now`, mutates state, and queues
//! what must be sent in [`Core::outbox`] (see [`super::effect`]); the runner
//! (see the module root) carries it out, publishes [`Core::route`] to the
//! switch, and saves state when [`Core::dirty`] is set.
//!
//! One job per file, all of them `impl Core`:
//! * `monitor`: the periodic work: TILT, `PING`/`INFO`/hello probes;
//! * `health`: SDOWN, ODOWN, asking peers what they see;
//! * `observe`: replies from links: `PING`, `INFO`, peers' answers;
//! * `hellos`: the `__sentinel__:hello` payload and what hellos teach;
//! * `election`: epochs, votes and who leads a failover;
//! * `stages`: the failover itself, one [`Stage`](super::failover::Stage) at a time;
//! * `route`: switching the master, fencing, and the route for the data path;
//! * `names`: a master known by host name, looked up again while unreachable;
//! * `readers`: the replicas a read endpoint may send clients to.
//!
//! The types these share without depending on one another live in leaf
//! modules: [`super::failover`] (a failover's data, the vote) and
//! [`super::effect`] (what the core asks the links to send).

mod election;
mod health;
mod hellos;
mod monitor;
mod names;
mod observe;
mod readers;
mod route;
mod stages;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::effect::{Outgoing, Target};
use super::events::Events;
use super::failover::{Failover, Vote};
use super::hello;
use super::node::{Liveness, Node, Peer};
use super::persist::{SavedPeer, SavedState};

/// Sentinel's TILT mode: entered when the clock or the process jumped (ticks
/// came too far apart), left after a quiet `tilt_period`. In TILT the core
/// keeps probing but decides nothing (no SDOWN, ODOWN, vote or failover step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tilt {
    /// Deciding as usual.
    #[default]
    Off,
    /// In TILT since the last late tick.
    On {
        /// The last late tick (each one restarts the quiet period).
        since: Instant,
    },
}

impl Tilt {
    /// Whether the core is in TILT.
    pub fn is_on(self) -> bool {
        matches!(self, Tilt::On { .. })
    }
}

/// The core's fixed settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The group's name (`mymaster`).
    pub name: String,
    /// Votes for ODOWN.
    pub quorum: u32,
    /// SDOWN after this long without a valid reply.
    pub down_after: Duration,
    /// A master whose run id changed (it restarted) is SDOWN once this long
    /// passes without a `PONG` (it may answer `LOADING` meanwhile); `None`:
    /// off, as Sentinel's `master-reboot-down-after-period 0`.
    pub master_reboot_down_after: Option<Duration>,
    /// Sentinel's failover-timeout.
    pub failover_timeout: Duration,
    /// Replicas reconfigured at once.
    pub parallel_syncs: u32,
    /// This proxy never votes or leads.
    pub observer: bool,
    /// The configured voters besides this proxy.
    pub voters: Vec<SocketAddr>,
    /// Sentinel's membership: every Sentinel heard from votes, not only the
    /// configured ones (groups created by `SENTINEL MONITOR`, and every
    /// group when the proxy stands in for `redis-sentinel`).
    pub discover_voters: bool,
    /// The sentinel-port address announced in hellos.
    pub announce: SocketAddr,
    /// Accept `SENTINEL SIMULATE-PARTITION` (tests only: set by the
    /// `SENTINEL_PROXY_FAULT_INJECTION=1` environment variable).
    pub fault_injection: bool,
    /// Credentials for the group's nodes (`SENTINEL SET auth-user/auth-pass`).
    pub auth: crate::config::Credentials,
    /// Sentinel's `resolve-hostnames`: addresses in `INFO`, hellos and
    /// commands may be host names, resolved when read.
    pub resolve_hostnames: bool,
    /// Sentinel's `announce-hostnames`: nodes known by name are shown and
    /// announced by name (replies, hellos, the saved configuration).
    pub announce_hostnames: bool,
    /// Commands the group's nodes know under other names (`SENTINEL SET
    /// rename-command`), by upper-case original name.
    pub renamed_commands: std::collections::BTreeMap<String, String>,
}

impl Settings {
    /// `command`'s name as the group's nodes know it.
    pub fn command_name<'a>(&'a self, command: &'a str) -> &'a str {
        self.renamed_commands
            .get(&command.to_ascii_uppercase())
            .map_or(command, String::as_str)
    }
}

/// Sentinel's periods. Fixed in production; `SENTINEL DEBUG` may change them.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// `PING` every this long.
    pub ping: Duration,
    /// `INFO` every this long when nothing is happening.
    pub info: Duration,
    /// Hello every this long.
    pub publish: Duration,
    /// `is-master-down-by-addr` every this long while the master is SDOWN.
    pub ask: Duration,
    /// A replica's `REPLICAOF` must show progress within this long.
    pub reconf_timeout: Duration,
    /// A tick later than this after the previous one means the clock jumped or
    /// the process stalled: enter TILT.
    pub tilt_trigger: Duration,
    /// How long TILT lasts after the last anomaly.
    pub tilt_period: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            ping: Duration::from_millis(1000),
            info: Duration::from_millis(10_000),
            publish: Duration::from_millis(2000),
            ask: Duration::from_millis(1000),
            reconf_timeout: Duration::from_millis(10_000),
            tilt_trigger: Duration::from_millis(2000),
            tilt_period: Duration::from_millis(30_000),
        }
    }
}

/// `SENTINEL SIMULATE-FAILURE`: points of a failover at which this Sentinel
/// crashes on purpose (exit code 99, as Sentinel), to test what its peers do
/// then. Off unless asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulatedFailure {
    /// Crash right after winning an election.
    pub after_election: bool,
    /// Crash right after the promoted replica reports master (the new
    /// config epoch saved first).
    pub after_promotion: bool,
}

/// Longest random pause between ODOWN and a failover attempt: far longer than
/// a vote request's round trip, so the first candidate usually collects the
/// votes before another starts.
const MAX_DESYNC: Duration = Duration::from_millis(400);

/// The sentinel core.
#[derive(Debug)]
pub struct Core {
    /// Fixed settings.
    pub settings: Settings,
    /// Periods.
    pub timers: Timers,
    /// This proxy's run id.
    pub myid: String,
    /// The highest epoch seen.
    pub current_epoch: u64,
    /// The epoch the current master was configured in.
    pub config_epoch: u64,
    /// The master as configured.
    pub master: Node,
    /// Its replicas.
    pub replicas: BTreeMap<SocketAddr, Node>,
    /// Other sentinels, by sentinel-port address.
    pub peers: BTreeMap<SocketAddr, Peer>,
    /// The last vote this proxy cast.
    pub vote: Option<Vote>,
    /// The failover this proxy is leading or attempting.
    pub failover: Option<Failover>,
    /// When the last failover attempt began (retry after twice the timeout).
    pub last_failover_start: Option<Instant>,
    /// Whether the master is objectively down (ODOWN), and since when.
    pub odown: Liveness,
    /// How long after ODOWN this proxy waits before trying a failover.
    pub start_jitter: Duration,
    /// Set by a switch: the old master's last valid reply, until commands
    /// are routed to the new master (the client-visible outage).
    pub unavailable_since: Option<Instant>,
    /// Normal, or TILT (no decisions while the clock is unreliable).
    pub tilt: Tilt,
    /// When the previous tick ran.
    pub last_tick: Option<Instant>,
    /// Jobs for the links.
    pub outbox: Vec<Outgoing>,
    /// Event sink.
    pub events: Events,
    /// State worth saving has changed.
    pub dirty: bool,
    /// Nodes and peers this proxy pretends it cannot reach (fault injection
    /// for partition tests): no job reaches them, no hello from them counts.
    pub partitioned: std::collections::BTreeSet<SocketAddr>,
    /// Where a failover should crash this Sentinel (`SIMULATE-FAILURE`).
    pub simulated_failure: SimulatedFailure,
    /// A simulated failure was reached: the runner exits once state is saved.
    pub crash_now: bool,
    /// The `SENTINEL SET` options given at run time, `[option, value…]`,
    /// the latest of each option (and renamed command) only: saved, and
    /// replayed over the configured settings after a restart.
    pub overrides: Vec<Vec<String>>,
    /// Set when a read endpoint uses the group's replicas: the most lag a
    /// replica may have to serve reads (see `readers`). The master is then
    /// asked for `INFO` every ping period, so lag is seen within a second.
    pub serves_reads: Option<Duration>,
}

impl Core {
    /// A core monitoring `master`, restored from `saved` when given.
    pub fn new(
        settings: Settings,
        master: SocketAddr,
        saved: Option<SavedState>,
        events: Events,
        now: Instant,
    ) -> Core {
        let mut core = Core {
            myid: hello::new_run_id(),
            current_epoch: 0,
            config_epoch: 0,
            master: Node::new(master, now),
            replicas: BTreeMap::new(),
            peers: BTreeMap::new(),
            vote: None,
            failover: None,
            last_failover_start: None,
            odown: Liveness::Up,
            start_jitter: Duration::ZERO,
            unavailable_since: None,
            tilt: Tilt::Off,
            last_tick: None,
            outbox: Vec::new(),
            events,
            dirty: true,
            partitioned: Default::default(),
            simulated_failure: SimulatedFailure::default(),
            crash_now: false,
            overrides: Vec::new(),
            serves_reads: None,
            timers: Timers::default(),
            settings,
        };
        // This proxy is a voter by itself; listing its own address as a peer
        // would count it twice.
        let me = core.settings.announce;
        core.settings.voters.retain(|v| *v != me);
        for &addr in &core.settings.voters {
            core.peers.insert(addr, Peer::new(addr, true));
        }
        if let Some(saved) = saved {
            core.restore(saved, now);
        }
        core
    }

    /// Takes back the saved identity, epochs, topology, peers and vote.
    fn restore(&mut self, saved: SavedState, now: Instant) {
        self.overrides = saved.overrides;
        self.myid = saved.myid;
        self.current_epoch = saved.current_epoch;
        self.config_epoch = saved.config_epoch;
        if let Ok(master) = saved.master.parse() {
            self.master = Node::new(master, now);
        }
        for replica in saved.replicas.iter().filter_map(|r| r.parse().ok()) {
            if replica != self.master.addr {
                self.replicas.insert(replica, Node::new(replica, now));
            }
        }
        for peer in saved.peers {
            let Ok(addr) = peer.addr.parse::<SocketAddr>() else {
                continue;
            };
            let voter = self.settings.discover_voters || self.settings.voters.contains(&addr);
            let entry = self
                .peers
                .entry(addr)
                .or_insert_with(|| Peer::new(addr, voter));
            entry.run_id = Some(peer.run_id);
            entry.restored_at = Some(now);
        }
        if let Some(leader) = saved.leader {
            // The vote survives the restart, but not as a reason to fence:
            // its time is unknown, so it counts as cast long ago.
            let at = now
                .checked_sub(self.settings.failover_timeout)
                .unwrap_or(now);
            self.vote = Some(Vote {
                leader,
                epoch: saved.leader_epoch,
                at,
            });
        }
        self.dirty = false;
    }

    /// The state to save.
    pub fn saved_state(&self) -> SavedState {
        // Once a failover this proxy leads has promoted a replica, the saved
        // master is that replica (what the hellos announce under the new
        // epoch): a restart before the failover ends must not come back
        // believing in the old master under the new epoch.
        let (master, config_epoch) = self.announced_master();
        let replicas = std::iter::once(self.master.addr)
            .chain(self.replicas.keys().copied())
            .filter(|a| *a != master)
            .map(|a| a.to_string())
            .collect();
        SavedState {
            myid: self.myid.clone(),
            current_epoch: self.current_epoch,
            master_name: self.settings.name.clone(),
            master: master.to_string(),
            config_epoch,
            replicas,
            peers: self
                .peers
                .values()
                .filter_map(|p| {
                    p.run_id.as_ref().map(|id| SavedPeer {
                        addr: p.addr.to_string(),
                        run_id: id.clone(),
                    })
                })
                .collect(),
            leader: self.vote.as_ref().map(|v| v.leader.clone()),
            leader_epoch: self.vote.as_ref().map_or(0, |v| v.epoch),
            monitored: Vec::new(),
            overrides: self.overrides.clone(),
            sentinel_config: Vec::new(),
        }
    }

    /// How `addr` is shown and announced: its host name with
    /// `announce-hostnames` when the node at `addr` has one, else its IP.
    pub fn shown_host(&self, addr: SocketAddr) -> String {
        self.node(addr)
            .and_then(|n| n.host.as_ref())
            .filter(|_| self.settings.announce_hostnames)
            .cloned()
            .unwrap_or_else(|| addr.ip().to_string())
    }

    /// The host name the node at `addr` is known by, if any (under TLS,
    /// the name its certificate is checked against).
    pub fn host_of(&self, addr: SocketAddr) -> Option<&str> {
        self.node(addr).and_then(|n| n.host.as_deref())
    }

    /// The master or the replica at `addr`.
    fn node(&self, addr: SocketAddr) -> Option<&Node> {
        if addr == self.master.addr {
            Some(&self.master)
        } else {
            self.replicas.get(&addr)
        }
    }

    /// The master or the replica at `addr`, to update.
    fn node_mut(&mut self, addr: SocketAddr) -> Option<&mut Node> {
        if addr == self.master.addr {
            Some(&mut self.master)
        } else {
            self.replicas.get_mut(&addr)
        }
    }

    /// Every address the core wants a link to, and its kind.
    pub fn link_targets(&self) -> Vec<(SocketAddr, Target)> {
        std::iter::once(self.master.addr)
            .chain(self.replicas.keys().copied())
            .map(|a| (a, Target::Node))
            .chain(self.peers.keys().map(|a| (*a, Target::Peer)))
            .collect()
    }

    /// A session saw trouble on `addr`: check it at once. The route stays
    /// as it is until the checks answer (one refused connection, e.g. Redis
    /// at its `maxclients`, must not hold every session's commands).
    pub fn hint(&mut self, addr: SocketAddr) {
        if let Some(node) = self.node_mut(addr) {
            node.info_due = true;
            node.last_ping = None;
        }
    }
}

/// A random duration below `max`, from the standard library's randomly
/// keyed hasher (no dependency needed for a jitter).
fn random_below(max: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(max.as_nanos() as u64);
    let millis = max.as_millis().max(1) as u64;
    Duration::from_millis(hasher.finish() % millis)
}

/// Whether `period` has passed since `last` (or nothing happened yet).
pub fn elapsed(last: Option<Instant>, now: Instant, period: Duration) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= period)
}
