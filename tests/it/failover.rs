//! Real failovers behind the proxy: 1 master + 2 replicas, 3 redis-sentinel
//! processes, the proxy following them, and `kill -9` of the master under load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Commands, RedisResult, Value};

use crate::support::{self, Proxy, Topology, redis_conn_with_timeout};

/// Starts a proxy following every Sentinel of `topology`.
fn proxy_following(topology: &Topology, extra: &[&str]) -> Proxy {
    let addrs: Vec<String> = topology
        .sentinel_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let mut args: Vec<&str> = Vec::new();
    for addr in &addrs {
        args.push("--sentinel");
        args.push(addr);
    }
    args.extend_from_slice(&["--master-name", topology.master_name()]);
    args.extend_from_slice(extra);
    let proxy = Proxy::spawn(&args);
    support::wait_for(Duration::from_secs(10), "the proxy to serve PING", || {
        let mut conn = redis_conn_with_timeout(proxy.addr(), None, Duration::from_secs(2)).ok()?;
        redis::cmd("PING").query::<String>(&mut conn).ok()
    });
    proxy
}

fn connect(addr: SocketAddr) -> redis::Connection {
    redis_conn_with_timeout(addr, None, Duration::from_secs(20)).expect("connect through the proxy")
}

/// One write's outcome, as the writer saw it.
#[derive(Debug)]
struct Outcome {
    at: Instant,
    result: Result<i64, String>,
}

/// Sends one INCR every 5 ms through the proxy until `stop`, reconnecting
/// after a connection error, and records every outcome (a reconnection that
/// fails is one too, and is tried again).
fn spawn_writer(proxy: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Outcome>> {
    thread::spawn(move || {
        let mut outcomes = Vec::new();
        let mut conn = Some(connect(proxy));
        while !stop.load(Ordering::Relaxed) {
            let result: RedisResult<i64> = match conn.as_mut() {
                Some(c) => c.incr("writes", 1),
                None => {
                    // A direct connection would have been closed too: reconnect.
                    match redis_conn_with_timeout(proxy, None, Duration::from_secs(20)) {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            outcomes.push(Outcome {
                                at: Instant::now(),
                                result: Err(format!("reconnecting: {e}")),
                            });
                            thread::sleep(Duration::from_millis(5));
                        }
                    }
                    continue;
                }
            };
            if result.is_err() {
                conn = None;
            }
            outcomes.push(Outcome {
                at: Instant::now(),
                result: result.map_err(|e| e.to_string()),
            });
            thread::sleep(Duration::from_millis(5));
        }
        outcomes
    })
}

