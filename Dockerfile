# sentinel-proxy container image.
#
#   docker build -t sentinel-proxy .
#   docker run --rm -p 6379:6379 \
#       -v "$PWD/proxy.toml:/etc/sentinel-proxy/proxy.toml:ro" sentinel-proxy
#
# The image ships no proxy.toml of its own (there is no sensible default
# master): mount yours at /etc/sentinel-proxy/proxy.toml. Start from an
# example in /etc/sentinel-proxy/examples/ (config/ in the repository) and
# set listen = "0.0.0.0:6379" so the port is reachable from outside the
# container. Check a file without starting the proxy:
#   docker run --rm -v "$PWD/proxy.toml:/etc/sentinel-proxy/proxy.toml:ro" \
#       sentinel-proxy check-config -c /etc/sentinel-proxy/proxy.toml
#
# scripts/docker-build-stage.sh runs the build stage's commands on a host
# without a container engine.

# ---- build stage -------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# .dockerignore lets through only what the build needs.
COPY . .
# --locked: build exactly the versions in Cargo.lock, fail if it is stale.
RUN cargo build --release --locked

# ---- runtime stage -----------------------------------------------------
# debian:bookworm-slim rather than distroless: the health check below needs a
# shell, and distroless has none (and the binary has no health subcommand).
# Same Debian release as the build stage, so the glibc it links against is
# the one it runs with.
FROM debian:bookworm-slim

RUN groupadd --system --gid 10001 sentinel-proxy \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sentinel-proxy

COPY --from=build /src/target/release/sentinel-proxy /usr/local/bin/sentinel-proxy
COPY config/*.toml /etc/sentinel-proxy/examples/

# Container logs are not a terminal: without this the text log carries ANSI
# colour codes.
ENV NO_COLOR=1

# Numeric, so orchestrators can verify it is not root (runAsNonRoot).
USER 10001:10001

# 6379: the client endpoint (listen = "0.0.0.0:6379" in proxy.toml).
# 26379: the sentinel port, served only when the built-in sentinel core runs
# (`master` in proxy.toml, not `sentinel`); peers reach it at `announce`.
# With the core, mount a volume writable by uid 10001 at `data_dir`.
EXPOSE 6379 26379

# Liveness of the proxy itself: can a TCP connection be opened to its client
# port? bash's /dev/tcp does it without any extra package. It deliberately
# does not send PING: that would report the master, and a container restarted
# in the middle of a failover helps nobody. A bare connection costs the
# master nothing (a client connection reaches Redis on its first command). If
# proxy.toml listens on another port, override it:
#   docker run --health-cmd 'bash -c "exec 3<>/dev/tcp/127.0.0.1/PORT"' ...
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/6379"]

# SIGTERM (docker stop's signal) drains client connections for up to drain_timeout_ms
# (default 5 s), within docker stop's default 10 s grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sentinel-proxy"]
CMD ["-c", "/etc/sentinel-proxy/proxy.toml"]
