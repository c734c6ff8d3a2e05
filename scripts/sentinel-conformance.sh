#!/usr/bin/env bash
# Runs Redis's own Sentinel test suite (Redis 7.0.15's runtest-sentinel: 14
# units, 00-base .. 13-info-command) with Debian's redis-sentinel, with the
# proxy's Sentinel core in its place, and with a mixed set, and prints the
# outcomes side by side. In the proxy pass the suite's src/redis-sentinel is
# scripts/redis-sentinel, which runs `sentinel-proxy --sentinel-conf FILE`; in
# the mixed pass Sentinels 1 and 3 of the suite's five are Debian's
# redis-sentinel and the other three are the proxy, so they must interoperate.
#
#   scripts/sentinel-conformance.sh [--suite DIR] [--only real|proxy|mixed]
#                                   [--proxy BIN] [--timeout SECS] [RUNTEST-SENTINEL ARGS...]
#
# --suite    the Redis source tree holding runtest-sentinel and tests/ (default:
#            the REDIS_SUITE variable, else redis-7.0.15 in ../shared/peer beside
#            this checkout or beside the repository it was cloned from). Each
#            pass runs in its own copy of it.
# --only     run one pass: real (Debian's redis-sentinel), proxy or mixed
#            (repeatable: --only proxy --only mixed).
# --proxy    the proxy binary (default: the SENTINEL_PROXY_BIN variable, else
#            target/release/sentinel-proxy, built when missing).
# --timeout  seconds after which a pass is stopped (default 900).
# Any other argument, and every argument after `--`, goes to runtest-sentinel
# (see parse_options in the suite's tests/instances.tcl): `--single PATTERN`,
# repeatable, runs only the units whose file name contains PATTERN (e.g.
# `--single 00-base --single 05-manual`); `--config NAME VALUE` adds a directive
# to every instance's config file.
#
# Every Sentinel of the suite starts with `sentinel monitor setmaster 10.0.0.1
# 30000 2` in its config file (tests/sentinel/tests/includes/sentinel.conf) and
# so tries to reach 10.0.0.1, which is not on this machine, for as long as it
# runs. So that the suite only ever talks to loopback, each pass runs in a
# network namespace of its own (unshare --net) holding nothing but `lo`: there
# 10.0.0.1 is unreachable and no packet leaves the namespace. The script checks
# this inside the namespace before starting the suite, and stops otherwise.
# It also checks there that src/redis-sentinel answers PING within 10 s on a
# minimal config file: the runner would retry one that does not start for
# about 8 minutes. Each pass is stopped after --timeout seconds.
#
# The logs go to target/sentinel-conformance/: PASS.log for each pass and, for
# a pass with errors, each instance's log.txt, err.txt and config file in PASS/.
# The script exits 0 when every pass that runs the proxy (with --only real: the
# real pass) ends with "GOOD! No errors.". The last line is always
# `sentinel-conformance: ...`.
set -euo pipefail
export LC_ALL=C

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/find-suite.sh
. "$repo/scripts/find-suite.sh"
suite=$(find_suite runtest-sentinel)
passes=(real proxy mixed)
only=()
proxy_bin=${SENTINEL_PROXY_BIN:-}
pass_timeout=900
suite_args=()

while [ $# -gt 0 ]; do
    case $1 in
        --suite) suite=$2; shift 2 ;;
        --only)
            case $2 in
                real|proxy|mixed) only+=("$2") ;;
                *) echo "sentinel-conformance.sh: --only takes real, proxy or mixed" >&2; exit 2 ;;
            esac
            shift 2 ;;
        --proxy) proxy_bin=$2; shift 2 ;;
        --timeout) pass_timeout=$2; shift 2 ;;
        -h|--help) sed -n '2,43p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        --) shift; suite_args+=("$@"); break ;;
        *) suite_args+=("$1"); shift ;;
    esac
done

