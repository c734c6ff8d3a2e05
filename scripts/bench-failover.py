#!/usr/bin/env python3
"""Failover benchmark for a sidecar group of three sentinel-proxies (stdlib only).

WHAT IT MEASURES
  RUNS (default 5) unplanned failovers: the current master's redis-server is
  killed with SIGKILL while a writer sends `INCR bench:counter` every 5 ms
  through proxy 1 (one connection, one command at a time, like a legacy
  application). The proxies run with --down-after-ms 1000. Per run:

  - kill -> first write: from the kill to the first INCR acknowledged by the
    new master through proxy 1 (median and worst over the runs; targets:
    median <= 1.5 s, worst <= 2.5 s). A run without one after 30 s is a miss;
    the script then waits up to 60 s more so the group can recover and the
    remaining runs still happen;
  - failed writes: error replies and lost connections seen by the writer, with
    their text. The only acceptable ones are those in flight at the kill
    (sent before the killed process was reaped, answered after the signal);
    any other is flagged;
  - acknowledged writes lost: after the failover the writer is paused and the
    counter is read on the new master directly. Its value minus the INCRs the
    new master acknowledged since is the counter the new master had when it
    was promoted; lost = INCRs the old master acknowledged with a greater
    value. Redis replicates asynchronously, so a few may be lost;
  - the timeline from the proxies' logs (+sdown, +odown, +elected-leader,
    +promoted-slave, +switch-master, proxy 1 routing to the new master), as
    seconds after the kill, with the number of failover attempts (epochs) and
    promotions. The log lines are printed for the first run, and every event
    line for a run over 2.5 s.

  The killed node is then restarted with its own config file (it comes back
  claiming master; the proxies turn it into a replica) and the next run starts
  once it replicates from the new master and every proxy sees two healthy
  replicas again. Writes made during that rejoin are checked too: errors and
  any counter value that is not the previous one plus one are reported.

HOW TO RUN
  scripts/bench-failover.py [--runs N] [--gap SECONDS] [--save-logs DIR]
  (RUNS=N works too; --save-logs keeps copies of the logs after cleanup)

  Needs cargo and redis-server in PATH. It runs `cargo build --release` in the
  repository root, starts 3 redis-server (1 master, 2 replicas, each with its
  own config file so CONFIG REWRITE works) and 3 proxies on free 127.0.0.1
  ports, in a temporary directory. On any exit it stops exactly the processes
  it started (SIGTERM, then SIGKILL) and removes the directory. Only loopback
  addresses are used. About 2-3 minutes for 5 runs: most of it is the
  rejoins, as the proxies re-read a replica's INFO every 10 s.
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

HOST = "127.0.0.1"
NAME = "mymaster"
KEY = "bench:counter"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 10000
HOLD_TIMEOUT_MS = 30000
WRITE_INTERVAL = 0.005
# Longer than the hold timeout: a held INCR is answered by the proxy.
WRITER_REPLY_TIMEOUT = HOLD_TIMEOUT_MS / 1000 + 10
FAILOVER_BOUND = 30.0
# A run over FAILOVER_BOUND is a miss; waiting this much longer (a retried
# failover starts 2 x --failover-timeout-ms after the first) lets the group
# recover, so the remaining runs still take place.
RECOVERY_BOUND = 60.0
REJOIN_BOUND = 60.0
# No replica can be promoted before the master has been silent for
# --down-after-ms, so a reply that reaches the writer sooner than this after
# the kill was sent by the old master before it died.
OLD_MASTER_WINDOW = DOWN_AFTER_MS / 1000 / 2
TARGET_MEDIAN = 1.5
TARGET_WORST = 2.5
TIMELINE_EVENTS = ("+sdown", "+odown", "+elected-leader", "+promoted-slave", "+switch-master",
                   "+failover-end")
# Columns of the per-run timeline, in the order they happen.
MILESTONES = ("+sdown", "2nd +sdown", "+odown", "+elected-leader", "+promoted-slave",
              "+switch-master", "p1 routing", "first write")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "sentinel-proxy")


def say(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ RESP

class RespError(Exception):
    pass


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def read_reply(f):
    """One RESP2 reply; an error reply is returned as a RespError, not raised."""
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed by peer")
    if not line.endswith(b"\r\n"):
        raise ConnectionError("truncated reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) < n + 2:
            raise ConnectionError("truncated bulk reply")
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [read_reply(f) for _ in range(n)]
    raise ConnectionError(f"unexpected reply {line[:60]!r}")


def cmd(port, *args, timeout=1.0):
    """Sends one command on a fresh connection; raises on an error reply."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(encode(*args))
        with s.makefile("rb") as f:
            reply = read_reply(f)
    if isinstance(reply, RespError):
        raise reply
    return reply


