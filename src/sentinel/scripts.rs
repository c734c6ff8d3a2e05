//! Sentinel's two hooks: a notification script called with
//! `<event-type> <event-description>` for every warning-level event, and a
//! client-reconfig script called with
//! `<master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>` when
//! the master changes (`role` is `leader` or `observer`, `state` is `start`).
//!
//! Scripts run as child processes on the control thread's runtime, never on
//! the data path, with Sentinel's limits, for the whole process: at most
//! [`MAX_RUNNING`] at once and [`MAX_QUEUE`] waiting or running (more are
//! skipped with a warning), each killed after [`MAX_RUNTIME`]. A script that
//! exits with code 1, or is ended by a signal (the kill included), is run
//! again after [`RETRY_DELAY`], up to [`MAX_RETRIES`] times, as Sentinel
//! retries it; any other non-zero exit is logged. Output is discarded. The
//! two durations are Sentinel's `SENTINEL DEBUG` parameters ([`set_timing`]).
//! `SENTINEL PENDING-SCRIPTS` lists the queue ([`pending`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::warn;

/// Scripts allowed to run at the same time (Sentinel's limit).
pub const MAX_RUNNING: usize = 16;

/// Scripts waiting or running at once; more calls are skipped (Sentinel's
/// limit).
pub const MAX_QUEUE: usize = 256;

/// A script still running after this long is killed (Sentinel's limit;
/// `SENTINEL DEBUG script-max-runtime` changes it).
pub const MAX_RUNTIME: Duration = Duration::from_secs(60);

/// How long a failed script waits before it runs again (Sentinel's
/// `script-retry-delay`; `SENTINEL DEBUG script-retry-delay` changes it).
pub const RETRY_DELAY: Duration = Duration::from_secs(30);

/// The run-time limit in force, in milliseconds.
static MAX_RUNTIME_MS: AtomicU64 = AtomicU64::new(60_000);

/// The retry delay in force, in milliseconds.
static RETRY_DELAY_MS: AtomicU64 = AtomicU64::new(30_000);

/// The run-time limit and the retry delay in force (`SENTINEL DEBUG`).
pub fn timing() -> (Duration, Duration) {
    (
        Duration::from_millis(MAX_RUNTIME_MS.load(Ordering::Relaxed)),
        Duration::from_millis(RETRY_DELAY_MS.load(Ordering::Relaxed)),
    )
}

/// Sets the run-time limit and the retry delay for every script from now on.
pub fn set_timing(max_runtime: Duration, retry_delay: Duration) {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    MAX_RUNTIME_MS.store(ms(max_runtime), Ordering::Relaxed);
    RETRY_DELAY_MS.store(ms(retry_delay), Ordering::Relaxed);
}

/// How many times a failed script runs again (Sentinel's limit).
pub const MAX_RETRIES: u32 = 10;

/// One script call in the queue, as `PENDING-SCRIPTS` shows it.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The script and its arguments.
    pub argv: Vec<String>,
    /// Its process id while it runs.
    pub pid: Option<u32>,
    /// Running since then, or waiting to run again until then.
    pub since: Instant,
    /// Whether it is running now (else waiting for a retry or a slot).
    pub running: bool,
    /// How many times it has been run again.
    pub retries: u32,
}

/// The process's script queue: Sentinel's limits hold for every group at once.
struct Queue {
    /// Running slots.
    slots: Arc<Semaphore>,
    /// Every call waiting or running, by number.
    calls: Mutex<BTreeMap<u64, Pending>>,
    /// The next call's number.
    next: AtomicU64,
}

static QUEUE: LazyLock<Queue> = LazyLock::new(|| Queue {
    slots: Arc::new(Semaphore::new(MAX_RUNNING)),
    calls: Mutex::new(BTreeMap::new()),
    next: AtomicU64::new(0),
});

/// The script calls waiting or running now, oldest first.
pub fn pending() -> Vec<Pending> {
    QUEUE
        .calls
        .lock()
        .map(|calls| calls.values().cloned().collect())
        .unwrap_or_default()
}