/// The writers' counter as stored on `node` (0 if absent or unreachable).
fn writes_on(node: &crate::support::RedisServer) -> i64 {
    node.cmd(&["GET", "writes"])
        .ok()
        .and_then(|v| support::value_to_string(&v))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Waits until the writers' counter on `node` has grown by more than `by`.
fn assert_writes_resume(node: &crate::support::RedisServer, by: i64) {
    let at_switch = writes_on(node);
    support::assert_eventually!(
        Duration::from_secs(10),
        writes_on(node) > at_switch + by,
        "writes resume on the new master"
    );
}

/// Longest interval between two successful writes.
fn longest_pause(outcomes: &[Outcome]) -> Duration {
    let ok: Vec<Instant> = outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| o.at)
        .collect();
    ok.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// The failover the proxy exists for: writers pause and resume, idle clients
/// move unnoticed, subscribers keep receiving. Guards against sessions that
/// error out, stick to the dead master, or lose their SELECTed database.
#[test]
fn kill_9_of_the_master_under_load_moves_every_client() {
    let mut topology = Topology::spawn(2, 3);
    let proxy = proxy_following(&topology, &["--hold-timeout-ms", "30000"]);
    let old_master = topology.current_master();

    // Idle pooled connections with state, opened before the failover.
    let mut idle: Vec<redis::Connection> = (0..5).map(|_| connect(proxy.addr())).collect();
    for (i, conn) in idle.iter_mut().enumerate() {
        redis::cmd("SELECT")
            .arg(1)
            .query::<()>(conn)
            .expect("SELECT 1");
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("idle-{i}"))
            .query::<()>(conn)
            .expect("SETNAME");
        let _: () = conn
            .set(format!("before:{i}"), i)
            .expect("SET before the failover");
    }
    // Both replicas have those writes before the master dies: replication is
    // asynchronous, and right after a full sync Redis streams to a replica
    // only once it acknowledged (up to a second later), so a kill too soon
    // would lose them on any failover, with or without a proxy. WAIT on the
    // last writer's connection covers the earlier writes too.
    let acked: i64 = redis::cmd("WAIT")
        .arg(2)
        .arg(10_000)
        .query(&mut idle[4])
        .expect("WAIT");
    assert_eq!(acked, 2, "both replicas acknowledged the writes");

    // A subscriber through the proxy.
    let (messages_tx, messages_rx) = mpsc::channel::<String>();
    let subscriber_addr = proxy.addr();
    let subscribed = Arc::new(Mutex::new(false));
    let subscribed_flag = Arc::clone(&subscribed);
    thread::spawn(move || {
        let mut conn = connect(subscriber_addr);
        let mut pubsub = conn.as_pubsub();
        pubsub.subscribe("news").expect("SUBSCRIBE");
        let _ = pubsub.set_read_timeout(Some(Duration::from_secs(60)));
        *subscribed_flag.lock().expect("flag") = true;
        while let Ok(msg) = pubsub.get_message() {
            let Ok(payload) = msg.get_payload::<String>() else {
                break;
            };
            if messages_tx.send(payload).is_err() {
                break;
            }
        }
    });
    support::wait_for(
        Duration::from_secs(5),
        "the subscriber to subscribe",
        || subscribed.lock().ok().filter(|s| **s).map(|_| ()),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(proxy.addr(), Arc::clone(&stop));
    thread::sleep(Duration::from_millis(500));

    let killed_at = Instant::now();
    topology.kill_master();
    let new_master = topology.wait_for_new_master(old_master);
    assert_ne!(new_master, old_master);

    // The writer's INCRs land on the new master.
    let new_node = topology.node(new_master);
    assert_writes_resume(new_node, 50);
    stop.store(true, Ordering::Relaxed);
    let outcomes = writer.join().expect("writer thread");

    // Only what was in flight at the crash may fail, and only by a closed
    // connection: the INCR, and the handshake of a reconnection made at that
    // moment (the proxy may have dialled the dying master for it). Nothing is
    // refused while the failover runs.
    let errors: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    assert!(
        errors.len() <= 2,
        "writer saw errors beyond those in flight at the crash: {errors:?}"
    );
    for e in &errors {
        assert!(e.at >= killed_at, "error before the kill: {e:?}");
        assert!(
            e.at < killed_at + Duration::from_secs(1),
            "error long after the kill: {e:?}"
        );
        let text = e
            .result
            .as_ref()
            .err()
            .map(String::as_str)
            .unwrap_or_default();
        assert!(
            !text.contains("MASTERDOWN") && !text.contains("READONLY"),
            "refused, not paused: {text}"
        );
    }
    let pause = longest_pause(&outcomes);
    assert!(
        pause < Duration::from_secs(25),
        "writes paused for {pause:?}"
    );
    eprintln!(
        "failover: longest write pause through the proxy {pause:?}, {} writes, {} errors",
        outcomes.len(),
        errors.len()
    );

    // Idle connections work without any error, in their database, with their name.
    for (i, conn) in idle.iter_mut().enumerate() {
        let before: i64 = conn
            .get(format!("before:{i}"))
            .expect("GET after the failover");
        assert_eq!(before, i as i64);
        let _: () = conn
            .set(format!("after:{i}"), i)
            .expect("SET after the failover");
        let name: String = redis::cmd("CLIENT")
            .arg("GETNAME")
            .query(conn)
            .expect("GETNAME");
        assert_eq!(name, format!("idle-{i}"));
    }
    let mut direct = new_node.conn();
    redis::cmd("SELECT")
        .arg(1)
        .query::<()>(&mut direct)
        .expect("SELECT on the new master");
    let after: i64 = direct
        .get("after:0")
        .expect("key written after the failover");
    assert_eq!(after, 0, "idle session kept db 1 on the new master");

    // The subscriber receives messages published after the failover.
    let mut publisher = connect(proxy.addr());
    support::assert_eventually!(
        Duration::from_secs(10),
        {
            let _: RedisResult<i64> = publisher.publish("news", "after-failover");
            messages_rx
                .recv_timeout(Duration::from_millis(200))
                .is_ok_and(|m| m == "after-failover")
        },
        "subscriber receives messages published after the failover"
    );
}

/// A killed master that restarts before Sentinel demotes it still claims to be
/// master; no write through the proxy may land on it.
#[test]
fn a_restarted_old_master_never_receives_writes() {
    let mut topology = Topology::spawn(2, 3);
    let proxy = proxy_following(&topology, &[]);
    let old_master = topology.current_master();
    let mut conn = connect(proxy.addr());
    let _: () = conn.set("k", "v").expect("SET");

    topology.kill_master();
    let new_master = topology.wait_for_new_master(old_master);
    // Wait until writes through the proxy reach the new master.
    support::assert_eventually!(
        Duration::from_secs(20),
        {
            let mut c = connect(proxy.addr());
            let ok: RedisResult<()> = c.set("probe", "1");
            ok.is_ok()
                && topology
                    .node(new_master)
                    .cmd(&["GET", "probe"])
                    .is_ok_and(|v| v != Value::Nil)
        },
        "the proxy routes to the new master"
    );

    topology.node_mut(old_master).restart();
    let stop = Arc::new(AtomicBool::new(false));
    let writer_stop = Arc::clone(&stop);
    let proxy_addr = proxy.addr();
    let writer = thread::spawn(move || {
        let mut conn = connect(proxy_addr);
        let mut written = 0u64;
        while !writer_stop.load(Ordering::Relaxed) {
            if conn
                .set::<_, _, ()>(format!("after-restart:{written}"), 1)
                .is_ok()
            {
                written += 1;
            }
        }
        written
    });

    // While the old node still says master (before Sentinel converts it, after
    // which it would receive the keys by replication), none of the keys written
    // through the proxy may exist on it.
    let old = topology.node(old_master);
    let mut checks_while_master = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut direct = match old.client().get_connection() {
            Ok(c) => c,
            Err(_) => continue,
        };
        let result: RedisResult<(Value, Vec<String>)> = redis::pipe()
            .atomic()
            .cmd("ROLE")
            .cmd("KEYS")
            .arg("after-restart:*")
            .query(&mut direct);
        let Ok((role, keys)) = result else { continue };
        let is_master = matches!(&role, Value::Array(items) if items.first().and_then(support::value_to_string).as_deref() == Some("master"));
        if !is_master {
            break;
        }
        checks_while_master += 1;
        assert!(
            keys.is_empty(),
            "writes through the proxy reached the restarted old master: {keys:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer thread");
    assert!(
        checks_while_master > 0,
        "the old master was never seen claiming master"
    );
    assert!(written > 0, "the writer wrote nothing");
    eprintln!(
        "old master checked {checks_while_master} times while claiming master; {written} writes went to {new_master}"
    );
}

/// One Sentinel that names another master (stale, misconfigured or
/// partitioned) must not move the proxy: only a majority of the configured
/// Sentinels does.
#[test]
fn a_lone_sentinel_naming_another_master_is_ignored() {
    let topology = Topology::spawn(1, 2);
    let decoy = crate::support::RedisServer::spawn();
    let stale = crate::support::Sentinel::spawn(
        decoy.addr(),
        crate::support::SentinelOptions {
            quorum: 1,
            ..crate::support::SentinelOptions::default()
        },
    );
    support::wait_for(
        Duration::from_secs(10),
        "the stale sentinel to name the decoy",
        || (stale.master_addr() == Some(decoy.addr())).then_some(()),
    );
    let stale_addr = stale.addr().to_string();
    let proxy = proxy_following(&topology, &["--sentinel", &stale_addr]);
    let mut conn = connect(proxy.addr());
    for i in 0..50 {
        let _: () = conn.set(format!("k{i}"), i).expect("SET through the proxy");
    }
    let real = topology.master();
    assert_eq!(
        real.cmd(&["DBSIZE"])
            .ok()
            .and_then(|v| support::value_to_string(&v))
            .as_deref(),
        Some("50")
    );
    assert_eq!(
        decoy
            .cmd(&["DBSIZE"])
            .ok()
            .and_then(|v| support::value_to_string(&v))
            .as_deref(),
        Some("0")
    );
}

/// `SENTINEL FAILOVER` while a writer runs: the old master stays up and is
/// demoted, so in-flight replies drain from it and any write that meets it
/// after its demotion (`-READONLY`) is retried on the new master. The writer
/// must see no error at all.
#[test]
fn planned_sentinel_failover_shows_writers_no_error() {
    let mut topology = Topology::spawn(2, 3);
    let proxy = proxy_following(&topology, &[]);
    let old_master = topology.current_master();

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| spawn_writer(proxy.addr(), Arc::clone(&stop)))
        .collect();
    thread::sleep(Duration::from_millis(300));
    topology.sentinels[0].failover().expect("SENTINEL FAILOVER");
    let new_master = topology.wait_for_new_master(old_master);
    let new_node = topology.node(new_master);
    assert_writes_resume(new_node, 100);
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = 0;
    for writer in writers {
        let outcomes = writer.join().expect("writer thread");
        let errors: Vec<&Outcome> = outcomes.iter().filter(|o| o.result.is_err()).collect();
        assert!(
            errors.is_empty(),
            "a planned failover showed errors: {errors:?}"
        );
        eprintln!(
            "writer: {} writes, longest pause {:?}",
            outcomes.len(),
            longest_pause(&outcomes)
        );
        acknowledged += outcomes.len() as i64;
    }
    // Every acknowledged INCR is in the counter on the new master: writes
    // stopped going to the old master before Sentinel promoted the replica.
    let stored = writes_on(topology.node(new_master));
    eprintln!(
        "planned failover: {acknowledged} acknowledged writes, {stored} stored on the new master"
    );
    assert_eq!(stored, acknowledged, "acknowledged writes were lost");
}

