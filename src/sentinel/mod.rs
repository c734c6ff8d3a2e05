//! The sentinel core: a Redis Sentinel inside the proxy.
//!
//! A group of proxies (and, if wanted, real `redis-sentinel` processes) monitors
//! the master and its replicas, agrees that the master is down, elects one
//! leader per epoch, promotes the best replica and moves every proxy to it. It
//! speaks the Sentinel protocol on its own port, so Sentinels, proxies and
//! Sentinel-aware clients interoperate. Like Sentinel, one process monitors
//! any number of groups, added at start-up or with `SENTINEL MONITOR`.
//!
//! Terms are Sentinel's: SDOWN (this proxy gets no valid reply within
//! `down-after`), ODOWN (at least `quorum` voters say SDOWN), current epoch
//! (election term), config epoch (the epoch a master was configured in; the
//! highest wins everywhere), leader (the voter elected for one epoch).
//! Membership is explicit: the voters are the configured peers plus this proxy
//! unless it is an observer.
//!
//! # Layout
//! * [`groups`]: every group and what they share (run id, current epoch,
//!   periods, the defaults of a group added at run time);
//! * [`core`]: one group's state and its reactions, one file per job: monitor
//!   (timers, probes), health (SDOWN/ODOWN), observe (replies), hellos,
//!   election, stages (the failover), route (switching, fencing); no I/O;
//! * [`failover`], [`effect`]: the leaf types the core's parts share (a
//!   failover's stage and data, the vote; the jobs queued for the links);
//! * [`answer`]: the `SENTINEL` commands, one table, handlers by family;
//! * [`api`]: the RESP2/RESP3 server on the sentinel port;
//! * [`link`]: connections to nodes and peers;
//! * [`node`], [`mod@info`], [`hello`], [`select`], [`persist`], [`events`], [`scripts`]:
//!   the pieces, most of them pure;
//! * the [`Runner`] (this file): the I/O shell around the groups (their links,
//!   the sentinel port's requests, saving), and their [`Source`].
//!
//! The cores run on the control thread. Their only contact with the data path
//! is a [`Committer`] per group that serves clients: the runner commits the
//! master whenever that group's [`Core::route`] changes.

pub mod answer;
pub mod api;
pub mod core;
pub mod effect;
pub mod events;
pub mod failover;
pub mod groups;
pub mod hello;
pub mod info;
pub mod link;
pub mod node;
pub mod persist;
pub mod scripts;
pub mod select;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use self::core::{Core, Settings};
use self::effect::Target;
pub use self::groups::Groups;
use self::link::{Link, LinkOptions, Report};
use crate::backend::connect::Dialer;
use crate::config::Credentials;
use crate::control::{Commit, Committer, Source};
use crate::switch::Hint;

/// How often the core's timers run (Sentinel's own cron runs at 10 Hz).
const TICK: Duration = Duration::from_millis(100);

/// Reports that may wait for the core before links block.
const REPORTS: usize = 1024;

/// How often an unreachable master's host name is looked up again.
const LOOKUP_PERIOD: Duration = Duration::from_secs(1);

/// The answer to a host-name lookup the runner started for a group.
#[derive(Debug)]
struct Resolved {
    /// The group.
    group: String,
    /// The master's address when the lookup started.
    old: SocketAddr,
    /// Where the name points now, if it resolved.
    new: Option<SocketAddr>,
}

/// Where the Sentinel's state is kept across restarts.
#[derive(Debug, Clone)]
pub enum Store {
    /// Nowhere: state lives as long as the process.
    Memory,
    /// `--data-dir`: one state file, written atomically ([`persist`]).
    DataDir(std::path::PathBuf),
    /// `--sentinel-conf`: the Sentinel's own config file, rewritten in place
    /// as Sentinel rewrites it ([`crate::sentinel_conf::standin::rewrite`]).
    SentinelConf(std::path::PathBuf),
}

/// Where the status snapshot behind `/status`, `/readyz` and the topology
/// metrics is published: the first group's, with every other group's
/// status in its `groups`.
#[derive(Debug)]
pub struct StatusFeed {
    /// The first group's name.
    pub first: String,
    /// The channel the admin endpoint reads.
    pub sender: tokio::sync::watch::Sender<crate::status::Status>,
}

