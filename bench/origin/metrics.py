#!/usr/bin/env python3
"""Helpers for bench/origin.sh.

  metrics.py busy SECONDS            % of all CPUs busy (not idle/iowait) over SECONDS
  metrics.py hist-p99 BEFORE AFTER   p99 of origin_raft_commit_duration_seconds between two
                                     /metrics snapshots, as the upper bound of its bucket, in ms
  metrics.py max-lag FILE            largest origin_raft_replication_lag_entries value in FILE
                                     (concatenated /metrics samples)
  metrics.py fsync SECONDS DIR       append 200 B + fdatasync in a loop in DIR for SECONDS:
                                     "p50_ms=… p99_ms=… max_ms=…" (what one Raft log append costs)
"""
import os
import re
import sys
import time

BUCKET = re.compile(r'^origin_raft_commit_duration_seconds_bucket\{le="([^"]+)"\} (\S+)')
LAG = re.compile(r'^origin_raft_replication_lag_entries\{[^}]*\} (\S+)')


def cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields), idle


def busy(seconds):
    t0, i0 = cpu_times()
    time.sleep(float(seconds))
    t1, i1 = cpu_times()
    return round(100 * (1 - (i1 - i0) / max(t1 - t0, 1)))


def buckets(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = BUCKET.match(line)
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                out[le] = float(m.group(2))
    return out


def hist_p99(before, after):
    b, a = buckets(before), buckets(after)
    diff = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
    if not diff or diff[-1][1] <= 0:
        return "none"
    total = diff[-1][1]
    for le, count in diff:
        if count >= 0.99 * total:
            return "inf" if le == float("inf") else f"{le * 1000:g}"
    return "none"


def max_lag(path):
    best = 0
    with open(path) as f:
        for line in f:
            m = LAG.match(line)
            if m:
                best = max(best, int(float(m.group(1))))
    return best


def fsync_probe(seconds, directory):
    path = os.path.join(directory, "fsync-probe.dat")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    lat = []
    end = time.monotonic() + float(seconds)
    try:
        while time.monotonic() < end:
            os.write(fd, b"x" * 200 + b"\n")
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    n = len(lat)
    pick = lambda p: lat[min(n - 1, max(0, -(-n * p // 100) - 1))]
    return f"p50_ms={pick(50):.2f} p99_ms={pick(99):.2f} max_ms={lat[-1]:.2f} n={n}"


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "busy":
        print(busy(args[0]))
    elif cmd == "hist-p99":
        print(hist_p99(args[0], args[1]))
    elif cmd == "fsync":
        print(fsync_probe(args[0], args[1]))
    elif cmd == "max-lag":
        print(max_lag(args[0]))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
