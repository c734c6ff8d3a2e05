//! Outside a failover the proxy is a wire: what a client sees through it is
//! what a direct connection to Redis shows. These cases broke that once:
//! a client that leaves while blocked, a replication stream (SYNC/PSYNC), and
//! a `-READONLY` error that a live master sends for its own reasons.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::client::{encode_command, show};
use crate::support::{self, Proxy, RedisServer, RespClient, assert_eventually};

fn proxied() -> (RedisServer, Proxy) {
    let redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &master]);
    (redis, proxy)
}

/// One field of `INFO clients`.
fn clients_field(redis: &RedisServer, field: &str) -> usize {
    redis
        .info("clients")
        .ok()
        .and_then(|info| info.get(field)?.parse().ok())
        .unwrap_or(usize::MAX)
}

fn integer(redis: &RedisServer, args: &[&str]) -> i64 {
    match redis.cmd(args) {
        Ok(::redis::Value::Int(n)) => n,
        other => panic!("{args:?}: {other:?}"),
    }
}

/// Connects to the proxy and sends `command` (one that blocks).
fn block(proxy: SocketAddr, command: &[&[u8]]) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).expect("connect to the proxy");
    stream
        .write_all(&encode_command(command))
        .expect("send the blocking command");
    stream
}

/// Regression: a client that closed its connection while blocked in BLPOP
/// left the proxy's backend connection blocked on Redis; the next LPUSH was
/// popped by that orphan and the item was gone. Directly, Redis drops a
/// closed client's blocked command. Here 1,000 clients block and leave, and
/// within a second Redis shows no blocked client and no extra connection, and
/// every item pushed afterwards is still in the list.
#[test]
fn clients_that_leave_while_blocked_take_their_backend_connections_along() {
    let (redis, proxy) = proxied();
    // Connections before: the test's own and, with shared backend
    // connections, the one the warm-up opens (the sentinel core's links are
    // left out by `data_clients`).
    let mut warm_up = proxy.connect();
    assert_eq!(show(&warm_up.command(&["PING"])), show(b"+PONG\r\n"));
    drop(warm_up);
    let data_clients = || redis.data_clients().unwrap_or(usize::MAX);
    assert_eventually!(Duration::from_secs(5), data_clients() <= 2);
    let baseline = data_clients();
    let blocked: Vec<TcpStream> = (0..1000)
        .map(|_| block(proxy.addr(), &[b"BLPOP", b"jobs", b"0"]))
        .collect();
    assert_eventually!(
        Duration::from_secs(20),
        clients_field(&redis, "blocked_clients") == 1000,
        "1,000 clients should be blocked on Redis"
    );
    drop(blocked);
    let left = Instant::now();
    assert_eventually!(
        Duration::from_secs(5),
        clients_field(&redis, "blocked_clients") == 0 && data_clients() <= baseline,
        "blocked clients and their connections should be gone (blocked {}, connections {}, {baseline} before)",
        clients_field(&redis, "blocked_clients"),
        data_clients()
    );
    let took = left.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "Redis let go of the blocked clients only after {took:?}"
    );
    for i in 0..100 {
        redis
            .cmd(&["LPUSH", "jobs", &format!("job-{i}")])
            .expect("LPUSH");
    }
    assert_eq!(integer(&redis, &["LLEN", "jobs"]), 100, "no item was lost");
}

