//! Planned switchover: `SENTINEL FAILOVER mymaster` on a proxy while clients
//! write through every proxy of the group. The master is healthy, so nothing
//! may be lost and no client may see an error.

use std::time::{Duration, Instant};

use crate::core::{FAILOVER_BOUND, Group, Writers, sentinel_query, writes_on};
use crate::support;

/// One writer per proxy sends INCR every 5 ms; `SENTINEL FAILOVER` on proxy 0
/// moves the master. No writer sees an error, every writer's writes continue
/// on the new master, the counter there equals the number of acknowledged
/// INCRs, and the old master ends up replicating from the new one.
/// `SENTINEL FAILOVER mymaster` on the group's first proxy, which accepts it.
fn ask_failover(group: &Group) {
    let reply: String = sentinel_query(
        group.proxies[0].sentinel_addr(),
        &["SENTINEL", "FAILOVER", "mymaster"],
    )
    .expect("SENTINEL FAILOVER is accepted");
    assert_eq!(reply, "OK");
}

#[test]
fn a_planned_switchover_loses_no_write() {
    let group = Group::spawn(2, 3);
    let old = group.nodes[0].addr();
    let writers = Writers::start(group.proxies.iter().map(|p| p.addr()));
    support::assert_eventually!(
        Duration::from_secs(10),
        writes_on(&group.nodes[0]) > 100,
        "writes flow before the switchover"
    );

    let asked = Instant::now();
    ask_failover(&group);
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    let switched = Instant::now();
    let at_switch = writes_on(group.node(new));
    support::assert_eventually!(
        Duration::from_secs(15),
        writes_on(group.node(new)) > at_switch + 150,
        "writes continue on the new master {new}"
    );
    let logs = writers.stop();

    let mut acked = 0;
    for log in &logs {
        assert!(
            log.errors().is_empty(),
            "the writer through {} saw errors: {:?}",
            log.proxy,
            log.errors()
        );
        let after_switch = log
            .outcomes
            .iter()
            .filter(|(at, r)| *at > switched && r.is_ok())
            .count();
        assert!(
            after_switch > 0,
            "the writer through {} made no progress after the switch",
            log.proxy
        );
        acked += log.acked() as i64;
    }
    assert_eq!(
        writes_on(group.node(new)),
        acked,
        "the new master holds exactly the acknowledged INCRs"
    );
    assert!(
        group.proxies[0].log().contains("+elected-leader"),
        "the proxy asked to fail over led it"
    );
    support::assert_eventually!(
        Duration::from_secs(20),
        group.node(old).role().ok().and_then(|r| r.master()) == Some(new),
        "the old master {old} replicates from {new}: {:?}",
        group.node(old).role()
    );
    let longest_wait = logs
        .iter()
        .flat_map(|l| l.outcomes.windows(2).map(|w| w[1].0 - w[0].0))
        .max()
        .unwrap_or_default();
    eprintln!(
        "switchover: {acked} writes, switch {:?} after the request, longest gap between \
         two replies {longest_wait:?}",
        switched - asked
    );
}

/// Pipelined writers (`redis-benchmark -P 16`) through an observer proxy
/// during a planned switchover: it is not asked to vote, so it learns of the
/// switch only after the leader's `FAILOVER` paused the old master. Every
/// client has a batch waiting there, which the demoted master then refuses
/// with `-READONLY`. Those commands did not run: they are sent again to the
/// new master. No client sees an error, and the counter on the new master
/// equals the number of INCRs sent: none lost, none run twice.
#[test]
fn pipelined_writers_through_an_observer_see_no_error_in_a_switchover() {
    const INCRS: u64 = 1_000_000;
    let group = Group::builder().voters(3).observers(1).spawn();
    let old = group.nodes[0].addr();
    let observer = &group.proxies[3];
    let runner = support::pipelined_incrs(observer.addr().port(), INCRS);
    let counter = |node: &support::RedisServer| -> u64 {
        node.cmd(&["GET", "counter:__rand_int__"])
            .ok()
            .and_then(|v| support::value_to_string(&v))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    support::assert_eventually!(
        Duration::from_secs(10),
        counter(&group.nodes[0]) > 50_000,
        "pipelined writes flow before the switchover"
    );
    ask_failover(&group);
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    let ended_early = runner.is_finished();
    let out = runner.join().expect("benchmark thread");
    let text = support::output_text(&out);
    assert!(
        !ended_early,
        "the benchmark ended before the switchover: {text}"
    );
    assert!(out.status.success(), "redis-benchmark failed: {text}");
    assert!(
        !text.to_lowercase().contains("error"),
        "redis-benchmark saw errors: {text}"
    );
    assert_eq!(
        counter(group.node(new)),
        INCRS,
        "every INCR ran exactly once"
    );
    assert!(
        observer
            .log()
            .contains("master answered -READONLY; retrying on the new master"),
        "the refused batches were retried"
    );
}