/// The I/O shell around the Sentinel's groups.
pub struct Runner {
    /// Every group and what they share.
    pub groups: Groups,
    /// The committer of each group with a client endpoint, by name.
    pub served: HashMap<String, Committer>,
    /// Where the status snapshot goes, when anything reads one.
    pub status: Option<StatusFeed>,
    /// Hints from sessions (about any group: they name a node's address).
    pub hints: mpsc::Receiver<Hint>,
    /// Commands from the sentinel port.
    pub api: mpsc::Receiver<api::Request>,
    /// Where state is saved.
    pub store: Store,
    /// How nodes and peers are reached (plain, or TLS as with Sentinel's
    /// `tls-replication yes`).
    pub dialer: Dialer,
}

/// The links of one group, and the credentials they were opened with.
#[derive(Default)]
struct GroupLinks {
    /// By node or peer address.
    links: HashMap<SocketAddr, Link>,
    /// The credentials in use (a `SENTINEL SET auth-pass` reopens the links).
    auth: Credentials,
    /// The credentials offered to peers (`sentinel-user`/`sentinel-pass`).
    peer_auth: Credentials,
    /// The renamed commands in use (a `SENTINEL SET rename-command` reopens
    /// the links, whose own commands are renamed too).
    renamed: std::collections::BTreeMap<String, String>,
}

impl Source for Runner {
    /// Runs the groups (ticks, link reports, sentinel-port commands, hints)
    /// until `stop` is cancelled.
    async fn run(mut self, stop: CancellationToken) {
        let (report_tx, mut reports) = mpsc::channel::<Report>(REPORTS);
        let (resolved_tx, mut resolved) = mpsc::channel::<Resolved>(16);
        let mut looked_up: HashMap<String, Instant> = HashMap::new();
        let mut links: HashMap<String, GroupLinks> = HashMap::new();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // Stopping: links close with their parent token.
                _ = stop.cancelled() => break,
                // Periodic work.
                _ = ticker.tick() => {
                    let now = Instant::now();
                    for core in self.groups.cores.values_mut() {
                        core.tick(now);
                    }
                    self.look_up_names(&mut looked_up, &resolved_tx, now);
                }
                // A master's host name, looked up again.
                Some(found) = resolved.recv() => {
                    if let (Some(core), Some(new)) = (self.groups.cores.get_mut(&found.group), found.new) {
                        core.readdress(found.old, new, Instant::now());
                    }
                }
                // A reply or a hello from a link.
                Some(report) = reports.recv() => match report {
                    Report::Reply { group, addr, sent, result } => {
                        if let Some(core) = self.groups.cores.get_mut(&*group) {
                            core.observe(addr, sent, result, Instant::now());
                        }
                    }
                    Report::Hello { payload } => {
                        let now = Instant::now();
                        for core in self.groups.cores.values_mut() {
                            core.take_hello(&payload, now);
                        }
                    }
                },
                // A command on the sentinel port.
                Some(request) = self.api.recv() => {
                    let mut reply = self.groups.answer(&request.args, Instant::now());
                    // A vote (or an epoch) must be on disk before the
                    // candidate hears of it: one vote per epoch survives a
                    // crash; and a configuration change that cannot be saved
                    // is refused, as Sentinel refuses it.
                    let changed = self.groups.dirty;
                    if let Err(error) = self.save()
                        && changed
                        && !matches!(reply, crate::resp::value::OwnedFrame::Error(_))
                    {
                        reply = crate::resp::value::OwnedFrame::Error(format!(
                            "ERR Failed to save config file: {error}"
                        ));
                    }
                    let _ = request.reply.send(reply);
                }
                // A session saw the master misbehave.
                Some(hint) = self.hints.recv() => match hint {
                    Hint::Demoted(addr) | Hint::Unreachable(addr) => {
                        for core in self.groups.cores.values_mut() {
                            core.hint(addr);
                        }
                    }
                },
            }
            self.groups.sync_epochs();
            self.flush(&mut links, &report_tx, &stop);
            self.publish();
            if let Err(error) = self.save() {
                warn!(%error, "cannot save sentinel state");
            }
            if self.groups.cores.values().any(|core| core.crash_now) {
                tracing::error!("SENTINEL SIMULATE-FAILURE: crashing on purpose (exit code 99)");
                std::process::exit(99);
            }
        }
    }
}