/// Every blocking command, and a client that half-closes (shutdown of its
/// sending side) instead of closing: Redis unblocks and drops it, as it does
/// a direct client.
#[test]
fn every_blocking_command_is_dropped_with_its_client() {
    let (redis, proxy) = proxied();
    redis
        .cmd(&["XADD", "stream", "1-1", "f", "v"])
        .expect("XADD");
    let commands: [&[&[u8]]; 6] = [
        &[b"BLPOP", b"l1", b"0"],
        &[b"BLMOVE", b"l2", b"l3", b"LEFT", b"RIGHT", b"0"],
        &[b"BRPOPLPUSH", b"l4", b"l5", b"0"],
        &[b"BZPOPMIN", b"z1", b"0"],
        &[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"stream", b"$"],
        &[b"WAIT", b"1", b"0"],
    ];
    for (i, command) in commands.iter().enumerate() {
        let stream = block(proxy.addr(), command);
        assert_eventually!(
            Duration::from_secs(5),
            clients_field(&redis, "blocked_clients") == 1,
            "{} should block",
            show(command[0])
        );
        let kept = if i % 2 == 0 {
            stream
                .shutdown(std::net::Shutdown::Write)
                .expect("half close");
            Some(stream)
        } else {
            drop(stream);
            None
        };
        assert_eventually!(
            Duration::from_secs(2),
            clients_field(&redis, "blocked_clients") == 0,
            "{} still blocked after its client left",
            show(command[0])
        );
        drop(kept);
    }
    redis.cmd(&["RPUSH", "l1", "item"]).expect("RPUSH");
    redis.cmd(&["ZADD", "z1", "1", "m"]).expect("ZADD");
    assert_eq!(integer(&redis, &["LLEN", "l1"]), 1);
    assert_eq!(integer(&redis, &["ZCARD", "z1"]), 1);
}

/// A half-closed client is still owed the replies to what it sent, as
/// directly: pipelined commands, then the close.
#[test]
fn a_half_closed_client_gets_its_replies_then_the_close() {
    let (redis, proxy) = proxied();
    let mut request = Vec::new();
    for i in 0..50 {
        request.extend_from_slice(&encode_command(&[b"INCR", b"counter"]));
        request.extend_from_slice(&encode_command(&[b"ECHO", format!("e{i}").as_bytes()]));
    }
    let replies = |addr| {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(&request).expect("send");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half close");
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .expect("the connection closes after the replies");
        received
    };
    let direct = replies(redis.addr());
    redis.cmd(&["SET", "counter", "0"]).expect("reset");
    let through = replies(proxy.addr());
    assert_eq!(show(&through), show(&direct));
}