def pairs(flat):
    return dict(zip(flat[0::2], flat[1::2]))


def info(port, section="replication"):
    text = cmd(port, "INFO", section)
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def get_master(sentinel_port):
    reply = cmd(sentinel_port, "SENTINEL", "get-master-addr-by-name", NAME)
    return (reply[0], int(reply[1])) if reply else None


def try_(fn, *args):
    try:
        return fn(*args)
    except (OSError, ConnectionError, RespError, ValueError, IndexError, TypeError):
        return None


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ------------------------------------------------------------------ processes

class Lab:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-failover-")
        self.procs = []          # every Popen this script started
        self.nodes = {}          # redis port -> {"conf", "proc", "log"}
        self.proxies = []        # dicts: listen, sentinel, metrics, log, proc

    def spawn(self, argv, log):
        f = open(log, "ab")
        try:
            p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            f.close()
        self.procs.append(p)
        return p

    def add_node(self, port, master_port=None):
        d = os.path.join(self.dir, f"redis-{port}")
        os.mkdir(d)
        conf = os.path.join(d, "redis.conf")
        lines = [f"port {port}", f"bind {HOST}", 'save ""', "appendonly no",
                 "repl-diskless-sync-delay 0", f"dir {d}", "daemonize no",
                 f'logfile "{os.path.join(d, "redis.log")}"']
        if master_port:
            lines.append(f"replicaof {HOST} {master_port}")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.nodes[port] = {"conf": conf, "dir": d, "proc": None}
        self.start_node(port)

    def start_node(self, port):
        node = self.nodes[port]
        node["proc"] = self.spawn(["redis-server", node["conf"]],
                                  os.path.join(node["dir"], "stdout.log"))

    def add_proxy(self, index, master_port, ports, all_sentinels):
        listen, sentinel, metrics = ports
        log = os.path.join(self.dir, f"proxy{index}.log")
        argv = [BINARY, "--master", f"{HOST}:{master_port}",
                "--listen", f"{HOST}:{listen}",
                "--sentinel-listen", f"{HOST}:{sentinel}",
                "--metrics-listen", f"{HOST}:{metrics}"]
        for other in all_sentinels:
            if other != sentinel:
                argv += ["--peer", f"{HOST}:{other}"]
        argv += ["--quorum", "2", "--down-after-ms", str(DOWN_AFTER_MS),
                 "--failover-timeout-ms", str(FAILOVER_TIMEOUT_MS),
                 "--hold-timeout-ms", str(HOLD_TIMEOUT_MS), "--log-level", "info"]
        proc = self.spawn(argv, log)
        self.proxies.append({"index": index, "listen": listen, "sentinel": sentinel,
                             "metrics": metrics, "log": log, "proc": proc, "argv": argv})

    def cleanup(self, save_logs=None):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    p.kill()
                except OSError:
                    pass
                p.wait()
        if save_logs:
            os.makedirs(save_logs, exist_ok=True)
            for p in self.proxies:
                shutil.copy(p["log"], save_logs)
            for port, node in self.nodes.items():
                for name in ("redis.log", "redis.conf"):
                    src = os.path.join(node["dir"], name)
                    if os.path.exists(src):
                        shutil.copy(src, os.path.join(save_logs, f"redis-{port}.{name.split('.')[1]}"))
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ writer

