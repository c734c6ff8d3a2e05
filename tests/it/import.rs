//! `sentinel-proxy import-sentinel-conf FILE`: every shipped sentinel.conf
//! sample converts into a config that `check-config` accepts, and a broken
//! file gets one clear line and exit code 2.

use std::path::{Path, PathBuf};

use crate::support::Proxy;

fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sentinel-conf");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/sentinel-conf")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

/// `import-sentinel-conf file`: the converted TOML and the notes (stderr);
/// panics unless it exits 0.
fn import(file: &Path) -> (String, String) {
    let out = Proxy::command()
        .arg("import-sentinel-conf")
        .arg(file)
        .output()
        .expect("run import-sentinel-conf");
    let notes = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}: {notes}", file.display());
    (String::from_utf8(out.stdout).expect("UTF-8"), notes)
}

/// `check-config` on `toml` (written into `dir`): the effective settings,
/// or a panic with the reason and the TOML.
fn check(dir: &Path, toml: &str, what: &str) -> String {
    let converted = dir.join("converted.toml");
    std::fs::write(&converted, toml).expect("write");
    let check = Proxy::command()
        .arg("-c")
        .arg(&converted)
        .arg("check-config")
        .output()
        .expect("check-config");
    assert!(
        check.status.success(),
        "{what} converts into a config check-config rejects: {}\n{toml}",
        String::from_utf8_lossy(&check.stderr)
    );
    String::from_utf8_lossy(&check.stdout).into_owned()
}

#[test]
fn every_sample_converts_into_a_valid_config() {
    let files = samples();
    assert!(files.len() >= 2, "samples: {files:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    for file in files {
        let (mut toml, _) = import(&file);
        // Scripts named in a sample do not exist on this machine: point them
        // at a real executable so check-config judges the rest.
        toml = toml
            .lines()
            .map(|l| {
                if l.starts_with("notification_script") || l.starts_with("client_reconfig_script") {
                    let key = l.split(' ').next().unwrap_or_default();
                    format!("{key} = \"/bin/true\"")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let settings = check(dir.path(), &toml, &file.display().to_string());
        assert!(settings.contains("master = \""), "{settings}");
    }
}

#[test]
fn a_broken_file_gets_one_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sentinel.conf");
    std::fs::write(
        &file,
        "port 26379\nsentinel monitor mymaster 127.0.0.1 \"6379 2\n",
    )
    .expect("write");
    let out = Proxy::command()
        .arg("import-sentinel-conf")
        .arg(&file)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

/// A Sentinel's TLS port and certificate carry over: the converted config
/// passes `check-config` (which loads the certificate) with the sentinel
/// port's TLS endpoint where Sentinel had its TLS port, and TLS towards
/// Redis and peers where Sentinel had `tls-replication yes`.
#[test]
fn a_tls_sentinel_converts_into_a_tls_sentinel_endpoint() {
    let pki = crate::support::tls::Pki::new();
    let conf = format!(
        "port 26379\ntls-port 26380\ntls-cert-file {}\ntls-key-file {}\n\
         tls-ca-cert-file {}\ntls-replication yes\n\
         sentinel monitor mymaster 127.0.0.1 6380 2\n",
        pki.file("a-server.crt").display(),
        pki.file("a-server.key").display(),
        pki.file("a-ca.crt").display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sentinel.conf");
    std::fs::write(&file, conf).expect("write");
    let (toml, notes) = import(&file);
    let settings = check(dir.path(), &toml, "a TLS sentinel.conf");
    assert!(
        settings.contains("tls_sentinel_listen = \"0.0.0.0:26380\""),
        "{settings}"
    );
    assert!(
        settings.contains("tls_auth_clients = \"yes\""),
        "{settings}"
    );
    assert!(
        settings.contains("tls_backend = true"),
        "{settings}\n{notes}"
    );
}
