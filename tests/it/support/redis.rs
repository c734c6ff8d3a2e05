//! `redis-server` processes for tests.
//!
//! Each server runs from a config file in its own temporary directory,
//! listens on 127.0.0.1 on a port from [`free_port`](super::free_port),
//! keeps no data on disk (`save ""`, `appendonly no`) and logs to
//! `redis.log` in that directory. The binary is `redis-server` from `PATH`
//! unless `REDIS_SERVER_BIN` names another one.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client::RespClient;
use super::{free_port, loopback, print_log_tails, redis_client, redis_conn_with_timeout};

/// How long a starting server may take to answer `PING`.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeout of connections used by the query helpers; short so that polling
/// a stopped or frozen process stays bounded.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Number of log lines printed when a test panics.
const LOG_TAIL_LINES: usize = 50;

/// Attempts at finding a port when the chosen one turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

/// Replication role of a server as reported by `ROLE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Master {
        /// Connected replicas as `ip:port` they announced.
        replicas: Vec<SocketAddr>,
    },
    Replica {
        master: SocketAddr,
        /// `connect`, `connecting`, `sync` or `connected`.
        state: String,
    },
    Sentinel,
}

impl Role {
    pub fn is_master(&self) -> bool {
        matches!(self, Role::Master { .. })
    }

    pub fn is_replica(&self) -> bool {
        matches!(self, Role::Replica { .. })
    }

    /// The master this server replicates from, if it is a replica.
    pub fn master(&self) -> Option<SocketAddr> {
        match self {
            Role::Replica { master, .. } => Some(*master),
            _ => None,
        }
    }
}

/// Options for a [`RedisServer`].
#[derive(Clone, Debug, Default)]
pub struct RedisServerBuilder {
    replica_of: Option<SocketAddr>,
    requirepass: Option<String>,
    masterauth: Option<String>,
    config: Vec<String>,
    args: Vec<String>,
    tls: Option<RedisTls>,
}

/// A server's TLS files: with them it listens on a `tls-port` beside its
/// plain port, with `tls-replication yes` (a replica reaches its master over
/// TLS and announces its TLS port, so a master's `INFO` lists TLS ports)
/// and client certificates required (`tls-auth-clients yes`). The plain
/// port stays for the harness's own checks.
#[derive(Clone, Debug)]
pub struct RedisTls {
    /// The server's certificate and key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA clients' and the master's certificates are checked against.
    pub ca: PathBuf,
    /// The certificate a replica shows its master.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl RedisServerBuilder {
    /// Starts the server as a replica of `master`.
    pub fn replica_of(mut self, master: SocketAddr) -> Self {
        self.replica_of = Some(master);
        self
    }

    /// Requires clients to authenticate with `password`. Also sets
    /// `masterauth` to the same password unless [`masterauth`](Self::masterauth)
    /// is given, so replicas of a protected master work out of the box.
    pub fn requirepass(mut self, password: impl Into<String>) -> Self {
        self.requirepass = Some(password.into());
        self
    }

    /// Password this server uses when replicating from its master.
    pub fn masterauth(mut self, password: impl Into<String>) -> Self {
        self.masterauth = Some(password.into());
        self
    }

    /// Serves TLS on a second port with `files` (see [`RedisTls`]).
    pub fn tls(mut self, files: RedisTls) -> Self {
        self.tls = Some(files);
        self
    }

    /// Adds a config file line, such as `"maxmemory 10mb"`.
    pub fn config(mut self, line: impl Into<String>) -> Self {
        self.config.push(line.into());
        self
    }

