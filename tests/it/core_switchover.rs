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
    let reply: String = sentinel_query(
        group.proxies[0].sentinel_addr(),
        &["SENTINEL", "FAILOVER", "mymaster"],
    )
    .expect("SENTINEL FAILOVER is accepted");
    assert_eq!(reply, "OK");
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
