#!/usr/bin/env bash
# scripts/bench.sh — sentinel-proxy vs HAProxy vs direct Redis, one command.
#
# WHAT IT MEASURES
#   Four ways for a client to reach the same redis-server, all on 127.0.0.1:
#     direct   redis-benchmark -> redis-server
#     haproxy  redis-benchmark -> HAProxy (mode tcp, Sentinel-style tcp-check
#              health check: PING/+PONG, info replication/role:master,
#              QUIT/+OK, inter 1s) -> redis-server
#     proxy    redis-benchmark -> target/release/sentinel-proxy -> redis-server,
#              its default configuration (clients in Redis's default
#              connection state share a backend connection)
#     own      the same binary with --share-backend false (one backend
#              connection per client, as HAProxy has)
#
#   1. Throughput: redis-benchmark -q --csv, SET and GET, five scenarios:
#        -n 200000 -c 50 -P 1        one request in flight per connection
#        -n 200000 -c 50 -P 16       pipelining
#        -n 100000 -c 50 -d 4096     4 KiB values
#        -n 100000 -c 1000           many connections
#        -n 200000 -c 10000          very many connections
#      Targets are interleaved within a round (direct, haproxy, proxy, own for
#      each scenario), ROUNDS rounds, and the median per target/scenario/test
#      is reported together with the ratios to direct and to HAProxy.
#   2. Latency: the p50 and p99 that redis-benchmark reports for each of those
#      runs; for -c 50 -P 1 also each hop's p50 and p99 minus direct's.
#   3. CPU per request: utime+stime of the HAProxy and proxy processes from
#      /proc/PID/stat (clock ticks, getconf CLK_TCK), read before and after
#      each of their redis-benchmark runs, divided by the requests of that run
#      (n x 2 tests). Reported as µs of CPU per request and proxy/haproxy.
#      redis-server's own µs/request in the direct runs is shown for scale.
#   4. Fairness under mixed load: one client reads a 10 MB value in a loop
#      (redis-benchmark -c 1 GET bench:large) while 50 clients run
#      redis-benchmark -t get -c 50 -n 100000 through the same hop; the small
#      GETs' p50 and p99, and how many 10 MB reads the large reader made
#      meanwhile (from redis-server's commandstats).
#   5. Memory per client connection: scripts/idle_conns.py opens IDLE_CONNS
#      (10,000 and 50,000) concurrent TCP connections to HAProxy, then to the
#      proxy (and, at the first count, to `own`), and reads the VmRSS of that
#      process (/proc/PID/status):
#        (a) idle: connected and accepted, never used;
#        (b) after every connection sent PING (*1\r\n$4\r\nPING\r\n) and read
#            +PONG\r\n, connections still open.
#      bytes/conn = (VmRSS after - VmRSS before) / connections. The number of
#      PONG replies and descriptors per connection (2 = one upstream
#      connection per client) are reported too. This runs first, on freshly
#      started processes, so memory pools are not pre-grown by the
#      throughput runs.
#
#   Everything (servers, client) shares this machine's cores: on a small
#   machine, a hop that burns CPU also steals it from redis-server and
#   redis-benchmark, so throughput ratios show the whole-system cost of the
#   hop. CPU µs/request is the less noisy number for comparing the two hops.
#
#   The summary table at the top of the report puts every figure next to its
#   ratio to HAProxy; the sections below it give the detail and every round.
#
# HOW TO RUN
#   scripts/bench.sh                      # full run, 3 rounds (about 10 minutes)
#   QUICK=1 scripts/bench.sh              # smoke run: -n divided by 10, 1,000 connections
#   The table is printed and written to target/bench-report.md.
#
#   It installs what is missing (apt-get update + install redis-server,
#   redis-tools, haproxy; sudo only when not root) and builds the proxy with
#   cargo build --release. Then, as root, it runs the rest in a network
#   namespace of its own (unshare --net, loopback only) where it can raise
#   what 50,000 connections through a hop need without touching the host:
#   the local port range (1024-65535: a hop opens one connection to Redis per
#   client, from one address) and the listen backlog limit. Without root it
#   runs in place and caps the connection counts to what the port range and
#   the open-files limit allow (noted in the report). It starts
#   redis-server, HAProxy and the proxy on free 127.0.0.1 ports, and on exit
#   stops exactly the PIDs it started and removes its temporary directory.
#   Only loopback addresses are used.
#
# ENVIRONMENT
#   ROUNDS=3            rounds per target and scenario (median is reported)
#   QUICK=1             smaller -n (a tenth) and connection counts, for a smoke run
#   SKIP_HAPROXY=1      leave HAProxy out (no haproxy columns)
#   SKIP_OWN=1          leave the --share-backend false proxy out
#   SKIP_IDLE=1         skip the memory-per-connection test
#   SKIP_FAIR=1         skip the fairness test
#   SCENARIOS="p1 p16 d4096 c1000 cmany"  throughput scenarios to run ("" for none)
#   IDLE_CONNS="10000 50000"  connection counts for the memory test
#   IDLE_INLINE=1       send inline "PING\r\n" instead of the RESP array
#   NO_NETNS=1          do not move into a network namespace of its own
#   PROXY_ARGS="..."    extra arguments appended to the proxy command line
#   PROXY_CMD=...       run something else in the "proxy" slot (no cargo build):
#                         PROXY_CMD=haproxy  a second HAProxy, same config
#                                            (checks the plumbing end to end)
#                         PROXY_CMD='/path/bin --master {master} --listen {listen}'
#                                            {master}/{listen} become
#                                            127.0.0.1:PORT of redis/the proxy
#   HAPROXY_NBTHREAD=1  HAProxy threads. Default 1: the usual single-threaded
#                       setup, and on a 2-core machine a second thread would
#                       only compete with redis-server and redis-benchmark.
#                       Set to "" to use HAProxy's default (one per CPU).
#   REPORT=target/bench-report.md   where the markdown report goes
#   KEEP_TMP=1          keep the temporary directory (configs, logs, raw data)
#
# READING THE NUMBERS
#   rps           requests per second seen by redis-benchmark (higher = better)
#   proxy/direct  fraction of direct throughput that survives the proxy hop
#   proxy/haproxy >1 means the proxy is faster than HAProxy
#   µs/req        CPU time the hop process spends per request (lower = better)
#   bytes/conn    resident memory each open client connection costs the hop

