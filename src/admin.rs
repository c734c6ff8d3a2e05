//! The HTTP endpoints on `--metrics-listen`, served on the control thread:
//!
//! * `GET /metrics`: Prometheus text format (see [`crate::metrics`]);
//! * `GET /healthz`: 200 while the process runs;
//! * `GET /readyz`: 200 while a master is known and commands may be sent to
//!   it; 503 with the reason otherwise (for readiness probes);
//! * `GET /status`: the group as JSON (topology, epochs, peers, recent
//!   events, and the configuration with secrets redacted).
//!
//! A deliberately small HTTP/1.1 server: one request per connection, request
//! heads up to 8 KiB, a deadline on every connection. It never touches the
//! data path; it reads the switch and the status snapshot.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::proxy::Counters;
use crate::proxy::readers::ReadLoad;
use crate::status::Status;
use crate::switch::SwitchReader;

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// Deadline for reading a request and writing its response.
const DEADLINE: Duration = Duration::from_secs(5);

/// What the endpoints read.
#[derive(Clone)]
pub struct Sources {
    /// The Prometheus registry (`None` when metrics are not installed).
    pub metrics: Option<PrometheusHandle>,
    /// Data-path counters.
    pub counters: Arc<Counters>,
    /// The route in force.
    pub switch: SwitchReader,
    /// The control path's snapshot.
    pub status: watch::Receiver<Status>,
    /// The effective configuration, secrets redacted (`check-config`'s text).
    pub config: Arc<str>,
    /// The read endpoints: each group's name, its switch, and the sessions
    /// on each replica.
    pub reads: Vec<ReadSource>,
}

/// One read endpoint, as `/status` and the metrics show it.
#[derive(Debug, Clone)]
pub struct ReadSource {
    /// The group it reads from.
    pub group: String,
    /// The group's route (its `readers` are the replicas that qualify).
    pub switch: SwitchReader,
    /// Sessions bound to each replica.
    pub load: Arc<ReadLoad>,
}

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, sources: Sources, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            // The proxy is stopping.
            _ = stop.cancelled() => return,
            // A scraper or a probe.
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            if tokio::time::timeout(DEADLINE, handle(stream, &sources))
                .await
                .is_err()
            {
                debug!("admin request timed out");
            }
        });
    }
}

async fn handle(mut stream: TcpStream, sources: &Sources) {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > MAX_HEAD {
            let _ = respond(&mut stream, 431, "text/plain", b"request head too large\n").await;
            return;
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, kind, body) = route(method, path, sources);
    let _ = respond(&mut stream, status, kind, body.as_bytes()).await;
}

/// Picks the response for one request.
fn route(method: &str, path: &str, sources: &Sources) -> (u16, &'static str, String) {
    if method != "GET" {
        return (405, "text/plain", "only GET is served\n".to_owned());
    }
    match path {
        "/metrics" => match &sources.metrics {
            Some(handle) => {
                crate::metrics::export_traffic(&sources.counters);
                export_status(&sources.status.borrow(), &sources.switch);
                export_reads(&sources.status.borrow(), &sources.reads);
                let mut text = handle.render();
                crate::metrics::render_latency(&mut text, &sources.counters);
                (200, "text/plain; version=0.0.4", text)
            }
            None => (404, "text/plain", "metrics are not enabled\n".to_owned()),
        },
        "/healthz" => (200, "text/plain", "ok\n".to_owned()),
        "/readyz" => match readiness(&sources.status.borrow(), &sources.switch) {
            Ok(master) => (200, "text/plain", format!("ready: routing to {master}\n")),
            Err(reason) => (503, "text/plain", format!("not ready: {reason}\n")),
        },
        "/status" => (200, "application/json", status_json(sources)),
        _ => (
            404,
            "text/plain",
            "not found; try /metrics /healthz /readyz /status\n".to_owned(),
        ),
    }
}

/// The master commands go to now, or why there is none.
pub fn readiness(status: &Status, switch: &SwitchReader) -> Result<String, String> {
    match switch.current().master {
        Some(master) => Ok(master.to_string()),
        None => Err(status
            .held_reason
            .clone()
            .unwrap_or_else(|| "no master known yet".to_owned())),
    }
}

