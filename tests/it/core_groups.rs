//! Several groups in one process, configured at run time as Sentinel is:
//! `SENTINEL MONITOR/SET` on a proxy that already serves clients, the same
//! on `sentinel-proxy --sentinel-conf` standing in for `redis-sentinel`, and
//! a mixed set of stand-ins and a real `redis-sentinel` that only run-time
//! commands configured.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::{
    FAILOVER_BOUND, group_field as master_field, group_master as master_of, sentinel_query,
};
use crate::support::{self, Proxy, RedisServer, Sentinel, SentinelOptions};

/// A master and one replica in sync with it.
fn pair() -> (RedisServer, RedisServer) {
    let master = RedisServer::spawn();
    let replica = RedisServer::builder().replica_of(master.addr()).spawn();
    support::assert_eventually!(Duration::from_secs(20), replica.master_link_up());
    (master, replica)
}

/// `SENTINEL <args…>` on `sentinel`, which must answer `+OK`.
fn ok(sentinel: SocketAddr, args: &[&str]) {
    let reply: String =
        sentinel_query(sentinel, args).unwrap_or_else(|e| panic!("{args:?} on {sentinel}: {e}"));
    assert_eq!(reply, "OK", "{args:?} on {sentinel}");
}

/// INCRs `key` over `conn` (an endpoint of a group that is not failing
/// over), each of which must succeed, until `failed_over` says the other
/// group has its new master (within [`FAILOVER_BOUND`]). Returns how many
/// writes were acknowledged and the longest gap between two of them.
fn writes_until_failed_over(
    conn: &mut ::redis::Connection,
    key: &str,
    proxy: &Proxy,
    mut failed_over: impl FnMut() -> bool,
) -> (i64, Duration) {
    let killed = Instant::now();
    let mut last = Instant::now();
    let (mut writes, mut longest) = (0, Duration::ZERO);
    while !failed_over() {
        assert!(
            killed.elapsed() < FAILOVER_BOUND,
            "the other group did not fail over:\n{}",
            proxy.log()
        );
        let _: i64 = ::redis::cmd("INCR")
            .arg(key)
            .query(conn)
            .expect("a write while the other group fails over");
        writes += 1;
        longest = longest.max(last.elapsed());
        last = Instant::now();
    }
    eprintln!(
        "the other group failed over in {:?}; {writes} writes to {key}, longest gap {longest:?}",
        killed.elapsed()
    );
    (writes, longest)
}

/// The body of `GET path` on the HTTP endpoint at `addr`.
fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the HTTP endpoint");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    response
}

/// Starts monitoring `master` as `name` with quorum `quorum` and fast timings.
fn monitor(sentinel: SocketAddr, name: &str, master: SocketAddr, quorum: u32) {
    let (ip, port) = (master.ip().to_string(), master.port().to_string());
    ok(
        sentinel,
        &["SENTINEL", "MONITOR", name, &ip, &port, &quorum.to_string()],
    );
    ok(
        sentinel,
        &[
            "SENTINEL",
            "SET",
            name,
            "down-after-milliseconds",
            "1000",
            "failover-timeout",
            "5000",
        ],
    );
}

/// A proxy serving one group adds a second with `SENTINEL MONITOR`; the
/// second group's master is killed and its replica promoted while clients
/// of the first group's endpoint are served without a pause or an error;
/// after a restart the proxy still monitors the second group, from its data
/// directory, under its new master and with the settings `SENTINEL SET`
/// gave it.
#[test]
fn a_group_added_at_run_time_fails_over_while_the_served_group_keeps_serving() {
    let (served_master, _served_replica) = pair();
    let (mut other_master, other_replica) = pair();
    let data = tempfile::tempdir().expect("data dir");
    let args = crate::core::lone_proxy_args(served_master.addr(), 1, data.path());
    let mut proxy = Proxy::builder().args(args.clone()).spawn();
    crate::core::Group::wait_serving(&proxy);
    let sentinel = proxy.sentinel_addr();
    monitor(sentinel, "other", other_master.addr(), 1);
    support::assert_eventually!(
        Duration::from_secs(20),
        master_field(sentinel, "other", "num-slaves").as_deref() == Some("1")
    );

    // Clients of the served group write through the failover of the other.
    let mut conn = support::redis_conn_with_timeout(proxy.addr(), None, Duration::from_secs(2))
        .expect("connect to the proxy");
    other_master.kill9();
    let (writes, longest) = writes_until_failed_over(&mut conn, "served", &proxy, || {
        master_of(sentinel, "other") == Some(other_replica.addr())
    });
    assert!(
        longest < Duration::from_millis(250),
        "the served group paused for {longest:?} while the other failed over"
    );
    let served: i64 = ::redis::cmd("GET")
        .arg("served")
        .query(&mut conn)
        .expect("GET");
    assert_eq!(served, writes, "every acknowledged write is there");

    proxy.sigterm();
    assert!(proxy.wait_exit(Duration::from_secs(15)).is_some());
    let proxy = Proxy::builder().args(args).spawn();
    let sentinel = proxy.sentinel_addr();
    assert_eq!(master_of(sentinel, "other"), Some(other_replica.addr()));
    assert_eq!(
        master_field(sentinel, "other", "failover-timeout").as_deref(),
        Some("5000")
    );
    assert_eq!(master_of(sentinel, "mymaster"), Some(served_master.addr()));
}

