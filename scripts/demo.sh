#!/usr/bin/env bash
# The first thing to run: kubectl-bpc end to end on one machine, no cluster.
#
# Installs dependencies, builds (release), then starts a small "cluster" of
# network namespaces (scripts/netns-pod.sh; a pod *is* a network namespace):
# three pods of two workloads, each with an app server and the bpc-agent
# sidecar, a client making requests, and a collector running `kubectl bpc
# sink` (the bpc-sim receiver) with its live view. Half-way through, pod web-1
# is replaced by web-3 (new IP, fresh agent), as a rollout would. At the end
# it prints the sink's report, what each agent says about itself, opens the
# written pcapng with tshark, prints the service paths the sink drew
# (paths.json, paths.svg), and tears everything down.
#
# Usage: sudo scripts/demo.sh [SECONDS]    (default 20; about SECONDS+10 s after the build)
#   BPC_BIN_DIR=DIR   use binaries from DIR instead of building
#   BPC_DEMO_OUT=DIR  where files go (default /tmp/bpc-demo): received.pcapng, logs
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/netns-pod.sh
source scripts/netns-pod.sh

seconds=${1:-20}
[[ $seconds =~ ^[0-9]+$ && $seconds -ge 6 ]] || { echo "demo: SECONDS must be a number >= 6" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it creates network namespaces): sudo $0" >&2; exit 2; }

if [[ -n ${BPC_BIN_DIR:-} ]]; then
  bin=$(realpath "$BPC_BIN_DIR")
  echo "== 1/5 dependencies, 2/5 build: skipped (BPC_BIN_DIR=$bin)"
else
  echo "== 1/5 dependencies"
  scripts/install-deps.sh
  echo "== 2/5 build (release)"
  cargo build --release --locked -p bpc-agent -p bpc-sim -p kubectl-bpc
  bin=$(realpath "${CARGO_TARGET_DIR:-target}/release")
fi
for b in bpc-agent kubectl-bpc; do
  [[ -x $bin/$b ]] || { echo "demo: $bin/$b missing" >&2; exit 2; }
done

cluster="bpcdemo$$"
prefix=198.18.110
out=${BPC_DEMO_OUT:-/tmp/bpc-demo}
rm -rf "$out"
mkdir -p "$out"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  bpc_ns_down "$cluster"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_pod() { # NAME IP WORKLOAD: app server + bpc-agent sidecar, ready when /healthz says so
  local name=$1 ip=$2 workload=$3 ns="$cluster-$1"
  bpc_ns_add_pod "$cluster" "$name" "$ip"
  mkdir -p "$out/$name"
  echo "hello from $name ($workload)" >"$out/$name/index.html"
  bpc_ns_app_server "$ns" "$ip" "$out/$name"
  # What `kubectl bpc attach` sets in the sidecar.
  BPC_WORKLOAD=$workload BPC_FILTER="tcp port 8080" BPC_COLLECTOR="$prefix.2" POD_NAME=$name POD_NAMESPACE=shop \
    ip netns exec "$ns" "$bin/bpc-agent" >"$out/$name/agent.log" 2>&1 &
  echo $! >"$out/$name/agent.pid"
  # Ready: the agent captures (/healthz 200) and the app answers (asked from
  # inside the pod, over lo: not captured, not counted).
  for _ in $(seq 1 100); do
    ip netns exec "$ns" curl -sf -o /dev/null http://127.0.0.1:9469/healthz &&
      ip netns exec "$ns" curl -sf -o /dev/null "http://$ip:8080/" && break
    sleep 0.1
  done
  printf '   pod %-6s %-15s %-22s agent pid %s\n' "$name" "$ip" "$workload" "$(cat "$out/$name/agent.pid")"
}

