//! Current clients against both ports, in RESP2 and RESP3: redis-py 8 (which
//! opens every connection with `HELLO 3`), its `Sentinel` helper, the Rust
//! `redis` crate with RESP3, and raw bytes compared with Redis Sentinel 7.0's.
//!
//! redis-py 8 comes from PyPI into a venv that scripts/test.sh creates and
//! names in `SENTINEL_PROXY_TEST_PYTHON`; without it these tests fail saying
//! so (Debian's python3-redis is 4.x and speaks RESP2 only).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use redis::{FromRedisValue, IntoConnectionInfo, ProtocolVersion, Value};

use crate::core::{Group, sentinel_master_field};
use crate::support::client::show;
use crate::support::{
    self, Proxy, RedisServer, RespClient, Sentinel, SentinelOptions, assert_eventually,
};

/// Bound on one redis-py script, failover included.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(40);

/// The interpreter with redis-py 8; panics, saying how to get one, without.
fn redis_py_8() -> std::path::PathBuf {
    if std::env::var_os("SENTINEL_PROXY_TEST_PYTHON").is_none() {
        panic!(
            "these tests need redis-py 8 from PyPI: run scripts/test.sh, which installs it \
             into target/py-venv and sets SENTINEL_PROXY_TEST_PYTHON (or set it to a python \
             that has redis>=8,<9)"
        );
    }
    let python = support::python().unwrap_or_else(|e| panic!("{e}"));
    let mut command = std::process::Command::new(&python);
    command.args(["-c", "import redis; print(redis.__version__)"]);
    let out = support::run_bounded(command, b"", Duration::from_secs(20));
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && version.starts_with("8."),
        "SENTINEL_PROXY_TEST_PYTHON={} has redis-py {version:?}, not 8.x: run scripts/test.sh \
         ({})",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// Runs `script` with redis-py 8 and `args` as `sys.argv[1:]`; panics with
/// its output unless it exits 0. Returns what it printed.
pub(crate) fn run_redis_py(script: &str, args: &[String]) -> String {
    let mut command = std::process::Command::new(redis_py_8());
    command.arg("-c").arg(script).args(args);
    let out = support::run_bounded(command, b"", SCRIPT_DEADLINE);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "redis-py script {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A master and a proxy running the sentinel core for it (quorum 1, so it
/// may fail over alone), optionally with one replica the proxy has found.
struct Lab {
    proxy: Proxy,
    replica: Option<RedisServer>,
    master: RedisServer,
}

impl Lab {
    /// Starts the lab and waits until the proxy serves and knows `replicas`
    /// replicas (0 or 1).
    fn spawn(replicas: usize) -> Lab {
        let master = RedisServer::spawn();
        let replica = (replicas > 0).then(|| {
            let replica = RedisServer::builder().replica_of(master.addr()).spawn();
            assert_eventually!(Duration::from_secs(20), replica.master_link_up());
            replica
        });
        let proxy = Proxy::builder()
            .args(["--master", &master.addr().to_string()])
            .args(["--quorum", "1", "--failover-timeout-ms", "10000"])
            .args(["--log-level", "debug,sentinel_proxy::sentinel::api=info"])
            .spawn();
        Group::wait_serving(&proxy);
        let known = replicas.to_string();
        assert_eventually!(
            Duration::from_secs(20),
            sentinel_master_field(&proxy, "num-slaves").as_deref() == Some(known.as_str()),
            "the proxy discovers {known} replicas"
        );
        Lab {
            proxy,
            replica,
            master,
        }
    }

    /// The replica's address; the lab must have one.
    fn replica_addr(&self) -> SocketAddr {
        self.replica.as_ref().expect("a lab with a replica").addr()
    }
}

/// `host port` of `addr` as script arguments.
fn host_port(addr: SocketAddr) -> [String; 2] {
    [addr.ip().to_string(), addr.port().to_string()]
}

/// Commands, pipelines, a transaction, pub/sub and binary values through the
/// client port, with the protocol redis-py negotiated visible in the
/// backend's `CLIENT INFO`.
const CLIENT_PORT_SCRIPT: &str = r#"
import sys, time, redis
host, port, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = redis.Redis(host=host, port=port, protocol=proto, socket_timeout=5)
assert r.ping()
info = r.client_info()
assert int(info["resp"]) == proto, info
assert r.connection_pool.get_protocol() == proto
hello = r.execute_command("HELLO", proto)
hello = {k.decode() if isinstance(k, bytes) else k: v for k, v in dict(
    hello if isinstance(hello, dict) else zip(hello[::2], hello[1::2])).items()}
assert hello["proto"] == proto, hello

blob = bytes(range(256)) + b"\r\n$-1\r\n\x00"
assert r.set(b"bin\xff", blob)
assert r.get(b"bin\xff") == blob
assert r.set("k", "v") and r.get("k") == b"v"
assert r.get("missing") is None
r.hset("h", mapping={"f": "v", "g": blob})
assert r.hgetall("h") == {b"f": b"v", b"g": blob}

p = r.pipeline(transaction=False)
p.set("n", 1).incr("n").get("n").lrange("nolist", 0, -1)
assert p.execute() == [True, 2, b"2", []]

t = r.pipeline(transaction=True)
t.set("t", "x").append("t", "y").get("t")
assert t.execute() == [True, 2, b"xy"]

ps = r.pubsub()
ps.subscribe("news")
m = ps.get_message(timeout=5)
assert m and m["type"] == "subscribe" and m["channel"] == b"news", m
assert r.publish("news", blob) == 1
deadline = time.time() + 5
m = None
while time.time() < deadline and not m:
    m = ps.get_message(timeout=1, ignore_subscribe_messages=True)
assert m and m["type"] == "message" and m["data"] == blob, m
ps.unsubscribe("news")
ps.close()
print("ok", proto)
"#;

/// redis-py 8 on the client port with `protocol=2` and with `protocol=3`.
#[test]
fn redis_py_8_on_the_client_port_in_resp2_and_resp3() {
    let lab = Lab::spawn(0);
    for proto in ["2", "3"] {
        let [host, port] = host_port(lab.proxy.addr());
        let out = run_redis_py(CLIENT_PORT_SCRIPT, &[host, port, proto.to_owned()]);
        assert_eq!(out.trim(), format!("ok {proto}"));
    }
}

/// redis-py's `Sentinel` on the sentinel port: discovery, the discovered
/// master used for writes, Sentinel's maps read as dicts, then a subscription
/// to `+switch-master` that hears `SENTINEL FAILOVER` move the master to the
/// replica, and discovery naming the new master. `sys.argv[5]` is the
/// protocol ("default" lets redis-py choose: RESP3 in 8.x).
const SENTINEL_SCRIPT: &str = r#"
import sys, time
from redis.sentinel import Sentinel
host, port = sys.argv[1], int(sys.argv[2])
master = (sys.argv[3], int(sys.argv[4]))
proto = None if sys.argv[5] == "default" else int(sys.argv[5])
replica = (sys.argv[6], int(sys.argv[7]))
kw = {} if proto is None else {"protocol": proto}
s = Sentinel([(host, port)], socket_timeout=5, sentinel_kwargs=dict(socket_timeout=5, **kw), **kw)
sentinel = s.sentinels[0]
want = 3 if proto is None else proto
hello = sentinel.execute_command("HELLO")
if isinstance(hello, list):
    hello = dict(zip(hello[::2], hello[1::2]))
hello = {k.decode() if isinstance(k, bytes) else k: v for k, v in hello.items()}
assert hello["proto"] == want, hello
assert hello["mode"] in (b"sentinel", "sentinel"), hello

assert s.discover_master("mymaster") == master, s.discover_master("mymaster")
assert s.discover_slaves("mymaster") == [replica], s.discover_slaves("mymaster")
state = sentinel.sentinel_master("mymaster")
assert (state["ip"], state["port"]) == master and state["is_master"], state
assert state["num-slaves"] == 1, state
masters = sentinel.sentinel_masters()
assert list(masters) == ["mymaster"] and masters["mymaster"]["quorum"] == 1, masters
replicas = sentinel.sentinel_slaves("mymaster")
assert [(r["ip"], r["port"]) for r in replicas] == [replica], replicas
assert replicas[0]["is_slave"] and replicas[0]["master-link-status"] == "ok", replicas
assert sentinel.sentinel_sentinels("mymaster") == []
assert sentinel.sentinel_get_master_addr_by_name("nosuch") is None

m = s.master_for("mymaster", socket_timeout=5)
assert m.set(b"via\x00sentinel", b"\xff\x00") and m.get(b"via\x00sentinel") == b"\xff\x00"

ps = sentinel.pubsub()
ps.subscribe("+switch-master")
confirm = ps.get_message(timeout=5)
assert confirm and confirm["type"] == "subscribe", confirm
assert sentinel.sentinel_failover("mymaster")
deadline = time.time() + 25
event = None
while time.time() < deadline and not event:
    event = ps.get_message(timeout=1, ignore_subscribe_messages=True)
assert event and event["channel"] == b"+switch-master", event
expected = "mymaster %s %d %s %d" % (master + replica)
assert event["data"].decode() == expected, (event, expected)
ps.close()
assert s.discover_master("mymaster") == replica, s.discover_master("mymaster")
m = s.master_for("mymaster", socket_timeout=5)
deadline = time.time() + 10
while True:
    try:
        m.set("after", "switch")
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.1)
assert m.get("after") == b"switch"
print("ok")
"#;

/// Runs [`SENTINEL_SCRIPT`] against a fresh lab with `proto`.
fn redis_py_8_sentinel(proto: &str) {
    let lab = Lab::spawn(1);
    let mut args = host_port(lab.proxy.sentinel_addr()).to_vec();
    args.extend(host_port(lab.master.addr()));
    args.push(proto.to_owned());
    args.extend(host_port(lab.replica_addr()));
    assert_eq!(run_redis_py(SENTINEL_SCRIPT, &args).trim(), "ok");
    assert!(
        lab.replica
            .as_ref()
            .is_some_and(|r| r.role().is_ok_and(|role| role.is_master())),
        "the replica was promoted"
    );
}

/// redis-py 8's `Sentinel` with its default protocol (RESP3: `HELLO 3` on
/// every sentinel connection).
#[test]
fn redis_py_8_sentinel_with_resp3() {
    redis_py_8_sentinel("default");
}

/// redis-py 8's `Sentinel` with `protocol=2`.
#[test]
fn redis_py_8_sentinel_with_resp2() {
    redis_py_8_sentinel("2");
}

/// A synchronous `redis` crate connection speaking RESP3 to `addr`.
fn resp3_conn(addr: SocketAddr) -> redis::Connection {
    let settings = redis::RedisConnectionInfo::default().set_protocol(ProtocolVersion::RESP3);
    let info = redis::ConnectionAddr::Tcp(addr.ip().to_string(), addr.port())
        .into_connection_info()
        .expect("connection info")
        .set_redis_settings(settings);
    let client = redis::Client::open(info).expect("client");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("RESP3 connection to {addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    conn
}

/// The keys and values of a RESP3 map of strings.
fn string_map(value: &Value) -> HashMap<String, String> {
    let Value::Map(pairs) = value else {
        panic!("not a RESP3 map: {value:?}");
    };
    pairs
        .iter()
        .map(|(k, v)| {
            let text = |v: &Value| support::value_to_string(v).unwrap_or_else(|| format!("{v:?}"));
            (text(k), text(v))
        })
        .collect()
}

/// The Rust `redis` crate with RESP3 on the sentinel port: its `HELLO 3`
/// handshake is accepted, `HELLO` answers a map, the master's address is an
/// array, an unknown name is nil, `SENTINEL master` is a map and `SENTINEL
/// masters` an array of maps.
#[test]
fn redis_crate_resp3_on_the_sentinel_port() {
    let lab = Lab::spawn(0);
    let mut conn = resp3_conn(lab.proxy.sentinel_addr());
    let hello: Value = redis::cmd("HELLO").query(&mut conn).expect("HELLO");
    let hello = string_map(&hello);
    assert_eq!(
        hello.get("proto").map(String::as_str),
        Some("3"),
        "{hello:?}"
    );
    assert_eq!(
        hello.get("mode").map(String::as_str),
        Some("sentinel"),
        "{hello:?}"
    );
    let addr: Vec<String> = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("mymaster")
        .query(&mut conn)
        .expect("get-master-addr-by-name");
    assert_eq!(addr, host_port(lab.master.addr()).to_vec());
    let unknown: Value = redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg("nosuch")
        .query(&mut conn)
        .expect("get-master-addr-by-name nosuch");
    assert_eq!(unknown, Value::Nil);
    let master: Value = redis::cmd("SENTINEL")
        .arg("master")
        .arg("mymaster")
        .query(&mut conn)
        .expect("SENTINEL master");
    let fields = string_map(&master);
    assert_eq!(fields.get("name").map(String::as_str), Some("mymaster"));
    assert_eq!(fields.get("port"), Some(&lab.master.port().to_string()));
    assert_eq!(fields.get("flags").map(String::as_str), Some("master"));
    let typed = HashMap::<String, String>::from_redis_value(master).expect("a map of strings");
    assert_eq!(typed, fields);
    let masters: Value = redis::cmd("SENTINEL")
        .arg("masters")
        .query(&mut conn)
        .expect("SENTINEL masters");
    let Value::Array(entries) = &masters else {
        panic!("SENTINEL masters is not an array: {masters:?}");
    };
    assert_eq!(entries.len(), 1);
    let entry = string_map(&entries[0]);
    assert_eq!(entry.get("name").map(String::as_str), Some("mymaster"));
    let keys = |map: &HashMap<String, String>| {
        let mut keys: Vec<String> = map.keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&entry),
        keys(&fields),
        "the same fields as SENTINEL master"
    );
}

/// A HELLO reply as text with the values of `version` (a bulk string: two
/// lines) and `id` (an integer: one line) replaced by `?`: the only bytes
/// that differ between two servers.
fn normalize_hello(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let mut out = Vec::new();
    let mut lines = text.split("\r\n");
    while let Some(line) = lines.next() {
        out.push(line);
        let value_lines = match line {
            "version" => 2,
            "id" => 1,
            _ => 0,
        };
        if value_lines > 0 {
            lines.by_ref().take(value_lines).for_each(drop);
            out.push("?");
        }
    }
    out.join("\r\n")
}

/// One conversation on a sentinel port: every reply, as text, with HELLO's
/// id and version blanked.
fn conversation(addr: SocketAddr, steps: &[&[&str]]) -> Vec<String> {
    let mut raw = RespClient::connect(addr);
    steps
        .iter()
        .map(|args| {
            let reply = raw.command(args);
            if args[0].eq_ignore_ascii_case("hello") {
                normalize_hello(&reply)
            } else {
                show(&reply)
            }
        })
        .collect()
}

/// The byte-level RESP3 contract on the sentinel port: HELLO 3's map, `_`
/// for an unknown master after `HELLO 3` and `*-1` before, pushes for pub/sub,
/// a subscribed RESP3 client keeps every command, `HELLO 2` and `RESET` go
/// back to RESP2.
#[test]
fn resp3_bytes_on_the_sentinel_port() {
    let lab = Lab::spawn(0);
    let mut raw = RespClient::connect(lab.proxy.sentinel_addr());
    let by_name = ["SENTINEL", "get-master-addr-by-name", "nosuch"];
    assert_eq!(show(&raw.command(&by_name)), show(b"*-1\r\n"));
    let hello = raw.command(&["HELLO", "3"]);
    assert_eq!(
        normalize_hello(&hello),
        "%6\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n?\r\n$5\r\nproto\r\n:3\r\n\
         $2\r\nid\r\n?\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n$7\r\nmodules\r\n*0\r\n",
        "{}",
        show(&hello)
    );
    assert_eq!(show(&raw.command(&by_name)), show(b"_\r\n"));
    let master = raw.command(&["SENTINEL", "MASTER", "mymaster"]);
    assert!(
        master.starts_with(b"%20\r\n$4\r\nname\r\n$8\r\nmymaster\r\n"),
        "{}",
        show(&master)
    );
    let masters = raw.command(&["SENTINEL", "MASTERS"]);
    assert!(masters.starts_with(b"*1\r\n%20\r\n"), "{}", show(&masters));
    assert_eq!(
        show(&raw.command(&["SUBSCRIBE", "+switch-master"])),
        show(b">3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n")
    );
    assert_eq!(show(&raw.command(&["PING"])), show(b"+PONG\r\n"));
    assert_eq!(show(&raw.command(&by_name)), show(b"_\r\n"));
    assert_eq!(
        show(&raw.command(&["RESET"])),
        show(b"+RESET\r\n"),
        "RESET ends the subscription and RESP3"
    );
    assert_eq!(show(&raw.command(&by_name)), show(b"*-1\r\n"));
    assert_eq!(
        show(&raw.command(&["SUBSCRIBE", "+sdown"])),
        show(b"*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:1\r\n")
    );
}

/// The same conversation with a real `redis-sentinel` 7.0 and with the proxy,
/// both monitoring one master, gives the same bytes (HELLO's id and version
/// aside), and `SENTINEL MASTER` has the same keys in the same order.
#[test]
fn resp3_replies_match_redis_sentinel() {
    let lab = Lab::spawn(0);
    let sentinel = Sentinel::spawn(
        lab.master.addr(),
        SentinelOptions {
            quorum: 1,
            ..SentinelOptions::default()
        },
    );
    assert_eventually!(
        Duration::from_secs(20),
        sentinel.master_addr() == Some(lab.master.addr())
    );
    let by_name: &[&str] = &["SENTINEL", "get-master-addr-by-name", "nosuch"];
    let steps: &[&[&str]] = &[
        by_name,
        &["HELLO", "3"],
        by_name,
        &["SENTINEL", "get-master-addr-by-name", "mymaster"],
        &["SENTINEL", "MASTER", "nosuch"],
        &["CLIENT", "GETNAME"],
        &["HELLO", "3", "AUTH", "default", "any", "SETNAME", "app"],
        &["CLIENT", "GETNAME"],
        &["HELLO", "4"],
        // No Sentinel event is published on these names, so no message can
        // slip in between two replies. One channel per command: each step
        // reads one reply, and the order in which Redis confirms several
        // channels is its hash table's.
        &["SUBSCRIBE", "test-a"],
        &["PSUBSCRIBE", "test-*"],
        &["PING"],
        &["PING", "x"],
        &["UNSUBSCRIBE"],
        &["PUNSUBSCRIBE"],
        &["UNSUBSCRIBE"],
        &["HELLO"],
        &["HELLO", "2"],
        by_name,
        &["SUBSCRIBE", "test-a"],
        &["PING"],
        &["UNSUBSCRIBE"],
    ];
    let real = conversation(sentinel.addr(), steps);
    let ours = conversation(lab.proxy.sentinel_addr(), steps);
    for ((step, real), ours) in steps.iter().zip(&real).zip(&ours) {
        assert_eq!(
            ours, real,
            "{step:?}: the proxy (left) and redis-sentinel (right)"
        );
    }

    // Replies whose contents differ between the two (run ids, timings,
    // versions) still have the same RESP3 type.
    let kinds = |addr: SocketAddr| -> Vec<(String, char)> {
        let mut raw = RespClient::connect(addr);
        raw.command(&["HELLO", "3"]);
        let commands: &[&[&str]] = &[
            &["INFO"],
            &["ROLE"],
            &["SENTINEL", "MYID"],
            &["SENTINEL", "CKQUORUM", "mymaster"],
            &["SENTINEL", "REPLICAS", "mymaster"],
            &["SENTINEL", "SENTINELS", "mymaster"],
            &[
                "SENTINEL",
                "IS-MASTER-DOWN-BY-ADDR",
                "127.0.0.1",
                "1",
                "0",
                "*",
            ],
            &["SENTINEL", "CONFIG", "GET", "resolve-hostnames"],
        ];
        commands
            .iter()
            .map(|args| {
                let reply = raw.command(args);
                (args.join(" "), reply.first().map_or('?', |&b| b as char))
            })
            .collect()
    };
    assert_eq!(
        kinds(lab.proxy.sentinel_addr()),
        kinds(sentinel.addr()),
        "RESP3 reply types: the proxy (left) and redis-sentinel (right)"
    );

    let keys = |addr: SocketAddr| -> Vec<String> {
        let mut conn = resp3_conn(addr);
        let master: Value = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg("mymaster")
            .query(&mut conn)
            .expect("SENTINEL MASTER");
        let Value::Map(pairs) = master else {
            panic!("SENTINEL MASTER on {addr} is not a map: {master:?}");
        };
        pairs
            .iter()
            .filter_map(|(k, _)| support::value_to_string(k))
            .collect()
    };
    assert_eq!(
        keys(lab.proxy.sentinel_addr()),
        keys(sentinel.addr()),
        "SENTINEL MASTER's keys"
    );
}
