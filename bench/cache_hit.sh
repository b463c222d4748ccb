#!/usr/bin/env bash
# Cache-hit benchmark: Waypost edge-node vs nginx (proxy_cache), Varnish and
# Apache Traffic Server, all in front of the same Waypost origin on loopback.
#
#   bench/cache_hit.sh            # from the repo root (or anywhere)
#
# Measures, alternating the servers and repeating each measurement REPS times
# (medians reported; this machine is noisy):
#   1k / 100k   cache hits over HTTP/1.1 keep-alive       (all four servers)
#   tls_1k      1 KiB cache hits over TLS                 (edge-node, nginx)
#   miss_1k     cache misses: a unique query string per request (all four)
#   miss_tls    the same, to an origin that speaks only HTTPS (certificate
#               checked against a private CA, sessions resumed; edge-node
#               and nginx with proxy_ssl_session_reuse)
# plus the memory each cached 1 KiB object costs (RSS delta over MEM_OBJECTS
# distinct cache keys) for edge-node, Varnish and ATS.
#
# For each run it reads req/s and p99 from wrk and the server's CPU time
# (utime+stime, plus reaped children, over its whole process tree) from /proc,
# and reports CPU-µs per request: one wrk thread tops out near 90k req/s here,
# so for fast servers CPU per request is the steadier figure.
#
# Ends with one line:
#   ratio nginx_1k=… varnish_1k=… ats_1k=… nginx_1k_cpu=… varnish_1k_cpu=… ats_1k_cpu=…
#         nginx_100k=… varnish_100k=… ats_100k=… nginx_tls_1k=…
#         nginx_miss_cpu=… varnish_miss_cpu=… ats_miss_cpu=… nginx_miss_tls=…
#         nginx_miss_tls_cpu=… varnish_mem=… ats_mem=…
# plain names: edge req/s ÷ peer req/s; _cpu names: peer CPU-µs/req ÷ edge's;
# _mem names: peer bytes per cached object ÷ edge's.
# Above 1 means edge-node does better.
#
# Knobs (environment): REPS=5 DURATION=5s CONNS=32 THREADS=1 MISS_REPS=3 MISS_CONNS=128
# QUIET_WAIT=45 QUIET_BUSY=20 MEM_OBJECTS=100000 PORT_BASE=18000 SKIP_BUILD=0 KEEP_WORK=0 TIME_LIMIT=900
# SERVERS="edge nginx varnish ats" (edge is always included).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TPL=$HERE/cache_hit
STATS="python3 $TPL/stats.py"

REPS=${REPS:-5}
MISS_REPS=${MISS_REPS:-3}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
# The origin answers one request per ~40 ms per connection (see RESULTS.md),
# so misses use more connections to keep the proxies busy.
MISS_CONNS=${MISS_CONNS:-128}
# Other engineers' builds share this machine: before each repetition wait up
# to QUIET_WAIT seconds for the CPUs to be at most QUIET_BUSY % busy.
QUIET_WAIT=${QUIET_WAIT:-45}
QUIET_BUSY=${QUIET_BUSY:-20}
THREADS=${THREADS:-1}
MEM_OBJECTS=${MEM_OBJECTS:-100000}
PORT_BASE=${PORT_BASE:-18000}
TIME_LIMIT=${TIME_LIMIT:-900}
SERVERS=${SERVERS:-"edge nginx varnish ats"}
TOKEN=bench-token
CLK_TCK=$(getconf CLK_TCK)
RUN_USER=$(id -un) RUN_GROUP=$(id -gn)

# Every port on loopback, offset from PORT_BASE.
ORIGIN=$((PORT_BASE + 70)) ORIGIN_TLS=$((PORT_BASE + 71))
EDGE_HTTP=$((PORT_BASE + 81)) EDGE_HTTPS=$((PORT_BASE + 441)) EDGE_ADMIN=$((PORT_BASE + 91))
NGINX_HTTP=$((PORT_BASE + 82)) NGINX_HTTPS=$((PORT_BASE + 442))
VARNISH_HTTP=$((PORT_BASE + 83)) VARNISH_ADMIN=$((PORT_BASE + 93))
ATS_HTTP=$((PORT_BASE + 84))

