//! Sentinel's two hooks: a notification script called with
//! `<event-type> <event-description>` for every warning-level event, and a
//! client-reconfig script called with
//! `<master-name> <role> <state> <from-ip> <from-port> <to-ip> <to-port>` when
//! the master changes (`role` is `leader` or `observer`, `state` is `start`).
//!
//! Scripts run as child processes on the control thread's runtime, never on
//! the data path: at most [`MAX_RUNNING`] at once (more are skipped with a
//! warning), each killed after [`MAX_RUNTIME`]. Output is discarded; a
//! non-zero exit is logged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing::warn;

/// Scripts allowed to run at the same time (Sentinel's limit).
pub const MAX_RUNNING: usize = 16;

/// A script still running after this long is killed (Sentinel's limit).
pub const MAX_RUNTIME: Duration = Duration::from_secs(60);

/// The configured scripts.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// Called for warning-level events.
    pub notification: Option<PathBuf>,
    /// Called when the master changes.
    pub client_reconfig: Option<PathBuf>,
    running: Arc<Semaphore>,
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
            running: Arc::new(Semaphore::new(MAX_RUNNING)),
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

    fn run(&self, path: PathBuf, args: Vec<String>) {
        let Ok(permit) = Arc::clone(&self.running).try_acquire_owned() else {
            warn!(script = %path.display(), "too many scripts running; this call is skipped");
            return;
        };
        // Outside a runtime (unit tests) scripts are not run.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _permit = permit;
            let child = tokio::process::Command::new(&path)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn();
            let mut child = match child {
                Ok(child) => child,
                Err(error) => {
                    return warn!(script = %path.display(), %error, "cannot run script");
                }
            };
            match tokio::time::timeout(MAX_RUNTIME, child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => warn!(script = %path.display(), %status, "script failed"),
                Ok(Err(error)) => warn!(script = %path.display(), %error, "script lost"),
                Err(_) => {
                    warn!(script = %path.display(), "script ran too long; killed");
                    let _ = child.kill().await;
                }
            }
        });
    }
}
