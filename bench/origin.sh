#!/usr/bin/env bash
# Origin benchmark: the Raft-replicated origin binary (release build) on
# loopback, with one region and with three.
#
#   bench/origin.sh            # from the repo root (or anywhere)
#
# Measures:
#   write_qps_1r / write_qps_3r   acknowledged KV PUTs per second, CONNS closed-loop clients
#                                 writing unique keys to the (leader) origin for DURATION s
#   p99_commit_ms(_1r)            p99 client latency of those PUTs (PUT sent → 2xx head back;
#                                 the origin acknowledges once a majority has fsynced the entry),
#                                 and *_c1 with a single client (no queueing); *_server is the
#                                 origin's own origin_raft_commit_duration_seconds p99 (bucket bound)
#   read_qps                      KV GETs per second on a follower (local read), wrk -c READ_CONNS
#   repl_lag_ms                   one write at a time on the leader: its 2xx → the follower serves
#                                 the key (polled back to back); p50/p99/max of LAG_SAMPLES, plus the
#                                 largest origin_raft_replication_lag_entries seen during the 3r load
#   failover_s                    KILLS times: SIGKILL the leader while CHURN_CONNS writers write a
#                                 fresh key per attempt (to any origin, moving on after a failure);
#                                 leader dead (SIGKILLed and reaped) → first 2xx of a write *sent
#                                 after* that; restart the killed origin and wait until its
#                                 /healthz is 200 (caught up)
#   lost_acked_writes             acknowledged churn keys missing from any of the three origins at
#                                 the end (a local listing on each, after all report healthy)
#
# Also probes the disk first (fdatasync latency of small appends in the work
# dir) as context: the Raft log fsyncs every append.
#
# Ends with one line:
#   figures failover_s=<max of KILLS> lost_acked_writes=<n> p99_commit_ms=<3 regions, CONNS> read_qps=<n> …
#
# The three regions reach each other on their [peer] listeners over mutual
# TLS (certificates from `waypost cert`, as a deployment would); PEER_TLS=0
# runs them plaintext with the cluster token instead. The client API stays
# plaintext (what is measured is replication, not the client's TLS).
#
# Knobs (environment): PEER_TLS=1 DURATION=10 CONNS=16 READ_CONNS=32 LAG_SAMPLES=300 KILLS=5 CHURN_CONNS=4
# PORT_BASE=18700 QUIET_WAIT=20 QUIET_BUSY=30 TIME_LIMIT=420 SKIP_BUILD=0 KEEP_WORK=0
# DATA_ROOT=<dir> (where the data dirs go; default the work dir under /tmp, on disk)
# ORIGIN_BIN=… LOAD_BIN=… (prebuilt binaries; default target/release/{origin,examples/origin_load})
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY="python3 $HERE/origin/metrics.py"

DURATION=${DURATION:-10}
CONNS=${CONNS:-16}
READ_CONNS=${READ_CONNS:-32}
LAG_SAMPLES=${LAG_SAMPLES:-300}
KILLS=${KILLS:-5}
CHURN_CONNS=${CHURN_CONNS:-4}
PORT_BASE=${PORT_BASE:-18700}
QUIET_WAIT=${QUIET_WAIT:-20}
QUIET_BUSY=${QUIET_BUSY:-30}
TIME_LIMIT=${TIME_LIMIT:-420}
PEER_TLS=${PEER_TLS:-1}
export ORIGIN_TOKEN=bench-token
AUTH="Authorization: Bearer $ORIGIN_TOKEN"
NS=bench

# Node "s1" is the one-region origin; n1..n3 form the three-region group.
declare -A ADDR=(
    [s1]=127.0.1.1:$((PORT_BASE + 0))
    [n1]=127.0.1.1:$((PORT_BASE + 1))
    [n2]=127.0.2.1:$((PORT_BASE + 2))
    [n3]=127.0.3.1:$((PORT_BASE + 3))
)
# Their [peer] listeners: the members' addresses.
declare -A PEER=(
    [n1]=127.0.1.1:$((PORT_BASE + 11))
    [n2]=127.0.2.1:$((PORT_BASE + 12))
    [n3]=127.0.3.1:$((PORT_BASE + 13))
)
declare -A PID=()   # process name -> pid of the process we started

