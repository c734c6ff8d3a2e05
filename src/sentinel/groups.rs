//! Every group this Sentinel monitors, and what the groups share.
//!
//! Redis Sentinel monitors any number of masters, each under a name; so does
//! the proxy. Each group is a [`Core`]: its own master, replicas, peers,
//! votes, config epoch and failover. What belongs to the Sentinel rather than
//! to one group lives here:
//! * the run id, the same in every group's hellos;
//! * the current epoch: one per Sentinel, as in Sentinel, so an epoch used in
//!   one group's election is never reused in another's ([`Groups::sync_epochs`]);
//! * the periods `SENTINEL DEBUG` changes, for every group at once;
//! * what a group created at run time by `SENTINEL MONITOR` starts with
//!   ([`Template`]: Sentinel's defaults, this proxy's announce address);
//! * which groups serve clients on an endpoint of their own ([`Groups::served`]):
//!   those were configured at start-up and are not removed at run time.
//!
//! Pure, like the core: no I/O. The runner (the module root) owns the links,
//! carries out each core's jobs, and saves what [`Groups::dirty`] and the
//! cores' own flags say changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::api::Event;
use super::core::{Core, Settings, SimulatedFailure, Timers};
use super::events::Events;
use super::persist::{SavedGroup, SavedState};
use super::scripts::Scripts;
use crate::config::Credentials;

/// A duration in whole milliseconds, as saved.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Sentinel's `down-after-milliseconds` for a group created at run time.
pub const DEFAULT_DOWN_AFTER: Duration = Duration::from_millis(30_000);

/// Sentinel's `failover-timeout` for a group created at run time.
pub const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_millis(180_000);

/// Sentinel's `parallel-syncs` for a group created at run time.
pub const DEFAULT_PARALLEL_SYNCS: u32 = 1;

/// What every group created at run time starts with, besides its name,
/// master and quorum.
#[derive(Debug, Clone)]
pub struct Template {
    /// The sentinel-port address announced in hellos.
    pub announce: SocketAddr,
    /// This Sentinel never votes or leads.
    pub observer: bool,
    /// Accept `SENTINEL SIMULATE-PARTITION` (tests only).
    pub fault_injection: bool,
    /// Credentials for the group's nodes until `SENTINEL SET auth-pass`.
    pub auth: Credentials,
    /// Where every group's events are published.
    pub events: broadcast::Sender<Event>,
    /// `down-after-milliseconds` of a new group (`SENTINEL DEBUG
    /// default-down-after`).
    pub down_after: Duration,
    /// `failover-timeout` of a new group.
    pub failover_timeout: Duration,
    /// `SENTINEL SET` may not change script paths (Sentinel's
    /// `deny-scripts-reconfig`, on by default).
    pub deny_scripts_reconfig: bool,
    /// Sentinel's `resolve-hostnames`: addresses may be host names.
    pub resolve_hostnames: bool,
    /// Sentinel's `announce-hostnames`: names, not IPs, in hellos and replies.
    pub announce_hostnames: bool,
    /// `announce-ip` as configured (`announce` holds the address in use).
    pub announce_ip: Option<std::net::IpAddr>,
    /// `announce-port` as configured.
    pub announce_port: Option<u16>,
    /// `sentinel-user`/`sentinel-pass`: what this Sentinel logs in to other
    /// Sentinels with; unset, the nodes' credentials are offered.
    pub sentinel_auth: Credentials,
    /// The sentinel port's connection counts, for `INFO`.
    pub port_stats: std::sync::Arc<super::api::PortStats>,
}

impl Template {
    /// The settings of a group named `name` with `quorum`, as Sentinel
    /// starts one: this template's defaults and identity, every Sentinel
    /// heard from a voter.
    pub fn settings(&self, name: &str, quorum: u32) -> Settings {
        Settings {
            name: name.to_owned(),
            quorum,
            down_after: self.down_after,
            master_reboot_down_after: None,
            failover_timeout: self.failover_timeout,
            parallel_syncs: DEFAULT_PARALLEL_SYNCS,
            observer: self.observer,
            voters: Vec::new(),
            discover_voters: true,
            announce: self.announce,
            fault_injection: self.fault_injection,
            auth: self.auth.clone(),
            renamed_commands: Default::default(),
            resolve_hostnames: self.resolve_hostnames,
            announce_hostnames: self.announce_hostnames,
        }
    }

