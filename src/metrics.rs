//! Every metric the proxy exports: names (prefix `sentinel_proxy_`, units and
//! `_total` as Prometheus names them), help texts, and the Prometheus recorder.
//!
//! Two ways in, by cost:
//! * per-command and per-byte traffic is counted in plain atomics
//!   ([`crate::proxy::Counters`]) and copied into the registry at scrape time
//!   by [`export_traffic`], so the hot path never looks up a metric;
//! * rare events (a switch, a held command, a failover step) go through the
//!   `metrics` macros directly, where they happen.
//!
//! Labels are bounded: command classes, node roles and addresses of the
//! group's own nodes, abort reasons. Never client addresses or keys.

use std::sync::OnceLock;
use std::time::Instant;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::proxy::Counters;
use crate::resp::command::Class;

/// Client connections accepted since start.
pub const CONNECTIONS: &str = "sentinel_proxy_client_connections_total";
/// Client connections open now.
pub const CONNECTIONS_OPEN: &str = "sentinel_proxy_client_connections";
/// Client connections refused, by reason.
pub const CONNECTIONS_REJECTED: &str = "sentinel_proxy_client_connections_rejected_total";
/// TLS handshakes on a TLS endpoint that failed (no or a wrong client
/// certificate, not TLS at all, too slow).
pub const TLS_HANDSHAKE_FAILURES: &str = "sentinel_proxy_tls_handshake_failures_total";
/// Connections to Redis servers or peers refused for a TLS reason (their
/// certificate not trusted or not for the name, the proxy's refused).
pub const TLS_SERVER_REFUSALS: &str = "sentinel_proxy_tls_backend_handshake_failures_total";
/// Commands by class.
pub const COMMANDS: &str = "sentinel_proxy_commands_total";
/// Open connections to the master by kind: `own` (one client's), `shared`.
pub const BACKEND_CONNECTIONS: &str = "sentinel_proxy_backend_connections";
/// Client connections whose commands go over a shared backend connection.
pub const SHARED_SESSIONS: &str = "sentinel_proxy_shared_backend_clients";
/// Bytes read from clients.
pub const BYTES_IN: &str = "sentinel_proxy_client_read_bytes_total";
/// Bytes written to clients.
pub const BYTES_OUT: &str = "sentinel_proxy_client_written_bytes_total";
/// Times a session started holding commands because no master was usable.
pub const COMMANDS_HELD: &str = "sentinel_proxy_commands_held_total";
/// How long held commands waited before they were sent.
pub const HOLD_SECONDS: &str = "sentinel_proxy_hold_duration_seconds";
/// Commands answered `-MASTERDOWN` (held too long, or fenced): never executed.
pub const COMMANDS_REFUSED: &str = "sentinel_proxy_commands_refused_total";
/// Sessions that re-bound to the master after a switch (or a fenced pause),
/// their state replayed.
pub const SESSIONS_MOVED: &str = "sentinel_proxy_switch_sessions_moved_total";
/// Sessions that had replies in flight at a switch and drained them first.
pub const SESSIONS_DRAINED: &str = "sentinel_proxy_switch_sessions_drained_total";
/// Sessions closed on a switch (pinned state, or `on_switch = close`).
pub const SESSIONS_CLOSED_ON_SWITCH: &str = "sentinel_proxy_switch_sessions_closed_total";
/// Master switches the data path followed.
pub const SWITCHES: &str = "sentinel_proxy_switches_total";
/// The master commands are routed to (info gauge: 1 on the current one).
pub const MASTER: &str = "sentinel_proxy_master_info";
/// Whether commands may be sent to the master now (0 while held or fenced).
pub const ROUTABLE: &str = "sentinel_proxy_master_routable";
/// Whether each node of the group answers (1) or not (0).
pub const NODE_UP: &str = "sentinel_proxy_node_up";
/// Each node's replication lag behind the master, in bytes of offset.
pub const REPLICA_LAG: &str = "sentinel_proxy_replica_lag_bytes";
/// Each replica's lag as its master reports it: seconds since it last acknowledged.
pub const REPLICA_LAG_SECONDS: &str = "sentinel_proxy_replica_lag_seconds";
/// Read-endpoint clients bound to each replica, by group and address.
pub const READ_CLIENTS: &str = "sentinel_proxy_read_clients";
/// Sentinel's current epoch.
pub const CURRENT_EPOCH: &str = "sentinel_proxy_current_epoch";
/// The config epoch of the current master.
pub const CONFIG_EPOCH: &str = "sentinel_proxy_config_epoch";
/// Whether this proxy sees the master subjectively down.
pub const MASTER_SDOWN: &str = "sentinel_proxy_master_sdown";
/// Whether the master is objectively down (a quorum agrees).
pub const MASTER_ODOWN: &str = "sentinel_proxy_master_odown";
/// Peers (proxies and Sentinels) known.
pub const PEERS_KNOWN: &str = "sentinel_proxy_peers";
/// Peers heard from within down-after.
pub const PEERS_REACHABLE: &str = "sentinel_proxy_peers_reachable";
/// Whether a majority of the voters is reachable (0 = this proxy is fenced).
pub const QUORUM_REACHABLE: &str = "sentinel_proxy_quorum_reachable";
/// Failovers this proxy started (tried to lead).
pub const FAILOVERS_STARTED: &str = "sentinel_proxy_failovers_started_total";
/// Failovers this proxy was elected to lead.
pub const FAILOVERS_LED: &str = "sentinel_proxy_failovers_led_total";
/// Failovers this proxy led to the end.
pub const FAILOVERS_SUCCEEDED: &str = "sentinel_proxy_failovers_succeeded_total";
/// Failovers abandoned, by reason.
pub const FAILOVERS_ABORTED: &str = "sentinel_proxy_failovers_aborted_total";
/// Time from ODOWN to the switch to the new master.
pub const FAILOVER_SECONDS: &str = "sentinel_proxy_failover_duration_seconds";
/// Time from the old master's last valid reply to commands being routed to the new one.
pub const UNAVAILABLE_SECONDS: &str = "sentinel_proxy_failover_unavailable_seconds";
/// Version and commit, as labels of a constant 1.
pub const BUILD_INFO: &str = "sentinel_proxy_build_info";
/// Proxy-added latency (rendered from the data path's atomic histograms).
pub const ADDED_LATENCY: &str = "sentinel_proxy_added_latency_seconds";
/// Seconds since the process started.
pub const UPTIME: &str = "sentinel_proxy_uptime_seconds";