    /// Adds a command-line argument passed after the config file path, such
    /// as `"--loglevel"`, `"verbose"`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts the server and waits until it answers `PING`.
    pub fn spawn(self) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("sentinel-proxy-redis-")
            .tempdir()
            .expect("create temporary directory for redis-server");
        let config_path = dir.path().join("redis.conf");
        let program = std::env::var_os("REDIS_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let mut args: Vec<OsString> = vec![config_path.clone().into()];
        args.extend(self.args.iter().map(OsString::from));

        let mut process = ServerProcess::new(
            "redis-server",
            program,
            args,
            dir,
            "redis.log",
            self.requirepass.clone(),
        );
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            process.port = port;
            let tls_port = self.tls.as_ref().map(|_| free_port());
            let config = self.render_config(port, tls_port, process.dir());
            fs::write(&config_path, config).expect("write redis.conf");
            match process.start() {
                Ok(()) => {
                    return RedisServer {
                        process,
                        password: self.requirepass,
                        tls_port,
                    };
                }
                Err(StartError::AddrInUse) if attempt < PORT_ATTEMPTS => continue,
                Err(err) => panic!("{err}"),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    fn render_config(&self, port: u16, tls_port: Option<u16>, dir: &Path) -> String {
        let mut lines = vec![
            format!("port {port}"),
            "bind 127.0.0.1".to_owned(),
            "protected-mode no".to_owned(),
            "daemonize no".to_owned(),
            "save \"\"".to_owned(),
            "appendonly no".to_owned(),
            // Replicas start syncing at once instead of after the default
            // five second wait for more replicas.
            "repl-diskless-sync-delay 0".to_owned(),
            format!("dir {}", quote(dir)),
            format!("logfile {}", quote(&dir.join("redis.log"))),
        ];
        if let Some(master) = self.replica_of {
            lines.push(format!("replicaof {} {}", master.ip(), master.port()));
        }
        if let (Some(tls), Some(tls_port)) = (&self.tls, tls_port) {
            lines.extend([
                format!("tls-port {tls_port}"),
                format!("tls-cert-file {}", quote(&tls.cert)),
                format!("tls-key-file {}", quote(&tls.key)),
                format!("tls-ca-cert-file {}", quote(&tls.ca)),
                format!("tls-client-cert-file {}", quote(&tls.client_cert)),
                format!("tls-client-key-file {}", quote(&tls.client_key)),
                "tls-replication yes".to_owned(),
                "tls-auth-clients yes".to_owned(),
            ]);
        }
        if let Some(password) = &self.requirepass {
            lines.push(format!("requirepass {password}"));
        }
        if let Some(password) = self.masterauth.as_ref().or(self.requirepass.as_ref()) {
            lines.push(format!("masterauth {password}"));
        }
        lines.extend(self.config.iter().cloned());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }
}

/// Quotes a path for a Redis config file.
pub(crate) fn quote(path: &Path) -> String {
    format!("\"{}\"", path.display())
}

/// A running (or killed) `redis-server` started by the test harness.
///
/// Dropping the handle kills the process with SIGKILL and removes its
/// directory; if the thread is panicking, the tail of its log is printed to
/// stderr first.
pub struct RedisServer {
    process: ServerProcess,
    password: Option<String>,
    tls_port: Option<u16>,
}

impl RedisServer {
    /// Options for a new server.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// Starts a standalone master with default options.
    pub fn spawn() -> RedisServer {
        Self::builder().spawn()
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.process.port)
    }

    pub fn port(&self) -> u16 {
        self.process.port
    }

    /// The address Sentinels and the proxy know the server by: its TLS
    /// port when it serves TLS (its replicas announce that one too), else
    /// its plain port.
    pub fn known_addr(&self) -> SocketAddr {
        self.tls_port.map_or_else(|| self.addr(), loopback)
    }

    /// `127.0.0.1:<tls-port>`. Panics if the server was not given TLS files.
    pub fn tls_addr(&self) -> SocketAddr {
        loopback(self.tls_port.expect("a server started with .tls(…)"))
    }

    /// PID of the running process. Panics if it is not running.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether the process has been started and has not exited.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// The password clients must use, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's working directory (config file, log).
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The content of the server's log file.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Connections on this server other than the control links of a
    /// sentinel core or a Sentinel (named `sentinel-…`): the clients and the
    /// proxy's data-path connections. `None` if it cannot be asked.
    pub fn data_clients(&self) -> Option<usize> {
        let list = self.cmd(&["CLIENT", "LIST"]).ok()?;
        let text = super::value_to_string(&list)?;
        Some(
            text.lines()
                .filter(|line| !line.contains(" name=sentinel-"))
                .count(),
        )
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// Starts the process again with the same config file and arguments on
    /// the same port, and waits until it answers `PING`. The config file
    /// keeps any `CONFIG REWRITE` done since (Sentinel rewrites the config
    /// of nodes it reconfigures), so a master killed with
    /// [`kill9`](Self::kill9) comes back still configured as a master. A
    /// running process is killed first.
    pub fn restart(&mut self) {
        self.process.kill9();
        if let Err(err) = self.process.start() {
            panic!("restart: {err}");
        }
    }

    /// Suspends the process (SIGSTOP): it keeps its connections and port but
    /// stops answering, like a hung or partitioned node.
    pub fn freeze(&mut self) {
        self.process.signal("STOP");
    }

    /// Resumes a process suspended by [`freeze`](Self::freeze) (SIGCONT).
    pub fn unfreeze(&mut self) {
        self.process.signal("CONT");
    }

    /// A `redis` crate client for this server (with its password).
    pub fn client(&self) -> ::redis::Client {
        redis_client(self.addr(), self.password())
    }

    /// A synchronous connection with 5 s connect/read/write timeouts.
    pub fn conn(&self) -> ::redis::Connection {
        redis_conn_with_timeout(self.addr(), self.password(), Duration::from_secs(5))
            .unwrap_or_else(|err| panic!("connect to redis-server {}: {err}", self.addr()))
    }

    /// A multiplexed asynchronous (tokio) connection.
    pub async fn async_conn(&self) -> ::redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|err| panic!("connect to redis-server {}: {err}", self.addr()))
    }