    /// Sentinel's defaults, announcing `announce`, publishing on `events`.
    pub fn new(announce: SocketAddr, events: broadcast::Sender<Event>) -> Template {
        Template {
            announce,
            observer: false,
            fault_injection: false,
            auth: Credentials::default(),
            events,
            down_after: DEFAULT_DOWN_AFTER,
            failover_timeout: DEFAULT_FAILOVER_TIMEOUT,
            deny_scripts_reconfig: true,
            resolve_hostnames: false,
            announce_hostnames: false,
            announce_ip: None,
            announce_port: None,
            sentinel_auth: Credentials::default(),
            port_stats: Default::default(),
        }
    }
}

/// Why `SENTINEL MONITOR` refused a group, in Sentinel's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    /// A group of that name is monitored already.
    #[error("ERR Duplicated master name")]
    Duplicate,
    /// The quorum is zero.
    #[error("ERR Quorum must be 1 or greater.")]
    Quorum,
}

/// Why `SENTINEL REMOVE` refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoveError {
    /// No group of that name.
    #[error("ERR No such master with that name")]
    Unknown,
    /// The group serves clients on an endpoint configured at start-up.
    #[error("ERR master {0} serves clients on this proxy; remove it from the configuration")]
    Served(String),
}

/// The groups of one Sentinel.
#[derive(Debug)]
pub struct Groups {
    /// This Sentinel's run id, shared by every group.
    pub myid: String,
    /// The groups by name.
    pub cores: BTreeMap<String, Core>,
    /// What a group created at run time starts with.
    pub template: Template,
    /// The periods of every group (`SENTINEL DEBUG`).
    pub timers: Timers,
    /// Where every group's failovers crash this Sentinel
    /// (`SENTINEL SIMULATE-FAILURE`).
    pub simulated_failure: SimulatedFailure,
    /// Groups with a client endpoint of their own.
    pub served: BTreeSet<String>,
    /// A group was added or removed, or a setting changed: save.
    pub dirty: bool,
    /// The `SENTINEL CONFIG SET` settings given at run time, `[name, value]`,
    /// the latest of each: saved, and replayed after a restart.
    pub config_overrides: Vec<Vec<String>>,
}

impl Groups {
    /// No groups yet, under `myid`.
    pub fn new(myid: String, template: Template) -> Groups {
        Groups {
            myid,
            cores: BTreeMap::new(),
            template,
            timers: Timers::default(),
            simulated_failure: SimulatedFailure::default(),
            served: BTreeSet::new(),
            dirty: false,
            config_overrides: Vec::new(),
        }
    }

    /// Adds `core` as configured at start-up; its run id becomes the
    /// Sentinel's (the first group's, when restored from a saved state).
    pub fn insert(&mut self, mut core: Core) {
        if self.cores.is_empty() {
            self.myid = core.myid.clone();
        } else {
            core.myid = self.myid.clone();
        }
        core.timers = self.timers;
        core.simulated_failure = self.simulated_failure;
        self.cores.insert(core.settings.name.clone(), core);
        self.sync_epochs();
    }

    /// `SENTINEL MONITOR name ip port quorum`: starts monitoring a new group
    /// with Sentinel's defaults. Its peers are every Sentinel heard from, as
    /// in Sentinel: a group made at run time has no list of voters.
    /// `host` is the name the master was given by, if not an IP address.
    pub fn monitor(
        &mut self,
        name: &str,
        master: SocketAddr,
        host: Option<String>,
        quorum: u32,
        now: Instant,
    ) -> Result<(), MonitorError> {
        if self.cores.contains_key(name) {
            return Err(MonitorError::Duplicate);
        }
        if quorum == 0 {
            return Err(MonitorError::Quorum);
        }
        let t = &self.template;
        let settings = t.settings(name, quorum);
        let mut events = Events::new(t.events.clone());
        events.scripts = Scripts::default();
        let mut core = Core::new(settings, master, None, events, now);
        core.master.host = host;
        core.myid = self.myid.clone();
        core.current_epoch = self.current_epoch();
        core.timers = self.timers;
        core.simulated_failure = self.simulated_failure;
        let description = format!("{} quorum {quorum}", super::events::master(name, master));
        core.events.emit("+monitor", description);
        self.cores.insert(name.to_owned(), core);
        self.dirty = true;
        Ok(())
    }

