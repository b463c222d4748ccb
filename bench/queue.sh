#!/usr/bin/env bash
# Queue benchmark: Waypost's replicated queues (three origin processes, one
# Raft group, on loopback) against NATS JetStream (Debian's nats-server, a
# three-node cluster on loopback, a file-storage stream with 3 replicas and a
# durable pull consumer with explicit acks), driven by one load driver
# (bench/queue/src/main.rs) doing the same work on both: PRODUCERS send
# MESSAGES of SIZE bytes in batches of BATCH (with dedup ids), CONSUMERS lease
# or fetch batches of BATCH and ack them.
#
#   bench/queue.sh            # from the repo root (or anywhere)
#
# Prints per system: msgs_per_s (end to end: all sent, delivered and acked),
# producer_p99_ms (per batch), cpu_us_per_msg (user+system CPU of the three
# server processes / messages), then the leader-kill run on Waypost (the
# leader origin SIGKILLed once 30% were sent): lost_acked_sends and
# max_delivery_gap_s. Ends with one line:
#   figures queue_msgs_per_s=… jetstream_msgs=<ours/theirs> jetstream_cpu=<theirs/ours per msg> …
#
# Work done differs in one way worth knowing: Waypost acknowledges a send
# or an ack once a majority has fsynced it (Raft log); nats-server 2.9
# acknowledges once a majority holds it, flushing to disk every 2 minutes
# (sync_interval; `always` exists from 2.10 only), and a consumer's ack is
# not confirmed.
#
# Knobs: MESSAGES=20000 SIZE=1024 BATCH=100 PRODUCERS=4 CONSUMERS=4
# PORT_BASE=18800 SKIP_BUILD=0 KEEP_WORK=0 TIME_LIMIT=600
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
MESSAGES=${MESSAGES:-20000}
SIZE=${SIZE:-1024}
BATCH=${BATCH:-100}
PRODUCERS=${PRODUCERS:-4}
CONSUMERS=${CONSUMERS:-4}
PORT_BASE=${PORT_BASE:-18800}
TIME_LIMIT=${TIME_LIMIT:-600}
TOKEN=bench-token-0123456789abcdef
WORK=$(mktemp -d /tmp/waypost-queue-bench.XXXXXX)
declare -A PID=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

