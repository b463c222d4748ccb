#!/usr/bin/env bash
# Plugin benchmark: the same `hello` wasi:http component (plugins/hello)
# served by Waypost edge-node and by `wasmtime serve` of the same wasmtime
# version, on loopback.
#
#   bench/plugin_hello.sh            # from the repo root (or anywhere)
#
# Measures, alternating the two servers (the starting one rotates) and
# repeating REPS times (medians reported; this machine is shared):
#   hello_c64   wrk -t1 -c64 -d5s --latency   edge-node vs `wasmtime serve`
#   hello_c1    wrk -t1 -c1  -d5s --latency   edge-node, hello alone (and wasmtime serve)
#   chain_c1    wrk -t1 -c1  -d5s --latency   edge-node, 3-plugin chain
#               security-headers -> security-headers -> hello (Host: chain.bench)
# For each run: req/s, p50, p99 from wrk and the server's CPU time
# (utime+stime plus reaped children over its process tree, from /proc/PID/stat)
# per request.
#
# edge-node runs with RUST_LOG=warn (its access log is at info level, so it
# is off); `wasmtime serve` runs as its docs recommend for production:
#   wasmtime serve -S cli -O pooling-allocator --addr 127.0.0.1:PORT hello.wasm
# wasmtime-cli is installed (once) with `cargo install --locked` into
# WASMTIME_ROOT, at the wasmtime version edge-node links (from Cargo.lock).
#
# Ends with one line:
#   ratio wasmtime_serve_hello=… wasmtime_serve_hello_cpu=… wasmtime_serve_hello_p99=…
# wasmtime_serve_hello: edge req/s ÷ wasmtime serve req/s (hello_c64);
# _cpu: wasmtime serve CPU-µs/req ÷ edge's; _p99: wasmtime serve p99 ÷ edge's.
# Above 1 means edge-node does better.
#
# Knobs (environment): REPS=5 DURATION=5s CONNS=64 THREADS=1 LOW_DURATION=5s
# QUIET_WAIT=45 QUIET_BUSY=20 PEER_WAIT=120 PORT_BASE=18200 SKIP_BUILD=0
# KEEP_WORK=0 EDGE_BIN/ORIGIN_BIN (default: the release builds) TIME_LIMIT=900 (measuring only; the one-time install is not
# counted) WASMTIME_ROOT=$HOME/.cache/waypost-bench/wasmtime-<version>
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TPL=$HERE/plugin_hello
STATS="python3 $TPL/stats.py"

