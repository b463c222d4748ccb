#!/usr/bin/env python3
"""Helpers for bench/cache_hit.sh.

  stats.py cpu PID...        CPU ticks (utime+stime+cutime+cstime) summed over
                             each PID and all its live descendants
  stats.py rss PID...        resident KiB summed over the same process trees
  stats.py tree PID...       the PIDs of those trees, one per line
  stats.py busy SECONDS      % of all CPUs busy (not idle/iowait) over SECONDS
  stats.py wrk FILE          parse wrk --latency output: "requests rps p99_ms errors"
  stats.py summary TSV [MEM] median table + the `ratio ...` line (with MEM,
                             the memory TSV: `<peer>_mem` ratios)
"""
import os
import statistics
import sys


def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pids):
    kids = _children_map()
    out, todo = [], [int(p) for p in pids]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pids):
    total = 0
    for p in tree(pids):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        # fields after "(comm)": index 0 is field 3, so field 14 is index 11
        fields = s[s.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])
    return total


def rss_kib(pids):
    total = 0
    for p in tree(pids):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def busy_pct(seconds):
    import time

    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]

    t0, i0 = sample()
    time.sleep(float(seconds))
    t1, i1 = sample()
    return round(100 * (1 - (i1 - i0) / max(t1 - t0, 1)))


def _dur_ms(s):
    for unit, mul in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 60e3)):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * mul
    return float(s) * 1e3


def parse_wrk(path):
    reqs = rps = p99 = None
    errors = 0
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "99%":
                p99 = _dur_ms(w[1])
            elif w[0] == "Requests/sec:":
                rps = float(w[1])
            elif len(w) > 2 and w[1] == "requests" and w[2] == "in":
                reqs = int(w[0])
            elif w[0] == "Non-2xx":
                errors += int(w[-1])
            elif w[0] == "Socket" and w[1] == "errors:":
                errors += sum(int(x.rstrip(",")) for x in w[3::2])
    if reqs is None or rps is None or p99 is None:
        sys.exit(f"could not parse wrk output in {path}")
    print(reqs, rps, p99, errors)


PEERS = ("nginx", "varnish", "ats")
SERVERS = ("edge",) + PEERS
TESTS = ("1k", "100k", "tls_1k", "miss_1k", "miss_tls")


def summary(path, memory_path=None):
    rows = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            test, server, _rep, rps, p99, cpu_us, errors = line.split("\t")
            r = rows.setdefault((test, server), {"rps": [], "p99": [], "cpu": [], "err": 0})
            r["rps"].append(float(rps))
            r["p99"].append(float(p99))
            r["cpu"].append(float(cpu_us))
            r["err"] += int(errors)
    med = {k: {m: statistics.median(v[m]) for m in ("rps", "p99", "cpu")} | {"n": len(v["rps"]), "err": v["err"], "rps_all": v["rps"], "cpu_all": v["cpu"]} for k, v in rows.items()}

    print(f"{'test':<8} {'server':<8} {'runs':>4} {'req/s':>10} {'p99 ms':>8} {'CPU µs/req':>11} {'errors':>6}   req/s of each run")
    def order(k):
        test, server = k
        t = TESTS.index(test) if test in TESTS else len(TESTS)
        v = SERVERS.index(server) if server in SERVERS else len(SERVERS)
        return (t, test, v, server)

    for (test, server) in sorted(med, key=order):
        m = med[(test, server)]
        runs = " ".join(f"{x:.0f}" for x in m["rps_all"])
        print(f"{test:<8} {server:<8} {m['n']:>4} {m['rps']:>10.0f} {m['p99']:>8.2f} {m['cpu']:>11.2f} {m['err']:>6}   {runs}")

    def ratio(test, peer, cpu=False):
        e, p = med.get((test, "edge")), med.get((test, peer))
        if not e or not p:
            return "n/a"
        if cpu:
            return f"{p['cpu'] / e['cpu']:.2f}"
        return f"{e['rps'] / p['rps']:.2f}"

    parts = [f"{p}_1k={ratio('1k', p)}" for p in PEERS]
    parts += [f"{p}_1k_cpu={ratio('1k', p, cpu=True)}" for p in PEERS]
    parts += [f"{p}_100k={ratio('100k', p)}" for p in PEERS]
    parts += [f"nginx_tls_1k={ratio('tls_1k', 'nginx')}"]
    parts += [f"{p}_miss_cpu={ratio('miss_1k', p, cpu=True)}" for p in PEERS]
    parts += [f"nginx_miss_tls={ratio('miss_tls', 'nginx')}"]
    parts += [f"nginx_miss_tls_cpu={ratio('miss_tls', 'nginx', cpu=True)}"]
    if memory_path:
        parts += memory_ratios(memory_path)
    print()
    print("ratio " + " ".join(parts))


def memory_ratios(path):
    """`<peer>_mem`: the peer's bytes per cached object ÷ the edge's."""
    per_object = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            server, _objects, _before, _after, bytes_per_object = line.split("\t")
            per_object[server] = float(bytes_per_object)
    edge = per_object.get("edge")
    return [
        f"{p}_mem={per_object[p] / edge:.2f}" if edge and p in per_object else f"{p}_mem=n/a"
        for p in ("varnish", "ats")
    ]


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "cpu":
        print(cpu_ticks(args))
    elif cmd == "rss":
        print(rss_kib(args))
    elif cmd == "tree":
        print("\n".join(str(p) for p in tree(args)))
    elif cmd == "busy":
        print(busy_pct(args[0]))
    elif cmd == "wrk":
        parse_wrk(args[0])
    elif cmd == "summary":
        summary(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
