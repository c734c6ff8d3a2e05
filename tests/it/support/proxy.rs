//! The `sentinel-proxy` binary under test.
//!
//! [`Proxy::spawn`] starts it listening on a free loopback port with debug
//! logging, captures its stdout and stderr in a file and waits until the
//! listen port accepts connections. [`Proxy::command`] gives a bare
//! `Command` for command-line tests that expect failures.

use std::ffi::OsString;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::client::RespClient;
use super::{free_port, loopback, print_log_tails, redis_client, send_signal};

/// How long the proxy may take to accept connections after starting.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Number of log lines printed when a test panics.
const LOG_TAIL_LINES: usize = 200;

/// Path of the proxy binary: `SENTINEL_PROXY_BIN` if set, else the binary
/// Cargo built for this test run.
pub fn binary_path() -> PathBuf {
    if let Some(path) = std::env::var_os("SENTINEL_PROXY_BIN") {
        return PathBuf::from(path);
    }
    if let Some(path) = option_env!("CARGO_BIN_EXE_sentinel-proxy") {
        return PathBuf::from(path);
    }
    // Cargo places test executables in `target/<profile>/deps`, next to
    // which the binaries live.
    let exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable inside target/<profile>/deps");
    profile_dir.join("sentinel-proxy")
}

/// Options for starting the proxy.
#[derive(Clone, Debug, Default)]
pub struct ProxyBuilder {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl ProxyBuilder {
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the proxy process.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the proxy; adds `--listen 127.0.0.1:<free port>` unless the
    /// arguments contain `--listen`, and `--log-level debug` unless they
    /// contain `--log-level`. Waits until the listen address accepts TCP
    /// connections; panics with the proxy's output if it exits first or
    /// does not within [`START_TIMEOUT`].
    pub fn spawn(self) -> Proxy {
        let dir = tempfile::Builder::new()
            .prefix("sentinel-proxy-")
            .tempdir()
            .expect("create temporary directory for the proxy");
        let mut args = self.args;
        let listen = match flag_value(&args, "--listen") {
            Some(value) => value
                .parse::<SocketAddr>()
                .unwrap_or_else(|err| panic!("--listen {value:?} is not an ip:port: {err}")),
            None => {
                let addr = loopback(free_port());
                args.push("--listen".into());
                args.push(addr.to_string().into());
                addr
            }
        };
        // The sentinel core (any proxy not following Sentinels) serves the
        // Sentinel protocol; give it a free port instead of the default 26379.
        let sentinel = if !has_flag(&args, "--sentinel") && !has_flag(&args, "--config") {
            match flag_value(&args, "--sentinel-listen") {
                Some(value) => value.parse::<SocketAddr>().ok(),
                None => {
                    let addr = loopback(free_port());
                    args.push("--sentinel-listen".into());
                    args.push(addr.to_string().into());
                    Some(addr)
                }
            }
        } else {
            None
        };
        // The metrics endpoint too: a free port instead of the default 9121.
        let metrics = if has_flag(&args, "--config") {
            None
        } else {
            match flag_value(&args, "--metrics-listen") {
                Some(value) => value.parse::<SocketAddr>().ok(),
                None => {
                    let addr = loopback(free_port());
                    args.push("--metrics-listen".into());
                    args.push(addr.to_string().into());
                    Some(addr)
                }
            }
        };
        if !has_flag(&args, "--log-level") {
            args.push("--log-level".into());
            args.push("debug".into());
        }

        let log_path = dir.path().join("proxy.log");
        let output = File::create(&log_path).expect("create proxy log file");
        let stderr = output.try_clone().expect("duplicate log file handle");
        let mut command = Proxy::command();
        command
            .args(&args)
            .env("NO_COLOR", "1")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary_path().display()));

        let mut proxy = Proxy {
            child: Some(child),
            exit_status: None,
            addr: listen,
            sentinel,
            metrics,
            args,
            log_path,
            dir,
        };
        proxy.wait_ready();
        proxy
    }
}