REPS=${REPS:-5}
DURATION=${DURATION:-5s}
LOW_DURATION=${LOW_DURATION:-5s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
# Other engineers' builds share this machine: before each repetition wait up
# to QUIET_WAIT seconds for the CPUs to be at most QUIET_BUSY % busy, and up
# to PEER_WAIT seconds for other load generators (wrk, dnsperf) to finish.
QUIET_WAIT=${QUIET_WAIT:-45}
QUIET_BUSY=${QUIET_BUSY:-20}
PEER_WAIT=${PEER_WAIT:-120}
PORT_BASE=${PORT_BASE:-18200}
TIME_LIMIT=${TIME_LIMIT:-900}
TOKEN=bench-token
CLK_TCK=$(getconf CLK_TCK)

WASMTIME_VERSION=$(awk '/^name = "wasmtime"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' "$ROOT/Cargo.lock")
[ -n "$WASMTIME_VERSION" ] || { echo "wasmtime version not found in Cargo.lock" >&2; exit 1; }
WASMTIME_ROOT=${WASMTIME_ROOT:-$HOME/.cache/waypost-bench/wasmtime-$WASMTIME_VERSION}
WASMTIME=$WASMTIME_ROOT/bin/wasmtime

# Every port on loopback, offset from PORT_BASE.
ORIGIN=$((PORT_BASE + 70))
EDGE_HTTP=$((PORT_BASE + 81)) EDGE_ADMIN=$((PORT_BASE + 91))
WASMTIME_HTTP=$((PORT_BASE + 82))

WORK=$(mktemp -d /tmp/waypost-plugin-bench.XXXXXX)
RESULTS=$WORK/results.tsv
declare -A PID=()     # server name -> pid of the process we started
declare -A HTTP=()    # server name -> base URL

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- cleanup: stop every process this script started ------------------------
cleanup() {
    local rc=$? name pids
    trap - EXIT INT TERM HUP
    for name in "${!PID[@]}"; do
        # Collect the tree first: after the parent dies its children reparent.
        pids=$($STATS tree "${PID[$name]}" 2>/dev/null || true)
        kill -TERM "${PID[$name]}" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "${PID[$name]}" 2>/dev/null || break
            sleep 0.1
        done
        # shellcheck disable=SC2086
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    done
    if [ -n "${WATCHDOG:-}" ]; then
        pkill -P "$WATCHDOG" 2>/dev/null || true   # its sleep
        kill "$WATCHDOG" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" != 0 ]; then
        log "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# Fill @NAME@ placeholders in a template from shell variables.
render() {
    local tpl=$1 out=$2 var
    cp "$tpl" "$out"
    for var in WORK ORIGIN EDGE_HTTP EDGE_ADMIN PLUGIN_DIR; do
        sed -i "s|@${var}@|${!var}|g" "$out"
    done
}

# Poll URL until it answers 2xx; fail if the process dies or TIMEOUT passes.
wait_http() {
    local name=$1 url=$2 timeout=${3:-60} t0=$SECONDS
    until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
        kill -0 "${PID[$name]}" 2>/dev/null || { tail -20 "$WORK/$name.err" >&2 || true; die "$name exited during startup"; }
        (( SECONDS - t0 < timeout )) || { tail -20 "$WORK/$name.err" >&2 || true; die "$name not ready at $url after ${timeout}s"; }
        sleep 0.2
    done
}

port_free() { ! ss -ltnH "sport = :$1" | grep -q .; }

# --- setup ------------------------------------------------------------------
install_deps() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v curl >/dev/null || missing+=(curl)
    command -v ss >/dev/null || missing+=(iproute2)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
    rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 \
        || rustup target add wasm32-wasip2 >&2
}

# wasmtime-cli of the version edge-node links, built once into a cache dir.
install_wasmtime() {
    if [ -x "$WASMTIME" ] && [ "$("$WASMTIME" --version | awk '{print $2}')" = "$WASMTIME_VERSION" ]; then
        return
    fi
    log "installing wasmtime-cli $WASMTIME_VERSION into $WASMTIME_ROOT (cargo install --locked; slow, once)"
    mkdir -p "$WASMTIME_ROOT"
    # Run outside the repo so its rust-toolchain / config do not apply.
    (cd / && cargo install --locked wasmtime-cli --version "$WASMTIME_VERSION" --root "$WASMTIME_ROOT") >&2
    [ "$("$WASMTIME" --version | awk '{print $2}')" = "$WASMTIME_VERSION" ] || die "installed wasmtime is not $WASMTIME_VERSION"
}

check_ports() {
    local p
    for p in $ORIGIN $EDGE_HTTP $EDGE_ADMIN $WASMTIME_HTTP; do
        port_free "$p" || die "port $p is in use (set PORT_BASE to move every port)"
    done
}

build() {
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        log "building edge-node and origin (release) and the plugins (wasm32-wasip2, release)"
        (cd "$ROOT" && cargo build --release -q -p edge-node -p origin) >&2
        (cd "$ROOT" && cargo build --release -q --target wasm32-wasip2 --manifest-path plugins/Cargo.toml --target-dir plugins/target) >&2
    fi
    EDGE_BIN=${EDGE_BIN:-$target/release/edge-node}
    ORIGIN_BIN=${ORIGIN_BIN:-$target/release/origin}
    PLUGIN_DIR=$ROOT/plugins/target/wasm32-wasip2/release
    [ -x "$EDGE_BIN" ] && [ -x "$ORIGIN_BIN" ] || die "binaries not found: $EDGE_BIN $ORIGIN_BIN"
    [ -f "$PLUGIN_DIR/hello.wasm" ] && [ -f "$PLUGIN_DIR/security-headers.wasm" ] \
        || die "plugins not found under $PLUGIN_DIR"
}

# --- the servers --------------------------------------------------------------
start_origin() {
    mkdir -p "$WORK/origin-data"
    "$ORIGIN_BIN" --listen "127.0.0.1:$ORIGIN" --data-dir "$WORK/origin-data" --token "$TOKEN" \
        >"$WORK/origin.out" 2>"$WORK/origin.err" &
    PID[origin]=$!
    wait_http origin "http://127.0.0.1:$ORIGIN/healthz"
}

start_edge() {
    render "$TPL/edge.toml.tmpl" "$WORK/edge.toml"
    RUST_LOG=warn "$EDGE_BIN" --config "$WORK/edge.toml" >"$WORK/edge.out" 2>"$WORK/edge.err" &
    PID[edge]=$!
    # The first start compiles the plugins (cached in the work dir).
    wait_http edge "http://127.0.0.1:$EDGE_ADMIN/healthz" 120
    HTTP[edge]=http://127.0.0.1:$EDGE_HTTP
    wait_http edge "${HTTP[edge]}/" 120
}

start_wasmtime() {
    "$WASMTIME" serve -S cli -O pooling-allocator --addr "127.0.0.1:$WASMTIME_HTTP" \
        "$PLUGIN_DIR/hello.wasm" >"$WORK/wasmtime.out" 2>"$WORK/wasmtime.err" &
    PID[wasmtime]=$!
    HTTP[wasmtime]=http://127.0.0.1:$WASMTIME_HTTP
    wait_http wasmtime "${HTTP[wasmtime]}/" 120
}

# Both must answer the same thing; the chain must run all three plugins.
check_answers() {
    local a b c
    a=$(curl -fsS "${HTTP[edge]}/bench/path")
    b=$(curl -fsS "${HTTP[wasmtime]}/bench/path")
    [ "$a" = "$b" ] && [ "$a" = $'Hello from Waypost!\n/bench/path' ] \
        || die "answers differ: edge=$(printf %q "$a") wasmtime=$(printf %q "$b")"
    c=$(curl -fsS -D - -o /dev/null -H 'Host: chain.bench' "${HTTP[edge]}/bench/path" | tr -d '\r')
    grep -qi '^x-plugin: hello' <<<"$c" && grep -qi '^x-frame-options: DENY' <<<"$c" \
        || die "the chain site did not run security-headers then hello: $c"
    if grep -qi '^x-frame-options' < <(curl -fsS -D - -o /dev/null "${HTTP[edge]}/" | tr -d '\r'); then
        die "the hello site unexpectedly ran security-headers"
    fi
}

# --- measuring ----------------------------------------------------------------
# Wait (bounded) until no other load generator runs and the machine is quiet;
# log how busy it was.
wait_quiet() {
    local what=$1 t0=$SECONDS busy others=""
    while pgrep -x wrk >/dev/null || pgrep -x dnsperf >/dev/null; do
        if (( SECONDS - t0 >= PEER_WAIT )); then
            others=" (other wrk/dnsperf still running)"
            log "another wrk/dnsperf still runs after ${PEER_WAIT}s; measuring $what anyway"
            break
        fi
        sleep 2
    done
    t0=$SECONDS
    while :; do
        busy=$($STATS busy 1)
        (( busy <= QUIET_BUSY )) && break
        if (( SECONDS - t0 >= QUIET_WAIT )); then
            log "machine still ${busy}% busy after ${QUIET_WAIT}s; measuring $what anyway"
            break
        fi
        sleep 2
    done
    printf '%s:%s%%%s ' "$what" "$busy" "$others" >>"$WORK/quiet.log"
}

cpu_ticks() { $STATS cpu "${PID[$1]}"; }

# measure TEST NAME REP CONNS DURATION URL [wrk args...]: one wrk run; appends a TSV row.
measure() {
    local test=$1 name=$2 rep=$3 conns=$4 dur=$5 url=$6; shift 6
    local out=$WORK/wrk-$test-$name-$rep.txt c0 c1 reqs rps p50 p99 errors cpu_us
    c0=$(cpu_ticks "$name")
    wrk -t"$THREADS" -c"$conns" -d"$dur" --latency "$@" "$url" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed against $name"; }
    c1=$(cpu_ticks "$name")
    read -r reqs rps p50 p99 errors < <($STATS wrk "$out")
    cpu_us=$(python3 -c "print(f'{($c1 - $c0) * 1e6 / $CLK_TCK / max($reqs, 1):.3f}')")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$test" "$name" "$rep" "$rps" "$p50" "$p99" "$cpu_us" "$errors" >>"$RESULTS"
    log "$(printf '%-9s %-8s rep %d: %8.0f req/s  p50 %7.3f ms  p99 %7.3f ms  %7.2f CPU-µs/req  errors %s' \
        "$test" "$name" "$rep" "$rps" "$p50" "$p99" "$cpu_us" "$errors")"
}

run_all() {
    local rep name order
    for rep in $(seq "$REPS"); do
        wait_quiet "rep$rep"
        # Alternate which server goes first.
        if (( rep % 2 )); then order=(edge wasmtime); else order=(wasmtime edge); fi
        for name in "${order[@]}"; do
            measure hello_c64 "$name" "$rep" "$CONNS" "$DURATION" "${HTTP[$name]}/"
        done
        # Low load: hello alone vs the 3-plugin chain on the same edge
        # (alternated), plus wasmtime serve's hello for reference.
        if (( rep % 2 )); then
            measure hello_c1 edge "$rep" 1 "$LOW_DURATION" "${HTTP[edge]}/"
            measure chain_c1 edge "$rep" 1 "$LOW_DURATION" "${HTTP[edge]}/" -H 'Host: chain.bench'
        else
            measure chain_c1 edge "$rep" 1 "$LOW_DURATION" "${HTTP[edge]}/" -H 'Host: chain.bench'
            measure hello_c1 edge "$rep" 1 "$LOW_DURATION" "${HTTP[edge]}/"
        fi
        measure hello_c1 wasmtime "$rep" 1 "$LOW_DURATION" "${HTTP[wasmtime]}/"
    done
}

# --- main ---------------------------------------------------------------------
main() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    install_deps
    install_wasmtime
    check_ports
    build

    # Bound the measuring time (the one-time install and builds above are not
    # counted): the watchdog TERMs us, and the trap cleans up.
    ( sleep "$TIME_LIMIT"; log "TIME_LIMIT ${TIME_LIMIT}s reached, aborting"; kill -TERM $$ ) &
    WATCHDOG=$!

    log "work dir $WORK; REPS=$REPS DURATION=$DURATION CONNS=$CONNS THREADS=$THREADS; $(nproc) cores; wasmtime $WASMTIME_VERSION"
    printf '# test\tserver\trep\treq_per_s\tp50_ms\tp99_ms\tcpu_us_per_req\terrors\n' >"$RESULTS"

    start_origin
    start_edge
    log "edge up"
    start_wasmtime
    log "wasmtime serve up ($("$WASMTIME" --version))"
    check_answers
    local i
    for i in $(seq 200); do
        curl -fsS -o /dev/null -o /dev/null "${HTTP[edge]}/" "${HTTP[wasmtime]}/"
        curl -fsS -o /dev/null -H 'Host: chain.bench' "${HTTP[edge]}/"
    done
    log "warmed; measuring"
    run_all

    echo
    echo "== plugin_hello.sh on $(date) — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); wasmtime $WASMTIME_VERSION =="
    echo "edge-node: RUST_LOG=warn (no access log); peer: wasmtime serve -S cli -O pooling-allocator"
    echo "hello_c64: wrk -t$THREADS -c$CONNS -d$DURATION --latency; *_c1: wrk -t$THREADS -c1 -d$LOW_DURATION --latency; REPS=$REPS, alternated; medians"
    echo "machine CPU busy (all cores, before each repetition, after waiting up to ${QUIET_WAIT}s for <=${QUIET_BUSY}%): $(cat "$WORK/quiet.log")"
    echo
    cp "$RESULTS" /tmp/waypost-plugin-bench-last-results.tsv
    echo "per-run rows: /tmp/waypost-plugin-bench-last-results.tsv"
    echo
    $STATS summary "$RESULTS"
}

main "$@"
