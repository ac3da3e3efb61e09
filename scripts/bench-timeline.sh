#!/usr/bin/env bash
# The timeline benchmark (scripts/bench.sh section "timeline"; issue 26): how
# far the response times an analyser measures on the mirror are from the
# truth. In network namespaces (needs root):
#
#   client ──veth── pod ──veth── collector
#   paced HTTP      HTTP server    tcpdump of the GRE arrivals
#   client          + capturer     (+ a raw GRE socket, so no ICMP errors)
#                   + tcpdump (the truth)
#
# The pod answers each HTTP/1.1 request after BENCH_TIMELINE_WORK_US (300) µs
# of work (bench/tools/http_pace.py). tshark computes every response's
# http.time twice: from tcpdump's capture in the pod (the truth) and from the
# GRE packets' arrival times at the collector (what a BPC, Zeek or Wireshark
# at the collector measures: GRE carries no capture time). The error is the
# difference per response; its p50/p99/max are reported per scenario:
#   50/s          requests at ~50 a second for BENCH_TIMELINE_SECONDS (6)
#   2000/s        the same at ~2,000 a second
#   50/s+150kpps  50 a second beside a 150 kpps UDP flow of 64-byte frames
#                 through the same pod interface (bench/tools loadgen)
# for each capturer in BENCH_TIMELINE_AGENTS (default: this tree's bpc-agent;
# NAME=PATH pairs add others, e.g. "before=/tmp/old/bpc-agent"), with its
# default flags. The agent's own /stats forwarding delay is reported beside.
#
# Usage: scripts/bench-timeline.sh [OUT.json]   (default bench/results-timeline.json,
# and the Markdown table beside it); BENCH_AGENT, BENCH_LOADGEN prebuilt binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-bench/results-timeline.json}
SECONDS_PER_RUN=${BENCH_TIMELINE_SECONDS:-6}
WORK_US=${BENCH_TIMELINE_WORK_US:-300}
SCENARIOS=${BENCH_TIMELINE_SCENARIOS:-50 2000 50+150k}

if [[ $(id -u) -ne 0 ]]; then
  echo "bench-timeline.sh: needs root (network namespaces, raw sockets)" >&2
  exit 2
