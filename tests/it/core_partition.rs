//! Partitions inside a group of three proxies, made with the proxies' fault
//! injector (`SENTINEL SIMULATE-PARTITION`, enabled by
//! `SENTINEL_PROXY_FAULT_INJECTION=1`): a proxy pretends it cannot reach the
//! listed nodes and peers. Everything runs on loopback, so this is how a cut
//! is drawn between processes that share one network.

use std::net::SocketAddr;
use std::time::Duration;

use crate::core::{Group, master_named_by};
use crate::support::{self, Proxy, RedisServer, RespClient, assert_eventually};

/// A master, two replicas and three voting proxies with fault injection on.
fn group(hold_timeout_ms: &str) -> Group {
    Group::builder()
        .flag("--hold-timeout-ms", hold_timeout_ms)
        .fault_injection()
        .spawn()
}

/// Makes `proxy` pretend it cannot reach `addrs` (none: heal).
fn cut(proxy: &Proxy, addrs: &[SocketAddr]) {
    let mut args = vec!["SENTINEL".to_owned(), "SIMULATE-PARTITION".to_owned()];
    args.extend(addrs.iter().map(SocketAddr::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let reply = RespClient::connect(proxy.sentinel_addr()).command(&args);
    assert_eq!(reply, b"+OK\r\n", "SIMULATE-PARTITION on {}", proxy.addr());
}

fn fenced(proxy: &Proxy) -> bool {
    let reply = RespClient::connect(proxy.sentinel_addr()).command(&["INFO"]);
    String::from_utf8_lossy(&reply).contains("sentinel_fenced:no majority")
}

fn set_through(proxy: &Proxy, key: &str) -> Vec<u8> {
    let mut client = RespClient::connect(proxy.addr());
    client.set_timeout(Duration::from_secs(30));
    client.command(&["SET", key, "1"])
}

fn exists(node: &RedisServer, key: &str) -> bool {
    node.cmd(&["EXISTS", key]) == Ok(redis::Value::Int(1))
}

/// One proxy cut off from its peers and from the master: it does not fail
/// over on its own, refuses writes (held, then -MASTERDOWN, nothing
/// executed), and serves again once the partition heals. The other two keep
/// serving from the same master.
#[test]
fn an_isolated_proxy_fences_itself_and_rejoins() {
    let group = group("1500");
    let master = group.nodes[0].addr();
    let (a, b, c) = (&group.proxies[0], &group.proxies[1], &group.proxies[2]);
    cut(c, &[master, a.sentinel_addr(), b.sentinel_addr()]);
    cut(a, &[c.sentinel_addr()]);
    cut(b, &[c.sentinel_addr()]);

    assert_eventually!(
        Duration::from_secs(5),
        fenced(c),
        "the isolated proxy fences itself"
    );
    assert_eventually!(
        Duration::from_secs(5),
        c.http_get("/readyz")
            .is_ok_and(|(code, body)| code == 503 && body.contains("no majority")),
        "readyz tells the orchestrator"
    );
    let reply = set_through(c, "isolated-write");
    assert!(
        reply.starts_with(b"-MASTERDOWN"),
        "{}",
        support::client::show(&reply)
    );
    assert!(
        !exists(&group.nodes[0], "isolated-write"),
        "nothing executed"
    );
    // The majority is unaffected.
    assert_eq!(set_through(a, "majority-write"), b"+OK\r\n");
    // Several down-after periods: the isolated proxy starts no failover.
    std::thread::sleep(Duration::from_secs(4));
    for replica in &group.nodes[1..] {
        assert!(
            replica.role().is_ok_and(|r| r.is_replica()),
            "a replica was promoted by the isolated proxy; its log:\n{}",
            c.log()
        );
    }
    assert!(
        !c.log().contains("+try-failover"),
        "the minority tried a failover"
    );

    for proxy in &group.proxies {
        cut(proxy, &[]);
    }
    assert_eventually!(Duration::from_secs(10), !fenced(c), "the proxy rejoins");
    assert_eventually!(
        Duration::from_secs(5),
        c.http_get("/readyz").is_ok_and(|(code, _)| code == 200),
        "ready again"
    );
    assert_eventually!(
        Duration::from_secs(10),
        set_through(c, "healed-write") == b"+OK\r\n"
    );
    assert!(exists(&group.nodes[0], "healed-write"));
}

/// The master cut off from the majority: the two proxies that lost it fail
/// over, while the third, which still reaches the old master but not its
/// peers, never writes to it; after the heal it follows the new master and
/// the old master becomes a replica.
#[test]
fn a_master_cut_off_from_the_majority_is_replaced_and_never_written_by_the_minority() {
    let group = group("30000");
    let old = group.nodes[0].addr();
    let (a, b, c) = (&group.proxies[0], &group.proxies[1], &group.proxies[2]);
    cut(a, &[old, c.sentinel_addr()]);
    cut(b, &[old, c.sentinel_addr()]);
    cut(c, &[a.sentinel_addr(), b.sentinel_addr()]);

    assert_eventually!(
        Duration::from_secs(5),
        fenced(c),
        "the minority fences itself"
    );
    // A write through the minority is held, not sent to the old master.
    let held = std::thread::spawn({
        let addr = c.addr();
        move || {
            let mut client = RespClient::connect(addr);
            client.set_timeout(Duration::from_secs(40));
            client.command(&["SET", "minority-write", "1"])
        }
    });
    let new = support::wait_for(Duration::from_secs(30), "the majority to fail over", || {
        master_named_by(a.sentinel_addr())
            .filter(|m| *m != old && master_named_by(b.sentinel_addr()) == Some(*m))
    });
    assert_eventually!(
        Duration::from_secs(10),
        set_through(a, "majority-write") == b"+OK\r\n"
    );
    assert!(
        !exists(&group.nodes[0], "minority-write"),
        "the minority wrote to the old master"
    );

    for proxy in &group.proxies {
        cut(proxy, &[]);
    }
    let reply = held.join().expect("held writer");
    assert_eq!(reply, b"+OK\r\n", "the held write runs after the heal");
    let new_node = group.node(new);
    assert!(
        exists(new_node, "minority-write"),
        "it ran on the new master; on the old one: {}; minority log:\n{}",
        exists(&group.nodes[0], "minority-write"),
        c.log()
    );
    assert!(exists(new_node, "majority-write"));
    assert_eventually!(
        Duration::from_secs(10),
        master_named_by(c.sentinel_addr()) == Some(new),
        "the minority follows the new master"
    );
    assert_eventually!(
        Duration::from_secs(30),
        group.nodes[0].role().ok().and_then(|r| r.master()) == Some(new),
        "the old master becomes a replica of the new one"
    );
    assert!(
        !exists(&group.nodes[0], "minority-write")
            || group.nodes[0].role().is_ok_and(|r| r.is_replica()),
        "the old master never took the minority's write as a master"
    );
}