/// `sentinel-proxy --sentinel-conf FILE` in `redis-sentinel`'s place: it
/// starts with no group, is given one at run time, fails it over, rewrites
/// its file with the new master (keeping the operator's comments), shrugs
/// off SIGHUP, and comes back from that file as itself after a restart.
#[test]
fn the_stand_in_rewrites_its_sentinel_conf_and_restarts_from_it() {
    let (mut master, replica) = pair();
    let mut stand_in = Sentinel::spawn(
        master.addr(),
        SentinelOptions {
            stand_in: true,
            monitor: false,
            extra_config: vec!["# kept by every rewrite".to_owned()],
            ..SentinelOptions::default()
        },
    );
    let addr = stand_in.addr();
    monitor(addr, "mymaster", master.addr(), 1);
    support::assert_eventually!(
        Duration::from_secs(20),
        master_field(addr, "mymaster", "num-slaves").as_deref() == Some("1")
    );
    let myid: String = sentinel_query(addr, &["SENTINEL", "MYID"]).expect("MYID");
    master.kill9();
    support::assert_eventually!(
        FAILOVER_BOUND,
        master_of(addr, "mymaster") == Some(replica.addr())
    );
    let expected = format!(
        "sentinel monitor mymaster {} {} 1",
        replica.addr().ip(),
        replica.addr().port()
    );
    support::assert_eventually!(Duration::from_secs(5), {
        std::fs::read_to_string(stand_in.config_path()).is_ok_and(|c| c.contains(&expected))
    });
    let conf = std::fs::read_to_string(stand_in.config_path()).expect("read sentinel.conf");
    assert!(conf.contains("# kept by every rewrite"), "{conf}");
    assert!(conf.contains(&format!("sentinel myid {myid}")), "{conf}");
    // SIGHUP leaves it running, as it leaves redis-sentinel.
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &stand_in.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(hup.success());
    std::thread::sleep(Duration::from_millis(200));
    assert!(stand_in.is_running(), "the stand-in died of SIGHUP");
    assert_eq!(master_of(addr, "mymaster"), Some(replica.addr()));

    stand_in.restart();
    let again: String = sentinel_query(addr, &["SENTINEL", "MYID"]).expect("MYID");
    assert_eq!(again, myid, "the same Sentinel after a restart");
    assert_eq!(master_of(addr, "mymaster"), Some(replica.addr()));
    assert_eq!(
        master_field(addr, "mymaster", "down-after-milliseconds").as_deref(),
        Some("1000")
    );
}

/// Two stand-ins and one real `redis-sentinel`, none of which was told about
/// the group at start: `SENTINEL MONITOR/SET` on each makes them find each
/// other, agree that the killed master is down, elect a leader and promote
/// the replica, and all three name the new master.
#[test]
fn a_mixed_set_configured_at_run_time_fails_over_together() {
    let (mut master, replica) = pair();
    let sentinels: Vec<Sentinel> = [true, true, false]
        .into_iter()
        .map(|stand_in| {
            Sentinel::spawn(
                master.addr(),
                SentinelOptions {
                    stand_in,
                    monitor: false,
                    ..SentinelOptions::default()
                },
            )
        })
        .collect();
    for sentinel in &sentinels {
        monitor(sentinel.addr(), "mymaster", master.addr(), 2);
    }
    for sentinel in &sentinels {
        support::assert_eventually!(
            Duration::from_secs(30),
            master_field(sentinel.addr(), "mymaster", "num-other-sentinels").as_deref()
                == Some("2")
        );
    }
    master.kill9();
    for sentinel in &sentinels {
        support::assert_eventually!(
            FAILOVER_BOUND,
            master_of(sentinel.addr(), "mymaster") == Some(replica.addr())
        );
    }
}

