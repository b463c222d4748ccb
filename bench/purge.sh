#!/usr/bin/env bash
# Invalidation cost at the edge (issue 9 item 8): with OBJECTS distinct
# objects cached, how much edge CPU one purge by URL, one purge by
# surrogate key and one RFC 9111 §4.4 invalidation (a successful PUT through
# the edge) cost. Each is done N times; the edge's CPU ticks (from /proc)
# over them, divided by N, is the figure. Before issue 9 every one of them
# scanned the whole cache.
#
#   bench/purge.sh          # OBJECTS=200000 N=500 PORT_BASE=19000 SKIP_BUILD=0
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
STATS="python3 $HERE/cache_hit/stats.py"
OBJECTS=${OBJECTS:-200000}
N=${N:-500}
PORT_BASE=${PORT_BASE:-19000}
ORIGIN=$((PORT_BASE + 1)) EDGE=$((PORT_BASE + 2)) ADMIN=$((PORT_BASE + 3))
TOKEN=bench-purge-token-0123456789
ADMIN_TOKEN=bench-purge-admin-0123456789
WORK=$(mktemp -d)
declare -A PID=()

log() { echo "[purge] $*" >&2; }
die() { log "error: $*"; exit 1; }
cleanup() {
    local p
    for p in "${PID[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() {
    local url=$1 i
    for i in $(seq 1 200); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$url did not answer"
}

command -v wrk >/dev/null || { apt-get update -q >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >&2; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building edge-node and origin (release)"
    (cd "$ROOT" && cargo build --release -q -p edge-node -p origin) >&2
fi
target=${CARGO_TARGET_DIR:-$ROOT/target}

"$target/release/origin" --listen "127.0.0.1:$ORIGIN" --data-dir "$WORK/origin" --token "$TOKEN" \
    >"$WORK/origin.out" 2>"$WORK/origin.err" &
PID[origin]=$!
wait_http "http://127.0.0.1:$ORIGIN/healthz"
head -c 1024 /dev/urandom >"$WORK/1k.bin"
curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" \
    -H 'Cache-Control: public, max-age=86400' -H 'Surrogate-Key: bench' \
    --data-binary "@$WORK/1k.bin" "http://127.0.0.1:$ORIGIN/assets/1k.bin"

cat >"$WORK/edge.toml" <<EOF
[listen]
http = "127.0.0.1:$EDGE"
[admin]
listen = "127.0.0.1:$ADMIN"
[cache]
memory_capacity = "2GiB"
[[pools]]
name = "origin"
origins = ["127.0.0.1:$ORIGIN"]
[[sites]]
pool = "origin"
EOF
EDGE_ADMIN_TOKEN=$ADMIN_TOKEN RUST_LOG=warn "$target/release/edge-node" --config "$WORK/edge.toml" \
    >"$WORK/edge.out" 2>"$WORK/edge.err" &
PID[edge]=$!
wait_http "http://127.0.0.1:$ADMIN/healthz"

log "caching $OBJECTS objects"
UNIQ_PREFIX=p WARM_N=$OBJECTS wrk -t1 -c32 -d600s -s "$HERE/cache_hit/unique.lua" \
    "http://127.0.0.1:$EDGE/" >"$WORK/warm.out" 2>&1 &
warm=$!
while :; do
    objects=$(curl -fsS "http://127.0.0.1:$ADMIN/metrics" | awk '/^waypost_edge_cache_objects /{print $2}')
    [ "${objects%.*}" -ge "$OBJECTS" ] 2>/dev/null && break
    kill -0 "$warm" 2>/dev/null || die "warm-up ended early: $(cat "$WORK/warm.out")"
    sleep 1
done
kill "$warm" 2>/dev/null || true
wait "$warm" 2>/dev/null || true
log "cached: $objects objects"

# One keep-alive client per kind, so curl's own startup is not in the way.
measure() {
    local what=$1 script=$2 before after
    before=$($STATS cpu "${PID[edge]}")
    python3 -c "$script" "$EDGE" "$ADMIN" "$ADMIN_TOKEN" "$TOKEN" "$N"
    after=$($STATS cpu "${PID[edge]}")
    local hz; hz=$(getconf CLK_TCK)
    awk -v t=$((after - before)) -v hz="$hz" -v n="$N" -v w="$what" \
        'BEGIN { printf "%s: %.3f ms of edge CPU each (%d ticks over %d)\n", w, 1000 * t / hz / n, t, n }'
}

PY_PURGE_URL='
import http.client, sys
edge, admin, tok, _, n = sys.argv[1:]
c = http.client.HTTPConnection("127.0.0.1", int(admin))
for i in range(1, int(n) + 1):
    c.request("POST", f"/purge?url=http://127.0.0.1:{edge}/assets/1k.bin%3Fp%3D{i}", headers={"Authorization": f"Bearer {tok}"})
    r = c.getresponse(); r.read(); assert r.status == 200, r.status
'
PY_PURGE_KEY='
import http.client, sys
edge, admin, tok, _, n = sys.argv[1:]
c = http.client.HTTPConnection("127.0.0.1", int(admin))
for i in range(int(n)):
    c.request("POST", f"/purge?key=absent-{i}", headers={"Authorization": f"Bearer {tok}"})
    r = c.getresponse(); r.read(); assert r.status == 200, r.status
'
PY_INVALIDATE='
import http.client, sys
edge, admin, _, origin_tok, n = sys.argv[1:]
c = http.client.HTTPConnection("127.0.0.1", int(edge))
for i in range(1, int(n) + 1):
    c.request("PUT", f"/assets/1k.bin?p={i + 1000}", body=b"x", headers={"Authorization": f"Bearer {origin_tok}"})
    r = c.getresponse(); r.read(); assert r.status in (200, 201, 204), r.status
'
echo "== edge CPU per invalidation with $objects objects cached ($(date -u +%F))"
measure "purge by URL" "$PY_PURGE_URL"
measure "purge by surrogate key (none tagged)" "$PY_PURGE_KEY"
measure "PUT through the edge (RFC 9111 §4.4; includes proxying the PUT)" "$PY_INVALIDATE"
