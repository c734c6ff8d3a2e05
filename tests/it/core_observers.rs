//! Observers: proxies that follow the group (hellos, config epochs), route
//! and fence like voters, but never vote or lead. They come and go (an
//! autoscaled fleet) without changing what the voters need to agree.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::core::{FAILOVER_BOUND, Group, Writers, sentinel_query, sentinels_known_by, writes_on};
use crate::support;

/// Samples `SENTINEL ckquorum mymaster` on every voter until `stop`.
fn sample_ckquorum(
    voters: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<Vec<(SocketAddr, Result<String, String>)>> {
    thread::spawn(move || {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for voter in &voters {
                let reply = sentinel_query::<String>(*voter, &["SENTINEL", "ckquorum", "mymaster"])
                    .map_err(|e| e.to_string());
                samples.push((*voter, reply));
            }
            thread::sleep(Duration::from_millis(50));
        }
        samples
    })
}

/// The usable voters a ckquorum reply counts (`OK 3 usable Sentinels…`,
/// `NOQUORUM 1 usable voters, …`).
fn usable(reply: &Result<String, String>) -> Option<u32> {
    let text = match reply {
        Ok(text) | Err(text) => text,
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "usable")?;
    words.get(at.checked_sub(1)?)?.parse().ok()
}

/// Whether `SENTINEL ckquorum` on `voter` is OK with exactly the 3 voters.
/// Checked with a short `assert_eventually!`, not once: a healthy group
/// briefly reports NOQUORUM every few seconds (a product bug, see
/// `core_fencing::a_healthy_group_never_fences_itself`), while every sample
/// must still count no more than the 3 voters.
fn quorum_ok(voter: SocketAddr) -> bool {
    sentinel_query::<String>(voter, &["SENTINEL", "ckquorum", "mymaster"])
        .is_ok_and(|r| r.starts_with("OK 3 usable"))
}

/// 3 voters and 2 observers. Writes flow through an observer; both
/// observers die and a new one joins; then the master is killed. The voters
/// fail over on their own, the new observer follows (it names the new master
/// and its clients' writes land there), observers are listed as non-voters
/// and are never counted by the voters' `SENTINEL ckquorum`.
#[test]
fn observers_follow_failovers_and_never_count() {
    let mut group = Group::builder().voters(3).observers(2).spawn();
    let old = group.nodes[0].addr();
    let voters: Vec<SocketAddr> = group.proxies[..3]
        .iter()
        .map(|p| p.sentinel_addr())
        .collect();
    for voter in &voters {
        for entry in sentinels_known_by(*voter) {
            let addr: SocketAddr = format!("{}:{}", entry["ip"], entry["port"])
                .parse()
                .expect("peer address");
            let expected = if voters.contains(&addr) { "1" } else { "0" };
            assert_eq!(
                entry.get("voter").map(String::as_str),
                Some(expected),
                "voter {voter} classifies {addr}"
            );
        }
        support::assert_eventually!(
            Duration::from_secs(5),
            quorum_ok(*voter),
            "ckquorum on {voter} counts the 3 voters"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_ckquorum(voters.clone(), Arc::clone(&stop));

    // Observers route: writes through one land on the master.
    let writers = Writers::start([group.proxies[3].addr()]);
    support::assert_eventually!(
        Duration::from_secs(10),
        writes_on(&group.nodes[0]) > 50,
        "writes through an observer reach the master"
    );
    let logs = writers.stop();
    assert!(logs[0].errors().is_empty(), "{:?}", logs[0].errors());

    // Churn, as autoscaled sidecars do: both observers die, then ten more
    // start and stop one after another while the ckquorum sampler runs.
    group.kill_proxy(4);
    group.kill_proxy(3);
    for _ in 0..10 {
        let passing = group.add_observer();
        Group::wait_serving(&group.proxies[passing]);
        group.kill_proxy(passing);
    }
    let observer = group.add_observer();
    Group::wait_serving(&group.proxies[observer]);
    let observer_port = group.proxies[observer].sentinel_addr();
    support::assert_eventually!(
        Duration::from_secs(20),
        {
            let known = sentinels_known_by(observer_port);
            voters.iter().all(|v| {
                known.iter().any(|e| {
                    e.get("port") == Some(&v.port().to_string())
                        && e.get("voter").map(String::as_str) == Some("1")
                        && e.get("runid").is_some_and(|r| !r.is_empty())
                })
            })
        },
        "the new observer hears every voter: {:?}",
        sentinels_known_by(observer_port)
    );
    support::assert_eventually!(
        Duration::from_secs(20),
        voters.iter().all(|v| {
            sentinels_known_by(*v).iter().any(|e| {
                e.get("port") == Some(&observer_port.port().to_string())
                    && e.get("voter").map(String::as_str) == Some("0")
            })
        }),
        "every voter lists the new observer as a non-voter"
    );
    for voter in &voters {
        support::assert_eventually!(
            Duration::from_secs(5),
            quorum_ok(*voter),
            "ckquorum on {voter} after the churn"
        );
    }

    let base = writes_on(&group.nodes[0]);
    let writers = Writers::start([group.proxies[observer].addr()]);
    support::assert_eventually!(
        Duration::from_secs(10),
        writes_on(&group.nodes[0]) > base + 50,
        "writes through the new observer reach the master"
    );
    let killed_at = Instant::now();
    group.nodes[0].kill9();
    // Every running proxy, the new observer included, names the new master.
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    let at_switch = writes_on(group.node(new));
    support::assert_eventually!(
        Duration::from_secs(15),
        writes_on(group.node(new)) > at_switch + 50,
        "writes through the new observer move to the new master {new}"
    );
    writers.stop()[0].assert_only_crash_errors(killed_at);
    for voter in &voters {
        support::assert_eventually!(
            Duration::from_secs(5),
            quorum_ok(*voter),
            "ckquorum on {voter} after the failover"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("ckquorum sampler");

    let observer_log = group.proxies[observer].log();
    assert!(
        !observer_log.contains("+try-failover") && !observer_log.contains("+vote-for-leader"),
        "an observer took part in the election"
    );
    let leaders = group.proxies[..3]
        .iter()
        .filter(|p| p.log().contains("+elected-leader"))
        .count();
    assert_eq!(leaders, 1, "one voter led the failover");
    let counted_observers: Vec<_> = samples
        .iter()
        .filter(|(_, reply)| usable(reply).is_none_or(|n| n > 3))
        .collect();
    assert!(
        counted_observers.is_empty(),
        "ckquorum counted more than the 3 voters: {counted_observers:?}"
    );
    let not_ok = samples.iter().filter(|(_, r)| r.is_err()).count();
    eprintln!(
        "ckquorum samples: {} ({not_ok} not OK, see a_healthy_group_never_fences_itself)",
        samples.len()
    );
}