set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT_DIR/scripts"
ROUNDS="${ROUNDS:-3}"
QUICK="${QUICK:-0}"
SKIP_HAPROXY="${SKIP_HAPROXY:-0}"
SKIP_OWN="${SKIP_OWN:-0}"
SKIP_IDLE="${SKIP_IDLE:-0}"
SKIP_FAIR="${SKIP_FAIR:-0}"
NO_NETNS="${NO_NETNS:-0}"
if [[ "$QUICK" == 1 ]]; then IDLE_CONNS="${IDLE_CONNS:-1000}"; else IDLE_CONNS="${IDLE_CONNS:-10000 50000}"; fi
IDLE_INLINE="${IDLE_INLINE:-0}"
PROXY_ARGS="${PROXY_ARGS:-}"
PROXY_CMD="${PROXY_CMD:-}"
HAPROXY_NBTHREAD="${HAPROXY_NBTHREAD-1}"
REPORT="${REPORT:-$ROOT_DIR/target/bench-report.md}"
KEEP_TMP="${KEEP_TMP:-0}"
# Connections each server accepts: the largest memory test plus headroom.
MAXCONN=60000
# Descriptors: a hop with one upstream connection per client needs two per
# client, and redis-benchmark -c 10000 or the memory test's client one each.
WANT_NOFILE=262144
HOST=127.0.0.1

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

