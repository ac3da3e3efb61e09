#!/usr/bin/env bash
# End-to-end scenario without a cluster: pods are network namespaces
# (scripts/netns-pod.sh), each with an app server, tcpdump as the reference
# and a bpc-agent sidecar; a collector namespace runs `bpc-sim receive`.
#
#   1. two pods of shop/deployment/web and one of shop/statefulset/db;
#      a client makes HTTP requests to all three;
#   2. "pod restart": web-a's agent is killed and its namespace deleted; a
#      new pod web-c (new IP, fresh agent) takes its place; more traffic;
#   3. the receiver's --expect asserts, per workload, packets == what
#      tcpdump saw in that workload's pods, and zero loss; the report must
#      show web's stream from the new pod under the same workload key.
#
# Usage: scripts/e2e-netns.sh [BIN_DIR]   (default target/debug; built if missing)
# Exit 0 when every check passes. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/netns-pod.sh
source scripts/netns-pod.sh

bin=${1:-target/debug}
if [[ ! -x $bin/bpc-agent || ! -x $bin/bpc-sim ]]; then
  cargo build -p bpc-agent -p bpc-sim
fi
bin=$(realpath "$bin")
cluster="e2e$$"
prefix=${BPC_E2E_PREFIX:-198.18.101}
work=$(mktemp -d)
passed=0 failed=0

cleanup() {
  bpc_ns_down "$cluster"
  rm -rf "$work"
}
trap cleanup EXIT

check() { # check NAME CONDITION-EXIT-CODE
  if [[ $2 -eq 0 ]]; then echo "ok   - $1"; passed=$((passed + 1)); else echo "FAIL - $1"; failed=$((failed + 1)); fi
}

wait_for_file_text() { # FILE TEXT
  for _ in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

filter="tcp port 8080"

# start_pod NAME IP WORKLOAD: app server, tcpdump reference, agent.
start_pod() {
  local name=$1 ip=$2 workload=$3 ns="$cluster-$1"
  bpc_ns_add_pod "$cluster" "$name" "$ip"
  # Offloads off: tcpdump and the agent must see the very same frames
  # (super-frames are the oversize tests' business, not this one's).
  ip netns exec "$ns" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true
  mkdir -p "$work/$name/www"
  echo "hello from $name" > "$work/$name/www/index.html"
  (cd "$work/$name/www" && exec ip netns exec "$ns" python3 -m http.server 8080 --bind "$ip" >/dev/null 2>&1) &
  ip netns exec "$ns" tcpdump -i eth0 -U -s 0 -w "$work/$name/ref.pcap" "$filter" >"$work/$name/tcpdump.log" 2>&1 &
  echo $! > "$work/$name/tcpdump.pid"
  wait_for_file_text "$work/$name/tcpdump.log" "listening on"
  BPC_WORKLOAD=$workload ip netns exec "$ns" "$bin/bpc-agent" --collector "$prefix.2" --filter "$filter" \
    >"$work/$name/agent.log" 2>&1 &
  echo $! > "$work/$name/agent.pid"
  for _ in $(seq 1 100); do
    ip netns exec "$ns" curl -sf "http://127.0.0.1:9469/healthz" >/dev/null 2>&1 && break
    ip netns exec "$ns" curl -s "http://127.0.0.1:9469/stats" 2>/dev/null | grep -q '"packets"' && break
    sleep 0.1
  done
  # The app server must be up before traffic counts.
  for _ in $(seq 1 100); do
    ip netns exec "$cluster-client" curl -sf -o /dev/null "http://$ip:8080/" && break
    sleep 0.1
  done
}

stop_pod_captures() { # NAME: stop agent (flushes) and tcpdump, keep files
  local name=$1
  kill -TERM "$(cat "$work/$name/agent.pid")" 2>/dev/null || true
  kill -INT "$(cat "$work/$name/tcpdump.pid")" 2>/dev/null || true
  wait "$(cat "$work/$name/agent.pid")" 2>/dev/null || true
  wait "$(cat "$work/$name/tcpdump.pid")" 2>/dev/null || true
}

traffic() { # IP N: N HTTP requests from the client
  local ip=$1 n=$2
  for _ in $(seq 1 "$n"); do
    ip netns exec "$cluster-client" curl -sf -o /dev/null "http://$ip:8080/" || echo "request to $ip failed" >&2
  done
}

count() { tcpdump -r "$work/$1/ref.pcap" 2>/dev/null | wc -l; }

bpc_ns_up "$cluster" "$prefix"
ip netns exec "$cluster-collector" "$bin/bpc-sim" receive --listen "$prefix.2" --quiet -o json \
  --write "$work/received.pcap" >"$work/report.json" 2>"$work/receiver.log" &
receiver=$!
sleep 0.3

start_pod web-a "$prefix.11" shop/deployment/web
start_pod web-b "$prefix.12" shop/deployment/web
start_pod db-a "$prefix.21" shop/statefulset/db
traffic "$prefix.11" 20
traffic "$prefix.12" 15
traffic "$prefix.21" 10

# Pod restart: web-a goes away with its agent; web-c comes up elsewhere.
stop_pod_captures web-a
bpc_ns_del_pod "$cluster" web-a
start_pod web-c "$prefix.13" shop/deployment/web
traffic "$prefix.13" 20
traffic "$prefix.12" 5

for p in web-b db-a web-c; do stop_pod_captures "$p"; done
web=$(( $(count web-a) + $(count web-b) + $(count web-c) ))
db=$(count db-a)
echo "tcpdump saw: web $web frames (web-a $(count web-a), web-b $(count web-b), web-c $(count web-c)), db $db frames"
check "tcpdump saw traffic in every pod" $(( $(count web-a) > 0 && $(count web-b) > 0 && $(count web-c) > 0 && db > 0 ? 0 : 1 ))

kill -INT "$receiver"
set +e
wait "$receiver"
set -e
cat "$work/receiver.log" >&2 || true

# The same report, asserted with --expect from the written pcap-independent JSON.
expect_rc=0
"$bin/bpc-sim" check "$work/report.json" \
  --expect "workload=shop/web packets=$web loss=0" \
  --expect "workload=shop/statefulset/db packets=$db loss=0" >"$work/expect.txt" 2>&1 || expect_rc=$?
cat "$work/expect.txt"
check "receiver counts per workload equal tcpdump's, zero loss" "$expect_rc"

echo "e2e-netns: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
