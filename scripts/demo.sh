#!/usr/bin/env bash
# scripts/demo.sh — the local lab, one command on a fresh machine.
#
# Installs redis-server if it is missing (apt-get; sudo only when not root),
# builds sentinel-proxy (cargo build --release) and runs `sentinel-proxy demo`:
# 1 master and 2 replicas (redis-server) and 3 proxies forming a sidecar group
# (the built-in sentinel core, no Redis Sentinel), all on 127.0.0.1, with a
# table of addresses and every Sentinel event as it happens. Ctrl-C stops and
# removes everything.
#
# USAGE
#   scripts/demo.sh [--writer] [--chaos N] [--duration N]
#   scripts/demo.sh --writer --chaos 10   # watch a client ride a failover every 10 s
#   scripts/demo.sh --help                # the demo's options
#
# The same lab with real redis-sentinel processes and the proxy following
# them: scripts/demo-sentinels.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v redis-server >/dev/null; then
    echo "demo.sh: installing redis-server (apt-get)" >&2
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq redis-server >/dev/null
fi
(cd "$ROOT" && cargo build --release -q)
exec "$ROOT/target/release/sentinel-proxy" demo "$@"
