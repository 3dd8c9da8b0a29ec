#!/usr/bin/env bash
# End-to-end delivery benchmark: the emulated tenant and the harvester run as
# separate processes on loopback; the harvester pulls device timelines
# (~1 KB events) and delivers them to one output at a time.
#
#   bench/sinks.sh [MACHINES] [EVENTS_PER_MACHINE_HOUR] [HOURS]
#
# The config allows the portal's highest client rate (rate_per_second:
# 100, as the e2e tests do): at the emulator's default 50 requests/s the
# 1,000-event pages alone cap a run at 50,000 events/s.
#
# Prints, per output, the records delivered, the wall time, events/s and the
# harvester's request statistics (requests, average and largest request
# size). Loopback only; stops the emulator when done. With PROFILE_DIR set,
# each run writes a CPU profile of the harvester to
# $PROFILE_DIR/<output>.pprof (go tool pprof -top <binary> <profile>; the
# binary is copied there too).
set -euo pipefail
cd "$(dirname "$0")/.."
machines=${1:-20}
rate=${2:-1000}
hours=${3:-6}

work=$(mktemp -d)
trap 'kill "${sim_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/dh" ./cmd/defenderharvester
profile() { :; }
if [ -n "${PROFILE_DIR:-}" ]; then
  mkdir -p "$PROFILE_DIR" && PROFILE_DIR=$(cd "$PROFILE_DIR" && pwd) && cp "$work/dh" "$PROFILE_DIR/dh"
  profile() { echo "--cpuprofile" "$PROFILE_DIR/$1.pprof"; }
fi

"$work/dh" simulate --listen 127.0.0.1:0 --machines "$machines" --timeline-rate "$rate" \
  --ca-out "$work/ca.pem" --write-config "$work/sim.yaml" >"$work/info.json" 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 1 100); do [ -s "$work/info.json" ] && break; sleep 0.1; done
[ -s "$work/info.json" ] || { echo "emulator did not start" >&2; cat "$work/sim.log" >&2; exit 1; }

# cpu_ticks PID: user+system CPU of a process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

echo "emulated tenant: $machines devices × $rate timeline events/hour, harvesting the last ${hours}h"
echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3)"
for out in files sentinel splunk; do
  dir="$work/$out"
  mkdir -p "$dir"
  sed -e "s#state_file: \"sim-state.db\"#state_file: \"$dir/state.db\"#" \
      -e "s#dir: \"sim-out\"#dir: \"$dir/out\"#" -e "s#rate_per_second: 50#rate_per_second: 100#" "$work/sim.yaml" >"$dir/config.yaml"
  chmod 600 "$dir/config.yaml"
  sim_cpu0=$(cpu_ticks "$sim_pid")
  start=$(date +%s.%N)
  (cd "$dir" && /usr/bin/time -f "%U %S" -o "$dir/time.txt" "$work/dh" run --config "$dir/config.yaml" --sources timeline --outputs "$out" --lookback "${hours}h" $(profile "$out")) >"$dir/summary.txt" 2>"$dir/log.txt" || {
    echo "run into $out failed:" >&2; cat "$dir/summary.txt" "$dir/log.txt" >&2; exit 1; }
  end=$(date +%s.%N)
  records=$(awk '$1=="timeline"{print $9}' "$dir/summary.txt")
  sim_cpu=$(( $(cpu_ticks "$sim_pid") - sim_cpu0 ))
  read -r u sy <"$dir/time.txt"
  awk -v o="$out" -v r="$records" -v s="$start" -v e="$end" -v hc="$(awk -v u="$u" -v s="$sy" 'BEGIN{print u+s}')" -v sc="$sim_cpu" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { d = e - s; printf "%-9s %8d records in %6.2f s = %8.0f events/s (CPU: harvester %.2f s, emulator %.2f s)\n", o, r, d, r / d, hc, sc / hz }'
  grep '^output ' "$dir/summary.txt" | sed 's/^/          /' || true
done
