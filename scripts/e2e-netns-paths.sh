#!/usr/bin/env bash
# Service paths end to end without a cluster: three workloads in a chain,
# frontend -> api -> db, each pod a network namespace with a bpc-agent
# sidecar (scripts/netns-pod.sh), and a Service-like VIP in front of api.
#
# The VIP is DNATed where a node DNATs a ClusterIP: in the node namespace the
# pods route through (kube-proxy's place), after the pod's eth0, so the
# frontend's sidecar captures the VIP and api's sidecar the DNATed flow. The
# node bridges the pods with bridge-nf-call-iptables on, as a bridge CNI
# node does, so api's replies are un-DNATed on their way back.
#
#   1. frontend makes N1 requests to VIP:80, api makes M1 requests to db:8080;
#   2. api's pod is replaced by one with a new IP: the DNAT rule and the map
#      file are rewritten (the receiver re-reads it), N2 and M2 more requests;
#   3. the receiver's PREFIX.json has exactly the edges frontend -> api (via
#      the VIP's Service name) and api -> db, with connections N1+N2 and
#      M1+M2: each flow counted once although both ends captured it.
#
# Usage: scripts/e2e-netns-paths.sh [BIN_DIR]   (default target/debug; built if missing)
# BPC_PATHS_OUT=DIR copies the path files (json, dot, svg) there.
# Exit 0 when every check passes, 1 when one fails. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/netns-pod.sh
source scripts/netns-pod.sh
# shellcheck source=scripts/e2e-lib.sh
source scripts/e2e-lib.sh
e2e_netns_setup e2e-netns-paths "paths$$" "${1:-}"
prefix=${BPC_E2E_PREFIX:-198.18.111}
vip=${BPC_E2E_VIP:-198.18.112.80}

node="$cluster-node"

start_pod() { # NAME IP WORKLOAD: app server, then the sidecar (so readiness probes are not captured)
  local name=$1 ip=$2 workload=$3 ns="$cluster-$1"
  bpc_ns_add_pod "$cluster" "$name" "$ip"
  # The node is the pods' gateway, as on a real node; same-subnet peers stay direct.
  ip -n "$ns" route replace default via "$prefix.1" dev eth0
  mkdir -p "$work/$name/www"
  echo "hello from $name" >"$work/$name/www/index.html"
  bpc_ns_app_server "$ns" "$ip" "$work/$name/www"
  bpc_ns_wait_http "$ns" "http://$ip:8080/" || { echo "app server of $name never answered" >&2; return 1; }
  bpc_ns_agent "$ns" "$work/$name/agent.log" "$work/$name/agent.pid" \
    env BPC_WORKLOAD="$workload" "$bin/bpc-agent" --collector "$prefix.2" --filter "tcp"
}

stop_pod() { # NAME: agent SIGTERM (it flushes), then the namespace goes
  local name=$1
  kill -TERM "$(cat "$work/$name/agent.pid")" 2>/dev/null || true
  wait "$(cat "$work/$name/agent.pid")" 2>/dev/null || true
  bpc_ns_del_pod "$cluster" "$name"
}

point_vip_at() { # IP: the Service's one endpoint, as kube-proxy rewrites its chain
  ip netns exec "$node" iptables -t nat -F BPC-SVC
  ip netns exec "$node" iptables -t nat -A BPC-SVC -d "$vip/32" -p tcp --dport 80 \
    -j DNAT --to-destination "$1:8080"
  # Established flows keep their old translation; new ones take the new rule.
  ip netns exec "$node" conntrack -D -d "$vip" >/dev/null 2>&1 || true
}

row() { # TYPE IP KIND NAME POD [BACKENDS-JSON]: one map row (schema 2)
  local key
  key=$(bpc_key shop "$3" "$4")
  printf '{"type":"%s","ip":"%s","namespace":"shop","kind":"%s","workload":"%s","key":"%s","pod":"%s","attached":true%s}' \
    "$1" "$2" "$3" "$4" "$key" "$5" "${6:+,\"backends\":$6}"
}

write_map() { # API-POD API-IP: the map as `kubectl bpc map -o json` would write it, replaced atomically
  local api_key
  api_key=$(bpc_key shop Deployment api)
  {
    echo "["
    row pod "$prefix.11" Deployment frontend frontend-1; echo ","
    row pod "$2" Deployment api "$1"; echo ","
    row pod "$prefix.31" StatefulSet db db-0; echo ","
    row service "$vip" Service api-vip "" "[{\"kind\":\"Deployment\",\"workload\":\"api\",\"key\":\"$api_key\"}]"
    echo "]"
  } >"$work/map.json.tmp"
  mv "$work/map.json.tmp" "$work/map.json"
}

requests() { # FROM-POD URL N: N requests (one connection each), each must succeed
  local from=$1 url=$2 n=$3 bad=0
  for _ in $(seq 1 "$n"); do
    ip netns exec "$cluster-$from" curl -sf -o /dev/null --max-time 5 "$url" || bad=$((bad + 1))
  done
  check "$n requests $from -> $url answered" "$bad"
}

