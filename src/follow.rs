//! Following existing Redis Sentinels: the control path that publishes the
//! master a majority of Sentinels agree on.
//!
//! Every second (at once on a failover event from any Sentinel, or a [`Hint`]
//! from a session) the follower asks every configured Sentinel for
//! `SENTINEL master <name>` and counts the answers:
//! * a master is committed only when a majority of the configured Sentinels name
//!   the same address, none of them reports it `o_down` or a failover in
//!   progress, and `ROLE` on that node says `master`. One stale or partitioned
//!   Sentinel cannot move the proxy; the last answer never wins;
//! * if the committed master stops answering `ROLE` as a master, or any Sentinel
//!   reports it objectively down or being failed over, the follower publishes
//!   "no master": sessions hold their commands (never sending them anywhere)
//!   until a master is committed again. So writes stop before Sentinel promotes
//!   a replica, not after the old master was demoted.
//!
//! The follower is a [`Source`]: it owns the group's [`Committer`], the only
//! writer of its switch.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backend::connect::Dialer;
use crate::backend::probe::{self, Probe, ProbeError, Role};
use crate::config::Credentials;
use crate::control::{Commit, Committer, Source};
use crate::resp::value::{self, OwnedFrame};
use crate::switch::Hint;

/// How often the Sentinels are asked when nothing happens.
const CHECK_INTERVAL: Duration = Duration::from_millis(1000);

/// Deadline for one query to a Sentinel or probe of a node.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// Shortest gap between two checks triggered by events.
const MIN_GAP: Duration = Duration::from_millis(50);

/// What one Sentinel says about the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The master's address as the Sentinel knows it.
    pub addr: SocketAddr,
    /// The config epoch it was announced under.
    pub config_epoch: u64,
    /// Whether the Sentinel sees the master objectively down or is failing it over.
    pub unsettled: bool,
}

/// The outcome of counting Sentinel reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A majority names this master, and none of them is failing it over.
    Agreed {
        /// The master.
        addr: SocketAddr,
        /// The highest config epoch among the agreeing reports.
        config_epoch: u64,
    },
    /// No majority agrees (yet), or a failover is in progress.
    Undecided,
}

/// Counts reports from `total` configured Sentinels (pure, for tests).
pub fn tally(reports: &[Report], total: usize) -> Verdict {
    let majority = total / 2 + 1;
    let mut votes: HashMap<SocketAddr, (usize, u64, bool)> = HashMap::new();
    for r in reports {
        let entry = votes.entry(r.addr).or_insert((0, 0, false));
        entry.0 += 1;
        entry.1 = entry.1.max(r.config_epoch);
        entry.2 |= r.unsettled;
    }
    votes
        .into_iter()
        .find(|(_, (count, _, unsettled))| *count >= majority && !unsettled)
        .map_or(Verdict::Undecided, |(addr, (_, config_epoch, _))| {
            Verdict::Agreed { addr, config_epoch }
        })
}

/// Follows a set of Sentinels and publishes the agreed master.
pub struct Follower {
    /// The configured Sentinels.
    pub sentinels: Vec<SocketAddr>,
    /// The monitored group's name.
    pub master_name: String,
    /// Credentials for data nodes (ROLE probes).
    pub auth: Credentials,
    /// The one committer of the switch.
    pub committer: Committer,
    /// Trouble reported by sessions.
    pub hints: mpsc::Receiver<Hint>,
    /// Connections kept open between checks (Sentinels and data nodes), so a
    /// fleet of proxies does not open several connections per second each. A
    /// connection that fails or misses a deadline is dropped and reopened.
    pub connections: HashMap<SocketAddr, Probe>,
    /// What `/status` and `/readyz` show: the master, or why commands are held.
    pub status: tokio::sync::watch::Sender<crate::status::Status>,
    /// How Sentinels and data nodes are reached (plain or TLS).
    pub dialer: Dialer,
}

impl Source for Follower {
    /// Checks every second (and at once on an event or a hint) until
    /// `cancel` fires.
    async fn run(mut self, cancel: CancellationToken) {
        let wake = Arc::new(Notify::new());
        for &sentinel in &self.sentinels {
            tokio::spawn(watch_events(
                self.dialer.clone(),
                sentinel,
                self.auth.clone(),
                Arc::clone(&wake),
                cancel.clone(),
            ));
        }
        let mut tick = tokio::time::interval(CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
                _ = wake.notified() => debug!("sentinel event: checking now"),
                Some(hint) = self.hints.recv() => debug!(?hint, "session hint: checking now"),
            }
            self.check().await;
            tokio::time::sleep(MIN_GAP).await;
        }
    }
}