stop_pod() { # NAME: SIGTERM to the agent (it flushes and exits within 1 s), then the pod goes away
  local pid
  pid=$(cat "$out/$1/agent.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  bpc_ns_del_pod "$cluster" "$1"
}

echo "== 3/5 pods: shop/deployment/web x2, shop/statefulset/db x1; collector $prefix.2, client $prefix.3"
bpc_ns_up "$cluster" "$prefix"
start_pod web-1 "$prefix.11" shop/deployment/web
start_pod web-2 "$prefix.12" shop/deployment/web
start_pod db-1 "$prefix.21" shop/statefulset/db

# Which key is which workload, as `kubectl bpc map -o json` prints it in a cluster.
web_key=$(printf '0x%08x' "$(bpc_key shop deployment web)")
db_key=$(printf '0x%08x' "$(bpc_key shop statefulset db)")
client_key=$(printf '0x%08x' "$(bpc_key shop deployment client)")
{
  echo "["
  for p in "web-1 11 Deployment web $web_key true" "web-2 12 Deployment web $web_key true" \
    "web-3 13 Deployment web $web_key true" "db-1 21 StatefulSet db $db_key true" \
    "client-1 3 Deployment client $client_key false"; do
    read -r pod ip kind name key attached <<<"$p"
    [[ $pod == web-1 ]] || echo ","
    printf ' {"ip":"%s","namespace":"shop","kind":"%s","workload":"%s","key":"%s","pod":"%s","node":"demo","attached":%s}' \
      "$prefix.$ip" "$kind" "$name" "$key" "$pod" "$attached"
  done
  echo
  echo "]"
} >"$out/map.json"

# The client: requests to every pod listed in $out/targets; it stops a second
# or two before the sink does, so the agents' own counts can be compared with
# the sink's (and no agent sends to a collector that has gone).
printf '%s\n' "$prefix.11" "$prefix.12" "$prefix.21" >"$out/targets"
(
  end=$((SECONDS + seconds - 2))
  while ((SECONDS < end)); do
    while read -r ip; do
      ip netns exec "$cluster-client" curl -s -o /dev/null --max-time 1 "http://$ip:8080/" || true
    done <"$out/targets"
    sleep 0.02
  done
) &
# Half-way: web-1 is replaced by web-3, as a rollout or a rescheduled pod would be.
(
  sleep $((seconds / 2))
  printf '%s\n' "$prefix.12" "$prefix.21" >"$out/targets"
  sleep 0.3
  stop_pod web-1
  start_pod web-3 "$prefix.13" shop/deployment/web
  printf '%s\n' "$prefix.12" "$prefix.13" "$prefix.21" >"$out/targets"
) >"$out/rollout.log" 2>&1 &

echo "== 4/5 traffic for ${seconds}s (web-1 replaced by web-3 after $((seconds / 2))s); kubectl bpc sink's live view:"
rc=0
ip netns exec "$cluster-collector" "$bin/kubectl-bpc" sink --listen "$prefix.2" --duration "$seconds" \
  --map "$out/map.json" --write "$out/received.pcapng" --paths "$out/paths" \
  --expect "workload=shop/web packets>=100 loss=0 restarted_streams=1" \
  --expect "workload=shop/statefulset/db packets>=50 loss=0 restarts=0" || rc=$?
echo "   (rollout: $(tr '\n' ' ' <"$out/rollout.log"))"

echo "== 5/5 what the agents say (GET /stats) and what Wireshark sees"
for p in web-2 web-3 db-1; do
  ip netns exec "$cluster-$p" curl -s http://127.0.0.1:9469/stats | python3 -c '
import json, sys
s = json.load(sys.stdin)
cap, c = s["capture"], s["collectors"][0]
health = "healthy" if s["health"]["ok"] else "unhealthy: " + str(s["health"]["reason"])
print("   %s: key %s %s captured %d sent %d kernel_drops %d %s" % (sys.argv[1], s["key"],
      s["workload"], cap["packets"], c["sent_packets"], cap["kernel_drops"], health))
' "$p" || echo "   $p: no /stats"
done
echo "   $out/received.pcapng: one interface per workload; first frames:"
tshark -r "$out/received.pcapng" -T fields -E separator=' ' \
  -e frame.number -e frame.interface_name -e ip.src -e ip.dst -e _ws.col.Info 2>/dev/null | sed -n '1,8s/^/   /p' || true
echo "   frames per interface:"
tshark -r "$out/received.pcapng" -T fields -e frame.interface_name 2>/dev/null | sort | uniq -c | sed 's/^/   /'
# A frame's time is when its GRE packet reached the sink; a file whose
# timestamps are in another unit than it declares dates them hours or
# millennia away, which tshark shows as it is.
times=$(tshark -r "$out/received.pcapng" -T fields -e frame.time_epoch 2>/dev/null | sed -n '1p;$p')
first=${times%%$'\n'*} last=${times##*$'\n'}
if awk -v t="${first:-0}" -v now="$(date +%s)" 'BEGIN { exit !(t > now - 86400 && t < now + 86400) }'; then
  echo "   frame times (receive time at the sink): $(date -u -d "@$first" '+%F %T.%N') to $(date -u -d "@$last" '+%T.%N') UTC"
else
  echo "   the first frame is dated ${first:-nothing} (epoch seconds), not today: the pcapng's timestamps are wrong"
  rc=1
fi
echo "   service paths (who calls whom, $out/paths.json; the picture: $out/paths.svg):"
python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["edges"]:
    print("   %s -> %s %s/%d: %d connections, %d+%d packets" % (e["client"], e["server"], e["protocol"],
          e["port"], e["connections"], e["packets_to_server"], e["packets_to_client"]))
' "$out/paths.json" || { echo "   no paths.json"; rc=1; }
if [[ $rc -eq 0 ]]; then
  echo "== demo passed: every sink expectation holds; tearing down"
else
  echo "== demo FAILED: sink exit code $rc; tearing down (files in $out)"
fi
exit "$rc"
