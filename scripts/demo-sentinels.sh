#!/usr/bin/env bash
# scripts/demo-sentinels.sh — a local Redis Sentinel lab with sentinel-proxy following it, one command.
#
# WHAT IT STARTS (all on 127.0.0.1, in a temporary directory)
#   redis-server    1 master + 2 replicas        ports BASE_PORT .. BASE_PORT+2
#   redis-sentinel  3 Sentinels monitoring "mymaster" (quorum 2,
#                   down-after-milliseconds 1000, failover-timeout 10000)
#                                                ports BASE_PORT+100 .. +102
#   sentinel-proxy  following the three Sentinels   port PROXY_PORT
#
#   It prints a table of addresses and a few commands to try, then follows the
#   proxy's log until Ctrl-C (or --duration). On exit it stops exactly the
#   processes it started and removes its temporary directory.
#
#   Missing redis-server, redis-sentinel or redis-tools (and python3 for
#   --writer) are installed with apt-get (sudo only when not root). The proxy
#   is built with cargo build --release.
#
# USAGE
#   scripts/demo-sentinels.sh [--chaos N] [--writer] [--duration N]
#
#   --chaos N      every N seconds, kill -9 the current master (as the Sentinels
#                  name it); restart it a few seconds after the failover, with
#                  its own config file (Sentinel turns it into a replica)
#   --writer       one client INCRs demo:counter through the proxy on a single
#                  connection and prints, each second, how many succeeded and
#                  any error it saw (scripts/demo_writer.py)
#   --duration N   stop by itself after N seconds, print a summary, and exit
#                  non-zero if --chaos caused no master switch in the proxy or
#                  the --writer had no successful write in its last 3 seconds
#   -h, --help     this text
#
# ENVIRONMENT
#   PROXY_PORT=6380           the proxy's client port
#   BASE_PORT=7000            first redis port; Sentinels at BASE_PORT+100
#   LOG_LEVEL=info            the proxy's --log-level
#   PROXY_ARGS="..."          extra arguments for the proxy (e.g. --on-switch close)
#   CHAOS_RESTART_AFTER=3     seconds between the failover and the restart
#   KEEP_TMP=1                keep the temporary directory (configs and logs)
#
# EXAMPLES
#   scripts/demo-sentinels.sh                                   # lab; try the printed commands
#   scripts/demo-sentinels.sh --writer --chaos 10               # watch a client ride failovers
#   scripts/demo-sentinels.sh --duration 20 --chaos 8 --writer  # unattended check
#
# shellcheck disable=SC2317 # functions run through trap and wait_for
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;/^# shellcheck/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

CHAOS=0
WRITER=0
DURATION=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help)
            usage
            exit 0
            ;;
        --chaos)
            CHAOS=${2:-}
            shift 2 || true
            ;;
        --chaos=*)
            CHAOS=${1#*=}
            shift
            ;;
        --writer)
            WRITER=1
            shift
            ;;
        --duration)
            DURATION=${2:-}
            shift 2 || true
            ;;
        --duration=*)
            DURATION=${1#*=}
            shift
            ;;
        *)
            echo "demo-sentinels.sh: unknown argument '$1' (see --help)" >&2
            exit 2
            ;;
    esac
