//! The HTTP endpoints: `/metrics` in Prometheus text format with the traffic
//! the test caused, `/healthz`, `/readyz` (503 with a reason while fenced),
//! `/status` as JSON.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{self, Proxy, RedisServer, assert_eventually};

/// Samples of a Prometheus text exposition: `name{labels}` → value. Every
/// sample must have a `# HELP` and a `# TYPE` line for its family.
pub fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut help = std::collections::HashSet::new();
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help.insert(rest.split(' ').next().unwrap_or_default().to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let name = series.split('{').next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|base| help.contains(*base))
            .unwrap_or(name);
        assert!(help.contains(family), "no HELP line for {name}");
        assert!(
            name.starts_with("sentinel_proxy_"),
            "unprefixed metric {name}"
        );
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// The metrics of `proxy`, parsed.
pub fn scrape(proxy: &Proxy) -> HashMap<String, f64> {
    let (code, body) = proxy.http_get("/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    parse_prometheus(&body)
}

#[test]
fn metrics_count_the_traffic_the_test_caused() {
    let redis = RedisServer::spawn();
    let proxy = Proxy::spawn(&["--master", &redis.addr().to_string()]);
    assert_eventually!(
        Duration::from_secs(10),
        proxy.http_get("/readyz").is_ok_and(|(code, _)| code == 200)
    );
    let (code, body) = proxy.http_get("/healthz").expect("healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    let mut conn = support::redis_conn_with_timeout(proxy.addr(), None, Duration::from_secs(5))
        .expect("connect");
    for i in 0..25 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .query::<()>(&mut conn)
            .expect("SET");
    }
    for i in 0..10 {
        redis::cmd("GET")
            .arg(format!("k{i}"))
            .query::<String>(&mut conn)
            .expect("GET");
    }
    assert_eventually!(Duration::from_secs(5), {
        let m = scrape(&proxy);
        m.get("sentinel_proxy_commands_total{class=\"write\"}") == Some(&25.0)
            && m.get("sentinel_proxy_commands_total{class=\"read\"}") == Some(&10.0)
    });
    let m = scrape(&proxy);
    assert_eq!(m.get("sentinel_proxy_client_connections"), Some(&1.0));
    assert!(m["sentinel_proxy_client_connections_total"] >= 1.0);
    // 25 SET replies (+OK) and 10 GET replies ($1 v) at least.
    assert!(m["sentinel_proxy_client_written_bytes_total"] >= (25 * 5 + 10 * 7) as f64);
    assert!(m["sentinel_proxy_client_read_bytes_total"] > 0.0);
    let master = format!(
        "sentinel_proxy_master_info{{master_name=\"mymaster\",address=\"{}\"}}",
        redis.addr()
    );
    assert_eq!(m.get(&master), Some(&1.0), "{m:?}");
    assert_eq!(m.get("sentinel_proxy_master_routable"), Some(&1.0));
    // A healthy master: connecting a client is not holding its commands.
    assert_eq!(m.get("sentinel_proxy_commands_held_total"), Some(&0.0));
    assert_eq!(m.get("sentinel_proxy_failovers_started_total"), Some(&0.0));
    assert!(
        m.keys()
            .any(|k| k.starts_with("sentinel_proxy_build_info{") && k.contains("version=")),
        "build info"
    );

    // Every forwarded batch and every reply batch was timed.
    for direction in ["request", "reply"] {
        let count =
            m[&format!("sentinel_proxy_added_latency_seconds_count{{direction=\"{direction}\"}}")];
        let inf = m[&format!(
            "sentinel_proxy_added_latency_seconds_bucket{{direction=\"{direction}\",le=\"+Inf\"}}"
        )];
        assert!(
            count >= 35.0,
            "{direction}: {count} batches timed for 35 commands"
        );
        assert_eq!(inf, count);
    }

    let (code, status) = proxy.http_get("/status").expect("status");
    assert_eq!(code, 200);
    assert!(
        status.contains(&format!("\"routed_to\": \"{}\"", redis.addr())),
        "{status}"
    );
    assert!(status.contains("\"source\": \"sentinel-core\""), "{status}");
    let (code, _) = proxy.http_get("/nope").expect("404");
    assert_eq!(code, 404);
}

/// A proxy whose voters do not answer is fenced: `/readyz` says why with a
/// 503, and commands are held, then refused with -MASTERDOWN.
#[test]
fn readyz_is_503_with_the_reason_while_fenced() {
    let redis = RedisServer::spawn();
    // Two voters that never answer: this proxy can never hear a majority.
    let silent_a = support::loopback(support::free_port()).to_string();
    let silent_b = support::loopback(support::free_port()).to_string();
    let proxy = Proxy::spawn(&[
        "--master",
        &redis.addr().to_string(),
        "--peer",
        &silent_a,
        "--peer",
        &silent_b,
        "--hold-timeout-ms",
        "300",
    ]);
    assert_eventually!(
        Duration::from_secs(10),
        proxy
            .http_get("/readyz")
            .is_ok_and(|(code, body)| code == 503 && body.contains("no majority of voters")),
        "readyz: {:?}",
        proxy.http_get("/readyz")
    );
    let mut client = support::RespClient::connect(proxy.addr());
    let reply = client.command(&["SET", "fenced", "1"]);
    assert!(
        reply.starts_with(b"-MASTERDOWN"),
        "{}",
        support::client::show(&reply)
    );
    assert!(
        redis
            .cmd(&["EXISTS", "fenced"])
            .is_ok_and(|v| v == redis::Value::Int(0))
    );
    let m = scrape(&proxy);
    assert_eq!(m.get("sentinel_proxy_quorum_reachable"), Some(&0.0));
    assert!(m["sentinel_proxy_commands_refused_total"] >= 1.0);
}

/// `sentinel-proxy healthcheck` (the container's HEALTHCHECK) succeeds
/// against a running proxy and fails against nothing.
#[test]
fn the_healthcheck_subcommand_reflects_healthz() {
    let redis = RedisServer::spawn();
    let proxy = Proxy::spawn(&["--master", &redis.addr().to_string()]);
    let run = |addr: String| {
        Proxy::command()
            .args(["healthcheck", &addr])
            .output()
            .expect("run healthcheck")
    };
    let ok = run(proxy.metrics_addr().to_string());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let nothing = support::loopback(support::free_port()).to_string();
    let failed = run(nothing);
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("unhealthy"));
}

/// While SIGTERM drains a session stuck in `BLPOP`, the control thread keeps
/// serving: health endpoints answer. Guards against a control-path loop that
/// spun once the switch was retired for shutdown.
#[test]
fn health_endpoints_answer_during_a_shutdown_drain() {
    let redis = RedisServer::spawn();
    let mut proxy = Proxy::spawn(&[
        "--master",
        &redis.addr().to_string(),
        "--drain-timeout-ms",
        "4000",
    ]);
    let mut blocked = support::RespClient::connect(proxy.addr());
    assert_eq!(blocked.command(&["PING"]), b"+PONG\r\n");
    blocked.send_command(&["BLPOP", "never", "0"]);
    assert_eventually!(
        Duration::from_secs(5),
        redis.cmd(&["INFO", "clients"]).is_ok_and(
            |v| support::value_to_string(&v).is_some_and(|t| t.contains("blocked_clients:1"))
        )
    );
    proxy.sigterm();
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (code, _) = proxy
        .http_get("/healthz")
        .expect("healthz during the drain");
    assert_eq!(code, 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "healthz took {:?} during the drain",
        started.elapsed()
    );
}
