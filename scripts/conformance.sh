#!/usr/bin/env bash
# Runs Redis's own client test suite (Redis 7.0.15's Tcl suite, external-server
# mode) against a redis-server directly, then through the proxy in its default
# mode (clients in Redis's default connection state share a backend
# connection) and with --share-backend false (one backend connection per
# client), and compares the outcomes test by test.
#
#   scripts/conformance.sh [--suite DIR] [--passes direct,default,own] [--proxy BIN]
#
# --suite   the Redis source tree holding runtest and tests/ (default: the
#           REDIS_SUITE variable, else redis-7.0.15 in ../shared/peer beside
#           this checkout or beside the repository it was cloned from). It is
#           copied to a scratch directory first; the suite writes into tests/tmp.
#           Without one the script says so and exits 0, unless
#           CONFORMANCE_REQUIRED=1.
# --passes  which passes to run, comma-separated (default: all three). Without
#           a direct pass, the outcomes are compared with the baseline list
#           scripts/conformance-baseline.tests.
# --proxy   the proxy binary (default: target/release/sentinel-proxy, built
#           when missing).
#
# A test that passes directly and not through the proxy is a difference. A
# difference listed in scripts/conformance-known.txt (unit<TAB>name: tests
# that race two clients' commands across connections) is reported but
# tolerated; any other difference makes the script exit 1.
# The last line is always `conformance: ...` with the counts.
set -euo pipefail
export LC_ALL=C # one byte order for sort and comm

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/find-suite.sh
. "$repo/scripts/find-suite.sh"
suite=$(find_suite runtest)
passes=direct,default,own
proxy_bin=$repo/target/release/sentinel-proxy

while [ $# -gt 0 ]; do
    case $1 in
        --suite) suite=$2; shift 2 ;;
        --passes) passes=$2; shift 2 ;;
        --proxy) proxy_bin=$2; shift 2 ;;
        -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "conformance.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

# The units and tags of Redis's external-server CI job: every unit that can
# run against a server it did not start, without the slow and replication
# tests.
units=(
    unit/printver unit/dump unit/protocol unit/keyspace unit/scan unit/info-command
    unit/type/string unit/type/incr unit/type/list unit/type/list-3 unit/type/set
    unit/type/zset unit/type/hash unit/type/stream unit/type/stream-cgroups unit/sort
    unit/expire unit/other unit/multi unit/quit unit/latency-monitor integration/redis-cli
    unit/pubsub unit/slowlog unit/scripting unit/functions unit/introspection
    unit/introspection-2 unit/bitops unit/bitfield unit/geo unit/hyperloglog unit/lazyfree
    unit/pause unit/tracking unit/violations unit/replybufsize
)

need() {
    command -v "$1" >/dev/null 2>&1
}
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif need sudo; then sudo "$@"; else "$@"; fi
}
missing=()
for tool in redis-server redis-cli redis-benchmark redis-check-aof redis-check-rdb tclsh; do
    need "$tool" || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "conformance.sh: installing redis-server redis-tools tcl (missing: ${missing[*]})" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        redis-server redis-tools tcl >/dev/null
fi
if [ -z "$suite" ] || [ ! -x "$suite/runtest" ]; then
    echo "conformance.sh: Redis's test suite not found${suite:+ in $suite} (give its tree with --suite or REDIS_SUITE)" >&2
    echo "conformance: skipped, no test suite"
    [ "${CONFORMANCE_REQUIRED:-0}" = 1 ] && exit 2
    exit 0
fi
if [[ ",$passes," == *,default,* || ",$passes," == *,own,* ]] && [ ! -x "$proxy_bin" ]; then
    (cd "$repo" && cargo build --release --quiet)
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-proxy-conformance.XXXXXX")
pids=()
stop_all() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    pids=()
}
trap 'stop_all; rm -rf "$scratch"' EXIT

cp -r "$suite" "$scratch/tree"
mkdir -p "$scratch/tree/src"
for tool in redis-server redis-cli redis-benchmark redis-check-aof redis-check-rdb redis-sentinel; do
    if need "$tool"; then ln -sf "$(command -v "$tool")" "$scratch/tree/src/$tool"; fi
done

# A free loopback TCP port (bound and released; nothing else here races for it).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "conformance.sh: nothing answers PING on 127.0.0.1:$port" >&2
    return 1
}

# Parses a runtest log into unit<TAB>name<TAB>ok|err lines. External mode runs
# one test client, so the tests of a unit are the ones before its `done` line.
outcomes() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
        /^\[ok\]: / {
            line = substr($0, 7); sub(/ \([0-9]+ ms\)$/, "", line)
            names[++n] = line; states[n] = "ok"; next
        }
        /^\[err\]: / {
            line = substr($0, 8); sub(/ in [^ ]+\.tcl$/, "", line)
            names[++n] = line; states[n] = "err"; next
        }
        /^\[[0-9]+\/[0-9]+ done\]: / {
            unit = $3
            for (i = first + 1; i <= n; i++) printf "%s\t%s\t%s\n", unit, names[i], states[i]
            first = n; next
        }
        END {
            for (i = first + 1; i <= n; i++) printf "%s\t%s\t%s\n", "(unfinished)", names[i], states[i]
        }'
}

