#!/usr/bin/env bash
# Runs the whole test suite. The integration tests need redis-server,
# redis-sentinel, redis-cli and python3-redis (redis-py, a Sentinel-aware
# client); they are installed with apt-get when missing. A current redis-py
# from PyPI is installed into a venv under target/ (see below).
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

# A current redis-py (8.x, from PyPI) for the client tests: it opens every
# connection with HELLO 3, as current Sentinel-aware clients do. Installed once
# into a venv under target/ and handed to the tests as
# SENTINEL_PROXY_TEST_PYTHON. Debian's interpreter is used when present (pyenv
# or another python3 may come first on the PATH); its venv module comes in
# Debian's python3-venv package.
py_venv=target/py-venv
py_venv_ready() {
    "$py_venv/bin/python" -c \
        'import redis, sys; sys.exit(redis.__version__.split(".")[0] != "8")' \
        >/dev/null 2>&1
}
if ! py_venv_ready; then
    base_python=/usr/bin/python3
    [ -x "$base_python" ] || base_python=$(command -v python3 || true)
    if [ -n "$base_python" ] && ! "$base_python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        echo "test.sh: installing python3-venv" >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null || true
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3-venv >/dev/null || true
    fi
    echo "test.sh: creating $py_venv with redis-py 8 from PyPI" >&2
    rm -rf "$py_venv"
    if [ -n "$base_python" ] && "$base_python" -m venv "$py_venv" >/dev/null; then
        timeout 300 "$py_venv/bin/pip" install --quiet --disable-pip-version-check \
            'redis>=8,<9' || true
    fi
fi
if py_venv_ready; then
    SENTINEL_PROXY_TEST_PYTHON="$PWD/$py_venv/bin/python"
    export SENTINEL_PROXY_TEST_PYTHON
else
    rm -rf "$py_venv"
    echo "test.sh: could not install redis-py 8 into $py_venv (no python3 -m venv, or pip" \
        "could not reach PyPI); the clients:: tests will fail, the others use Debian's" \
        "python3-redis" >&2
fi

# The data path tests run a second time with one backend connection per client
# (--share-backend false, read by every proxy the tests start from this variable).
shared_modules=(resp session limits hold classify failover core_switchover shared passthrough fuzz_diff tls tls_backend)
# The tests that run real redis-sentinel processes run a third time with
# `sentinel-proxy --sentinel-conf` standing in for every one of them.
sentinel_modules=(failover core core_interop core_sentinels clients harness_selftest tls_backend)
status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --all-targets --no-fail-fast "$@" || status=$?
    echo "test.sh: the data path tests again, with one backend connection per client" >&2
    filter="test(/^($(IFS='|'; echo "${shared_modules[*]}"))::/)"
    SENTINEL_PROXY_SHARE_BACKEND=false \
        cargo nextest run --test it --no-fail-fast -E "$filter" "$@" || status=$?
    echo "test.sh: the tests with Redis Sentinels again, the proxy standing in for them" >&2
    filter="test(/^($(IFS='|'; echo "${sentinel_modules[*]}"))::/)"
    SENTINEL_PROXY_TEST_SENTINEL=proxy \
        cargo nextest run --test it --no-fail-fast -E "$filter" "$@" || status=$?
else
    echo "test.sh: cargo-nextest not found; using cargo test" >&2
    cargo test --all-targets --no-fail-fast "$@" || status=$?
    echo "test.sh: the data path tests again, with one backend connection per client" >&2
    SENTINEL_PROXY_SHARE_BACKEND=false \
        cargo test --test it --no-fail-fast -- "${shared_modules[@]/%/::}" || status=$?
    echo "test.sh: the tests with Redis Sentinels again, the proxy standing in for them" >&2
    SENTINEL_PROXY_TEST_SENTINEL=proxy \
        cargo test --test it --no-fail-fast -- "${sentinel_modules[@]/%/::}" || status=$?
fi
exit "$status"
