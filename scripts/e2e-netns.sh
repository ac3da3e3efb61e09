#!/usr/bin/env bash
# End-to-end scenario without a cluster: pods are network namespaces
# (scripts/netns-pod.sh), each with an app server, tcpdump as the reference
# and a bpc-agent sidecar; a collector namespace runs `bpc-sim receive`.
#
#   1. two pods of shop/deployment/web and one of shop/statefulset/db; a
#      client makes HTTP requests to all three;
#   2. agent restart in place: db-a's agent is stopped and started again
#      (same pod, same IP): its sequence numbers start again at 0;
#   3. pod replacement: web-a's agent is stopped (SIGTERM, as the kubelet
#      does) and its namespace deleted; a new pod web-c (new IP, fresh
#      agent) takes its place; more traffic;
#   4. `bpc-sim check` asserts on the receiver's JSON report, per workload
#      and per pod, that packets == what tcpdump saw, zero loss, and that
#      both restarts are reported as restarts (web: 3 streams, 1 restarted
#      stream; db: 1 stream, 1 sequence restart), not as losses.
#
# Usage: scripts/e2e-netns.sh [BIN_DIR]   (default target/debug; built if missing)
# Exit 0 when every check passes, 1 when one fails. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/netns-pod.sh
source scripts/netns-pod.sh
# shellcheck source=scripts/e2e-lib.sh
source scripts/e2e-lib.sh
# Unique per run: parallel runs (and other tests) never share a namespace.
e2e_netns_setup e2e-netns "e2e$$" "${1:-}"
prefix=${BPC_E2E_PREFIX:-198.18.101}

wait_for_file_text() { # FILE TEXT
  for _ in $(seq 1 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}

filter="tcp port 8080"

start_agent() { # POD WORKLOAD: the sidecar, once its capture runs (/healthz 200)
  local name=$1 workload=$2
  bpc_ns_agent "$cluster-$name" "$work/$name/agent.log" "$work/$name/agent.pid" \
    env BPC_WORKLOAD="$workload" "$bin/bpc-agent" --collector "$prefix.2" --filter "$filter"
}

stop_agent() { # POD: SIGTERM, as the kubelet does; the agent flushes and exits 0
  local name=$1 rc=0
  kill -TERM "$(cat "$work/$name/agent.pid")"
  wait "$(cat "$work/$name/agent.pid")" || rc=$?
  check "agent of $name exits 0 on SIGTERM" "$rc"
}

start_pod() { # NAME IP WORKLOAD: app server, tcpdump reference, agent
  local name=$1 ip=$2 workload=$3 ns="$cluster-$1"
  bpc_ns_add_pod "$cluster" "$name" "$ip"
  # Offloads off: tcpdump and the agent must see the very same frames
  # (super-frames are the oversize tests' business, not this one's).
  ip netns exec "$ns" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true
  mkdir -p "$work/$name/www"
  echo "hello from $name" >"$work/$name/www/index.html"
  bpc_ns_app_server "$ns" "$ip" "$work/$name/www"
  ip netns exec "$ns" tcpdump -i eth0 --immediate-mode -U -s 0 -w "$work/$name/ref.pcap" "$filter" >"$work/$name/tcpdump.log" 2>&1 &
  echo $! >"$work/$name/tcpdump.pid"
  wait_for_file_text "$work/$name/tcpdump.log" "listening on"
  start_agent "$name" "$workload"
  # The app server must be up before traffic counts (these requests count too).
  bpc_ns_wait_http "$cluster-client" "http://$ip:8080/" || { echo "app server of $name never answered" >&2; return 1; }
}

stop_tcpdump() { # POD (immediate mode: nothing waits in libpcap's ring for a block timeout)
  kill -INT "$(cat "$work/$1/tcpdump.pid")" 2>/dev/null || true
  wait "$(cat "$work/$1/tcpdump.pid")" 2>/dev/null || true
}

traffic() { # IP N: N HTTP requests from the client, each must succeed
  local ip=$1 n=$2 bad=0
  for _ in $(seq 1 "$n"); do
    ip netns exec "$cluster-client" curl -sf -o /dev/null "http://$ip:8080/" || bad=$((bad + 1))
  done
  check "$n requests to $ip answered" "$bad"
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

# Agent restart in the same pod (container restart): same source, numbering from 0 again.
stop_agent db-a
start_agent db-a shop/statefulset/db
traffic "$prefix.21" 10

# Pod replacement: web-a goes away with its agent; web-c comes up with a new IP.
stop_agent web-a
stop_tcpdump web-a
bpc_ns_del_pod "$cluster" web-a
start_pod web-c "$prefix.13" shop/deployment/web
traffic "$prefix.13" 20
traffic "$prefix.12" 5

for p in web-b db-a web-c; do
  stop_agent "$p"
  stop_tcpdump "$p"
done
web_a=$(count web-a) web_b=$(count web-b) web_c=$(count web-c) db=$(count db-a)
web=$((web_a + web_b + web_c))
echo "tcpdump saw: web $web frames (web-a $web_a, web-b $web_b, web-c $web_c), db $db frames"
check "tcpdump saw traffic in every pod" $((web_a > 0 && web_b > 0 && web_c > 0 && db > 0 ? 0 : 1))

e2e_stop_receiver
received=$(tcpdump -r "$work/received.pcap" 2>/dev/null | wc -l)
check "receiver wrote every frame to its pcap ($received of $((web + db)))" $((received == web + db ? 0 : 1))

expect() { # CHECK-NAME EXPECTATION...: bpc-sim check on the saved report
  local name=$1 rc=0
  shift
  local args=()
  for e in "$@"; do args+=(--expect "$e"); done
  "$bin/bpc-sim" check "$work/report.json" "${args[@]}" || rc=$?
  check "$name" "$rc"
}

expect "web: receiver count per workload and per pod equals tcpdump's, zero loss" \
  "workload=shop/web packets=$web loss=0 reorder=0 dup=0" \
  "workload=shop/web source=$prefix.11 packets=$web_a loss=0" \
  "workload=shop/web source=$prefix.12 packets=$web_b loss=0" \
  "workload=shop/web source=$prefix.13 packets=$web_c loss=0"
expect "web: pod replacement is one restarted stream of the same key, not loss" \
  "workload=shop/deployment/web streams=3 restarted_streams=1 seq_restarts=0 restarts=1"
expect "db: receiver count equals tcpdump's, zero loss; agent restart is a sequence restart" \
  "workload=shop/statefulset/db packets=$db loss=0 streams=1 seq_restarts=1 restarted_streams=0 restarts=1"

# Every check above must be able to fail: the same report against a count
# off by one, and against "no restart", must be rejected.
rc=0
"$bin/bpc-sim" check "$work/report.json" --expect "workload=shop/web packets=$((web + 1))" >/dev/null || rc=$?
check "a wrong packet count is rejected (exit 1)" $((rc == 1 ? 0 : 1))
rc=0
"$bin/bpc-sim" check "$work/report.json" --expect "workload=shop/web restarts=0" >/dev/null || rc=$?
check "a wrong restart count is rejected (exit 1)" $((rc == 1 ? 0 : 1))

e2e_summary e2e-netns