/// Regression: `SYNC` through the proxy was scanned as a reply and the
/// session closed ("backend sent a malformed reply"): an RDB payload has no
/// trailing CRLF. `redis-cli --rdb` through the proxy now writes an RDB that
/// `redis-check-rdb` accepts, with the data the master holds.
#[test]
fn redis_cli_rdb_through_the_proxy_writes_a_valid_rdb() {
    let (redis, proxy) = proxied();
    for i in 0..100 {
        redis
            .cmd(&["SET", &format!("key:{i}"), &format!("value-{i}")])
            .expect("SET");
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let rdb = dir.path().join("dump.rdb");
    let mut cli = Command::new("redis-cli");
    cli.args(["-h", "127.0.0.1", "-p", &proxy.addr().port().to_string()])
        .arg("--rdb")
        .arg(&rdb);
    let out = support::run_bounded(cli, b"", Duration::from_secs(30));
    assert!(
        out.status.success(),
        "redis-cli --rdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut check = Command::new("redis-check-rdb");
    check.arg(&rdb);
    let out = support::run_bounded(check, b"", Duration::from_secs(30));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("RDB looks OK"),
        "redis-check-rdb: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("keys read: 100") || report.contains("100 keys"),
        "the RDB should hold the master's 100 keys: {report}"
    );
}

/// After `PSYNC` the connection is the master's replication stream: the RDB
/// payload, then every write the master replicates, byte for byte as a
/// replica would receive them.
#[test]
fn psync_turns_the_session_into_the_replication_stream() {
    let (redis, proxy) = proxied();
    let mut replica = RespClient::connect(proxy.addr());
    replica.set_timeout(Duration::from_secs(10));
    replica.send(&encode_command(&[b"PSYNC", b"?", b"-1"]));
    let mut stream = Vec::new();
    // +FULLRESYNC <replid> <offset>, then the RDB as `$<len>` and its bytes
    // (keep-alive newlines may come first).
    let deadline = Instant::now() + Duration::from_secs(10);
    let payload_end = loop {
        assert!(Instant::now() < deadline, "no RDB: {}", show(&stream));
        let mut chunk = [0u8; 4096];
        let n = replica.stream().read(&mut chunk).expect("read the stream");
        assert!(n > 0, "the proxy closed the stream: {}", show(&stream));
        stream.extend_from_slice(&chunk[..n]);
        if let Some(end) = rdb_end(&stream) {
            break end;
        }
    };
    assert!(stream.starts_with(b"+FULLRESYNC "), "got {}", show(&stream));
    redis.cmd(&["SET", "after-sync", "yes"]).expect("SET");
    let wanted = encode_command(&[b"SET", b"after-sync", b"yes"]);
    let mut rest = stream.split_off(payload_end);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rest.windows(wanted.len()).any(|w| w == wanted.as_slice()) {
        assert!(
            Instant::now() < deadline,
            "the write never came down the stream: {}",
            show(&rest)
        );
        let mut chunk = [0u8; 4096];
        let n = replica.stream().read(&mut chunk).expect("read the stream");
        assert!(n > 0, "the proxy closed the stream: {}", show(&rest));
        rest.extend_from_slice(&chunk[..n]);
    }
    assert_eventually!(
        Duration::from_secs(5),
        redis
            .info("replication")
            .is_ok_and(|info| info.get("connected_slaves").map(String::as_str) == Some("1")),
        "the master should count the proxied stream as a replica"
    );
}

/// Where the RDB payload after `+FULLRESYNC …` ends, once it has all arrived.
fn rdb_end(stream: &[u8]) -> Option<usize> {
    let line_end = stream.windows(2).position(|w| w == b"\r\n")? + 2;
    let mut at = line_end;
    // Keep-alive newlines before the payload.
    while stream.get(at) == Some(&b'\n') {
        at += 1;
    }
    if stream.get(at) != Some(&b'$') {
        return None;
    }
    let header_end = at + stream[at..].windows(2).position(|w| w == b"\r\n")? + 2;
    let len: usize = std::str::from_utf8(&stream[at + 1..header_end - 2])
        .ok()?
        .parse()
        .ok()?;
    (stream.len() >= header_end + len).then_some(header_end + len)
}

/// Regression: a `-READONLY` error from a master that is still master (a
/// script's `redis.error_reply`, `DEBUG ERROR`) was taken for a demotion, and
/// the client waited until its command timed out. Now `ROLE` is asked and the
/// error arrives at once, unchanged, and the connection stays usable.
#[test]
fn readonly_from_a_live_master_reaches_the_client_at_once() {
    let redis = RedisServer::builder()
        .config("enable-debug-command yes")
        .spawn();
    let master = redis.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &master]);
    let mut client = proxy.connect();
    client.set_timeout(Duration::from_secs(3));
    let started = Instant::now();
    let reply = client.command(&[
        "EVAL",
        "return redis.error_reply('READONLY from a script')",
        "0",
    ]);
    assert_eq!(show(&reply), show(b"-READONLY from a script\r\n"));
    let reply = client.command(&["DEBUG", "ERROR", "READONLY blah"]);
    assert_eq!(show(&reply), show(b"-READONLY blah\r\n"));
    // Pipelined behind other commands, in order.
    client.send(&encode_command(&[b"SET", b"k", b"v"]));
    client.send(&encode_command(&[b"DEBUG", b"ERROR", b"READONLY again"]));
    client.send(&encode_command(&[b"GET", b"k"]));
    assert_eq!(show(&client.read_reply()), show(b"+OK\r\n"));
    assert_eq!(show(&client.read_reply()), show(b"-READONLY again\r\n"));
    assert_eq!(show(&client.read_reply()), show(b"$1\r\nv\r\n"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the errors took {:?}",
        started.elapsed()
    );
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));
}
