#!/usr/bin/env python3
"""Helpers for scripts/bench.sh (stdlib only).

  bench_util.py free-ports N           print N free TCP ports on 127.0.0.1
  bench_util.py haproxy-server SOCK    print "<status> <check_status>" of the
                                       first server in HAProxy's stats socket
  bench_util.py report DIR OUT.md      aggregate DIR/*.tsv + DIR/idle_*.json +
                                       DIR/meta.env into a markdown report,
                                       print it and write it to OUT.md
"""

import csv
import json
import os
import socket
import statistics
import sys
from collections import defaultdict


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def haproxy_server(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(path)
    s.sendall(b"show stat\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    for row in csv.reader(lines[1:]):
        if len(row) < len(header):
            continue
        rec = dict(zip(header, row))
        if rec["svname"] not in ("FRONTEND", "BACKEND"):
            print(rec.get("status", "?"), rec.get("check_status", "?") or "-")
            return
    print("? ?")


# ---------------------------------------------------------------- report

def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def median(xs):
    return statistics.median(xs) if xs else None


def fmt_num(x, digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}"


def table(headers, rows, align):
    """Markdown table padded so it also reads well in a terminal."""
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        out = []
        for i, c in enumerate(r):
            out.append(c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = "|" + "|".join(
        ("-" * (widths[i] + 1) + ":") if align[i] == "r" else ("-" * (widths[i] + 2))
        for i in range(len(headers))
    ) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in rows[0:]])


HOPS = ("haproxy", "proxy", "own")
TARGETS = ("direct",) + HOPS


def load_meta(d):
    meta = {}
    path = os.path.join(d, "meta.env")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


def load_idle(d):
    """{(target, connections): idle_conns.py's JSON}"""
    idle = {}
    for name in sorted(os.listdir(d)):
        if not (name.startswith("idle_") and name.endswith(".json")):
            continue
        target, _, count = name[len("idle_"):-len(".json")].rpartition("_")
        with open(os.path.join(d, name)) as f:
            idle[(target, int(count))] = json.load(f)
    return idle


def per_conn(j, key):
    n = j["connected"] or 1
    return (j[key] - j["rss_before_kb"]) * 1024 / n


def report(d, out_path):
    meta = load_meta(d)
    scen = read_tsv(os.path.join(d, "scenarios.tsv"))
    labels = {s["id"]: s["label"] for s in scen}
    rps_rows = read_tsv(os.path.join(d, "rps.tsv"))
    cpu_rows = read_tsv(os.path.join(d, "cpu.tsv"))
    fair_rows = read_tsv(os.path.join(d, "fair.tsv"))
    proxy_label = meta.get("proxy_label", "proxy")
    targets = meta.get("targets", "direct haproxy proxy").split()
    hops = [t for t in HOPS if t in targets]
    idle = load_idle(d)

    rps = defaultdict(list)  # (scenario, test, target) -> [rps]
    lat = defaultdict(list)  # (scenario, test, target, "p50"|"p99") -> [ms]
    tests = defaultdict(list)  # scenario -> [test] in order seen
    for r in rps_rows:
        key = (r["scenario"], r["test"], r["target"])
        rps[key].append(float(r["rps"]))
        for q in ("p50", "p99"):
            if r.get(f"{q}_ms"):
                lat[key + (q,)].append(float(r[f"{q}_ms"]))
        if r["test"] not in tests[r["scenario"]]:
            tests[r["scenario"]].append(r["test"])
    cpu = defaultdict(list)  # (scenario, proc) -> [us/request]
    for r in cpu_rows:
        req = int(r["requests"])
        if req > 0:
            us = int(r["ticks"]) / int(meta.get("clk_tck", "100")) * 1e6 / req
            cpu[(r["scenario"], r["proc"])].append(us)
    fair = defaultdict(list)  # (target, field) -> [value]
    for r in fair_rows:
        for field in ("rps", "p50_ms", "p99_ms", "large_reads"):
            fair[(r["target"], field)].append(float(r[field]))

    ovf = defaultdict(list)  # (scenario, target) -> [listen overflows per run]
    for r in read_tsv(os.path.join(d, "overflows.tsv")):
        ovf[(r["scenario"], r["target"])].append(int(r["overflows"]))
    for s in scen:
        for tg in targets:
            vals = ovf.get((s["id"], tg), [])
            if any(vals):
                meta[f"note_ovf_{s['id']}_{tg}"] = (
                    f"`{s['label']}` against {tg}: the kernel counted listen-queue overflows "
                    f"during the runs ({', '.join(map(str, vals))} per round; system-wide counter). "
                    f"Each one delays a connection by a SYN-ACK retransmit (1 s or more), which "
                    f"lowers the measured rps")

    def m_rps(sid, test, tg):
        return median(rps.get((sid, test, tg), []))

    def m_lat(sid, test, tg, q):
        return median(lat.get((sid, test, tg, q), []))

    rounds = meta.get("rounds", "?")
    out = []
    out.append("# sentinel-proxy benchmark report")
    out.append("")
    out.append(f"- date: {meta.get('date', '?')}")
    out.append(f"- host: {meta.get('host', '?')}")
    out.append(f"- redis: {meta.get('redis_version', '?')}; haproxy: {meta.get('haproxy_version', '?')} "
               f"(nbthread {meta.get('haproxy_nbthread', '?')})")
    out.append(f"- proxy: `{meta.get('proxy_cmdline', '?')}`; own: the same with `--share-backend false`")
    if meta.get("listen_backlog"):
        out.append(f"- listen backlog (accept queue limit, from ss): {meta['listen_backlog']}")
    out.append(f"- rounds: {rounds} (median shown), quick: {meta.get('quick', '0')}, "
               f"open-files limit: {meta.get('nofile', '?')}, local ports: {meta.get('port_range', '?')}"
               f"{', own network namespace' if meta.get('netns') == '1' else ''}")
    if meta.get("load_start"):
        out.append(f"- load average (1/5/15 min) at start: {meta['load_start']}, at end: {meta.get('load_end', '?')}")
    out.append(f"- command: `{meta.get('command', 'scripts/bench.sh')}`")
    out.append("")

    # ------------------------------------------------------------ summary
    def summary_row(name, values, target="", digits=0):
        """values: {target: number}; ratios to HAProxy next to each hop."""
        h = values.get("haproxy")
        row = [name, fmt_num(values.get("direct"), digits), fmt_num(h, digits)]
        for hop in hops:
            if hop == "haproxy":
                continue
            row += [fmt_num(values.get(hop), digits), ratio(values.get(hop), h)]
        return row + [target]

    head = ["measure", "direct", "HAProxy"]
    for hop in hops:
        if hop != "haproxy":
            head += [proxy_label if hop == "proxy" else hop, "/ HAProxy"]
    head.append("target (proxy)")
    rows = []
    goals = {("p1", "rps"): "≥ 1.15× HAProxy", ("p16", "rps"): "≥ 1.2× HAProxy"}
    for s in scen:
        sid = s["id"]
        for t in tests.get(sid, []):
            rows.append(summary_row(f"{t} rps, `{s['label']}`",
                                    {tg: m_rps(sid, t, tg) for tg in targets},
                                    goals.get((sid, "rps"), "")))
    if "p1" in labels:
        for t in tests.get("p1", []):
            for q, goal in (("p50", "≤ direct + 0.4 ms"), ("p99", "≤ HAProxy")):
                rows.append(summary_row(f"{t} {q} ms, `{labels['p1']}`",
                                        {tg: m_lat("p1", t, tg, q) for tg in targets}, goal, 3))
            base = {q: m_lat("p1", t, "direct", q) for q in ("p50", "p99")}
            for q in ("p50", "p99"):
                added = {}
                for tg in hops:
                    v = m_lat("p1", t, tg, q)
                    if v is not None and base[q] is not None:
                        added[tg] = v - base[q]
                rows.append(summary_row(f"{t} {q} ms added to direct, `{labels['p1']}`", added,
                                        "≤ +0.4 ms" if q == "p50" else "", 3))
    for s in scen:
        sid = s["id"]
        vals = {tg: median(cpu.get((sid, tg), [])) for tg in hops}
        vals["direct"] = median(cpu.get((sid, "redis@direct"), []))
        rows.append(summary_row(f"CPU µs/request, `{s['label']}` (direct: redis-server's)", vals,
                                "≤ 0.7× HAProxy", 2))
    if fair_rows:
        for field, name, goal, digits in (
                ("p50_ms", "small GET p50 ms while one client reads 10 MB values", "", 3),
                ("p99_ms", "small GET p99 ms while one client reads 10 MB values", "≤ HAProxy", 3),
                ("large_reads", "10 MB reads done meanwhile", "", 0)):
            rows.append(summary_row(name, {tg: median(fair.get((tg, field), [])) for tg in targets},
                                    goal, digits))
    for count in sorted({c for (_, c) in idle}):
        opened = ", ".join(f"{tg} {j['connected']:,}" for (tg, c), j in sorted(idle.items())
                           if c == count)
        for key, name in (("rss_idle_kb", "idle"), ("rss_pong_kb", "after one PING")):
            vals = {tg: per_conn(j, key) for (tg, c), j in idle.items() if c == count}
            rows.append(summary_row(f"bytes/connection {name}, {count:,} connections asked "
                                    f"(open: {opened})", vals, "≤ 2,000"))
    out.append(f"## Summary (medians of {rounds} rounds; ratios to HAProxy)")
    out.append("")
    out.append(table(head, rows, "l" + "r" * (len(head) - 2) + "l"))
    out.append("")
    out.append("`proxy` is the default configuration (clients in Redis's default connection state "
               "share a backend connection); `own` is `--share-backend false` (one backend connection "
               "per client, like HAProxy). For rps higher is better; for latency, CPU and bytes lower "
               "is better.")
    out.append("")

    # ------------------------------------------------------------ details
    out.append(f"## Throughput (requests/s, median of {rounds} rounds)")
    out.append("")
    rows = []
    for s in scen:
        sid = s["id"]
        for t in tests.get(sid, []):
            m = {tg: m_rps(sid, t, tg) for tg in targets}
            row = [s["label"], t] + [fmt_num(m.get(tg)) for tg in targets]
            row += [ratio(m.get(tg), m.get("direct")) for tg in hops]
            row += [ratio(m.get(tg), m.get("haproxy")) for tg in hops if tg != "haproxy"]
            rows.append(row)
    head = ["scenario", "test"] + [f"{tg} rps" for tg in targets]
    head += [f"{tg}/direct" for tg in hops] + [f"{tg}/haproxy" for tg in hops if tg != "haproxy"]
    out.append(table(head, rows, "ll" + "r" * (len(head) - 2)))
    out.append("")

    out.append(f"## Latency (ms, p50 / p99 as redis-benchmark reports them, median of {rounds} rounds)")
    out.append("")
    rows = []
    for s in scen:
        sid = s["id"]
        for t in tests.get(sid, []):
            row = [s["label"], t]
            for tg in targets:
                row.append(f"{fmt_num(m_lat(sid, t, tg, 'p50'), 3)} / {fmt_num(m_lat(sid, t, tg, 'p99'), 3)}")
            rows.append(row)
    out.append(table(["scenario", "test"] + list(targets), rows, "ll" + "r" * len(targets)))
    out.append("")

    out.append(f"## CPU per request (µs of user+system CPU of the process, median of {rounds} rounds)")
    out.append("")
    rows = []
    for s in scen:
        sid = s["id"]
        h = median(cpu.get((sid, "haproxy"), []))
        row = [s["label"], fmt_num(h, 2)]
        for tg in hops:
            if tg == "haproxy":
                continue
            v = median(cpu.get((sid, tg), []))
            row += [fmt_num(v, 2), ratio(v, h)]
        rows.append(row + [fmt_num(median(cpu.get((sid, "redis@direct"), [])), 2)])
    head = ["scenario", "haproxy µs/req"]
    for tg in hops:
        if tg != "haproxy":
            head += [f"{tg} µs/req", f"{tg}/haproxy"]
    head.append("redis-server µs/req (direct)")
    out.append(table(head, rows, "l" + "r" * (len(head) - 1)))
    out.append("")

    if fair_rows:
        out.append("## Fairness: 50 clients' small GETs while one client reads a 10 MB value in a loop")
        out.append("")
        rows = []
        for tg in targets:
            rows.append([tg, fmt_num(median(fair.get((tg, "rps"), []))),
                         fmt_num(median(fair.get((tg, "p50_ms"), [])), 3),
                         fmt_num(median(fair.get((tg, "p99_ms"), [])), 3),
                         fmt_num(median(fair.get((tg, "large_reads"), [])))])
        out.append(table(["target", "small GET rps", "p50 ms", "p99 ms", "10 MB reads meanwhile"],
                         rows, "lrrrr"))
        out.append("")

    if idle:
        out.append("## Memory per client connection (bytes = ΔVmRSS / connections)")
        out.append("")
        rows = []
        for (tg, count), j in sorted(idle.items(), key=lambda kv: (kv[0][1], HOPS.index(kv[0][0]))):
            n = j["connected"] or 1
            name = proxy_label if tg == "proxy" else tg
            rows.append([
                name, f"{j['connected']:,}",
                fmt_num(per_conn(j, "rss_idle_kb")),
                fmt_num(per_conn(j, "rss_pong_kb")),
                f"{j['pongs']:,}/{j['connected']:,}",
                f"{(j['fds_idle'] - j['fds_before']) / n:.2f} / {(j['fds_pong'] - j['fds_before']) / n:.2f}",
                f"{j['rss_before_kb']:,} / {j['rss_idle_kb']:,} / {j['rss_pong_kb']:,} / "
                f"{j.get('rss_after_close_kb', 0):,}",
            ])
            if j.get("listen_overflows") or j.get("listen_drops"):
                meta[f"note_listen_{tg}_{count}"] = (
                    f"{name}, {count:,} connections: the kernel counted {j.get('listen_overflows', 0)} "
                    f"listen-queue overflows while they were opened (a system-wide counter)")
            if j["connected"] != j["count"]:
                meta[f"note_connect_{tg}_{count}"] = (
                    f"{name}: only {j['connected']} of {j['count']} connections could be opened")
        out.append(table(["target", "connections", "idle bytes/conn", "after PING bytes/conn",
                          "PONG replies", "fds/conn idle / after PING",
                          "VmRSS KiB before / idle / after PING / after close"],
                         rows, "lrrrrrr"))
        out.append("")
    notes = [v for k, v in sorted(meta.items()) if k.startswith("note")]
    if notes:
        out.append("## Notes")
        out.append("")
        out.extend(f"- {n}" for n in notes)
        out.append("")

    # raw per-round values
    out.append("## Raw per-round values")
    out.append("")
    rows = []
    for s in scen:
        sid = s["id"]
        for t in tests.get(sid, []):
            for tg in targets:
                vals = rps.get((sid, t, tg), [])
                rows.append([s["label"], t, tg, " ".join(fmt_num(v) for v in vals)])
        for proc in HOPS + ("redis@direct",):
            vals = cpu.get((sid, proc), [])
            if vals:
                rows.append([s["label"], "cpu µs/req", proc, " ".join(f"{v:.2f}" for v in vals)])
    for tg in targets:
        for field in ("p50_ms", "p99_ms", "large_reads"):
            vals = fair.get((tg, field), [])
            if vals:
                rows.append(["fairness", field, tg, " ".join(f"{v:g}" for v in vals)])
    out.append(table(["scenario", "metric", "target", "per round"], rows, "llll"))
    out.append("")

    text = "\n".join(out)
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write(text)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "free-ports":
        free_ports(int(sys.argv[2]))
    elif cmd == "haproxy-server":
        haproxy_server(sys.argv[2])
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
