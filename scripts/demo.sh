#!/usr/bin/env bash
# The first thing to run: kubectl-bpc end to end on one machine, no cluster.
#
# Installs dependencies, builds, then starts a small "cluster" of network
# namespaces (scripts/netns-pod.sh): three pods of two workloads, each with an
# app server and the bpc-agent sidecar, a client making requests, and a
# collector running the bpc-sim receiver with its live view. At the end it
# prints the receiver's report, opens the written pcapng with tshark, and
# tears everything down.
#
# Usage: sudo scripts/demo.sh [SECONDS]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/netns-pod.sh
source scripts/netns-pod.sh

seconds=${1:-15}
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it creates network namespaces): sudo $0" >&2; exit 2; }

echo "== 1/4 dependencies"
scripts/install-deps.sh
echo "== 2/4 build (release)"
cargo build --release --locked -p bpc-agent -p bpc-sim -p kubectl-bpc
bin=$PWD/target/release

cluster=bpcdemo
prefix=198.18.110
out=${BPC_DEMO_OUT:-/tmp/bpc-demo}
rm -rf "$out"; mkdir -p "$out"
trap 'bpc_ns_down "$cluster"' EXIT
bpc_ns_down "$cluster"

echo "== 3/4 pods: shop/deployment/web x2, shop/statefulset/db x1; collector $prefix.2"
bpc_ns_up "$cluster" "$prefix"
start_pod() { # NAME IP WORKLOAD
  local name=$1 ip=$2 workload=$3 ns="$cluster-$1"
  bpc_ns_add_pod "$cluster" "$name" "$ip"
  mkdir -p "$out/$name"
  echo "hello from $name ($workload)" > "$out/$name/index.html"
  (cd "$out/$name" && exec ip netns exec "$ns" python3 -m http.server 8080 --bind "$ip" >/dev/null 2>&1) &
  BPC_WORKLOAD=$workload BPC_FILTER="tcp port 8080" BPC_COLLECTOR="$prefix.2" \
    ip netns exec "$ns" "$bin/bpc-agent" >"$out/$name/agent.log" 2>&1 &
  printf '   pod %-6s %-15s %-28s agent pid %s\n' "$name" "$ip" "$workload" "$!"
}
start_pod web-1 "$prefix.11" shop/deployment/web
start_pod web-2 "$prefix.12" shop/deployment/web
start_pod db-1 "$prefix.21" shop/statefulset/db
sleep 1

# Tell the receiver which key is which workload, as `kubectl bpc map -o json` would.
cat > "$out/map.json" <<JSON
[
 {"ip":"$prefix.11","namespace":"shop","kind":"Deployment","workload":"web","key":"0x$(printf '%08x' "$(bpc_key shop deployment web)")","pod":"web-1","node":"demo","attached":true},
 {"ip":"$prefix.12","namespace":"shop","kind":"Deployment","workload":"web","key":"0x$(printf '%08x' "$(bpc_key shop deployment web)")","pod":"web-2","node":"demo","attached":true},
 {"ip":"$prefix.21","namespace":"shop","kind":"StatefulSet","workload":"db","key":"0x$(printf '%08x' "$(bpc_key shop statefulset db)")","pod":"db-1","node":"demo","attached":true}
]
JSON

echo "== 4/4 traffic for ${seconds}s; the receiver's live view:"
(
  end=$((SECONDS + seconds - 2))
  while ((SECONDS < end)); do
    for ip in "$prefix.11" "$prefix.12" "$prefix.21" "$prefix.11"; do
      ip netns exec "$cluster-client" curl -s -o /dev/null "http://$ip:8080/" || true
    done
    sleep 0.05
  done
) &
rc=0
ip netns exec "$cluster-collector" "$bin/bpc-sim" receive --listen "$prefix.2" --duration "$seconds" \
  --map "$out/map.json" --write "$out/received.pcapng" \
  --expect "workload=shop/web packets>=10 loss=0" --expect "workload=shop/statefulset/db packets>=5 loss=0" || rc=$?
echo
echo "== what Wireshark sees in $out/received.pcapng (first 8 frames):"
tshark -r "$out/received.pcapng" 2>/dev/null | head -8
echo "== demo done (receiver expectations exit code: $rc); tearing down"
exit "$rc"