/// Two groups from one config file, each with its own client endpoint:
/// the second group's master is killed; its endpoint holds writes and then
/// sends them to the promoted replica, while the first group's endpoint
/// serves without a pause or an error.
#[test]
fn two_groups_with_two_endpoints_fail_over_one_while_the_other_serves() {
    let (first_master, _first_replica) = pair();
    let (mut second_master, second_replica) = pair();
    let first_listen = support::loopback(support::free_port());
    let second_listen = support::loopback(support::free_port());
    let sentinel_listen = support::loopback(support::free_port());
    let metrics_listen = support::loopback(support::free_port());
    let dir = tempfile::tempdir().expect("config dir");
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "master = \"{}\"\nlisten = \"{first_listen}\"\nsentinel_listen = \"{sentinel_listen}\"\n\
             metrics_listen = \"{metrics_listen}\"\nquorum = 1\ndown_after_ms = 1000\nfailover_timeout_ms = 5000\n\
             [[group]]\nname = \"second\"\nmaster = \"{}\"\nlisten = \"{second_listen}\"\n",
            first_master.addr(),
            second_master.addr()
        ),
    )
    .expect("write the config file");
    let config_arg = config.display().to_string();
    let proxy = Proxy::builder()
        .args([
            "--config",
            config_arg.as_str(),
            "--listen",
            &first_listen.to_string(),
        ])
        .spawn();
    crate::core::Group::wait_serving(&proxy);
    let conn_to = |addr| {
        support::redis_conn_with_timeout(addr, None, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    };
    // Each endpoint reaches its own group's master.
    let mut second = conn_to(second_listen);
    support::assert_eventually!(
        Duration::from_secs(10),
        ::redis::cmd("SET")
            .arg("where")
            .arg("second")
            .query::<String>(&mut second)
            .is_ok()
    );
    let on_second: Option<String> = ::redis::cmd("GET")
        .arg("where")
        .query(&mut second_master.conn())
        .expect("GET on the second master");
    assert_eq!(on_second.as_deref(), Some("second"));
    support::assert_eventually!(
        Duration::from_secs(20),
        master_field(sentinel_listen, "second", "num-slaves").as_deref() == Some("1")
    );

    // `/status` describes the first group, and the second in its `groups`.
    let status = http_get(metrics_listen, "/status");
    let body = status.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: serde_json::Value = serde_json::from_str(body).expect("/status is JSON");
    assert_eq!(json["master_name"], "mymaster", "{body}");
    assert_eq!(json["groups"][0]["master_name"], "second", "{body}");

    let mut first = conn_to(first_listen);
    second_master.kill9();
    let (_, longest) = writes_until_failed_over(&mut first, "first", &proxy, || {
        master_of(sentinel_listen, "second") == Some(second_replica.addr())
    });
    assert!(longest < Duration::from_millis(250), "paused {longest:?}");
    // The second endpoint now writes to the promoted replica.
    let mut second = conn_to(second_listen);
    let _: String = ::redis::cmd("SET")
        .arg("after")
        .arg("failover")
        .query(&mut second)
        .expect("a write through the second endpoint after its failover");
    let moved: Option<String> = ::redis::cmd("GET")
        .arg("after")
        .query(&mut second_replica.conn())
        .expect("GET on the promoted replica");
    assert_eq!(moved.as_deref(), Some("failover"));
}

/// A master configured by host name is killed and comes back at a new
/// loopback address under the same name: the proxy looks the name up again
/// while the master is unreachable, finds it at the new address, confirms
/// its role there and sends it the write a client sent meanwhile.
#[test]
fn a_master_known_by_name_is_found_again_at_its_new_address() {
    let first_ip: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
    let second_ip: std::net::IpAddr = "127.0.0.3".parse().expect("ip");
    let mut master = RedisServer::builder()
        .config(format!("bind 127.0.0.1 {first_ip}"))
        .spawn();
    let port = master.port();
    let host = support::hosts::HostName::pointing_to(first_ip);
    let master_arg = format!("{}:{port}", host.name());
    let proxy = Proxy::spawn(&[
        "--master",
        master_arg.as_str(),
        "--quorum",
        "1",
        "--down-after-ms",
        "1000",
    ]);
    crate::core::Group::wait_serving(&proxy);
    let sentinel = proxy.sentinel_addr();
    assert_eq!(
        master_of(sentinel, "mymaster"),
        Some(std::net::SocketAddr::new(first_ip, port))
    );
    let mut conn = support::redis_conn_with_timeout(proxy.addr(), None, Duration::from_secs(20))
        .expect("connect to the proxy");

    master.kill9();
    host.point_to(second_ip);
    let config = master.dir().join("redis.conf");
    let text = std::fs::read_to_string(&config).expect("read redis.conf");
    let moved = text.replace(
        &format!("bind 127.0.0.1 {first_ip}"),
        &format!("bind 127.0.0.1 {second_ip}"),
    );
    std::fs::write(&config, moved).expect("write redis.conf");
    // A write sent while the master is gone is held, then executed at the
    // new address once the master is back there.
    let sent = Instant::now();
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        master.restart();
        master
    });
    let _: String = ::redis::cmd("SET")
        .arg("moved")
        .arg("yes")
        .query(&mut conn)
        .expect("the write reaches the master at its new address");
    eprintln!("the held write ran {:?} after it was sent", sent.elapsed());
    let master = restart.join().expect("restart thread");
    assert_eq!(
        master_of(sentinel, "mymaster"),
        Some(std::net::SocketAddr::new(second_ip, port))
    );
    let value: Option<String> = ::redis::cmd("GET")
        .arg("moved")
        .query(&mut master.conn())
        .expect("GET on the restarted master");
    assert_eq!(value.as_deref(), Some("yes"));
}