/// Histogram buckets for pauses and failover durations, in seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Installs the Prometheus recorder as the global `metrics` recorder and
/// describes every metric. Call once, before the proxy starts.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(SECONDS_BUCKETS)?
        .install_recorder()?;
    STARTED.get_or_init(Instant::now);
    describe_all();
    // Rare events start at zero, so increase() sees their first occurrence.
    for name in [
        FAILOVERS_STARTED,
        FAILOVERS_LED,
        FAILOVERS_SUCCEEDED,
        SWITCHES,
        COMMANDS_HELD,
        COMMANDS_REFUSED,
        SESSIONS_MOVED,
        SESSIONS_DRAINED,
        SESSIONS_CLOSED_ON_SWITCH,
    ] {
        metrics::counter!(name).absolute(0);
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => crate::build::COMMIT)
        .set(1.0);
    Ok(handle)
}

fn describe_all() {
    describe_counter!(CONNECTIONS, "Client connections accepted.");
    describe_gauge!(CONNECTIONS_OPEN, "Client connections open now.");
    describe_counter!(
        CONNECTIONS_REJECTED,
        "Client connections refused, by reason."
    );
    describe_counter!(COMMANDS, "Commands received from clients, by class.");
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes on a TLS endpoint (client or sentinel port) that failed (the connection was closed)."
    );
    describe_counter!(
        TLS_SERVER_REFUSALS,
        "Connections to Redis servers or peers (--tls-backend) refused for a TLS reason: their certificate not trusted or not for the name, or the proxy's refused."
    );
    describe_gauge!(
        BACKEND_CONNECTIONS,
        "Open connections to the master: own (one client's) or shared by the clients in the default connection state (--share-backend)."
    );
    describe_gauge!(
        SHARED_SESSIONS,
        "Client connections whose commands go over a shared backend connection."
    );
    describe_counter!(BYTES_IN, Unit::Bytes, "Bytes read from clients.");
    describe_counter!(BYTES_OUT, Unit::Bytes, "Bytes written to clients.");
    describe_counter!(
        COMMANDS_HELD,
        "Times a session held commands while no master was usable."
    );
    describe_histogram!(
        HOLD_SECONDS,
        Unit::Seconds,
        "How long held commands waited for a master."
    );
    describe_counter!(
        COMMANDS_REFUSED,
        "Commands answered -MASTERDOWN, never executed."
    );
    describe_counter!(
        SESSIONS_MOVED,
        "Sessions re-bound to the master after a switch, state replayed."
    );
    describe_counter!(
        SESSIONS_DRAINED,
        "Sessions that drained in-flight replies on a switch."
    );
    describe_counter!(SESSIONS_CLOSED_ON_SWITCH, "Sessions closed on a switch.");
    describe_counter!(SWITCHES, "Master switches followed by the data path.");
    describe_gauge!(MASTER, "The master commands are routed to (1), by address.");
    describe_gauge!(
        ROUTABLE,
        "1 while commands may be sent to the master, 0 while held or fenced."
    );
    describe_gauge!(NODE_UP, "1 if the node answers, by address.");
    describe_gauge!(
        REPLICA_LAG_SECONDS,
        Unit::Seconds,
        "Seconds since the replica last acknowledged, as its master reports it (lag= in INFO)."
    );
    describe_gauge!(
        READ_CLIENTS,
        "Read-endpoint clients bound to each replica (--read-listen), by group and address."
    );
    describe_gauge!(
        REPLICA_LAG,
        Unit::Bytes,
        "Replication offset lag behind the master."
    );
    describe_gauge!(CURRENT_EPOCH, "Sentinel current epoch.");
    describe_gauge!(CONFIG_EPOCH, "Config epoch of the current master.");
    describe_gauge!(
        MASTER_SDOWN,
        "1 while this proxy sees the master subjectively down."
    );
    describe_gauge!(MASTER_ODOWN, "1 while the master is objectively down.");
    describe_gauge!(PEERS_KNOWN, "Peers (proxies and Sentinels) known, by kind.");
    describe_gauge!(
        PEERS_REACHABLE,
        "Peers heard from within down-after, by kind."
    );
    describe_gauge!(
        QUORUM_REACHABLE,
        "1 while a majority of the voters is reachable."
    );
    describe_counter!(FAILOVERS_STARTED, "Failovers this proxy started.");
    describe_counter!(FAILOVERS_LED, "Failovers this proxy was elected to lead.");
    describe_counter!(FAILOVERS_SUCCEEDED, "Failovers this proxy led to the end.");
    describe_counter!(FAILOVERS_ABORTED, "Failovers abandoned, by reason.");
    describe_histogram!(
        FAILOVER_SECONDS,
        Unit::Seconds,
        "Time from ODOWN to the switch."
    );
    describe_histogram!(
        UNAVAILABLE_SECONDS,
        Unit::Seconds,
        "Time from the old master's last valid reply to routing to the new master."
    );
    describe_gauge!(BUILD_INFO, "Version and commit of this build.");
    describe_gauge!(UPTIME, Unit::Seconds, "Seconds since start.");
}

