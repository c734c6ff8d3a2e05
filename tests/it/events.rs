//! Sentinel's hooks: the notification script sees warning-level events and
//! the client-reconfig script sees the master change, with Sentinel's
//! arguments, when a lone proxy (quorum 1) fails over.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::{Proxy, RedisServer, assert_eventually};

/// A script that appends its arguments, one call per line, to `out`.
fn recording_script(dir: &Path, name: &str, out: &Path) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\n", out.display()),
    )
    .expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path.display().to_string()
}

#[test]
fn scripts_receive_sentinels_arguments_on_a_failover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let notified = dir.path().join("notified");
    let reconfigured = dir.path().join("reconfigured");
    let notify = recording_script(dir.path(), "notify.sh", &notified);
    let reconfig = recording_script(dir.path(), "reconfig.sh", &reconfigured);

    let mut master = RedisServer::spawn();
    let replica = RedisServer::builder().replica_of(master.addr()).spawn();
    assert_eventually!(Duration::from_secs(20), replica.master_link_up());
    let proxy = Proxy::spawn(&[
        "--master",
        &master.addr().to_string(),
        "--quorum",
        "1",
        "--down-after-ms",
        "500",
        "--failover-timeout-ms",
        "5000",
        "--notification-script",
        &notify,
        "--client-reconfig-script",
        &reconfig,
    ]);
    assert_eventually!(
        Duration::from_secs(15),
        proxy.log().contains("+slave slave"),
        "the proxy discovers the replica"
    );
    let old = master.addr();
    master.kill9();

    let new = replica.addr();
    let switch = format!(
        "+switch-master mymaster {} {} {} {}",
        old.ip(),
        old.port(),
        new.ip(),
        new.port()
    );
    assert_eventually!(
        Duration::from_secs(20),
        std::fs::read_to_string(&notified).is_ok_and(|t| t.lines().any(|l| l == switch)),
        "notification script calls: {:?}\nproxy log:\n{}",
        std::fs::read_to_string(&notified),
        proxy.log()
    );
    let text = std::fs::read_to_string(&notified).expect("notified");
    assert!(
        text.lines()
            .any(|l| l == format!("+sdown master mymaster {} {}", old.ip(), old.port())),
        "{text}"
    );
    let expected = format!(
        "mymaster leader start {} {} {} {}",
        old.ip(),
        old.port(),
        new.ip(),
        new.port()
    );
    assert_eventually!(
        Duration::from_secs(10),
        std::fs::read_to_string(&reconfigured).is_ok_and(|t| t.trim() == expected),
        "client-reconfig script calls: {:?}",
        std::fs::read_to_string(&reconfigured)
    );
}

#[test]
fn a_script_that_is_not_executable_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sh");
    std::fs::write(&path, "#!/bin/sh\n").expect("write");
    let out = Proxy::command()
        .args(["--master", "127.0.0.1:6379", "--notification-script"])
        .arg(&path)
        .arg("check-config")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notification_script:") && stderr.contains("is not an executable file"),
        "{stderr}"
    );
}

/// A notification script that exits with code 1 is run again, as Sentinel
/// retries it, after `SENTINEL DEBUG script-retry-delay`, and
/// `SENTINEL PENDING-SCRIPTS` shows it waiting meanwhile; once it succeeds
/// the queue is empty.
#[test]
fn a_failing_script_is_retried_and_listed_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let calls = dir.path().join("calls");
    let script = dir.path().join("flaky.sh");
    // Fails (exit 1) on its first call, succeeds after.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{0}'\n[ \"$(wc -l < '{0}')\" -gt 1 ]\n",
            calls.display()
        ),
    )
    .expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let master = RedisServer::spawn();
    let proxy = Proxy::spawn(&[
        "--master",
        &master.addr().to_string(),
        "--notification-script",
        &script.display().to_string(),
    ]);
    let query = |args: &[&str]| -> redis::Value {
        crate::core::sentinel_query(proxy.sentinel_addr(), args).expect("sentinel query")
    };
    query(&["SENTINEL", "DEBUG", "script-retry-delay", "1500"]);
    // A warning-level event: `+set`.
    query(&[
        "SENTINEL",
        "SET",
        "mymaster",
        "down-after-milliseconds",
        "6000",
    ]);
    let pending = || match query(&["SENTINEL", "PENDING-SCRIPTS"]) {
        redis::Value::Array(items) => items.len(),
        other => panic!("PENDING-SCRIPTS: {other:?}"),
    };
    assert_eventually!(
        Duration::from_secs(5),
        pending() == 1,
        "the failed call waits for its retry"
    );
    let lines = || {
        std::fs::read_to_string(&calls)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    assert_eventually!(
        Duration::from_secs(10),
        lines() >= 2,
        "the script ran again"
    );
    assert_eventually!(Duration::from_secs(5), pending() == 0);
    let text = std::fs::read_to_string(&calls).expect("calls");
    assert!(
        text.lines().all(|l| l.starts_with("+set master mymaster")),
        "{text}"
    );
    let info: String =
        crate::core::sentinel_query(proxy.sentinel_addr(), &["INFO", "sentinel"]).expect("INFO");
    assert!(info.contains("sentinel_scripts_queue_length:0"), "{info}");
}