/// `SENTINEL SIMULATE-FAILURE CRASH-AFTER-PROMOTION`: the proxy leading a
/// failover exits with code 99 right after the replica's promotion, as
/// Sentinel does; what it saved first (the promoted replica under the new
/// epoch) brings it back naming the new master.
#[test]
fn a_simulated_crash_after_promotion_exits_99_with_the_new_master_saved() {
    let (mut master, replica) = pair();
    let data = tempfile::tempdir().expect("data dir");
    let args = crate::core::lone_proxy_args(master.addr(), 1, data.path());
    let mut proxy = Proxy::builder().args(args.clone()).spawn();
    let sentinel = proxy.sentinel_addr();
    support::assert_eventually!(
        Duration::from_secs(20),
        master_field(sentinel, "mymaster", "num-slaves").as_deref() == Some("1")
    );
    ok(
        sentinel,
        &["SENTINEL", "SIMULATE-FAILURE", "CRASH-AFTER-PROMOTION"],
    );
    master.kill9();
    let status = proxy.wait_exit(FAILOVER_BOUND);
    assert_eq!(status.and_then(|s| s.code()), Some(99), "{}", proxy.log());
    assert!(
        replica.role().is_ok_and(|r| r.is_master()),
        "the replica was promoted before the crash"
    );
    let restarted = Proxy::builder().args(args).spawn();
    assert_eq!(
        master_of(restarted.sentinel_addr(), "mymaster"),
        Some(replica.addr())
    );
}

/// Separate credentials: the Redis nodes want one password (`--auth-pass`),
/// the proxies' sentinel ports another (`--requirepass`), which the proxies
/// give each other as `--sentinel-pass`. Both proxies count each other in
/// touch (CKQUORUM) and fail the group over together.
#[test]
fn peers_log_in_with_sentinel_credentials_apart_from_the_nodes() {
    let master = RedisServer::builder().requirepass("node-secret").spawn();
    let replica = RedisServer::builder()
        .requirepass("node-secret")
        .replica_of(master.addr())
        .spawn();
    support::assert_eventually!(Duration::from_secs(20), replica.master_link_up());
    let ports = [support::free_port(), support::free_port()];
    let sentinel_ports = ports.map(|p| support::loopback(p).to_string());
    let master_arg = master.addr().to_string();
    let proxies: Vec<Proxy> = (0..2)
        .map(|i| {
            Proxy::spawn(&[
                "--master",
                master_arg.as_str(),
                "--sentinel-listen",
                sentinel_ports[i].as_str(),
                "--peer",
                sentinel_ports[1 - i].as_str(),
                "--auth-pass",
                "node-secret",
                "--requirepass",
                "port-secret",
                "--sentinel-pass",
                "port-secret",
                "--down-after-ms",
                "1000",
            ])
        })
        .collect();
    let ask = |proxy: &Proxy, args: &[&str]| -> Option<String> {
        let mut conn = support::redis_conn_with_timeout(
            proxy.sentinel_addr(),
            Some("port-secret"),
            Duration::from_secs(2),
        )
        .ok()?;
        let mut cmd = ::redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query::<String>(&mut conn).ok()
    };
    for proxy in &proxies {
        support::assert_eventually!(
            Duration::from_secs(20),
            ask(proxy, &["SENTINEL", "CKQUORUM", "mymaster"])
                .is_some_and(|reply| reply.starts_with("OK 2 usable"))
        );
    }
    let mut master = master;
    master.kill9();
    for proxy in &proxies {
        support::assert_eventually!(FAILOVER_BOUND, {
            let mut conn = support::redis_conn_with_timeout(
                proxy.sentinel_addr(),
                Some("port-secret"),
                Duration::from_secs(2),
            );
            conn.as_mut().ok().and_then(|conn| {
                ::redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg("mymaster")
                    .query::<Vec<String>>(conn)
                    .ok()
            }) == Some(vec![
                replica.addr().ip().to_string(),
                replica.addr().port().to_string(),
            ])
        });
    }
}