    /// Runs one command on a fresh short-timeout connection.
    pub fn cmd(&self, args: &[&str]) -> ::redis::RedisResult<::redis::Value> {
        let mut conn = redis_conn_with_timeout(self.addr(), self.password(), QUERY_TIMEOUT)?;
        let mut cmd = ::redis::cmd(args.first().copied().unwrap_or("PING"));
        for arg in args.iter().skip(1) {
            cmd.arg(*arg);
        }
        cmd.query(&mut conn)
    }

    /// `INFO <section>` parsed into key/value pairs.
    pub fn info(&self, section: &str) -> ::redis::RedisResult<HashMap<String, String>> {
        let mut conn = redis_conn_with_timeout(self.addr(), self.password(), QUERY_TIMEOUT)?;
        let text: String = ::redis::cmd("INFO").arg(section).query(&mut conn)?;
        Ok(super::parse_info(&text))
    }

    /// The server's replication role (`ROLE`).
    pub fn role(&self) -> ::redis::RedisResult<Role> {
        let mut conn = redis_conn_with_timeout(self.addr(), self.password(), QUERY_TIMEOUT)?;
        let value: ::redis::Value = ::redis::cmd("ROLE").query(&mut conn)?;
        parse_role(&value).ok_or_else(|| {
            ::redis::RedisError::from((
                ::redis::ErrorKind::UnexpectedReturnType,
                "unexpected ROLE reply",
                format!("{value:?}"),
            ))
        })
    }

    /// Whether this server is a replica whose link to its master is up
    /// (`master_link_status:up`).
    pub fn master_link_up(&self) -> bool {
        self.info("replication")
            .map(|info| info.get("master_link_status").map(String::as_str) == Some("up"))
            .unwrap_or(false)
    }

    /// Makes this server a replica of `master` (`REPLICAOF`), or a master
    /// with `None` (`REPLICAOF NO ONE`).
    pub fn replicaof(&self, master: Option<SocketAddr>) -> ::redis::RedisResult<()> {
        let (host, port) = match master {
            Some(addr) => (addr.ip().to_string(), addr.port().to_string()),
            None => ("NO".to_owned(), "ONE".to_owned()),
        };
        self.cmd(&["REPLICAOF", &host, &port]).map(|_| ())
    }
}

/// Parses a `ROLE` reply.
pub(crate) fn parse_role(value: &::redis::Value) -> Option<Role> {
    use super::value_to_string as s;
    let ::redis::Value::Array(items) = value else {
        return None;
    };
    match s(items.first()?)?.as_str() {
        "master" => {
            let mut replicas = Vec::new();
            if let Some(::redis::Value::Array(entries)) = items.get(2) {
                for entry in entries {
                    if let ::redis::Value::Array(fields) = entry {
                        let ip = s(fields.first()?)?;
                        let port = s(fields.get(1)?)?;
                        replicas.push(format!("{ip}:{port}").parse().ok()?);
                    }
                }
            }
            Some(Role::Master { replicas })
        }
        "slave" | "replica" => {
            let ip = s(items.get(1)?)?;
            let port = s(items.get(2)?)?;
            Some(Role::Replica {
                master: format!("{ip}:{port}").parse().ok()?,
                state: s(items.get(3)?)?,
            })
        }
        "sentinel" => Some(Role::Sentinel),
        _ => None,
    }
}