/// Updates call `id` in the queue, if it is there.
fn update(id: u64, change: impl FnOnce(&mut Pending)) {
    if let Ok(mut calls) = QUEUE.calls.lock()
        && let Some(call) = calls.get_mut(&id)
    {
        change(call);
    }
}

/// The configured scripts.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// Called for warning-level events.
    pub notification: Option<PathBuf>,
    /// Called when the master changes.
    pub client_reconfig: Option<PathBuf>,
}

impl Default for Scripts {
    /// No scripts.
    fn default() -> Scripts {
        Scripts::new(None, None)
    }
}

impl Scripts {
    /// Scripts at these paths (either may be absent).
    pub fn new(notification: Option<PathBuf>, client_reconfig: Option<PathBuf>) -> Scripts {
        Scripts {
            notification,
            client_reconfig,
        }
    }

    /// Runs the notification script for one event.
    pub fn notify(&self, kind: &str, description: &str) {
        if let Some(path) = &self.notification {
            self.run(path.clone(), vec![kind.to_owned(), description.to_owned()]);
        }
    }

    /// Runs the client-reconfig script for a master change.
    pub fn client_reconfig(&self, name: &str, leader: bool, from: SocketAddr, to: SocketAddr) {
        if let Some(path) = &self.client_reconfig {
            let role = if leader { "leader" } else { "observer" };
            let args = vec![
                name.to_owned(),
                role.to_owned(),
                "start".to_owned(),
                from.ip().to_string(),
                from.port().to_string(),
                to.ip().to_string(),
                to.port().to_string(),
            ];
            self.run(path.clone(), args);
        }
    }

    /// Queues one call of `path` with `args` and runs it (again, if it
    /// fails so that Sentinel would retry it).
    fn run(&self, path: PathBuf, args: Vec<String>) {
        // Outside a runtime (unit tests) scripts are not run.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = QUEUE.next.fetch_add(1, Ordering::Relaxed);
        let argv = std::iter::once(path.display().to_string())
            .chain(args.iter().cloned())
            .collect();
        let queued = QUEUE.calls.lock().is_ok_and(|mut calls| {
            if calls.len() >= MAX_QUEUE {
                return false;
            }
            let call = Pending {
                argv,
                pid: None,
                since: Instant::now(),
                running: false,
                retries: 0,
            };
            calls.insert(id, call);
            true
        });
        if !queued {
            warn!(script = %path.display(), "{MAX_QUEUE} scripts queued already; this call is skipped");
            return;
        }
        runtime.spawn(async move {
            for attempt in 0..=MAX_RETRIES {
                if attempt > 0 {
                    let (_, retry_delay) = timing();
                    update(id, |call| {
                        call.running = false;
                        call.pid = None;
                        call.retries = attempt;
                        call.since = Instant::now() + retry_delay;
                    });
                    tokio::time::sleep(retry_delay).await;
                }
                let Ok(slot) = Arc::clone(&QUEUE.slots).acquire_owned().await else {
                    break;
                };
                let retry = run_once(id, &path, &args).await;
                drop(slot);
                if !retry {
                    break;
                }
            }
            if let Ok(mut calls) = QUEUE.calls.lock() {
                calls.remove(&id);
            }
        });
    }
}

/// Runs call `id` once; whether it failed the way Sentinel retries (exit
/// code 1, or ended by a signal, the kill after [`MAX_RUNTIME`] included).
async fn run_once(id: u64, path: &PathBuf, args: &[String]) -> bool {
    let child = tokio::process::Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            warn!(script = %path.display(), %error, "cannot run script");
            return false;
        }
    };
    update(id, |call| {
        call.running = true;
        call.pid = child.id();
        call.since = Instant::now();
    });
    let (max_runtime, _) = timing();
    match tokio::time::timeout(max_runtime, child.wait()).await {
        Ok(Ok(status)) if status.success() => false,
        Ok(Ok(status)) => {
            let retry = status.code().is_none_or(|code| code == 1);
            warn!(script = %path.display(), %status, retry, "script failed");
            retry
        }
        Ok(Err(error)) => {
            warn!(script = %path.display(), %error, "script lost");
            false
        }
        Err(_) => {
            warn!(script = %path.display(), "script ran too long; killed");
            let _ = child.kill().await;
            true
        }
    }
}
