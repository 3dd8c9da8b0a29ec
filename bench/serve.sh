#!/usr/bin/env bash
# Sizing figures for `serve`: how much CPU, memory and disk one replica
# spends per tenant. It starts the emulator with N tenants (a separate
# process, not counted), points `serve` at it with every source on a fast
# schedule (FAST, default 1m: each tenant runs its 13 sources every minute,
# ~20x the default schedules' rate) and measures, with /proc and
# /usr/bin/time -v only:
#   - the first round (every source's first run: initial_lookback 24h),
#   - the steady state (runs per second, CPU seconds per run),
#   - peak and final RSS, state folder size per tenant.
# CPU per tenant-day at the default schedules is the steady CPU per run
# times the runs a tenant makes a day with them (from the schedules
# `sources` lists). The timeline is left out: its cost grows with the
# machines chosen and is measured by its own benchmark.
#
#   N=50 FIRST=90 STEADY=300 bench/serve.sh        # about 7 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-50}
FIRST=${FIRST:-90}    # seconds given to the first round
STEADY=${STEADY:-300} # seconds of steady state measured after it
FAST=${FAST:-1m}
PORT=${PORT:-19464}

tmp=$(mktemp -d)
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "${sim_pid:-}" ] && kill "$sim_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/dh" ./cmd/defenderharvester

"$tmp/dh" simulate --tenants "$N" --listen 127.0.0.1:0 --ca-out "$tmp/ca.pem" --write-config "$tmp/sim.yaml" >"$tmp/sim.json" 2>"$tmp/sim.err" &
sim_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/sim.yaml" ] && break; sleep 0.1; done
[ -s "$tmp/sim.yaml" ] || { cat "$tmp/sim.err"; exit 1; }

# Every source on the fast schedule (sources: is the file's last block),
# then the service's settings.
export FAST
{
  "$tmp/dh" sources | awk 'NR > 1 && $1 != "timeline" { printf "  %s:\n    schedule: \"%s\"\n", $1, ENVIRON["FAST"] }'
  printf '  timeline:\n    enabled: false\n'
} >"$tmp/schedules.yaml"
# Runs a tenant makes a day at the default schedules (intervals only).
per_day=$("$tmp/dh" sources | awk 'NR > 1 && $1 != "timeline" {
  s = ""; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+[smhd]$/) { s = $i; break }
  n = s + 0; u = substr(s, length(s)); secs = n * (u == "s" ? 1 : u == "m" ? 60 : u == "h" ? 3600 : 86400)
  total += 86400 / secs } END { printf "%d", total }')
sed -i '/^  timeline:$/,$d' "$tmp/sim.yaml"
cat "$tmp/schedules.yaml" >>"$tmp/sim.yaml"
printf 'log_format: json\nlog_level: warn\nserve:\n  listen: 127.0.0.1:%s\n  jitter: 30s\n' "$PORT" >>"$tmp/sim.yaml"

/usr/bin/time -v -o "$tmp/time.txt" "$tmp/dh" serve --config "$tmp/sim.yaml" 2>"$tmp/serve.err" &
time_pid=$!
for _ in $(seq 1 50); do serve_pid=$(pgrep -P "$time_pid" || true); [ -n "$serve_pid" ] && break; sleep 0.1; done

cpu() { awk '{ print ($14 + $15) / 100 }' "/proc/$serve_pid/stat"; } # utime + stime, USER_HZ 100
rss() { awk '/^VmRSS/ { print $2 / 1024 }' "/proc/$serve_pid/status"; }
runs() { curl -fs "127.0.0.1:$PORT/metrics" | awk '/^defenderharvester_source_runs_total/ { s += $NF } END { print s + 0 }'; }
records() { curl -fs "127.0.0.1:$PORT/metrics" | awk '/^defenderharvester_output_records_written_total/ { s += $NF } END { print s + 0 }'; }

sleep "$FIRST"
c1=$(cpu) r1=$(runs) w1=$(records) m1=$(rss)
sleep "$STEADY"
c2=$(cpu) r2=$(runs) w2=$(records) m2=$(rss)
curl -fs "127.0.0.1:$PORT/readyz" >"$tmp/readyz.txt" || true
kill -TERM "$serve_pid"
wait "$time_pid" || true
serve_pid=""
state_kib=$(du -sk "$tmp/tenants" 2>/dev/null | cut -f1)
peak=$(awk -F': ' '/Maximum resident/ { print $2 / 1024 }' "$tmp/time.txt")

echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "tenants: $N, schedule: every source every $FAST, first round ${FIRST}s, steady ${STEADY}s"
awk -v perday="$per_day" -v n="$N" -v c1="$c1" -v c2="$c2" -v r1="$r1" -v r2="$r2" -v w1="$w1" -v w2="$w2" -v m1="$m1" -v m2="$m2" \
    -v steady="$STEADY" -v peak="$peak" -v kib="$state_kib" 'BEGIN {
  printf "first round: %.1f CPU s for %d runs (%.2f CPU s per tenant), %d records written\n", c1, r1, c1 / n, w1
  sr = (r2 - r1); sc = (c2 - c1)
  printf "steady: %d runs in %ds (%.1f runs/s), %.1f CPU s (%.1f%% of one core), %.4f CPU s per run, %d records\n", sr, steady, sr / steady, sc, 100 * sc / steady, (sr ? sc / sr : 0), w2 - w1
  printf "at the default schedules (%d runs per tenant a day): %.1f CPU s per tenant-day\n", perday, (sr ? perday * sc / sr : 0)
  printf "memory: RSS %.0f MiB after the first round, %.0f MiB at the end, peak %.0f MiB (%.2f MiB per tenant)\n", m1, m2, peak, peak / n
  printf "state: %.1f MiB in all, %.0f KiB per tenant\n", kib / 1024, kib / n
}'
echo "readyz at the end: $(head -c 300 "$tmp/readyz.txt")"