/// `--on-switch close` closes every session on a switch (Sentinel's native
/// behaviour); new connections go to the new master.
#[test]
fn on_switch_close_closes_idle_sessions() {
    let mut topology = Topology::spawn(1, 3);
    let proxy = proxy_following(&topology, &["--on-switch", "close"]);
    let old_master = topology.current_master();
    let mut idle = proxy.connect();
    assert_eq!(idle.command(&["SET", "k", "1"]), b"+OK\r\n");

    topology.sentinels[0].failover().expect("SENTINEL FAILOVER");
    let new_master = topology.wait_for_new_master(old_master);
    assert!(
        idle.is_closed_within(Duration::from_secs(10)),
        "the idle session was not closed on the switch"
    );
    support::assert_eventually!(
        Duration::from_secs(10),
        proxy.connect().command(&["SET", "after", "1"]) == b"+OK\r\n"
            && topology
                .node(new_master)
                .cmd(&["GET", "after"])
                .is_ok_and(|v| v != Value::Nil),
        "new connections write to the new master"
    );
}

/// Sentinels that stop answering (hung, partitioned from the proxy) are no
/// reason to stop serving a master that still answers as master: the proxy
/// keeps routing to it.
#[test]
fn unreachable_sentinels_do_not_interrupt_a_healthy_master() {
    let mut topology = Topology::spawn(1, 3);
    let proxy = proxy_following(&topology, &["--hold-timeout-ms", "1000"]);
    let mut conn = connect(proxy.addr());
    let _: () = conn.set("before", 1).expect("SET");
    for sentinel in topology.sentinels.iter_mut() {
        sentinel.freeze();
    }
    let started = Instant::now();
    let mut writes = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let _: () = conn
            .set(format!("during:{writes}"), 1)
            .expect("SET while the Sentinels are frozen");
        writes += 1;
        thread::sleep(Duration::from_millis(10));
    }
    for sentinel in topology.sentinels.iter_mut() {
        sentinel.unfreeze();
    }
    assert!(writes > 100, "only {writes} writes in 4 s");
}

