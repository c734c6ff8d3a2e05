//! Records the git commit the binary is built from (shown by `--version`
//! and the `sentinel_proxy_build_info` metric): `SENTINEL_PROXY_COMMIT` from
//! the environment if set, else `git rev-parse`, else "unknown".

use std::process::Command;

fn main() {
    // A build without .git (a container build context) can pass it in.
    println!("cargo:rerun-if-env-changed=SENTINEL_PROXY_COMMIT");
    if let Ok(commit) = std::env::var("SENTINEL_PROXY_COMMIT")
        && !commit.is_empty()
    {
        println!("cargo:rustc-env=SENTINEL_PROXY_COMMIT={commit}");
        return;
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SENTINEL_PROXY_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=build.rs");
}