WORK=$(mktemp -d /tmp/waypost-origin-bench.XXXXXX)
# The origins' data dirs (Raft log, snapshots, blobs). DATA_ROOT=/dev/shm
# puts them in memory: a diagnostic that takes fsync cost out, not a figure.
DATA=$(mktemp -d "${DATA_ROOT:-$WORK}/waypost-origin-data.XXXXXX")
FIG=$WORK/figures   # "key=value" lines gathered along the way

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
fig() { echo "$1=$2" >>"$FIG"; log "  $1=$2"; }
get() { sed -n "s/^$1=//p" "$FIG" | tail -1; }
# field NAME LINE: the value of NAME=… in a key=value line.
field() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }

# --- cleanup: stop everything this script started, and the watchdog --------
stop_proc() {
    local name=$1 pid=${PID[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PID[$name]"
}
cleanup() {
    local rc=$? name
    trap - EXIT INT TERM HUP
    for name in "${!PID[@]}"; do stop_proc "$name"; done
    [ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "${DATA_ROOT:-}" ] && rm -rf "$DATA"
    if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" != 0 ]; then
        log "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# Bound the total run time: the watchdog TERMs us, and the trap cleans up.
# (Its sleep is its own child so stopping the watchdog leaves no orphan.)
(
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    sleep "$TIME_LIMIT" & nap=$!
    wait "$nap"
    log "TIME_LIMIT ${TIME_LIMIT}s reached, aborting"
    kill -TERM $$
) &
WATCHDOG=$!

# --- setup ------------------------------------------------------------------
install_deps() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v jq >/dev/null || missing+=(jq)
    command -v ss >/dev/null || missing+=(iproute2)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
}

check_ports() {
    local name
    for name in "${!ADDR[@]}"; do
        ! ss -ltnH src "${ADDR[$name]}" | grep -q . || die "${ADDR[$name]} is in use (set PORT_BASE)"
    done
    for name in "${!PEER[@]}"; do
        ! ss -ltnH src "${PEER[$name]}" | grep -q . || die "${PEER[$name]} is in use (set PORT_BASE)"
    done
}

build() {
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        log "building origin and the load generator (release)"
        (cd "$ROOT" && cargo build --release -q -p origin \
            && cargo build --release -q -p waypost-e2e --example origin_load) >&2
    fi
    ORIGIN_BIN=${ORIGIN_BIN:-$target/release/origin}
    LOAD_BIN=${LOAD_BIN:-$target/release/examples/origin_load}
    [ -x "$ORIGIN_BIN" ] && [ -x "$LOAD_BIN" ] || die "binaries not found: $ORIGIN_BIN $LOAD_BIN"
    # Only issues the peer certificates: any build will do.
    if [ -z "${WAYPOST_BIN:-}" ]; then
        WAYPOST_BIN=$target/release/waypost
        [ -x "$WAYPOST_BIN" ] || WAYPOST_BIN=$target/debug/waypost
    fi
    [ "$PEER_TLS" = 0 ] || [ -x "$WAYPOST_BIN" ] \
        || die "PEER_TLS=1 needs the waypost CLI (cargo build -p waypost, or WAYPOST_BIN=...)"
}

# Wait (bounded) until the machine is quiet; log how busy it was.
wait_quiet() {
    local what=$1 t0=$SECONDS busy
    while :; do
        busy=$($PY busy 1)
        (( busy <= QUIET_BUSY )) && break
        if (( SECONDS - t0 >= QUIET_WAIT )); then
            log "machine still ${busy}% busy after ${QUIET_WAIT}s; measuring $what anyway"
            break
        fi
    done
    printf '%s:%s%% ' "$what" "$busy" >>"$WORK/quiet.log"
}

# --- the origins --------------------------------------------------------------
# write_config NAME MEMBERS...: MEMBERS are node names forming the group
# (none: a one-region origin without a [cluster] section).
write_config() {
    local name=$1 i=0 m; shift
    mkdir -p "$WORK/$name"
    {
        echo "listen = \"${ADDR[$name]}\""
        echo "data_dir = \"$DATA/$name\""
        echo "token = \"$ORIGIN_TOKEN\""
        if [ $# -gt 0 ]; then
            echo "[peer]"
            echo "listen = \"${PEER[$name]}\""
            if [ "$PEER_TLS" != 0 ]; then
                "$WAYPOST_BIN" cert --node "${name#n}" --ip "${PEER[$name]%:*}" \
                    --data-dir "$WORK/ca" --out "$WORK/$name/tls" >/dev/null 2>>"$WORK/cert.err" \
                    || die "waypost cert failed: $(cat "$WORK/cert.err")"
                echo "ca_file = \"$WORK/$name/tls/ca.pem\""
                echo "cert_file = \"$WORK/$name/tls/peer.pem\""
                echo "key_file = \"$WORK/$name/tls/peer.key\""
            fi
            echo "[cluster]"
            echo "node_id = ${name#n}"
            echo "members = ["
            for m in "$@"; do echo "  { id = ${m#n}, addr = \"${PEER[$m]}\" },"; done
            echo "]"
        fi
    } >"$WORK/$name/origin.toml"
}

start_node() {
    local name=$1
    RUST_LOG=warn "$ORIGIN_BIN" --config "$WORK/$name/origin.toml" \
        >>"$WORK/$name/out.log" 2>>"$WORK/$name/err.log" &
    PID[$name]=$!
}

url() { echo "http://${ADDR[$1]}"; }

# wait_healthy NAME TIMEOUT: poll /healthz until 200 (running, a leader
# reachable, caught up with its commit index); fail if the process dies.
wait_healthy() {
    local name=$1 timeout=$2 t0=$SECONDS
    until curl -fsS -o /dev/null --max-time 2 "$(url "$name")/healthz" 2>/dev/null; do
        kill -0 "${PID[$name]}" 2>/dev/null || { tail -5 "$WORK/$name/err.log" >&2; die "$name exited"; }
        (( SECONDS - t0 < timeout )) || { tail -5 "$WORK/$name/err.log" >&2; die "$name not healthy after ${timeout}s"; }
        sleep 0.05
    done
}

# leader_of NAMES...: the leader node name every listed (running) node
# agrees on in GET /cluster, or nothing.
leader_of() {
    local name id seen=""
    for name in "$@"; do
        id=$(curl -fsS --max-time 1 -H "$AUTH" "$(url "$name")/cluster" 2>/dev/null | jq -r '.leader // empty') || return 0
        [ -n "$id" ] || return 0
        [ -z "$seen" ] || [ "$seen" = "$id" ] || return 0
        seen=$id
    done
    [ -n "$seen" ] && [ -n "${PID[n$seen]:-}" ] && echo "n$seen"
    return 0
}

# wait_leader TIMEOUT NAMES...: poll until the listed nodes agree on a
# running leader; prints its name.
wait_leader() {
    local timeout=$1 t0=$SECONDS leader; shift
    while :; do
        leader=$(leader_of "$@")
        [ -n "$leader" ] && { echo "$leader"; return; }
        (( SECONDS - t0 < timeout )) || die "no agreed leader among $* after ${timeout}s"
        sleep 0.05
    done
}

last_log_index() { curl -fsS --max-time 1 -H "$AUTH" "$(url "$1")/cluster" 2>/dev/null | jq -r '.last_log_index' || echo 0; }

# wait_progress NAME N TIMEOUT: wait until NAME's Raft log grows by N entries
# (writes are flowing through it).
wait_progress() {
    local name=$1 n=$2 timeout=$3 t0=$SECONDS start now
    start=$(last_log_index "$name")
    while :; do
        now=$(last_log_index "$name")
        (( now >= start + n )) && return
        (( SECONDS - t0 < timeout )) || die "$name's log did not grow by $n entries in ${timeout}s"
        sleep 0.05
    done
}

# --- measuring ----------------------------------------------------------------
# write_run LABEL NAME CONNS: one closed-loop write run against NAME; sets
# REPLY to the load generator's line.
write_run() {
    local label=$1 name=$2 conns=$3
    wait_quiet "$label"
    curl -fsS -H "$AUTH" "$(url "$name")/metrics" >"$WORK/$label.before"
    REPLY=$("$LOAD_BIN" write --url "$(url "$name")" --conns "$conns" --seconds "$DURATION" \
        --ns "$NS" --prefix "$label" 2>>"$WORK/load.err")
    curl -fsS -H "$AUTH" "$(url "$name")/metrics" >"$WORK/$label.after"
    log "$label ($name, $conns clients): $REPLY server_p99_bucket_ms=$($PY hist-p99 "$WORK/$label.before" "$WORK/$label.after")"
    [ "$(field errors "$REPLY")" = 0 ] || log "WARNING: $label had write errors (see $WORK/load.err)"
}

one_region() {
    log "== one region: $(url s1)"
    write_config s1
    start_node s1
    wait_healthy s1 30
    write_run w1r_c1 s1 1
    fig p99_commit_ms_1r_c1 "$(field p99_ms "$REPLY")"
    write_run w1r s1 "$CONNS"
    fig write_qps_1r "$(field qps "$REPLY")"
    fig p99_commit_ms_1r "$(field p99_ms "$REPLY")"
    fig p99_commit_ms_1r_server "$($PY hist-p99 "$WORK/w1r.before" "$WORK/w1r.after")"
    stop_proc s1
}

three_regions() {
    local name leader follower others=() lag
    log "== three regions: $(url n1) $(url n2) $(url n3)"
    for name in n1 n2 n3; do write_config "$name" n1 n2 n3; done
    for name in n1 n2 n3; do start_node "$name"; done
    for name in n1 n2 n3; do wait_healthy "$name" 30; done
    leader=$(wait_leader 30 n1 n2 n3)
    for name in n1 n2 n3; do [ "$name" = "$leader" ] || others+=("$name"); done
    follower=${others[0]}
    log "leader $leader, reading from follower $follower"

    write_run w3r_c1 "$leader" 1
    fig p99_commit_ms_c1 "$(field p99_ms "$REPLY")"

    # Sample the leader's per-peer lag gauge while the loaded run writes.
    : >"$WORK/lag-samples"
    ( while :; do curl -fsS --max-time 1 -H "$AUTH" "$(url "$leader")/metrics" >>"$WORK/lag-samples" 2>/dev/null || true; sleep 0.2; done ) &
    PID[lagsampler]=$!
    write_run w3r "$leader" "$CONNS"
    stop_proc lagsampler
    fig write_qps_3r "$(field qps "$REPLY")"
    fig p99_commit_ms "$(field p99_ms "$REPLY")"
    fig p50_commit_ms "$(field p50_ms "$REPLY")"
    fig p99_commit_ms_server "$($PY hist-p99 "$WORK/w3r.before" "$WORK/w3r.after")"
    fig repl_lag_entries_max "$($PY max-lag "$WORK/lag-samples")"
    [ "$(wait_leader 5 n1 n2 n3)" = "$leader" ] || log "WARNING: the leader changed during the write runs"

    wait_quiet lag
    lag=$("$LOAD_BIN" lag --leader "$(url "$leader")" --follower "$(url "$follower")" \
        --samples "$LAG_SAMPLES" --ns "$NS" 2>>"$WORK/load.err")
    log "replication lag $leader → $follower: $lag"
    fig repl_lag_ms "$(field p99_ms "$lag")"
    fig repl_lag_p50_ms "$(field p50_ms "$lag")"
    fig repl_lag_max_ms "$(field max_ms "$lag")"

    curl -fsS -X PUT -H "Authorization: Bearer $ORIGIN_TOKEN" --data-binary 'hello from the origin bench' \
        "$(url "$leader")/kv/$NS/read-key" >/dev/null
    until curl -fsS -o /dev/null -H "$AUTH" "$(url "$follower")/kv/$NS/read-key"; do sleep 0.05; done
    wait_quiet read
    wrk -t1 -c"$READ_CONNS" -d"${DURATION}s" --latency -H "$AUTH" "$(url "$follower")/kv/$NS/read-key" >"$WORK/wrk-read.txt"
    grep -q 'Non-2xx' "$WORK/wrk-read.txt" && log "WARNING: non-2xx reads: $(grep Non-2xx "$WORK/wrk-read.txt")"
    fig read_qps "$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$WORK/wrk-read.txt")"
    fig read_p99_ms "$(awk '$1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
        printf "%.2f", v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) }' "$WORK/wrk-read.txt")"

    failover
}