fn status_json(sources: &Sources) -> String {
    #[derive(serde::Serialize)]
    struct Document<'a> {
        routed_to: Option<String>,
        generation: u64,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        read_endpoints: Vec<ReadEndpoint>,
        #[serde(flatten)]
        status: &'a Status,
        config: &'a str,
    }
    #[derive(serde::Serialize)]
    struct ReadEndpoint {
        group: String,
        /// The replicas that qualify for reads now.
        replicas: Vec<String>,
        /// Sessions on each replica (those on the master as the fallback
        /// are not counted here).
        sessions: Vec<(String, usize)>,
    }
    let topology = sources.switch.current();
    let status = sources.status.borrow();
    let read_endpoints = sources
        .reads
        .iter()
        .map(|read| ReadEndpoint {
            group: read.group.clone(),
            replicas: read
                .switch
                .current()
                .readers
                .iter()
                .map(|r| r.addr.to_string())
                .collect(),
            sessions: read
                .load
                .snapshot()
                .into_iter()
                .map(|(a, n)| (a.to_string(), n))
                .collect(),
        })
        .collect();
    let doc = Document {
        routed_to: topology.master.map(|m| m.to_string()),
        generation: topology.generation,
        read_endpoints,
        status: &status,
        config: &sources.config,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")) + "\n"
}

/// Sets the topology gauges from the snapshot.
fn export_status(status: &Status, switch: &SwitchReader) {
    use crate::metrics::*;
    let routed = switch.current().master.map(|m| m.to_string());
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    metrics::gauge!(ROUTABLE).set(flag(routed.is_some()));
    for node in &status.nodes {
        let current = routed.as_deref() == Some(node.addr.as_str());
        metrics::gauge!(MASTER, "master_name" => status.master_name.clone(), "address" => node.addr.clone())
            .set(flag(current));
        // No role label: a node changes role on a failover, and a series per
        // role would leave the old one behind.
        metrics::gauge!(NODE_UP, "address" => node.addr.clone()).set(flag(node.up));
        metrics::gauge!(REPLICA_LAG, "address" => node.addr.clone())
            .set(node.lag_bytes.unwrap_or(0) as f64);
    }
    if status.nodes.is_empty() {
        // Following Sentinels: only the routed master is known; zero the
        // series of the previous one.
        static LAST: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        let mut last = LAST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(old) = last.take()
            && Some(&old) != routed.as_ref()
        {
            metrics::gauge!(MASTER, "master_name" => status.master_name.clone(), "address" => old)
                .set(0.0);
        }
        if let Some(addr) = &routed {
            metrics::gauge!(MASTER, "master_name" => status.master_name.clone(), "address" => addr.clone())
                .set(1.0);
            *last = Some(addr.clone());
        }
    }
    metrics::gauge!(CURRENT_EPOCH).set(status.current_epoch as f64);
    metrics::gauge!(CONFIG_EPOCH).set(status.config_epoch as f64);
    metrics::gauge!(MASTER_SDOWN).set(flag(status.sdown));
    metrics::gauge!(MASTER_ODOWN).set(flag(status.odown));
    for (kind, voter) in [("voter", true), ("observer", false)] {
        let known = status.peers.iter().filter(|p| p.voter == voter);
        let reachable = known.clone().filter(|p| p.reachable).count();
        metrics::gauge!(PEERS_KNOWN, "kind" => kind).set(known.count() as f64);
        metrics::gauge!(PEERS_REACHABLE, "kind" => kind).set(reachable as f64);
    }
    metrics::gauge!(QUORUM_REACHABLE).set(flag(status.quorum_reachable));
}

/// Sets each replica's read-endpoint sessions and lag in seconds; every
/// node the snapshot lists gets a value, so a replica left gets 0.
fn export_reads(status: &Status, reads: &[ReadSource]) {
    use crate::metrics::*;
    for node in &status.nodes {
        metrics::gauge!(REPLICA_LAG_SECONDS, "address" => node.addr.clone())
            .set(node.lag_seconds.unwrap_or(0) as f64);
    }
    for read in reads {
        let load = read.load.snapshot();
        for node in &status.nodes {
            let sessions = load
                .iter()
                .find(|(addr, _)| addr.to_string() == node.addr)
                .map_or(0, |(_, n)| *n);
            metrics::gauge!(READ_CLIENTS, "group" => read.group.clone(), "address" => node.addr.clone())
                .set(sessions as f64);
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    code: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}