    /// `SENTINEL REMOVE name`: stops monitoring the group (its links close
    /// when the runner next looks).
    pub fn remove(&mut self, name: &str) -> Result<(), RemoveError> {
        if self.served.contains(name) {
            return Err(RemoveError::Served(name.to_owned()));
        }
        let Some(mut core) = self.cores.remove(name) else {
            return Err(RemoveError::Unknown);
        };
        let description = super::events::master(name, core.master.addr);
        core.events.emit("-monitor", description);
        self.dirty = true;
        Ok(())
    }

    /// The Sentinel's current epoch: the highest any group has seen.
    pub fn current_epoch(&self) -> u64 {
        self.cores
            .values()
            .map(|c| c.current_epoch)
            .max()
            .unwrap_or(0)
    }

    /// Raises every group's current epoch to the Sentinel's, as Sentinel
    /// keeps one current epoch for all its masters.
    pub fn sync_epochs(&mut self) {
        let epoch = self.current_epoch();
        for core in self.cores.values_mut() {
            if core.current_epoch < epoch {
                core.current_epoch = epoch;
                core.dirty = true;
            }
        }
    }

    /// Sets the periods of every group.
    pub fn set_timers(&mut self, timers: Timers) {
        self.timers = timers;
        for core in self.cores.values_mut() {
            core.timers = timers;
        }
    }

    /// The state to save in `--data-dir`: the first served group's at the
    /// top (the file's layout before there were several groups), every group
    /// started at run time under `monitored`; `None` with no group at all.
    pub fn saved_state(&self) -> Option<SavedState> {
        let primary = self
            .served
            .iter()
            .find_map(|name| self.cores.get(name))
            .or_else(|| self.cores.values().next())?;
        let mut state = primary.saved_state();
        state.myid = self.myid.clone();
        state.current_epoch = self.current_epoch();
        state.sentinel_config = self.config_overrides.clone();
        state.monitored = self
            .cores
            .values()
            .filter(|core| core.settings.name != primary.settings.name)
            .map(|core| {
                let s = &core.settings;
                SavedGroup {
                    quorum: s.quorum,
                    down_after_ms: millis(s.down_after),
                    failover_timeout_ms: millis(s.failover_timeout),
                    parallel_syncs: s.parallel_syncs,
                    master_reboot_down_after_ms: s.master_reboot_down_after.map_or(0, millis),
                    auth_user: s.auth.user.clone(),
                    auth_pass: s.auth.pass.clone(),
                    renamed_commands: s.renamed_commands.clone(),
                    master_host: core.master.host.clone(),
                    state: core.saved_state(),
                }
            })
            .collect();
        Some(state)
    }

    /// Takes back what a previous run saved of its other groups: a group
    /// configured again (a `[[group]]` table) keeps its configured settings
    /// and gets its saved state (its master may have changed since); a group
    /// a previous run started with `SENTINEL MONITOR` is started again from
    /// its saved settings and state.
    pub fn restore_monitored(&mut self, saved: Vec<SavedGroup>, now: Instant) {
        for group in saved {
            let name = group.state.master_name.clone();
            let Ok(master) = group.state.master.parse::<SocketAddr>() else {
                tracing::warn!(group = %name, master = %group.state.master, "saved group has no usable master address; not monitored");
                continue;
            };
            let mut state = group.state;
            state.myid = self.myid.clone();
            if let Some(configured) = self.cores.remove(&name) {
                let Core {
                    settings,
                    events,
                    master: configured_master,
                    ..
                } = configured;
                let mut core = Core::new(settings, master, Some(state), events, now);
                if core.master.addr == configured_master.addr {
                    core.master.host = configured_master.host;
                }
                self.insert(core);
                self.replay_overrides(&name);
                continue;
            }
            if self
                .monitor(&name, master, None, group.quorum.max(1), now)
                .is_err()
            {
                continue;
            }
            let Some(core) = self.cores.remove(&name) else {
                continue;
            };
            let mut settings = core.settings;
            settings.down_after = Duration::from_millis(group.down_after_ms.max(1));
            settings.failover_timeout = Duration::from_millis(group.failover_timeout_ms.max(1));
            settings.parallel_syncs = group.parallel_syncs.max(1);
            settings.master_reboot_down_after = (group.master_reboot_down_after_ms > 0)
                .then(|| Duration::from_millis(group.master_reboot_down_after_ms));
            settings.auth = Credentials {
                user: group.auth_user,
                pass: group.auth_pass,
            };
            settings.renamed_commands = group.renamed_commands;
            let events = Events::new(self.template.events.clone());
            let mut core = Core::new(settings, master, Some(state), events, now);
            core.master.host = group.master_host;
            self.insert(core);
        }
        self.dirty = false;
    }

