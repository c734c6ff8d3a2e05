//! The command line: usage errors exit with status 2 and one line naming the
//! setting; `check-config` prints the effective settings with secrets
//! redacted.

use std::process::Output;
use std::time::Duration;

use crate::support::{Proxy, free_port, loopback, run_bounded};

/// Runs the proxy binary with `args` and waits (bounded) for it to exit.
/// A `--listen` on a free loopback port goes first, so that a binary which
/// wrongly starts never touches a well-known port.
fn run(args: &[&str]) -> Output {
    let listen = loopback(free_port()).to_string();
    let mut command = Proxy::command();
    command
        .args(["--listen", &listen])
        .args(args)
        .env("NO_COLOR", "1");
    run_bounded(command, b"", Duration::from_secs(10))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The non-empty lines of `bytes`.
fn lines(bytes: &[u8]) -> Vec<String> {
    text(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Asserts exit status 2 and exactly one stderr line containing every word
/// of `names`; returns that line.
fn assert_usage_error(out: &Output, names: &[&str]) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status {}; stderr: {}",
        out.status,
        text(&out.stderr)
    );
    let err = lines(&out.stderr);
    assert_eq!(err.len(), 1, "stderr must be one line: {err:#?}");
    for name in names {
        assert!(
            err[0].contains(name),
            "stderr {:?} must name {name}",
            err[0]
        );
    }
    err[0].clone()
}

fn write_config(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("create a config file");
    std::io::Write::write_all(&mut file, contents.as_bytes()).expect("write the config file");
    file
}

#[test]
fn no_master_and_no_sentinel_is_a_usage_error_naming_master() {
    let out = run(&[]);
    assert_usage_error(&out, &["master"]);
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
}

#[test]
fn max_clients_zero_is_a_usage_error_naming_max_clients() {
    let out = run(&["--master", "127.0.0.1:1", "--max-clients", "0"]);
    assert_usage_error(&out, &["max_clients"]);
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let out = run(&["--master", "127.0.0.1:1", "--no-such-flag"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit status {}; stderr: {}",
        out.status,
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("--no-such-flag"),
        "stderr must name the flag: {}",
        text(&out.stderr)
    );
}

#[test]
fn master_and_sentinel_together_are_a_usage_error() {
    let out = run(&["--master", "127.0.0.1:1", "--sentinel", "127.0.0.1:2"]);
    assert_usage_error(&out, &["master", "sentinel"]);
}

#[test]
fn check_config_prints_effective_settings_with_secrets_redacted() {
    let file = write_config(
        "master = \"127.0.0.1:7000\"\n\
         auth_pass = \"hunter2\"\n\
         requirepass = \"swordfish\"\n\
         hold_timeout_ms = 2500\n\
         max_clients = 42\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let out = run(&["check-config", "-c", path]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit status {}; stdout: {stdout}; stderr: {}",
        out.status,
        text(&out.stderr)
    );
    let settings = lines(&out.stdout);
    for expected in [
        "master = \"127.0.0.1:7000\"",
        "auth_pass = \"<redacted>\"",
        "requirepass = \"<redacted>\"",
        "hold_timeout_ms = 2500",
        "max_clients = 42",
        // Defaults are part of the effective settings.
        "drain_timeout_ms = 5000",
        "master_name = \"mymaster\"",
    ] {
        assert!(
            settings.iter().any(|line| line == expected),
            "check-config output lacks {expected:?}:\n{stdout}"
        );
    }
    let everything = format!("{stdout}{}", text(&out.stderr));
    assert!(
        !everything.contains("hunter2") && !everything.contains("swordfish"),
        "a secret was printed:\n{everything}"
    );
}

#[test]
fn check_config_with_an_unknown_key_names_it() {
    let file = write_config("master = \"127.0.0.1:7000\"\nlisten_port = 6380\n");
    let path = file.path().to_str().expect("utf-8 path");
    let out = run(&["check-config", "-c", path]);
    assert_usage_error(&out, &["listen_port"]);
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
}

/// A quorum above the number of voters can never be reached: the group
/// would monitor but never fail over. It is allowed (one proxy alone is a
/// monitor), but `check-config` says so on stderr; a reachable quorum gets
/// no word.
#[test]
fn check_config_warns_of_a_quorum_above_the_voters() {
    let peer = loopback(free_port()).to_string();
    let unreachable = run(&[
        "--master",
        "127.0.0.1:7000",
        "--peer",
        &peer,
        "--quorum",
        "3",
        "check-config",
    ]);
    assert_eq!(
        unreachable.status.code(),
        Some(0),
        "{}",
        text(&unreachable.stderr)
    );
    let warning = lines(&unreachable.stderr);
    assert_eq!(warning.len(), 1, "{warning:?}");
    assert!(
        warning[0].contains("quorum 3") && warning[0].contains("2 voter(s)"),
        "{warning:?}"
    );
    let reachable = run(&[
        "--master",
        "127.0.0.1:7000",
        "--peer",
        &peer,
        "--quorum",
        "2",
        "check-config",
    ]);
    assert_eq!(reachable.status.code(), Some(0));
    assert!(
        lines(&reachable.stderr).is_empty(),
        "{}",
        text(&reachable.stderr)
    );
}

/// Bad TLS settings stop the start with one line naming the setting: a
/// missing key, a file that holds no certificate, a key that does not go
/// with the certificate, a TLS file without a TLS endpoint, client checks
/// without a CA.
#[test]
fn bad_tls_settings_name_the_field() {
    let pki = crate::support::tls::Pki::new();
    let file = |name: &str| pki.file(name).display().to_string();
    let tls = loopback(free_port()).to_string();
    let base = ["--master", "127.0.0.1:7000", "--tls-listen", &tls];
    let check = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        args.push("check-config");
        run(&args)
    };
    let cert = file("a-server.crt");
    let key = file("a-server.key");
    let other_key = file("b-server.key");
    let ca = file("a-ca.crt");
    let not_pem = file("a-server.crt.txt");
    std::fs::write(&not_pem, "hello\n").expect("write");

    assert_usage_error(
        &check(&["--tls-cert-file", &cert]),
        &["tls_key_file", "required"],
    );
    let line = assert_usage_error(
        &check(&[
            "--tls-cert-file",
            &not_pem,
            "--tls-key-file",
            &key,
            "--tls-auth-clients",
            "no",
        ]),
        &["tls_cert_file", "no PEM certificate"],
    );
    assert!(line.contains(&not_pem), "the file is named: {line}");
    assert_usage_error(
        &check(&[
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &other_key,
            "--tls-auth-clients",
            "no",
        ]),
        &["tls_key_file", "does not go with tls_cert_file"],
    );
    assert_usage_error(
        &check(&["--tls-cert-file", &cert, "--tls-key-file", &key]),
        &["tls_ca_cert_file", "required to check client certificates"],
    );
    let fine = check(&[
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
    ]);
    assert_eq!(fine.status.code(), Some(0), "{}", text(&fine.stderr));
    assert!(text(&fine.stdout).contains("tls_auth_clients = \"yes\""));
    let alone = run(&[
        "--master",
        "127.0.0.1:7000",
        "--tls-cert-file",
        &cert,
        "check-config",
    ]);
    assert_usage_error(
        &alone,
        &[
            "tls_cert_file",
            "set tls_listen, tls_sentinel_listen or tls_backend as well",
        ],
    );
    let sentinel = loopback(free_port()).to_string();
    let following = run(&[
        "--sentinel",
        &sentinel,
        "--tls-sentinel-listen",
        &tls,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "check-config",
    ]);
    assert_usage_error(&following, &["tls_sentinel_listen"]);
}

/// TLS towards servers: a bad setting stops the start with its name, as
/// for the endpoints.
#[test]
fn bad_backend_tls_settings_name_the_field() {
    let pki = crate::support::tls::Pki::new();
    let file = |name: &str| pki.file(name).display().to_string();
    let (ca, cert, key, other_key) = (
        file("a-ca.crt"),
        file("a-client.crt"),
        file("a-client.key"),
        file("b-client.key"),
    );
    let check = |extra: &[&str]| {
        let mut args = vec!["--master", "127.0.0.1:7000"];
        args.extend_from_slice(extra);
        args.push("check-config");
        run(&args)
    };
    assert_usage_error(
        &check(&["--tls-backend", "true"]),
        &["tls_backend_ca_cert_file", "required with tls_backend"],
    );
    assert_usage_error(
        &check(&["--tls-client-cert-file", &cert]),
        &["tls_client_cert_file", "set tls_backend as well"],
    );
    let backend = ["--tls-backend", "true", "--tls-ca-cert-file", ca.as_str()];
    let with = |extra: &[&str]| {
        let mut args = backend.to_vec();
        args.extend_from_slice(extra);
        check(&args)
    };
    assert_usage_error(
        &with(&["--tls-client-cert-file", &cert]),
        &["tls_client_key_file", "required with tls_client_cert_file"],
    );
    assert_usage_error(
        &with(&[
            "--tls-client-cert-file",
            &cert,
            "--tls-client-key-file",
            &other_key,
        ]),
        &[
            "tls_client_key_file",
            "does not go with tls_client_cert_file",
        ],
    );
    assert_usage_error(
        &with(&["--tls-backend-server-name", "not a name"]),
        &["tls_backend_server_name", "not a DNS name"],
    );
    let fine = with(&[
        "--tls-client-cert-file",
        &cert,
        "--tls-client-key-file",
        &key,
        "--tls-backend-server-name",
        "redis.internal",
    ]);
    assert_eq!(fine.status.code(), Some(0), "{}", text(&fine.stderr));
    let shown = text(&fine.stdout);
    assert!(shown.contains("tls_backend = true"), "{shown}");
    assert!(
        shown.contains("tls_backend_server_name = \"redis.internal\""),
        "{shown}"
    );
}

/// The read endpoint's settings are shown by `check-config`; one that cannot
/// work (following Sentinels: no replicas are monitored) or a bad value stops
/// the start with the field named.
#[test]
fn read_endpoint_settings_are_checked_and_shown() {
    let read = loopback(free_port()).to_string();
    let shown = run(&[
        "--master",
        "127.0.0.1:7000",
        "--read-listen",
        &read,
        "--max-replica-lag-ms",
        "2500",
        "--read-fallback",
        "hold",
        "check-config",
    ]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    let stdout = text(&shown.stdout);
    for line in [
        format!("read_listen = \"{read}\""),
        "max_replica_lag_ms = 2500".to_owned(),
        "read_fallback = \"hold\"".to_owned(),
    ] {
        assert!(stdout.contains(&line), "{line} in\n{stdout}");
    }
    let mut off = Proxy::command();
    off.args([
        "--master",
        "127.0.0.1:7000",
        "--listen",
        "off",
        "check-config",
    ]);
    assert_usage_error(
        &run_bounded(off, b"", Duration::from_secs(10)),
        &["listen", "off needs tls_listen"],
    );
    assert_usage_error(
        &run(&[
            "--master",
            "127.0.0.1:7000",
            "--sentinel-listen",
            "off",
            "check-config",
        ]),
        &["sentinel_listen", "off needs tls_sentinel_listen"],
    );
    let sentinel = loopback(free_port()).to_string();
    assert_usage_error(
        &run(&[
            "--sentinel",
            &sentinel,
            "--read-listen",
            &read,
            "check-config",
        ]),
        &["read_listen", "needs the built-in sentinel core"],
    );
    assert_usage_error(
        &run(&[
            "--master",
            "127.0.0.1:7000",
            "--max-replica-lag-ms",
            "99999999999",
            "check-config",
        ]),
        &["max_replica_lag_ms", "must be between"],
    );
}
