//! Shared helpers for the integration tests: free loopback ports, bounded
//! polling (`eventually`, `assert_eventually!`), Redis and Sentinel process
//! management, a handle on the proxy binary and a raw RESP client.
//!
//! Every process started here listens on 127.0.0.1 only, is tracked by the
//! PID of the child it was spawned as, and is killed (SIGKILL) when its
//! handle is dropped. When a test panics, the handles print the tail of the
//! process logs to stderr so failures can be diagnosed from the test output.

#![allow(dead_code)]

pub mod client;
pub mod hosts;
pub mod proxy;
pub mod redis;
pub mod sentinel;
pub mod tls;

// Re-exports for test modules; not every test binary state uses all of them.
#[allow(unused_imports)]
pub use self::client::RespClient;
#[allow(unused_imports)]
pub use self::proxy::{Proxy, ProxyBuilder};
#[allow(unused_imports)]
pub use self::redis::{RedisServer, RedisServerBuilder, Role};
#[allow(unused_imports)]
pub use self::sentinel::{Sentinel, SentinelOptions, Topology, TopologyOptions};

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Interval between two checks of a polled condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Ports below this value are never handed out (privileged and common
/// service ports).
const PORT_RANGE_LOW: u16 = 20_000;

/// Well-known ports a locally installed Redis may occupy.
const AVOIDED_PORTS: &[u16] = &[6379, 26379];

struct PortRegistry {
    handed_out: HashSet<u16>,
    /// Lock files held for the lifetime of the process; the operating system
    /// releases the locks when the process exits, however it exits.
    locks: Vec<File>,
}

static PORTS: LazyLock<Mutex<PortRegistry>> = LazyLock::new(|| {
    Mutex::new(PortRegistry {
        handed_out: HashSet::new(),
        locks: Vec::new(),
    })
});

/// Whether proxies started by the tests share backend connections: the data
/// path tests run once as they are (sharing, the default) and once with
/// `SENTINEL_PROXY_SHARE_BACKEND=false` (which the proxy reads as
/// `--share-backend false`). The few tests of behaviour that differs check it.
pub fn shared_mode() -> bool {
    std::env::var("SENTINEL_PROXY_SHARE_BACKEND").map_or(true, |v| v != "false")
}

/// The loopback address with the given port.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Returns a TCP port on 127.0.0.1 that is currently free and has not been
/// handed out before.
///
/// Ports are picked at random below the kernel's ephemeral range (so an
/// outgoing connection cannot grab the port between this call and the bind of
/// the server that uses it). Each handed-out port is remembered in a
/// process-wide set and reserved across processes with an advisory lock on a
/// file in the temporary directory, so tests running in parallel, in one
/// process or in several, never receive the same port.
pub fn free_port() -> u16 {
    let mut registry = PORTS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((low, high)) = safe_port_range() {
        let span = u32::from(high - low);
        let start = random_u64() % u64::from(span);
        for i in 0..u64::from(span) {
            let offset = u16::try_from((start + i) % u64::from(span)).unwrap_or(0);
            let port = low + offset;
            if registry.handed_out.contains(&port) || AVOIDED_PORTS.contains(&port) {
                continue;
            }
            let lock = match lock_port(port) {
                PortLock::Held(file) => Some(file),
                PortLock::Unavailable => None,
                PortLock::Busy => continue,
            };
            if !port_is_bindable(port) {
                continue;
            }
            registry.handed_out.insert(port);
            registry.locks.extend(lock);
            return port;
        }
    }
    // Fall back to ports chosen by the operating system.
    loop {
        let listener = TcpListener::bind(loopback(0)).expect("bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("local address of a bound listener")
            .port();
        if registry.handed_out.insert(port) {
            return port;
        }
    }
}

/// The port range `[low, high)` that lies below the ephemeral range.
fn safe_port_range() -> Option<(u16, u16)> {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_low > PORT_RANGE_LOW + 1_000 {
        Some((PORT_RANGE_LOW, ephemeral_low))
    } else {
        None
    }
}

enum PortLock {
    Held(File),
    /// Another process holds the port.
    Busy,
    /// Cross-process locking is not possible here; rely on the bind check.
    Unavailable,
}

fn lock_port(port: u16) -> PortLock {
    let dir = std::env::temp_dir().join("sentinel-proxy-test-ports");
    if fs::create_dir_all(&dir).is_err() {
        return PortLock::Unavailable;
    }
    let file = match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{port}.lock")))
    {
        Ok(file) => file,
        Err(_) => return PortLock::Unavailable,
    };
    match file.try_lock() {
        Ok(()) => PortLock::Held(file),
        Err(std::fs::TryLockError::WouldBlock) => PortLock::Busy,
        Err(std::fs::TryLockError::Error(_)) => PortLock::Unavailable,
    }
}

fn port_is_bindable(port: u16) -> bool {
    TcpListener::bind(loopback(port)).is_ok()
}

/// A random number from the standard library's per-process random keys.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Polls `cond` every [`POLL_INTERVAL`] until it returns `true` (then returns
/// `true`) or `timeout` has elapsed (then returns `false`). `cond` is always
/// evaluated at least once, and once more after the deadline.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// Async variant of [`eventually`]; sleeps with `tokio::time::sleep`.
pub async fn eventually_async(timeout: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// Polls `probe` until it returns `Some`, and returns that value. Panics,
/// naming `what`, if it has not within `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        let now = Instant::now();
        if now >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// Async variant of [`wait_for`].
pub async fn wait_for_async<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// Asserts that a condition becomes true within a timeout.
///
/// `assert_eventually!(timeout, condition)` or
/// `assert_eventually!(timeout, condition, "format {}", args)`; the condition
/// expression is re-evaluated every [`POLL_INTERVAL`].
#[allow(unused_macros)]
macro_rules! assert_eventually {
    ($timeout:expr, $cond:expr $(,)?) => {{
        let timeout: ::std::time::Duration = $timeout;
        if !$crate::support::eventually(timeout, || $cond) {
            panic!(
                "condition `{}` not met within {:?}",
                stringify!($cond),
                timeout
            );
        }
    }};
    ($timeout:expr, $cond:expr, $($arg:tt)+) => {{
        let timeout: ::std::time::Duration = $timeout;
        if !$crate::support::eventually(timeout, || $cond) {
            panic!(
                "condition `{}` not met within {:?}: {}",
                stringify!($cond),
                timeout,
                format_args!($($arg)+)
            );
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use assert_eventually;

/// Async variant of [`assert_eventually!`]: the condition may use `.await`.
/// Must be used inside an async context.
#[allow(unused_macros)]
macro_rules! assert_eventually_async {
    ($timeout:expr, $cond:expr $(,)?) => {{
        let timeout: ::std::time::Duration = $timeout;
        if !$crate::support::eventually_async(timeout, async || $cond).await {
            panic!(
                "condition `{}` not met within {:?}",
                stringify!($cond),
                timeout
            );
        }
    }};
    ($timeout:expr, $cond:expr, $($arg:tt)+) => {{
        let timeout: ::std::time::Duration = $timeout;
        if !$crate::support::eventually_async(timeout, async || $cond).await {
            panic!(
                "condition `{}` not met within {:?}: {}",
                stringify!($cond),
                timeout,
                format_args!($($arg)+)
            );
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use assert_eventually_async;

/// A `redis` crate client for a server on `addr`, authenticating with
/// `password` when given (RESP2).
pub fn redis_client(addr: SocketAddr, password: Option<&str>) -> ::redis::Client {
    use ::redis::IntoConnectionInfo;
    let mut settings = ::redis::RedisConnectionInfo::default();
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    let info = ::redis::ConnectionAddr::Tcp(addr.ip().to_string(), addr.port())
        .into_connection_info()
        .expect("connection info from a socket address")
        .set_redis_settings(settings);
    ::redis::Client::open(info).expect("redis client from connection info")
}

/// A synchronous connection to `addr` whose connect, read and write
/// operations each give up after `timeout`.
pub fn redis_conn_with_timeout(
    addr: SocketAddr,
    password: Option<&str>,
    timeout: Duration,
) -> ::redis::RedisResult<::redis::Connection> {
    let conn = redis_client(addr, password).get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Renders a simple reply value (bulk, simple or verbatim string, integer,
/// `OK`) as a string.
pub fn value_to_string(value: &::redis::Value) -> Option<String> {
    use ::redis::Value;
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".to_owned()),
        _ => None,
    }
}

/// Parses `key:value` lines as returned by `INFO`.
pub fn parse_info(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// Sends a signal (`"TERM"`, `"STOP"`, `"CONT"`, ...) to `pid` with the
/// `kill` utility. Only called with PIDs of children that have not been
/// reaped yet, so the PID cannot have been reused.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// The last `n` lines of the file at `path` (lossily decoded).
pub fn tail_lines(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(err) => format!("<cannot read {}: {err}>", path.display()),
    }
}

/// Prints the last `n` lines of each file to stderr under a header.
pub(crate) fn print_log_tails(title: &str, files: &[&Path], n: usize) {
    for file in files {
        let tail = tail_lines(file, n);
        if tail.trim().is_empty() {
            continue;
        }
        eprintln!(
            "----- {title}: last {n} lines of {} -----\n{tail}\n----- end of {} -----",
            file.display(),
            file.display()
        );
    }
}

/// Looks `name` up in the directories of `PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The Python interpreter that runs the redis-py clients in tests:
/// `SENTINEL_PROXY_TEST_PYTHON` when set (scripts/test.sh points it at a venv
/// with a current redis-py from PyPI), otherwise the first of Debian's
/// `/usr/bin/python3` (which Debian's python3-redis serves, whatever python3
/// comes first on the PATH) and `python3` that can `import redis`.
pub fn python() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("SENTINEL_PROXY_TEST_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import redis"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from)
        .ok_or_else(|| {
            "no python3 with the redis module: run scripts/test.sh, or apt-get install \
             python3-redis"
                .to_owned()
        })
}

/// Pipelined writers for failover tests: `redis-benchmark -t incr -c 10 -P 16
/// -n COUNT` against `port`, in a thread (bounded to 120 s); join it for the
/// output.
pub fn pipelined_incrs(port: u16, count: u64) -> std::thread::JoinHandle<std::process::Output> {
    let mut bench = Command::new("redis-benchmark");
    bench.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "incr"]);
    bench.args(["-c", "10", "-P", "16", "-q", "-n", &count.to_string()]);
    std::thread::spawn(move || run_bounded(bench, b"", Duration::from_secs(120)))
}

/// A finished command's stdout and stderr, as text, for assertion messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `command` to completion with a deadline, feeding it `stdin` and
/// collecting its output; kills it (by its PID) and panics if it runs over.
pub fn run_bounded(mut command: Command, stdin: &[u8], deadline: Duration) -> std::process::Output {
    use std::io::{Read, Write};
    use std::process::Stdio;

    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    std::process::Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// A process a test started by hand (not a server the harness manages);
/// killed by PID when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
