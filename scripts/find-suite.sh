# shellcheck shell=bash
# Sourced by the conformance scripts: where Redis's test suite is.
#
#   find_suite RUNNER    # prints the tree holding RUNNER (runtest, runtest-sentinel)
#
# REDIS_SUITE when set, else redis-7.0.15 in ../shared/peer beside this
# checkout or beside the repository it was cloned from; prints nothing when
# there is none. Needs $repo, the checkout's top directory.
find_suite() {
    local runner=$1 origin base candidate
    if [ -n "${REDIS_SUITE:-}" ]; then
        echo "$REDIS_SUITE"
        return
    fi
    # shellcheck disable=SC2154 # $repo is the sourcing script's
    origin=$(git -C "$repo" remote get-url origin 2>/dev/null || true)
    for base in "$repo" "$origin"; do
        candidate=$base/../shared/peer/redis-7.0.15
        if [ -n "$base" ] && [ -x "$candidate/$runner" ]; then
            (cd "$candidate" && pwd)
            return
        fi
    done
}