[ ${#only[@]} -eq 0 ] || passes=("${only[@]}")

need() {
    command -v "$1" >/dev/null 2>&1
}
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif need sudo; then sudo "$@"; else "$@"; fi
}
missing=()
for tool in redis-server redis-sentinel redis-cli redis-benchmark redis-check-aof redis-check-rdb ip; do
    need "$tool" || missing+=("$tool")
done
# runtest-sentinel looks for a versioned tclsh.
need tclsh8.5 || need tclsh8.6 || need tclsh8.7 || missing+=(tclsh8.6)
if [ ${#missing[@]} -gt 0 ]; then
    echo "sentinel-conformance.sh: installing redis-server redis-sentinel redis-tools tcl iproute2 (missing: ${missing[*]})" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        redis-server redis-sentinel redis-tools tcl iproute2 >/dev/null
fi
if [ -z "$suite" ] || [ ! -x "$suite/runtest-sentinel" ]; then
    echo "sentinel-conformance.sh: Redis's test suite not found${suite:+ in $suite} (give its tree with --suite or REDIS_SUITE)" >&2
    echo "sentinel-conformance: skipped, no test suite"
    exit 2
fi
# The wrapper runs in the suite's directory: the binary's path must be absolute.
[ -z "$proxy_bin" ] || proxy_bin=$(readlink -f "$proxy_bin")
if [[ " ${passes[*]} " != " real " ]] && [ -z "$proxy_bin" ]; then
    proxy_bin=$repo/target/release/sentinel-proxy
    [ -x "$proxy_bin" ] || (cd "$repo" && cargo build --release --quiet)
fi

# As root the namespace needs only --net; otherwise a user namespace comes with
# it, in which this user is root and may bring up lo.
ns_flags=(--net)
[ "$(id -u)" -eq 0 ] || ns_flags+=(--map-root-user)

results=$repo/target/sentinel-conformance
mkdir -p "$results"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-proxy-sentinel-conformance.XXXXXX")
running=

# Kills whatever is still running in a pass's network namespace (an instance
# left behind by a runner that was stopped), by pid.
sweep_namespace() {
    local ns own proc
    [ -s "$1" ] || return 0
    ns=$(cat "$1")
    own=$(readlink /proc/$$/ns/net)
    [ "$ns" != "$own" ] || return 0
    for proc in /proc/[0-9]*; do
        if [ "$(readlink "$proc/ns/net" 2>/dev/null)" = "$ns" ]; then
            kill -KILL "${proc#/proc/}" 2>/dev/null || true
        fi
    done
}
cleanup() {
    local ns
    if [ -n "$running" ]; then
        kill "$running" 2>/dev/null || true
        wait "$running" 2>/dev/null || true
    fi
    for ns in "$scratch"/*.netns; do sweep_namespace "$ns"; done
    chmod -R u+w "$scratch" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs inside the new namespace: brings up lo, makes sure nothing but lo is
# there and 10.0.0.1 is unreachable, checks that the Sentinel under test starts,
# then starts the suite.
# Arguments: tree, file for the namespace's id, runtest-sentinel's arguments.
# shellcheck disable=SC2016 # expanded by the shell in the namespace
in_namespace='
set -eu
tree=$1 netns_file=$2
shift 2
ip link set lo up
readlink /proc/self/ns/net >"$netns_file"
links=$(ip -o link show | grep -v "^[0-9]*: lo:" || true)
routes=$({ ip -4 route show table all; ip -6 route show table all 2>/dev/null || true; } | grep -v " dev lo " || true)
probe=$(timeout 5 redis-cli -h 10.0.0.1 -p 30000 ping 2>&1 || true)
if [ -n "$links$routes" ] || [[ $probe != *"Network is unreachable"* ]]; then
    echo "sentinel-conformance.sh: the network namespace is not loopback-only; not starting the suite" >&2
    printf "%s\n" "$links" "$routes" "$probe" >&2
    exit 99
fi
echo "network namespace $(cat "$netns_file"): lo only; redis-cli -h 10.0.0.1 -p 30000: $probe"
cd "$tree"
# The runner retries a Sentinel that does not come up 100 times, 5 s each,
# before it gives up; so first the Sentinel under test has 10 s to answer PING
# with a minimal config file, and as long as the runner gives it to stop.
mkdir preflight
printf "port 26379\ndir %s\nlogfile log.txt\n" "$PWD/preflight" >preflight/sentinel.conf
src/redis-sentinel preflight/sentinel.conf 2>preflight/err.txt &
pid=$!
for i in $(seq 1 100); do
    [ "$(redis-cli -p 26379 ping 2>/dev/null)" = PONG ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ "$(redis-cli -p 26379 ping 2>/dev/null)" != PONG ]; then
    echo "sentinel-conformance.sh: src/redis-sentinel FILE did not come up (no PONG on 127.0.0.1:26379 within 10 s); not starting the suite" >&2
    tail -n 20 preflight/err.txt preflight/log.txt >&2 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    exit 98
fi
kill "$pid" 2>/dev/null || true
for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -KILL "$pid" 2>/dev/null || true
wait "$pid" || true
exec ./runtest-sentinel "$@"
'

# A copy of the suite with the binaries in src/: Debian's, and for the proxy
# pass scripts/redis-sentinel as redis-sentinel; for the mixed pass a wrapper
# that picks by the instance's config file (sentinel_N/sentinel.conf).
prepare_tree() {
    local pass=$1 tree=$scratch/$1 tool
    cp -r "$suite" "$tree"
    chmod -R u+w "$tree"
    mkdir -p "$tree/src"
    for tool in redis-server redis-cli redis-benchmark redis-check-aof redis-check-rdb; do
        ln -sf "$(command -v "$tool")" "$tree/src/$tool"
    done
    case $pass in
        real) ln -sf "$(command -v redis-sentinel)" "$tree/src/redis-sentinel" ;;
        proxy) ln -sf "$repo/scripts/redis-sentinel" "$tree/src/redis-sentinel" ;;
        mixed)
            cat >"$tree/src/redis-sentinel" <<WRAPPER
#!/usr/bin/env bash
# Sentinels 1 and 3 are Debian's redis-sentinel, the others the proxy.
case \$1 in
    sentinel_1/*|sentinel_3/*) exec $(command -v redis-sentinel) "\$@" ;;
    *) exec $repo/scripts/redis-sentinel "\$@" ;;
esac
WRAPPER
            chmod +x "$tree/src/redis-sentinel" ;;
    esac
}

# Parses a runtest-sentinel log into unit<TAB>ok<TAB>errors lines, in the order
# the units ran. A check prints `HH:MM:SS> NAME: ` then OK, or FAILED: and the
# reason, after which the runner jumps to the next unit; an exception in a unit
# prints `FAILED: caught an error in the test`. Errors outside any unit (an
# instance that does not start) count under (startup).
tally() {
    sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
        BEGIN { unit = "(startup)" }
        /^Testing unit: / {
            unit = $3; sub(/\.tcl$/, "", unit)
            if (!(unit in ok)) { order[++n] = unit; ok[unit] = 0; err[unit] = 0 }
            open = 0; next
        }
        /^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]> / { open = 1 }
        /FAILED|WARNING: Aborting|Crash report found|ERROR: Sentinel has leaked fds/ {
            if (!(unit in ok)) { order[++n] = unit; ok[unit] = 0; err[unit] = 0 }
            err[unit]++; open = 0; next
        }
        open && /(^| )OK$/ { ok[unit]++; open = 0 }
        END {
            # A check cut short by the timeout.
            if (open) { if (!(unit in ok)) order[++n] = unit; err[unit]++ }
            for (i = 1; i <= n; i++) printf "%s\t%d\t%d\n", order[i], ok[order[i]], err[order[i]]
        }'
}

# One pass: the suite in a fresh loopback-only network namespace, under a
# timeout, then its counts.
run_pass() {
    local pass=$1 log=$results/$1.log rc=0 started ok err good=no dir
    prepare_tree "$pass"
    rm -rf "${results:?}/$pass" "$log"
    started=$SECONDS
    # --dont-clean keeps the instances' directories for the logs below (the
    # runner still stops every instance); the scratch copy goes at exit.
    SENTINEL_PROXY_BIN=$proxy_bin TERM=dumb \
        timeout -k 30 "$pass_timeout" unshare "${ns_flags[@]}" -- \
        bash -c "$in_namespace" in-namespace "$scratch/$pass" "$scratch/$pass.netns" \
        --dont-clean "${suite_args[@]}" >"$log" 2>&1 </dev/null &
    running=$!
    wait "$running" || rc=$?
    running=
    sweep_namespace "$scratch/$pass.netns"
    echo $((SECONDS - started)) >"$scratch/$pass.seconds"
    echo "$rc" >"$scratch/$pass.rc"
    if [ "$rc" -eq 99 ]; then
        sed 's/^/    /' "$log" >&2
        echo "sentinel-conformance: stopped, the $pass pass's network namespace is not loopback-only"
        exit 2
    fi
    tally "$log" >"$scratch/$pass.units"
    ok=$(awk -F'\t' '{ s += $2 } END { print s + 0 }' "$scratch/$pass.units")
    err=$(awk -F'\t' '{ s += $3 } END { print s + 0 }' "$scratch/$pass.units")
    grep -q 'GOOD! No errors\.' "$log" && good=yes
    echo "$ok $err $good" >"$scratch/$pass.counts"
    if [ "$rc" -ne 0 ] || [ "$good" = no ] || [ "$err" -gt 0 ]; then
        for dir in "$scratch/$pass"/tests/sentinel/tmp/{sentinel,redis}_*; do
            [ -d "$dir" ] || continue
            mkdir -p "$results/$pass/${dir##*/}"
            cp "$dir"/log.txt "$dir"/err.txt "$dir"/*.conf "$results/$pass/${dir##*/}/" 2>/dev/null || true
        done
        show_failures "$pass" "$log"
    fi
}

# For a pass with errors, prints each failure with the lines that follow it
# (the reason, the Tcl trace, a leaked-fd report) and the last lines of every
# Sentinel's log, so that a failure seen only in CI can be read from CI's output.
show_failures() {
    local pass=$1 log=$2 dir
    {
        echo "sentinel-conformance: the $pass pass's failures ($log):"
        # awk, not grep | head: neither no match nor a long log may end the
        # script here (set -e, pipefail).
        sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '
            /FAILED|WARNING: Aborting|Crash report found|ERROR: Sentinel has leaked fds/ { left = 13 }
            left > 0 && shown < 120 { print "    " $0; left--; shown++ }' || true
        for dir in "$results/$pass"/sentinel_*; do
            [ -f "$dir/log.txt" ] || continue
            echo "  last lines of ${dir##*/}/log.txt:"
            tail -n 25 "$dir/log.txt" | sed 's/^/    /' || true
        done
    } >&2
}

# One line per pass: counts, the verdict, how it ended and how long it took.
describe() {
    local pass=$1 ok err good rc seconds line
    read -r ok err good <"$scratch/$pass.counts"
    rc=$(cat "$scratch/$pass.rc")
    seconds=$(cat "$scratch/$pass.seconds")
    line="$ok OK, $err errors"
    if [ "$good" = yes ]; then line+=', "GOOD! No errors."'; else line+=', no "GOOD! No errors."'; fi
    case $rc in
        0) ;;
        98) line+=", src/redis-sentinel did not start (suite not run)" ;;
        124|137) line+=", stopped after ${pass_timeout} s" ;;
        *) line+=", exit $rc" ;;
    esac
    echo "$line ($seconds s)"
}

