//! The README's sidecar-group quick start runs as written: its shell blocks are
//! extracted from README.md and run, then the `kill -9` it describes is done
//! and the group must fail over. Only `cargo build --release` is left out (the
//! test runs the binary this test run built) and the blocking `SUBSCRIBE`.
//!
//! The quick start uses fixed ports (7000-7002, 6380-6382, 26380-26382,
//! 9121-9123), outside the range the other tests draw from.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{self, proxy::binary_path};

/// The processes the quick start started, killed (SIGKILL) on drop; each PID
/// is checked to still be what the quick start started before it is signalled.
struct Started {
    proxies: Vec<u32>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let mut pids: Vec<(u32, &str)> = self
            .proxies
            .iter()
            .map(|p| (*p, "sentinel-proxy"))
            .collect();
        for port in 7000..=7002 {
            let file = format!("/tmp/redis-{port}.pid");
            if let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                pids.push((pid, "redis-server"));
            }
            let _ = std::fs::remove_file(&file);
        }
        for (pid, name) in pids {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(name) {
                support::send_signal(pid, "KILL");
            }
        }
    }
}

/// The ```sh blocks of the README section titled `title`.
fn shell_blocks(readme: &str, title: &str) -> Vec<String> {
    let start = readme
        .find(&format!("## {title}"))
        .unwrap_or_else(|| panic!("README has no section {title:?}"));
    let section = &readme[start + 3..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .map(str::to_owned)
        .collect()
}

fn bash(dir: &Path, script: &str) -> (bool, String) {
    let mut command = Command::new("bash");
    command.arg("-c").arg(script).current_dir(dir);
    let out = support::run_bounded(command, b"", Duration::from_secs(60));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_sidecar_quick_start_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let blocks = shell_blocks(&readme, "Quick start: a sidecar group");
    assert!(
        blocks.len() >= 2,
        "the quick start has a start and a watch block"
    );
    let bin = binary_path().display().to_string();
    let dir = tempfile::tempdir().expect("tempdir");

    let start = blocks[0]
        .lines()
        .filter(|l| l.trim() != "cargo build --release")
        .collect::<Vec<_>>()
        .join("\n")
        .replace("target/release/sentinel-proxy", &bin);
    assert!(start.contains(&bin), "the block starts the proxies");
    // Output to a file: the proxies keep running after the script (as they
    // do in the reader's shell) and must not hold the test's pipes.
    let script = format!("set -e\nexec >start.log 2>&1\n{start}\njobs -p > proxies.pids\n");
    let (ok, _) = bash(dir.path(), &script);
    let log = std::fs::read_to_string(dir.path().join("start.log")).unwrap_or_default();
    let started = Started {
        proxies: std::fs::read_to_string(dir.path().join("proxies.pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect(),
    };
    assert!(ok, "the start block failed:\n{start}\n--- output\n{log}");
    assert_eq!(
        started.proxies.len(),
        3,
        "three proxies in the background:\n{log}"
    );
    assert!(log.contains("OK"), "SET through the proxy: {log}");

    // Every command of the watch block, except the blocking SUBSCRIBE.
    for line in blocks[1].lines().filter(|l| !l.contains("SUBSCRIBE")) {
        let command = line.split('#').next().unwrap_or_default().trim();
        if command.is_empty() {
            continue;
        }
        support::assert_eventually!(
            Duration::from_secs(15),
            {
                let (ok, out) = bash(dir.path(), command);
                ok && !out.trim().is_empty() && !out.contains("ERR") && !out.contains("NOQUORUM")
            },
            "`{command}` gives: {:?}",
            bash(dir.path(), command)
        );
    }

    // A reader takes longer than Redis's diskless-sync delay (5 s) to get
    // here; wait as long for the replicas to hold the data.
    for port in [7001, 7002] {
        support::assert_eventually!(
            Duration::from_secs(20),
            bash(dir.path(), &format!("redis-cli -p {port} get greeting"))
                .1
                .trim()
                == "hello",
            "replica {port} synced"
        );
    }

    // The kill -9 the README describes, then a new master everywhere.
    let (ok, out) = bash(dir.path(), "kill -9 $(cat /tmp/redis-7000.pid)");
    assert!(ok, "{out}");
    for port in [26380, 26381, 26382] {
        support::assert_eventually!(
            Duration::from_secs(30),
            {
                let (_, out) = bash(
                    dir.path(),
                    &format!("redis-cli -p {port} SENTINEL get-master-addr-by-name mymaster"),
                );
                out.contains("7001") || out.contains("7002")
            },
            "sentinel port {port} names a new master"
        );
    }
    support::assert_eventually!(
        Duration::from_secs(15),
        bash(dir.path(), "redis-cli -p 6380 get greeting").1.trim() == "hello",
        "the data written before the failover is read through the proxy: {:?}",
        bash(
            dir.path(),
            "redis-cli -p 6380 get greeting; redis-cli -p 7001 get greeting; redis-cli -p 7002 get greeting; redis-cli -p 7001 role; redis-cli -p 7002 role"
        )
    );
    drop(started);
}
