//! Invariants of the Dockerfile, checked as text (no container engine is
//! needed): the image runs as a non-root user, checks its health with the
//! `healthcheck` subcommand, exposes the client, Sentinel and metrics ports,
//! stops on SIGTERM, and builds with `--locked`.

use std::path::Path;

/// One Dockerfile instruction: keyword (upper case) and its arguments.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The stages, each a list of instructions starting with its `FROM`.
fn stages() -> Vec<Vec<Instruction>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for line in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (keyword, args) = line
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((line, ""));
        let instruction = Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        };
        if instruction.keyword == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .unwrap_or_else(|| panic!("instruction before the first FROM: {line}"))
            .push(instruction);
    }
    assert!(!stages.is_empty(), "the Dockerfile has no FROM");
    stages
}

fn runtime_stage() -> Vec<Instruction> {
    stages().pop().expect("at least one stage")
}

fn all<'a>(stage: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

#[test]
fn it_is_multi_stage_with_a_rust_build_stage() {
    let stages = stages();
    assert!(
        stages.len() >= 2,
        "expected a build stage and a runtime stage"
    );
    let from = &stages[0][0].args.to_ascii_lowercase();
    assert!(
        from.starts_with("rust:") && from.ends_with(" as build"),
        "the first stage should be `FROM rust:... AS build`, got `FROM {from}`"
    );
}

#[test]
fn the_image_runs_as_a_non_root_user() {
    let stage = runtime_stage();
    let user = all(&stage, "USER")
        .last()
        .map(|u| u.to_string())
        .expect("the runtime stage sets no USER: the image would run as root");
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !matches!(name, "root" | "0" | ""),
        "the runtime stage's last USER is `{user}`, which is root"
    );
    let entrypoint = stage
        .iter()
        .position(|i| i.keyword == "ENTRYPOINT")
        .expect("the runtime stage has an ENTRYPOINT");
    let last_user = stage
        .iter()
        .rposition(|i| i.keyword == "USER")
        .expect("USER present");
    assert!(
        last_user < entrypoint,
        "USER must come before ENTRYPOINT in the runtime stage"
    );
}