WORK=$(mktemp -d /tmp/waypost-bench.XXXXXX)
RESULTS=$WORK/results.tsv
declare -A PID=()     # server name -> pid of the process we started
declare -A HTTP=()    # server name -> base URL of its plain-HTTP listener

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- cleanup: stop every server this script started, and the watchdog -------
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
    [ -n "${WATCHDOG:-}" ] && kill "$WATCHDOG" 2>/dev/null || true
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

# Bound the total run time: the watchdog TERMs us, and the trap cleans up.
( sleep "$TIME_LIMIT"; log "TIME_LIMIT ${TIME_LIMIT}s reached, aborting"; kill -TERM $$ ) &
WATCHDOG=$!

# Fill @NAME@ placeholders in a template from shell variables.
render() {
    local tpl=$1 out=$2 var
    cp "$tpl" "$out"
    for var in WORK ORIGIN ORIGIN_TLS EDGE_HTTP EDGE_HTTPS EDGE_ADMIN NGINX_HTTP NGINX_HTTPS \
               VARNISH_HTTP ATS_HTTP RUN_USER RUN_GROUP; do
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
    command -v nginx >/dev/null || missing+=(nginx)
    command -v varnishd >/dev/null || missing+=(varnish)
    command -v traffic_server >/dev/null || missing+=(trafficserver)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v ss >/dev/null || missing+=(iproute2)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
    # The packages may start their own services; we run our own instances.
    local svc
    for svc in nginx varnish varnishncsa trafficserver; do
        if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
            systemctl stop "$svc" || true
        elif command -v service >/dev/null; then
            service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
}

check_ports() {
    local p
    for p in $ORIGIN $ORIGIN_TLS $EDGE_HTTP $EDGE_HTTPS $EDGE_ADMIN $NGINX_HTTP $NGINX_HTTPS \
             $VARNISH_HTTP $VARNISH_ADMIN $ATS_HTTP; do
        port_free "$p" || die "port $p is in use (set PORT_BASE to move every port)"
    done
}

build() {
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        log "building edge-node and origin (release)"
        (cd "$ROOT" && cargo build --release -q -p edge-node -p origin) >&2
    fi
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    EDGE_BIN=$target/release/edge-node
    ORIGIN_BIN=$target/release/origin
    [ -x "$EDGE_BIN" ] && [ -x "$ORIGIN_BIN" ] || die "binaries not found under $target/release"
}

make_cert() {
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
    # The HTTPS origin's: a private CA the proxies trust, and a leaf from it.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj '/CN=bench origin CA' -keyout "$WORK/tls/ca.key" -out "$WORK/tls/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
        -keyout "$WORK/tls/origin.key" -out "$WORK/tls/origin.csr" 2>/dev/null
    openssl x509 -req -in "$WORK/tls/origin.csr" -CA "$WORK/tls/ca.pem" -CAkey "$WORK/tls/ca.key" \
        -days 2 -out "$WORK/tls/origin.pem" \
        -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1') 2>/dev/null
}

# --- the servers --------------------------------------------------------------
start_origin() {
    mkdir -p "$WORK/origin-data"
    "$ORIGIN_BIN" --listen "127.0.0.1:$ORIGIN" --data-dir "$WORK/origin-data" --token "$TOKEN" \
        >"$WORK/origin.out" 2>"$WORK/origin.err" &
    PID[origin]=$!
    wait_http origin "http://127.0.0.1:$ORIGIN/healthz"
    local name size
    for name in 1k 100k; do
        case $name in 1k) size=1024 ;; 100k) size=102400 ;; esac
        head -c "$size" /dev/urandom >"$WORK/$name.bin"
        curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" \
            -H 'Cache-Control: public, max-age=86400' \
            --data-binary "@$WORK/$name.bin" "http://127.0.0.1:$ORIGIN/assets/$name.bin"
    done
    log "origin up on :$ORIGIN with 1k.bin and 100k.bin"

    # The same asset on an origin that speaks only HTTPS.
    mkdir -p "$WORK/origin-tls-data"
    printf 'listen = "127.0.0.1:%s"\ndata_dir = "%s"\ntoken = "%s"\n[tls]\ncert_file = "%s"\nkey_file = "%s"\n' \
        "$ORIGIN_TLS" "$WORK/origin-tls-data" "$TOKEN" "$WORK/tls/origin.pem" "$WORK/tls/origin.key" \
        >"$WORK/origin-tls.toml"
    "$ORIGIN_BIN" --config "$WORK/origin-tls.toml" >"$WORK/origin-tls.out" 2>"$WORK/origin-tls.err" &
    PID[origin_tls]=$!
    local t0=$SECONDS
    until curl -fsS -o /dev/null --max-time 2 --cacert "$WORK/tls/ca.pem" \
        "https://127.0.0.1:$ORIGIN_TLS/healthz" 2>/dev/null; do
        kill -0 "${PID[origin_tls]}" 2>/dev/null || { tail -20 "$WORK/origin-tls.err" >&2; die "the HTTPS origin exited"; }
        (( SECONDS - t0 < 60 )) || die "the HTTPS origin is not ready after 60s"
        sleep 0.2
    done
    curl -fsS -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" --cacert "$WORK/tls/ca.pem" \
        -H 'Cache-Control: public, max-age=86400' \
        --data-binary "@$WORK/1k.bin" "https://127.0.0.1:$ORIGIN_TLS/assets/1k.bin"
    log "HTTPS origin up on :$ORIGIN_TLS with 1k.bin"
}

