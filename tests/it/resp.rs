//! Byte-level behaviour of the proxy: inline and multibulk requests,
//! pipelining, binary safety, large values, RESP3 replies and pushes,
//! malformed input and QUIT. Where Redis's own answer matters, the same
//! bytes are also sent to `redis-server` directly and the answers compared.

use std::io::ErrorKind;
use std::time::Duration;

use crate::support::client::{encode_command, show};
use crate::support::{Proxy, RedisServer, RespClient, assert_eventually};

/// A Redis server and a proxy in front of it (fixed master).
fn proxied() -> (RedisServer, Proxy) {
    let redis = RedisServer::spawn();
    let master = redis.addr().to_string();
    let proxy = Proxy::spawn(&["--master", &master]);
    (redis, proxy)
}

/// Sends `bytes` on a fresh connection and returns everything received until
/// the peer closed the connection.
fn answer_until_closed(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut client = RespClient::connect(addr);
    client.send(bytes);
    client.read_until_closed()
}

/// Asserts that nothing arrives on `client` within `wait`.
fn assert_silent(client: &mut RespClient, wait: Duration, context: &str) {
    client.set_timeout(wait);
    match client.try_read_reply() {
        Err(err) if err.kind() == ErrorKind::TimedOut => {}
        Ok(reply) => panic!("{context}: unexpected reply {}", show(&reply)),
        Err(err) => panic!("{context}: {err}"),
    }
    client.set_timeout(crate::support::client::DEFAULT_TIMEOUT);
}

/// Whether `key` exists on `redis` (database 0).
fn exists(redis: &RedisServer, key: &str) -> bool {
    match redis.cmd(&["EXISTS", key]) {
        Ok(redis::Value::Int(n)) => n == 1,
        other => panic!("EXISTS {key}: {other:?}"),
    }
}