cleanup() {
    local rc=$? name
    trap - EXIT INT TERM HUP
    for name in "${!PID[@]}"; do kill -KILL "${PID[$name]}" 2>/dev/null || true; done
    [ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" != 0 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP
( trap 'kill "$nap" 2>/dev/null; exit 0' TERM; sleep "$TIME_LIMIT" & nap=$!; wait "$nap"
  log "TIME_LIMIT ${TIME_LIMIT}s reached, aborting"; kill -TERM $$ ) &
WATCHDOG=$!

if ! command -v nats-server >/dev/null; then
    log "installing nats-server"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nats-server curl >&2
fi

target=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building origin and the load driver (release)"
    (cd "$ROOT" && cargo build --release -q -p origin) >&2
    (cd "$HERE/queue" && cargo build --release -q) >&2
fi
ORIGIN_BIN=$target/release/origin
DRIVER=$HERE/queue/target/release/queue-bench
[ -x "$ORIGIN_BIN" ] && [ -x "$DRIVER" ] || die "binaries missing"

# cpu_ticks PID...: user+system clock ticks of the processes.
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

# --- Waypost: three origins ---------------------------------------------------
addr() { echo "127.0.$1.1:$((PORT_BASE + $1))"; }
start_origins() {
    local run=$1 n
    for n in 1 2 3; do
        mkdir -p "$WORK/$run/o$n"
        cat >"$WORK/$run/o$n/origin.toml" <<CONF
listen = "$(addr $n)"
data_dir = "$WORK/$run/o$n/data"
token = "$TOKEN"
[cluster]
node_id = $n
members = [
  { id = 1, addr = "$(addr 1)" },
  { id = 2, addr = "$(addr 2)" },
  { id = 3, addr = "$(addr 3)" },
]
CONF
        RUST_LOG=warn "$ORIGIN_BIN" --config "$WORK/$run/o$n/origin.toml" \
            >"$WORK/$run/o$n/out.log" 2>"$WORK/$run/o$n/err.log" &
        PID[o$n]=$!
        echo "${PID[o$n]}" >"$WORK/pid.$(addr $n)"
    done
    for n in 1 2 3; do
        for _ in $(seq 200); do
            curl -fsS -o /dev/null "http://$(addr $n)/healthz" 2>/dev/null && break
            sleep 0.05
        done
    done
    curl -fsS -o /dev/null -X PUT "http://$(addr 1)/queues/bench" -H "Authorization: Bearer $TOKEN" \
        -H 'content-type: application/json' \
        -d "{\"max_messages\": $((MESSAGES * 2)), \"max_bytes\": 4294967296, \"visibility_timeout_s\": 30}" \
        || die "declaring the queue failed"
}
stop_origins() {
    local n
    for n in 1 2 3; do
        [ -n "${PID[o$n]:-}" ] || continue
        kill -TERM "${PID[o$n]}" 2>/dev/null || true
        wait "${PID[o$n]}" 2>/dev/null || true
        unset "PID[o$n]"
    done
}
servers="http://$(addr 1),http://$(addr 2),http://$(addr 3)"
drive() {
    "$DRIVER" "$@" --messages "$MESSAGES" --size "$SIZE" --batch "$BATCH" \
        --producers "$PRODUCERS" --consumers "$CONSUMERS" --token "$TOKEN"
}

log "waypost: $MESSAGES messages of $SIZE B, batches of $BATCH, $PRODUCERS producers, $CONSUMERS consumers"
start_origins steady
before=$(cpu_ticks "${PID[o1]}" "${PID[o2]}" "${PID[o3]}")
ours=$(drive waypost --servers "$servers" --queue bench)
after=$(cpu_ticks "${PID[o1]}" "${PID[o2]}" "${PID[o3]}")
ours_cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$MESSAGES" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
log "  waypost   $ours cpu_us_per_msg=$ours_cpu"
stop_origins

# --- JetStream: three nats-servers ---------------------------------------------
nats_port() { echo $((PORT_BASE + 10 + $1)); }
route_port() { echo $((PORT_BASE + 20 + $1)); }
for n in 1 2 3; do
    mkdir -p "$WORK/nats$n"
    cat >"$WORK/nats$n/nats.conf" <<CONF
server_name: n$n
listen: 127.0.$n.1:$(nats_port $n)
jetstream { store_dir: "$WORK/nats$n/js" }
cluster {
  name: bench
  listen: 127.0.$n.1:$(route_port $n)
  routes: [
    nats-route://127.0.1.1:$(route_port 1)
    nats-route://127.0.2.1:$(route_port 2)
    nats-route://127.0.3.1:$(route_port 3)
  ]
}
CONF
    nats-server -c "$WORK/nats$n/nats.conf" >"$WORK/nats$n/out.log" 2>&1 &
    PID[nats$n]=$!
done
nats_servers="nats://127.0.1.1:$(nats_port 1),nats://127.0.2.1:$(nats_port 2),nats://127.0.3.1:$(nats_port 3)"
# JetStream needs its meta leader before a stream can be created.
for _ in $(seq 100); do
    grep -q "JetStream cluster new metadata leader\|Self is new JetStream cluster metadata leader" "$WORK"/nats*/out.log 2>/dev/null && break
    sleep 0.1
done
sleep 1
log "jetstream: the same work"
before=$(cpu_ticks "${PID[nats1]}" "${PID[nats2]}" "${PID[nats3]}")
theirs=$(drive jetstream --servers "$nats_servers" --queue bench)
after=$(cpu_ticks "${PID[nats1]}" "${PID[nats2]}" "${PID[nats3]}")
theirs_cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$MESSAGES" 'BEGIN{printf "%.1f", t / hz * 1e6 / n}')
log "  jetstream $theirs cpu_us_per_msg=$theirs_cpu"
for n in 1 2 3; do kill -TERM "${PID[nats$n]}" 2>/dev/null || true; wait "${PID[nats$n]}" 2>/dev/null || true; unset "PID[nats$n]"; done

# --- Waypost: the leader killed mid-run ------------------------------------------
log "waypost: leader SIGKILLed once 30% of the messages were sent"
start_origins kill
hook="sh -c 'kill -KILL \$(cat $WORK/pid.\$0)'"
killed=$(drive waypost --servers "$servers" --queue bench --kill-leader-at 0.3 --kill-hook "$hook")
log "  waypost   $killed"
stop_origins

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo "waypost   $ours cpu_us_per_msg=$ours_cpu"
echo "jetstream $theirs cpu_us_per_msg=$theirs_cpu"
echo "leader_kill $killed"
echo "figures queue_msgs_per_s=$(field msgs_per_s "$ours") jetstream_msgs=$(ratio "$(field msgs_per_s "$ours")" "$(field msgs_per_s "$theirs")") jetstream_cpu=$(ratio "$theirs_cpu" "$ours_cpu") producer_p99_ms=$(field producer_p99_ms "$ours") jetstream_producer_p99_ms=$(field producer_p99_ms "$theirs") lost_acked_sends=$(field lost_acked_sends "$killed") max_delivery_gap_s=$(field max_delivery_gap_s "$killed")"
