//! The built-in sentinel core: groups of proxies that monitor Redis, agree the
//! master is down, elect one leader, promote the best replica and move every
//! proxy to it, with no Redis Sentinel anywhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Commands, RedisResult};

use crate::support::{self, Proxy, RedisServer, redis_conn_with_timeout};

/// Failure detection used by these tests (Sentinel's tests use the same order).
const DOWN_AFTER_MS: &str = "1000";

/// A master, its replicas and a group of proxies running the sentinel core.
pub struct Group {
    pub nodes: Vec<RedisServer>,
    pub proxies: Vec<Proxy>,
}

impl Group {
    /// `replicas` replicas of a fresh master and `proxies` voting proxies that
    /// list each other as peers, with quorum 2.
    pub fn spawn(replicas: usize, proxies: usize) -> Group {
        let master = RedisServer::spawn();
        let mut nodes = vec![master];
        for _ in 0..replicas {
            let replica = RedisServer::builder().replica_of(nodes[0].addr()).spawn();
            nodes.push(replica);
        }
        for replica in &nodes[1..] {
            support::assert_eventually!(Duration::from_secs(20), replica.master_link_up());
        }
        let sentinel_ports: Vec<SocketAddr> = (0..proxies)
            .map(|_| support::loopback(support::free_port()))
            .collect();
        let master_addr = nodes[0].addr().to_string();
        let proxies = sentinel_ports
            .iter()
            .map(|me| {
                let mut args: Vec<String> = vec![
                    "--master".into(),
                    master_addr.clone(),
                    "--sentinel-listen".into(),
                    me.to_string(),
                    "--quorum".into(),
                    "2".into(),
                    "--down-after-ms".into(),
                    DOWN_AFTER_MS.into(),
                    "--failover-timeout-ms".into(),
                    "10000".into(),
                    "--hold-timeout-ms".into(),
                    "30000".into(),
                ];
                for peer in sentinel_ports.iter().filter(|p| *p != me) {
                    args.push("--peer".into());
                    args.push(peer.to_string());
                }
                Proxy::builder().args(args).spawn()
            })
            .collect();
        Group { nodes, proxies }
    }

    /// The node listening on `addr`.
    pub fn node(&self, addr: SocketAddr) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| n.addr() == addr)
            .unwrap_or_else(|| panic!("no node on {addr}"))
    }

    /// What `proxy`'s sentinel port says the master is.
    pub fn master_per(proxy: &Proxy) -> Option<SocketAddr> {
        let client = redis::Client::open(format!("redis://{}/", proxy.sentinel_addr())).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        let reply: Vec<String> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query(&mut conn)
            .ok()?;
        format!("{}:{}", reply.first()?, reply.get(1)?).parse().ok()
    }

    /// Waits until every proxy names the same master, other than `old`, and
    /// that node says it is master. Returns it.
    pub fn wait_for_new_master(&self, old: SocketAddr, within: Duration) -> SocketAddr {
        support::wait_for(within, "every proxy to name one new master", || {
            let named: Vec<Option<SocketAddr>> =
                self.proxies.iter().map(Group::master_per).collect();
            let first = named.first().copied().flatten()?;
            let agreed = first != old && named.iter().all(|n| *n == Some(first));
            let is_master = self
                .nodes
                .iter()
                .find(|n| n.addr() == first)
                .is_some_and(|n| n.role().is_ok_and(|r| r.is_master()));
            (agreed && is_master).then_some(first)
        })
    }

    /// Waits until `proxy` serves commands.
    pub fn wait_serving(proxy: &Proxy) {
        support::wait_for(Duration::from_secs(15), "the proxy to serve PING", || {
            let mut conn =
                redis_conn_with_timeout(proxy.addr(), None, Duration::from_secs(2)).ok()?;
            redis::cmd("PING").query::<String>(&mut conn).ok()
        });
    }
}

fn connect(addr: SocketAddr) -> redis::Connection {
    redis_conn_with_timeout(addr, None, Duration::from_secs(30)).expect("connect through the proxy")
}

