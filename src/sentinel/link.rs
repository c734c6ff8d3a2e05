//! Control-path links to one node (a Redis server or a peer's sentinel port).
//!
//! A [`Link`] is a task that owns one command connection and runs the jobs the
//! core hands it, in order, each with a deadline; every job produces exactly one
//! [`Report::Reply`]. For Redis servers a second task keeps a subscription to
//! `__sentinel__:hello` and forwards each message as a [`Report::Hello`].
//!
//! Links decide nothing: they connect, send, and report. A broken connection is
//! reopened on the next job. Dropping the `Link` stops its tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::hello;
use crate::backend::connect::Dialer;
use crate::backend::probe::{Probe, ProbeError};
use crate::config::Credentials;
use crate::resp::value::{self, OwnedFrame};

/// Why the core sent a job: tells it how to read the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// `PING`, the liveness check.
    Ping,
    /// `INFO`, the role and replication check.
    Info,
    /// `PUBLISH __sentinel__:hello …`.
    Hello,
    /// `SENTINEL is-master-down-by-addr …` to a peer.
    AskMasterDown,
    /// `REPLICAOF NO ONE` to the replica being promoted.
    Promote,
    /// `FAILOVER TO …` to a healthy master (planned switchover).
    FailoverTo,
    /// `REPLICAOF host port` to a replica being reconfigured.
    Reconfigure,
}

/// What a link tells the core.
#[derive(Debug)]
pub enum Report {
    /// The outcome of one job: the last reply (for a `MULTI … EXEC` batch,
    /// `EXEC`'s), or the first failure.
    Reply {
        /// The group whose core sent the job.
        group: Arc<str>,
        /// The node the job went to.
        addr: SocketAddr,
        /// What the job was.
        sent: Sent,
        /// The reply, or why there is none.
        result: Result<OwnedFrame, ProbeError>,
    },
    /// A message seen on a node's `__sentinel__:hello` channel.
    Hello {
        /// The payload, unparsed.
        payload: String,
    },
}

/// Jobs a link may queue before new ones are dropped. The core never has more
/// than a few outstanding per node; a full queue means the node is stuck, and
/// the deadline of the job in front will report it.
const QUEUE: usize = 32;

/// Pause between attempts to re-subscribe to a node's hello channel.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(500);

/// A running link to one node.
#[derive(Debug)]
pub struct Link {
    jobs: mpsc::Sender<Job>,
    stop: CancellationToken,
}

#[derive(Debug)]
struct Job {
    sent: Sent,
    commands: Vec<Vec<String>>,
}

/// How a link connects.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Credentials; for peers they are offered only when the peer asks (`NOAUTH`).
    pub auth: Credentials,
    /// Whether to authenticate only on demand (peers and Sentinels may have no password).
    pub auth_on_demand: bool,
    /// Whether to subscribe to the node's hello channel (Redis servers only).
    pub subscribe_hello: bool,
    /// Deadline for connecting and for each reply.
    pub timeout: Duration,
    /// Prefix of the connection names shown in the node's `CLIENT LIST`
    /// (`<prefix>-cmd`, `<prefix>-pubsub`), as Sentinel names its links.
    pub client_name: String,
    /// The group the link works for, named in its replies.
    pub group: Arc<str>,
    /// Commands the node knows under other names (`CLIENT`, `SUBSCRIBE`),
    /// by upper-case original name.
    pub renamed: std::collections::BTreeMap<String, String>,
    /// How the node is reached (plain or TLS).
    pub dialer: Dialer,
    /// The host name the node is known by, if any (under TLS, the name its
    /// certificate is checked against).
    pub server_name: Option<String>,
}

impl LinkOptions {
    /// `command`'s name as the node knows it.
    fn name<'a>(&'a self, command: &'a str) -> &'a str {
        self.renamed.get(command).map_or(command, String::as_str)
    }
}

impl Link {
    /// Starts the tasks for `addr` on the current runtime.
    pub fn spawn(
        addr: SocketAddr,
        options: LinkOptions,
        reports: mpsc::Sender<Report>,
        parent: &CancellationToken,
    ) -> Link {
        let stop = parent.child_token();
        let (jobs, rx) = mpsc::channel(QUEUE);
        if options.subscribe_hello {
            tokio::spawn(subscribe(
                addr,
                options.clone(),
                reports.clone(),
                stop.clone(),
            ));
        }
        tokio::spawn(run_jobs(addr, options, rx, reports, stop.clone()));
        Link { jobs, stop }
    }