start_edge() {
    render "$TPL/edge.toml.tmpl" "$WORK/edge.toml"
    RUST_LOG=warn "$EDGE_BIN" --config "$WORK/edge.toml" >"$WORK/edge.out" 2>"$WORK/edge.err" &
    PID[edge]=$!
    wait_http edge "http://127.0.0.1:$EDGE_ADMIN/healthz"
    HTTP[edge]=http://127.0.0.1:$EDGE_HTTP
}

start_nginx() {
    mkdir -p "$WORK/nginx/cache"
    render "$TPL/nginx.conf.tmpl" "$WORK/nginx/nginx.conf"
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off; master_process on;' \
        >"$WORK/nginx.out" 2>"$WORK/nginx.err" &
    PID[nginx]=$!
    HTTP[nginx]=http://127.0.0.1:$NGINX_HTTP
    wait_http nginx "${HTTP[nginx]}/assets/1k.bin"
}

start_varnish() {
    # Default VCL (-b) caches cacheable GETs; malloc storage sized to hold
    # the memory test's objects. Varnish always logs to its shared-memory
    # log (VSL); no varnishncsa access log is run.
    varnishd -F -n "$WORK/varnish" -a "127.0.0.1:$VARNISH_HTTP" -T "127.0.0.1:$VARNISH_ADMIN" \
        -b "127.0.0.1:$ORIGIN" -s malloc,1G \
        >"$WORK/varnish.out" 2>"$WORK/varnish.err" &
    PID[varnish]=$!
    HTTP[varnish]=http://127.0.0.1:$VARNISH_HTTP
    wait_http varnish "${HTTP[varnish]}/assets/1k.bin"
}

start_ats() {
    local d=$WORK/ats
    mkdir -p "$d/etc" "$d/var" "$d/run" "$d/log" "$d/cache"
    cp -r /etc/trafficserver/. "$d/etc/"
    render "$TPL/records.config.tmpl" "$d/etc/records.config"
    render "$TPL/remap.config.tmpl" "$d/etc/remap.config"
    render "$TPL/storage.config.tmpl" "$d/etc/storage.config"
    render "$TPL/runroot.yaml.tmpl" "$d/runroot.yaml"
    : >"$d/etc/plugin.config"
    TS_RUNROOT=$d/runroot.yaml traffic_server --run-root="$d/runroot.yaml" \
        >"$WORK/ats.out" 2>"$WORK/ats.err" &
    PID[ats]=$!
    HTTP[ats]=http://127.0.0.1:$ATS_HTTP
    wait_http ats "${HTTP[ats]}/assets/1k.bin" 90
}

# --- measuring ----------------------------------------------------------------
# Wait (bounded) until the machine is quiet; log how busy it was.
wait_quiet() {
    local what=$1 t0=$SECONDS busy
    while :; do
        busy=$($STATS busy 1)
        (( busy <= QUIET_BUSY )) && break
        if (( SECONDS - t0 >= QUIET_WAIT )); then
            log "machine still ${busy}% busy after ${QUIET_WAIT}s; measuring $what anyway"
            break
        fi
        sleep 2
    done
    printf '%s:%s%% ' "$what" "$busy" >>"$WORK/quiet.log"
}