fi
for tool in ip tcpdump tshark jq curl python3; do
  command -v "$tool" >/dev/null || { echo "bench-timeline.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 2; }
done

AT=${CARGO_TARGET_DIR:-$PWD/target}
BT=${CARGO_TARGET_DIR_BENCH:-$PWD/bench/tools/target}
[[ -n ${BENCH_AGENT:-} ]] || CARGO_TARGET_DIR=$AT cargo build --release -q -p bpc-agent
[[ -n ${BENCH_LOADGEN:-} ]] || CARGO_TARGET_DIR=$BT cargo build --release -q --manifest-path bench/tools/Cargo.toml
AGENTS=${BENCH_TIMELINE_AGENTS:-bpc-agent=${BENCH_AGENT:-$AT/release/bpc-agent}}
LOADGEN=${BENCH_LOADGEN:-$BT/release/loadgen}
# The machine's floor under the prompt path's delay: how long a sleeping
# thread takes to run again when woken from its own CPU and from the other.
WAKE_LATENCY=${BENCH_WAKE_LATENCY:-$BT/release/wake-latency}
PACE=bench/tools/http_pace.py

# The client is the topology's generator namespace G, the collector C.
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_topology bpc-timeline "bt$$" 198.18.130 198.18.131
# The background flow reaches the pod's MAC but no IP of the pod.
POD_MAC=$(ip -n "$P" -j link show "$PIF" | jq -r '.[0].address')
ip -n "$G" neigh add "$TARGET_IP" lladdr "$POD_MAC" dev "$GIF" nud permanent

ip netns exec "$P" python3 "$PACE" serve "$POD_IP" 8080 "$WORK_US" &
PIDS+=($!)
# A raw GRE socket in the collector: the host does not answer our packets
# with ICMP protocol-unreachable.
ip netns exec "$C" python3 -c 'import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47); time.sleep(1e9)' &
PIDS+=($!)
sleep 0.5

agent_stats() { ip netns exec "$P" curl -sf --max-time 2 127.0.0.1:9469/stats; }

run() {
  local name=$1 agent=$2 scenario=$3 rate=${3%%+*} apid tpid kpid lpid reached result stats
  ip netns exec "$P" tcpdump -i "$PIF" -B 16384 -s 0 -w "$TMP/truth.pcap" "tcp port 8080" 2>/dev/null &
  tpid=$!
  ip netns exec "$C" tcpdump -i "$CIF" -B 16384 -s 0 -w "$TMP/col.pcap" "ip proto 47" 2>/dev/null &
  kpid=$!
  PIDS+=("$tpid" "$kpid")
  ip netns exec "$P" "$agent" --collector "$COL_IP" --interface "$PIF" --filter "tcp port 8080 or udp" \
    --metrics-addr 127.0.0.1:9469 2>"$TMP/agent.log" &
  apid=$!
  PIDS+=("$apid")
  for _ in $(seq 50); do agent_stats >/dev/null 2>&1 && break; sleep 0.1; done
  lpid=
  if [[ $scenario == *+150k ]]; then
    ip netns exec "$G" "$LOADGEN" --to "$TARGET_IP" --size 64 --pps 150000 --seconds 3600 >/dev/null &
    lpid=$!
    PIDS+=("$lpid")
  fi
  sleep 1
  reached=$(ip netns exec "$G" python3 "$PACE" pace "$POD_IP" 8080 "$rate" "$((rate * SECONDS_PER_RUN))")
  sleep 0.5
  stats=$(agent_stats || echo '{}')
  [[ -z $lpid ]] || kill "$lpid" 2>/dev/null || true
  kill -TERM "$apid" 2>/dev/null || true
  wait "$apid" 2>/dev/null || true
  sleep 0.3
  kill -INT "$tpid" "$kpid" 2>/dev/null || true
  wait "$tpid" "$kpid" 2>/dev/null || true
  result=$(python3 "$PACE" analyse "$TMP/truth.pcap" "$TMP/col.pcap")
  jq -cn --arg capturer "$name" --arg scenario "$scenario" --argjson rate "$reached" \
    --argjson result "$result" \
    --argjson agent "$(jq -c '{path: .capture.forwarding_delay.path, forwarding_delay: .capture.forwarding_delay, kernel_drops: .capture.kernel_drops}' <<< "$stats")" \
    '$ARGS.named' | tee -a "$RUNS" >&2
}

WAKE='[]'
if [[ -x $WAKE_LATENCY ]]; then
  WAKE=$("$WAKE_LATENCY" 400 | jq -sc .)
  echo "bench-timeline: thread wake-up on this machine: $WAKE" >&2
fi

for pair in $AGENTS; do
  for scenario in $SCENARIOS; do
    echo "bench-timeline: ${pair%%=*}, $scenario" >&2
    run "${pair%%=*}" "${pair#*=}" "$scenario"
  done
done

jq -s --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" --argjson work_us "$WORK_US" \
  --argjson seconds "$SECONDS_PER_RUN" --argjson wake "$WAKE" \
  '{date: $date, kernel: $kernel, work_us: $work_us, seconds_per_run: $seconds, wake_latency: $wake, runs: .}' \
  "$RUNS" > "$OUT"
{
  echo "| capturer | scenario | req/s reached | true RT p50 | error p50 | error p99 | error max | agent's delay p50 / p99 (/stats) | path |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
  jq -r '.runs[] | "| \(.capturer) | \(.scenario) | \(.rate) | \(.result.true_rt_p50_us) µs | **\(.result.error_p50_us) µs** | **\(.result.error_p99_us) µs** | \(.result.error_max_us) µs | \(.agent.forwarding_delay.p50_us // "-") / \(.agent.forwarding_delay.p99_us // "-") µs | \(.agent.path // "-") |"' "$OUT"
  jq -r '.wake_latency[] | "", "Thread wake-up on this machine (`bench/tools` wake-latency, \(.rounds) rounds), \(.wake): p50 \(.p50_us) µs, p90 \(.p90_us) µs, p99 \(.p99_us) µs, max \(.max_us) µs."' "$OUT"
} > "${OUT%.json}.md"
cat "${OUT%.json}.md"
