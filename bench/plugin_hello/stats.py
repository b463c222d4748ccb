#!/usr/bin/env python3
"""Helpers for bench/plugin_hello.sh (same approach as bench/cache_hit/stats.py).

  stats.py cpu PID...        CPU ticks (utime+stime+cutime+cstime) summed over
                             each PID and all its live descendants
  stats.py tree PID...       the PIDs of those trees, one per line
  stats.py busy SECONDS      % of all CPUs busy (not idle/iowait) over SECONDS
  stats.py wrk FILE          parse wrk --latency output:
                             "requests rps p50_ms p99_ms errors"
  stats.py summary TSV       median tables + the `ratio ...` line
"""
import os
import statistics
import sys
import time


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
        # fields after "(comm)": index 0 is field 3, so utime (14) is index 11
        fields = s[s.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])
    return total


def busy_pct(seconds):
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
    reqs = rps = p50 = p99 = None
    errors = 0
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w:
                continue
            if w[0] == "50%":
                p50 = _dur_ms(w[1])
            elif w[0] == "99%":
                p99 = _dur_ms(w[1])
            elif w[0] == "Requests/sec:":
                rps = float(w[1])
            elif len(w) > 2 and w[1] == "requests" and w[2] == "in":
                reqs = int(w[0])
            elif w[0] == "Non-2xx":
                errors += int(w[-1])
            elif w[0] == "Socket" and w[1] == "errors:":
                errors += sum(int(x.rstrip(",")) for x in w[3::2])
    if None in (reqs, rps, p50, p99):
        sys.exit(f"could not parse wrk output in {path}")
    print(reqs, rps, p50, p99, errors)


# test names: hello_c64 (edge vs wasmtime), hello_c1 / chain_c1 (low load)
TESTS = ("hello_c64", "hello_c1", "chain_c1")
SERVERS = ("edge", "wasmtime")


def summary(path):
    rows = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            test, server, _rep, rps, p50, p99, cpu_us, errors = line.rstrip("\n").split("\t")
            r = rows.setdefault((test, server), {"rps": [], "p50": [], "p99": [], "cpu": [], "err": 0})
            r["rps"].append(float(rps))
            r["p50"].append(float(p50))
            r["p99"].append(float(p99))
            r["cpu"].append(float(cpu_us))
            r["err"] += int(errors)
    med = {
        k: {m: statistics.median(v[m]) for m in ("rps", "p50", "p99", "cpu")}
        | {"n": len(v["rps"]), "err": v["err"], "rps_all": v["rps"]}
        for k, v in rows.items()
    }

    def order(k):
        test, server = k
        t = TESTS.index(test) if test in TESTS else len(TESTS)
        s = SERVERS.index(server) if server in SERVERS else len(SERVERS)
        return (t, test, s, server)

    print(f"| {'test':<9} | {'server':<8} | runs | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'CPU µs/req':>10} | errors | req/s of each run |")
    print(f"|{'-' * 11}|{'-' * 10}|------|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 12}|--------|-------------------|")
    for key in sorted(med, key=order):
        m = med[key]
        runs = " ".join(f"{x:.0f}" for x in m["rps_all"])
        print(f"| {key[0]:<9} | {key[1]:<8} | {m['n']:>4} | {m['rps']:>8.0f} | {m['p50']:>7.3f} | {m['p99']:>7.3f} | {m['cpu']:>10.2f} | {m['err']:>6} | {runs} |")

    hello, chain = med.get(("hello_c1", "edge")), med.get(("chain_c1", "edge"))
    if hello and chain:
        print()
        print(
            "3-plugin chain (sec1 -> sec2 -> hello) vs hello alone, same edge, wrk -c1: "
            f"p50 +{(chain['p50'] - hello['p50']) * 1000:.0f} µs "
            f"({hello['p50'] * 1000:.0f} -> {chain['p50'] * 1000:.0f} µs), "
            f"p99 +{(chain['p99'] - hello['p99']) * 1000:.0f} µs "
            f"({hello['p99'] * 1000:.0f} -> {chain['p99'] * 1000:.0f} µs), "
            f"CPU +{chain['cpu'] - hello['cpu']:.1f} µs/req "
            f"({hello['cpu']:.1f} -> {chain['cpu']:.1f})"
        )

    e, p = med.get(("hello_c64", "edge")), med.get(("hello_c64", "wasmtime"))
    ratio = f"{e['rps'] / p['rps']:.2f}" if e and p else "n/a"
    cpu = f"{p['cpu'] / e['cpu']:.2f}" if e and p and e["cpu"] > 0 else "n/a"
    p99 = f"{p['p99'] / e['p99']:.2f}" if e and p and e["p99"] > 0 else "n/a"
    print()
    print(f"ratio wasmtime_serve_hello={ratio} wasmtime_serve_hello_cpu={cpu} wasmtime_serve_hello_p99={p99}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "cpu":
        print(cpu_ticks(args))
    elif cmd == "tree":
        print("\n".join(str(p) for p in tree(args)))
    elif cmd == "busy":
        print(busy_pct(args[0]))
    elif cmd == "wrk":
        parse_wrk(args[0])
    elif cmd == "summary":
        summary(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
