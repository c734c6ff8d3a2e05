//! Resource limits and lifecycle: the client limit, memory under a client
//! that never reads, graceful shutdown on SIGTERM, and clients that vanish
//! in the middle of a request.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::client::{encode_command, show};
use crate::support::{Proxy, RedisServer, RespClient, assert_eventually, eventually};

/// A Redis server and a proxy in front of it, with extra proxy flags.
fn proxied_with(extra: &[&str]) -> (RedisServer, Proxy) {
    let redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let mut args = vec!["--master", master.as_str()];
    args.extend_from_slice(extra);
    let proxy = Proxy::spawn(&args);
    (redis, proxy)
}

/// `PING` on a new connection answers `+PONG` within the default timeout.
fn ping_ok(addr: SocketAddr) -> bool {
    let Ok(mut client) = RespClient::try_connect(addr, Duration::from_secs(2)) else {
        return false;
    };
    client.send(b"PING\r\n");
    matches!(client.try_read_reply(), Ok(reply) if reply == b"+PONG\r\n")
}

/// Resident memory of a process, in kB (`VmRSS` from `/proc/<pid>/status`).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|err| panic!("read /proc/{pid}/status: {err}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// How many GET calls the server has run (`INFO commandstats`).
fn get_calls(redis: &RedisServer) -> u64 {
    let stats = info_field(redis, "commandstats", "cmdstat_get").unwrap_or_default();
    stats
        .strip_prefix("calls=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn info_field(redis: &RedisServer, section: &str, field: &str) -> Option<String> {
    redis.info(section).ok()?.get(field).cloned()
}

#[test]
fn the_client_over_max_clients_is_refused_and_a_freed_slot_is_reused() {
    let (_redis, proxy) = proxied_with(&["--max-clients", "5"]);
    // The harness's readiness check connected once; let that session end.
    std::thread::sleep(Duration::from_millis(200));
    let mut clients = Vec::new();
    for i in 1..=5 {
        let mut client = proxy.connect();
        assert_eq!(
            show(&client.command(&["PING"])),
            show(b"+PONG\r\n"),
            "client {i}"
        );
        clients.push(client);
    }
    let mut sixth = proxy.connect();
    let refused = sixth.read_until_closed();
    assert_eq!(
        show(&refused),
        show(b"-ERR max number of clients reached\r\n"),
        "the 6th connection"
    );
    // The five admitted clients are still served.
    for client in &mut clients {
        assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));
    }
    // Closing one frees its slot.
    drop(clients.pop());
    assert_eventually!(
        Duration::from_secs(3),
        ping_ok(proxy.addr()),
        "a new connection after one client left"
    );
}

