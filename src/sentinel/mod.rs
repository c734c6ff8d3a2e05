//! The sentinel core: a Redis Sentinel inside the proxy.
//!
//! A group of proxies (and, if wanted, real `redis-sentinel` processes) monitors
//! the master and its replicas, agrees that the master is down, elects one
//! leader per epoch, promotes the best replica and moves every proxy to it. It
//! speaks the Sentinel protocol on its own port, so Sentinels, proxies and
//! Sentinel-aware clients interoperate.
//!
//! Terms are Sentinel's: SDOWN (this proxy gets no valid reply within
//! `down-after`), ODOWN (at least `quorum` voters say SDOWN), current epoch
//! (election term), config epoch (the epoch a master was configured in; the
//! highest wins everywhere), leader (the voter elected for one epoch).
//! Membership is explicit: the voters are the configured peers plus this proxy
//! unless it is an observer.
//!
//! # Layout
//! * [`core`]: the state and its reactions, one file per job: monitor
//!   (timers, probes), health (SDOWN/ODOWN), observe (replies), hellos,
//!   election, stages (the failover), route (switching, fencing); no I/O;
//! * [`failover`], [`effect`]: the leaf types the core's parts share (a
//!   failover's stage and data, the vote; the jobs queued for the links);
//! * [`answer`]: the `SENTINEL` commands, one table, handlers by family;
//! * [`api`]: the RESP2/RESP3 server on the sentinel port;
//! * [`link`]: connections to nodes and peers;
//! * [`node`], [`mod@info`], [`hello`], [`select`], [`persist`], [`events`], [`scripts`]:
//!   the pieces, most of them pure;
//! * the [`Runner`] (this file): the I/O shell around the core, and the
//!   group's [`Source`].
//!
//! The core runs on the control thread. Its only contact with the data path is
//! its [`Committer`]: the runner commits the master whenever [`Core::route`]
//! changes.

pub mod answer;
pub mod api;
pub mod core;
pub mod effect;
pub mod events;
pub mod failover;
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
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use self::core::{Core, Settings};
use self::effect::Target;
use self::link::{Link, LinkOptions, Report};
use crate::config::Credentials;
use crate::control::{Commit, Committer, Source};
use crate::switch::Hint;

/// How often the core's timers run (Sentinel's own cron runs at 10 Hz).
const TICK: Duration = Duration::from_millis(100);

/// Reports that may wait for the core before links block.
const REPORTS: usize = 1024;

/// What the runner needs besides the core.
pub struct Runner {
    /// The core.
    pub core: Core,
    /// Where the route is committed.
    pub committer: Committer,
    /// Hints from sessions.
    pub hints: mpsc::Receiver<Hint>,
    /// Commands from the sentinel port.
    pub api: mpsc::Receiver<api::Request>,
    /// Credentials for nodes and peers.
    pub auth: Credentials,
    /// Where the status snapshot is published.
    pub status: tokio::sync::watch::Sender<crate::status::Status>,
}