cpu_ticks() { $STATS cpu "${PID[$1]}"; }
rss_kib() { $STATS rss "${PID[$1]}"; }

# Warm a URL (fetch it a few times so it is stored and hit).
warm() {
    local url=$1 i; shift
    for i in 1 2 3; do curl -fsS -o /dev/null "$@" "$url"; done
}

# measure TEST NAME REP URL [wrk args...]: one wrk run; appends a TSV row.
measure() {
    local test=$1 name=$2 rep=$3 url=$4; shift 4
    local out=$WORK/wrk-$test-$name-$rep.txt c0 c1 reqs rps p99 errors cpu_us
    c0=$(cpu_ticks "$name")
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" "$url" >"$out" 2>&1 \
        || { cat "$out" >&2; die "wrk failed against $name"; }
    c1=$(cpu_ticks "$name")
    read -r reqs rps p99 errors < <($STATS wrk "$out")
    cpu_us=$(python3 -c "print(f'{($c1 - $c0) * 1e6 / $CLK_TCK / max($reqs, 1):.3f}')")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$test" "$name" "$rep" "$rps" "$p99" "$cpu_us" "$errors" >>"$RESULTS"
    log "$(printf '%-7s %-8s rep %d: %9.0f req/s  p99 %7.2f ms  %7.2f CPU-µs/req  errors %s' \
        "$test" "$name" "$rep" "$rps" "$p99" "$cpu_us" "$errors")"
}

origin_requests() {
    # Sum of the origin's request counters (to prove hits never reach it).
    curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ORIGIN/metrics" | awk '/^[a-z_]*requests[a-z_]*_total[{ ]/ && /route="assets"/ {s += $NF} END {print s + 0}'
}

run_hits() {
    local rep name servers order origin0 origin1
    read -ra servers <<<"$SERVERS"
    origin0=$(origin_requests)
    for rep in $(seq "$REPS"); do
        # Rotate the starting server each repetition so no one always goes first.
        wait_quiet "hits$rep"
        order=("${servers[@]:$(( (rep - 1) % ${#servers[@]} ))}" "${servers[@]:0:$(( (rep - 1) % ${#servers[@]} ))}")
        for name in "${order[@]}"; do measure 1k "$name" "$rep" "${HTTP[$name]}/assets/1k.bin"; done
        for name in "${order[@]}"; do measure 100k "$name" "$rep" "${HTTP[$name]}/assets/100k.bin"; done
        measure tls_1k edge "$rep" "https://127.0.0.1:$EDGE_HTTPS/assets/1k.bin"
        if [ -n "${PID[nginx]:-}" ]; then
            measure tls_1k nginx "$rep" "https://127.0.0.1:$NGINX_HTTPS/assets/1k.bin"
        fi
    done
    origin1=$(origin_requests)
    log "origin asset requests during the hit runs: $((origin1 - origin0)) (0 = every request was a cache hit)"
    ORIGIN_DURING_HITS=$((origin1 - origin0))
}

run_misses() {
    local rep name servers
    read -ra servers <<<"$SERVERS"
    for rep in $(seq "$MISS_REPS"); do
        wait_quiet "miss$rep"
        for name in "${servers[@]}"; do
            UNIQ_PREFIX="miss$rep" CONNS=$MISS_CONNS measure miss_1k "$name" "$rep" "${HTTP[$name]}/assets/1k.bin" \
                -s "$TPL/unique.lua"
        done
        # To the HTTPS origin: the site for Host tls.bench (edge-node and nginx).
        for name in edge nginx; do
            [ -n "${PID[$name]:-}" ] || continue
            UNIQ_PREFIX="tls$rep" CONNS=$MISS_CONNS measure miss_tls "$name" "$rep" "${HTTP[$name]}/assets/1k.bin" \
                -s "$TPL/unique.lua" -H 'Host: tls.bench'
        done
    done
}

