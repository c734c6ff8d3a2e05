#!/usr/bin/env bash
# TLS termination in one run: redis-benchmark --tls through sentinel-proxy's
# TLS endpoint (--tls-listen) and through HAProxy's (bind ... ssl), both in
# front of the same plain redis-server on 127.0.0.1. Rounds interleave the
# two; for each scenario the script prints the median requests per second,
# the median CPU per request of the terminating process (µs, from
# /proc/PID/stat), and proxy/haproxy for each.
#
# Usage: scripts/bench-tls.sh
#   ROUNDS=3            rounds (median over them)
#   REQUESTS=200000     requests per redis-benchmark run (per test)
#   CLIENTS=50          redis-benchmark -c
#   PIPELINES="1 16"    redis-benchmark -P values, one scenario each
#   HAPROXY_NBTHREAD=1  HAProxy's threads (the proxy runs its default, one)
#   PROXY_BIN=path      a proxy binary to measure instead of building this tree
#   BACKEND_TLS=1       TLS end to end: redis-server serves TLS only, the proxy
#                       reaches it with --tls-backend, HAProxy with `ssl verify`
#
# Needs redis-server, redis-benchmark (Debian's, built with TLS), haproxy and
# openssl (for a throwaway CA and certificate); builds the proxy in release.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${ROUNDS:-3}"
REQUESTS="${REQUESTS:-200000}"
CLIENTS="${CLIENTS:-50}"
PIPELINES="${PIPELINES:-1 16}"
HAPROXY_NBTHREAD="${HAPROXY_NBTHREAD:-1}"

log() { printf '[bench-tls %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for bin in redis-server redis-benchmark haproxy openssl; do
  command -v "$bin" >/dev/null || { log "ERROR: $bin not found"; exit 1; }
done
if [[ -z "${PROXY_BIN:-}" ]]; then
  cargo build --release --quiet
  PROXY_BIN="$PWD/target/release/sentinel-proxy"
fi

TMP="$(mktemp -d /tmp/sentinel-proxy-bench-tls.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # PORT
  local i
  for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "ERROR: nothing listens on $1"; exit 1
}
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh

log "certificates in $TMP"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=bench CA" \
  -keyout "$TMP/ca.key" -out "$TMP/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$TMP/server.key" -out "$TMP/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TMP/san.ext"
openssl x509 -req -in "$TMP/server.csr" -CA "$TMP/ca.crt" -CAkey "$TMP/ca.key" \
  -CAcreateserial -days 1 -extfile "$TMP/san.ext" -out "$TMP/server.crt" 2>/dev/null
cat "$TMP/server.crt" "$TMP/server.key" >"$TMP/server.pem"

REDIS_PORT="$(free_port)"
PROXY_BACKEND=()
HAPROXY_SERVER_TLS=""
if [[ "${BACKEND_TLS:-0}" == 1 ]]; then
  redis-server --port 0 --tls-port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --tls-cert-file "$TMP/server.crt" --tls-key-file "$TMP/server.key" \
    --tls-ca-cert-file "$TMP/ca.crt" --tls-auth-clients no --logfile "$TMP/redis.log" &
  PROXY_BACKEND=(--tls-backend --tls-ca-cert-file "$TMP/ca.crt")
  HAPROXY_SERVER_TLS="ssl verify required ca-file $TMP/ca.crt"
else
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$TMP/redis.log" &
fi
PIDS+=($!)
wait_port "$REDIS_PORT"

PROXY_PORT="$(free_port)"
PROXY_TLS_PORT="$(free_port)"
"$PROXY_BIN" --master "127.0.0.1:$REDIS_PORT" --quorum 1 \
  --listen "127.0.0.1:$PROXY_PORT" --sentinel-listen "127.0.0.1:$(free_port)" \
  --metrics-listen off --tls-listen "127.0.0.1:$PROXY_TLS_PORT" \
  --tls-cert-file "$TMP/server.crt" --tls-key-file "$TMP/server.key" \
  --tls-auth-clients no "${PROXY_BACKEND[@]}" --log-level warn >"$TMP/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_TLS_PORT"

