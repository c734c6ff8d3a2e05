#!/usr/bin/env bash
# scripts/bench-metrics.sh — what metrics cost the data path, in one command.
#
# WHAT IT MEASURES (all on 127.0.0.1)
#   1. Throughput with metrics on vs off: two proxies in front of one
#      redis-server, one with --metrics-listen (scraped every second while the
#      benchmark runs, as Prometheus would) and one with --metrics-listen off.
#      redis-benchmark -t set,get -n N -c 50 -P 1, interleaved, ROUNDS rounds;
#      prints the median requests/s of each and the ratio on/off.
#   2. /metrics response time with IDLE_CONNS (10,000) open client
#      connections to the proxy (each has sent one PING): median and max of
#      20 scrapes, in milliseconds.
#
# HOW TO RUN
#   scripts/bench-metrics.sh            # about a minute
#   ROUNDS=5 N=400000 scripts/bench-metrics.sh
#
# It installs redis-server/redis-tools if missing, builds the release binary,
# starts every process on free loopback ports, and stops exactly the PIDs it
# started on exit.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
N=${N:-200000}
IDLE_CONNS=${IDLE_CONNS:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/sentinel-proxy-bench-metrics.XXXXXX)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi
(cd "$ROOT" && cargo build --release -q)
BIN="$ROOT/target/release/sentinel-proxy"

read -r P_REDIS P_ON P_OFF P_METRICS P_S1 P_S2 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
')

# 10,000 clients through the proxy are 10,000 connections on Redis too.
ulimit -n 65536 2>/dev/null || true
redis-server --port "$P_REDIS" --bind 127.0.0.1 --save "" --appendonly no \
    --maxclients 20000 --dir "$WORK" --logfile "$WORK/redis.log" &
PIDS+=($!)
"$BIN" --master "127.0.0.1:$P_REDIS" --listen "127.0.0.1:$P_ON" \
    --sentinel-listen "127.0.0.1:$P_S1" --metrics-listen "127.0.0.1:$P_METRICS" \
    --max-clients 20000 --log-level warn &
PID_ON=$!
PIDS+=($PID_ON)
"$BIN" --master "127.0.0.1:$P_REDIS" --listen "127.0.0.1:$P_OFF" \
    --sentinel-listen "127.0.0.1:$P_S2" --metrics-listen off --log-level warn &
PIDS+=($!)

for port in "$P_ON" "$P_OFF"; do
    for _ in $(seq 100); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
done

# A scraper, once a second, for the whole run.
(while true; do curl -s -o /dev/null "http://127.0.0.1:$P_METRICS/metrics" || true; sleep 1; done) &
PIDS+=($!)

bench() {
    timeout 300 redis-benchmark -p "$1" -t set,get -n "$N" -c 50 -P 1 -q --csv |
        awk -F'"' '/SET|GET/ { sum += $4 } END { print sum / 2 }'
}

ON=()
OFF=()
for round in $(seq "$ROUNDS"); do
    # Alternate which goes first, so a trend in the machine's load favours neither.
    if [ $((round % 2)) -eq 1 ]; then
        ON+=("$(bench "$P_ON")")
        OFF+=("$(bench "$P_OFF")")
    else
        OFF+=("$(bench "$P_OFF")")
        ON+=("$(bench "$P_ON")")
    fi
    echo "round $round: metrics on ${ON[-1]} req/s, off ${OFF[-1]} req/s"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
MON=$(median "${ON[@]}")
MOFF=$(median "${OFF[@]}")
echo
echo "redis-benchmark -t set,get -n $N -c 50 -P 1, median of $ROUNDS rounds"
echo "  metrics on (scraped every second): $MON req/s"
echo "  metrics off:                       $MOFF req/s"
echo "  ratio on/off: $(awk -v a="$MON" -v b="$MOFF" 'BEGIN { printf "%.3f", a / b }')"
echo

python3 - "$P_ON" "$P_METRICS" "$IDLE_CONNS" <<'EOF'
import socket, statistics, sys, time, urllib.request
port, metrics, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
conns = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"*1\r\n$4\r\nPING\r\n")
    conns.append(s)
bad = 0
for s in conns:
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = s.recv(64)
        if not chunk:
            break
        reply += chunk
    if reply != b"+PONG\r\n":
        bad += 1
        if bad == 1:
            print(f"unexpected reply: {reply!r}")
if bad:
    print(f"{bad} of {count} connections did not get +PONG")
times = []
for _ in range(20):
    t = time.perf_counter()
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics").read()
    times.append((time.perf_counter() - t) * 1000)
open_line = [l for l in body.decode().splitlines() if l.startswith("sentinel_proxy_client_connections ")]
print(f"/metrics with {count} open client connections ({open_line[0] if open_line else '?'}):")
print(f"  median {statistics.median(times):.2f} ms, max {max(times):.2f} ms, {len(body)} bytes")
EOF