# ------------------------------------------------------------------ install
SUDO=""
[[ "$(id -u)" -eq 0 ]] || SUDO="sudo"
PATH="$PATH:/usr/sbin:/sbin"

need=()
command -v redis-server >/dev/null || need+=(redis-server)
{ command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null; } || need+=(redis-tools)
if [[ "$SKIP_HAPROXY" != 1 || "$PROXY_CMD" == haproxy ]]; then
  command -v haproxy >/dev/null || need+=(haproxy)
fi
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
  log "installing: ${need[*]}"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

# -------------------------------------------------------------------- build
if [[ -z "$PROXY_CMD" ]]; then
  command -v cargo >/dev/null || die "cargo not found (needed to build the proxy)"
  log "cargo build --release"
  (cd "$ROOT_DIR" && cargo build --release)
  PROXY_BIN="$ROOT_DIR/target/release/sentinel-proxy"
  [[ -x "$PROXY_BIN" ]] || die "$PROXY_BIN was not built"
fi

# ------------------------------------------------------ network namespace
# As root, the rest runs in a network namespace of its own holding only lo:
# there the local port range and the listen backlog limit can be raised for
# 50,000 connections through a hop (one upstream connection per client, all
# from 127.0.0.1 to one port) without changing the host's settings, and no
# packet can leave the machine.
if [[ -z "${SENTINEL_PROXY_BENCH_NETNS:-}" && "$NO_NETNS" != 1 && "$(id -u)" -eq 0 ]] \
    && command -v unshare >/dev/null && command -v ip >/dev/null; then
  if unshare --net true 2>/dev/null; then
    log "moving into a network namespace of its own (loopback only)"
    export SENTINEL_PROXY_BENCH_NETNS=1
    exec unshare --net -- bash -c '
      ip link set lo up
      sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
      sysctl -qw net.core.somaxconn=65535
      exec bash "$0" "$@"' "${BASH_SOURCE[0]}" "$@"
  fi
  log "cannot create a network namespace; running in place"
fi
if [[ -n "${SENTINEL_PROXY_BENCH_NETNS:-}" ]]; then
  links="$(ip -o link show | grep -v '^[0-9]*: lo:' || true)"
  [[ -z "$links" ]] || die "the network namespace has links other than lo: $links"
fi
PORT_RANGE="$(tr '\t' ' ' </proc/sys/net/ipv4/ip_local_port_range)"

# ---------------------------------------------------------- limits, tmpdir
hard="$(ulimit -Hn)"
if [[ "$hard" != unlimited && "$hard" -lt "$WANT_NOFILE" ]]; then
  ulimit -Hn "$WANT_NOFILE" 2>/dev/null || true
  hard="$(ulimit -Hn)"
fi
if [[ "$hard" == unlimited || "$hard" -ge "$WANT_NOFILE" ]]; then
  ulimit -Sn "$WANT_NOFILE"
else
  ulimit -Sn "$hard"
fi
NOFILE="$(ulimit -n)"
log "open-files limit: $NOFILE"
PORT_SPAN="$(awk '{ print $2 - $1 + 1 }' <<<"$PORT_RANGE")"

# The most client connections a process can hold here when it spends
# PER_CONN descriptors on each (a hop with one upstream connection per
# client: 2), bounded by the local ports a hop has for its upstream
# connections (all from 127.0.0.1 to one port), in hundreds.
conn_cap() { # PER_CONN
  local c
  if [[ "$NOFILE" == unlimited ]]; then c=1000000; else c=$(( (NOFILE - 200) / $1 )); fi
  (( c > PORT_SPAN - 1000 )) && c=$(( PORT_SPAN - 1000 ))
  echo $(( c / 100 * 100 ))
}
if (( MAXCONN > $(conn_cap 2) )); then
  MAXCONN="$(conn_cap 2)"
  log "the open-files limit ($NOFILE, which cannot be raised here) lets a hop with one upstream connection per client hold $MAXCONN clients"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/sentinel-bench.XXXXXX")"
PIDS=()
NAMES=()

