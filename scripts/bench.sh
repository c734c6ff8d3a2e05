#!/usr/bin/env bash
# scripts/bench.sh — sentinel-proxy vs HAProxy vs direct Redis, one command.
#
# WHAT IT MEASURES
#   Three ways for a client to reach the same redis-server, all on 127.0.0.1:
#     direct   redis-benchmark -> redis-server
#     haproxy  redis-benchmark -> HAProxy (mode tcp, Sentinel-style tcp-check
#              health check: PING/+PONG, info replication/role:master,
#              QUIT/+OK, inter 1s) -> redis-server
#     proxy    redis-benchmark -> target/release/sentinel-proxy -> redis-server
#              (one backend connection per client, the default)
#     shared   the same with --share-backend (stateless clients share one
#              backend connection; their commands are batched)
#
#   1. Throughput: redis-benchmark -q --csv, SET and GET, four scenarios:
#        -n 200000 -c 50 -P 1        one request in flight per connection
#        -n 200000 -c 50 -P 16       pipelining
#        -n 100000 -c 50 -d 4096     4 KiB values
#        -n 100000 -c 1000           many connections
#      Targets are interleaved within a round (direct, haproxy, proxy, shared for each
#      scenario), ROUNDS rounds, and the median per target/scenario/test is
#      reported together with the ratios to direct and to HAProxy.
#   2. CPU per request: utime+stime of the HAProxy and proxy processes from
#      /proc/PID/stat (clock ticks, getconf CLK_TCK), read before and after
#      each of their redis-benchmark runs, divided by the requests of that run
#      (n x 2 tests). Reported as µs of CPU per request and proxy/haproxy.
#      redis-server's own µs/request in the direct runs is shown for scale.
#   3. Memory per client connection: scripts/idle_conns.py opens IDLE_CONNS
#      (10,000) concurrent TCP connections to HAProxy, then to the proxy, and
#      reads the VmRSS of that process (/proc/PID/status):
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
# HOW TO RUN
#   scripts/bench.sh                      # full run, 3 rounds (about 4 minutes)
#   QUICK=1 scripts/bench.sh              # smoke run: -n divided by 10
#   The table is printed and written to target/bench-report.md.
#
#   It installs what is missing (apt-get update + install redis-server,
#   redis-tools, haproxy; sudo only when not root), builds the proxy with
#   cargo build --release, starts redis-server, HAProxy and the proxy on free
#   127.0.0.1 ports, and on exit stops exactly the PIDs it started and removes
#   its temporary directory. Only loopback addresses are used.
#
# ENVIRONMENT
#   ROUNDS=3            rounds per target and scenario (median is reported)
#   QUICK=1             smaller -n (a tenth) for a quick smoke run
#   SKIP_HAPROXY=1      leave HAProxy out (no haproxy columns)
#   SKIP_SHARED=1       leave the --share-backend proxy out
#   SKIP_IDLE=1         skip the memory-per-connection test
#   IDLE_CONNS=10000    connections for the memory test
#   IDLE_INLINE=1       send inline "PING\r\n" instead of the RESP array
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
SKIP_SHARED="${SKIP_SHARED:-0}"
SKIP_IDLE="${SKIP_IDLE:-0}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
IDLE_INLINE="${IDLE_INLINE:-0}"
PROXY_ARGS="${PROXY_ARGS:-}"
PROXY_CMD="${PROXY_CMD:-}"
HAPROXY_NBTHREAD="${HAPROXY_NBTHREAD-1}"
REPORT="${REPORT:-$ROOT_DIR/target/bench-report.md}"
KEEP_TMP="${KEEP_TMP:-0}"
MAXCONN=20000
WANT_NOFILE=65536
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

cleanup() {
  local rc=$? i pid
  trap - EXIT INT TERM
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

cpu_ticks() { # utime+stime of PID in clock ticks
  local s
  s="$(cat "/proc/$1/stat")"
  s="${s##*) }"
  # shellcheck disable=SC2086
  set -- $s
  echo $(( ${12} + ${13} ))
}

listen_overflows() { # system-wide TcpExt ListenOverflows
  awk '/^TcpExt:/ { if (!c) { for (i = 2; i <= NF; i++) if ($i == "ListenOverflows") c = i }
                    else { print $c; exit } }' /proc/net/netstat
}

# -------------------------------------------------------------- start all
read -r REDIS_PORT HAPROXY_PORT PROXY_PORT SENTINEL_PORT METRICS_PORT SHARED_PORT SHARED_SENTINEL_PORT SHARED_METRICS_PORT \
  <<<"$(python3 "$SCRIPTS/bench_util.py" free-ports 8)"