failover() {
    local k leader t0 t_kill t_new new others verify analysis catchups=()
    log "== failover: $KILLS leader kills under $CHURN_CONNS continuous writers"
    : >"$WORK/kills"
    "$LOAD_BIN" churn --url "$(url n1)" --url "$(url n2)" --url "$(url n3)" --conns "$CHURN_CONNS" \
        --ns "$NS" --log "$WORK/churn.log" --stop-file "$WORK/churn.stop" --max-seconds "$TIME_LIMIT" \
        >"$WORK/churn.out" 2>>"$WORK/load.err" &
    PID[churn]=$!
    for k in $(seq "$KILLS"); do
        for name in n1 n2 n3; do wait_healthy "$name" 30; done
        leader=$(wait_leader 20 n1 n2 n3)
        wait_progress "$leader" 50 20
        kill -KILL "${PID[$leader]}"
        wait "${PID[$leader]}" 2>/dev/null || true
        # Timed once the leader is reaped: a write sent after this cannot
        # have reached it (timing the kill itself let a write that slipped
        # in before the signal landed count as a 4 ms "failover").
        t_kill=$(date +%s%N)
        unset "PID[$leader]"
        echo "$t_kill $leader" >>"$WORK/kills"
        others=()
        for name in n1 n2 n3; do [ "$name" = "$leader" ] || others+=("$name"); done
        new=$(wait_leader 20 "${others[@]}")
        t_new=$(date +%s%N)
        wait_progress "$new" 20 20
        log "kill $k: SIGKILL $leader; survivors agree on $new after ~$(( (t_new - t_kill) / 1000000 )) ms (polled); writes flow again"
        t0=$(date +%s%N)
        start_node "$leader"
        wait_healthy "$leader" 60
        catchups+=("$(( ($(date +%s%N) - t0) / 1000000 ))")
        log "kill $k: $leader restarted and healthy (caught up) after ${catchups[-1]} ms"
    done
    wait_progress n1 20 20
    touch "$WORK/churn.stop"
    wait "${PID[churn]}" || die "the churn writer failed (see $WORK/load.err)"
    unset "PID[churn]"
    log "churn writer: $(cat "$WORK/churn.out")"
    for name in n1 n2 n3; do wait_healthy "$name" 30; done
    analysis=$("$LOAD_BIN" failover --log "$WORK/churn.log" --kills "$WORK/kills")
    log "failover: $analysis"
    fig failover_s "$(field failover_max_s "$analysis")"
    fig failover_p50_s "$(field failover_p50_s "$analysis")"
    fig failover_each_s "$(for k in $(seq "$KILLS"); do field "kill${k}_s" "$analysis"; done | paste -sd,)"
    fig max_ack_gap_ms "$(field max_ack_gap_ms "$analysis")"
    fig restart_to_healthy_ms "$(IFS=,; echo "${catchups[*]}")"
    verify=$("$LOAD_BIN" verify --url "$(url n1)" --url "$(url n2)" --url "$(url n3)" --ns "$NS" \
        --log "$WORK/churn.log" 2>>"$WORK/load.err")
    log "verify: $verify"
    fig acked_writes "$(field acked_keys "$verify")"
    fig lost_acked_writes "$(field lost_acked_writes "$verify")"
}