proc_gone() { # true if PID has exited (gone or zombie)
  local st
  [[ -r /proc/$1/stat ]] || return 0
  st="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  st="${st##*) }"
  [[ "${st:0:1}" == Z ]]
}

READER_PID="" # the fairness test's large reader, while it runs
cleanup() {
  local rc=$? i pid
  trap - EXIT INT TERM
  if [[ -n "$READER_PID" ]]; then
    kill -TERM "$READER_PID" 2>/dev/null || true
    wait "$READER_PID" 2>/dev/null || true
  fi
  for i in "${!PIDS[@]}"; do
    kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  for i in "${!PIDS[@]}"; do
    pid="${PIDS[$i]}"
    for _ in $(seq 50); do proc_gone "$pid" && break; sleep 0.1; done
    if ! proc_gone "$pid"; then
      log "${NAMES[$i]} (pid $pid) ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    for f in "$TMP"/*.log; do
      [[ -s "$f" ]] || continue
      log "---- tail of $(basename "$f")"
      tail -n 20 "$f" >&2 || true
    done
  fi
  if [[ "$KEEP_TMP" == 1 ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: run in background, remember its PID
start() {
  local name="$1"; shift
  "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
  LAST_PID="$!"
  log "started $name (pid $LAST_PID): $*"
}

alive_or_die() { proc_gone "$1" && die "$2 (pid $1) exited (log tails follow)"; return 0; }

wait_pong() { # PORT PID NAME
  local i
  for i in $(seq 150); do
    alive_or_die "$2" "$3"
    [[ "$(redis-cli -h $HOST -p "$1" PING 2>/dev/null)" == PONG ]] && return 0
    sleep 0.1
  done
  die "$3 did not answer PING on $HOST:$1"
}

haproxy_cfg() { # PORT NAME -> path of config
  local cfg="$TMP/$2.cfg"
  {
    echo "global"
    echo "    maxconn $MAXCONN"
    [[ -n "$HAPROXY_NBTHREAD" ]] && echo "    nbthread $HAPROXY_NBTHREAD"
    # Where the fd hard limit cannot be raised to 2*maxconn, start anyway
    # (HAProxy >= 2.3 refuses by default); the script caps IDLE_CONNS.
    echo "    no strict-limits"
    echo "    stats socket $TMP/$2.sock mode 600 level user"
    cat <<EOF
defaults
    mode tcp
    maxconn $MAXCONN
    timeout connect 5s
    timeout client 30m
    timeout server 30m
    timeout check 5s

frontend fe_redis
    bind $HOST:$1
    default_backend be_redis

backend be_redis
    option tcp-check
    tcp-check send PING\r\n
    tcp-check expect string +PONG
    tcp-check send info\ replication\r\n
    tcp-check expect string role:master
    tcp-check send QUIT\r\n
    tcp-check expect string +OK
    server redis1 $HOST:$REDIS_PORT check inter 1s
EOF
  } >"$cfg"
  echo "$cfg"
}

start_haproxy() { # PORT NAME -> sets LAST_PID
  local cfg st i
  cfg="$(haproxy_cfg "$1" "$2")"
  haproxy -c -q -f "$cfg" || die "haproxy config check failed: $cfg"
  start "$2" haproxy -db -f "$cfg"
  local pid="$LAST_PID"
  for i in $(seq 150); do
    alive_or_die "$pid" "$2"
    if [[ -S "$TMP/$2.sock" ]]; then
      st="$(python3 "$SCRIPTS/bench_util.py" haproxy-server "$TMP/$2.sock" 2>/dev/null || true)"
      [[ "$st" == "UP L7OK" ]] && break
    fi
    sleep 0.1
  done
  [[ "${st:-}" == "UP L7OK" ]] || die "$2: health check not passing (status: ${st:-none})"
  log "$2: backend server $st (tcp-check passed)"
  wait_pong "$1" "$pid" "$2"
  LAST_PID="$pid"
}

# shellcheck source=scripts/bench-lib.sh
source "$SCRIPTS/bench-lib.sh"

listen_overflows() { # system-wide TcpExt ListenOverflows
  awk '/^TcpExt:/ { if (!c) { for (i = 2; i <= NF; i++) if ($i == "ListenOverflows") c = i }
                    else { print $c; exit } }' /proc/net/netstat
}

# -------------------------------------------------------------- start all
read -r REDIS_PORT HAPROXY_PORT PROXY_PORT SENTINEL_PORT METRICS_PORT OWN_PORT OWN_SENTINEL_PORT OWN_METRICS_PORT \
  <<<"$(python3 "$SCRIPTS/bench_util.py" free-ports 8)"

start redis redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no \
  --maxclients "$(conn_cap 1)" --dir "$TMP" --daemonize no --protected-mode yes
REDIS_PID="$LAST_PID"
wait_pong "$REDIS_PORT" "$REDIS_PID" redis

TARGETS=(direct)
declare -A PORT PID
PORT[direct]="$REDIS_PORT"
PID[direct]=""

if [[ "$SKIP_HAPROXY" != 1 ]]; then
  start_haproxy "$HAPROXY_PORT" haproxy
  PORT[haproxy]="$HAPROXY_PORT"
  PID[haproxy]="$LAST_PID"
  TARGETS+=(haproxy)
fi

PROXY_LABEL=proxy
if [[ "$PROXY_CMD" == haproxy ]]; then
  start_haproxy "$PROXY_PORT" proxy
  PROXY_LABEL="proxy (stand-in: haproxy)"
  PROXY_CMDLINE="haproxy -db -f proxy.cfg (same config as haproxy, port $PROXY_PORT)"
else
  if [[ -n "$PROXY_CMD" ]]; then
    cmd="${PROXY_CMD//\{master\}/$HOST:$REDIS_PORT}"
    cmd="${cmd//\{listen\}/$HOST:$PROXY_PORT}"
    PROXY_LABEL="proxy (custom)"
  else
    cmd="$(printf '%q ' "$PROXY_BIN" --master "$HOST:$REDIS_PORT" --listen "$HOST:$PROXY_PORT" \
      --sentinel-listen "$HOST:$SENTINEL_PORT" --metrics-listen "$HOST:$METRICS_PORT" \
      --log-level warn --max-clients "$(conn_cap 1)")"
    cmd="${cmd% }"
  fi
  [[ -n "$PROXY_ARGS" ]] && cmd="$cmd $PROXY_ARGS"
  PROXY_CMDLINE="${cmd//$ROOT_DIR\//}"
  start proxy bash -c "exec $cmd"
  wait_pong "$PROXY_PORT" "$LAST_PID" proxy
fi
PORT[proxy]="$PROXY_PORT"
PID[proxy]="$LAST_PID"
TARGETS+=(proxy)

# The same binary with --share-backend false: one backend connection per
# client, as through HAProxy.
if [[ "$SKIP_OWN" != 1 && -z "$PROXY_CMD" ]]; then
  cmd="$(printf '%q ' "$PROXY_BIN" --master "$HOST:$REDIS_PORT" --listen "$HOST:$OWN_PORT" \
    --sentinel-listen "$HOST:$OWN_SENTINEL_PORT" --metrics-listen "$HOST:$OWN_METRICS_PORT" \
    --log-level warn --max-clients "$MAXCONN" --share-backend false)"
  cmd="${cmd% }"
  [[ -n "$PROXY_ARGS" ]] && cmd="$cmd $PROXY_ARGS"
  start own bash -c "exec $cmd"
  wait_pong "$OWN_PORT" "$LAST_PID" own
  PORT[own]="$OWN_PORT"
  PID[own]="$LAST_PID"
  TARGETS+=(own)
fi

# Each hop must really reach this redis-server: write through it, read direct.
for t in "${TARGETS[@]}"; do
  redis-cli -h $HOST -p "${PORT[$t]}" SET "bench:probe:$t" "via-$t" >/dev/null
  got="$(redis-cli -h $HOST -p "$REDIS_PORT" GET "bench:probe:$t")"
  [[ "$got" == "via-$t" ]] || die "$t: SET through port ${PORT[$t]} did not reach redis (got '$got')"
done
log "all targets reach redis-server at $HOST:$REDIS_PORT"

load1="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$load1" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  log "warning: load average is $load1 on $(nproc) CPUs; other work on this machine will skew throughput (CPU µs/request is less affected)"
fi

# ---------------------------------------------------------------- metadata
CLK_TCK="$(getconf CLK_TCK)"
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "host=$(nproc) CPUs, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
  echo "redis_version=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
  echo "haproxy_version=$(haproxy -v 2>/dev/null | sed -n '1s/HAProxy version \([^ ]*\).*/\1/p')"
  echo "haproxy_nbthread=${HAPROXY_NBTHREAD:-default (one per CPU)}"
  echo "proxy_label=$PROXY_LABEL"
  echo "proxy_cmdline=$PROXY_CMDLINE"
  echo "rounds=$ROUNDS"
  echo "quick=$QUICK"
  echo "nofile=$NOFILE"
  echo "port_range=$PORT_RANGE"
  echo "netns=${SENTINEL_PROXY_BENCH_NETNS:-0}"
  echo "clk_tck=$CLK_TCK"
  echo "targets=${TARGETS[*]}"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  if command -v ss >/dev/null; then # Send-Q of a listener = its accept backlog
    bl=""
    for t in "${TARGETS[@]}"; do
      bl+="${bl:+, }$t $(ss -Hltn "sport = :${PORT[$t]}" 2>/dev/null | awk '{print $3; exit}')"
    done
    echo "listen_backlog=${bl//direct/redis-server}"
  fi
  env_prefix=""
  for v in ROUNDS QUICK SKIP_HAPROXY SKIP_OWN SKIP_IDLE SKIP_FAIR SCENARIOS IDLE_CONNS IDLE_INLINE NO_NETNS PROXY_ARGS PROXY_CMD HAPROXY_NBTHREAD; do
    [[ -n "${!v+x}" && -n "$(printenv "$v" || true)" ]] && env_prefix+="$v=$(printf '%q' "${!v}") "
  done
  echo "command=${env_prefix}scripts/bench.sh"
} >"$TMP/meta.env"

# ------------------------------------------------------ memory per connection
if [[ "$SKIP_IDLE" != 1 ]]; then
  idle_flags=()
  [[ "$IDLE_INLINE" == 1 ]] && idle_flags+=(--inline)
  counts=()
  first=1
  declare -A measured=()
  for want in $IDLE_CONNS; do
    counts+=("$want")
    for t in haproxy proxy own; do
      [[ -n "${PORT[$t]:-}" && -n "${PID[$t]:-}" ]] || continue
      # One connection per client to Redis as well: the first count only.
      [[ "$t" == own && "$first" != 1 ]] && continue
      # Descriptors per client connection in the hop: two with one
      # upstream connection per client, one when sharing.
      per=2
      [[ "$t" == proxy ]] && per=1
      n="$want"
      if (( n > $(conn_cap "$per") )); then
        n="$(conn_cap "$per")"
        msg="$t: the memory test for $want connections used $n, as many as the open-files limit ($NOFILE) and the local port range ($PORT_RANGE) allow a process that spends $per descriptor(s) on each (as root, the script runs in a network namespace of its own where it raises the port range; the open-files limit it raises where the machine allows); bytes/conn is ΔRSS divided by the connections actually open"
        log "$msg"
        echo "note_idle_${t}_$want=$msg" >>"$TMP/meta.env"
      fi
      # Capped to a count already measured: nothing new to learn.
      [[ -n "${measured[$t:$n]:-}" ]] && continue
      measured[$t:$n]=1
      log "memory test: $n connections to $t"
      python3 "$SCRIPTS/idle_conns.py" --host $HOST --port "${PORT[$t]}" --pid "${PID[$t]}" \
        --count "$n" "${idle_flags[@]}" >"$TMP/idle_${t}_$want.json"
      log "  $(cat "$TMP/idle_${t}_$want.json")"
      alive_or_die "${PID[$t]}" "$t"
    done
    first=0
  done
  echo "idle_conns=${counts[*]}" >>"$TMP/meta.env"
fi

# ------------------------------------------------------------- throughput
if [[ "$QUICK" == 1 ]]; then N_BIG=20000; N_SMALL=10000; else N_BIG=200000; N_SMALL=100000; fi
# Very many connections: 10,000, or as many as a hop with one upstream
# connection per client can hold here.
C_MANY=10000
if (( C_MANY > MAXCONN )); then
  C_MANY="$MAXCONN"
  echo "note_cmany=the very-many-connections scenario uses -c $C_MANY instead of 10000: the open-files limit ($NOFILE) does not let HAProxy (two descriptors per client) hold more" >>"$TMP/meta.env"
fi
read -r -a SCEN_IDS <<<"${SCENARIOS-p1 p16 d4096 c1000 cmany}"
declare -A SCEN_ARGS=(
  [p1]="-n $N_BIG -c 50 -P 1"
  [p16]="-n $N_BIG -c 50 -P 16"
  [d4096]="-n $N_SMALL -c 50 -d 4096"
  [c1000]="-n $N_SMALL -c 1000"
  [cmany]="-n $N_BIG -c $C_MANY"
)
printf 'id\tlabel\n' >"$TMP/scenarios.tsv"
for s in "${SCEN_IDS[@]}"; do printf '%s\t%s\n' "$s" "${SCEN_ARGS[$s]}" >>"$TMP/scenarios.tsv"; done
printf 'round\ttarget\tscenario\ttest\trps\tp50_ms\tp99_ms\n' >"$TMP/rps.tsv"
printf 'round\ttarget\trps\tp50_ms\tp99_ms\tlarge_reads\tseconds\n' >"$TMP/fair.tsv"
printf 'round\tproc\tscenario\tticks\trequests\n' >"$TMP/cpu.tsv"
printf 'round\ttarget\tscenario\toverflows\n' >"$TMP/overflows.tsv"

run_bench() { # ROUND TARGET SCENARIO
  local r="$1" t="$2" s="$3" port="${PORT[$2]}" pid="${PID[$2]}"
  local -a args
  read -r -a args <<<"${SCEN_ARGS[$s]}"
  local n="${args[1]}" c0 c1 rc0 rc1 out ntests lo0 lo1
  lo0="$(listen_overflows)"
  [[ -n "$pid" ]] && c0="$(cpu_ticks "$pid")"
  rc0="$(cpu_ticks "$REDIS_PID")"
  out="$(redis-benchmark -h $HOST -p "$port" -t set,get "${args[@]}" -q --csv 2>"$TMP/rb.err")" \
    || die "redis-benchmark failed against $t: $(cat "$TMP/rb.err")"
  rc1="$(cpu_ticks "$REDIS_PID")"
  [[ -n "$pid" ]] && c1="$(cpu_ticks "$pid")"
  lo1="$(listen_overflows)"
  printf '%s\t%s\t%s\t%s\n' "$r" "$t" "$s" "$((lo1 - lo0))" >>"$TMP/overflows.tsv"
  if grep -qiE 'error|refused|reset' "$TMP/rb.err"; then
    log "  warning from redis-benchmark ($t): $(sort -u "$TMP/rb.err" | head -3 | tr '\n' ' ')"
  fi
  ntests=0
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
  # "p95_latency_ms","p99_latency_ms","max_latency_ms"
  while IFS=, read -r test rps _ _ p50 _ p99 _; do
    test="${test//\"/}"; rps="${rps//\"/}"; p50="${p50//\"/}"; p99="${p99//\"/}"
    [[ "$test" == test || -z "$test" ]] && continue
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$s" "$test" "$rps" "${p50:-}" "${p99:-}" >>"$TMP/rps.tsv"
    ntests=$((ntests + 1))
  done <<<"$out"
  ((ntests > 0)) || die "no results from redis-benchmark against $t: $out $(cat "$TMP/rb.err")"
  if [[ -n "$pid" ]]; then
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$s" "$((c1 - c0))" "$((n * ntests))" >>"$TMP/cpu.tsv"
  else
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "redis@direct" "$s" "$((rc1 - rc0))" "$((n * ntests))" >>"$TMP/cpu.tsv"
  fi
  log "  round $r $t [$s]: $(grep -v '^"test"' <<<"$out" | cut -d, -f1,2 | tr -d '"' | tr '\n' ' ')"
  alive_or_die "${PID[$t]:-$REDIS_PID}" "$t"
}

# Fairness: small GETs from 50 clients while one client reads a 10 MB value
# in a loop, all through the same hop.
if [[ "$QUICK" == 1 ]]; then N_FAIR=10000; else N_FAIR=100000; fi
get_calls() { # GET calls redis-server has served so far
  redis-cli -h $HOST -p "$REDIS_PORT" info commandstats |
    sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p'
}
run_fair() { # ROUND TARGET
  local r="$1" t="$2" port="${PORT[$2]}" reader calls0 calls1 started out line
  redis-benchmark -h $HOST -p "$port" -c 1 -n 1000000000 -q GET bench:large \
    >"$TMP/large-reader.log" 2>&1 &
  READER_PID="$!"
  reader="$READER_PID"
  sleep 0.5
  alive_or_die "$reader" "the large reader"
  calls0="$(get_calls)"
  started="$(date +%s.%N)"
  out="$(redis-benchmark -h $HOST -p "$port" -t get -c 50 -n "$N_FAIR" -q --csv 2>"$TMP/rb.err")" \
    || die "redis-benchmark failed against $t: $(cat "$TMP/rb.err")"
  calls1="$(get_calls)"
  kill -TERM "$reader" 2>/dev/null || true
  wait "$reader" 2>/dev/null || true
  READER_PID=""
  line="$(grep '^"GET"' <<<"$out" | tr -d '"')" || die "no GET result against $t: $out"
  IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"$line"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$rps" "$p50" "$p99" \
    "$((calls1 - calls0 - N_FAIR))" "$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')" \
    >>"$TMP/fair.tsv"
  log "  round $r $t [fairness]: small GET p50 $p50 ms, p99 $p99 ms; $((calls1 - calls0 - N_FAIR)) reads of 10 MB meanwhile"
  alive_or_die "${PID[$t]:-$REDIS_PID}" "$t"
}
if [[ "$SKIP_FAIR" != 1 ]]; then
  head -c 10485760 /dev/zero | tr '\0' 'v' >"$TMP/large.bin"
  redis-cli -h $HOST -p "$REDIS_PORT" -x SET bench:large <"$TMP/large.bin" >/dev/null
  rm -f "$TMP/large.bin"
fi

for r in $(seq "$ROUNDS"); do
  log "round $r/$ROUNDS"
  for s in "${SCEN_IDS[@]}"; do
    for t in "${TARGETS[@]}"; do
      run_bench "$r" "$t" "$s"
      sleep 1
    done
  done
  if [[ "$SKIP_FAIR" != 1 ]]; then
    for t in "${TARGETS[@]}"; do
      run_fair "$r" "$t"
      sleep 1
    done
  fi
done

# ----------------------------------------------------------------- report
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$TMP/meta.env"
mkdir -p "$(dirname "$REPORT")"
echo
python3 "$SCRIPTS/bench_util.py" report "$TMP" "$REPORT"
echo
log "report written to $REPORT"
