//! Invariants of the Dockerfile, checked as text (no container engine is
//! needed): the image runs as a non-root user, has a health check, exposes
//! the client port, and builds with `--locked`.

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

#[test]
fn there_is_a_health_check() {
    let stage = runtime_stage();
    let checks = all(&stage, "HEALTHCHECK");
    let check = checks.last().expect("the runtime stage has no HEALTHCHECK");
    assert!(
        check.contains("CMD") && !check.trim().eq_ignore_ascii_case("none"),
        "HEALTHCHECK should run a command, got `{check}`"
    );
}

#[test]
fn the_client_port_is_exposed() {
    let stage = runtime_stage();
    let ports: Vec<&str> = all(&stage, "EXPOSE")
        .into_iter()
        .flat_map(str::split_whitespace)
        .map(|p| p.split('/').next().unwrap_or(p))
        .collect();
    assert!(
        ports.contains(&"6379"),
        "EXPOSE should include 6379, got {ports:?}"
    );
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