fn has_flag(args: &[OsString], flag: &str) -> bool {
    let prefix = format!("{flag}=");
    args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&prefix))
    })
}

fn flag_value(args: &[OsString], flag: &str) -> Option<String> {
    let prefix = format!("{flag}=");
    let mut iter = args.iter().filter_map(|a| a.to_str());
    while let Some(arg) = iter.next() {
        if arg == flag {
            return iter.next().map(str::to_owned);
        }
        if let Some(value) = arg.strip_prefix(&prefix) {
            return Some(value.to_owned());
        }
    }
    None
}

/// A running proxy process started by the test harness. Dropping it kills
/// the process (SIGKILL) if it is still running; if the thread is
/// panicking, the proxy's output is printed to stderr first.
pub struct Proxy {
    child: Option<Child>,
    exit_status: Option<ExitStatus>,
    addr: SocketAddr,
    sentinel: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    args: Vec<OsString>,
    log_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Options for starting the proxy.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// Starts the proxy with `args` (see [`ProxyBuilder::spawn`]).
    pub fn spawn(args: &[&str]) -> Proxy {
        Self::builder().args(args.iter().copied()).spawn()
    }

    /// A `Command` for the proxy binary without any arguments, for tests
    /// that check command-line handling and exit codes.
    pub fn command() -> Command {
        Command::new(binary_path())
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The sentinel port, when the proxy runs the sentinel core.
    pub fn sentinel_addr(&self) -> SocketAddr {
        self.sentinel
            .expect("this proxy follows Sentinels: it has no sentinel port")
    }

    /// The HTTP endpoint (/metrics /healthz /readyz /status).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
            .expect("this proxy was started from a config file: its metrics port is unknown")
    }

    /// `GET path` on the HTTP endpoint: the status code and the body.
    pub fn http_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect_timeout(&self.metrics_addr(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let code = response
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((code, body))
    }

    /// The arguments the proxy was started with.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// PID of the process (which may have exited since).
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("the proxy process was never started"),
        }
    }

    /// The proxy's working directory (holds its log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the proxy wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Whether the log contains `needle` within `timeout`.
    pub fn log_contains_within(&self, needle: &str, timeout: Duration) -> bool {
        super::eventually(timeout, || self.log().contains(needle))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Sends SIGTERM (a graceful shutdown request). Does nothing if the
    /// process has already exited.
    pub fn sigterm(&mut self) {
        self.signal("TERM");
    }

    /// Sends SIGINT. Does nothing if the process has already exited.
    pub fn sigint(&mut self) {
        self.signal("INT");
    }

    /// Sends the named signal (`"TERM"`, `"HUP"`, ...) unless the process
    /// has already exited.
    pub fn signal(&mut self, signal: &str) {
        if self.is_running() {
            send_signal(self.pid(), signal);
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(child) = &mut self.child
            && matches!(child.try_wait(), Ok(None))
        {
            // SIGKILL by PID; fails only if the child has already exited.
            let _ = child.kill();
            self.exit_status = child.wait().ok();
        }
    }

    /// Waits up to `timeout` for the process to exit; returns its exit
    /// status, or `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A raw RESP connection to the proxy.
    pub fn connect(&self) -> RespClient {
        RespClient::connect(self.addr)
    }

    /// A `redis` crate client for the proxy, authenticating with `password`
    /// if given.
    pub fn redis_client(&self, password: Option<&str>) -> ::redis::Client {
        redis_client(self.addr, password)
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none()
            && let Some(child) = &mut self.child
        {
            self.exit_status = child.try_wait().ok().flatten();
        }
        self.exit_status
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait() {
                panic!(
                    "the proxy exited during startup with {status}; args {:?} \
                     (its output is printed below)",
                    self.args
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the proxy did not accept connections on {} within {START_TIMEOUT:?}; \
                     args {:?} (its output is printed below)",
                    self.addr, self.args
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let title = format!("sentinel-proxy on {} (args {:?})", self.addr, self.args);
            print_log_tails(&title, &[&self.log_path], LOG_TAIL_LINES);
        }
    }
}
