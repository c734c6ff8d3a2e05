#!/usr/bin/env bash
# Runs the whole test suite. The integration tests need redis-server,
# redis-sentinel, redis-cli and python3-redis (redis-py, a Sentinel-aware
# client); they are installed with apt-get when missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

missing=0
for bin in redis-server redis-sentinel redis-cli; do
    if ! command -v "$bin" >/dev/null 2>&1; then
        echo "test.sh: $bin not found" >&2
        missing=1
    fi
done
# redis-py (Debian's python3-redis) plays the Sentinel-aware client.
if ! /usr/bin/python3 -c "import redis" >/dev/null 2>&1; then
    echo "test.sh: python3-redis not found" >&2
    missing=1
fi
if [ "$missing" -eq 1 ]; then
    echo "test.sh: installing redis-server, redis-sentinel, redis-tools and python3-redis" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        redis-server redis-sentinel redis-tools python3-redis
fi

# The data path tests run a second time with shared backend connections
# (--share-backend, read by every proxy the tests start from this variable).
shared_modules=(resp session limits hold classify failover shared passthrough)
status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --all-targets --no-fail-fast "$@" || status=$?
    echo "test.sh: the data path tests again, with --share-backend" >&2
    filter="test(/^($(IFS='|'; echo "${shared_modules[*]}"))::/)"
    SENTINEL_PROXY_SHARE_BACKEND=true \
        cargo nextest run --test it --no-fail-fast -E "$filter" "$@" || status=$?
else
    echo "test.sh: cargo-nextest not found; using cargo test" >&2
    cargo test --all-targets --no-fail-fast "$@" || status=$?
    echo "test.sh: the data path tests again, with --share-backend" >&2
    SENTINEL_PROXY_SHARE_BACKEND=true \
        cargo test --test it --no-fail-fast -- "${shared_modules[@]/%/::}" || status=$?
fi
exit "$status"
