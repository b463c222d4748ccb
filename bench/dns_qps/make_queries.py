"""Query files for bench/dns_qps.sh.

geo.bin: dnsperf -B format (2-byte length, then the packet) of A queries for
cdn.waypost.test, each with an EDNS Client Subnet /24 different from every
other one, spread over the routable IPv4 space (so both servers do a real
database lookup per query and no answer can be reused).
geo_aaaa.bin: the same subnets asking for AAAA.
static.txt / static_aaaa.txt: dnsperf text format for the static name.
"""

import random
import struct
import sys

def name(text):
    out = b""
    for label in text.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"

def geo_query(a, b, c, qtype=1):
    header = struct.pack(">HHHHHH", 0, 0, 1, 0, 0, 1)
    question = name("cdn.waypost.test") + struct.pack(">HH", qtype, 1)
    ecs = struct.pack(">HBB", 1, 24, 0) + bytes([a, b, c])
    option = struct.pack(">HH", 8, len(ecs)) + ecs
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, len(option)) + option
    packet = header + question + opt
    return struct.pack(">H", len(packet)) + packet

def main(out_dir, count):
    rng = random.Random(4)
    seen = set()
    subnets = []
    firsts = [x for x in range(1, 224) if x not in (10, 127)]
    while len(subnets) < count:
        a = rng.choice(firsts)
        b, c = rng.randrange(256), rng.randrange(256)
        if (a, b, c) in seen:
            continue
        seen.add((a, b, c))
        subnets.append((a, b, c))
    with open(f"{out_dir}/geo.bin", "wb") as f:
        for a, b, c in subnets:
            f.write(geo_query(a, b, c))
    with open(f"{out_dir}/geo_aaaa.bin", "wb") as f:
        for a, b, c in subnets:
            f.write(geo_query(a, b, c, qtype=28))
    with open(f"{out_dir}/static.txt", "w") as f:
        f.write("static.waypost.test A\n")
    with open(f"{out_dir}/static_aaaa.txt", "w") as f:
        f.write("static.waypost.test AAAA\n")

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
