//! `sentinel-proxy demo`: a local lab on loopback, one command.
//!
//! Starts 1 master and 2 replicas (`redis-server` child processes) and 3
//! proxies (this binary, running the sentinel core as a voting group), prints
//! their addresses, and prints every Sentinel event as it happens. `--chaos N`
//! kills the master every N seconds (and restarts it a few seconds later, so
//! the proxies turn it into a replica); `--writer` runs a client that INCRs a
//! counter through the first proxy and prints, each second, its successes and
//! any error. Ctrl-C (or `--duration`) stops every child it started, by PID,
//! and removes the lab directory.
//!
//! Everything listens on 127.0.0.1; nothing is contacted elsewhere.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::connect::Dialer;
use crate::backend::probe::{Probe, ProbeError};
use crate::config::Credentials;
use crate::resp::value::{self, OwnedFrame};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Kill the master every this many seconds.
    pub chaos: Option<u64>,
    /// Run a writer through the first proxy.
    pub writer: bool,
    /// Stop by itself after this many seconds.
    pub duration: Option<u64>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `redis-server` is not installed.
    #[error(
        "redis-server not found in PATH; install it first, e.g. `sudo apt-get install redis-server` (Debian, Ubuntu) or `brew install redis` (macOS)"
    )]
    NoRedis,
    /// Something could not be started.
    #[error("{0}")]
    Start(String),
}

/// One child process of the lab.
struct Process {
    name: String,
    child: Option<Child>,
    command: Vec<String>,
    log: PathBuf,
}

impl Process {
    fn start(
        name: &str,
        program: &Path,
        args: Vec<String>,
        log: PathBuf,
    ) -> Result<Process, DemoError> {
        let mut command = vec![program.display().to_string()];
        command.extend(args);
        let mut process = Process {
            name: name.to_owned(),
            child: None,
            command,
            log,
        };
        process.spawn()?;
        Ok(process)
    }

