#!/usr/bin/env python3
"""Memory cost of idle client connections to a Redis endpoint (stdlib only).

Opens COUNT concurrent TCP connections to HOST:PORT and samples the resident
set size (VmRSS from /proc/PID/status) of the process that serves them (PID)
at three moments:

  before  no connections from this script yet
  idle    all connections established and accepted by PID, nothing sent yet
  pong    every connection has sent one PING and read the +PONG reply, and
          the connections are still held open

It prints one JSON object with the raw numbers (KiB as the kernel reports
them) plus the open-descriptor count of PID at each moment, so the caller can
compute bytes per connection = (rss_idle_kb - rss_before_kb) * 1024 / N and
see how many descriptors the target spends per client (2 means it holds one
upstream connection per client).

Usage:
  idle_conns.py --port 6380 --pid 1234 [--host 127.0.0.1] [--count 10000]
                [--inline] [--settle 2] [--timeout 120]

Connections are opened a few dozen at a time: no more than --batch are ever
connecting or waiting in the target's accept queue (read from /proc/net/tcp),
so a small listen backlog does not overflow and every connection is really
accepted before the idle sample. Kernel listen-queue overflow counters are
reported as a check.

Only loopback hosts are accepted.
"""

import argparse
import errno
import ipaddress
import json
import os
import resource
import selectors
import socket
import sys
import time

PONG = b"+PONG\r\n"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def accept_queue(port):
    """Connections waiting in the accept queue of the IPv4 listener on PORT
    (rx_queue of a LISTEN socket in /proc/net/tcp), or None if not found.
    Listening sockets come first in that file, so reading stops early."""
    want = f":{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] != "0A":
                break
            if parts[1].endswith(want):
                return int(parts[4].split(":")[1], 16)
    return None