# Memory per cached object: RSS before/after storing MEM_OBJECTS distinct
# cache keys (one 1 KiB asset, distinct query strings). Misses are slow (the
# origin takes ~40 ms per request per connection), so use many connections,
# in 3 s wrk runs that resume where the last stopped, for at most 240 s.
run_memory() {
    local name=$1 before after start=0 got stored t0=$SECONDS conns=256
    before=$(rss_kib "$name")
    while (( start < MEM_OBJECTS && SECONDS - t0 < 240 )); do
        got=$(UNIQ_PREFIX=obj UNIQ_START=$start WARM_N=$MEM_OBJECTS \
            wrk -t1 -c$conns -d3s -s "$TPL/unique.lua" "${HTTP[$name]}/assets/1k.bin" \
            | awk '/^uniq_counter/ {print $2}')
        # Requests still in flight when wrk stopped may not have been stored.
        start=$(( got - conns > start ? got - conns : got ))
    done
    stored=$(( start < MEM_OBJECTS ? start : MEM_OBJECTS ))
    (( stored == MEM_OBJECTS )) || log "memory $name: only $stored of $MEM_OBJECTS objects warmed in 240 s"
    sleep 1  # let asynchronous cache inserts settle before reading RSS
    after=$(rss_kib "$name")
    python3 -c "print(f'$name\t$stored\t$before\t$after\t{($after - $before) * 1024 / max($stored, 1):.0f}')" >>"$WORK/memory.tsv"
    log "memory $name: RSS ${before} KiB -> ${after} KiB over $stored objects = $(( (after - before) * 1024 / (stored > 0 ? stored : 1) )) B/object"
}

# --- main ---------------------------------------------------------------------
main() {
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    install_deps
    check_ports
    build
    make_cert
    log "work dir $WORK; REPS=$REPS DURATION=$DURATION CONNS=$CONNS THREADS=$THREADS; $(nproc) cores"
    printf '# test\tserver\trep\treq_per_s\tp99_ms\tcpu_us_per_req\terrors\n' >"$RESULTS"

    start_origin
    local name
    for name in $SERVERS; do
        case $name in
            edge) start_edge ;; nginx) start_nginx ;; varnish) start_varnish ;; ats) start_ats ;;
            *) die "unknown server $name" ;;
        esac
        log "$name up"
    done
    [ -n "${PID[edge]:-}" ] || die "SERVERS must include edge"

    for name in $SERVERS; do
        warm "${HTTP[$name]}/assets/1k.bin"
        warm "${HTTP[$name]}/assets/100k.bin"
    done
    warm "https://127.0.0.1:$EDGE_HTTPS/assets/1k.bin" -k
    if [ -n "${PID[nginx]:-}" ]; then warm "https://127.0.0.1:$NGINX_HTTPS/assets/1k.bin" -k; fi
    # The HTTPS origin answers through both proxies (a wrong setup fails here).
    for name in edge nginx; do
        [ -n "${PID[$name]:-}" ] || continue
        curl -fsS -o /dev/null -H 'Host: tls.bench' "${HTTP[$name]}/assets/1k.bin?check" \
            || die "$name cannot fetch from the HTTPS origin"
    done
    log "warmed; measuring hits"
    run_hits

    log "measuring memory per cached 1 KiB object ($MEM_OBJECTS objects)"
    printf '# server\tobjects\trss_before_kib\trss_after_kib\tbytes_per_object\n' >"$WORK/memory.tsv"
    for name in $SERVERS; do
        [ "$name" = nginx ] && continue  # nginx caches on disk (page cache), not in its RSS
        run_memory "$name"
    done

    log "measuring miss cost (unique URL per request)"
    run_misses

    echo
    echo "== cache_hit.sh on $(date) — $(nproc) cores; wrk -t$THREADS -c$CONNS -d$DURATION --latency; REPS=$REPS (misses: $MISS_REPS runs at -c$MISS_CONNS); medians =="
    echo "machine CPU busy (all cores, before each repetition, after waiting up to ${QUIET_WAIT}s for <=${QUIET_BUSY}%): $(cat "$WORK/quiet.log")"
    echo "origin asset requests during the hit runs: ${ORIGIN_DURING_HITS} (0 = all hits)"
    echo
    echo "== memory per cached 1 KiB object (RSS delta / objects stored; target $MEM_OBJECTS) =="
    column -t -s $'\t' "$WORK/memory.tsv"
    echo
    cp "$RESULTS" /tmp/waypost-bench-last-results.tsv
    echo "== per-run rows: /tmp/waypost-bench-last-results.tsv; medians: =="
    $STATS summary "$RESULTS" "$WORK/memory.tsv"
}

main "$@"