/// The exec-form (JSON array) arguments of `args`, or `None` for the shell form.
fn exec_form(args: &str) -> Option<Vec<String>> {
    let args = args.trim();
    if !args.starts_with('[') {
        return None;
    }
    let parsed: serde_json::Value = serde_json::from_str(args).ok()?;
    parsed
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn the_health_check_runs_the_healthcheck_subcommand() {
    let stage = runtime_stage();
    let checks = all(&stage, "HEALTHCHECK");
    let check = checks.last().expect("the runtime stage has no HEALTHCHECK");
    let (_, command) = check
        .split_once("CMD")
        .unwrap_or_else(|| panic!("HEALTHCHECK should run a command, got `{check}`"));
    let argv = exec_form(command).unwrap_or_else(|| {
        panic!("HEALTHCHECK CMD should be exec form (no shell in the way), got `{command}`")
    });
    assert!(
        argv.first()
            .is_some_and(|bin| bin.ends_with("sentinel-proxy")),
        "HEALTHCHECK should run the sentinel-proxy binary, got {argv:?}"
    );
    assert_eq!(
        argv.get(1).map(String::as_str),
        Some("healthcheck"),
        "HEALTHCHECK should use the healthcheck subcommand, got {argv:?}"
    );
    // It must look where the proxy serves /healthz: the same config file as
    // CMD, or an explicit address on the exposed metrics port.
    let cmd = all(&stage, "CMD")
        .last()
        .and_then(|c| exec_form(c))
        .expect("CMD in exec form");
    let config = cmd
        .iter()
        .position(|a| a == "-c" || a == "--config")
        .and_then(|i| cmd.get(i + 1))
        .expect("CMD passes -c FILE");
    let reads_config = argv
        .windows(2)
        .any(|w| (w[0] == "-c" || w[0] == "--config") && &w[1] == config);
    let names_port = argv.iter().skip(2).any(|a| a.ends_with(":9121"));
    assert!(
        reads_config || names_port,
        "HEALTHCHECK should pass `-c {config}` (as CMD does) or HOST:9121, got {argv:?}"
    );
}

#[test]
fn the_container_stops_on_sigterm() {
    // The proxy drains on SIGTERM (and SIGINT). Docker sends STOPSIGNAL,
    // SIGTERM unless the image says otherwise.
    let stage = runtime_stage();
    if let Some(signal) = all(&stage, "STOPSIGNAL").last() {
        assert!(
            matches!(
                signal.trim().to_ascii_uppercase().as_str(),
                "SIGTERM" | "TERM" | "15" | "SIGINT" | "INT" | "2"
            ),
            "STOPSIGNAL {signal}: the proxy drains only on SIGTERM or SIGINT"
        );
    }
    let entrypoint = all(&stage, "ENTRYPOINT")
        .last()
        .map(|e| e.to_string())
        .expect("ENTRYPOINT present");
    assert!(
        exec_form(&entrypoint).is_some(),
        "ENTRYPOINT should be exec form so the proxy is PID 1 and gets the signal \
         (the shell form runs it under /bin/sh -c), got {entrypoint}"
    );
}

#[test]
fn the_three_ports_are_exposed() {
    let stage = runtime_stage();
    let ports: Vec<&str> = all(&stage, "EXPOSE")
        .into_iter()
        .flat_map(str::split_whitespace)
        .map(|p| p.split('/').next().unwrap_or(p))
        .collect();
    for (port, what) in [
        ("6379", "clients (listen)"),
        ("26379", "the Sentinel protocol (sentinel_listen)"),
        ("9121", "metrics and health (metrics_listen)"),
    ] {
        assert!(
            ports.contains(&port),
            "EXPOSE should include {port} for {what}, got {ports:?}"
        );
    }
}

#[test]
fn every_cargo_build_is_locked() {
    let stages = stages();
    let builds: Vec<&str> = stages
        .iter()
        .flat_map(|stage| all(stage, "RUN"))
        .filter(|run| run.contains("cargo build"))
        .collect();
    assert!(!builds.is_empty(), "no RUN cargo build in the Dockerfile");
    for build in builds {
        assert!(
            build.split_whitespace().any(|w| w == "--locked"),
            "`RUN {build}` should pass --locked (build exactly Cargo.lock)"
        );
    }
}

#[test]
fn the_entrypoint_is_the_binary_and_reads_the_config_file() {
    let stage = runtime_stage();
    let entrypoint = all(&stage, "ENTRYPOINT")
        .last()
        .map(|e| e.to_string())
        .expect("ENTRYPOINT present");
    assert!(
        entrypoint.contains("sentinel-proxy"),
        "ENTRYPOINT should run sentinel-proxy, got {entrypoint}"
    );
    let cmd = all(&stage, "CMD")
        .last()
        .map(|c| c.to_string())
        .expect("CMD present");
    assert!(
        cmd.contains("\"-c\"") && cmd.contains("/etc/sentinel-proxy/proxy.toml"),
        "CMD should be -c /etc/sentinel-proxy/proxy.toml, got {cmd}"
    );
}

#[test]
fn the_build_context_excludes_target() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore");
    let text = std::fs::read_to_string(&path).expect(".dockerignore present");
    let rules: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let excludes_all = rules.first() == Some(&"*");
    let excludes_target = rules
        .iter()
        .any(|r| matches!(*r, "target" | "target/" | "/target"));
    assert!(
        (excludes_all && !rules.iter().any(|r| r.starts_with("!target"))) || excludes_target,
        ".dockerignore should keep target/ out of the build context: {rules:?}"
    );
}

#[test]
fn the_build_context_has_what_cargo_needs() {
    // An allowlist that misses a file cargo reads breaks the image build,
    // not the host build: build.rs missing from the context meant no
    // SENTINEL_PROXY_COMMIT at compile time.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore present");
    let allowed: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix('!'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let mut needed = vec!["Cargo.toml", "Cargo.lock", "src"];
    if root.join("build.rs").exists() {
        needed.push("build.rs");
    }
    if manifest.contains("[[bench]]") {
        needed.push("benches");
    }
    // Targets declared with an explicit path must exist for cargo to read
    // the manifest at all.
    for line in manifest.lines() {
        if let Some(path) = line.trim().strip_prefix("path = ") {
            let path = path.trim().trim_matches('"');
            needed.push(path.split('/').next().unwrap_or(path));
        }
    }
    for path in needed {
        assert!(
            allowed.contains(&path),
            ".dockerignore does not let `{path}` into the build context: {allowed:?}"
        );
    }
}