impl Runner {
    /// Hands every group's queued jobs to its links, opening and closing
    /// links as the groups and their topologies change.
    fn flush(
        &mut self,
        links: &mut HashMap<String, GroupLinks>,
        reports: &mpsc::Sender<Report>,
        stop: &CancellationToken,
    ) {
        links.retain(|name, _| self.groups.cores.contains_key(name));
        let client_name = format!(
            "sentinel-{}",
            self.groups.myid.get(..8).unwrap_or(&self.groups.myid)
        );
        let sentinel_auth = &self.groups.template.sentinel_auth;
        for (name, core) in &mut self.groups.cores {
            let group = links.entry(name.clone()).or_default();
            let peer_auth = if sentinel_auth.pass.is_some() {
                sentinel_auth
            } else {
                &core.settings.auth
            };
            if group.auth != core.settings.auth
                || group.peer_auth != *peer_auth
                || group.renamed != core.settings.renamed_commands
            {
                // Copied only when they changed, not at every event.
                let peer_auth = peer_auth.clone();
                // The jobs on the old links will never report.
                for addr in group.links.keys() {
                    core.jobs_lost(*addr);
                }
                group.links.clear();
                group.auth = core.settings.auth.clone();
                group.peer_auth = peer_auth;
                group.renamed = core.settings.renamed_commands.clone();
            }
            flush_group(name, core, group, reports, stop, &client_name, &self.dialer);
        }
    }

    /// Starts a lookup of each unreachable master's host name, at most once
    /// per [`LOOKUP_PERIOD`] per group, off the control loop (a slow
    /// resolver must not stall it); answers come back as [`Resolved`].
    fn look_up_names(
        &self,
        looked_up: &mut HashMap<String, Instant>,
        answers: &mpsc::Sender<Resolved>,
        now: Instant,
    ) {
        looked_up.retain(|name, _| self.groups.cores.contains_key(name));
        for (name, core) in &self.groups.cores {
            let Some((old, host)) = core.names_to_look_up() else {
                continue;
            };
            if looked_up
                .get(name)
                .is_some_and(|at| now.saturating_duration_since(*at) < LOOKUP_PERIOD)
            {
                continue;
            }
            looked_up.insert(name.clone(), now);
            let (answers, group) = (answers.clone(), name.clone());
            tokio::spawn(async move {
                let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), old.port()))
                    .await
                    .map(Iterator::collect)
                    .unwrap_or_default();
                let new = found
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or_else(|| found.first())
                    .copied();
                let _ = answers.send(Resolved { group, old, new }).await;
            });
        }
    }

    /// Commits each served group's route when it changed, and publishes the
    /// status snapshot.
    fn publish(&mut self) {
        let now = Instant::now();
        for (name, committer) in &mut self.served {
            if let Some(core) = self.groups.cores.get_mut(name) {
                commit_route(core, committer, now);
            }
        }
        let Some(feed) = &self.status else {
            return;
        };
        let Some(first) = self.groups.cores.get(&feed.first) else {
            return;
        };
        let mut status = first.status(now);
        status.groups = self
            .groups
            .cores
            .iter()
            .filter(|(name, _)| **name != feed.first)
            .map(|(_, core)| core.status(now))
            .collect();
        feed.sender.send_if_modified(|current| {
            let changed = *current != status;
            if changed {
                *current = status;
            }
            changed
        });
    }

    /// Saves the state when it changed, where the store says.
    fn save(&mut self) -> Result<(), String> {
        let dirty = self.groups.dirty || self.groups.cores.values().any(|c| c.dirty);
        if !dirty {
            return Ok(());
        }
        self.groups.dirty = false;
        for core in self.groups.cores.values_mut() {
            core.dirty = false;
        }
        match &self.store {
            Store::Memory => Ok(()),
            Store::DataDir(dir) => match self.groups.saved_state() {
                Some(state) => persist::save(dir, &state).map_err(|e| e.to_string()),
                None => Ok(()),
            },
            Store::SentinelConf(path) => {
                let old = match std::fs::read_to_string(path) {
                    Ok(text) => text,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(e) => return Err(e.to_string()),
                };
                let text = crate::sentinel_conf::standin::rewrite(&old, &self.groups.conf_lines());
                persist::write_atomically(path, &text).map_err(|e| e.to_string())
            }
        }
    }
}

/// The sentinel port: its bound listener and what its connections need.
pub struct Port {
    /// The bound listener (non-blocking); `None` for a TLS-only port
    /// (Sentinel's `port 0` with a `tls-port`).
    pub listener: Option<std::net::TcpListener>,
    /// A TLS endpoint of the same port (`tls_sentinel_listen`): its bound
    /// listener and certificate.
    pub tls: Option<(std::net::TcpListener, std::sync::Arc<crate::tls::ServerTls>)>,
    /// Where its connections send the commands the groups answer.
    pub api: mpsc::Sender<api::Request>,
    /// The events its subscribers receive.
    pub events: tokio::sync::broadcast::Sender<api::Event>,
    /// Its password and client limit.
    pub options: api::Options,
}