# One pass: a fresh backend (the suite leaks CONFIG SET changes), optionally a
# proxy in front of it, then the suite against whichever is the endpoint.
run_pass() {
    local pass=$1 backend_port endpoint sentinel_port proxy_flags=()
    backend_port=$(free_port)
    mkdir -p "$scratch/$pass"
    redis-server --port "$backend_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$scratch/$pass" --enable-protected-configs yes --enable-debug-command yes \
        --enable-module-command yes --daemonize no --logfile "$scratch/$pass/redis.log" &
    pids+=($!)
    wait_for_port "$backend_port"
    endpoint=$backend_port
    if [ "$pass" != direct ]; then
        endpoint=$(free_port)
        sentinel_port=$(free_port)
        [ "$pass" = own ] && proxy_flags+=(--share-backend false)
        "$proxy_bin" --master "127.0.0.1:$backend_port" --listen "127.0.0.1:$endpoint" \
            --sentinel-listen "127.0.0.1:$sentinel_port" --metrics-listen off \
            --data-dir "$scratch/$pass" --quorum 1 --down-after-ms 60000 \
            --log-level warn "${proxy_flags[@]}" >"$scratch/$pass/proxy.log" 2>&1 &
        pids+=($!)
        wait_for_port "$endpoint"
        # The built-in Sentinel publishes a hello on the master every 2 s, as
        # any Sentinel does. The suite's replication-stream tests expect to see
        # only their own writes, which would equally fail with a redis-sentinel
        # monitoring the server, so the hellos are spaced out for the run.
        redis-cli -h 127.0.0.1 -p "$sentinel_port" sentinel debug publish-period 3600000 >/dev/null
    fi
    local single=() unit
    for unit in "${units[@]}"; do single+=(--single "$unit"); done
    local started=$SECONDS
    (cd "$scratch/tree" && ./runtest --host 127.0.0.1 --port "$endpoint" \
        --tags "-slow -needs:repl" --durable --timeout 300 "${single[@]}") \
        >"$scratch/$pass/runtest.log" 2>&1 || true
    outcomes "$scratch/$pass/runtest.log" >"$scratch/$pass/outcomes"
    local ok err
    ok=$(grep -c $'\tok$' "$scratch/$pass/outcomes" || true)
    err=$(grep -c $'\terr$' "$scratch/$pass/outcomes" || true)
    echo "$ok passed, $err failed" >"$scratch/$pass/counts"
    echo "$pass: $ok passed, $err failed ($((SECONDS - started)) s)"
    if grep -q '^\[exception\]\|Timeout waiting\|no progress' "$scratch/$pass/runtest.log"; then
        echo "$pass: the run ended early; the end of its log:"
        sed 's/\x1b\[[0-9;]*m//g' "$scratch/$pass/runtest.log" | tail -n 15 | sed 's/^/    /'
    fi
    if [ -n "${CONFORMANCE_LOGS:-}" ]; then
        mkdir -p "$CONFORMANCE_LOGS/$pass"
        cp "$scratch/$pass"/*.log "$scratch/$pass/outcomes" "$CONFORMANCE_LOGS/$pass/" 2>/dev/null || true
    fi
    stop_all
}

IFS=, read -r -a chosen <<<"$passes"
for pass in "${chosen[@]}"; do
    case $pass in
        direct|default|own) run_pass "$pass" ;;
        *) echo "conformance.sh: unknown pass $pass (direct, default, own)" >&2; exit 2 ;;
    esac
done

# The reference: the direct pass when it ran, else the recorded baseline.
if [ -f "$scratch/direct/outcomes" ]; then
    awk -F'\t' '$3 == "ok" { print $1 "\t" $2 }' "$scratch/direct/outcomes" | sort >"$scratch/reference"
else
    grep -v '^#' "$repo/scripts/conformance-baseline.tests" | sort >"$scratch/reference"
fi
# Known races (two clients' commands read by Redis in the other order) are
# reported and tolerated in both proxy passes.
known=$repo/scripts/conformance-known.txt
grep -v '^#' "$known" 2>/dev/null | grep -v '^$' | sort -u >"$scratch/known" || true

unexpected=0
for pass in "${chosen[@]}"; do
    [ "$pass" = direct ] && continue
    awk -F'\t' '$3 == "ok" { print $1 "\t" $2 }' "$scratch/$pass/outcomes" | sort >"$scratch/$pass/passed"
    comm -23 "$scratch/reference" "$scratch/$pass/passed" >"$scratch/$pass/lost"
    tolerated=$scratch/known
    comm -23 "$scratch/$pass/lost" "$tolerated" >"$scratch/$pass/unexpected"
    comm -13 "$scratch/reference" "$scratch/$pass/passed" >"$scratch/$pass/gained"
    lost=$(wc -l <"$scratch/$pass/lost")
    new=$(wc -l <"$scratch/$pass/unexpected")
    if [ "$lost" -gt 0 ]; then
        echo "$pass: $lost of the reference's passing tests did not pass ($new not in $(basename "$known")):"
        while IFS=$'\t' read -r unit name; do
            state=$(u=$unit n=$name awk -F'\t' '$1 == ENVIRON["u"] && $2 == ENVIRON["n"] { print $3 }' \
                "$scratch/$pass/outcomes" | head -n 1)
            mark=""
            grep -qxF "$unit"$'\t'"$name" "$tolerated" && mark=" (known)"
            echo "    $unit: $name [${state:-not run}]$mark"
        done <"$scratch/$pass/lost"
    fi
    if [ -s "$scratch/$pass/gained" ]; then
        echo "$pass: passed but not in the reference:"
        sed 's/^/    /; s/\t/: /' "$scratch/$pass/gained"
    fi
    unexpected=$((unexpected + new))
done
summary=()
for pass in "${chosen[@]}"; do
    line="$pass $(cat "$scratch/$pass/counts")"
    [ "$pass" = direct ] || line+=" ($(wc -l <"$scratch/$pass/lost") of the reference's lost)"
    summary+=("$line")
done
[ -f "$scratch/direct/outcomes" ] || summary=("baseline $(wc -l <"$scratch/reference") passed" "${summary[@]}")
echo "conformance: $(IFS=';'; echo "${summary[*]}" | sed 's/;/; /g')"
[ "$unexpected" -eq 0 ]