impl Source for Runner {
    /// Runs the core (ticks, link reports, sentinel-port commands, hints)
    /// until `stop` is cancelled.
    async fn run(mut self, stop: CancellationToken) {
        let (report_tx, mut reports) = mpsc::channel::<Report>(REPORTS);
        let mut links: HashMap<SocketAddr, Link> = HashMap::new();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let link_timeout = (self.core.settings.down_after / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        let myid = &self.core.myid;
        let client_name = format!("sentinel-{}-cmd", myid.get(..8).unwrap_or(myid));
        loop {
            tokio::select! {
                // Stopping: links close with their parent token.
                _ = stop.cancelled() => break,
                // Periodic work.
                _ = ticker.tick() => self.core.tick(Instant::now()),
                // A reply or a hello from a link.
                Some(report) = reports.recv() => match report {
                    Report::Reply { addr, sent, result } => {
                        self.core.observe(addr, sent, result, Instant::now());
                    }
                    Report::Hello { payload } => self.core.take_hello(&payload, Instant::now()),
                },
                // A command on the sentinel port.
                Some(request) = self.api.recv() => {
                    let reply = self.core.answer(&request.args, Instant::now());
                    // A vote (or an epoch) must be on disk before the
                    // candidate hears of it: one vote per epoch survives a crash.
                    self.save();
                    let _ = request.reply.send(reply);
                }
                // A session saw the master misbehave.
                Some(hint) = self.hints.recv() => match hint {
                    Hint::Demoted(addr) | Hint::Unreachable(addr) => self.core.hint(addr),
                },
            }
            self.flush(&mut links, &report_tx, &stop, link_timeout, &client_name);
            self.publish();
            self.save();
            let status = self.core.status(Instant::now());
            self.status.send_if_modified(|current| {
                let changed = *current != status;
                if changed {
                    *current = status;
                }
                changed
            });
        }
    }
}

impl Runner {
    /// Hands queued jobs to the links, opening and closing links as the
    /// topology changes.
    fn flush(
        &mut self,
        links: &mut HashMap<SocketAddr, Link>,
        reports: &mpsc::Sender<Report>,
        stop: &CancellationToken,
        timeout: Duration,
        client_name: &str,
    ) {
        let targets = self.core.link_targets();
        let cut = &self.core.partitioned;
        links.retain(|addr, _| targets.iter().any(|(a, _)| a == addr) && !cut.contains(addr));
        for job in std::mem::take(&mut self.core.outbox) {
            if self.core.partitioned.contains(&job.to) {
                let lost = std::io::Error::new(std::io::ErrorKind::TimedOut, "simulated partition");
                let now = Instant::now();
                self.core.observe(
                    job.to,
                    job.sent,
                    Err(crate::backend::probe::ProbeError::Io(lost)),
                    now,
                );
                continue;
            }
            let link = links.entry(job.to).or_insert_with(|| {
                let options = LinkOptions {
                    auth: self.auth.clone(),
                    auth_on_demand: job.target == Target::Peer,
                    subscribe_hello: job.target == Target::Node,
                    timeout,
                    client_name: client_name.to_owned(),
                };
                Link::spawn(job.to, options, reports.clone(), stop)
            });
            if !link.send(job.sent, job.commands) {
                warn!(addr = %job.to, "control link queue full; job dropped");
                // The core waits for a reply that will never come: clear it.
                self.core.observe(
                    job.to,
                    job.sent,
                    Err(crate::backend::probe::ProbeError::Timeout),
                    Instant::now(),
                );
            }
        }
    }

    /// Commits the route when it changed.
    fn publish(&mut self) {
        let now = Instant::now();
        let (route, epoch) = self.core.route(now);
        match self.committer.commit(route, epoch) {
            Commit::Unchanged => {}
            Commit::Published { topology, switched } => {
                if switched && let Some(since) = self.core.unavailable_since.take() {
                    metrics::histogram!(crate::metrics::UNAVAILABLE_SECONDS)
                        .record(now.saturating_duration_since(since).as_secs_f64());
                }
                match route {
                    Some(addr) => {
                        info!(master = %addr, config_epoch = epoch, generation = topology.generation, "routing to the master")
                    }
                    None => warn!(
                        reason = self
                            .core
                            .fence_reason(now)
                            .unwrap_or("master role not confirmed"),
                        "holding commands: no usable master"
                    ),
                }
            }
            Commit::Stale(stale) => warn!(%stale, "not publishing an older topology"),
        }
    }

    /// Saves the state when it changed and a data directory is configured.
    fn save(&mut self) {
        if !self.core.dirty {
            return;
        }
        self.core.dirty = false;
        let Some(dir) = self.core.settings.data_dir.clone() else {
            return;
        };
        if let Err(error) = persist::save(&dir, &self.core.saved_state()) {
            warn!(%error, "cannot save sentinel state");
        }
    }
}