/// Serves the sentinel port and runs the groups on the current (control)
/// runtime until `stop` is cancelled, then waits for the port's
/// connections to close.
pub async fn run_with_port(runner: Runner, port: Port, stop: CancellationToken) {
    let tls = match port
        .tls
        .map(|(l, tls)| (tokio::net::TcpListener::from_std(l), tls))
    {
        Some((Ok(listener), tls)) => Some((listener, tls)),
        Some((Err(error), _)) => {
            tracing::error!(%error, "cannot serve the sentinel port over TLS");
            None
        }
        None => None,
    };
    let server = match port
        .listener
        .map(tokio::net::TcpListener::from_std)
        .transpose()
    {
        Ok(listener) => Some(tokio::spawn(api::serve(
            listener,
            tls,
            port.api,
            port.events,
            port.options,
            stop.clone(),
        ))),
        Err(error) => {
            tracing::error!(%error, "cannot serve the sentinel port");
            None
        }
    };
    runner.run(stop).await;
    if let Some(server) = server {
        let _ = server.await;
    }
}

/// Hands one group's queued jobs to its links.
fn flush_group(
    group: &str,
    core: &mut Core,
    links: &mut GroupLinks,
    reports: &mpsc::Sender<Report>,
    stop: &CancellationToken,
    client_name: &str,
    dialer: &Dialer,
) {
    let timeout =
        (core.settings.down_after / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let targets = core.link_targets();
    let closing: Vec<SocketAddr> = links
        .links
        .keys()
        .filter(|addr| !targets.iter().any(|(a, _)| a == *addr) || core.partitioned.contains(*addr))
        .copied()
        .collect();
    for addr in closing {
        links.links.remove(&addr);
        // Its jobs in flight will never report.
        core.jobs_lost(addr);
    }
    let group: Arc<str> = Arc::from(group);
    for mut job in std::mem::take(&mut core.outbox) {
        for command in &mut job.commands {
            if let Some(name) = command.first_mut() {
                *name = core.settings.command_name(name).to_owned();
            }
        }
        if core.partitioned.contains(&job.to) {
            let lost = std::io::Error::new(std::io::ErrorKind::TimedOut, "simulated partition");
            core.observe(
                job.to,
                job.sent,
                Err(crate::backend::probe::ProbeError::Io(lost)),
                Instant::now(),
            );
            continue;
        }
        let link = links.links.entry(job.to).or_insert_with(|| {
            let options = LinkOptions {
                auth: match job.target {
                    Target::Node => links.auth.clone(),
                    Target::Peer => links.peer_auth.clone(),
                },
                auth_on_demand: job.target == Target::Peer,
                subscribe_hello: job.target == Target::Node,
                timeout,
                client_name: client_name.to_owned(),
                group: Arc::clone(&group),
                renamed: core.settings.renamed_commands.clone(),
                dialer: dialer.clone(),
                server_name: core.host_of(job.to).map(str::to_owned),
            };
            Link::spawn(job.to, options, reports.clone(), stop)
        });
        if !link.send(job.sent, job.commands) {
            warn!(addr = %job.to, "control link queue full; job dropped");
            // The core waits for a reply that will never come: clear it.
            core.observe(
                job.to,
                job.sent,
                Err(crate::backend::probe::ProbeError::Timeout),
                Instant::now(),
            );
        }
    }
}

/// Commits `core`'s route to `committer` when it changed.
fn commit_route(core: &mut Core, committer: &mut Committer, now: Instant) {
    let (route, epoch) = core.route(now);
    let host = route.and_then(|addr| core.host_of(addr));
    let readers = core.readers();
    match committer.commit_route(route, host, &readers, epoch) {
        Commit::Unchanged => {}
        Commit::Published { topology, switched } => {
            if switched && let Some(since) = core.unavailable_since.take() {
                metrics::histogram!(crate::metrics::UNAVAILABLE_SECONDS)
                    .record(now.saturating_duration_since(since).as_secs_f64());
            }
            match route {
                Some(addr) => {
                    info!(master = %addr, config_epoch = epoch, generation = topology.generation, "routing to the master")
                }
                None => warn!(
                    reason = core
                        .fence_reason(now)
                        .unwrap_or("master role not confirmed"),
                    "holding commands: no usable master"
                ),
            }
        }
        Commit::Stale(stale) => warn!(%stale, "not publishing an older topology"),
    }
}
