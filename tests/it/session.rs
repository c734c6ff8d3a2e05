//! Session behaviour a Redis user relies on, through the proxy: databases,
//! client names, ACL users, transactions, pub/sub, blocking commands,
//! MONITOR, the proxy's own password, backend credentials, redis-cli and
//! redis-benchmark, idle release and server-side kills.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::client::show;
use crate::support::{
    Proxy, RedisServer, assert_eventually, redis_conn_with_timeout, value_to_string,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis server and a proxy in front of it, with extra proxy flags.
fn proxied_with(extra: &[&str]) -> (RedisServer, Proxy) {
    let redis = RedisServer::spawn();
    start_proxy(redis, extra)
}

fn start_proxy(redis: RedisServer, extra: &[&str]) -> (RedisServer, Proxy) {
    let master = redis.addr().to_string();
    let mut args = vec!["--master", master.as_str()];
    args.extend_from_slice(extra);
    let proxy = Proxy::spawn(&args);
    (redis, proxy)
}

/// A synchronous `redis` crate connection to the proxy (RESP2, no AUTH).
fn conn(proxy: &Proxy) -> redis::Connection {
    redis_conn_with_timeout(proxy.addr(), None, TIMEOUT)
        .unwrap_or_else(|err| panic!("connect to the proxy: {err}"))
}

/// Runs `args` as one command on `conn`.
fn run(conn: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(conn)
}

/// Runs `args` and renders a simple reply as a string.
fn run_str(conn: &mut redis::Connection, args: &[&str]) -> String {
    let value = run(conn, args).unwrap_or_else(|err| panic!("{args:?}: {err}"));
    value_to_string(&value).unwrap_or_else(|| panic!("{args:?}: unexpected reply {value:?}"))
}

/// `CLIENT LIST` on the server, as text.
fn client_list(redis: &RedisServer) -> String {
    let value = redis.cmd(&["CLIENT", "LIST"]).expect("CLIENT LIST");
    value_to_string(&value).expect("CLIENT LIST is a string")
}

/// The `CLIENT LIST` line of the client named `name`, if connected.
fn client_line(redis: &RedisServer, name: &str) -> Option<String> {
    let needle = format!(" name={name} ");
    client_list(redis)
        .lines()
        .find(|line| line.contains(&needle))
        .map(str::to_owned)
}

/// One value from `INFO <section>` on the server.
fn info_field(redis: &RedisServer, section: &str, field: &str) -> Option<String> {
    redis.info(section).ok()?.get(field).cloned()
}

/// A command on a direct connection after selecting `db`.
fn direct_in_db(redis: &RedisServer, db: &str, args: &[&str]) -> redis::Value {
    let mut direct = redis.conn();
    run(&mut direct, &["SELECT", db]).expect("SELECT");
    run(&mut direct, args).unwrap_or_else(|err| panic!("{args:?} on redis-server: {err}"))
}

/// Runs a program with a deadline, feeding it `stdin`.
fn run_program(program: &str, args: &[String], stdin: &[u8], deadline: Duration) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    crate::support::run_bounded(command, stdin, deadline)
}

fn host_port(addr: SocketAddr) -> Vec<String> {
    vec![
        "-h".to_owned(),
        addr.ip().to_string(),
        "-p".to_owned(),
        addr.port().to_string(),
    ]
}

