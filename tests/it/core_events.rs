//! Sentinel events on the proxies' sentinel ports: clients written for Redis
//! Sentinel subscribe to `+switch-master` (and monitoring to `+sdown`,
//! `+odown`, …) and must get Sentinel's exact messages.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::core::{FAILOVER_BOUND, Group};
use crate::support::redis_conn_with_timeout;

/// After the first `+switch-master`, a subscriber keeps listening this long
/// to catch a duplicate.
const AFTER_SWITCH: Duration = Duration::from_millis(1500);

/// Subscribes on the sentinel port `addr` (`SUBSCRIBE +switch-master`, or
/// `PSUBSCRIBE *` when `all`), signals `ready` once the subscription is
/// confirmed, and returns every `(channel, message)` received until
/// [`AFTER_SWITCH`] after the first `+switch-master` (or `deadline`).
fn subscriber(
    addr: SocketAddr,
    all: bool,
    ready: mpsc::Sender<()>,
    deadline: Duration,
) -> thread::JoinHandle<Vec<(String, String)>> {
    thread::spawn(move || {
        let mut conn = redis_conn_with_timeout(addr, None, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to the sentinel port {addr}: {e}"));
        let mut pubsub = conn.as_pubsub();
        if all {
            pubsub.psubscribe("*").expect("PSUBSCRIBE *");
        } else {
            pubsub.subscribe("+switch-master").expect("SUBSCRIBE");
        }
        pubsub
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        ready.send(()).expect("signal the test");
        let started = Instant::now();
        let mut until = started + deadline;
        let mut received = Vec::new();
        while Instant::now() < until {
            let Ok(msg) = pubsub.get_message() else {
                continue;
            };
            let channel = msg.get_channel_name().to_owned();
            let payload: String = msg.get_payload().unwrap_or_default();
            if channel == "+switch-master" && !received.iter().any(|(c, _)| c == &channel) {
                until = Instant::now() + AFTER_SWITCH;
            }
            received.push((channel, payload));
        }
        received
    })
}

/// A client subscribed to `+switch-master` on any proxy of the group gets
/// exactly one `mymaster <old ip> <old port> <new ip> <new port>` naming the
/// node that is master now. A client subscribed to every event on the proxy
/// that led sees Sentinel's whole sequence: `+sdown`, `+odown`,
/// `+try-failover`, `+elected-leader`, `+promoted-slave`, `+switch-master`.
/// (The other proxies may take the new configuration from the leader's hello
/// before they see the master down themselves, as Sentinels do.)
#[test]
fn sentinel_aware_clients_hear_the_switch() {
    let mut group = Group::spawn(2, 3);
    let old = group.nodes[0].addr();
    let (ready_tx, ready) = mpsc::channel();
    let deadline = FAILOVER_BOUND + Duration::from_secs(5);
    let subscribe = |all: bool| -> Vec<_> {
        group
            .proxies
            .iter()
            .map(|p| subscriber(p.sentinel_addr(), all, ready_tx.clone(), deadline))
            .collect()
    };
    let switch_subscribers = subscribe(false);
    let monitors = subscribe(true);
    for _ in 0..switch_subscribers.len() + monitors.len() {
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("every subscription is confirmed");
    }

    group.nodes[0].kill9();
    let new = group.wait_for_new_master(old, FAILOVER_BOUND);
    let expected = format!(
        "mymaster {} {} {} {}",
        old.ip(),
        old.port(),
        new.ip(),
        new.port()
    );

    for (i, subscriber) in switch_subscribers.into_iter().enumerate() {
        let received = subscriber.join().expect("subscriber thread");
        let switches: Vec<&String> = received
            .iter()
            .filter(|(c, _)| c == "+switch-master")
            .map(|(_, m)| m)
            .collect();
        assert_eq!(
            switches,
            vec![&expected],
            "proxy {i} publishes one +switch-master naming the new master; got {received:?}"
        );
    }

    let master = format!("master mymaster {} {}", old.ip(), old.port());
    let promoted = format!("slave {new} {} {} @ {}", new.ip(), new.port(), &master[7..]);
    let mut leaders = 0;
    for (i, monitor) in monitors.into_iter().enumerate() {
        let events = monitor.join().expect("monitor thread");
        let position = |channel: &str, text: &str| {
            events
                .iter()
                .position(|(c, m)| c == channel && m.starts_with(text))
        };
        if position("+elected-leader", &master).is_none() {
            continue;
        }
        leaders += 1;
        let sequence = [
            position("+sdown", &master),
            position("+odown", &format!("{master} #quorum")),
            position("+try-failover", &master),
            position("+elected-leader", &master),
            position("+promoted-slave", &promoted),
            position("+switch-master", &expected),
        ];
        assert!(
            sequence.iter().all(Option::is_some) && sequence.is_sorted(),
            "the leader, proxy {i}, publishes Sentinel's failover sequence \
             (positions {sequence:?}): {events:?}"
        );
    }
    assert_eq!(leaders, 1, "one proxy published +elected-leader");
}