    fn spawn(&mut self) -> Result<(), DemoError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| DemoError::Start(format!("{}: {e}", self.log.display())))?;
        let err = log
            .try_clone()
            .map_err(|e| DemoError::Start(format!("{}: {e}", self.log.display())))?;
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| DemoError::Start(format!("cannot start {}: {e}", self.name)))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, as a crash would.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL after two seconds.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        for _ in 0..20 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A node or proxy and its ports.
struct Lab {
    dir: PathBuf,
    redis: Vec<(SocketAddr, Process)>,
    proxies: Vec<(SocketAddr, SocketAddr, SocketAddr, Process)>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, _, _, p) in &mut self.proxies {
            p.stop();
        }
        for (_, p) in &mut self.redis {
            p.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_addr() -> Result<SocketAddr, DemoError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| DemoError::Start(format!("no free port on 127.0.0.1: {e}")))
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Runs the demo until Ctrl-C or `--duration`.
pub fn run(options: Options) -> Result<(), DemoError> {
    let redis_server = find_in_path("redis-server").ok_or(DemoError::NoRedis)?;
    let me = std::env::current_exe().map_err(|e| DemoError::Start(e.to_string()))?;
    let dir = std::env::temp_dir().join(format!("sentinel-proxy-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| DemoError::Start(format!("{}: {e}", dir.display())))?;
    let mut lab = Lab {
        dir: dir.clone(),
        redis: Vec::new(),
        proxies: Vec::new(),
    };
    let master = free_addr()?;
    for i in 0..3 {
        let addr = if i == 0 { master } else { free_addr()? };
        let node_dir = dir.join(format!("redis-{}", addr.port()));
        std::fs::create_dir_all(&node_dir).map_err(|e| DemoError::Start(e.to_string()))?;
        // A config file, so the proxies' CONFIG REWRITE keeps a node's role
        // across the restarts --chaos does.
        let mut conf = format!(
            "port {}\nbind 127.0.0.1\nsave \"\"\nappendonly no\nrepl-diskless-sync-delay 0\ndir {}\n",
            addr.port(),
            node_dir.display()
        );
        if i > 0 {
            conf.push_str(&format!("replicaof 127.0.0.1 {}\n", master.port()));
        }
        let conf_path = node_dir.join("redis.conf");
        std::fs::write(&conf_path, conf).map_err(|e| DemoError::Start(e.to_string()))?;
        let args = vec![conf_path.display().to_string()];
        let log = node_dir.join("redis.log");
        let name = format!("redis-server {addr}");
        lab.redis
            .push((addr, Process::start(&name, &redis_server, args, log)?));
    }
    let ports: Vec<(SocketAddr, SocketAddr, SocketAddr)> = (0..3)
        .map(|_| Ok((free_addr()?, free_addr()?, free_addr()?)))
        .collect::<Result<_, DemoError>>()?;
    for (i, (client, sentinel, metrics)) in ports.iter().enumerate() {
        let mut args = vec![
            "--master".to_owned(),
            master.to_string(),
            "--listen".to_owned(),
            client.to_string(),
            "--sentinel-listen".to_owned(),
            sentinel.to_string(),
            "--metrics-listen".to_owned(),
            metrics.to_string(),
            "--down-after-ms".to_owned(),
            "1000".to_owned(),
            "--failover-timeout-ms".to_owned(),
            "10000".to_owned(),
            "--hold-timeout-ms".to_owned(),
            "30000".to_owned(),
            "--data-dir".to_owned(),
            dir.join(format!("proxy-{}", i + 1)).display().to_string(),
        ];
        for (_, peer, _) in ports.iter().filter(|p| p.1 != *sentinel) {
            args.extend(["--peer".to_owned(), peer.to_string()]);
        }
        let log = dir.join(format!("proxy-{}.log", i + 1));
        let name = format!("proxy {}", i + 1);
        lab.proxies.push((
            *client,
            *sentinel,
            *metrics,
            Process::start(&name, &me, args, log)?,
        ));
    }
    print_table(&lab);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DemoError::Start(e.to_string()))?;
    runtime.block_on(supervise(&mut lab, options));
    println!(
        "stopping the lab (every process it started) and removing {}",
        dir.display()
    );
    drop(lab);
    Ok(())
}

fn print_table(lab: &Lab) {
    println!(
        "sentinel-proxy demo: a sidecar group of 3 proxies in front of 1 master and 2 replicas"
    );
    println!();
    println!(
        "  {:<10} {:<18} {:<18} {:<18}",
        "process", "clients", "sentinel port", "metrics"
    );
    for (i, (client, sentinel, metrics, _)) in lab.proxies.iter().enumerate() {
        println!(
            "  {:<10} {:<18} {:<18} {:<18}",
            format!("proxy {}", i + 1),
            client.to_string(),
            sentinel.to_string(),
            format!("http://{metrics}/metrics")
        );
    }
    for (i, (addr, _)) in lab.redis.iter().enumerate() {
        let role = if i == 0 { "master" } else { "replica" };
        println!("  {:<10} {:<18}", role, addr.to_string());
    }
    if let Some((client, sentinel, metrics, _)) = lab.proxies.first() {
        println!();
        println!("try:   redis-cli -p {} incr hits", client.port());
        println!(
            "       redis-cli -p {} sentinel master mymaster",
            sentinel.port()
        );
        println!(
            "       redis-cli -p {} sentinel failover mymaster",
            sentinel.port()
        );
        println!("       curl -s http://{metrics}/status");
    }
    println!(
        "lab directory: {} (logs); Ctrl-C stops everything",
        lab.dir.display()
    );
    println!();
}

/// Prints events, runs the writer and the chaos, until Ctrl-C or the duration.
async fn supervise(lab: &mut Lab, options: Options) {
    let Some((client, sentinel, _, _)) = lab.proxies.first().map(|p| (p.0, p.1, p.2, ())) else {
        return;
    };
    tokio::spawn(print_events(sentinel));
    let ok = Arc::new(AtomicU64::new(0));
    if options.writer {
        tokio::spawn(write_forever(client, Arc::clone(&ok)));
    }
    let started = Instant::now();
    let deadline = options.duration.map(|s| started + Duration::from_secs(s));
    let mut next_chaos = options
        .chaos
        .map(|s| started + Duration::from_secs(s.max(5)));
    let mut restart: Option<(Instant, usize)> = None;
    loop {
        let tick = tokio::time::sleep(Duration::from_millis(250));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick => {}
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some((at, index)) = restart
            && now >= at
        {
            let (addr, process) = &mut lab.redis[index];
            println!(
                "{}  chaos: restarting {addr} (it comes back claiming master)",
                clock()
            );
            if let Err(error) = process.spawn() {
                println!("chaos: {error}");
            }
            restart = None;
        }
        if let (Some(at), Some(every)) = (next_chaos, options.chaos)
            && now >= at
            && restart.is_none()
        {
            if let Some(master) = current_master(sentinel).await
                && let Some(index) = lab.redis.iter().position(|(a, _)| *a == master)
            {
                println!("{}  chaos: kill -9 of the master {master}", clock());
                lab.redis[index].1.kill9();
                restart = Some((now + Duration::from_secs((every / 2).clamp(3, 10)), index));
            }
            next_chaos = Some(now + Duration::from_secs(every.max(5)));
        }
    }
    if options.writer {
        println!(
            "writer: {} successful INCRs in total",
            ok.load(Ordering::Relaxed)
        );
    }
}

fn clock() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

async fn current_master(sentinel: SocketAddr) -> Option<SocketAddr> {
    let mut probe = Probe::connect(
        &Dialer::default(),
        sentinel,
        &Credentials::default(),
        Duration::from_secs(1),
    )
    .await
    .ok()?;
    let reply = probe
        .call(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
        .await
        .ok()?;
    let OwnedFrame::Array(items) = reply else {
        return None;
    };
    let ip = items.first().and_then(value::as_str)?;
    let port = items.get(1).and_then(value::as_str)?.parse().ok()?;
    crate::sentinel::node::address(ip, port)
}

/// Prints every Sentinel event the first proxy publishes.
async fn print_events(sentinel: SocketAddr) {
    loop {
        if let Ok(mut probe) = Probe::connect(
            &Dialer::default(),
            sentinel,
            &Credentials::default(),
            Duration::from_secs(1),
        )
        .await
            && probe.send(&["PSUBSCRIBE", "*"]).await.is_ok()
        {
            while let Ok(frame) = probe.read_frame().await {
                let OwnedFrame::Array(items) = frame else {
                    continue;
                };
                if let [kind, _, channel, message] = items.as_slice()
                    && value::as_str(kind) == Some("pmessage")
                {
                    let channel = value::as_str(channel).unwrap_or("?");
                    let message = value::as_str(message).unwrap_or("?");
                    println!("{}  event  {channel} {message}", clock());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// INCRs `demo:counter` through the proxy every 10 ms; prints a line a second.
async fn write_forever(proxy: SocketAddr, total_ok: Arc<AtomicU64>) {
    let mut conn: Option<Probe> = None;
    let mut second = Instant::now();
    let (mut ok, mut errors) = (0u64, Vec::<String>::new());
    loop {
        if conn.is_none() {
            conn = Probe::connect(
                &Dialer::default(),
                proxy,
                &Credentials::default(),
                Duration::from_secs(30),
            )
            .await
            .ok();
        }
        if let Some(c) = conn.as_mut() {
            match c.call(&["INCR", "demo:counter"]).await {
                Ok(_) => {
                    ok += 1;
                    total_ok.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    errors.push(describe(&error));
                    conn = None;
                }
            }
        }
        if second.elapsed() >= Duration::from_secs(1) {
            let detail = if errors.is_empty() {
                String::new()
            } else {
                format!(", errors: {}", errors.join("; "))
            };
            println!(
                "{}  writer {ok} ok/s, {} errors{detail}",
                clock(),
                errors.len()
            );
            ok = 0;
            errors.clear();
            second = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn describe(error: &ProbeError) -> String {
    match error {
        ProbeError::Refused(message) => message.clone(),
        other => other.to_string(),
    }
}
