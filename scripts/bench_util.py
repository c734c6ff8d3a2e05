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


def report(d, out_path):
    meta = {}
    if os.path.exists(os.path.join(d, "meta.env")):
        with open(os.path.join(d, "meta.env")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    scen = read_tsv(os.path.join(d, "scenarios.tsv"))
    rps_rows = read_tsv(os.path.join(d, "rps.tsv"))
    cpu_rows = read_tsv(os.path.join(d, "cpu.tsv"))
    proxy_label = meta.get("proxy_label", "proxy")
    targets = meta.get("targets", "direct haproxy proxy").split()
    has_shared = "shared" in targets

    rps = defaultdict(list)  # (scenario, test, target) -> [rps]
    tests = defaultdict(list)  # scenario -> [test] in order seen
    for r in rps_rows:
        rps[(r["scenario"], r["test"], r["target"])].append(float(r["rps"]))
        if r["test"] not in tests[r["scenario"]]:
            tests[r["scenario"]].append(r["test"])
    cpu = defaultdict(list)  # (scenario, proc) -> [us/request]
    for r in cpu_rows:
        req = int(r["requests"])
        if req > 0:
            us = int(r["ticks"]) / int(meta.get("clk_tck", "100")) * 1e6 / req
            cpu[(r["scenario"], r["proc"])].append(us)

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

    rounds = meta.get("rounds", "?")
    out = []
    out.append("# sentinel-proxy benchmark report")
    out.append("")
    out.append(f"- date: {meta.get('date', '?')}")
    out.append(f"- host: {meta.get('host', '?')}")
    out.append(f"- redis: {meta.get('redis_version', '?')}; haproxy: {meta.get('haproxy_version', '?')} "
               f"(nbthread {meta.get('haproxy_nbthread', '?')})")
    out.append(f"- proxy: `{meta.get('proxy_cmdline', '?')}`")
    if meta.get("listen_backlog"):
        out.append(f"- listen backlog (accept queue limit, from ss): {meta['listen_backlog']}")
    out.append(f"- rounds: {rounds} (median shown), quick: {meta.get('quick', '0')}, "
               f"open-files limit: {meta.get('nofile', '?')}")
    if meta.get("load_start"):
        out.append(f"- load average (1/5/15 min) at start: {meta['load_start']}, at end: {meta.get('load_end', '?')}")
    out.append(f"- command: `{meta.get('command', 'scripts/bench.sh')}`")
    out.append("")

    # throughput
    out.append(f"## Throughput (requests/s, median of {rounds} rounds)")
    out.append("")
    rows = []
    for s in scen:
        sid = s["id"]
        for t in tests.get(sid, []):
            m = {tg: median(rps.get((sid, t, tg), [])) for tg in ("direct", "haproxy", "proxy", "shared")}
            row = [s["label"], t, fmt_num(m["direct"]), fmt_num(m["haproxy"]), fmt_num(m["proxy"])]
            if has_shared:
                row.append(fmt_num(m["shared"]))
            row += [ratio(m["proxy"], m["direct"]), ratio(m["proxy"], m["haproxy"])]
            if has_shared:
                row += [ratio(m["shared"], m["direct"]), ratio(m["shared"], m["haproxy"])]
            row.append(ratio(m["haproxy"], m["direct"]))
            rows.append(row)
    head = ["scenario", "test", "direct rps", "haproxy rps", f"{proxy_label} rps"]
    if has_shared:
        head.append("shared rps")
    head += ["proxy/direct", "proxy/haproxy"]
    if has_shared:
        head += ["shared/direct", "shared/haproxy"]
    head.append("haproxy/direct")
    out.append(table(head, rows, "ll" + "r" * (len(head) - 2)))
    if has_shared:
        out.append("")
        out.append("`proxy` keeps one backend connection per client (the default); `shared` is the "
                   "same binary with `--share-backend` (stateless clients share one connection).")
    out.append("")

    # cpu
    out.append(f"## CPU per request (µs of user+system CPU of the process, median of {rounds} rounds)")
    out.append("")
    rows = []
    for s in scen:
        sid = s["id"]
        h = median(cpu.get((sid, "haproxy"), []))
        p = median(cpu.get((sid, "proxy"), []))
        sh = median(cpu.get((sid, "shared"), []))
        rd = median(cpu.get((sid, "redis@direct"), []))
        row = [s["label"], fmt_num(h, 2), fmt_num(p, 2), ratio(p, h)]
        if has_shared:
            row += [fmt_num(sh, 2), ratio(sh, h)]
        rows.append(row + [fmt_num(rd, 2)])
    head = ["scenario", "haproxy µs/req", f"{proxy_label} µs/req", "proxy/haproxy"]
    if has_shared:
        head += ["shared µs/req", "shared/haproxy"]
    head.append("redis-server µs/req (direct)")
    out.append(table(head, rows, "l" + "r" * (len(head) - 1)))
    out.append("")

    # idle memory
    idle = {}
    for tg in ("haproxy", "proxy", "shared"):
        p = os.path.join(d, f"idle_{tg}.json")
        if os.path.exists(p):
            with open(p) as f:
                idle[tg] = json.load(f)
    if idle:
        n_req = meta.get("idle_conns", "?")
        out.append(f"## Memory per client connection ({n_req} concurrent connections, bytes = ΔVmRSS / connections)")
        out.append("")
        rows = []
        for tg, j in idle.items():
            n = j["connected"] or 1
            name = proxy_label if tg == "proxy" else tg
            rows.append([
                name, f"{j['connected']:,}",
                fmt_num((j["rss_idle_kb"] - j["rss_before_kb"]) * 1024 / n),
                fmt_num((j["rss_pong_kb"] - j["rss_before_kb"]) * 1024 / n),
                f"{j['pongs']:,}/{j['connected']:,}",
                f"{(j['fds_idle'] - j['fds_before']) / n:.2f} / {(j['fds_pong'] - j['fds_before']) / n:.2f}",
                f"{j['rss_before_kb']:,} / {j['rss_idle_kb']:,} / {j['rss_pong_kb']:,} / "
                f"{j.get('rss_after_close_kb', 0):,}",
            ])
            if j.get("listen_overflows") or j.get("listen_drops"):
                meta[f"note_listen_{tg}"] = (
                    f"{name}: the kernel counted {j.get('listen_overflows', 0)} listen-queue overflows "
                    f"while these connections were opened (a system-wide counter: other programs "
                    f"on the machine count too)")
            if j["connected"] != j["count"]:
                meta[f"note_connect_{tg}"] = (
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
        for proc in ("haproxy", "proxy", "shared", "redis@direct"):
            vals = cpu.get((sid, proc), [])
            if vals:
                rows.append([s["label"], "cpu µs/req", proc, " ".join(f"{v:.2f}" for v in vals)])
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
