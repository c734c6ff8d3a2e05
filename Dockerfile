# sentinel-proxy container image.
#
#   docker build -t sentinel-proxy .
#   docker run --rm -p 127.0.0.1:6379:6379 -p 127.0.0.1:9121:9121 \
#       -v "$PWD/proxy.toml:/etc/sentinel-proxy/proxy.toml:ro" sentinel-proxy
#
# The image ships no proxy.toml of its own (there is no sensible default
# master): mount yours at /etc/sentinel-proxy/proxy.toml. Start from an
# example in /etc/sentinel-proxy/examples/ (config/ in the repository). In a
# container every endpoint must listen on all interfaces to be reachable from
# outside it:
#   listen          = "0.0.0.0:6379"    # clients
#   metrics_listen  = "0.0.0.0:9121"    # /metrics /healthz /readyz /status
#   sentinel_listen = "0.0.0.0:26379"   # the default; peers and Sentinel clients
# Flags work too, and override the file:
#   docker run ... sentinel-proxy -c /etc/sentinel-proxy/proxy.toml --listen 0.0.0.0:6379
# Check a file without starting the proxy:
#   docker run --rm -v "$PWD/proxy.toml:/etc/sentinel-proxy/proxy.toml:ro" \
#       sentinel-proxy check-config -c /etc/sentinel-proxy/proxy.toml
#
# docs/operations.md covers ports, probes, metrics and alerts;
# scripts/docker-build-stage.sh runs the build stage's commands on a host
# without a container engine.

# ---- build stage -------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# .dockerignore lets through only what the build needs.
COPY . .
# The build context has no .git: pass the commit for --version, e.g.
#   docker build --build-arg SENTINEL_PROXY_COMMIT=$(git rev-parse --short=12 HEAD) .
ARG SENTINEL_PROXY_COMMIT=unknown
# --locked: build exactly the versions in Cargo.lock, fail if it is stale.
RUN SENTINEL_PROXY_COMMIT="$SENTINEL_PROXY_COMMIT" cargo build --release --locked

# ---- runtime stage -----------------------------------------------------
# debian:bookworm-slim rather than distroless: notification_script and
# client_reconfig_script are usually shell scripts, and distroless has no
# shell. Same Debian release as the build stage, so the glibc the binary links
# against is the one it runs with.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="sentinel-proxy" \
      org.opencontainers.image.description="A Redis proxy with a built-in Redis Sentinel"

RUN groupadd --system --gid 10001 sentinel-proxy \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sentinel-proxy \
    && mkdir -p /var/lib/sentinel-proxy \
    && chown 10001:10001 /var/lib/sentinel-proxy

COPY --from=build /src/target/release/sentinel-proxy /usr/local/bin/sentinel-proxy
COPY config/*.toml /etc/sentinel-proxy/examples/

# Container logs are not a terminal: without this the text log carries ANSI
# colour codes.
ENV NO_COLOR=1

# Numeric, so orchestrators can verify it is not root (runAsNonRoot).
USER 10001:10001

# /var/lib/sentinel-proxy is writable by that user: point data_dir at it (and
# mount a volume there) so a voter keeps its identity and epochs across
# restarts.

# 6379: clients (listen). 26379: the Sentinel protocol (sentinel_listen), for
# the other voters, Redis Sentinels and Sentinel-aware clients. 9121: HTTP
# /metrics /healthz /readyz /status (metrics_listen).
EXPOSE 6379 26379 9121

# GET /healthz on the metrics endpoint, by the binary itself (no shell or curl
# needed). The subcommand reads metrics_listen from the same file as the proxy
# (0.0.0.0 becomes 127.0.0.1; 127.0.0.1:9121 when the file sets none or does
# not exist). /healthz answers while the process serves: it does not depend on
# the master, so a container is not restarted in the middle of a failover.
# With metrics_listen = "off" there is nothing to ask: run with
# --no-healthcheck, or set metrics_listen.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sentinel-proxy", "healthcheck", "-c", "/etc/sentinel-proxy/proxy.toml"]

# SIGTERM (docker stop's signal) stops accepting clients and waits up to
# drain_timeout_ms (default 5 s) for replies in flight, then exits 0: within
# docker stop's default 10 s grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sentinel-proxy"]
CMD ["-c", "/etc/sentinel-proxy/proxy.toml"]
