//! Fencing: a proxy that cannot hear a majority of the voters must not write
//! (it may be on the wrong side of a partition, where the others are already
//! failing over), and a minority must never fail over on its own.
//!
//! Proxies are "partitioned" by freezing them (SIGSTOP): they keep their
//! sockets but answer nothing, like a hung host.

use std::thread;
use std::time::{Duration, Instant};

use crate::core::{FAILOVER_BOUND, Group, master_named_by, sentinel_info, sentinel_query};
use crate::support::client::show;
use crate::support::{self, Proxy, RespClient};

/// What `INFO` on a proxy's sentinel port says about fencing.
fn fenced(proxy: &Proxy) -> Option<String> {
    sentinel_info(proxy)?.get("sentinel_fenced").cloned()
}

/// `SENTINEL ckquorum mymaster` on `proxy`: the OK line or the error.
fn ckquorum(proxy: &Proxy) -> Result<String, String> {
    sentinel_query::<String>(proxy.sentinel_addr(), &["SENTINEL", "ckquorum", "mymaster"])
        .map_err(|e| e.to_string())
}

const NO_MAJORITY: &str = "no majority of voters reachable";

/// Proxies 0 and 1 frozen: proxy 2 says it is fenced, holds a write until
/// its hold timeout and answers `-MASTERDOWN` without writing anything; once
/// they are back, writes through it succeed again.
#[test]
fn a_proxy_that_cannot_hear_a_majority_does_not_write() {
    let mut group = Group::builder()
        .voter_flag(2, "--hold-timeout-ms", "2000")
        .spawn();
    let master = group.nodes[0].addr();
    let mut client = group.proxies[2].connect();
    client.set_timeout(Duration::from_secs(10));
    assert_eq!(
        show(&client.command(&["SET", "before", "1"])),
        show(b"+OK\r\n")
    );

    group.proxies[0].signal("STOP");
    group.proxies[1].signal("STOP");
    support::assert_eventually!(
        Duration::from_secs(10),
        fenced(&group.proxies[2]).as_deref() == Some(NO_MAJORITY),
        "INFO shows the fence; last: {:?}",
        fenced(&group.proxies[2])
    );
    let quorum = ckquorum(&group.proxies[2]);
    assert!(
        quorum.as_ref().is_err_and(|e| e.contains("NOQUORUM")),
        "ckquorum reports the missing voters: {quorum:?}"
    );

    let sent = Instant::now();
    let reply = client.command(&["SET", "fenced", "1"]);
    let held = sent.elapsed();
    assert!(
        reply.starts_with(b"-MASTERDOWN"),
        "a fenced write is refused, got {}",
        show(&reply)
    );
    assert!(
        held >= Duration::from_millis(1500),
        "the write was held until the hold timeout, not refused after {held:?}"
    );
    for node in &group.nodes {
        assert_eq!(
            node.cmd(&["EXISTS", "fenced"]).ok(),
            Some(redis::Value::Int(0)),
            "the fenced write reached {}",
            node.addr()
        );
    }

    group.proxies[0].signal("CONT");
    group.proxies[1].signal("CONT");
    support::assert_eventually!(
        Duration::from_secs(15),
        {
            let mut client = group.proxies[2].connect();
            client.set_timeout(Duration::from_secs(5));
            client
                .try_send(b"*3\r\n$3\r\nSET\r\n$5\r\nafter\r\n$1\r\n1\r\n")
                .is_ok()
                && client.try_read_reply().is_ok_and(|r| r == b"+OK\r\n")
        },
        "writes through the proxy succeed once the voters are back"
    );
    assert_eq!(
        group.node(master).cmd(&["GET", "after"]).ok(),
        Some(redis::Value::BulkString(b"1".to_vec())),
        "the write landed on the master"
    );
}

/// Proxies 0 and 1 frozen, then the master killed: proxy 2 sees the master
/// down (SDOWN) but can reach neither the quorum nor a majority, so for
/// several down-after periods nobody is promoted. Once the others are back
/// the group fails over.
#[test]
fn a_minority_never_fails_over() {
    let mut group = Group::spawn(2, 3);
    let old = group.nodes[0].addr();
    // A process resumed after SIGSTOP enters TILT (its clock jumped), as Redis
    // Sentinel does, and sits out Sentinel's 30 s TILT period; shorten it so
    // the failover after the thaw does not wait for that.
    for proxy in &group.proxies {
        let ok: String = sentinel_query(
            proxy.sentinel_addr(),
            &["SENTINEL", "DEBUG", "tilt-period", "1000"],
        )
        .expect("SENTINEL DEBUG tilt-period");
        assert_eq!(ok, "OK");
    }
    group.proxies[0].signal("STOP");
    group.proxies[1].signal("STOP");
    support::assert_eventually!(
        Duration::from_secs(10),
        fenced(&group.proxies[2]).as_deref() == Some(NO_MAJORITY),
        "proxy 2 knows it is cut off"
    );

    group.nodes[0].kill9();
    let lone = &group.proxies[2];
    support::assert_eventually!(
        Duration::from_secs(10),
        sentinel_info(lone)
            .and_then(|i| i.get("master0").cloned())
            .is_some_and(|m| m.contains("status=sdown")),
        "proxy 2 sees the master down: {:?}",
        sentinel_info(lone)
    );
    let watch_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < watch_until {
        for replica in &group.nodes[1..] {
            let role = replica.role();
            assert!(
                role.as_ref().is_ok_and(|r| r.master() == Some(old)),
                "replica {} changed role without a majority: {role:?}",
                replica.addr()
            );
        }
        assert_eq!(master_named_by(lone.sentinel_addr()), Some(old));
        let status = sentinel_info(lone).and_then(|i| i.get("master0").cloned());
        assert!(
            status.as_ref().is_some_and(|m| !m.contains("status=odown")),
            "one voter cannot make the master ODOWN with quorum 2: {status:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let log = lone.log();
    assert!(
        !log.contains("+try-failover") && !log.contains("+elected-leader"),
        "the minority attempted a failover"
    );

    group.proxies[0].signal("CONT");
    group.proxies[1].signal("CONT");
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    let mut client = RespClient::connect(group.proxies[2].addr());
    client.set_timeout(Duration::from_secs(35));
    assert_eq!(show(&client.command(&["SET", "k", "v"])), show(b"+OK\r\n"));
    assert_eq!(
        group.node(new).cmd(&["GET", "k"]).ok(),
        Some(redis::Value::BulkString(b"v".to_vec()))
    );
}

/// In a healthy group nobody is fenced: `INFO` says `sentinel_fenced:none`,
/// `SENTINEL ckquorum` is OK, and no proxy logs that it holds commands.
#[test]
fn a_healthy_group_never_fences_itself() {
    let group = Group::spawn(1, 3);
    let logged_before: Vec<usize> = group.proxies.iter().map(|p| p.log().len()).collect();
    let mut bad = Vec::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for (i, proxy) in group.proxies.iter().enumerate() {
            if let Some(reason) = fenced(proxy).filter(|f| f != "none") {
                bad.push(format!("proxy {i}: sentinel_fenced:{reason}"));
            }
            if let Err(error) = ckquorum(proxy) {
                bad.push(format!("proxy {i}: ckquorum {error}"));
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    for (i, proxy) in group.proxies.iter().enumerate() {
        let log = proxy.log();
        for line in log[logged_before[i]..]
            .lines()
            .filter(|l| l.contains("holding commands"))
        {
            bad.push(format!("proxy {i} log: {line}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} fenced samples in a healthy group, first ones:\n{}",
        bad.len(),
        bad.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
}