# --- main ---------------------------------------------------------------------
main() {
    install_deps
    check_ports
    build
    log "work dir $WORK; PEER_TLS=$PEER_TLS DURATION=${DURATION}s CONNS=$CONNS READ_CONNS=$READ_CONNS KILLS=$KILLS; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
    : >"$FIG"
    # Context, not a figure of the origin: what one fsynced append costs on
    # this disk right now (the Raft log fsyncs every append).
    local fsync
    fsync=$($PY fsync 3 "$DATA")
    log "disk: 200 B append + fdatasync for 3 s in $DATA: $fsync"
    fig fsync_p99_ms "$(field p99_ms "$fsync")"
    one_region
    three_regions
    log "machine CPU busy before each measurement (after waiting up to ${QUIET_WAIT}s for <=${QUIET_BUSY}%): $(cat "$WORK/quiet.log")"
    echo "figures failover_s=$(get failover_s) lost_acked_writes=$(get lost_acked_writes)" \
        "p99_commit_ms=$(get p99_commit_ms) read_qps=$(get read_qps)" \
        "failover_stat=max_of_$KILLS failover_p50_s=$(get failover_p50_s) failover_each_s=$(get failover_each_s)" \
        "max_ack_gap_ms=$(get max_ack_gap_ms) restart_to_healthy_ms=$(get restart_to_healthy_ms) acked_writes=$(get acked_writes)" \
        "write_qps_1r=$(get write_qps_1r) write_qps_3r=$(get write_qps_3r)" \
        "p99_commit_ms_1r=$(get p99_commit_ms_1r) p99_commit_ms_c1=$(get p99_commit_ms_c1) p99_commit_ms_1r_c1=$(get p99_commit_ms_1r_c1)" \
        "p99_commit_ms_server=$(get p99_commit_ms_server) p99_commit_ms_1r_server=$(get p99_commit_ms_1r_server)" \
        "repl_lag_ms=$(get repl_lag_ms) repl_lag_p50_ms=$(get repl_lag_p50_ms) repl_lag_entries_max=$(get repl_lag_entries_max)" \
        "read_p99_ms=$(get read_p99_ms) fsync_p99_ms=$(get fsync_p99_ms) peer_tls=$PEER_TLS"
}

main "$@"