impl Follower {
    /// Asks every Sentinel, counts, verifies, publishes.
    async fn check(&mut self) {
        let mut queries = tokio::task::JoinSet::new();
        for &sentinel in &self.sentinels {
            let name = self.master_name.clone();
            let auth = self.auth.clone();
            let dialer = self.dialer.clone();
            let open = self.connections.remove(&sentinel);
            queries.spawn(async move {
                let (conn, report) = ask(&dialer, sentinel, open, &name, &auth).await;
                (sentinel, conn, report)
            });
        }
        let mut reports = Vec::with_capacity(self.sentinels.len());
        for (sentinel, conn, report) in queries.join_all().await {
            if let Some(conn) = conn {
                self.connections.insert(sentinel, conn);
            }
            reports.extend(report);
        }
        let current = self.committer.current();
        // A Sentinel failing the current master over will promote another node
        // while this one still accepts writes: writes acknowledged here from
        // now on could be lost. Hold them until the new master is agreed.
        if let Some(master) = current.master
            && reports.iter().any(|r| r.addr == master && r.unsettled)
        {
            info!(%master, "a Sentinel reports the master down or failing over; holding commands");
            let reason = format!("a Sentinel reports the master {master} down or failing over");
            return self.fence(current.master, current.config_epoch, reason);
        }
        let verdict = tally(&reports, self.sentinels.len());
        if let Verdict::Agreed { addr, config_epoch } = verdict {
            if current.master == Some(addr) && config_epoch <= current.config_epoch {
                return self.keep_or_fence(addr, current.config_epoch).await;
            }
            match self.role(addr).await {
                Ok(Role::Master) => {
                    match self
                        .committer
                        .commit(Some(addr), config_epoch.max(current.config_epoch))
                    {
                        Commit::Published { topology: t, .. } => {
                            self.show(Some(addr), None);
                            info!(
                                master = %addr, config_epoch = t.config_epoch, generation = t.generation,
                                "master committed: a majority of Sentinels agree and ROLE says master"
                            )
                        }
                        Commit::Unchanged => self.show(Some(addr), None),
                        Commit::Stale(stale) => warn!(%stale, "ignored a stale master"),
                    }
                    return;
                }
                Ok(role) => debug!(%addr, ?role, "agreed master does not say master yet"),
                Err(error) => debug!(%addr, %error, "agreed master unreachable"),
            }
            let reason =
                format!("the Sentinels agree on {addr}, but it does not answer ROLE as master yet");
            return self.fence(current.master, current.config_epoch, reason);
        }
        debug!(reports = reports.len(), "no Sentinel majority");
        match current.master {
            Some(master) => self.keep_or_fence(master, current.config_epoch).await,
            None => self.show(
                None,
                Some(format!(
                    "no majority of the {} Sentinels names a master ({} answered)",
                    self.sentinels.len(),
                    reports.len()
                )),
            ),
        }
    }

    /// Asks a data node for its `ROLE` over a kept connection.
    async fn role(&mut self, node: SocketAddr) -> Result<Role, ProbeError> {
        let mut conn = match self.connections.remove(&node) {
            Some(conn) => conn,
            None => Probe::connect(&self.dialer, node, &self.auth, QUERY_TIMEOUT).await?,
        };
        let role = probe::role_of(&mut conn).await?;
        self.connections.insert(node, conn);
        Ok(role)
    }

    /// Keeps the current master if it still says master; otherwise holds.
    async fn keep_or_fence(&mut self, master: SocketAddr, config_epoch: u64) {
        match self.role(master).await {
            Ok(Role::Master) => {}
            Ok(role) => {
                warn!(%master, ?role, "master no longer says master; holding commands");
                let reason = format!("the master {master} no longer answers ROLE as master");
                self.fence(Some(master), config_epoch, reason);
            }
            Err(error) => {
                warn!(%master, %error, "master unreachable; holding commands");
                let reason = format!("the master {master} is unreachable: {error}");
                self.fence(Some(master), config_epoch, reason);
            }
        }
    }

    /// Publishes "no master" unless that is already the state, and shows why.
    fn fence(&mut self, current: Option<SocketAddr>, config_epoch: u64, reason: String) {
        if let Commit::Published { .. } = self.committer.commit(None, config_epoch) {
            info!(previous = ?current, "no master committed: commands are held");
        }
        self.show(current, Some(reason));
    }

    /// Updates what `/status` and `/readyz` show (subscribers are woken only
    /// when something changed).
    fn show(&self, master: Option<SocketAddr>, held_reason: Option<String>) {
        let master = master.map(|m| m.to_string());
        self.status.send_if_modified(|status| {
            let changed = status.master != master || status.held_reason != held_reason;
            status.master = master;
            status.held_reason = held_reason;
            changed
        });
    }
}

/// `SENTINEL master <name>` on one Sentinel, over `open` if given. Returns
/// the connection if it is still good, and the report if there is one.
async fn ask(
    dialer: &Dialer,
    sentinel: SocketAddr,
    open: Option<Probe>,
    master_name: &str,
    auth: &Credentials,
) -> (Option<Probe>, Option<Report>) {
    let mut conn = match open {
        Some(conn) => conn,
        None => match connect_sentinel(dialer, sentinel, auth).await {
            Ok(conn) => conn,
            Err(error) => {
                debug!(%sentinel, %error, "sentinel unreachable");
                return (None, None);
            }
        },
    };
    match conn.call(&["SENTINEL", "master", master_name]).await {
        Ok(reply) => {
            let report = parse_report(&reply);
            (Some(conn), report)
        }
        Err(error) => {
            debug!(%sentinel, %error, "sentinel did not answer");
            (None, None)
        }
    }
}