/// The follower keeps its connections to Sentinels and to the master open
/// between checks: a fleet of sidecar proxies must not open several new
/// connections per second each.
#[test]
fn the_follower_reuses_its_connections() {
    let topology = Topology::spawn(1, 3);
    let _proxy = proxy_following(&topology, &[]);
    // A failed INFO must fail the test: counting 0 would make the
    // assertions below hold without measuring anything.
    let accepted = |mut conn: redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut conn)
            .expect("INFO stats");
        support::parse_info(&info)
            .get("total_connections_received")
            .and_then(|v| v.parse().ok())
            .expect("total_connections_received in INFO stats")
    };
    thread::sleep(Duration::from_secs(1));
    let sentinel = &topology.sentinels[0];
    let master = topology.master();
    let (s0, m0) = (accepted(sentinel.conn()), accepted(master.conn()));
    thread::sleep(Duration::from_secs(4));
    let (s1, m1) = (accepted(sentinel.conn()), accepted(master.conn()));
    // One new connection each is the test's own INFO query.
    assert!(
        s1 - s0 <= 2,
        "the sentinel accepted {} connections in 4 s",
        s1 - s0
    );
    assert!(
        m1 - m0 <= 2,
        "the master accepted {} connections in 4 s",
        m1 - m0
    );
}