def listen_counters():
    """System-wide TcpExt ListenOverflows and ListenDrops."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            d = dict(zip(head.split()[1:], vals.split()[1:]))
            return int(d.get("ListenOverflows", 0)), int(d.get("ListenDrops", 0))
    return 0, 0


def log(msg):
    print(f"[idle_conns] {msg}", file=sys.stderr, flush=True)


def wait_stable(pid, port, settle, deadline, min_fds=0):
    """Wait until PID holds at least min_fds descriptors, nothing waits in
    PORT's accept queue and neither PID's descriptor count nor its RSS
    changed for `settle` seconds."""
    last = None
    since = time.monotonic()
    while True:
        now = time.monotonic()
        cur = (fd_count(pid), rss_kb(pid))
        if cur != last:
            last, since = cur, now
        elif cur[0] >= min_fds and now - since >= settle and not accept_queue(port):
            return cur
        if now > deadline:
            log(f"not stable before the timeout (fds={cur[0]}, wanted >= {min_fds}); sampling anyway")
            return cur
        time.sleep(0.1)


def open_connections(host, port, count, batch, deadline):
    """Non-blocking connects. At most `batch` connections are either still
    connecting or waiting in the server's accept queue, so the listen backlog
    never overflows however slowly the server accepts (a client sees its
    connection established before the server has accepted it).
    Returns (connected sockets, error count)."""
    sel = selectors.DefaultSelector()
    connected, errors, started, inflight = [], 0, 0, 0
    while len(connected) + errors < count:
        room = 0
        if started < count and inflight <= batch // 4:
            room = batch - inflight - (accept_queue(port) or 0)
            if room <= 0 and inflight == 0:
                time.sleep(0.005)
        while room > 0 and started < count:
            room -= 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((host, port))
            started += 1
            if rc == 0:
                connected.append(s)
            elif rc in (errno.EINPROGRESS, errno.EAGAIN):
                sel.register(s, selectors.EVENT_WRITE)
                inflight += 1
            else:
                errors += 1
                s.close()
        if time.monotonic() > deadline:
            log("timeout while connecting")
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
                key.fileobj.close()
                errors += 1
            break
        if inflight == 0:
            continue
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            sel.unregister(s)
            inflight -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.append(s)
            else:
                errors += 1
                s.close()
    sel.close()
    return connected, errors


def ping_all(socks, payload, deadline):
    """Send one PING on every socket, then read until each has the full
    +PONG reply. Returns (pongs, bad) where bad counts wrong replies/EOF."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        try:
            s.send(payload)  # 6-14 bytes into an empty socket buffer
        except OSError:
            continue
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
    pongs = bad = 0
    while bufs and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            try:
                data = s.recv(64)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            buf = bufs[s] + data
            if data and len(buf) < len(PONG) and PONG.startswith(buf):
                bufs[s] = buf
                continue
            sel.unregister(s)
            del bufs[s]
            if buf == PONG:
                pongs += 1
            else:
                bad += 1
    if bufs:
        log(f"{len(bufs)} connections got no complete reply before the timeout")
    sel.close()
    return pongs, bad


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="process serving HOST:PORT")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=64,
                    help="max connections connecting or waiting to be accepted; keep it "
                         "below the target's listen backlog (often 128)")
    ap.add_argument("--inline", action="store_true", help="send inline 'PING\\r\\n' instead of RESP")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds without change before sampling")
    ap.add_argument("--timeout", type=float, default=120.0, help="per phase")
    args = ap.parse_args()

    if not ipaddress.ip_address(socket.gethostbyname(args.host)).is_loopback:
        sys.exit("idle_conns.py: only loopback targets are allowed")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < args.count + 64:
        new = hard if hard == resource.RLIM_INFINITY else min(hard, args.count + 1024)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft != resource.RLIM_INFINITY and soft < args.count + 64:
        sys.exit(f"idle_conns.py: fd limit {soft} too low for {args.count} connections")

    pid = args.pid
    payload = b"PING\r\n" if args.inline else b"*1\r\n$4\r\nPING\r\n"
    out = {"count": args.count, "payload": "inline" if args.inline else "resp"}

    if accept_queue(args.port) is None:
        sys.exit(f"idle_conns.py: no IPv4 listener on port {args.port}")
    fds0, rss0 = wait_stable(pid, args.port, 1.0, time.monotonic() + 10)
    out.update(rss_before_kb=rss0, fds_before=fds0)
    lc0 = listen_counters()

    t = time.monotonic()
    socks, errors = open_connections(args.host, args.port, args.count, args.batch, t + args.timeout)
    out.update(connected=len(socks), connect_errors=errors, connect_seconds=round(time.monotonic() - t, 3))
    log(f"{len(socks)} connected, {errors} failed")

    # phase (a): idle, never used. Wait until PID has accept()ed them all
    # (accept queue empty) and settled.
    fds1, rss1 = wait_stable(pid, args.port, args.settle, time.monotonic() + args.timeout,
                             min_fds=fds0 + len(socks))
    lc1 = listen_counters()
    out.update(rss_idle_kb=rss1, fds_idle=fds1,
               listen_overflows=lc1[0] - lc0[0], listen_drops=lc1[1] - lc0[1])
    log(f"idle: rss {rss0} -> {rss1} KiB, fds {fds0} -> {fds1}")

    # phase (b): one PING/PONG round trip on every connection, still open.
    t = time.monotonic()
    pongs, bad = ping_all(socks, payload, t + args.timeout)
    out.update(pongs=pongs, bad_replies=bad, ping_seconds=round(time.monotonic() - t, 3))
    fds2, rss2 = wait_stable(pid, args.port, args.settle, time.monotonic() + args.timeout)
    out.update(rss_pong_kb=rss2, fds_pong=fds2)
    log(f"after PING: {pongs}/{len(socks)} PONG, rss {rss2} KiB, fds {fds2}")

    for s in socks:
        s.close()
    # Let the target drop its side (and its upstream connections) so the
    # next measurement starts from a clean state.
    deadline = time.monotonic() + 30
    while fd_count(pid) > fds0 + 16 and time.monotonic() < deadline:
        time.sleep(0.1)
    out.update(fds_after_close=fd_count(pid), rss_after_close_kb=rss_kb(pid))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