HAPROXY_PORT="$(free_port)"
cat >"$TMP/haproxy.cfg" <<EOF
global
    maxconn 1000
    nbthread $HAPROXY_NBTHREAD
defaults
    mode tcp
    timeout connect 5s
    timeout client 5m
    timeout server 5m
frontend fe_redis_tls
    bind 127.0.0.1:$HAPROXY_PORT ssl crt $TMP/server.pem
    default_backend be_redis
backend be_redis
    server redis1 127.0.0.1:$REDIS_PORT $HAPROXY_SERVER_TLS
EOF
haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
HAPROXY_PID=$!
PIDS+=("$HAPROXY_PID")
wait_port "$HAPROXY_PORT"

declare -A PORT=([proxy]="$PROXY_TLS_PORT" [haproxy]="$HAPROXY_PORT")
declare -A PID_OF=([proxy]="$PROXY_PID" [haproxy]="$HAPROXY_PID")
TICK="$(getconf CLK_TCK)"
RESULTS="$TMP/results.csv"
: >"$RESULTS"

for round in $(seq "$ROUNDS"); do
  for p in $PIPELINES; do
    for target in proxy haproxy; do
      before="$(cpu_ticks "${PID_OF[$target]}")"
      out="$(redis-benchmark -h 127.0.0.1 -p "${PORT[$target]}" --tls --cacert "$TMP/ca.crt" \
        -t set,get -n "$REQUESTS" -c "$CLIENTS" -P "$p" -q --csv)"
      after="$(cpu_ticks "${PID_OF[$target]}")"
      rps="$(echo "$out" | awk -F'","' '/^"(SET|GET)"/ { sum += $2 } END { printf "%.0f", sum / 2 }')"
      # Two tests of REQUESTS each: CPU per request in µs.
      us="$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$REQUESTS" \
        'BEGIN { printf "%.2f", t / hz * 1e6 / (2 * n) }')"
      echo "$p,$target,$round,$rps,$us" >>"$RESULTS"
      log "round $round -P $p $target: $rps req/s, $us µs CPU/request"
    done
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo
what="TLS termination"
[[ "${BACKEND_TLS:-0}" == 1 ]] && what="TLS end to end (clients and Redis)"
echo "$what, redis-benchmark --tls -t set,get -n $REQUESTS -c $CLIENTS," \
  "median of $ROUNDS rounds (HAProxy nbthread $HAPROXY_NBTHREAD; $(haproxy -v | head -1 | cut -d' ' -f1-3))"
printf '%-6s %14s %14s %8s %12s %12s %8s\n' "" "proxy req/s" "haproxy req/s" "ratio" \
  "proxy µs/req" "haproxy µs/req" "ratio"
for p in $PIPELINES; do
  pr="$(awk -F, -v p="$p" '$1 == p && $2 == "proxy" { print $4 }' "$RESULTS" | median)"
  hr="$(awk -F, -v p="$p" '$1 == p && $2 == "haproxy" { print $4 }' "$RESULTS" | median)"
  pc="$(awk -F, -v p="$p" '$1 == p && $2 == "proxy" { print $5 }' "$RESULTS" | median)"
  hc="$(awk -F, -v p="$p" '$1 == p && $2 == "haproxy" { print $5 }' "$RESULTS" | median)"
  printf '%-6s %14.0f %14.0f %8.2f %12.2f %12.2f %8.2f\n' "-P $p" "$pr" "$hr" \
    "$(awk -v a="$pr" -v b="$hr" 'BEGIN { print a / b }')" "$pc" "$hc" \
    "$(awk -v a="$pc" -v b="$hc" 'BEGIN { print a / b }')"
done
echo "(req/s ratio > 1: the proxy is faster; µs/req ratio < 1: the proxy uses less CPU)"