/// Sends one INCR every 5 ms through `proxy` until `stop`; returns every
/// outcome with its time.
fn spawn_writer(
    proxy: SocketAddr,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<(Instant, Result<i64, String>)>> {
    thread::spawn(move || {
        let mut outcomes = Vec::new();
        let mut conn = connect(proxy);
        while !stop.load(Ordering::Relaxed) {
            let result: RedisResult<i64> = conn.incr("writes", 1);
            let failed = result.is_err();
            outcomes.push((Instant::now(), result.map_err(|e| e.to_string())));
            if failed {
                conn = connect(proxy);
            }
            thread::sleep(Duration::from_millis(5));
        }
        outcomes
    })
}

/// The sidecar group's reason to exist: `kill -9` of the master under load;
/// the proxies agree, one of them promotes a replica, every proxy moves to
/// it, and the writer sees at most the in-flight command fail.
#[test]
fn proxies_fail_over_by_themselves_when_the_master_dies() {
    let mut group = Group::spawn(2, 3);
    for proxy in &group.proxies {
        Group::wait_serving(proxy);
    }
    let old = group.nodes[0].addr();
    // Every proxy sees both replicas and both peers before the crash.
    for proxy in &group.proxies {
        support::assert_eventually!(
            Duration::from_secs(20),
            sentinel_master_field(proxy, "num-slaves").as_deref() == Some("2")
                && sentinel_master_field(proxy, "num-other-sentinels").as_deref() == Some("2"),
            "proxy {} discovers replicas and peers; log:\n{}",
            proxy.addr(),
            proxy.log()
        );
    }

    // An idle pooled connection with state, opened before the crash.
    let mut idle = connect(group.proxies[0].addr());
    redis::cmd("SELECT")
        .arg(2)
        .query::<()>(&mut idle)
        .expect("SELECT 2");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(group.proxies[0].addr(), Arc::clone(&stop));
    thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    group.nodes[0].kill9();

    let new = group.wait_for_new_master(old, Duration::from_secs(40));
    let at_switch = writes_on(group.node(new));
    support::assert_eventually!(
        Duration::from_secs(15),
        writes_on(group.node(new)) > at_switch + 50,
        "writes resume on the new master through the proxy"
    );
    stop.store(true, Ordering::Relaxed);
    let outcomes = writer.join().expect("writer thread");
    let errors: Vec<_> = outcomes.iter().filter(|o| o.1.is_err()).collect();
    assert!(
        errors.len() <= 1,
        "errors beyond the in-flight one: {errors:?}"
    );
    for (at, _) in &errors {
        assert!(*at >= killed_at, "error before the kill");
    }
    eprintln!(
        "core failover: {} writes, {} errors, switch after {:?}",
        outcomes.len(),
        errors.len(),
        killed_at.elapsed()
    );

    // Exactly one leader for the failover's epoch.
    let leaders: Vec<&Proxy> = group
        .proxies
        .iter()
        .filter(|p| p.log().contains("+elected-leader"))
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one proxy leads the failover");

    // The other replica now follows the new master; every proxy agrees on
    // the new config epoch.
    let other = group
        .nodes
        .iter()
        .find(|n| n.addr() != old && n.addr() != new)
        .expect("the other replica");
    support::assert_eventually!(
        Duration::from_secs(20),
        other.role().ok().and_then(|r| r.master()) == Some(new),
        "the other replica is reconfigured"
    );
    // The idle connection works on the new master, in its database.
    let _: () = idle
        .set("idle-after", 1)
        .expect("idle connection after the failover");
    let mut direct = group.node(new).conn();
    redis::cmd("SELECT")
        .arg(2)
        .query::<()>(&mut direct)
        .expect("SELECT");
    assert_eq!(direct.get::<_, i64>("idle-after").expect("GET"), 1);

    // What Prometheus sees: one failover led in the whole group, every
    // proxy routing to the new master, the writer's session moved to it.
    let info = format!("sentinel_proxy_master_info{{master_name=\"mymaster\",address=\"{new}\"}}");
    for proxy in &group.proxies {
        support::assert_eventually!(
            Duration::from_secs(10),
            crate::metrics::scrape(proxy).get(&info) == Some(&1.0),
            "proxy {} routes to {new}; status: {:?}",
            proxy.addr(),
            proxy.http_get("/status")
        );
    }
    let scrapes: Vec<_> = group.proxies.iter().map(crate::metrics::scrape).collect();
    let led: f64 = scrapes
        .iter()
        .map(|m| {
            m.get("sentinel_proxy_failovers_led_total")
                .copied()
                .unwrap_or(0.0)
        })
        .sum();
    assert_eq!(led, 1.0, "failovers led across the group");
    for m in &scrapes {
        assert!(
            m.get("sentinel_proxy_switches_total")
                .is_some_and(|v| *v >= 1.0)
        );
    }
    assert!(scrapes.iter().any(|m| {
        m.get("sentinel_proxy_failover_duration_seconds_count")
            .is_some_and(|c| *c >= 1.0)
    }));
    assert!(
        scrapes[0]
            .get("sentinel_proxy_switch_sessions_moved_total")
            .is_some_and(|v| *v >= 1.0)
    );
    assert!(
        scrapes[0]["sentinel_proxy_commands_total{class=\"write\"}"] >= outcomes.len() as f64 - 1.0
    );

    let epochs: Vec<Option<String>> = group
        .proxies
        .iter()
        .map(|p| sentinel_master_field(p, "config-epoch"))
        .collect();
    assert!(
        epochs
            .iter()
            .all(|e| e == &epochs[0] && e.as_deref() != Some("0")),
        "config epochs converge: {epochs:?}"
    );
}

/// One field of `SENTINEL master mymaster` on `proxy`'s sentinel port.
pub fn sentinel_master_field(proxy: &Proxy, field: &str) -> Option<String> {
    let client = redis::Client::open(format!("redis://{}/", proxy.sentinel_addr())).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    let reply: Vec<String> = redis::cmd("SENTINEL")
        .arg("master")
        .arg("mymaster")
        .query(&mut conn)
        .ok()?;
    reply
        .chunks_exact(2)
        .find(|kv| kv[0] == field)
        .map(|kv| kv[1].clone())
}

fn writes_on(node: &RedisServer) -> i64 {
    node.cmd(&["GET", "writes"])
        .ok()
        .and_then(|v| support::value_to_string(&v))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