class Writer(threading.Thread):
    """INCR bench:counter every 5 ms over one connection to proxy 1.

    records: (t_send, t_recv, ok, value or error text), monotonic seconds."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.lock = threading.Lock()
        self.records = []
        self.stop = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.idle = threading.Event()

    def record(self, *rec):
        with self.lock:
            self.records.append(rec)

    def snapshot(self, start=0):
        with self.lock:
            return self.records[start:]

    def count(self):
        with self.lock:
            return len(self.records)

    def pause(self):
        """Returns once no INCR is in flight and none will be sent."""
        self.running.clear()
        self.idle.clear()
        if not self.idle.wait(WRITER_REPLY_TIMEOUT + 5):
            raise RuntimeError("the writer did not pause")

    def resume(self):
        self.running.set()

    def run(self):
        request = encode("INCR", KEY)
        sock = reader = None
        next_at = time.monotonic()
        while not self.stop.is_set():
            if not self.running.is_set():
                self.idle.set()
                self.running.wait(0.1)
                next_at = time.monotonic()
                continue
            if sock is None:
                t0 = time.monotonic()
                try:
                    sock = socket.create_connection((HOST, self.port), timeout=WRITER_REPLY_TIMEOUT)
                    reader = sock.makefile("rb")
                except OSError as e:
                    self.record(t0, time.monotonic(), False, f"connect: {e}")
                    sock = None
                    time.sleep(0.05)
                    continue
            now = time.monotonic()
            if next_at > now:
                time.sleep(next_at - now)
            t0 = time.monotonic()
            next_at = t0 + WRITE_INTERVAL
            try:
                sock.sendall(request)
                reply = read_reply(reader)
            except (OSError, ConnectionError, ValueError) as e:
                self.record(t0, time.monotonic(), False, f"connection lost: {e}")
                try:
                    reader.close()
                    sock.close()
                except OSError:
                    pass
                sock = reader = None
                continue
            t1 = time.monotonic()
            if isinstance(reply, int):
                self.record(t0, t1, True, reply)
            elif isinstance(reply, RespError):
                self.record(t0, t1, False, f"-{reply}")
            else:
                self.record(t0, t1, False, f"unexpected reply {reply!r:.60}")
        if sock is not None:
            sock.close()


# ------------------------------------------------------------------ checks

def node_healthy(port, master):
    i = try_(info, port)
    return bool(i) and i.get("role") == "slave" and i.get("master_link_status") == "up" \
        and i.get("master_port") == str(master[1])


def group_healthy(lab, master):
    """Every proxy names `master`, sees it up, 2 healthy replicas, 2 other sentinels."""
    for p in lab.proxies:
        if try_(get_master, p["sentinel"]) != master:
            return False
        m = try_(cmd, p["sentinel"], "SENTINEL", "master", NAME)
        if not m:
            return False
        m = pairs(m)
        if m.get("flags") != "master" or m.get("num-slaves") != "2" \
                or m.get("num-other-sentinels") != "2":
            return False
        reps = try_(cmd, p["sentinel"], "SENTINEL", "replicas", NAME)
        if not reps or len(reps) != 2:
            return False
        for r in map(pairs, reps):
            if r.get("flags") != "slave" or r.get("master-link-status") != "ok":
                return False
    for port in lab.nodes:
        if port != master[1] and not node_healthy(port, master):
            return False
    return True


def wait_for(what, cond, bound, step=0.05):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    say(f"gave up waiting {bound:.0f} s for {what}")
    return False


# ------------------------------------------------------------------ logs

LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z?\s+(\w+)\s+(.*)$")


def parse_log(path):
    """[(unix time, text)] of a proxy log (tracing's UTC RFC 3339 timestamps)."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = LOG_TS.match(line.rstrip("\n"))
                if not m:
                    continue
                ts = m.group(1)
                if "." in ts:
                    base, frac = ts.split(".")
                    ts = base + "." + frac[:6].ljust(6, "0")
                    fmt = "%Y-%m-%dT%H:%M:%S.%f"
                else:
                    fmt = "%Y-%m-%dT%H:%M:%S"
                t = datetime.datetime.strptime(ts, fmt).replace(
                    tzinfo=datetime.timezone.utc).timestamp()
                out.append((t, f"{m.group(2):5} {m.group(3)}"))
    except OSError:
        pass
    return out


def timeline(lab, run):
    """First time (s after the kill) each event appears in any proxy's log,
    proxy 1's switch of routing, the matching log lines, and every event,
    routing and holding line (printed for runs that miss the target)."""
    t0, t1 = run["kill_wall"] - 0.2, run["kill_wall"] + run["agree_after"] + 2.0
    firsts, lines, sdowns, every = {}, [], {}, []
    new = f"{run['new'][0]}:{run['new'][1]}" if run["new"] else None
    for p in lab.proxies:
        for t, text in parse_log(p["log"]):
            if not (t0 <= t <= t1):
                continue
            rel = t - run["kill_wall"]
            keep = False
            for ev in TIMELINE_EVENTS:
                if f" {ev} " in f" {text} " and (ev != "+sdown" or "+sdown master" in text):
                    if ev == "+sdown":
                        sdowns.setdefault(p["index"], rel)
                    if ev not in firsts or rel < firsts[ev]:
                        firsts[ev] = rel
                        if ev == "+elected-leader":
                            firsts["leader"] = f"p{p['index']}"
                    keep = True
            if "routing to the master" in text or "holding commands" in text:
                keep = True
                if p["index"] == 1 and new and "routing to the master" in text \
                        and f"master={new}" in text:
                    firsts.setdefault("p1 routing", rel)
            if keep:
                lines.append((rel, p["index"], text))
            if keep or "sentinel_proxy::event:" in text:
                every.append((rel, p["index"], text))
    lines.sort()
    every.sort()
    # Failover attempts (epochs), aborted ones, promotions, and whether a proxy
    # took the new master for down right after switching to it.
    epochs = {re.search(r"\+new-epoch (\d+)", t).group(1) for _, _, t in every if "+new-epoch" in t}
    firsts["epochs"] = len(epochs)
    firsts["aborts"] = sum(1 for _, _, t in every if "-failover-abort" in t)
    firsts["promotions"] = sum(1 for _, _, t in every if "+promoted-slave" in t)
    if new:
        down = f"+sdown master {NAME} {run['new'][0]} {run['new'][1]} "
        firsts["new_sdown"] = sorted({i for _, i, t in every if down in t + " "})
    if len(sdowns) >= 2:
        firsts["2nd +sdown"] = sorted(sdowns.values())[1]
    return firsts, lines, every


# ------------------------------------------------------------------ one run

def failover_run(lab, writer, n, epoch_idx, run_start_idx):
    """Kills the master and measures. Records from epoch_idx on were written
    since the previous failover (the acknowledgements the old master gave);
    failed writes are counted from run_start_idx on."""
    p1 = lab.proxies[0]
    old = get_master(p1["sentinel"])
    if old is None or old[1] not in lab.nodes:
        raise RuntimeError(f"proxy 1 names an unknown master {old}")
    node = lab.nodes[old[1]]
    run = {"n": n, "old": old, "new": None}

    run["kill_wall"] = time.time()
    t_kill = time.monotonic()
    os.kill(node["proc"].pid, signal.SIGKILL)
    node["proc"].wait()
    # Until the process has exited its sockets may still take a request.
    t_dead = time.monotonic()
    say(f"run {n}: killed the master {old[0]}:{old[1]} (pid {node['proc'].pid}, "
        f"reaped {1000 * (t_dead - t_kill):.1f} ms after the signal)")

    first = None
    deadline = t_kill + FAILOVER_BOUND + RECOVERY_BOUND
    warned = False
    while time.monotonic() < deadline:
        if not warned and time.monotonic() > t_kill + FAILOVER_BOUND:
            warned = True
            say(f"run {n}: no failover within {FAILOVER_BOUND:.0f} s (a miss); waiting up to "
                f"{RECOVERY_BOUND:.0f} s more for the group to recover")
        if first is None:
            for rec in writer.snapshot(run_start_idx):
                if rec[2] and rec[1] >= t_kill + OLD_MASTER_WINDOW:
                    first = rec
                    break
        masters = [try_(get_master, p["sentinel"]) for p in lab.proxies]
        agreed = masters[0] if masters[0] and masters[0] != old and masters.count(masters[0]) == 3 else None
        if first is not None and agreed:
            run["new"] = agreed
            break
        time.sleep(0.02)
    run["agree_after"] = time.monotonic() - t_kill
    run["first_write"] = first[1] - t_kill if first else None

    # Pause the writer and read the counter on the new master directly.
    final = None
    writer.pause()
    end_idx = run["end_idx"] = writer.count()
    if run["new"]:
        final = try_(cmd, run["new"][1], "GET", KEY)
        role = try_(info, run["new"][1])
        run["new_role"] = role.get("role") if role else None
    writer.resume()
    recs = writer.snapshot(run_start_idx)[: end_idx - run_start_idx]
    epoch = writer.snapshot(epoch_idx)[: end_idx - epoch_idx]

    old_acks = [r[3] for r in epoch if r[2] and r[1] < t_kill + OLD_MASTER_WINDOW]
    new_acks = [r[3] for r in epoch if r[2] and r[1] >= t_kill + OLD_MASTER_WINDOW]
    fails = [r for r in recs if not r[2]]
    # In flight at the kill: sent before the process was gone, answered after the signal.
    run["failed"] = [(r[3], ("in flight at the kill" if r[0] < t_dead and r[1] >= t_kill else
                             "NOT in flight at the kill")
                      + f"; sent {1000 * (r[0] - t_kill):+.1f} ms, answered "
                        f"{1000 * (r[1] - t_kill):+.1f} ms after the signal, process reaped at "
                        f"{1000 * (t_dead - t_kill):+.1f} ms") for r in fails]
    run["unexpected_fail"] = sum(1 for _, why in run["failed"] if why.startswith("NOT"))
    run["late_old_ack"] = [r for r in recs if r[2] and r[0] >= t_kill and r[1] < t_kill + OLD_MASTER_WINDOW]
    run["longest"] = max((r[1] - r[0] for r in recs), default=0.0)
    run["final"] = int(final) if final is not None else None
    run["acked_old"] = old_acks[-1] if old_acks else None
    run["first_new"] = new_acks[0] if new_acks else None
    run["notes"] = []
    if run["final"] is not None:
        base = run["final"] - len(new_acks)
        run["base"] = base
        run["lost"] = sum(1 for v in old_acks if v > base)
        if new_acks and new_acks[0] - 1 != base:
            run["notes"].append(f"first value from the new master {new_acks[0]} is not "
                                f"counter-at-promotion {base} + 1")
        if new_acks and new_acks[-1] != run["final"]:
            run["notes"].append(f"direct GET {run['final']} != last acknowledged {new_acks[-1]}")
    else:
        run["base"] = run["lost"] = None
    if run["late_old_ack"]:
        run["notes"].append(f"{len(run['late_old_ack'])} INCR sent after the kill acknowledged "
                            f"within {OLD_MASTER_WINDOW} s (before any promotion is possible)")
    # Consecutive acknowledged values must go up by one, except once at the switch.
    steps = [(a, b) for a, b in zip(old_acks + new_acks, (old_acks + new_acks)[1:]) if b != a + 1]
    run["steps"] = steps
    return run


def rejoin(lab, writer, run):
    port = run["old"][1]
    t0 = time.monotonic()
    lab.start_node(port)
    ok = wait_for(f"{HOST}:{port} to come back as a replica of {run['new']} and the group "
                  "to see 2 healthy replicas",
                  lambda: group_healthy(lab, run["new"]), REJOIN_BOUND, step=0.1)
    run["rejoin"] = time.monotonic() - t0 if ok else None
    return ok


# ------------------------------------------------------------------ report

def fmt(x, d=3):
    return "-" if x is None else f"{x:.{d}f}"


def table(headers, rows):
    cells = [headers] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r))
    return "\n".join([line(headers), "  ".join("-" * x for x in w)] + [line(r) for r in cells[1:]])