start redis redis-server --bind "$HOST" --port "$REDIS_PORT" --save "" --appendonly no \
  --maxclients "$MAXCONN" --dir "$TMP" --daemonize no --protected-mode yes
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
      --log-level warn --max-clients "$MAXCONN")"
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

# The same binary with --share-backend: stateless clients share one backend
# connection instead of one each.
if [[ "$SKIP_SHARED" != 1 && -z "$PROXY_CMD" ]]; then
  cmd="$(printf '%q ' "$PROXY_BIN" --master "$HOST:$REDIS_PORT" --listen "$HOST:$SHARED_PORT" \
    --sentinel-listen "$HOST:$SHARED_SENTINEL_PORT" --metrics-listen "$HOST:$SHARED_METRICS_PORT" \
    --log-level warn --max-clients "$MAXCONN" --share-backend)"
  cmd="${cmd% }"
  [[ -n "$PROXY_ARGS" ]] && cmd="$cmd $PROXY_ARGS"
  start shared bash -c "exec $cmd"
  wait_pong "$SHARED_PORT" "$LAST_PID" shared
  PORT[shared]="$SHARED_PORT"
  PID[shared]="$LAST_PID"
  TARGETS+=(shared)
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
  for v in ROUNDS QUICK SKIP_HAPROXY SKIP_SHARED SKIP_IDLE IDLE_CONNS IDLE_INLINE PROXY_ARGS PROXY_CMD HAPROXY_NBTHREAD; do
    [[ -n "${!v+x}" && -n "$(printenv "$v" || true)" ]] && env_prefix+="$v=$(printf '%q' "${!v}") "
  done
  echo "command=${env_prefix}scripts/bench.sh"
} >"$TMP/meta.env"

# ------------------------------------------------------ memory per connection
if [[ "$SKIP_IDLE" != 1 ]]; then
  n="$IDLE_CONNS"
  # A hop that keeps one upstream connection per client needs 2 fds each.
  if [[ "$NOFILE" != unlimited ]] && (( 2 * n + 64 > NOFILE )); then
    n=$(( (NOFILE - 64) / 2 / 100 * 100 ))
    msg="open-files limit is $NOFILE and cannot be raised here, so the memory test used $n connections instead of $IDLE_CONNS (a hop needs two descriptors per proxied connection); bytes/conn is still ΔRSS divided by the connections actually open"
    log "$msg"
    echo "note_idle=$msg" >>"$TMP/meta.env"
  fi
  echo "idle_conns=$n" >>"$TMP/meta.env"
  idle_flags=()
  [[ "$IDLE_INLINE" == 1 ]] && idle_flags+=(--inline)
  for t in haproxy proxy shared; do
    [[ -n "${PORT[$t]:-}" && -n "${PID[$t]:-}" ]] || continue
    log "memory test: $n connections to $t"
    python3 "$SCRIPTS/idle_conns.py" --host $HOST --port "${PORT[$t]}" --pid "${PID[$t]}" \
      --count "$n" "${idle_flags[@]}" >"$TMP/idle_$t.json"
    log "  $(cat "$TMP/idle_$t.json")"
    alive_or_die "${PID[$t]}" "$t"
  done
fi

# ------------------------------------------------------------- throughput
if [[ "$QUICK" == 1 ]]; then N_BIG=20000; N_SMALL=10000; else N_BIG=200000; N_SMALL=100000; fi
SCEN_IDS=(p1 p16 d4096 c1000)
declare -A SCEN_ARGS=(
  [p1]="-n $N_BIG -c 50 -P 1"
  [p16]="-n $N_BIG -c 50 -P 16"
  [d4096]="-n $N_SMALL -c 50 -d 4096"
  [c1000]="-n $N_SMALL -c 1000"
)
printf 'id\tlabel\n' >"$TMP/scenarios.tsv"
for s in "${SCEN_IDS[@]}"; do printf '%s\t%s\n' "$s" "${SCEN_ARGS[$s]}" >>"$TMP/scenarios.tsv"; done
printf 'round\ttarget\tscenario\ttest\trps\n' >"$TMP/rps.tsv"
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
  while IFS=, read -r test rps _; do
    test="${test//\"/}"; rps="${rps//\"/}"
    [[ "$test" == test || -z "$test" ]] && continue
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "$s" "$test" "$rps" >>"$TMP/rps.tsv"
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

for r in $(seq "$ROUNDS"); do
  log "round $r/$ROUNDS"
  for s in "${SCEN_IDS[@]}"; do
    for t in "${TARGETS[@]}"; do
      run_bench "$r" "$t" "$s"
      sleep 1
    done
  done
done

# ----------------------------------------------------------------- report
echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$TMP/meta.env"
mkdir -p "$(dirname "$REPORT")"
echo
python3 "$SCRIPTS/bench_util.py" report "$TMP" "$REPORT"
echo
log "report written to $REPORT"