#[test]
fn a_client_that_never_reads_does_not_grow_the_proxy_memory() {
    let (redis, proxy) = proxied_with(&[]);
    let value = vec![b'x'; 1024 * 1024];
    let mut setter = proxy.connect();
    setter.send(&encode_command(&[b"SET", b"big", &value]));
    assert_eq!(show(&setter.read_reply()), show(b"+OK\r\n"));
    // One full GET first, so buffers used for a large reply already exist.
    setter.send(&encode_command(&[b"GET", b"big"]));
    assert_eq!(
        setter.read_reply().len(),
        value.len() + 2 + "$1048576\r\n".len()
    );
    drop(setter);
    let baseline = rss_kb(proxy.pid());

    // 1000 GETs of 1 MB in one write: about 1 GB of replies, never read.
    let requests = 1000;
    let mut pipeline = Vec::new();
    for _ in 0..requests {
        pipeline.extend(encode_command(&[b"GET", b"big"]));
    }
    let mut slow = TcpStream::connect(proxy.addr()).expect("connect the slow reader");
    std::io::Write::write_all(&mut slow, &pipeline).expect("send the pipeline");

    // Redis itself is busy for a while building the replies (that delays
    // everyone, proxied or not); wait until it has run what it was sent.
    let mut peak = baseline;
    let mut last_calls = 0;
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        peak = peak.max(rss_kb(proxy.pid()));
        let calls = get_calls(&redis);
        if calls > 1 && calls == last_calls {
            break;
        }
        last_calls = calls;
        assert!(
            Instant::now() < settle_deadline,
            "redis-server kept running GETs for 30 s ({calls} so far)"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Over its own connection the pipeline reaches Redis, which buffers the
    // replies; over a shared one only a few commands go out before the
    // session waits for its client to read.
    let forwarded = if crate::support::shared_mode() {
        10
    } else {
        100
    };
    assert!(
        last_calls >= forwarded,
        "the server ran only {last_calls} GETs; the slow reader's pipeline was not forwarded"
    );

    // Now only the proxy holds the slow reader's replies back.
    let mut served = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        peak = peak.max(rss_kb(proxy.pid()));
        // Other clients are served normally, and quickly.
        let t = Instant::now();
        let mut other = proxy.connect();
        let key = format!("other-{served}");
        assert_eq!(show(&other.command(&["SET", &key, "1"])), show(b"+OK\r\n"));
        assert_eq!(show(&other.command(&["GET", &key])), show(b"$1\r\n1\r\n"));
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "another client waited {:?} while the slow reader was stuck",
            t.elapsed()
        );
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served >= 10, "only {served} other clients were served");
    let growth_mb = (peak - baseline) / 1024;
    assert!(
        growth_mb < 100,
        "the proxy grew by {growth_mb} MB (baseline {} MB, peak {} MB) behind a client that never reads",
        baseline / 1024,
        peak / 1024
    );
    drop(slow);
    // Once the slow reader leaves, its backend connection goes too (the
    // shared connection, if any, stays for the other sessions).
    let remaining = if crate::support::shared_mode() { 2 } else { 1 };
    assert_eventually!(
        Duration::from_secs(5),
        redis.data_clients() == Some(remaining),
        "the slow reader's backend connection stayed open"
    );
    assert!(ping_ok(proxy.addr()));
}

