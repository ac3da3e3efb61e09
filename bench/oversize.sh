#!/usr/bin/env bash
# The --oversize table of docs/agent.md ("Oversize frames", measured): bulk
# TCP through a pod namespace whose veth hands libpcap GSO/GRO super-frames,
# captured by tcpdump -s 0 (the reference) and by bpc-agent in each mode; the
# TCP payload bytes the collector received against those tcpdump saw.
#
#   sudo bench/oversize.sh [BIN_DIR]     # default target/release; about 15 s
#
#   peer ns 198.19.200.2 ==veth== 198.19.200.1 pod ns (tcpdump, bpc-agent)
#                                 198.19.201.1 ==veth== 198.19.201.2 collector ns (bpc-sim receive)
#
# Needs root, iproute2, iperf3, tcpdump, tshark, curl. OVERSIZE_MBPS (40) and
# OVERSIZE_SECONDS (2) set the iperf3 --bidir rate per direction and length.
# A benchmark, not a test: the checks are agent/tests/oversize.rs.
set -euo pipefail

BIN=${1:-target/release}
MBPS=${OVERSIZE_MBPS:-40}
LENGTH=${OVERSIZE_SECONDS:-2}
P=bo$$
PEER=${P}peer POD=${P}pod COL=${P}col
WORK=$(mktemp -d)

cleanup() {
  local pid
  for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "$PEER" "$POD" "$COL"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# link NS_A IF_A IP_A NS_B IF_B IP_B: a veth pair with /24 addresses, up.
link() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  in_ns "$1" ip addr add "$3/24" dev "$2"
  in_ns "$4" ip addr add "$6/24" dev "$5"
  in_ns "$1" ip link set "$2" up
  in_ns "$4" ip link set "$5" up
}

# stop SIGNAL PID: signals a background job and waits for it to exit.
stop() {
  kill -"$1" "$2" 2>/dev/null || true
  wait "$2" || true
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s.
wait_until() {
  local tries=$(($1 * 10))
  shift
  until "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    ((tries > 0)) || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

# frames FILE: "count super_frames largest" of the TCP frames in a pcap.
frames() {
  tshark -r "$1" -Y tcp -T fields -e frame.cap_len 2>/dev/null |
    awk '{ n++; if ($1 > 1514) s++; if ($1 > m) m = $1 } END { print n + 0, s + 0, m + 0 }'
}

# payload FILE: TCP payload bytes the frames carry (a cut frame: what is left of it).
payload() {
  tshark -r "$1" -Y tcp -T fields -e frame.cap_len -e ip.hdr_len -e tcp.hdr_len -e tcp.len 2>/dev/null |
    awk '{ c = $1 - 14 - $2 - $3; n = ($4 < c) ? $4 : c; if (n > 0) s += n } END { print s + 0 }'
}

for ns in "$PEER" "$POD" "$COL"; do
  ip netns add "$ns"
  in_ns "$ns" ip link set lo up
done
link "$POD" "${P}p" 198.19.200.1 "$PEER" "${P}q" 198.19.200.2
link "$POD" "${P}c" 198.19.201.1 "$COL" "${P}k" 198.19.201.2

# shellcheck disable=SC2016 # the backquotes are Markdown
printf '| `--oversize` | TCP payload delivered / seen by tcpdump | frames captured (of which > 1514 B), largest | frames sent, largest |\n'
printf '|---|---|---|---|\n'
for mode in segment fragment truncate; do
  # ip netns exec runs the program in its own process: $! is the program's pid.
  ip netns exec "$POD" tcpdump -i "${P}p" -s 0 -U --immediate-mode -n -B 32768 -w "$WORK/pod.pcap" tcp \
    2>"$WORK/tcpdump.log" &
  tcpdump_pid=$!
  ip netns exec "$COL" "$BIN/bpc-sim" receive --quiet --write "$WORK/col.pcap" >/dev/null 2>&1 &
  receiver_pid=$!
  ip netns exec "$POD" "$BIN/bpc-agent" --collector 198.19.201.2 --interface "${P}p" --filter "tcp or icmp" \
    --oversize "$mode" --metrics-addr 127.0.0.1:9469 2>"$WORK/agent.log" &
  agent_pid=$!
  wait_until 10 in_ns "$POD" curl -sf http://127.0.0.1:9469/healthz
  wait_until 5 grep -q "listening on" "$WORK/tcpdump.log"
  ip netns exec "$PEER" iperf3 -s -1 -B 198.19.200.2 -p 5201 >/dev/null &
  # shellcheck disable=SC2016 # expanded by the inner sh
  wait_until 5 in_ns "$PEER" sh -c '[ -n "$(ss -Hltn "sport = :5201")" ]'
  in_ns "$POD" iperf3 -c 198.19.200.2 -p 5201 --bidir -b "${MBPS}M" -t "$LENGTH" >/dev/null
  # The last frames through, then capture, agent and receiver stop cleanly.
  sleep 0.5
  stop INT "$tcpdump_pid"
  stop TERM "$agent_pid"
  sleep 0.3
  stop INT "$receiver_pid"

  seen=$(payload "$WORK/pod.pcap")
  delivered=$(payload "$WORK/col.pcap")
  read -r n_seen super largest_seen < <(frames "$WORK/pod.pcap")
  read -r n_sent _ largest_sent < <(frames "$WORK/col.pcap")
  # shellcheck disable=SC2016
  printf '| `%s` | %s / %s = **%s %%** | %s (%s), largest %s B | %s, %s B |\n' "$mode" "$delivered" "$seen" \
    "$(awk -v d="$delivered" -v s="$seen" 'BEGIN { printf "%.2f", s ? 100 * d / s : 0 }')" \
    "$n_seen" "$super" "$largest_seen" "$n_sent" "$largest_sent"
  grep -q "^0 packets dropped by kernel" "$WORK/tcpdump.log" ||
    echo "  (tcpdump dropped packets: $(tr '\n' ';' <"$WORK/tcpdump.log"))"
done