/// Copies the data path's atomic counters into the registry (at scrape time).
pub fn export_traffic(counters: &Counters) {
    use std::sync::atomic::Ordering::Relaxed;
    metrics::counter!(CONNECTIONS).absolute(counters.accepted.load(Relaxed));
    metrics::gauge!(CONNECTIONS_OPEN).set(counters.open_connections() as f64);
    metrics::counter!(CONNECTIONS_REJECTED, "reason" => "max_clients")
        .absolute(counters.rejected_max_clients.load(Relaxed));
    for class in Class::ALL {
        metrics::counter!(COMMANDS, "class" => class.as_str()).absolute(counters.commands(class));
    }
    metrics::gauge!(BACKEND_CONNECTIONS, "kind" => "own")
        .set(counters.own_backends.load(Relaxed) as f64);
    metrics::gauge!(BACKEND_CONNECTIONS, "kind" => "shared")
        .set(counters.shared_backends.load(Relaxed) as f64);
    metrics::gauge!(SHARED_SESSIONS).set(counters.sessions_on_shared.load(Relaxed) as f64);
    metrics::counter!(BYTES_IN).absolute(counters.bytes_in.load(Relaxed));
    metrics::counter!(BYTES_OUT).absolute(counters.bytes_out.load(Relaxed));
    if let Some(started) = STARTED.get() {
        metrics::gauge!(UPTIME).set(started.elapsed().as_secs_f64());
    }
}

/// Appends the proxy-added latency histograms (request: batch read from the
/// client to written to the backend; reply: read from the backend to written
/// to the client). They live in atomics on the data path, so they are
/// rendered here rather than recorded through the registry.
pub fn render_latency(out: &mut String, counters: &Counters) {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(
        out,
        "# HELP {ADDED_LATENCY} Time a batch of requests or replies spends in the proxy, read to write."
    );
    let _ = writeln!(out, "# TYPE {ADDED_LATENCY} histogram");
    for (direction, histogram) in [
        ("request", &counters.request_latency),
        ("reply", &counters.reply_latency),
    ] {
        let mut cumulative = 0;
        for (i, bucket) in histogram.buckets.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            let le = match crate::proxy::LATENCY_BOUNDS_NS.get(i) {
                Some(ns) => format!("{}", *ns as f64 / 1e9),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(
                out,
                "{ADDED_LATENCY}_bucket{{direction=\"{direction}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = histogram.sum_ns.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "{ADDED_LATENCY}_sum{{direction=\"{direction}\"}} {sum}"
        );
        let count = histogram.count.load(Relaxed);
        let _ = writeln!(
            out,
            "{ADDED_LATENCY}_count{{direction=\"{direction}\"}} {count}"
        );
    }
}