#[test]
fn sigterm_drains_in_flight_replies_and_exits_zero() {
    let (redis, mut proxy) = proxied_with(&[]);
    let mut idle = proxy.connect();
    assert_eq!(show(&idle.command(&["PING"])), show(b"+PONG\r\n"));
    let mut blocked = proxy.connect();
    blocked.set_timeout(Duration::from_secs(5));
    blocked.send_command(&["BLPOP", "nothing-here", "1"]);
    assert_eventually!(
        Duration::from_secs(3),
        info_field(&redis, "clients", "blocked_clients").as_deref() == Some("1"),
        "BLPOP never blocked on the server"
    );
    let signalled = Instant::now();
    proxy.sigterm();

    // New connections are no longer accepted.
    assert_eventually!(
        Duration::from_secs(2),
        TcpStream::connect_timeout(&proxy.addr(), Duration::from_millis(200)).is_err(),
        "the proxy still accepts connections after SIGTERM"
    );
    // The in-flight BLPOP gets its answer (nil after its 1 s timeout), then
    // the connection is closed.
    let reply = blocked.read_reply();
    assert_eq!(
        show(&reply),
        show(b"*-1\r\n"),
        "BLPOP reply during shutdown"
    );
    assert!(
        signalled.elapsed() >= Duration::from_millis(500),
        "BLPOP answered after {:?}, before its timeout",
        signalled.elapsed()
    );
    assert!(
        blocked.is_closed_within(Duration::from_secs(3)),
        "the BLPOP connection stayed open after its reply"
    );
    assert!(
        idle.is_closed_within(Duration::from_secs(3)),
        "the idle connection stayed open during shutdown"
    );
    let status = proxy
        .wait_exit(Duration::from_secs(4))
        .expect("the proxy did not exit within 4 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "exit took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn clients_that_disconnect_mid_frame_do_not_disturb_others() {
    let (redis, mut proxy) = proxied_with(&[]);
    let mut bystander = proxy.connect();
    assert_eq!(show(&bystander.command(&["PING"])), show(b"+PONG\r\n"));

    // Half a bulk argument, then gone.
    let mut half = TcpStream::connect(proxy.addr()).expect("connect");
    std::io::Write::write_all(&mut half, b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nhal")
        .expect("send half a frame");
    drop(half);

    // Half of a declared 1 MB value (the rest never comes), then gone.
    let mut big = TcpStream::connect(proxy.addr()).expect("connect");
    let mut frame = b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$1048576\r\n".to_vec();
    frame.extend(std::iter::repeat_n(b'z', 300 * 1024));
    std::io::Write::write_all(&mut big, &frame).expect("send part of a large frame");
    drop(big);

    // A complete command followed by a partial one, then gone: the complete
    // one runs, the partial one does not.
    let mut mixed = TcpStream::connect(proxy.addr()).expect("connect");
    let mut bytes = encode_command(&[b"SET", b"complete", b"1"]);
    bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$7\r\npartial\r\n$1");
    std::io::Write::write_all(&mut mixed, &bytes).expect("send");
    drop(mixed);

    // A client that stops sending mid-frame but stays connected.
    let mut stalled = proxy.connect();
    stalled.send(b"*2\r\n$4\r\nECHO\r\n$5\r\nab");

    assert_eventually!(
        Duration::from_secs(3),
        matches!(redis.cmd(&["EXISTS", "complete"]), Ok(redis::Value::Int(1))),
        "the complete command before the partial one did not run"
    );
    for key in ["half", "big", "partial"] {
        assert_eq!(
            redis.cmd(&["EXISTS", key]).ok(),
            Some(redis::Value::Int(0)),
            "an incomplete SET {key} reached the server"
        );
    }
    assert!(proxy.is_running(), "the proxy exited");
    assert_eq!(
        show(&bystander.command(&["SET", "k", "v"])),
        show(b"+OK\r\n")
    );
    assert!(eventually(Duration::from_secs(2), || ping_ok(proxy.addr())));

    // The stalled client finishes its frame and gets its answer.
    stalled.send(b"cde\r\n");
    assert_eq!(show(&stalled.read_reply()), show(b"$5\r\nabcde\r\n"));
}

/// A large value is passed on as it arrives, not held whole: while its
/// client reads nothing, the proxy holds a few socket buffers of it, not 64
/// MB; values large and small, pipelined, then arrive whole and in order.
#[test]
fn a_large_value_is_passed_on_as_it_arrives() {
    let (redis, proxy) = proxied_with(&[]);
    let large = vec![b'l'; 64 * 1024 * 1024];
    let mut setter = RespClient::connect(redis.addr());
    setter.set_timeout(Duration::from_secs(20));
    setter.send(&encode_command(&[b"SET", b"large", &large]));
    assert_eq!(show(&setter.read_reply()), show(b"+OK\r\n"));
    assert_eq!(
        show(&setter.command(&["SET", "small", "s"])),
        show(b"+OK\r\n")
    );

    let mut client = proxy.connect();
    client.set_timeout(Duration::from_secs(20));
    // A connection of its own (database 0 all the same).
    assert_eq!(show(&client.command(&["SELECT", "0"])), show(b"+OK\r\n"));
    let baseline = rss_kb(proxy.pid());
    client.send(&encode_command(&[b"GET", b"large"]));
    // Redis has the whole reply ready at once; the client reads nothing.
    std::thread::sleep(Duration::from_millis(1500));
    let growth_mb = rss_kb(proxy.pid()).saturating_sub(baseline) / 1024;
    assert!(
        growth_mb < 16,
        "the proxy grew by {growth_mb} MB holding a 64 MB reply its client does not read"
    );
    let reply = client.read_reply();
    assert_eq!(reply.len(), large.len() + "$67108864\r\n\r\n".len());
    assert!(reply.starts_with(b"$67108864\r\nll") && reply.ends_with(b"ll\r\n"));

    // Pipelined, large and small replies keep their order and their bytes.
    let mut pipeline = Vec::new();
    for key in [&b"large"[..], b"small", b"large", b"small"] {
        pipeline.extend(encode_command(&[b"GET", key]));
    }
    client.send(&pipeline);
    for _ in 0..2 {
        assert_eq!(client.read_reply().len(), reply.len());
        assert_eq!(show(&client.read_reply()), show(b"$1\r\ns\r\n"));
    }
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));
}