    /// Queues one job (several commands sent in order, e.g. `MULTI … EXEC`).
    /// Returns false if the queue is full; nothing is reported then.
    pub fn send(&self, sent: Sent, commands: Vec<Vec<String>>) -> bool {
        self.jobs.try_send(Job { sent, commands }).is_ok()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run_jobs(
    addr: SocketAddr,
    options: LinkOptions,
    mut jobs: mpsc::Receiver<Job>,
    reports: mpsc::Sender<Report>,
    stop: CancellationToken,
) {
    let mut conn: Option<Probe> = None;
    loop {
        let job = tokio::select! {
            // The node left the topology or the proxy is stopping.
            _ = stop.cancelled() => return,
            // The next job from the core.
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = run_job(addr, &options, &mut conn, &job.commands) => result,
        };
        if let Err(error) = &result
            && !matches!(error, ProbeError::Refused(_))
        {
            debug!(%addr, %error, "control link lost");
            conn = None;
        }
        let report = Report::Reply {
            group: Arc::clone(&options.group),
            addr,
            sent: job.sent,
            result,
        };
        if reports.send(report).await.is_err() {
            return;
        }
    }
}

/// Runs one job on the link's connection, opening it first if needed.
async fn run_job(
    addr: SocketAddr,
    options: &LinkOptions,
    conn: &mut Option<Probe>,
    commands: &[Vec<String>],
) -> Result<OwnedFrame, ProbeError> {
    if conn.is_none() {
        *conn = Some(open(addr, options).await?);
    }
    let Some(probe) = conn.as_mut() else {
        return Err(ProbeError::Closed);
    };
    // Every command of a job is sent even after one is refused: a refused
    // command inside `MULTI` (`-LOADING`) must not leave the connection in
    // the transaction; `EXEC` ends it (with `EXECABORT`). The job's outcome
    // is its first refusal, else its last reply.
    let mut outcome = Ok(OwnedFrame::Null);
    for command in commands {
        let reply = match probe.call(command).await {
            Err(ProbeError::Refused(message))
                if message.starts_with("NOAUTH") && options.auth.pass.is_some() =>
            {
                authenticate(probe, options).await?;
                probe.call(command).await
            }
            other => other,
        };
        match reply {
            Ok(frame) => {
                if outcome.is_ok() {
                    outcome = Ok(frame);
                }
            }
            Err(ProbeError::Refused(message)) => {
                if outcome.is_ok() {
                    outcome = Err(ProbeError::Refused(message));
                }
            }
            Err(error) => return Err(error),
        }
    }
    outcome
}

async fn open(addr: SocketAddr, options: &LinkOptions) -> Result<Probe, ProbeError> {
    let mut probe = connect(addr, options).await?;
    // A name helps operators read CLIENT LIST; a node that refuses it
    // (a peer without CLIENT) is still usable.
    let name = format!("{}-cmd", options.client_name);
    match probe
        .call(&[options.name("CLIENT"), "SETNAME", name.as_str()])
        .await
    {
        Ok(_) | Err(ProbeError::Refused(_)) => Ok(probe),
        Err(error) => Err(error),
    }
}

/// Connects to `addr` and, unless the link authenticates on demand, sends
/// `AUTH` and ignores a refusal, as Sentinel does: a password the node no
/// longer wants (its user deleted, `requirepass` cleared) must not keep the
/// link down while the node accepts it without one. A node that does want
/// one refuses the link's next command instead.
async fn connect(addr: SocketAddr, options: &LinkOptions) -> Result<Probe, ProbeError> {
    let mut probe = Probe::connect_named(
        &options.dialer,
        addr,
        options.server_name.as_deref(),
        &Credentials::default(),
        options.timeout,
    )
    .await?;
    if !options.auth_on_demand {
        match authenticate(&mut probe, options).await {
            Ok(()) | Err(ProbeError::Refused(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(probe)
}

/// Sends `AUTH` with the link's credentials (under the name the node knows
/// it by), if it has a password.
async fn authenticate(probe: &mut Probe, options: &LinkOptions) -> Result<(), ProbeError> {
    let Some(pass) = &options.auth.pass else {
        return Ok(());
    };
    let auth = options.name("AUTH");
    match &options.auth.user {
        Some(user) => probe.call(&[auth, user.as_str(), pass.as_str()]).await?,
        None => probe.call(&[auth, pass.as_str()]).await?,
    };
    Ok(())
}

/// Keeps a subscription to the node's hello channel and forwards messages.
async fn subscribe(
    addr: SocketAddr,
    options: LinkOptions,
    reports: mpsc::Sender<Report>,
    stop: CancellationToken,
) {
    loop {
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = listen_for_hellos(addr, &options, &reports) => outcome,
        };
        if let Err(error) = outcome {
            debug!(%addr, %error, "hello subscription lost");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(RESUBSCRIBE_PAUSE) => {}
        }
    }
}

async fn listen_for_hellos(
    addr: SocketAddr,
    options: &LinkOptions,
    reports: &mpsc::Sender<Report>,
) -> Result<(), ProbeError> {
    let mut probe = connect(addr, options).await?;
    let name = format!("{}-pubsub", options.client_name);
    probe
        .call(&[options.name("CLIENT"), "SETNAME", name.as_str()])
        .await?;
    probe
        .send(&[options.name("SUBSCRIBE"), hello::CHANNEL])
        .await?;
    loop {
        let frame = probe.read_frame().await?;
        let items = match frame {
            OwnedFrame::Array(items) => items,
            // The subscription was refused (`NOAUTH`): start over, as
            // Sentinel drops a link whose SUBSCRIBE fails.
            OwnedFrame::Error(message) => return Err(ProbeError::Refused(message)),
            _ => continue,
        };
        if items.len() == 3
            && value::as_str(&items[0]) == Some("message")
            && value::as_str(&items[1]) == Some(hello::CHANNEL)
            && let Some(payload) = value::as_str(&items[2])
        {
            // Hellos are periodic: dropping one when the core is busy is harmless.
            let _ = reports.try_send(Report::Hello {
                payload: payload.to_owned(),
            });
        }
    }
}