fn bulk(payload: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn inline_ping_gets_pong() {
    let (_redis, proxy) = proxied();
    let mut client = proxy.connect();
    client.send(b"PING\r\n");
    assert_eq!(show(&client.read_reply()), show(b"+PONG\r\n"));
}

#[test]
fn inline_set_then_multibulk_get() {
    let (redis, proxy) = proxied();
    let mut client = proxy.connect();
    client.send(b"SET greeting hello\r\n");
    assert_eq!(show(&client.read_reply()), show(b"+OK\r\n"));
    client.send(b"*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n");
    assert_eq!(show(&client.read_reply()), show(b"$5\r\nhello\r\n"));
    assert_eq!(
        redis.cmd(&["GET", "greeting"]).ok(),
        Some(redis::Value::BulkString(b"hello".to_vec())),
        "the inline SET must have reached the server"
    );
}

#[test]
fn hundred_pipelined_commands_in_one_write_are_answered_in_order() {
    let (_redis, proxy) = proxied();
    let mut client = proxy.connect();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..100 {
        match i % 4 {
            0 => {
                request.extend(encode_command(&[b"INCR", b"counter"]));
                expected.push(format!(":{}\r\n", i / 4 + 1).into_bytes());
            }
            1 => {
                let word = format!("echo-{i}");
                request.extend(encode_command(&[b"ECHO", word.as_bytes()]));
                expected.push(bulk(word.as_bytes()));
            }
            2 => {
                let key = format!("key-{i}");
                request.extend(encode_command(&[b"SET", key.as_bytes(), key.as_bytes()]));
                expected.push(b"+OK\r\n".to_vec());
            }
            _ => {
                let key = format!("key-{}", i - 1);
                request.extend_from_slice(format!("GET {key}\r\n").as_bytes());
                expected.push(bulk(key.as_bytes()));
            }
        }
    }
    client.send(&request);
    for (i, want) in expected.iter().enumerate() {
        let got = client.read_reply();
        assert_eq!(show(&got), show(want), "reply {i} of 100");
    }
    assert_silent(&mut client, Duration::from_millis(200), "after 100 replies");
}

#[test]
fn binary_value_with_crlf_and_nul_round_trips() {
    let (redis, proxy) = proxied();
    let value: &[u8] = b"a\r\nb\0c\r\n\0$3\r\n*1\r\n-ERR x\r\n\xff\xfe";
    let mut client = proxy.connect();
    client.send(&encode_command(&[b"SET", b"bin\0key\r\n", value]));
    assert_eq!(show(&client.read_reply()), show(b"+OK\r\n"));
    client.send(&encode_command(&[b"GET", b"bin\0key\r\n"]));
    assert_eq!(show(&client.read_reply()), show(&bulk(value)));
    client.send(&encode_command(&[b"STRLEN", b"bin\0key\r\n"]));
    assert_eq!(
        show(&client.read_reply()),
        show(format!(":{}\r\n", value.len()).as_bytes())
    );
    // The server stored exactly these bytes.
    let mut direct = RespClient::connect(redis.addr());
    direct.send(&encode_command(&[b"GET", b"bin\0key\r\n"]));
    assert_eq!(show(&direct.read_reply()), show(&bulk(value)));
}

#[test]
fn twenty_megabyte_value_round_trips_intact() {
    let (redis, proxy) = proxied();
    let len = 20 * 1024 * 1024;
    // Pseudo-random bytes (every byte value, CR/LF and NUL included).
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let value: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut client = proxy.connect();
    client.set_timeout(Duration::from_secs(30));
    client.send(&encode_command(&[b"SET", b"big", &value]));
    assert_eq!(show(&client.read_reply()), show(b"+OK\r\n"));
    client.send(&encode_command(&[b"GET", b"big"]));
    let reply = client.read_reply();
    let header = format!("${len}\r\n").into_bytes();
    assert!(
        reply.starts_with(&header),
        "GET big: reply starts {}",
        show(&reply[..reply.len().min(32)])
    );
    assert_eq!(reply.len(), header.len() + len + 2, "GET big: reply length");
    assert!(
        reply[header.len()..header.len() + len] == value[..],
        "GET big: the value came back altered"
    );
    assert_eq!(&reply[reply.len() - 2..], b"\r\n");
    // The server holds the same number of bytes.
    assert_eq!(
        redis.cmd(&["STRLEN", "big"]).ok(),
        Some(redis::Value::Int(len as i64))
    );
    // The connection still works afterwards.
    client.send(b"PING\r\n");
    assert_eq!(show(&client.read_reply()), show(b"+PONG\r\n"));
}

#[test]
fn resp3_hello_gets_a_map_reply() {
    let (_redis, proxy) = proxied();
    let mut client = proxy.connect();
    let reply = client.command(&["HELLO", "3"]);
    assert!(reply.starts_with(b"%"), "HELLO 3: {}", show(&reply));
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.contains("proto\r\n:3\r\n"),
        "HELLO 3 must report proto 3: {text:?}"
    );
    // RESP3 types from then on: a double for ZSCORE, a null for a missing key.
    assert_eq!(show(&client.command(&["PING"])), show(b"+PONG\r\n"));
    assert_eq!(
        show(&client.command(&["ZADD", "z", "1.5", "m"])),
        show(b":1\r\n")
    );
    assert_eq!(
        show(&client.command(&["ZSCORE", "z", "m"])),
        show(b",1.5\r\n")
    );
    assert_eq!(show(&client.command(&["GET", "missing"])), show(b"_\r\n"));
}

