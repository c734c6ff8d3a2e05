//! The sentinel core next to a real `redis-sentinel`: they find each other
//! through hellos, vote together and agree on the new master, so a group can
//! mix proxies and Sentinels (or migrate from one to the other).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::{
    FAILOVER_BOUND, Group, Writers, sentinel_master_field, sentinel_query, sentinels_known_by,
    writes_on,
};
use crate::support;

/// `ip:port` of one entry of `SENTINEL sentinels`.
fn entry_addr(entry: &HashMap<String, String>) -> Option<SocketAddr> {
    format!("{}:{}", entry.get("ip")?, entry.get("port")?)
        .parse()
        .ok()
}

/// The run id a sentinel port gives for itself (`SENTINEL myid`).
fn myid(addr: SocketAddr) -> String {
    sentinel_query(addr, &["SENTINEL", "myid"])
        .unwrap_or_else(|e| panic!("SENTINEL myid on {addr}: {e}"))
}

/// Two proxies and one real Sentinel, each listing the others as voters:
/// every one of them knows the other two by address and run id, and after
/// `kill -9` of the master all three name the same new master, under the
/// same config epoch, and writes through a proxy resume there.
#[test]
fn proxies_and_a_real_sentinel_fail_over_together() {
    let mut group = Group::builder().replicas(2).voters(2).sentinels(1).spawn();
    let old = group.nodes[0].addr();
    let sentinel_addr = group.sentinels[0].addr();
    let everyone: Vec<SocketAddr> = group.sentinel_addrs();
    let ids: HashMap<SocketAddr, String> = everyone.iter().map(|a| (*a, myid(*a))).collect();

    // The real Sentinel lists both proxies, by sentinel port and run id.
    support::assert_eventually!(
        Duration::from_secs(20),
        {
            let listed: HashMap<SocketAddr, String> = group.sentinels[0]
                .sentinels()
                .unwrap_or_default()
                .iter()
                .filter_map(|e| Some((entry_addr(e)?, e.get("runid")?.clone())))
                .collect();
            group
                .proxies
                .iter()
                .all(|p| listed.get(&p.sentinel_addr()) == ids.get(&p.sentinel_addr()))
                && listed.len() == 2
        },
        "the Sentinel lists both proxies: {:?}",
        group.sentinels[0].sentinels()
    );
    // Each proxy lists the other proxy and the Sentinel, as voters.
    for proxy in &group.proxies {
        let me = proxy.sentinel_addr();
        support::assert_eventually!(
            Duration::from_secs(20),
            {
                let listed: HashMap<SocketAddr, (String, String)> = sentinels_known_by(me)
                    .iter()
                    .filter_map(|e| {
                        let voter = e.get("voter")?.clone();
                        Some((entry_addr(e)?, (e.get("runid")?.clone(), voter)))
                    })
                    .collect();
                listed.len() == 2
                    && everyone
                        .iter()
                        .filter(|a| **a != me)
                        .all(|a| listed.get(a) == Some(&(ids[a].clone(), "1".to_owned())))
            },
            "proxy {me} lists the other proxy and the Sentinel as voters: {:?}",
            sentinels_known_by(me)
        );
    }

    let writers = Writers::start([group.proxies[0].addr()]);
    std::thread::sleep(Duration::from_millis(300));
    let killed_at = Instant::now();
    group.nodes[0].kill9();

    // Proxies and Sentinel converge (wait_for_new_master asks all three).
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    let switched_after = killed_at.elapsed();
    let at_switch = writes_on(group.node(new));
    support::assert_eventually!(
        Duration::from_secs(15),
        writes_on(group.node(new)) > at_switch + 50,
        "writes through the proxy resume on the new master {new}"
    );
    writers.stop()[0].assert_only_crash_errors(killed_at);

    // One config epoch everywhere, as the Sentinel itself reports it.
    let sentinel_epoch = group.sentinels[0]
        .master_info()
        .ok()
        .and_then(|m| m.get("config-epoch").cloned());
    support::assert_eventually!(
        Duration::from_secs(10),
        group.proxies.iter().all(|p| {
            sentinel_master_field(p, "config-epoch")
                == group.sentinels[0]
                    .master_info()
                    .ok()
                    .and_then(|m| m.get("config-epoch").cloned())
        }),
        "proxies and Sentinel agree on the config epoch (Sentinel: {sentinel_epoch:?})"
    );
    let led_by_sentinel = group.sentinels[0].log().contains("+elected-leader");
    let proxy_leaders = group
        .proxies
        .iter()
        .filter(|p| p.log().contains("+elected-leader"))
        .count();
    eprintln!(
        "interop failover: new master {new} after {switched_after:?}; \
         leader: {} (Sentinel {sentinel_addr})",
        if led_by_sentinel {
            "the Sentinel"
        } else {
            "a proxy"
        }
    );
    assert_eq!(
        proxy_leaders + usize::from(led_by_sentinel),
        1,
        "exactly one of the three led the failover"
    );
}
