//! Commands from different clients reach Redis in the order the proxy
//! received them, as they would on direct connections: Redis's own test suite
//! (and applications) send a command on one connection and, without waiting
//! for its reply, another on a second connection, and expect the first to run
//! first (a blocking XREADGROUP before the DEL that wakes it, an UNSUBSCRIBE
//! before the PUBLISH that must find no subscriber).
//!
//! Each round writes `RPUSH order a` on one client and then `RPUSH order b`
//! on another, both before reading either reply, and counts the rounds in
//! which `b` was pushed first. Directly against Redis that never happens; a
//! loader client keeps the proxy busy so that both writes often reach it in
//! one wake-up, where a scheduler that runs the newest task first swaps them
//! (2,174 of 3,000 rounds came out swapped so).
//!
//! A swapped round in a hundred is tolerated: with the whole test suite, the
//! proxy and the servers on two busy cores, two loopback writes on two
//! sockets are not always read by Redis in the order they were made (4 of
//! 3,000 were seen swapped so).
//!
//! The list is reset on a direct connection to Redis: with sharing (the
//! default) a command on the shared connection just before the round would leave that
//! connection first in line for Redis's next read, which the proxy cannot
//! change (Redis reads the connections the kernel reports in its order).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use crate::support::client::{RespClient, encode_command, show};
use crate::support::{Proxy, RedisServer};

const ROUNDS: usize = 3000;

/// Rounds in which the client that wrote second was served first.
fn swapped_rounds(
    first: &mut RespClient,
    second: &mut RespClient,
    reset: &mut RespClient,
) -> usize {
    let push_a = encode_command(&[b"RPUSH", b"order", b"a"]);
    let push_b = encode_command(&[b"RPUSH", b"order", b"b"]);
    let mut swapped = 0;
    for _ in 0..ROUNDS {
        assert!(matches!(
            reset.command(&["DEL", "order"]).as_slice(),
            b":0\r\n" | b":1\r\n"
        ));
        first.send(&push_a);
        second.send(&push_b);
        let a = first.read_reply();
        let b = second.read_reply();
        match (a.as_slice(), b.as_slice()) {
            (b":1\r\n", b":2\r\n") => {}
            (b":2\r\n", b":1\r\n") => swapped += 1,
            _ => panic!("unexpected replies {} and {}", show(&a), show(&b)),
        }
    }
    swapped
}

/// Keeps a pipelined client busy on `proxy` until the flag is set.
///
/// The client selects a database first, so that with sharing (the default) its
/// commands travel on a connection of its own: on the shared one, the
/// loader's unread commands would keep that connection first in line for
/// Redis's reads, whatever the order of the test's commands behind them.
fn load(proxy: &Proxy, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    let mut client = proxy.connect();
    assert_eq!(show(&client.command(&["SELECT", "0"])), show(b"+OK\r\n"));
    let batch: Vec<u8> = encode_command(&[b"SET", b"load", b"x"]).repeat(32);
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            client.send(&batch);
            for _ in 0..32 {
                client.read_reply();
            }
        }
    })
}

#[test]
fn commands_sent_in_order_on_two_connections_run_in_that_order() {
    let redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &master]);
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(&proxy, Arc::clone(&stop));
    let (mut first, mut second) = (proxy.connect(), proxy.connect());
    let mut reset = RespClient::connect(redis.addr());
    for client in [&mut first, &mut second] {
        assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));
    }
    let swapped = swapped_rounds(&mut first, &mut second, &mut reset);
    stop.store(true, Ordering::Relaxed);
    loader.join().expect("the loader client");
    assert!(
        swapped <= ROUNDS / 100,
        "{swapped} rounds of {ROUNDS} in which the second client's command ran first"
    );
}
