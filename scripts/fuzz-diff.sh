#!/usr/bin/env bash
# Differential fuzzing of the client port against Redis itself, at length:
# random and mutated byte streams (commands, pipelines, inline commands with
# quotes, malformed RESP, huge and negative lengths, over-long lines,
# half-closed sockets) go to a redis-server directly and through the proxy,
# and every reply and close must be the same. The test suite runs a short
# version of the same fuzzer (tests/it/fuzz_diff.rs).
#
#   scripts/fuzz-diff.sh [STREAMS] [SEED]     # default: 5,000,000 streams
#
# Both modes run, 1:1 and --share-backend, each with STREAMS streams of 1 to
# 10 frames (about 4.5 frames each), so 10 M streams in all. Each of
# SENTINEL_PROXY_FUZZ_WORKERS concurrent lanes (default 16, the fastest on 2
# cores: about 4,000 streams/s) has its own Redis servers and proxy. Exits
# non-zero on the first differences, printing them with the seed that
# replays them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

streams=${1:-5000000}
export SENTINEL_PROXY_FUZZ_WORKERS=${SENTINEL_PROXY_FUZZ_WORKERS:-16}
seed=${2:-$(date +%s)}

for tool in redis-server redis-cli; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fuzz-diff.sh: $tool is missing (apt-get install redis-server redis-tools)" >&2
        exit 2
    fi
done

cargo build --release --tests --quiet
for mode in own shared; do
    share=false
    [ "$mode" = shared ] && share=true
    echo "==> $streams streams, seed $seed, ${mode} backend connections"
    set +e
    SENTINEL_PROXY_SHARE_BACKEND=$share \
    SENTINEL_PROXY_FUZZ_CASES=$streams \
    SENTINEL_PROXY_FUZZ_SEED=$seed \
        cargo test --release --quiet --test it -- --exact \
        fuzz_diff::client_port_answers_random_streams_exactly_as_redis --nocapture 2>&1 |
        grep -v '^$\|^running\|^test result\|^test fuzz_diff'
    # grep only hides the harness's chatter; the test's status decides.
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "fuzz-diff.sh: differences in the ${mode} mode (replay: $0 $streams $seed)" >&2
        exit 1
    fi
done