#[test]
fn resp3_subscriber_receives_push_messages() {
    let (_redis, proxy) = proxied();
    let mut subscriber = proxy.connect();
    assert!(subscriber.command(&["HELLO", "3"]).starts_with(b"%"));
    assert_eq!(
        show(&subscriber.command(&["SUBSCRIBE", "news"])),
        show(b">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n")
    );
    let mut publisher = proxy.connect();
    assert_eq!(
        show(&publisher.command(&["PUBLISH", "news", "first"])),
        show(b":1\r\n")
    );
    assert_eq!(
        show(&subscriber.read_reply()),
        show(b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nfirst\r\n")
    );
    // A RESP3 subscriber may run ordinary commands; pushes and replies stay apart.
    assert_eq!(
        show(&subscriber.command(&["SET", "k", "v"])),
        show(b"+OK\r\n")
    );
    assert_eq!(
        show(&publisher.command(&["PUBLISH", "news", "second"])),
        show(b":1\r\n")
    );
    subscriber.send_command(&["GET", "k"]);
    let mut seen = [subscriber.read_reply(), subscriber.read_reply()];
    seen.sort();
    let mut want = [
        b"$1\r\nv\r\n".to_vec(),
        b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$6\r\nsecond\r\n".to_vec(),
    ];
    want.sort();
    assert_eq!(
        seen.iter().map(|r| show(r)).collect::<Vec<_>>(),
        want.iter().map(|r| show(r)).collect::<Vec<_>>()
    );
}

#[test]
fn resp3_client_tracking_gets_invalidate_pushes() {
    let (_redis, proxy) = proxied();
    let mut writer = proxy.connect();
    assert_eq!(
        show(&writer.command(&["SET", "tracked", "1"])),
        show(b"+OK\r\n")
    );
    let mut reader = proxy.connect();
    assert!(reader.command(&["HELLO", "3"]).starts_with(b"%"));
    assert_eq!(
        show(&reader.command(&["CLIENT", "TRACKING", "ON"])),
        show(b"+OK\r\n")
    );
    assert_eq!(
        show(&reader.command(&["GET", "tracked"])),
        show(b"$1\r\n1\r\n")
    );
    assert_eq!(
        show(&writer.command(&["SET", "tracked", "2"])),
        show(b"+OK\r\n")
    );
    assert_eq!(
        show(&reader.read_reply()),
        show(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$7\r\ntracked\r\n")
    );
    assert_eq!(
        show(&reader.command(&["GET", "tracked"])),
        show(b"$1\r\n2\r\n")
    );
}

/// Sends `bytes` to the proxy and to Redis directly; both must answer
/// `expected` and then close the connection.
fn assert_protocol_error(bytes: &[u8], expected: &[u8]) {
    let (redis, proxy) = proxied();
    let direct = answer_until_closed(redis.addr(), bytes);
    assert_eq!(
        show(&direct),
        show(expected),
        "redis-server itself answers {} with",
        show(bytes)
    );
    let through_proxy = answer_until_closed(proxy.addr(), bytes);
    assert_eq!(
        show(&through_proxy),
        show(expected),
        "the proxy answers {} with",
        show(bytes)
    );
    // Other clients are unaffected.
    assert_eq!(
        show(&proxy.connect().command(&["PING"])),
        show(b"+PONG\r\n")
    );
}

/// Redis reads lengths with `string2ll`, which refuses leading zeros; the
/// proxy must refuse them too, or it would pass on bytes that make Redis
/// close the connection (a shared one, for every client on it).
#[test]
fn lengths_with_leading_zeros_are_protocol_errors() {
    assert_protocol_error(
        b"*1\r\n$04\r\nPING\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    assert_protocol_error(
        b"*01\r\n$4\r\nPING\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    // The proxy answers them itself: nothing reaches Redis (which would close
    // the connection, a shared one for every client on it).
    let (redis, proxy) = proxied();
    assert_eq!(
        show(&proxy.connect().command(&["PING"])),
        show(b"+PONG\r\n")
    );
    // Redis counts every error it answers, a protocol error included; the
    // proxy's own links to it (monitoring, hello messages) come and go, so
    // their connections are no measure.
    // One connection for every INFO: the client library's own greeting on a
    // new one (CLIENT SETINFO, unknown to Redis 7.0) would count errors.
    let mut observer = redis.conn();
    let mut errors = || {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut observer)
            .expect("INFO stats");
        crate::support::parse_info(&info)["total_error_replies"].clone()
    };
    let before = errors();
    let answer = answer_until_closed(proxy.addr(), b"*1\r\n$04\r\nPING\r\n");
    assert_eq!(
        show(&answer),
        show(b"-ERR Protocol error: invalid bulk length\r\n")
    );
    assert_eq!(errors(), before, "the bad request reached Redis");
}

#[test]
fn multibulk_element_without_dollar_is_a_protocol_error() {
    assert_protocol_error(
        b"*1\r\n+PING\r\n",
        b"-ERR Protocol error: expected '$', got '+'\r\n",
    );
}

#[test]
fn non_numeric_multibulk_length_is_a_protocol_error() {
    assert_protocol_error(
        b"*abc\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
}

#[test]
fn bulk_length_over_512_mb_is_a_protocol_error() {
    assert_protocol_error(
        b"*2\r\n$3\r\nGET\r\n$536870913\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
}

#[test]
fn commands_pipelined_before_a_bad_frame_are_answered_first() {
    let (redis, proxy) = proxied();
    let mut bytes = b"PING\r\n".to_vec();
    bytes.extend(encode_command(&[b"SET", b"before", b"1"]));
    bytes.extend(encode_command(&[b"ECHO", b"hi"]));
    bytes.extend_from_slice(b"*1\r\n+PING\r\n");
    bytes.extend(encode_command(&[b"SET", b"after", b"1"]));
    let expected: &[u8] =
        b"+PONG\r\n+OK\r\n$2\r\nhi\r\n-ERR Protocol error: expected '$', got '+'\r\n";

    let direct = answer_until_closed(redis.addr(), &bytes);
    assert_eq!(show(&direct), show(expected), "redis-server itself");
    redis.cmd(&["FLUSHALL"]).expect("FLUSHALL");

    let through_proxy = answer_until_closed(proxy.addr(), &bytes);
    assert_eq!(show(&through_proxy), show(expected), "through the proxy");
    assert!(exists(&redis, "before"), "the SET before the bad frame ran");
    assert!(
        !exists(&redis, "after"),
        "the SET after the bad frame must not run"
    );
}

#[test]
fn empty_multibulk_and_blank_lines_are_ignored() {
    let (redis, proxy) = proxied();
    let blanks: &[u8] = b"*0\r\n\r\n\n*-1\r\n   \r\n";
    for (who, addr) in [("redis-server", redis.addr()), ("proxy", proxy.addr())] {
        let mut client = RespClient::connect(addr);
        client.send(blanks);
        assert_silent(&mut client, Duration::from_millis(300), who);
        client.send(b"PING\r\n");
        assert_eq!(show(&client.read_reply()), show(b"+PONG\r\n"), "{who}");
        assert_silent(&mut client, Duration::from_millis(100), who);
    }
    // The same bytes inside one pipeline.
    let mut client = proxy.connect();
    client.send(b"*0\r\nPING\r\n\r\n*-1\r\nECHO x\r\n\n");
    assert_eq!(show(&client.read_reply()), show(b"+PONG\r\n"));
    assert_eq!(show(&client.read_reply()), show(b"$1\r\nx\r\n"));
    assert_silent(&mut client, Duration::from_millis(200), "pipeline");
}

#[test]
fn quit_replies_ok_closes_and_runs_nothing_after_it() {
    let (redis, proxy) = proxied();
    let bytes = b"QUIT\r\nSET after 1\r\n";

    let direct = answer_until_closed(redis.addr(), bytes);
    assert_eq!(show(&direct), show(b"+OK\r\n"), "redis-server itself");
    assert!(
        !exists(&redis, "after"),
        "redis-server ran a command after QUIT"
    );

    let through_proxy = answer_until_closed(proxy.addr(), bytes);
    assert_eq!(show(&through_proxy), show(b"+OK\r\n"), "through the proxy");
    // Give a wrongly forwarded SET time to land before checking it did not.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !exists(&redis, "after"),
        "the command after QUIT reached the server"
    );
    // The proxy's backend connection for that client is gone too.
    assert_eventually!(
        Duration::from_secs(3),
        redis.data_clients() == Some(1),
        "only the INFO connection should remain on the server"
    );
}

/// A pipelining client gets every reply, and then the close once it closes
/// its sending side. An aggregate reply that arrives split behind a complete
/// one must not confuse the proxy's count of replies still owed, or it would
/// wait forever (it once stopped after 7,620 bytes). The replies are read
/// before the half-close: Redis itself drops a half-closed client's unsent
/// output (directly, this request loses replies most of the time), and the
/// proxy passes the half-close on, so Redis decides the same way.
#[test]
fn pipelined_split_aggregate_replies_all_arrive_then_the_close() {
    let (redis, proxy) = proxied();
    let values: Vec<String> = (0..400).map(|i| format!("element-{i:04}")).collect();
    let mut rpush = vec!["RPUSH", "biglist"];
    rpush.extend(values.iter().map(String::as_str));
    redis.cmd(&rpush).expect("RPUSH");
    let mut request = Vec::new();
    for _ in 0..20 {
        request.extend_from_slice(&encode_command(&[b"PING"]));
        request.extend_from_slice(&encode_command(&[b"LRANGE", b"biglist", b"0", b"-1"]));
    }
    let mut client = RespClient::connect(proxy.addr());
    client.set_timeout(Duration::from_secs(10));
    client.send(&request);
    let mut pongs = 0;
    let mut lists = 0;
    for _ in 0..40 {
        let reply = client.read_reply();
        pongs += usize::from(reply == b"+PONG\r\n");
        lists += usize::from(reply.starts_with(b"*400\r\n"));
    }
    assert_eq!((pongs, lists), (20, 20), "every reply arrives");
    client.shutdown_write();
    assert!(
        client.is_closed_within(Duration::from_secs(5)),
        "the proxy did not close after the half-close"
    );
}