# Bridged frames through iptables: br_netfilter (built in, or a module to load).
[[ -e /proc/sys/net/bridge ]] || modprobe br_netfilter 2>/dev/null || true
bpc_ns_up "$cluster" "$prefix"
# The node routes (the VIP) and bridges (the pods), with the bridged replies
# through conntrack (bridge-nf-call-iptables, per namespace) as on a CNI node.
ip -n "$node" addr add "$prefix.1/24" dev br0
ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$node" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || {
  echo "e2e-netns-paths: no br_netfilter (modprobe br_netfilter)" >&2; exit 2; }
ip netns exec "$node" iptables -t nat -N BPC-SVC
ip netns exec "$node" iptables -t nat -A PREROUTING -j BPC-SVC

write_map api-a "$prefix.21"
ip netns exec "$cluster-collector" "$bin/bpc-sim" receive --listen "$prefix.2" --quiet -o json \
  --map "$work/map.json" --paths "$work/paths" --paths-interval 1 \
  >"$work/report.json" 2>"$work/receiver.log" &
receiver=$!
sleep 0.3

start_pod db "$prefix.31" shop/statefulset/db
start_pod api-a "$prefix.21" shop/deployment/api
start_pod frontend "$prefix.11" shop/deployment/frontend
point_vip_at "$prefix.21"

n1=12 m1=7 n2=9 m2=5
requests frontend "http://$vip/" "$n1"
requests api-a "http://$prefix.31:8080/" "$m1"

# api's pod replaced: new IP, new agent; the Service endpoint and the map follow.
stop_pod api-a
start_pod api-b "$prefix.22" shop/deployment/api
point_vip_at "$prefix.22"
write_map api-b "$prefix.22"
sleep 1.2 # the receiver polls the map every 0.5 s; the next flows' labels come from either file alike
requests frontend "http://$vip/" "$n2"
requests api-b "http://$prefix.31:8080/" "$m2"

# The sidecars send as they capture; give the last frames time to arrive.
sleep 1
for p in frontend api-b db; do
  kill -TERM "$(cat "$work/$p/agent.pid")" 2>/dev/null || true
  wait "$(cat "$work/$p/agent.pid")" 2>/dev/null || true
done
e2e_stop_receiver

paths=$work/paths.json
rc=0; [[ -s $paths && -s $work/paths.dot ]] || rc=1
check "receiver wrote $paths and paths.dot" "$rc"
jq -c '.edges[] | {client, server, service, port, connections, observed_by}' "$paths" >&2 || true

edge() { # JQ-FILTER-ON-EDGES: exit 0 when it is true
  jq -e "$1" "$paths" >/dev/null
}
rc=0; edge '[.edges[] | [.client, .server]] | sort == [["shop/api", "shop/db"], ["shop/frontend", "shop/api"]]' || rc=1
check "exactly the edges frontend -> api and api -> db" "$rc"
rc=0
edge ".edges[] | select(.client == \"shop/frontend\") | .service == \"shop/api-vip\" and .port == 80 and .protocol == \"tcp\"" || rc=1
check "frontend -> api goes via the VIP's Service name, port 80" "$rc"
rc=0; edge ".edges[] | select(.client == \"shop/frontend\") | .connections == $((n1 + n2))" || rc=1
check "frontend -> api connections = $((n1 + n2)) requests, across api's replacement" "$rc"
rc=0; edge ".edges[] | select(.client == \"shop/api\") | .connections == $((m1 + m2)) and .service == null and .port == 8080" || rc=1
check "api -> db connections = $((m1 + m2)) requests, from both api pods" "$rc"
rc=0; edge '[.edges[] | .observed_by] | all(. == ["client"])' || rc=1
check "both ends captured every flow, and each is counted once (from its client)" "$rc"
rc=0; edge '.edges[] | select(.client == "shop/frontend") | .handshake_rtt_us.samples > 0 and .resets == 0' || rc=1
check "frontend -> api has handshake RTT samples and no resets" "$rc"
# The server sides were captured too: without dedup they would be edges of their own.
rc=0
for ip in "$prefix.21" "$prefix.22" "$prefix.31"; do
  jq -e --arg ip "$ip" '[.streams[] | select(.source == $ip) | .packets] | add > 0' "$work/report.json" >/dev/null || rc=1
done
check "the server-side sidecars (api-a, api-b, db) sent their captures" "$rc"
rc=0; grep -q '"shop/frontend" -> "shop/api"' "$work/paths.dot" && grep -q '"shop/api" -> "shop/db"' "$work/paths.dot" || rc=1
check "paths.dot has one edge per path, nodes named namespace/name" "$rc"
# Graphviz is installed by scripts/install-deps.sh: without it the pictures are missing, and this fails.
rc=0; grep -q '<svg' "$work/paths.svg" || rc=1
check "paths.svg drawn by Graphviz" "$rc"
rc=0; [[ $(head -c 8 "$work/paths.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || rc=1
check "paths.png drawn by Graphviz" "$rc"
# The checks can fail: a wrong count is rejected.
rc=0; edge ".edges[] | select(.client == \"shop/frontend\") | .connections == $((n1 + n2 + 1))" || rc=1
check "a wrong connection count is rejected" $((rc == 1 ? 0 : 1))

if [[ -n ${BPC_PATHS_OUT:-} ]]; then
  mkdir -p "$BPC_PATHS_OUT"
  cp "$work"/paths.json "$work"/paths.dot "$BPC_PATHS_OUT"/
  [[ -f $work/paths.svg ]] && cp "$work/paths.svg" "$BPC_PATHS_OUT"/
fi

e2e_summary e2e-netns-paths