/// Pipelined clients (redis-benchmark -P 16) through a planned failover: every
/// connection has replies in flight when the switch comes; they drain from the
/// old master and the connections move on without an error.
#[test]
fn pipelined_clients_ride_through_a_planned_failover() {
    let mut topology = Topology::spawn(1, 3);
    let proxy = proxy_following(&topology, &[]);
    let old_master = topology.current_master();
    let runner = support::pipelined_incrs(proxy.addr().port(), 1_500_000);
    thread::sleep(Duration::from_millis(500));
    topology.sentinels[0].failover().expect("SENTINEL FAILOVER");
    let new_master = topology.wait_for_new_master(old_master);
    let ended_early = runner.is_finished();
    let out = runner.join().expect("benchmark thread");
    let text = support::output_text(&out);
    assert!(
        !ended_early,
        "the benchmark ended before the failover (make it longer, unless it failed): {text}"
    );
    assert!(out.status.success(), "redis-benchmark failed: {text}");
    assert!(
        !text.to_lowercase().contains("error"),
        "redis-benchmark saw errors: {text}"
    );
    let on_new = topology
        .node(new_master)
        .cmd(&["DBSIZE"])
        .ok()
        .and_then(|v| support::value_to_string(&v))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(on_new > 0, "nothing reached the new master");
}

/// Following Sentinels, `/readyz` says why commands are held: it used to
/// show only the start-up text ("no master known yet") whatever the cause.
/// Here the master stops answering (SIGSTOP) and the reason names it; once it
/// answers again the proxy is ready again.
#[test]
fn readyz_says_why_commands_are_held_when_following() {
    let mut topology = Topology::spawn(0, 3);
    let proxy = proxy_following(&topology, &[]);
    let master = topology.master().addr();
    crate::support::assert_eventually!(
        Duration::from_secs(10),
        proxy.http_get("/readyz").is_ok_and(|(code, _)| code == 200)
    );
    topology.nodes[0].freeze();
    let reason = support::wait_for(
        Duration::from_secs(15),
        "/readyz to say 503",
        || match proxy.http_get("/readyz") {
            Ok((503, body)) => Some(body),
            _ => None,
        },
    );
    topology.nodes[0].unfreeze();
    assert!(
        reason.contains(&master.to_string()) && !reason.contains("no master known yet"),
        "/readyz: {reason}"
    );
    crate::support::assert_eventually!(
        Duration::from_secs(15),
        proxy.http_get("/readyz").is_ok_and(|(code, _)| code == 200)
    );
}