/// Why a server process did not come up.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The port was taken by the time the server tried to bind it.
    AddrInUse,
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::AddrInUse => f.write_str("address already in use"),
            StartError::Failed(msg) => f.write_str(msg),
        }
    }
}

/// A server process (`redis-server` or `redis-sentinel`) owned by the
/// harness: spawning, readiness, SIGKILL, restart and log dumping.
pub(crate) struct ServerProcess {
    name: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    pub(crate) port: u16,
    password: Option<String>,
    dir: tempfile::TempDir,
    log_name: &'static str,
    child: Option<Child>,
}

impl ServerProcess {
    pub(crate) fn new(
        name: &'static str,
        program: PathBuf,
        args: Vec<OsString>,
        dir: tempfile::TempDir,
        log_name: &'static str,
        password: Option<String>,
    ) -> ServerProcess {
        ServerProcess {
            name,
            program,
            args,
            port: 0,
            password,
            dir,
            log_name,
            child: None,
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.path().join(self.log_name)
    }

    /// Standard output and error of the process (startup errors that happen
    /// before the log file is opened end up here).
    pub(crate) fn output_path(&self) -> PathBuf {
        self.dir.path().join("output.log")
    }

    pub(crate) fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    fn describe(&self) -> String {
        format!("{} on 127.0.0.1:{}", self.name, self.port)
    }

    pub(crate) fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("{} is not running", self.describe()),
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Spawns the process and waits until it answers `PING` and reports its
    /// own PID in `INFO server`, which proves that the answering server is
    /// this process and not something else on the port.
    pub(crate) fn start(&mut self) -> Result<(), StartError> {
        assert!(self.child.is_none(), "{} already started", self.describe());
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.output_path())
            .expect("open process output file");
        let stderr = output.try_clone().expect("duplicate output file handle");
        let child = Command::new(&self.program)
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run {} ({err}); install redis-server and redis-sentinel \
                     (scripts/test.sh does) or set REDIS_SERVER_BIN / REDIS_SENTINEL_BIN",
                    self.program.display()
                )
            });
        let pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = format!(
                    "{}\n{}",
                    super::tail_lines(&self.output_path(), LOG_TAIL_LINES),
                    super::tail_lines(&self.log_path(), LOG_TAIL_LINES)
                );
                if log.contains("Address already in use") {
                    return Err(StartError::AddrInUse);
                }
                return Err(StartError::Failed(format!(
                    "{} exited during startup with {status}:\n{log}",
                    self.describe()
                )));
            }
            if self.answers_ping(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(StartError::Failed(format!(
                    "{} did not answer PING within {START_TIMEOUT:?}:\n{}",
                    self.describe(),
                    super::tail_lines(&self.log_path(), LOG_TAIL_LINES)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self, pid: u32) -> bool {
        let Ok(mut client) = RespClient::try_connect(loopback(self.port), QUERY_TIMEOUT) else {
            return false;
        };
        if let Some(password) = &self.password {
            client.send_command(&["AUTH", password]);
            if !matches!(client.try_read_reply(), Ok(reply) if reply.starts_with(b"+OK")) {
                return false;
            }
        }
        client.send_command(&["PING"]);
        if !matches!(client.try_read_reply(), Ok(reply) if reply == b"+PONG\r\n") {
            return false;
        }
        client.send_command(&["INFO", "server"]);
        let Ok(reply) = client.try_read_reply() else {
            return false;
        };
        let text = String::from_utf8_lossy(&reply);
        super::parse_info(&text).get("process_id") == Some(&pid.to_string())
    }

    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL by PID; fails only if the child has already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn signal(&mut self, signal: &str) {
        assert!(self.is_running(), "{} is not running", self.describe());
        super::send_signal(self.pid(), signal);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let title = format!("{} (dir {})", self.describe(), self.dir.path().display());
            print_log_tails(
                &title,
                &[&self.output_path(), &self.log_path()],
                LOG_TAIL_LINES,
            );
        }
    }
}
