//! A master demoted under a session (`-READONLY`): the proxy's switch is driven
//! by hand here, so the exact moment of the demotion and of the new topology is
//! under the test's control.

#[path = "it/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sentinel_proxy::config::OnSwitch;
use sentinel_proxy::proxy::{Settings, Shared, listener};
use sentinel_proxy::resp::command::CommandTable;
use sentinel_proxy::switch::{self, Hint, SwitchWriter};
use support::client::show;
use support::{RedisServer, RespClient};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A proxy whose topology the test publishes itself.
struct Harness {
    runtime: tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    writer: SwitchWriter,
    hints: mpsc::Receiver<Hint>,
    stop: CancellationToken,
}

fn start(master: std::net::SocketAddr) -> Harness {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = CancellationToken::new();
    let (writer, reader) = switch::new(Some(master), 0, &stop);
    let (hint_tx, hints) = switch::hints();
    let shared = Arc::new(Shared {
        switch: reader,
        hints: hint_tx,
        settings: Settings {
            hold_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(2),
            idle_release: None,
            on_switch: OnSwitch::Rebind,
            requirepass: None,
            backend_auth: None,
            share_backend: false,
            measure_latency: false,
            reads: None,
        },
        commands: Arc::new(ArcSwap::from_pointee(CommandTable::builtin())),
        counters: Default::default(),
        links: Default::default(),
        dialer: Default::default(),
        read_load: Default::default(),
    });
    let socket = runtime
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    runtime.spawn(listener::serve(
        socket,
        shared,
        100,
        TaskTracker::new(),
        stop.clone(),
        stop.clone(),
        None,
    ));
    Harness {
        runtime,
        addr,
        writer,
        hints,
        stop,
    }
}

/// Two masters-to-be: `a` serves first, then is demoted to a replica of `b`.
fn demote(a: &RedisServer, b: &RedisServer) {
    a.replicaof(Some(b.addr())).expect("REPLICAOF on a");
}

/// The session tells the control path that `a` was demoted; then `b` is
/// published as the new master.
fn expect_demoted_then_publish(h: &mut Harness, a: &RedisServer, b: &RedisServer) {
    let hint = h
        .runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), h.hints.recv()).await })
        .expect("a hint within 5 s")
        .expect("hint channel open");
    assert_eq!(hint, Hint::Demoted(a.addr()));
    h.writer.publish(Some(b.addr()), 1).expect("publish b");
}

/// The session's only command meets the demoted master: it was not executed,
/// so once the new master is published it runs there and the client sees only
/// its normal reply.
#[test]
fn a_lone_write_refused_with_readonly_is_retried_on_the_new_master() {
    let a = RedisServer::spawn();
    let b = RedisServer::spawn();
    let mut h = start(a.addr());
    let mut client = RespClient::connect(h.addr);
    client.set_timeout(Duration::from_secs(10));
    assert_eq!(
        show(&client.command(&["SET", "before", "1"])),
        show(b"+OK\r\n")
    );

    demote(&a, &b);
    client.send_command(&["SET", "k", "v"]);
    expect_demoted_then_publish(&mut h, &a, &b);

    assert_eq!(show(&client.read_reply()), show(b"+OK\r\n"));
    assert_eq!(
        b.cmd(&["GET", "k"]).ok(),
        Some(redis::Value::BulkString(b"v".to_vec()))
    );
    h.stop.cancel();
}

/// A pipeline the demoted master refused whole (every command `-READONLY`):
/// none of it ran, so once the new master is published it all runs there and
/// the client sees only the normal replies.
#[test]
fn a_pipeline_refused_whole_is_retried_on_the_new_master() {
    let a = RedisServer::spawn();
    let b = RedisServer::spawn();
    let mut h = start(a.addr());
    let mut client = RespClient::connect(h.addr);
    client.set_timeout(Duration::from_secs(10));
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));

    demote(&a, &b);
    client.send(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\ny\r\n");
    expect_demoted_then_publish(&mut h, &a, &b);

    assert_eq!(show(&client.read_reply()), show(b"+OK\r\n"));
    assert_eq!(show(&client.read_reply()), show(b":1\r\n"));
    assert_eq!(
        b.cmd(&["GET", "x"]).ok(),
        Some(redis::Value::BulkString(b"1".to_vec()))
    );
    h.stop.cancel();
}

/// A pipeline the demoted node answered in part (a read after the refused
/// write ran there): the `-READONLY` and the read's reply reach the client as
/// they came, and the connection is closed after them: nothing is retried.
#[test]
fn a_pipeline_answered_in_part_is_forwarded_then_closed() {
    let a = RedisServer::spawn();
    let b = RedisServer::spawn();
    let h = start(a.addr());
    let mut client = RespClient::connect(h.addr);
    client.set_timeout(Duration::from_secs(10));
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));

    demote(&a, &b);
    client.send(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\ny\r\n");
    let first = client.read_reply();
    assert!(first.starts_with(b"-READONLY"), "got {}", show(&first));
    assert_eq!(show(&client.read_reply()), show(b"$-1\r\n"));
    assert!(
        client.is_closed_within(Duration::from_secs(5)),
        "the connection stays open after -READONLY"
    );
    h.stop.cancel();
}

/// The new master is published while a write waits, paused, on the old one
/// (as `FAILOVER` pauses writers): the session drains, then the demoted node
/// refuses the write. It did not run, and the topology that replaces the old
/// master is already there: the write runs on the new master at once, not
/// after a hold.
#[test]
fn a_write_refused_during_a_drain_runs_on_the_master_already_published() {
    let a = RedisServer::spawn();
    let b = RedisServer::spawn();
    let h = start(a.addr());
    let mut client = RespClient::connect(h.addr);
    client.set_timeout(Duration::from_secs(20));
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));

    a.cmd(&["CLIENT", "PAUSE", "10000", "WRITE"])
        .expect("CLIENT PAUSE");
    client.send_command(&["SET", "k", "v"]);
    std::thread::sleep(Duration::from_millis(300));
    h.writer.publish(Some(b.addr()), 1).expect("publish b");
    std::thread::sleep(Duration::from_millis(300));
    demote(&a, &b);
    a.cmd(&["CLIENT", "UNPAUSE"]).expect("CLIENT UNPAUSE");

    let asked = std::time::Instant::now();
    assert_eq!(show(&client.read_reply()), show(b"+OK\r\n"));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the write waited {:?} (held until the hold timeout?)",
        asked.elapsed()
    );
    assert_eq!(
        b.cmd(&["GET", "k"]).ok(),
        Some(redis::Value::BulkString(b"v".to_vec()))
    );
    h.stop.cancel();
}
