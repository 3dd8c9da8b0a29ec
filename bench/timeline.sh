#!/usr/bin/env bash
# Device-timeline benchmark: what one `run` of the timeline source costs
# against an emulator that behaves like the service at scale. The config
# allows the portal's highest client rate (portal.rate_per_second: 100):
# the benchmark measures the harvester, not the default politeness limit
# (5 requests/s, i.e. 5,000 events/s at 1,000 events a page). Per scenario
# it starts `simulate` in its own process (not counted) with the scenario's
# devices, events per device (--timeline-events, over --timeline-history
# HISTORY) and page latency (--page-latency), writes a config for one run
# of the timeline source with the devices given by id, runs
#   defenderharvester run --sources timeline --outputs files --lookback HISTORY
# under /usr/bin/time -v and prints wall, CPU (user+sys), peak RSS, events
# delivered and events/s (delivered / wall), plus the emulator's own peak
# RSS (VmHWM). Scenarios:
#   a  one device, EVENTS events, no page latency (CPU-bound)
#   b  one device, EVENTS events, LATENCY per page
#   c  DEVICES_C devices × EVENTS_C events, LATENCY per page
#   d  one device, EVENTS_D events over HISTORY_D, no page latency (memory
#      stays flat whatever the number of events; not run by default)
# The delivered count is a little under the nominal total: the emulator's
# hourly counts vary around EVENTS / hours and the run's window ends
# `delay` (10m) before now and starts HISTORY before now.
#
#   bench/timeline.sh                                   # full scale (1 M events; b takes ~5 min)
#   EVENTS=100000 EVENTS_C=5000 bench/timeline.sh       # quick run
#   SCENARIOS="a" EVENTS=1000000 bench/timeline.sh      # one scenario
# Tools: go, curl, jq, awk, sed, /usr/bin/time (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-1000000}   # events per device in a and b
DEVICES_C=${DEVICES_C:-20}
EVENTS_C=${EVENTS_C:-50000} # events per device in c
LATENCY=${LATENCY:-300ms}
HISTORY=${HISTORY:-7d}      # timeline history of the emulator = the run's --lookback
EVENTS_D=${EVENTS_D:-4000000}
HISTORY_D=${HISTORY_D:-28d}  # the emulator makes at most 6,000 events per device-hour
SCENARIOS=${SCENARIOS:-a b c}
SEED=${SEED:-1}

tmp=$(mktemp -d)
sim_pid=""
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
go build -o "$tmp/dh" ./cmd/defenderharvester

echo "machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ); history $HISTORY"
printf '%-3s %-28s %9s %9s %9s %10s %10s %9s\n' "" "scenario" "wall s" "CPU s" "RSS MB" "events" "events/s" "sim MB"

# scenario NAME DEVICES EVENTS_PER_DEVICE PAGE_LATENCY [HISTORY]
scenario() {
  local name=$1 devices=$2 events=$3 lat=$4 history=${5:-$HISTORY} dir="$tmp/$1"
  mkdir -p "$dir"
  "$tmp/dh" simulate --listen 127.0.0.1:0 --seed "$SEED" --machines "$devices" --timeline-events "$events" \
    --timeline-history "$history" --page-latency "$lat" \
    --ca-out "$dir/ca.pem" --write-config "$dir/sim.yaml" >"$dir/info.json" 2>"$dir/sim.err" &
  sim_pid=$!
  for _ in $(seq 1 100); do [ -s "$dir/info.json" ] && break; sleep 0.1; done
  [ -s "$dir/info.json" ] || { cat "$dir/sim.err" >&2; exit 1; }
  local port xsrf ids
  port=$(jq -r .address "$dir/info.json" | sed 's/.*://')
  xsrf=$(jq -r .xsrf_token "$dir/info.json")
  # The devices by id, from the portal's device list.
  ids=$(curl -fsS --cacert "$dir/ca.pem" --resolve "security.microsoft.com:$port:127.0.0.1" \
    -H "Cookie: $(cat "$dir/sim.yaml.cookie")" -H "X-XSRF-TOKEN: $xsrf" \
    "https://security.microsoft.com:$port/apiproxy/mtp/ndr/machines?pageIndex=1&pageSize=1000" |
    jq -r '[.[].SenseMachineId] | join(", ")')
  sed -i -e "s#machines: \[all\]#machines: [$ids]#" \
    -e "s#state_file: \"sim-state.db\"#state_file: \"$dir/state.db\"#" \
    -e "s#dir: \"sim-out\"#dir: \"$dir/out\"#" -e "s#rate_per_second: 50#rate_per_second: 100#" "$dir/sim.yaml"
  /usr/bin/time -v -o "$dir/time.txt" "$tmp/dh" run --config "$dir/sim.yaml" --sources timeline --outputs files \
    --lookback "$history" --progress off ${RUN_ARGS:-} >"$dir/summary.txt" 2>"$dir/run.err" || {
    echo "scenario $name: run failed" >&2; cat "$dir/summary.txt" "$dir/run.err" >&2; exit 1; }
  local simrss delivered
  simrss=$(awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$sim_pid/status")
  kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=""
  delivered=$(awk '$1 == "timeline" { print $9 }' "$dir/summary.txt")
  awk -F': ' -v n="$name" -v what="$devices dev × $events, $lat/page" -v ev="$delivered" -v simrss="$simrss" '
    /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident/ { rss = $2 / 1024 }
    /Elapsed \(wall clock\)/ { k = split($2, p, ":"); w = 0; for (i = 1; i <= k; i++) w = w * 60 + p[i] }
    END { printf "%-3s %-28s %9.1f %9.1f %9.0f %10d %10.0f %9s\n", n, what, w, u + s, rss, ev, ev / w, simrss }' "$dir/time.txt"
  rm -rf "$dir/out"
}

for s in $SCENARIOS; do
  case $s in
  a) scenario a 1 "$EVENTS" 0s ;;
  b) scenario b 1 "$EVENTS" "$LATENCY" ;;
  c) scenario c "$DEVICES_C" "$EVENTS_C" "$LATENCY" ;;
  d) scenario d 1 "$EVENTS_D" 0s "$HISTORY_D" ;;
  *) echo "unknown scenario $s (use a, b, c, d)" >&2; exit 2 ;;
  esac
done