fn redis_cli(addr: SocketAddr, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = host_port(addr);
    all.extend(args.iter().map(|a| (*a).to_owned()));
    run_program("redis-cli", &all, stdin, Duration::from_secs(20))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn select_then_set_lands_in_that_database() {
    let (redis, proxy) = proxied_with(&[]);
    let mut c = conn(&proxy);
    assert_eq!(run_str(&mut c, &["SELECT", "3"]), "OK");
    assert_eq!(run_str(&mut c, &["SET", "in-db3", "yes"]), "OK");
    assert_eq!(run_str(&mut c, &["GET", "in-db3"]), "yes");
    assert_eq!(
        direct_in_db(&redis, "3", &["GET", "in-db3"]),
        redis::Value::BulkString(b"yes".to_vec())
    );
    assert_eq!(
        direct_in_db(&redis, "0", &["EXISTS", "in-db3"]),
        redis::Value::Int(0),
        "the key must not be in db 0"
    );
    // Another proxied client starts in db 0.
    let mut other = conn(&proxy);
    assert_eq!(
        run(&mut other, &["GET", "in-db3"]).ok(),
        Some(redis::Value::Nil)
    );
}

#[test]
fn client_setname_is_visible_in_client_list_on_the_server() {
    let (redis, proxy) = proxied_with(&[]);
    let mut c = conn(&proxy);
    assert_eq!(run_str(&mut c, &["CLIENT", "SETNAME", "billing-app"]), "OK");
    assert_eq!(run_str(&mut c, &["CLIENT", "GETNAME"]), "billing-app");
    assert!(
        client_line(&redis, "billing-app").is_some(),
        "CLIENT LIST on the server: {}",
        client_list(&redis)
    );
}

#[test]
fn auth_with_an_acl_user_and_a_wrong_password() {
    let (redis, proxy) = proxied_with(&[]);
    redis
        .cmd(&[
            "ACL",
            "SETUSER",
            "alice",
            "on",
            ">alice-pw",
            "~*",
            "&*",
            "+@all",
        ])
        .expect("ACL SETUSER");
    let mut client = proxy.connect();
    let wrong = client.command(&["AUTH", "alice", "not-her-password"]);
    assert!(
        wrong.starts_with(b"-WRONGPASS"),
        "wrong password: {}",
        show(&wrong)
    );
    assert_eq!(
        show(&client.command(&["ACL", "WHOAMI"])),
        show(b"$7\r\ndefault\r\n")
    );
    assert_eq!(
        show(&client.command(&["AUTH", "alice", "alice-pw"])),
        show(b"+OK\r\n")
    );
    assert_eq!(
        show(&client.command(&["ACL", "WHOAMI"])),
        show(b"$5\r\nalice\r\n")
    );

    // The same with the redis crate, authenticating at connect time.
    let info = redis::IntoConnectionInfo::into_connection_info(format!(
        "redis://alice:alice-pw@{}/",
        proxy.addr()
    ))
    .expect("connection info");
    let client = redis::Client::open(info).expect("client");
    let mut c = client
        .get_connection_with_timeout(TIMEOUT)
        .expect("connect as alice through the proxy");
    assert_eq!(run_str(&mut c, &["ACL", "WHOAMI"]), "alice");
    assert_eq!(run_str(&mut c, &["SET", "owned-by", "alice"]), "OK");
    assert_eq!(
        redis.cmd(&["GET", "owned-by"]).ok(),
        Some(redis::Value::BulkString(b"alice".to_vec()))
    );
}

#[test]
fn multi_exec_runs_the_queued_commands() {
    let (redis, proxy) = proxied_with(&[]);
    let mut c = conn(&proxy);
    assert_eq!(run_str(&mut c, &["MULTI"]), "OK");
    assert_eq!(run_str(&mut c, &["SET", "tx", "10"]), "QUEUED");
    assert_eq!(run_str(&mut c, &["INCRBY", "tx", "5"]), "QUEUED");
    let exec = run(&mut c, &["EXEC"]).expect("EXEC");
    assert_eq!(
        exec,
        redis::Value::Array(vec![redis::Value::Okay, redis::Value::Int(15)])
    );
    assert_eq!(
        redis.cmd(&["GET", "tx"]).ok(),
        Some(redis::Value::BulkString(b"15".to_vec()))
    );
    // The crate's atomic pipeline (MULTI … EXEC in one write) too.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("tx", 1)
        .incr("tx", 1)
        .query(&mut c)
        .expect("atomic pipeline");
    assert_eq!((a, b), (16, 17));
}

#[test]
fn watch_with_a_conflicting_write_makes_exec_return_nil() {
    let (redis, proxy) = proxied_with(&[]);
    let mut c = conn(&proxy);
    let mut other = conn(&proxy);
    assert_eq!(run_str(&mut c, &["SET", "balance", "100"]), "OK");
    assert_eq!(run_str(&mut c, &["WATCH", "balance"]), "OK");
    assert_eq!(run_str(&mut c, &["GET", "balance"]), "100");
    assert_eq!(run_str(&mut other, &["SET", "balance", "50"]), "OK");
    assert_eq!(run_str(&mut c, &["MULTI"]), "OK");
    assert_eq!(run_str(&mut c, &["SET", "balance", "90"]), "QUEUED");
    let exec = run(&mut c, &["EXEC"]).expect("EXEC");
    assert_eq!(exec, redis::Value::Nil, "EXEC after a conflicting write");
    assert_eq!(
        redis.cmd(&["GET", "balance"]).ok(),
        Some(redis::Value::BulkString(b"50".to_vec()))
    );
    // Without a conflict the next transaction commits.
    assert_eq!(run_str(&mut c, &["WATCH", "balance"]), "OK");
    assert_eq!(run_str(&mut c, &["MULTI"]), "OK");
    assert_eq!(run_str(&mut c, &["SET", "balance", "40"]), "QUEUED");
    assert_eq!(
        run(&mut c, &["EXEC"]).expect("EXEC"),
        redis::Value::Array(vec![redis::Value::Okay])
    );
}

#[test]
fn subscribe_and_psubscribe_receive_messages_with_the_redis_crate() {
    let (_redis, proxy) = proxied_with(&[]);
    let mut sub_conn = conn(&proxy);
    let mut publisher = conn(&proxy);
    let mut pubsub = sub_conn.as_pubsub();
    pubsub
        .set_read_timeout(Some(TIMEOUT))
        .expect("read timeout");
    pubsub.subscribe("orders").expect("SUBSCRIBE");
    pubsub.psubscribe("metrics.*").expect("PSUBSCRIBE");
    assert_eq!(run_str(&mut publisher, &["PUBLISH", "orders", "o-1"]), "1");
    assert_eq!(
        run_str(&mut publisher, &["PUBLISH", "metrics.cpu", "97"]),
        "1"
    );
    let first = pubsub.get_message().expect("message");
    assert_eq!(first.get_channel_name(), "orders");
    assert_eq!(first.get_payload_bytes(), b"o-1");
    let second = pubsub.get_message().expect("pmessage");
    assert_eq!(second.get_channel_name(), "metrics.cpu");
    assert_eq!(
        second.get_pattern::<String>().expect("pattern"),
        "metrics.*"
    );
    assert_eq!(second.get_payload_bytes(), b"97");
}

#[test]
fn ssubscribe_messages_then_unsubscribe_and_normal_commands() {
    let (_redis, proxy) = proxied_with(&[]);
    let mut sub = proxy.connect();
    let mut publisher = proxy.connect();
    assert_eq!(
        show(&sub.command(&["SUBSCRIBE", "a", "b"])),
        show(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n")
    );
    assert_eq!(
        show(&sub.read_reply()),
        show(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n")
    );
    assert_eq!(
        show(&sub.command(&["PSUBSCRIBE", "p.*"])),
        show(b"*3\r\n$10\r\npsubscribe\r\n$3\r\np.*\r\n:3\r\n")
    );
    assert_eq!(
        show(&sub.command(&["SSUBSCRIBE", "shard-chan"])),
        show(b"*3\r\n$10\r\nssubscribe\r\n$10\r\nshard-chan\r\n:1\r\n")
    );
    assert_eq!(
        show(&publisher.command(&["PUBLISH", "b", "to-b"])),
        show(b":1\r\n")
    );
    assert_eq!(
        show(&publisher.command(&["PUBLISH", "p.x", "to-p"])),
        show(b":1\r\n")
    );
    assert_eq!(
        show(&publisher.command(&["SPUBLISH", "shard-chan", "to-s"])),
        show(b":1\r\n")
    );
    assert_eq!(
        show(&sub.read_reply()),
        show(b"*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$4\r\nto-b\r\n")
    );
    assert_eq!(
        show(&sub.read_reply()),
        show(b"*4\r\n$8\r\npmessage\r\n$3\r\np.*\r\n$3\r\np.x\r\n$4\r\nto-p\r\n")
    );
    assert_eq!(
        show(&sub.read_reply()),
        show(b"*3\r\n$8\r\nsmessage\r\n$10\r\nshard-chan\r\n$4\r\nto-s\r\n")
    );
    // PING while subscribed (RESP2 answers with an array).
    assert_eq!(
        show(&sub.command(&["PING"])),
        show(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
    );
    // Unsubscribe from everything, in all three families.
    sub.send_command(&["UNSUBSCRIBE"]);
    // Redis picks the order; the counts go down from 2 to 1 either way.
    let first = sub.read_reply();
    let second = sub.read_reply();
    let prefix: &[u8] = b"*3\r\n$11\r\nunsubscribe\r\n$1\r\n";
    let mut channels = Vec::new();
    for (reply, count) in [(&first, b":2\r\n"), (&second, b":1\r\n")] {
        assert!(
            reply.starts_with(prefix)
                && reply.ends_with(count)
                && reply.len() == prefix.len() + 3 + 4,
            "UNSUBSCRIBE confirmation {}",
            show(reply)
        );
        channels.push(reply[prefix.len()]);
    }
    channels.sort_unstable();
    assert_eq!(
        channels,
        b"ab",
        "UNSUBSCRIBE confirmed {} and {}",
        show(&first),
        show(&second)
    );
    assert_eq!(
        show(&sub.command(&["PUNSUBSCRIBE"])),
        show(b"*3\r\n$12\r\npunsubscribe\r\n$3\r\np.*\r\n:0\r\n")
    );
    assert_eq!(
        show(&sub.command(&["SUNSUBSCRIBE", "shard-chan"])),
        show(b"*3\r\n$12\r\nsunsubscribe\r\n$10\r\nshard-chan\r\n:0\r\n")
    );
    // Back to a normal connection.
    assert_eq!(show(&sub.command(&["SET", "k", "v"])), show(b"+OK\r\n"));
    assert_eq!(show(&sub.command(&["GET", "k"])), show(b"$1\r\nv\r\n"));
    assert_eq!(show(&sub.command(&["PING"])), show(b"+PONG\r\n"));
    // And it no longer receives messages.
    assert_eq!(
        show(&publisher.command(&["PUBLISH", "a", "late"])),
        show(b":0\r\n")
    );
}

#[test]
fn blpop_with_timeout_zero_blocks_until_another_client_pushes() {
    let (redis, proxy) = proxied_with(&[]);
    let mut waiter = proxy.connect();
    waiter.set_timeout(Duration::from_secs(10));
    waiter.send_command(&["BLPOP", "jobs", "0"]);
    assert_eventually!(
        TIMEOUT,
        info_field(&redis, "clients", "blocked_clients").as_deref() == Some("1"),
        "BLPOP never blocked on the server"
    );
    // Still blocked: nothing has arrived.
    waiter.set_timeout(Duration::from_millis(300));
    let early = waiter.try_read_reply();
    assert!(
        matches!(&early, Err(err) if err.kind() == std::io::ErrorKind::TimedOut),
        "BLPOP answered before any push: {early:?}"
    );
    waiter.set_timeout(Duration::from_secs(10));
    let mut c = conn(&proxy);
    assert_eq!(run_str(&mut c, &["LPUSH", "jobs", "job-42"]), "1");
    assert_eq!(
        show(&waiter.read_reply()),
        show(b"*2\r\n$4\r\njobs\r\n$6\r\njob-42\r\n")
    );
    // The connection is usable afterwards.
    assert_eq!(show(&waiter.command(&["PING"])), show(b"+PONG\r\n"));
}

#[test]
fn monitor_sees_commands_of_other_clients() {
    let (_redis, proxy) = proxied_with(&[]);
    let mut monitor = proxy.connect();
    assert_eq!(show(&monitor.command(&["MONITOR"])), show(b"+OK\r\n"));
    let mut c = conn(&proxy);
    assert_eq!(run_str(&mut c, &["SET", "watched-by-monitor", "42"]), "OK");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let line = monitor.read_reply();
        let line = text(&line);
        assert!(line.starts_with('+'), "MONITOR feed line: {line:?}");
        if line.contains("\"SET\" \"watched-by-monitor\" \"42\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "MONITOR never showed the SET; last line {line:?}"
        );
    }
}

#[test]
fn requirepass_demands_auth_before_commands() {
    let (redis, proxy) = proxied_with(&["--requirepass", "secret"]);
    let mut client = proxy.connect();
    assert_eq!(
        show(&client.command(&["SET", "k", "v"])),
        show(b"-NOAUTH Authentication required.\r\n")
    );
    assert_eq!(
        show(&client.command(&["GET", "k"])),
        show(b"-NOAUTH Authentication required.\r\n")
    );
    let wrong = client.command(&["AUTH", "not-secret"]);
    assert!(wrong.starts_with(b"-WRONGPASS"), "{}", show(&wrong));
    assert_eq!(
        show(&client.command(&["PING"])),
        show(b"-NOAUTH Authentication required.\r\n")
    );
    assert_eq!(
        redis.cmd(&["EXISTS", "k"]).ok(),
        Some(redis::Value::Int(0)),
        "a command before AUTH reached the server"
    );
    assert_eq!(show(&client.command(&["AUTH", "secret"])), show(b"+OK\r\n"));
    assert_eq!(show(&client.command(&["SET", "k", "v"])), show(b"+OK\r\n"));
    assert_eq!(show(&client.command(&["GET", "k"])), show(b"$1\r\nv\r\n"));
}

#[test]
fn requirepass_redis_cli_with_a_password_works() {
    let (_redis, proxy) = proxied_with(&["--requirepass", "secret"]);
    let out = redis_cli(
        proxy.addr(),
        &["-a", "secret", "--no-auth-warning", "SET", "k", "v"],
        b"",
    );
    assert!(out.status.success(), "redis-cli -a: {out:?}");
    assert_eq!(text(&out.stdout).trim(), "OK", "redis-cli -a: {out:?}");
    let out = redis_cli(
        proxy.addr(),
        &["-a", "secret", "--no-auth-warning", "GET", "k"],
        b"",
    );
    assert!(out.status.success(), "redis-cli -a: {out:?}");
    assert_eq!(text(&out.stdout).trim(), "v", "redis-cli -a: {out:?}");
    let out = redis_cli(proxy.addr(), &["GET", "k"], b"");
    assert!(
        text(&out.stdout).contains("NOAUTH") || text(&out.stderr).contains("NOAUTH"),
        "redis-cli without -a: {out:?}"
    );
}

#[test]
fn requirepass_hello_3_with_auth_authenticates() {
    let (redis, proxy) = proxied_with(&["--requirepass", "secret"]);
    redis.cmd(&["SET", "k", "v"]).expect("SET on redis-server");
    let mut hello = proxy.connect();
    let wrong = hello.command(&["HELLO", "3", "AUTH", "default", "not-secret"]);
    assert!(
        wrong.starts_with(b"-WRONGPASS"),
        "HELLO with a wrong password: {}",
        show(&wrong)
    );
    let reply = hello.command(&["HELLO", "3", "AUTH", "default", "secret"]);
    assert!(reply.starts_with(b"%"), "HELLO 3 AUTH: {}", show(&reply));
    assert_eq!(show(&hello.command(&["GET", "k"])), show(b"$1\r\nv\r\n"));
    assert_eq!(show(&hello.command(&["GET", "nope"])), show(b"_\r\n"));
}

#[test]
fn backend_password_is_sent_for_clients_that_never_auth() {
    let redis = RedisServer::builder().requirepass("backend-pw").spawn();
    let (redis, proxy) = start_proxy(redis, &["--auth-pass", "backend-pw"]);
    let mut client = proxy.connect();
    assert_eq!(show(&client.command(&["SET", "k", "v"])), show(b"+OK\r\n"));
    assert_eq!(show(&client.command(&["GET", "k"])), show(b"$1\r\nv\r\n"));
    assert_eq!(
        redis.cmd(&["GET", "k"]).ok(),
        Some(redis::Value::BulkString(b"v".to_vec()))
    );
    let mut c = conn(&proxy);
    assert_eq!(run_str(&mut c, &["INCR", "n"]), "1");
}

/// Runs redis-benchmark against the proxy and checks it reported no error
/// and that the server executed at least `min_commands` commands.
fn benchmark(extra: &[&str], min_commands: u64) {
    let (redis, proxy) = proxied_with(&[]);
    let before: u64 = info_field(&redis, "stats", "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .expect("total_commands_processed");
    let mut args = host_port(proxy.addr());
    args.extend(
        ["-t", "set,get,incr,lpush,lpop,mset", "-q"]
            .iter()
            .chain(extra)
            .map(|a| (*a).to_owned()),
    );
    let out = run_program("redis-benchmark", &args, b"", Duration::from_secs(120));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "redis-benchmark exited with {}: {stdout}\n{stderr}",
        out.status
    );
    for output in [&stdout, &stderr] {
        assert!(
            !output.to_lowercase().contains("error") && !output.contains("ERR"),
            "redis-benchmark reported errors: {stdout}\n{stderr}"
        );
    }
    for test in [
        "SET:",
        "GET:",
        "INCR:",
        "LPUSH:",
        "LPOP:",
        "MSET (10 keys):",
    ] {
        assert!(
            stdout.contains(test),
            "no result line for {test}: {stdout}\n{stderr}"
        );
    }
    let after: u64 = info_field(&redis, "stats", "total_commands_processed")
        .and_then(|v| v.parse().ok())
        .expect("total_commands_processed");
    assert!(
        after - before >= min_commands,
        "the server processed {} commands, expected at least {min_commands}",
        after - before
    );
}

#[test]
fn redis_benchmark_pipelined_through_the_proxy() {
    benchmark(&["-n", "100000", "-P", "16"], 600_000);
}

#[test]
fn redis_benchmark_fifty_clients_unpipelined_through_the_proxy() {
    benchmark(&["-n", "20000", "-P", "1", "-c", "50"], 120_000);
}

#[test]
fn redis_cli_commands_and_pipe_mode_through_the_proxy() {
    let (redis, proxy) = proxied_with(&[]);
    let out = redis_cli(proxy.addr(), &["SET", "cli-key", "cli-value"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout).trim(), "OK");
    let out = redis_cli(proxy.addr(), &["GET", "cli-key"], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout).trim(), "cli-value");

    let commands = 400;
    let mut input = Vec::new();
    for i in 0..commands {
        let key = format!("pipe:{i}");
        let value = format!("value-{i}");
        input.extend(crate::support::client::encode_command(&[
            b"SET",
            key.as_bytes(),
            value.as_bytes(),
        ]));
    }
    let out = redis_cli(proxy.addr(), &["--pipe"], &input);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "redis-cli --pipe: {out:?}");
    assert!(
        stdout.contains(&format!("errors: 0, replies: {commands}")),
        "redis-cli --pipe: {stdout}\n{}",
        text(&out.stderr)
    );
    assert_eq!(
        redis.cmd(&["DBSIZE"]).ok(),
        Some(redis::Value::Int(commands + 1))
    );
    assert_eq!(
        redis.cmd(&["GET", "pipe:399"]).ok(),
        Some(redis::Value::BulkString(b"value-399".to_vec()))
    );
}

#[test]
fn idle_backend_is_released_and_state_restored_on_next_command() {
    let (redis, proxy) = proxied_with(&["--idle-release-ms", "200"]);
    let mut client = proxy.connect();
    assert_eq!(show(&client.command(&["SELECT", "2"])), show(b"+OK\r\n"));
    assert_eq!(
        show(&client.command(&["CLIENT", "SETNAME", "idle-app"])),
        show(b"+OK\r\n")
    );
    let line = client_line(&redis, "idle-app").expect("the named backend connection");
    assert!(line.contains(" db=2 "), "{line}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eventually!(
        Duration::from_secs(3),
        client_line(&redis, "idle-app").is_none(),
        "the idle backend connection was not released: {}",
        client_list(&redis)
    );
    // The client connection itself is still open and keeps its state.
    assert_eq!(
        show(&client.command(&["SET", "after-idle", "1"])),
        show(b"+OK\r\n")
    );
    assert_eq!(
        show(&client.command(&["GET", "after-idle"])),
        show(b"$1\r\n1\r\n")
    );
    assert_eq!(
        show(&client.command(&["CLIENT", "GETNAME"])),
        show(b"$8\r\nidle-app\r\n")
    );
    assert_eq!(
        direct_in_db(&redis, "2", &["GET", "after-idle"]),
        redis::Value::BulkString(b"1".to_vec()),
        "the SET after the release must land in db 2"
    );
    assert_eq!(
        direct_in_db(&redis, "0", &["EXISTS", "after-idle"]),
        redis::Value::Int(0)
    );
    let line = client_line(&redis, "idle-app").expect("a new named backend connection");
    assert!(line.contains(" db=2 "), "{line}");
}

#[test]
fn backend_killed_by_the_server_closes_the_client_connection() {
    let (redis, proxy) = proxied_with(&[]);
    let mut client = proxy.connect();
    assert_eq!(show(&client.command(&["SET", "k", "v"])), show(b"+OK\r\n"));
    let killed = redis
        .cmd(&["CLIENT", "KILL", "TYPE", "normal"])
        .expect("CLIENT KILL TYPE normal");
    assert!(
        matches!(killed, redis::Value::Int(n) if n >= 1),
        "CLIENT KILL TYPE normal killed {killed:?}: not the proxied backend connection"
    );
    if crate::support::shared_mode() {
        // The session had no connection of its own: the shared one was
        // killed, and once the proxy has seen that, the session simply takes
        // the next one. (A command sent at the very moment of the kill would
        // be lost with it, and its client closed, as with a connection of
        // its own.)
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(show(&client.command(&["GET", "k"])), show(b"$1\r\nv\r\n"));
    } else {
        assert!(
            client.is_closed_within(Duration::from_secs(3)),
            "the proxied client connection stayed open after its backend was killed"
        );
    }
    // New clients are served.
    assert_eq!(
        show(&proxy.connect().command(&["GET", "k"])),
        show(b"$1\r\nv\r\n")
    );
}

/// After CLIENT REPLY OFF no reply answers a command; the proxy must keep
/// reading and forwarding however many commands follow (it once stopped
/// after its in-flight limit, waiting for replies that never come).
#[test]
fn client_reply_off_does_not_stall_a_long_pipeline() {
    let (redis, proxy) = proxied_with(&[]);
    let mut client = proxy.connect();
    client.set_timeout(Duration::from_secs(20));
    client.send(b"CLIENT REPLY OFF\r\n");
    let mut pipeline = Vec::new();
    for i in 0..70_000 {
        pipeline.extend_from_slice(format!("SET k {i}\r\n").as_bytes());
    }
    client.send(&pipeline);
    assert_eq!(
        show(&client.command(&["CLIENT", "REPLY", "ON"])),
        show(b"+OK\r\n")
    );
    assert_eq!(
        show(&client.command(&["GET", "k"])),
        show(b"$5\r\n69999\r\n")
    );
    assert_eq!(
        redis.cmd(&["GET", "k"]).ok(),
        Some(redis::Value::BulkString(b"69999".to_vec()))
    );
}

/// RESET gives a connection back its initial state, on the server and in the
/// proxy's replay: after the backend connection is released and re-opened,
/// commands run in database 0, not in the database selected before RESET.
#[test]
fn reset_clears_the_state_replayed_on_a_new_backend() {
    let (redis, proxy) = proxied_with(&["--idle-release-ms", "200"]);
    let mut client = proxy.connect();
    assert_eq!(show(&client.command(&["SELECT", "2"])), show(b"+OK\r\n"));
    assert_eq!(show(&client.command(&["RESET"])), show(b"+RESET\r\n"));
    assert_eq!(
        show(&client.command(&["CLIENT", "SETNAME", "reset-probe"])),
        show(b"+OK\r\n")
    );
    assert_eventually!(
        Duration::from_secs(5),
        client_line(&redis, "reset-probe").is_none(),
        "the idle backend connection was not released: {}",
        client_list(&redis)
    );
    assert_eq!(
        show(&client.command(&["SET", "after-reset", "1"])),
        show(b"+OK\r\n")
    );
    assert_eq!(
        redis.cmd(&["GET", "after-reset"]).ok(),
        Some(redis::Value::BulkString(b"1".to_vec()))
    );
}
