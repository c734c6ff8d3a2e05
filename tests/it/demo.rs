//! `sentinel-proxy demo`: the lab starts, fails over under `--chaos` while the
//! writer sees no error, and Ctrl-C leaves no process and no directory behind.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Proxy, send_signal};

#[test]
fn the_demo_fails_over_under_chaos_and_cleans_up_on_ctrl_c() {
    let mut demo = Proxy::command()
        .args(["demo", "--writer", "--chaos", "6"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo");
    let stdout = demo.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut switched_at: Option<Instant> = None;
    // Run until a switch has happened and the writer has reported a few
    // seconds after it.
    while Instant::now() < deadline {
        let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if line.contains("+switch-master") && switched_at.is_none() {
            switched_at = Some(Instant::now());
        }
        seen.push(line);
        if switched_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
    }
    send_signal(demo.id(), "INT");
    let exit = wait_exit(&mut demo, Duration::from_secs(20));
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
        seen.push(line);
    }
    let output = seen.join("\n");
    assert!(
        switched_at.is_some(),
        "no failover under --chaos:\n{output}"
    );
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit {exit:?}:\n{output}"
    );

    // The writer rode the failover: successes after the switch, and errors
    // only for a command in flight at the crash (at most one per kill).
    let kills = output.matches("chaos: kill -9").count();
    let errors: usize = seen
        .iter()
        .filter_map(|l| l.split("ok/s, ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(
        errors <= kills,
        "{errors} writer errors for {kills} kills:\n{output}"
    );
    let after_switch = output.split("+switch-master").nth(1).unwrap_or_default();
    assert!(
        after_switch
            .lines()
            .any(|l| l.contains("writer") && !l.contains(" 0 ok/s")),
        "the writer made progress after the switch:\n{output}"
    );

    // Nothing left behind.
    let dir = output
        .lines()
        .find_map(|l| l.strip_prefix("lab directory: "))
        .and_then(|rest| rest.split(' ').next())
        .expect("the demo prints its lab directory")
        .to_owned();
    assert!(!std::path::Path::new(&dir).exists(), "{dir} still exists");
    let leftovers = std::process::Command::new("pgrep")
        .args(["-f", &dir])
        .output()
        .expect("pgrep");
    assert!(
        leftovers.stdout.is_empty(),
        "processes of the lab still run: {}",
        String::from_utf8_lossy(&leftovers.stdout)
    );
}

fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Without redis-server on the PATH, the demo says how to install it and
/// exits 2.
#[test]
fn the_demo_explains_a_missing_redis_server() {
    let out = Proxy::command()
        .arg("demo")
        .env("PATH", "/nonexistent")
        .output()
        .expect("run the demo");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("redis-server not found")
            && stderr.contains("apt-get install redis-server"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}
