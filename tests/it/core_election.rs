//! Leader election under contention. When every voter sees the master die at
//! the same moment, every voter becomes a candidate and votes for itself, so
//! the first round elects nobody. Redis Sentinel delays each failover start by
//! a random amount (up to a second), so the retries do not collide again and a
//! later round elects a leader.

use std::process::Command;
use std::thread;
use std::time::Duration;

use crate::core::{Group, sentinel_query};

/// All three voters frozen across the master's death and thawed together
/// become candidates at once, and the first round usually elects nobody.
/// With a 3 s failover timeout the next round starts 6 s after the first
/// (plus Sentinel's random delay of up to 1 s), so within two rounds the
/// group must have elected a leader and promoted a replica.
#[test]
fn simultaneous_candidates_still_elect_a_leader() {
    let mut group = Group::builder()
        .flag("--failover-timeout-ms", "3000")
        .spawn();
    let old = group.nodes[0].addr();
    // A process resumed after SIGSTOP would enter TILT (and sit out the
    // failover); this test wants the opposite: all of them acting at once.
    for proxy in &group.proxies {
        let ok: String = sentinel_query(
            proxy.sentinel_addr(),
            &["SENTINEL", "DEBUG", "tilt-trigger", "60000"],
        )
        .expect("SENTINEL DEBUG tilt-trigger");
        assert_eq!(ok, "OK");
    }
    for proxy in &mut group.proxies {
        proxy.signal("STOP");
    }
    group.nodes[0].kill9();
    // Longer than down-after: each proxy finds the master down on its first
    // tick after the thaw.
    thread::sleep(Duration::from_millis(1500));
    // One `kill` for all three, so they resume within microseconds.
    let pids: Vec<String> = group.proxies.iter().map(|p| p.pid().to_string()).collect();
    let status = Command::new("kill")
        .arg("-CONT")
        .args(&pids)
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -CONT {pids:?}: {status}");
    group.wait_for_new_master(old, Duration::from_secs(15));
}
