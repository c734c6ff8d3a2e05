//! The sentinel core among real Redis Sentinels: 2 `redis-sentinel` processes
//! and 1 proxy monitor one master with quorum 2, find each other through
//! hellos, and fail over together whoever leads. A Sentinel-aware client
//! (redis-py's `Sentinel`) asks the proxy's sentinel port for the master.

use std::net::SocketAddr;
use std::time::Duration;

use crate::core::Group;
use crate::support::{self, Proxy, RedisServer, Sentinel, SentinelOptions, assert_eventually};

/// Asks the proxy's sentinel port through redis-py's `Sentinel` client.
fn discover_master(sentinel: SocketAddr) -> Result<String, String> {
    let script = format!(
        "from redis.sentinel import Sentinel\n\
         s = Sentinel([('{}', {})], socket_timeout=2)\n\
         host, port = s.discover_master('mymaster')\n\
         print(f'{{host}}:{{port}}')\n",
        sentinel.ip(),
        sentinel.port()
    );
    let mut command = std::process::Command::new(support::python()?);
    command.arg("-c").arg(script);
    let out = support::run_bounded(command, b"", Duration::from_secs(20));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `proxy_leads`: the proxy decides alone that the master is down (quorum 1
/// for it) and detects it first, so it asks the Sentinels for their votes;
/// otherwise the Sentinels detect it first (the proxy waits 5 s) and one of
/// them leads, with the proxy's vote if asked.
fn fail_over_together(proxy_leads: bool) {
    let mut master = RedisServer::spawn();
    let replica = RedisServer::builder().replica_of(master.addr()).spawn();
    assert_eventually!(Duration::from_secs(20), replica.master_link_up());
    let sentinel_down_after = if proxy_leads { 5000 } else { 1000 };
    let sentinels: Vec<Sentinel> = (0..2)
        .map(|_| {
            Sentinel::spawn(
                master.addr(),
                SentinelOptions {
                    down_after_ms: sentinel_down_after,
                    ..SentinelOptions::default()
                },
            )
        })
        .collect();
    let mut args = vec![
        "--master".to_owned(),
        master.addr().to_string(),
        "--quorum".to_owned(),
        if proxy_leads { "1" } else { "2" }.to_owned(),
        "--down-after-ms".to_owned(),
        if proxy_leads { "1000" } else { "5000" }.to_owned(),
        "--failover-timeout-ms".to_owned(),
        "10000".to_owned(),
    ];
    for s in &sentinels {
        args.extend(["--peer".to_owned(), s.addr().to_string()]);
    }
    let proxy = Proxy::builder().args(args).spawn();
    Group::wait_serving(&proxy);
    // They find each other: each Sentinel lists the proxy, the proxy both.
    for s in &sentinels {
        assert_eventually!(
            Duration::from_secs(20),
            s.sentinels()
                .is_ok_and(|list| list.iter().any(|p| p.get("port").map(String::as_str)
                    == Some(proxy.sentinel_addr().port().to_string().as_str()))),
            "sentinel {} lists the proxy; its log:\n{}",
            s.addr(),
            s.log()
        );
    }
    assert_eventually!(
        Duration::from_secs(20),
        crate::core::sentinel_master_field(&proxy, "num-other-sentinels").as_deref() == Some("2")
    );
    assert_eq!(
        discover_master(proxy.sentinel_addr()),
        Ok(master.addr().to_string())
    );

    master.kill9();
    let new = replica.addr();
    assert_eventually!(
        Duration::from_secs(40),
        crate::core::master_named_by(proxy.sentinel_addr()) == Some(new)
            && sentinels.iter().all(|s| s.master_addr() == Some(new)),
        "all three name the replica; proxy log:\n{}",
        proxy.log()
    );
    assert!(replica.role().is_ok_and(|r| r.is_master()));
    let proxy_led = proxy.log().contains("+elected-leader");
    let sentinel_led = sentinels
        .iter()
        .any(|s| s.log().contains("+elected-leader"));
    assert_eq!(
        (proxy_led, sentinel_led),
        (proxy_leads, !proxy_leads),
        "who led: proxy {proxy_led}, a sentinel {sentinel_led}"
    );
    assert_eventually!(
        Duration::from_secs(10),
        support::redis_conn_with_timeout(proxy.addr(), None, Duration::from_secs(5))
            .ok()
            .and_then(|mut c| redis::cmd("SET")
                .arg("after")
                .arg(1)
                .query::<String>(&mut c)
                .ok())
            .is_some(),
        "writes through the proxy resume"
    );
    assert!(replica.cmd(&["EXISTS", "after"]) == Ok(redis::Value::Int(1)));
    assert_eq!(discover_master(proxy.sentinel_addr()), Ok(new.to_string()));
}

#[test]
fn the_proxy_leads_a_failover_with_real_sentinels_voting() {
    fail_over_together(true);
}

#[test]
fn a_real_sentinel_leads_and_the_proxy_follows() {
    fail_over_together(false);
}