/// Connects to a Sentinel, authenticating only if it asks for it: Sentinels
/// often have no password even where the data nodes do.
async fn connect_sentinel(
    dialer: &Dialer,
    sentinel: SocketAddr,
    auth: &Credentials,
) -> Result<Probe, ProbeError> {
    let mut conn = Probe::connect(dialer, sentinel, &Credentials::default(), QUERY_TIMEOUT).await?;
    match conn.call(&["PING"]).await {
        Err(ProbeError::Refused(message))
            if message.starts_with("NOAUTH") && auth.pass.is_some() =>
        {
            Probe::connect(dialer, sentinel, auth, QUERY_TIMEOUT).await
        }
        Err(error) => Err(error),
        Ok(_) => Ok(conn),
    }
}

/// Reads ip, port, flags and config-epoch from a `SENTINEL master` reply.
pub fn parse_report(reply: &OwnedFrame) -> Option<Report> {
    let ip: std::net::IpAddr = value::field(reply, "ip")?.parse().ok()?;
    let port: u16 = value::field(reply, "port")?.parse().ok()?;
    let flags = value::field(reply, "flags").unwrap_or("");
    let config_epoch = value::field(reply, "config-epoch")
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let unsettled = flags
        .split(',')
        .any(|f| matches!(f, "o_down" | "failover_in_progress" | "promoted"));
    Some(Report {
        addr: SocketAddr::new(ip, port),
        config_epoch,
        unsettled,
    })
}

/// Sentinel events that mean the master may be changing: each wakes the follower.
const EVENTS: [&str; 5] = [
    "+switch-master",
    "+try-failover",
    "+promoted-slave",
    "+odown",
    "-odown",
];

/// Subscribes to failover events on one Sentinel and wakes the follower on
/// each. Reconnects after failures.
async fn watch_events(
    dialer: Dialer,
    sentinel: SocketAddr,
    auth: Credentials,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    loop {
        let session = async {
            let mut conn = connect_sentinel(&dialer, sentinel, &auth).await?;
            let mut subscribe = vec!["SUBSCRIBE"];
            subscribe.extend(EVENTS);
            conn.send(&subscribe).await?;
            loop {
                let frame = conn.read_frame().await?;
                if let OwnedFrame::Array(items) = &frame
                    && items.first().and_then(value::as_str) == Some("message")
                {
                    let event = items.get(1).and_then(value::as_str).unwrap_or_default();
                    let detail = items.get(2).and_then(value::as_str).unwrap_or_default();
                    info!(%sentinel, event, detail, "sentinel event");
                    wake.notify_one();
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), ProbeError>(())
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            result = session => if let Err(error) = result {
                debug!(%sentinel, %error, "sentinel event stream lost; reconnecting");
            },
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(port: u16, config_epoch: u64, unsettled: bool) -> Report {
        Report {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            config_epoch,
            unsettled,
        }
    }

    #[test]
    fn a_majority_must_agree() {
        let a = report(1, 3, false);
        let b = report(2, 4, false);
        assert_eq!(
            tally(&[a.clone(), a.clone(), b.clone()], 3),
            Verdict::Agreed {
                addr: a.addr,
                config_epoch: 3
            }
        );
        // One stale or partitioned Sentinel cannot move the proxy.
        assert_eq!(tally(std::slice::from_ref(&b), 3), Verdict::Undecided);
        assert_eq!(tally(&[a.clone(), b.clone()], 3), Verdict::Undecided);
        // Majority of the configured set, not of those that answered.
        assert_eq!(tally(&[a.clone(), a.clone()], 5), Verdict::Undecided);
    }

    #[test]
    fn a_failover_in_progress_is_not_agreement() {
        let a = report(1, 3, false);
        let busy = report(1, 3, true);
        assert_eq!(tally(&[a.clone(), a, busy], 3), Verdict::Undecided);
    }

    #[test]
    fn reports_are_read_from_sentinel_replies() {
        let pairs = [
            ("name", "mymaster"),
            ("ip", "127.0.0.1"),
            ("port", "6380"),
            ("flags", "master,o_down"),
            ("config-epoch", "7"),
        ];
        let reply = OwnedFrame::Array(
            pairs
                .iter()
                .flat_map(|(k, v)| {
                    [
                        OwnedFrame::BulkString(k.as_bytes().to_vec()),
                        OwnedFrame::BulkString(v.as_bytes().to_vec()),
                    ]
                })
                .collect(),
        );
        assert_eq!(parse_report(&reply), Some(report(6380, 7, true)));
    }
}