done
for pair in "chaos:$CHAOS" "duration:$DURATION"; do
    if ! [[ ${pair#*:} =~ ^[0-9]+$ ]]; then
        echo "demo-sentinels.sh: --${pair%%:*} needs a whole number of seconds" >&2
        exit 2
    fi
done

PROXY_PORT=${PROXY_PORT:-6380}
BASE_PORT=${BASE_PORT:-7000}
LOG_LEVEL=${LOG_LEVEL:-info}
PROXY_ARGS=${PROXY_ARGS:-}
CHAOS_RESTART_AFTER=${CHAOS_RESTART_AFTER:-3}
MASTER_NAME=mymaster
HOST=127.0.0.1
REDIS_PORTS=("$BASE_PORT" "$((BASE_PORT + 1))" "$((BASE_PORT + 2))")
SENTINEL_PORTS=("$((BASE_PORT + 100))" "$((BASE_PORT + 101))" "$((BASE_PORT + 102))")

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

say() { printf '[demo] %s\n' "$*"; }
die() {
    printf 'demo-sentinels.sh: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- prerequisites

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || packages+=(redis-sentinel)
if ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
    packages+=(redis-tools)
fi
if [ "$WRITER" -eq 1 ] && ! command -v python3 >/dev/null 2>&1; then
    packages+=(python3)
fi
if [ ${#packages[@]} -gt 0 ]; then
    say "installing ${packages[*]} with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
fi

say "building the proxy (cargo build --release)"
cargo build --release
PROXY_BIN=$ROOT/target/release/sentinel-proxy

port_in_use() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}
for port in "$PROXY_PORT" "${REDIS_PORTS[@]}" "${SENTINEL_PORTS[@]}"; do
    if port_in_use "$port"; then
        die "port $port on $HOST is already in use; choose others with PROXY_PORT / BASE_PORT"
    fi
done

# ------------------------------------------------------- processes and cleanup

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sentinel-proxy-demo.XXXXXX")
declare -A PID=()  # name -> PID of a process this script started
ORDER=()           # names in start order; stopped in reverse

# A PID is ours while it is our child: bash's $! children all have this
# shell as parent, so a recycled PID (another program's) is never signalled.
ours() {
    [ -n "${1:-}" ] && [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ]
}

stop_pid() {
    local pid=$1 signal=${2:-TERM} waited=0
    ours "$pid" || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    while ours "$pid" && kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 100 ]; do
        # A zombie still answers kill -0; wait reaps it once it has exited.
        if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = "Z" ]; then
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    if ours "$pid" && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != "Z" ]; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - INT TERM EXIT
    set +e
    echo
    say "stopping"
    # The writer first (it prints its summary), then the proxy (its shutdown
    # shows in the followed log), then the rest in reverse start order, so
    # the Sentinels are gone before the servers stop and no failover starts.
    local i name
    stop_pid "${PID[writer]:-}" TERM
    stop_pid "${PID[proxy]:-}" TERM
    sleep 0.3
    for ((i = ${#ORDER[@]} - 1; i >= 0; i--)); do
        name=${ORDER[$i]}
        stop_pid "${PID[$name]:-}" TERM
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        say "stopped every process it started; logs kept in $TMP"
    else
        rm -rf "$TMP"
        say "stopped every process it started and removed $TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Children run in their own session (setsid execs in place: a background
# child of this shell is never a process group leader, so $! stays the PID of
# the real process). Ctrl-C then reaches only this script, whose cleanup stops
# them in order: the writer prints its summary and the proxy drains.
SETSID=()
if command -v setsid >/dev/null 2>&1; then
    SETSID=(setsid)
fi

# start NAME LOGFILE COMMAND... — runs COMMAND in the background and records
# its PID; LOGFILE "-" leaves its output on the terminal.
start() {
    local name=$1 log=$2
    shift 2
    if [ "$log" = - ]; then
        "${SETSID[@]}" "$@" &
    else
        "${SETSID[@]}" "$@" >>"$log" 2>&1 &
    fi
    PID[$name]=$!
    if [[ ! " ${ORDER[*]} " == *" $name "* ]]; then
        ORDER+=("$name")
    fi
}

cli() { redis-cli -h "$HOST" -p "$1" "${@:2}"; }

# wait_for SECONDS DESCRIPTION COMMAND... — polls COMMAND until it succeeds.
wait_for() {
    local seconds=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "timed out after ${seconds}s waiting for $what (logs in $TMP)"
        fi
        sleep 0.2
    done
}

# --------------------------------------------------------------- redis servers

redis_conf() {
    local port=$1 replicaof=${2:-}
    local dir=$TMP/redis-$port
    mkdir -p "$dir"
    {
        echo "dir $dir"
        echo "logfile $dir/redis.log"
        if [ -n "$replicaof" ]; then
            echo "replicaof $HOST $replicaof"
        fi
    } >"$dir/redis.conf"
}

# The same command line for the first start and for --chaos restarts: role
# and everything Sentinel rewrites (CONFIG REWRITE) live in the config file.
start_redis() {
    local port=$1 dir=$TMP/redis-$1
    start "redis-$port" "$dir/stdout.log" \
        redis-server "$dir/redis.conf" --port "$port" --bind "$HOST" \
        --save "" --appendonly no --daemonize no
}

MASTER_PORT=${REDIS_PORTS[0]}
redis_conf "$MASTER_PORT"
redis_conf "${REDIS_PORTS[1]}" "$MASTER_PORT"
redis_conf "${REDIS_PORTS[2]}" "$MASTER_PORT"
for port in "${REDIS_PORTS[@]}"; do
    start_redis "$port"
done
for port in "${REDIS_PORTS[@]}"; do
    wait_for 15 "redis-server on port $port" cli "$port" ping
done

replica_synced() {
    cli "$1" info replication | grep -q '^master_link_status:up'
}
for port in "${REDIS_PORTS[@]:1}"; do
    wait_for 20 "replica $port to sync" replica_synced "$port"
done

# ------------------------------------------------------------------- sentinels

for port in "${SENTINEL_PORTS[@]}"; do
    dir=$TMP/sentinel-$port
    mkdir -p "$dir"
    cat >"$dir/sentinel.conf" <<EOF
port $port
bind $HOST
dir $dir
logfile $dir/sentinel.log
sentinel monitor $MASTER_NAME $HOST $MASTER_PORT 2
sentinel down-after-milliseconds $MASTER_NAME 1000
sentinel failover-timeout $MASTER_NAME 10000
sentinel parallel-syncs $MASTER_NAME 1
EOF
    start "sentinel-$port" "$dir/stdout.log" redis-sentinel "$dir/sentinel.conf" --daemonize no
done

# Failover needs every Sentinel to know the replicas and the other Sentinels.
sentinel_ready() {
    local info
    info=$(cli "$1" sentinel master "$MASTER_NAME") || return 1
    printf '%s\n' "$info" | grep -A1 -x 'num-slaves' | tail -n1 | grep -qx 2 &&
        printf '%s\n' "$info" | grep -A1 -x 'num-other-sentinels' | tail -n1 | grep -qx 2
}
for port in "${SENTINEL_PORTS[@]}"; do
    wait_for 30 "Sentinel $port to discover the replicas and the other Sentinels" \
        sentinel_ready "$port"
done

# ----------------------------------------------------------------------- proxy

proxy_args=(--master-name "$MASTER_NAME" --listen "$HOST:$PROXY_PORT" --log-level "$LOG_LEVEL")
for port in "${SENTINEL_PORTS[@]}"; do
    proxy_args+=(--sentinel "$HOST:$port")
done
# shellcheck disable=SC2206 # PROXY_ARGS is split on purpose
proxy_args+=($PROXY_ARGS)
PROXY_LOG=$TMP/proxy.log
: >"$PROXY_LOG"
start proxy "$PROXY_LOG" env NO_COLOR=1 "$PROXY_BIN" "${proxy_args[@]}"
proxy_pong() { [ "$(cli "$PROXY_PORT" ping 2>/dev/null)" = "PONG" ]; }
wait_for 20 "the proxy to answer PING on $HOST:$PROXY_PORT" proxy_pong

# ------------------------------------------------------------------ the table

current_master_port() {
    local port reply
    for port in "${SENTINEL_PORTS[@]}"; do
        if reply=$(cli "$port" sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null) &&
            [ "$(printf '%s\n' "$reply" | wc -l)" -eq 2 ]; then
            printf '%s\n' "$reply" | tail -n1
            return 0
        fi
    done
    return 1
}

echo
printf '  %-9s %-18s %-8s %s\n' ROLE ADDRESS PID LOG
for port in "${REDIS_PORTS[@]}"; do
    role=replica
    [ "$port" = "$MASTER_PORT" ] && role=master
    printf '  %-9s %-18s %-8s %s\n' "$role" "$HOST:$port" "${PID[redis-$port]}" "$TMP/redis-$port/redis.log"
done
for port in "${SENTINEL_PORTS[@]}"; do
    printf '  %-9s %-18s %-8s %s\n' sentinel "$HOST:$port" "${PID[sentinel-$port]}" "$TMP/sentinel-$port/sentinel.log"
done
printf '  %-9s %-18s %-8s %s\n' proxy "$HOST:$PROXY_PORT" "${PID[proxy]}" "$PROXY_LOG"
echo
echo "try:"
echo "  redis-cli -p $PROXY_PORT set k v"
echo "  redis-cli -p $PROXY_PORT get k"
echo "  redis-benchmark -p $PROXY_PORT -t set,get -n 100000 -q"
echo "  redis-cli -p ${SENTINEL_PORTS[0]} sentinel get-master-addr-by-name $MASTER_NAME   # who is master"
echo "  redis-cli -p ${SENTINEL_PORTS[0]} sentinel failover $MASTER_NAME                  # planned failover"
echo "  kill -9 ${PID[redis-$MASTER_PORT]}   # crash the master (port $MASTER_PORT); a node killed by hand stays down"
echo
if [ "$DURATION" -gt 0 ]; then
    say "running for ${DURATION}s; the proxy's log follows"
else
    say "Ctrl-C stops everything; the proxy's log follows"
fi
echo

start tail - tail -n +1 -F "$PROXY_LOG"

if [ "$WRITER" -eq 1 ]; then
    WRITER_COUNTS=$TMP/writer.counts
    : >"$WRITER_COUNTS"
    start writer - python3 -u "$ROOT/scripts/demo_writer.py" "$PROXY_PORT" "$WRITER_COUNTS"
fi

# --------------------------------------------------------------- main loop

KILLED_PORT=""
KILLED_AT=0
FAILED_OVER_AT=0
NEXT_CHAOS=$((SECONDS + CHAOS))
KILLS=0
START=$SECONDS

chaos_tick() {
    local now=$SECONDS master
    if [ -n "$KILLED_PORT" ]; then
        # Restart the killed node once the Sentinels have moved on (or have
        # given up trying for 20 s), after CHAOS_RESTART_AFTER more seconds.
        master=$(current_master_port || true)
        if [ "$FAILED_OVER_AT" -eq 0 ]; then
            if [ -n "$master" ] && [ "$master" != "$KILLED_PORT" ]; then
                FAILED_OVER_AT=$now
                say "chaos: the Sentinels now name $HOST:$master as master"
            elif [ $((now - KILLED_AT)) -ge 20 ]; then
                FAILED_OVER_AT=$now
                say "chaos: no failover after 20s"
            fi
        fi
        if [ "$FAILED_OVER_AT" -gt 0 ] && [ $((now - FAILED_OVER_AT)) -ge "$CHAOS_RESTART_AFTER" ]; then
            start_redis "$KILLED_PORT"
            say "chaos: restarted $HOST:$KILLED_PORT (pid ${PID[redis-$KILLED_PORT]}); Sentinel will make it a replica"
            KILLED_PORT=""
            # Give the restarted node a moment to sync before the next kill.
            if [ "$NEXT_CHAOS" -lt $((now + 2)) ]; then
                NEXT_CHAOS=$((now + 2))
            fi
        fi
        return 0
    fi
    [ "$now" -ge "$NEXT_CHAOS" ] || return 0
    if ! master=$(current_master_port); then
        say "chaos: no Sentinel answers; skipping this round"
        NEXT_CHAOS=$((now + CHAOS))
        return 0
    fi
    if ! ours "${PID[redis-$master]:-}"; then
        say "chaos: the master $HOST:$master is not a process of this lab; skipping"
        NEXT_CHAOS=$((now + CHAOS))
        return 0
    fi
    say "chaos: kill -9 ${PID[redis-$master]} (master $HOST:$master)"
    # Out of the job table, so bash does not announce "Killed"; it is still
    # our child (and reaped by bash), so ours() keeps recognising it.
    disown "${PID[redis-$master]}" 2>/dev/null || true
    kill -KILL "${PID[redis-$master]}"
    NEXT_CHAOS=$((now + CHAOS))
    KILLED_PORT=$master
    KILLED_AT=$now
    FAILED_OVER_AT=0
    KILLS=$((KILLS + 1))
}

while :; do
    if [ "$DURATION" -gt 0 ] && [ $((SECONDS - START)) -ge "$DURATION" ]; then
        break
    fi
    if [ "$CHAOS" -gt 0 ]; then
        chaos_tick
    fi
    if ! ours "${PID[proxy]}" || [ "$(ps -o stat= -p "${PID[proxy]}" | cut -c1)" = Z ]; then
        die "the proxy exited; its log is above"
    fi
    sleep 1
done

# ------------------------------------------------------------------ summary

echo
say "summary after ${DURATION}s"
failed=0
committed=$(sed -n 's/.*master committed: .* master=\([^ ]*\).*/\1/p' "$PROXY_LOG")
switches=$(printf '%s' "$committed" | grep -c . || true)
say "masters the proxy committed, in order: $(printf '%s' "$committed" | paste -sd' ' | sed 's/ / -> /g')"
if [ "$CHAOS" -gt 0 ]; then
    say "chaos kills: $KILLS"
    if [ "$KILLS" -gt 0 ] && [ "$switches" -lt 2 ]; then
        say "FAIL: the master was killed but the proxy never switched"
        failed=1
    fi
fi
if [ "$WRITER" -eq 1 ]; then
    recent=$(tail -n 3 "$WRITER_COUNTS" | awk '{ ok += $2 } END { print ok + 0 }')
    say "writer: $recent successful INCRs in its last 3 seconds"
    if [ "$recent" -eq 0 ]; then
        say "FAIL: the writer has not recovered"
        failed=1
    fi
fi
exit "$failed"
