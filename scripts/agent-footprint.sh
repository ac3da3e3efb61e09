#!/usr/bin/env bash
# Measures bpc-agent's CPU and memory in a "pod" network namespace: idle (one
# ping per second) and under steady streams, 10 s each. Needs root, iproute2,
# iperf3, python3. Usage: scripts/agent-footprint.sh [path/to/bpc-agent]
#
# CPU = (utime + stime) delta from /proc/PID/stat over the phase; memory =
# VmRSS from /proc/PID/status at the end of the phase (VmHWM = peak).
set -euo pipefail
cd "$(dirname "$0")/.."

AGENT=${1:-}
if [[ -z "$AGENT" ]]; then
  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target} cargo build --release -q -p bpc-agent
  AGENT=${CARGO_TARGET_DIR:-target}/release/bpc-agent
fi
SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-10}
ID=fp$$
POD=bpc-pod-$ID CLI=bpc-cli-$ID COL=bpc-col-$ID
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "$POD" "$CLI" "$COL"; do ip netns del "$n" 2>/dev/null || true; done
}
trap cleanup EXIT

for n in "$POD" "$CLI" "$COL"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add "${ID}a" type veth peer name "${ID}b"
ip link set "${ID}a" netns "$POD"; ip link set "${ID}b" netns "$CLI"
ip -n "$POD" addr add 198.18.1.1/24 dev "${ID}a"; ip -n "$CLI" addr add 198.18.1.2/24 dev "${ID}b"
ip link add "${ID}c" type veth peer name "${ID}d"
ip link set "${ID}c" netns "$POD"; ip link set "${ID}d" netns "$COL"
ip -n "$POD" addr add 198.18.2.1/24 dev "${ID}c"; ip -n "$COL" addr add 198.18.2.2/24 dev "${ID}d"
ip -n "$POD" link set "${ID}a" up; ip -n "$CLI" link set "${ID}b" up
ip -n "$POD" link set "${ID}c" up; ip -n "$COL" link set "${ID}d" up
ip -n "$POD" route add default via 198.18.1.2

# A raw GRE socket that never reads: the collector's kernel then drops the
# stream quietly instead of answering "protocol unreachable".
ip netns exec "$COL" python3 -c 'import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_RAW,47); time.sleep(3600)' &
PIDS+=($!)
ip netns exec "$POD" iperf3 -s -B 198.18.1.1 >/dev/null 2>&1 &
PIDS+=($!)

ip netns exec "$POD" "$AGENT" --collector 198.18.2.2 --metrics-addr 127.0.0.1:9469 2>/tmp/bpc-footprint-agent.log &
APID=$!
PIDS+=("$APID")
sleep 1
kill -0 "$APID" || { cat /tmp/bpc-footprint-agent.log; exit 1; }

TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$APID/stat"; }
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$APID/status"; }
stat_json() { ip netns exec "$POD" curl -s 127.0.0.1:9469/stats; }

printf '%-34s %8s %10s %10s %12s %10s\n' phase "CPU %" "RSS KiB" "peak KiB" "captured/s" "drops"
phase() {
  local name=$1; shift
  local t0 p0 t1 p1
  t0=$(ticks); p0=$(stat_json | python3 -c 'import json,sys; print(json.load(sys.stdin)["capture"]["packets"])')
  "$@"
  t1=$(ticks); p1=$(stat_json | python3 -c 'import json,sys; print(json.load(sys.stdin)["capture"]["packets"])')
  local drops
  drops=$(stat_json | python3 -c 'import json,sys; c=json.load(sys.stdin)["capture"]; print(c["kernel_drops"])')
  awk -v n="$name" -v t="$((t1 - t0))" -v k="$TCK" -v s="$SECONDS_PER_PHASE" -v r="$(status VmRSS)" \
      -v h="$(status VmHWM)" -v p="$((p1 - p0))" -v d="$drops" \
      'BEGIN { printf "%-34s %8.2f %10d %10d %12d %10d\n", n, 100 * t / k / s, r, h, p / s, d }'
}

idle() { ip netns exec "$CLI" ping -q -c "$SECONDS_PER_PHASE" -i 1 198.18.1.1 >/dev/null; }
udp_small() { ip netns exec "$CLI" iperf3 -u -c 198.18.1.1 -l 200 -b 32M -t "$SECONDS_PER_PHASE" >/dev/null; }
tcp_bulk() { ip netns exec "$CLI" iperf3 -c 198.18.1.1 -b 200M -t "$SECONDS_PER_PHASE" >/dev/null; }

phase "idle (1 ping/s)" idle
phase "busy: UDP 20k pps x 200 B" udp_small
phase "busy: TCP 200 Mbit/s (segment)" tcp_bulk
echo "agent: $AGENT ($(du -k "$AGENT" | cut -f1) KiB), kernel $(uname -r), $(nproc) CPUs"