    /// The Sentinel's state as `sentinel.conf` directives, in the order
    /// Sentinel writes them: its own settings, then each group's monitor
    /// line, settings that differ from Sentinel's defaults, epochs, known
    /// replicas and Sentinels, and last the current epoch.
    pub fn conf_lines(&self) -> Vec<Vec<String>> {
        let mut lines: Vec<Vec<String>> = Vec::new();
        let mut line = |words: &[&str]| {
            lines.push(
                std::iter::once("sentinel")
                    .chain(words.iter().copied())
                    .map(str::to_owned)
                    .collect(),
            );
        };
        let t = &self.template;
        line(&["myid", &self.myid]);
        if !t.deny_scripts_reconfig {
            line(&["deny-scripts-reconfig", "no"]);
        }
        if t.resolve_hostnames {
            line(&["resolve-hostnames", "yes"]);
        }
        if t.announce_hostnames {
            line(&["announce-hostnames", "yes"]);
        }
        for (name, core) in &self.cores {
            let s = &core.settings;
            let (master, config_epoch) = core.announced_master();
            let (ip, port) = (core.shown_host(master), master.port().to_string());
            line(&["monitor", name, &ip, &port, &s.quorum.to_string()]);
            if s.down_after != DEFAULT_DOWN_AFTER {
                line(&[
                    "down-after-milliseconds",
                    name,
                    &millis(s.down_after).to_string(),
                ]);
            }
            if s.failover_timeout != DEFAULT_FAILOVER_TIMEOUT {
                line(&[
                    "failover-timeout",
                    name,
                    &millis(s.failover_timeout).to_string(),
                ]);
            }
            if s.parallel_syncs != DEFAULT_PARALLEL_SYNCS {
                line(&["parallel-syncs", name, &s.parallel_syncs.to_string()]);
            }
            if let Some(period) = s.master_reboot_down_after {
                line(&[
                    "master-reboot-down-after-period",
                    name,
                    &millis(period).to_string(),
                ]);
            }
            for (key, script) in [
                ("notification-script", &core.events.scripts.notification),
                (
                    "client-reconfig-script",
                    &core.events.scripts.client_reconfig,
                ),
            ] {
                if let Some(path) = script {
                    line(&[key, name, &path.to_string_lossy()]);
                }
            }
            if let Some(user) = &s.auth.user {
                line(&["auth-user", name, user]);
            }
            if let Some(pass) = &s.auth.pass {
                line(&["auth-pass", name, pass]);
            }
            line(&["config-epoch", name, &config_epoch.to_string()]);
            let leader_epoch = core.vote.as_ref().map_or(0, |v| v.epoch);
            line(&["leader-epoch", name, &leader_epoch.to_string()]);
            let replicas = std::iter::once(core.master.addr)
                .chain(core.replicas.keys().copied())
                .filter(|a| *a != master);
            for replica in replicas {
                let (ip, port) = (core.shown_host(replica), replica.port().to_string());
                line(&["known-replica", name, &ip, &port]);
            }
            for peer in core.peers.values() {
                if let Some(run_id) = &peer.run_id {
                    let (ip, port) = (peer.addr.ip().to_string(), peer.addr.port().to_string());
                    line(&["known-sentinel", name, &ip, &port, run_id]);
                }
            }
            for (from, to) in &s.renamed_commands {
                line(&["rename-command", name, from, to]);
            }
        }
        line(&["current-epoch", &self.current_epoch().to_string()]);
        if let Some(ip) = t.announce_ip {
            line(&["announce-ip", &ip.to_string()]);
        }
        if let Some(port) = t.announce_port {
            line(&["announce-port", &port.to_string()]);
        }
        if let Some(user) = &t.sentinel_auth.user {
            line(&["sentinel-user", user]);
        }
        if let Some(pass) = &t.sentinel_auth.pass {
            line(&["sentinel-pass", pass]);
        }
        lines
    }

    /// Whether any group is in TILT (the clock or the process stalled; every
    /// group sees the same stall).
    pub fn tilt(&self) -> bool {
        self.cores.values().any(|c| c.tilt.is_on())
    }
}
