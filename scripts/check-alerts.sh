#!/usr/bin/env bash
# scripts/check-alerts.sh — checks config/prometheus-alerts.yml with promtool:
# the rules parse, and tests/prometheus/alerts.test.yml's scenarios fire (or
# stay quiet) as expected: a first failover or first refused command after a
# start, stale series after a failover, proxies that follow Redis Sentinels.
#
# Needs promtool (Debian/Ubuntu: apt-get install prometheus) and python3 with
# PyYAML.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v promtool >/dev/null ||
    { echo "check-alerts.sh: promtool not found (apt-get install prometheus)" >&2; exit 1; }

promtool check rules config/prometheus-alerts.yml

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-alerts.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
python3 - config/prometheus-alerts.yml "$TMP/rules.yml" <<'PY'
import sys
import yaml

rules = yaml.safe_load(open(sys.argv[1]))
for group in rules["groups"]:
    for rule in group["rules"]:
        rule.pop("annotations", None)
yaml.safe_dump(rules, open(sys.argv[2], "w"), sort_keys=False)
PY
cp tests/prometheus/alerts.test.yml "$TMP/"
promtool test rules "$TMP/alerts.test.yml"
