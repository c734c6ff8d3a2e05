#!/usr/bin/env python3
"""A legacy-style writer for scripts/demo.sh (stdlib only).

Keeps ONE connection to the proxy and sends INCR demo:counter in a loop, one
command at a time, the way a simple application would. Every second it prints
one line:

  [writer] 12:00:03 ok=4210 err=0
  [writer] 12:00:09 ok=0    err=0  waiting 1.4s on one INCR
  [writer] 12:00:10 ok=1302 err=0  slowest 2.31s
  [writer] 12:00:11 ok=3900 err=1  -MASTERDOWN ... (x1)

and, on SIGTERM, a summary: totals, reconnects, the longest wait for one reply
and whether the counter ever went backwards (writes acknowledged by a master
that was then lost; Redis replication is asynchronous).

When the connection fails it is reported as an error and reopened after a
short pause; the writer never stops by itself.

Usage: demo_writer.py PORT [COUNTS_FILE]
  COUNTS_FILE, if given, gets one line per second: "<unix time> <ok> <err>".
Only 127.0.0.1 is used.
"""

import signal
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
KEY = b"demo:counter"
REQUEST = b"*2\r\n$4\r\nINCR\r\n$" + str(len(KEY)).encode() + b"\r\n" + KEY + b"\r\n"
# Longer than the proxy's default hold timeout (15 s): a held command is
# answered by the proxy (value or -MASTERDOWN), not abandoned by the writer.
REPLY_TIMEOUT = 30.0
RECONNECT_PAUSE = 0.2


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.err = 0
        self.errors = {}
        self.slowest = 0.0
        self.total_ok = 0
        self.total_err = 0
        self.reconnects = 0
        self.longest = 0.0
        self.regressions = []
        self.pending_since = None
        self.last_value = None

    def success(self, value, latency):
        with self.lock:
            self.ok += 1
            self.total_ok += 1
            self.slowest = max(self.slowest, latency)
            self.longest = max(self.longest, latency)
            if self.last_value is not None and value <= self.last_value:
                self.regressions.append((self.last_value, value))
                self.note(
                    f"counter went back from {self.last_value} to {value}"
                    " (acknowledged writes were lost with the old master)"
                )
            self.last_value = value

    def failure(self, message, latency=0.0):
        with self.lock:
            self.err += 1
            self.total_err += 1
            self.longest = max(self.longest, latency)
            self.note(message)

    def note(self, message):
        self.errors[message] = self.errors.get(message, 0) + 1

    def tick(self, counts_file):
        with self.lock:
            ok, err, errors, slowest = self.ok, self.err, self.errors, self.slowest
            pending = self.pending_since
            self.ok, self.err, self.errors, self.slowest = 0, 0, {}, 0.0
        now = time.time()
        line = f"[writer] {time.strftime('%H:%M:%S')} ok={ok:<5} err={err}"
        if pending is not None and now - pending >= 0.5:
            line += f"  waiting {now - pending:.1f}s on one INCR"
        elif slowest >= 0.5:
            line += f"  slowest {slowest:.2f}s"
        for message, count in errors.items():
            line += f"  {message} (x{count})"
        print(line, flush=True)
        if counts_file:
            with open(counts_file, "a") as f:
                f.write(f"{int(now)} {ok} {err}\n")

    def summary(self):
        with self.lock:
            lines = [
                f"[writer] summary: ok={self.total_ok} err={self.total_err}"
                f" reconnects={self.reconnects} longest wait for a reply={self.longest:.2f}s"
                f" last value={self.last_value}"
            ]
            if self.regressions:
                worst = max(before - after for before, after in self.regressions)
                lines.append(
                    f"[writer] the counter went backwards {len(self.regressions)} time(s),"
                    f" by up to {worst}: writes the old master acknowledged never"
                    " reached the new one (replication is asynchronous)"
                )
            else:
                lines.append("[writer] the counter never went backwards")
        return "\n".join(lines)


def read_line(f):
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed by the proxy")
    return line.rstrip(b"\r\n")


def run(port, stats):
    sock = None
    reader = None
    while True:
        if sock is None:
            try:
                sock = socket.create_connection((HOST, port), timeout=REPLY_TIMEOUT)
                reader = sock.makefile("rb")
            except OSError as e:
                stats.failure(f"connect: {e.strerror or e}")
                sock = None
                time.sleep(RECONNECT_PAUSE)
                continue
        start = time.monotonic()
        with stats.lock:
            stats.pending_since = time.time()
        try:
            sock.sendall(REQUEST)
            line = read_line(reader)
            latency = time.monotonic() - start
            if line.startswith(b":"):
                stats.success(int(line[1:]), latency)
            elif line.startswith(b"-"):
                stats.failure(line.decode(errors="replace"), latency)
            else:
                stats.failure(f"unexpected reply {line[:60]!r}", latency)
        except (OSError, ConnectionError, ValueError) as e:
            latency = time.monotonic() - start
            text = str(e) if isinstance(e, (ConnectionError, ValueError)) else (e.strerror or str(e))
            stats.failure(f"connection lost: {text}", latency)
            try:
                sock.close()
            except OSError:
                pass
            sock = None
            with stats.lock:
                stats.reconnects += 1
                stats.pending_since = None
            time.sleep(RECONNECT_PAUSE)
            continue
        finally:
            with stats.lock:
                stats.pending_since = None


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: demo_writer.py PORT [COUNTS_FILE]", file=sys.stderr)
        sys.exit(2)
    port = int(sys.argv[1])
    counts_file = sys.argv[2] if len(sys.argv) == 3 else None
    stats = Stats()

    def stop(_signum, _frame):
        print(stats.summary(), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    # Started in the background by demo.sh, SIGINT is ignored and Ctrl-C is
    # left to the script, which stops the writer first (with SIGTERM).
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, stop)

    def ticker():
        while True:
            time.sleep(1.0)
            stats.tick(counts_file)

    threading.Thread(target=ticker, daemon=True).start()
    run(port, stats)


if __name__ == "__main__":
    main()
