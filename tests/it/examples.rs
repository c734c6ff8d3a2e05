//! The shipped examples stay usable: every `config/*.toml` passes
//! `check-config` and documents every setting, and the demos' `--help` work
//! (the demos themselves are run in `demo.rs`, or not at all here).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::Proxy;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `config/*.toml`, sorted.
fn example_configs() -> Vec<PathBuf> {
    let dir = repo_root().join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"))
}

fn describe(output: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `check-config -c FILE`: the effective settings, or a panic with the error.
fn check_config(file: &Path) -> String {
    let output = run(Proxy::command().arg("check-config").arg("-c").arg(file));
    assert!(
        output.status.success(),
        "check-config -c {} failed:\n{}",
        file.display(),
        describe(&output)
    );
    String::from_utf8(output.stdout).expect("check-config prints UTF-8")
}

#[test]
fn there_are_examples_for_both_sources() {
    let names: Vec<String> = example_configs()
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    for expected in [
        "standalone.toml",
        "sidecar-group.toml",
        "follow-sentinels.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "config/{expected} is missing; found {names:?}"
        );
    }
}

#[test]
fn every_example_passes_check_config() {
    let files = example_configs();
    assert!(!files.is_empty(), "no config/*.toml found");
    for file in &files {
        check_config(file);
    }
}

#[test]
fn each_example_uses_the_source_its_name_promises() {
    let root = repo_root().join("config");
    let follow = check_config(&root.join("follow-sentinels.toml"));
    assert!(
        follow.lines().any(|l| l.starts_with("sentinel = [")),
        "follow-sentinels.toml should follow Sentinels; check-config says:\n{follow}"
    );
    let standalone = check_config(&root.join("standalone.toml"));
    for expected in ["peer = []", "quorum = 2"] {
        assert!(
            standalone.lines().any(|l| l == expected),
            "standalone.toml should run the sentinel core alone ({expected}), so that it \
             monitors but never fails over; check-config says:\n{standalone}"
        );
    }
    assert!(
        standalone.lines().any(|l| l.starts_with("master = \"")),
        "standalone.toml should name the master to monitor; check-config says:\n{standalone}"
    );
    let group = check_config(&root.join("sidecar-group.toml"));
    assert!(
        group.lines().any(|l| l.starts_with("master = \"")),
        "sidecar-group.toml should name the master to monitor; check-config says:\n{group}"
    );
    let peers = group
        .lines()
        .find_map(|l| l.strip_prefix("peer = ["))
        .unwrap_or_else(|| panic!("sidecar-group.toml prints no `peer = [`:\n{group}"));
    assert_eq!(
        peers.matches('"').count() / 2,
        2,
        "sidecar-group.toml should list two peers (three voters); check-config says:\n{group}"
    );
}

/// Each example mentions every setting `check-config` reports (set, or
/// commented out with its default), so a new setting shows up in them.
#[test]
fn every_example_documents_every_setting() {
    for file in example_configs() {
        let text = std::fs::read_to_string(&file).expect("read example");
        let documented = |key: &str| {
            text.lines().any(|line| {
                let line = line.trim_start_matches('#').trim_start();
                line.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        };
        let settings = check_config(&file);
        // Both sources, although check-config prints only the one in use.
        let keys = settings
            .lines()
            .filter_map(|line| line.split_once(" = ").map(|(key, _)| key.to_owned()))
            .chain(["master".to_owned(), "sentinel".to_owned()]);
        for key in keys {
            assert!(
                documented(&key),
                "{} does not document `{key}` (as `{key} = ...` or `# {key} = ...`)",
                file.display()
            );
        }
    }
}

#[test]
fn demo_subcommand_help_lists_its_options() {
    let output = run(Proxy::command().args(["demo", "--help"]));
    assert!(output.status.success(), "{}", describe(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    for option in ["--chaos", "--writer", "--duration"] {
        assert!(
            help.contains(option),
            "demo --help does not mention {option}:\n{help}"
        );
    }
}

#[test]
fn demo_script_help_exits_zero() {
    let script = repo_root().join("scripts/demo-sentinels.sh");
    let output = run(Command::new(&script).arg("--help"));
    assert!(
        output.status.success(),
        "{} --help failed:\n{}",
        script.display(),
        describe(&output)
    );
    let help = String::from_utf8_lossy(&output.stdout);
    for option in [
        "--chaos",
        "--writer",
        "--duration",
        "PROXY_PORT",
        "BASE_PORT",
    ] {
        assert!(
            help.contains(option),
            "--help does not mention {option}:\n{help}"
        );
    }
}

#[test]
fn demo_script_rejects_unknown_arguments() {
    let script = repo_root().join("scripts/demo-sentinels.sh");
    let output = run(Command::new(&script).arg("--no-such-option"));
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown argument should exit 2 before starting anything:\n{}",
        describe(&output)
    );
}