# A unit's cell in the table: ok N, FAILED (N ok, M errors), or - (not run).
cell() {
    local pass=$1 unit=$2
    [ -f "$scratch/$pass.units" ] || { echo "-"; return; }
    u=$unit awk -F'\t' '
        $1 == ENVIRON["u"] { found = 1; if ($3 == 0) print "ok " $2; else print "FAILED (" $2 " ok, " $3 " errors)" }
        END { if (!found) print "-" }' "$scratch/$pass.units"
}

for pass in "${passes[@]}"; do
    echo "sentinel-conformance.sh: $pass pass (log: ${results#"$repo"/}/$pass.log)" >&2
    run_pass "$pass"
done

for pass in "${passes[@]}"; do
    printf '%-6s %s\n' "$pass:" "$(describe "$pass")"
done
units=()
if awk -F'\t' '$1 == "(startup)" { found = 1 } END { exit !found }' "$scratch"/*.units; then
    units+=("(startup)")
fi
for unit in "$suite"/tests/sentinel/tests/*.tcl; do
    unit=${unit##*/}
    units+=("${unit%.tcl}")
done
echo
{
    printf '%-22s' unit
    for pass in "${passes[@]}"; do printf '%-30s' "$pass"; done
    echo
    for unit in "${units[@]}"; do
        printf '%-22s' "$unit"
        for pass in "${passes[@]}"; do printf '%-30s' "$(cell "$pass" "$unit")"; done
        echo
    done
} | sed 's/ *$//'
echo

summary=
for pass in "${passes[@]}"; do
    summary+="${summary:+; }$pass $(describe "$pass")"
done
echo "sentinel-conformance: $summary"
# The verdict: every pass that runs the proxy, or the real one alone.
verdicts=()
for pass in "${passes[@]}"; do
    [ "$pass" = real ] || verdicts+=("$pass")
done
[ ${#verdicts[@]} -gt 0 ] || verdicts=(real)
for verdict in "${verdicts[@]}"; do
    read -r _ err good <"$scratch/$verdict.counts"
    [ "$(cat "$scratch/$verdict.rc")" -eq 0 ] && [ "$good" = yes ] && [ "$err" -eq 0 ] || exit 1
done
