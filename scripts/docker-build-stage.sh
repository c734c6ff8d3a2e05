#!/usr/bin/env bash
# scripts/docker-build-stage.sh — the Dockerfile's build stage, run on the host.
#
# For machines without a container engine: checks that the image's build
# stage works with this repository as it stands, without Docker.
#
#   1. assembles the build context the way `docker build` would, from the
#      allowlist in .dockerignore ("*" then "!path" lines), in a temporary
#      directory (the stage's WORKDIR);
#   2. runs the build stage's RUN commands there (read from the Dockerfile:
#      the lines after `FROM ... AS build`, up to the next FROM), with the
#      host's cargo and its registry cache, but a fresh target directory;
#   3. checks that the file the runtime stage copies (COPY --from=build ...)
#      exists and runs (`--version`, and `check-config` for config/*.toml
#      as they are copied into the image).
#
# What it cannot check: the base images themselves (rust:1-bookworm's
# toolchain is whatever the host has here) and the runtime stage's RUN lines.
#
# Usage: scripts/docker-build-stage.sh
#   KEEP_TMP=1   keep the temporary directory (context and target/)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DOCKERFILE=$ROOT/Dockerfile

say() { printf '[docker-build-stage] %s\n' "$*"; }
die() {
    printf 'docker-build-stage.sh: %s\n' "$*" >&2
    exit 1
}

# Dockerfile instructions of the build stage, one per line, continuation
# lines joined and comments dropped.
build_stage() {
    awk '
        /^[[:space:]]*#/ { next }
        {
            line = line $0
            if (line ~ /\\[[:space:]]*$/) { sub(/\\[[:space:]]*$/, " ", line); next }
            print line
            line = ""
        }
    ' "$DOCKERFILE" | awk '
        toupper($1) == "FROM" { in_build = (tolower($0) ~ / as build[[:space:]]*$/); next }
        in_build && NF > 0 { print }
    '
}

stage=$(build_stage)
[ -n "$stage" ] || die "no 'FROM ... AS build' stage in $DOCKERFILE"
workdir=$(printf '%s\n' "$stage" | awk 'toupper($1) == "WORKDIR" { print $2 }' | tail -n1)
mapfile -t runs < <(printf '%s\n' "$stage" | sed -n 's/^[[:space:]]*[Rr][Uu][Nn][[:space:]]\{1,\}//p')
[ ${#runs[@]} -gt 0 ] || die "the build stage has no RUN command"
artifact=$(sed -n 's/^[[:space:]]*COPY[[:space:]]\{1,\}--from=build[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' "$DOCKERFILE" | head -n1)
[ -n "$artifact" ] || die "no COPY --from=build in $DOCKERFILE"
case "$artifact" in
    "$workdir"/*) artifact_rel=${artifact#"$workdir"/} ;;
    *) die "COPY --from=build takes $artifact, outside the build stage's WORKDIR $workdir" ;;
esac

TMP=$(mktemp -d "${TMPDIR:-/tmp}/docker-build-stage.XXXXXX")
cleanup() {
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        say "kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT

# The context: .dockerignore must be the allowlist form this script reads.
context=$TMP/context
mkdir -p "$context"
if [ "$(grep -v '^[[:space:]]*\(#\|$\)' .dockerignore | head -n1)" != "*" ]; then
    die ".dockerignore does not start with '*' (allowlist form); cannot mirror it"
fi
while IFS= read -r path; do
    path=${path#!}
    path=${path%/}
    [ -e "$path" ] || die ".dockerignore allows '$path', which does not exist"
    mkdir -p "$context/$(dirname "$path")"
    cp -R "$path" "$context/$path"
done < <(grep '^!' .dockerignore)
say "context: $(cd "$context" && find . -type f | wc -l) files from the .dockerignore allowlist"

# ARG NAME=default lines of the build stage, as docker build would set them.
mapfile -t args < <(printf '%s\n' "$stage" | sed -n 's/^[[:space:]]*[Aa][Rr][Gg][[:space:]]\{1,\}\([A-Za-z_][A-Za-z0-9_]*=.*\)$/\1/p')
for run in "${runs[@]}"; do
    say "WORKDIR $workdir -> $context; RUN $run"
    (cd "$context" && env -u CARGO_TARGET_DIR "${args[@]}" bash -euo pipefail -c "$run")
done

binary=$context/$artifact_rel
[ -x "$binary" ] || die "the build stage produced no $artifact"
say "built $artifact: $("$binary" --version)"
for example in "$context"/config/*.toml; do
    "$binary" check-config -c "$example" >/dev/null ||
        die "check-config fails for $(basename "$example")"
    say "check-config ok: /etc/sentinel-proxy/examples/$(basename "$example")"
done
say "the build stage's commands succeed on this host"
