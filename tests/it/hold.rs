//! Commands sent while no master is reachable are held, never executed
//! elsewhere, and refused with `-MASTERDOWN` only after the hold timeout.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::client::show;
use crate::support::{Proxy, RedisServer};

/// A fixed master that dies and comes back within the hold timeout: the
/// command sent meanwhile waits and then runs on it; the client sees only `+OK`.
#[test]
fn a_command_waits_for_a_returning_master() {
    let mut redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &master, "--hold-timeout-ms", "10000"]);
    let mut client = proxy.connect();
    client.set_timeout(Duration::from_secs(15));
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));

    redis.kill9();
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let reply = client.command(&["SET", "held", "1"]);
        (reply, started.elapsed())
    });
    thread::sleep(Duration::from_millis(1200));
    redis.restart();
    let (reply, waited) = sender.join().expect("client thread");
    assert_eq!(show(&reply), show(b"+OK\r\n"));
    assert!(
        waited >= Duration::from_millis(500),
        "the command did not wait: {waited:?}"
    );
    assert_eq!(
        redis.cmd(&["GET", "held"]).ok(),
        Some(redis::Value::BulkString(b"1".to_vec()))
    );
}

/// Past the hold timeout a held command gets `-MASTERDOWN` (it was never sent),
/// the connection stays usable, and works again once a master is back.
#[test]
fn a_held_command_is_refused_after_the_hold_timeout() {
    let mut redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &master, "--hold-timeout-ms", "500"]);
    let mut client = proxy.connect();
    client.set_timeout(Duration::from_secs(10));
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));

    redis.kill9();
    if crate::support::shared_mode() {
        // Over a shared connection, a command sent before the proxy has seen
        // the master die is lost with the connection and closes its client
        // (the README says so); this test is about what comes after.
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let reply = client.command(&["SET", "refused", "1"]);
    let waited = started.elapsed();
    assert!(reply.starts_with(b"-MASTERDOWN"), "got {}", show(&reply));
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "refused after {waited:?}"
    );

    redis.restart();
    crate::support::assert_eventually!(
        Duration::from_secs(10),
        client.command(&["PING"]) == b"+PONG\r\n",
        "the same connection works again once the master is back"
    );
}

/// QUIT needs no master: with no backend connection the proxy answers it
/// itself, at once, even while the master is down.
#[test]
fn quit_is_answered_at_once_while_no_master_is_reachable() {
    let mut redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &master, "--hold-timeout-ms", "10000"]);
    redis.kill9();
    let mut client = proxy.connect();
    client.set_timeout(Duration::from_secs(2));
    let started = Instant::now();
    assert_eq!(show(&client.command(&["QUIT"])), show(b"+OK\r\n"));
    assert!(
        client.is_closed_within(Duration::from_secs(2)),
        "QUIT did not close the connection"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "QUIT waited {:?}",
        started.elapsed()
    );
}