def addr(a):
    return f"{a[1]}" if a else "-"


def report(lab, runs, writer):
    print()
    print(f"== per run (ports: master/replicas {' '.join(map(str, sorted(lab.nodes)))}; "
          f"writer through proxy 1 at {HOST}:{lab.proxies[0]['listen']}) ==")
    rows = []
    for r in runs:
        rows.append([r["n"], addr(r["old"]), addr(r["new"]), fmt(r["first_write"]),
                     fmt(r["agree_after"]), fmt(r["longest"]),
                     f"{len(r['failed'])} ({r['unexpected_fail']} unexpected)",
                     "-" if r["lost"] is None else r["lost"],
                     f"{r['acked_old']}/{r['base']}/{r['first_new']}",
                     fmt(r.get("rejoin"), 1),
                     f"{len(r.get('rejoin_failed', []))}/{len(r.get('rejoin_steps', []))}"])
    print(table(["run", "killed", "new", "kill→first write s", "proxies agree s",
                 "longest INCR s", "failed writes", "acked lost",
                 "old/base/new", "rejoin s", "rejoin errors/jumps"], rows))
    print("old/base/new: last value the old master acknowledged / the counter the new master "
          "had at promotion (direct GET minus INCRs it acknowledged since) / first value it "
          "acknowledged. rejoin: restart of the killed node until it replicates from the new "
          "master and every proxy sees 2 healthy replicas; jumps: counter steps other than +1.")

    print()
    print("== timeline per run (s after the kill; first proxy to log each event) ==")
    rows = []
    for r in runs:
        f = r["timeline"]
        f["first write"] = r["first_write"]
        rows.append([r["n"]] + [fmt(f.get(k)) for k in MILESTONES]
                    + [f.get("leader", "-"), fmt(f.get("+failover-end")), f.get("epochs", 0),
                       f.get("promotions", 0)])
    print(table(["run", *MILESTONES, "leader", "+failover-end", "epochs", "promotions"], rows))
    print("+switch-master: the first proxy to switch (a follower hears it from the leader's "
          "hello; the leader logs it at +failover-end, after reconfiguring the other replica). "
          "p1 routing: proxy 1 logs 'routing to the master' with the new one. epochs: "
          "failover attempts (1 when the first vote elects a leader); promotions: "
          "+promoted-slave events (1 when a single failover happened).")

    for r in runs:
        for err, why in r["failed"]:
            print(f"  run {r['n']}: failed write: {err}  [{why}]")
        for err, why in r.get("rejoin_failed", []):
            print(f"  run {r['n']}: failed write during the rejoin: {err}  [{why}]")
        for a, b in r["steps"]:
            print(f"  run {r['n']}: counter went from {a} to {b} across the failover")
        for a, b in r.get("rejoin_steps", []):
            print(f"  run {r['n']}: counter went from {a} to {b} during the rejoin")
        for note in r["notes"]:
            print(f"  run {r['n']}: note: {note}")
        f = r["timeline"]
        if f.get("aborts"):
            print(f"  run {r['n']}: {f['epochs']} failover attempts; "
                  f"{f['aborts']} -failover-abort lines (an attempt that elected no leader)")
        if f.get("promotions", 0) > 1:
            print(f"  run {r['n']}: {f['promotions']} promotions: more than one failover happened")
        if f.get("new_sdown"):
            print(f"  run {r['n']}: proxies "
                  + ", ".join(f"p{i}" for i in f["new_sdown"])
                  + f" logged +sdown for the new master {addr(r['new'])}")

    def print_lines(r, key, what):
        kill = datetime.datetime.fromtimestamp(r["kill_wall"], datetime.timezone.utc)
        print()
        print(f"== {what}, run {r['n']} (kill at {kill.strftime('%H:%M:%S.%f')[:-3]} UTC; "
              "s after the kill) ==")
        for rel, idx, text in r[key]:
            print(f"  {rel:+8.3f}s  p{idx}  {text}")

    if runs:
        print_lines(runs[0], "timeline_lines", "proxy log lines")
    for r in runs:
        if r["first_write"] is None or r["first_write"] > TARGET_WORST:
            print_lines(r, "event_lines", f"every event in the proxy logs (over {TARGET_WORST} s)")

    print()
    print("== summary ==")
    times = [r["first_write"] for r in runs if r["first_write"] is not None]
    missing = len(runs) - len(times)
    if times:
        med, worst = statistics.median(times), max(times)
        verdict = "met" if med <= TARGET_MEDIAN and worst <= TARGET_WORST and not missing else "MISSED"
        print(f"kill → first write: median {med:.2f} s, worst {worst:.2f} s "
              f"(targets: median ≤ {TARGET_MEDIAN} s, worst ≤ {TARGET_WORST} s): {verdict}"
              + (f"; {missing} run(s) without any write within "
                 f"{FAILOVER_BOUND + RECOVERY_BOUND:.0f} s" if missing else ""))
    else:
        print("kill → first write: no run completed")
    print("where the time goes (median over runs, s after the kill): " + ", ".join(
        f"{k} {statistics.median(v):.2f}" for k in MILESTONES
        for v in [[r["timeline"][k] for r in runs if r["timeline"].get(k) is not None]] if v))
    print("failed writes per run: " + ", ".join(str(len(r["failed"])) for r in runs)
          + " (not in flight at the kill: "
          + ", ".join(str(r["unexpected_fail"]) for r in runs) + ")")
    print("failed writes during rejoins: " + ", ".join(str(len(r.get("rejoin_failed", []))) for r in runs))
    print("acknowledged writes lost per run: "
          + ", ".join("-" if r["lost"] is None else str(r["lost"]) for r in runs)
          + " (Redis replicates asynchronously: acknowledged by the old master, never replicated)")
    recs = writer.snapshot()
    ok = sum(1 for r in recs if r[2])
    print(f"writer: {ok} INCR acknowledged, {len(recs) - ok} failed, in {len(runs)} failover(s)")


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "5")))
    ap.add_argument("--gap", type=float, default=3.0, help="seconds between runs (default 3)")
    ap.add_argument("--save-logs", metavar="DIR",
                    help="copy the proxies' and redis-servers' logs to DIR before cleaning up")
    args = ap.parse_args()

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    say(f"cargo build --release in {ROOT}")
    subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    say(f"{' '.join(version[:3])}; {os.cpu_count()} cpus; load average {os.getloadavg()[0]:.2f} "
        f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    lab = Lab()
    writer = None
    runs = []
    try:
        ports = free_ports(12)
        redis_ports, proxy_ports = ports[:3], [ports[3 + 3 * i: 6 + 3 * i] for i in range(3)]
        master_port = redis_ports[0]
        lab.add_node(master_port)
        if not wait_for("the master", lambda: try_(cmd, master_port, "PING") == "PONG", 10):
            raise RuntimeError("redis-server did not start")
        for port in redis_ports[1:]:
            lab.add_node(port, master_port)
        sentinels = [p[1] for p in proxy_ports]
        for i, p in enumerate(proxy_ports, 1):
            lab.add_proxy(i, master_port, p, sentinels)
        say(f"temp dir {lab.dir}; master {master_port}, replicas {redis_ports[1]} {redis_ports[2]}; "
            f"proxies (client/sentinel/metrics) " + ", ".join("/".join(map(str, p)) for p in proxy_ports))
        say("proxy 1: " + " ".join(os.path.relpath(a, ROOT) if a == BINARY else a
                                   for a in lab.proxies[0]["argv"]))
        master = (HOST, master_port)
        if not wait_for("the group to be ready",
                        lambda: group_healthy(lab, master)
                        and try_(cmd, lab.proxies[0]["listen"], "PING") == "PONG", 30, step=0.1):
            raise RuntimeError("the group did not become ready")
        say("group ready: 3 proxies see 2 replicas and 2 other sentinels; PING through proxy 1 ok")

        writer = Writer(lab.proxies[0]["listen"])
        writer.start()
        time.sleep(args.gap)
        start_idx = epoch_idx = 0
        for n in range(1, args.runs + 1):
            run = failover_run(lab, writer, n, epoch_idx, start_idx)
            runs.append(run)
            run["timeline"], run["timeline_lines"], run["event_lines"] = timeline(lab, run)
            say(f"run {n}: new master {addr(run['new'])}, first write after "
                f"{fmt(run['first_write'])} s, proxies agree after {run['agree_after']:.3f} s, "
                f"failed {len(run['failed'])}, lost {run['lost']}")
            if run["new"] is None:
                say(f"run {n}: no failover within {FAILOVER_BOUND + RECOVERY_BOUND:.0f} s; stopping")
                break
            rejoin_idx = epoch_idx = run["end_idx"]
            ok = rejoin(lab, writer, run)
            time.sleep(args.gap)
            # Writes during the rejoin and the gap: no errors, no jumps expected.
            start_idx = writer.count()
            recs = writer.snapshot(rejoin_idx)[: start_idx - rejoin_idx]
            run["rejoin_failed"] = [(r[3], "during the rejoin") for r in recs if not r[2]]
            vals = [r[3] for r in recs if r[2]]
            run["rejoin_steps"] = [(a, b) for a, b in zip(vals, vals[1:]) if b != a + 1]
            say(f"run {n}: {HOST}:{run['old'][1]} rejoined as a replica after "
                f"{fmt(run.get('rejoin'), 1)} s")
            if not ok:
                say("the group did not recover; stopping")
                break
        writer.stop.set()
        writer.resume()
        writer.join(WRITER_REPLY_TIMEOUT)
        report(lab, runs, writer)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if writer is not None:
            writer.stop.set()
            writer.resume()
        lab.cleanup(args.save_logs)


if __name__ == "__main__":
    main()
