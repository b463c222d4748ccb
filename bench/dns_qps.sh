#!/usr/bin/env bash
# DNS benchmark: Waypost geodns vs gdnsd (geoip plugin), same database
# (GeoLite2-City 2018 from PyPI's maxminddb-geolite2), same regions.
#
#   bench/dns_qps.sh              # from anywhere
#
# dnsperf (one thread: it takes one of the two cores) runs, alternating the
# servers, against
#   geo      cdn.waypost.test A with a different ECS /24 in every query
#            (dnsperf -B raw queries; -E would send one ECS for all)
#   static   static.waypost.test A
#   aaaa     cdn.waypost.test AAAA, the same ECS /24s
#   tcp      static.waypost.test A over TCP (dnsperf -m tcp, 8 connections)
# and the script reads each server's CPU time (utime+stime) from /proc, so it
# reports QPS, queries per server CPU-second and server CPU microseconds per
# query (QPS alone understates a server that is faster than dnsperf can
# drive it). Both servers run their default UDP threads (one per core).
#
# Ends with one line, ours / peer (above 1 means geodns does better):
#   ratio gdnsd_geo_qps=… gdnsd_geo_per_cpu=… gdnsd_static_qps=… gdnsd_static_per_cpu=… gdnsd_aaaa_… gdnsd_tcp_…
#
# Each row runs REPS times (servers alternating every run) and the median of
# each figure is reported (every run is printed too), since a shared machine
# makes single runs swing by ±20%.
#
# Knobs (environment): DURATION=10 QUERIES=200000 REPS=3 PORT_BASE=19000 SKIP_BUILD=0 KEEP_WORK=0
# ROWS="geo static aaaa tcp" (a subset for a quick comparison)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TPL=$HERE/dns_qps
DURATION=${DURATION:-10}
REPS=${REPS:-3}
QUERIES=${QUERIES:-200000}
PORT_BASE=${PORT_BASE:-19000}
GEODNS_PORT=$((PORT_BASE + 53))
GDNSD_PORT=$((PORT_BASE + 54))
CLK_TCK=$(getconf CLK_TCK)

for tool in dnsperf gdnsd dig python3 pip; do
  command -v "$tool" >/dev/null || { echo "dns_qps: $tool not found (apt-get install dnsperf gdnsd dnsutils)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/dns_qps.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

# Another benchmark on this machine would disturb the figures.
while pgrep -x wrk >/dev/null || pgrep -x dnsperf >/dev/null; do
  echo "waiting for another benchmark (wrk/dnsperf) to finish…" >&2
  sleep 10
done

echo "== database: GeoLite2-City (maxminddb-geolite2 from PyPI, CC BY-SA 3.0)"
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/waypost-bench
DB=$CACHE/GeoLite2-City.mmdb
if [ ! -f "$DB" ]; then
  mkdir -p "$CACHE"
  pip download --quiet --no-deps --no-binary :all: -d "$CACHE" maxminddb-geolite2==2018.703
  tar -xzf "$CACHE"/maxminddb-geolite2-2018.703.tar.gz -C "$CACHE" --wildcards '*/GeoLite2-City.mmdb'
  mv "$CACHE"/maxminddb-geolite2-2018.703/_maxminddb_geolite2/GeoLite2-City.mmdb "$DB"
fi

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "== build (release)"
  (cd "$ROOT" && nice -n 5 cargo build --release -q -p geodns)
fi
GEODNS_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/geodns

echo "== queries: $QUERIES distinct ECS /24s"
python3 "$TPL/make_queries.py" "$WORK" "$QUERIES"

# geodns
sed -e "s|@PORT@|$GEODNS_PORT|" -e "s|@DB@|$DB|" "$TPL/geodns.toml.tmpl" > "$WORK/geodns.toml"
"$GEODNS_BIN" --config "$WORK/geodns.toml" > "$WORK/geodns.out" 2> "$WORK/geodns.log" &
PIDS+=($!); GEODNS_PID=$!

# gdnsd
mkdir -p "$WORK/gdnsd/zones" "$WORK/gdnsd/geoip"
sed -e "s|@PORT@|$GDNSD_PORT|" "$TPL/gdnsd.config.tmpl" > "$WORK/gdnsd/config"
cp "$TPL/waypost.test.zone" "$WORK/gdnsd/zones/waypost.test"
ln -s "$DB" "$WORK/gdnsd/geoip/GeoLite2-City.mmdb"
gdnsd -c "$WORK/gdnsd" start > "$WORK/gdnsd.log" 2>&1 &
PIDS+=($!); GDNSD_PID=$!

# Ready when a geo query answers (both load the database first).
wait_ready() {
  local port=$1 pid=$2 name=$3
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || { echo "$name exited:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
    if dig @127.0.0.1 -p "$port" +tries=1 +time=1 +short cdn.waypost.test A | grep -q '^127\.'; then return; fi
    sleep 0.2
  done
  echo "$name never answered" >&2; exit 1
}
wait_ready "$GEODNS_PORT" "$GEODNS_PID" geodns
wait_ready "$GDNSD_PORT" "$GDNSD_PID" gdnsd

# The two must agree on where clients go: compare a few ECS answers.
for subnet in 81.2.69.0/24 216.160.83.0/24 1.0.16.0/24 200.1.2.0/24 41.0.0.0/24; do
  ours=$(dig @127.0.0.1 -p "$GEODNS_PORT" +short +subnet=$subnet cdn.waypost.test A)
  theirs=$(dig @127.0.0.1 -p "$GDNSD_PORT" +short +subnet=$subnet cdn.waypost.test A)
  echo "   $subnet: geodns $ours, gdnsd $theirs"
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run PORT PID dnsperf-args...; prints "qps per_cpu us_per_query"
run() {
  local port=$1 pid=$2; shift 2
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(dnsperf -s 127.0.0.1 -p "$port" -T 1 -q 200 -l "$DURATION" "$@" 2>&1)
  after=$(cpu_ticks "$pid")
  local completed qps
  completed=$(echo "$out" | awk '/Queries completed:/ {print $3}')
  qps=$(echo "$out" | awk '/Queries per second:/ {print $4}')
  python3 - "$completed" "$qps" "$before" "$after" "$CLK_TCK" <<'PY'
import sys
completed, qps, before, after, tck = map(float, sys.argv[1:])
cpu = (after - before) / tck
per_cpu = completed / cpu if cpu else 0
print(f"{qps:.0f} {per_cpu:.0f} {1e6 / per_cpu if per_cpu else 0:.2f}")
PY
}

read -r -a ROWS <<< "${ROWS:-geo static aaaa tcp}"
args_of() {
  case $1 in
    geo) echo "-c 1 -B -d $WORK/geo.bin" ;;
    static) echo "-c 1 -d $WORK/static.txt" ;;
    aaaa) echo "-c 1 -B -d $WORK/geo_aaaa.bin" ;;
    tcp) echo "-c 8 -m tcp -d $WORK/static.txt" ;;
  esac
}

# median_of: "qps per_cpu us" lines in, the median of each column out.
median_of() {
  python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
q, c, u = (statistics.median(col) for col in zip(*rows))
print(f"{q:.0f} {c:.0f} {u:.2f}")'
}

echo "== dnsperf, ${DURATION}s each, alternating, $REPS runs per row"
declare -A QPS PER_CPU US RUNS
for row in "${ROWS[@]}"; do
  for _ in $(seq 1 "$REPS"); do
    # shellcheck disable=SC2046 # the arguments are meant to split
    RUNS[geodns_$row]+="$(run "$GEODNS_PORT" "$GEODNS_PID" $(args_of "$row"))"$'\n'
    # shellcheck disable=SC2046
    RUNS[gdnsd_$row]+="$(run "$GDNSD_PORT" "$GDNSD_PID" $(args_of "$row"))"$'\n'
  done
  for server in geodns gdnsd; do
    read -r QPS[${server}_$row] PER_CPU[${server}_$row] US[${server}_$row] \
      < <(printf '%s' "${RUNS[${server}_$row]}" | median_of)
    echo "   $server $row runs (qps per_cpu us): $(printf '%s' "${RUNS[${server}_$row]}" | tr '\n' ';')"
  done
done

printf '%-8s %-7s %12s %20s %14s\n' server name QPS "queries/CPU-second" "CPU µs/query"
for row in "${ROWS[@]}"; do
  for server in geodns gdnsd; do
    printf '%-8s %-7s %12s %20s %14s\n' "$server" "$row" "${QPS[${server}_$row]}" "${PER_CPU[${server}_$row]}" "${US[${server}_$row]}"
  done
done

ratio() { python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'{a / b:.2f}' if b else 'nan')" "$1" "$2"; }
line="ratio"
for row in "${ROWS[@]}"; do
  line+=" gdnsd_${row}_qps=$(ratio "${QPS[geodns_$row]}" "${QPS[gdnsd_$row]}")"
  line+=" gdnsd_${row}_per_cpu=$(ratio "${PER_CPU[geodns_$row]}" "${PER_CPU[gdnsd_$row]}")"
done
echo "$line"
