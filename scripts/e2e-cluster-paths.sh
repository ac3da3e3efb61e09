#!/usr/bin/env bash
# Service paths on a real cluster (the local one of scripts/cluster.sh, with
# kube-proxy in iptables mode so ClusterIPs work): a client Deployment calls
# the app's Service by its ClusterIP (there is no DNS), both attached;
# `kubectl bpc sink --map-watch --paths` must show the edge client -> app
# via the Service's name, and keep it (same edge, more connections, no
# edge to an unlabelled address) across a `kubectl rollout restart` of app.
#
# Usage: scripts/e2e-cluster-paths.sh
# Environment: KUBECONFIG, PATH with kubectl, BPC_AGENT_IMAGE, BPC_APP_IMAGE,
# BPC_NODE_IP (from `scripts/cluster.sh env`), KUBECTL_BPC (the binary,
# default target/debug/kubectl-bpc). Uses its own namespace bpc-paths-PID and
# deletes it at the end. Exit 0 when every check passes. Run as root (the
# sink's raw socket).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/e2e-lib.sh
source scripts/e2e-lib.sh
[[ $(id -u) -eq 0 ]] || { echo "e2e-cluster-paths: run as root (the sink's raw GRE socket)" >&2; exit 2; }
e2e_cluster_needs e2e-cluster-paths
ns="bpc-paths-$$"
work=$(mktemp -d /tmp/bpc-e2e-cluster-paths.XXXXXX)
sink_pid=
e2e_tag=paths

show_failure() {
  kubectl get pods,svc -n "$ns" -o wide >&2 2>/dev/null || true
  tail -n 20 "$work/sink.log" >&2 2>/dev/null || true
}
cleanup() {
  local rc=$?
  if [[ -n $sink_pid ]]; then kill -INT "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  e2e_cluster_cleanup "$rc" e2e-cluster-paths keep show_failure 90s "$ns"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "namespace $ns: app (Deployment, 2 replicas) behind Service app"
kubectl create namespace "$ns"
{
  app_deployment app 2
  echo ---
  cat <<EOF
apiVersion: v1
kind: Service
metadata: {name: app}
spec:
  selector: {app: app}
  ports: [{port: 80, targetPort: http}]
EOF
} | kubectl apply -n "$ns" -f -
vip=$(kubectl get svc app -n "$ns" -o jsonpath='{.spec.clusterIP}')
[[ -n $vip ]] || fail "Service app has no ClusterIP"
ok "Service app: ClusterIP $vip"

step "client (Deployment): one HTTP request to $vip:80 every 0.5 s"
# busybox wget -T segfaults here: timeout bounds each request instead.
# shellcheck disable=SC2016 # $vip is expanded here, the rest by the pod's shell
app_deployment client 1 "[sh, -c, 'while true; do timeout 5 wget -q -O /dev/null http://$vip/ || echo failed; sleep 0.5; done']" |
  kubectl apply -n "$ns" -f -

step "attach client and app (collector $BPC_NODE_IP)"
"$bpc" attach deploy/client deploy/app -n "$ns" --collector "$BPC_NODE_IP" --image "$BPC_AGENT_IMAGE" \
  --filter tcp --wait --timeout 3m
for d in client app; do kubectl rollout status -n "$ns" "deploy/$d" --timeout 120s; done

step "sink --map-watch --paths on $BPC_NODE_IP"
"$bpc" sink -n "$ns" --map-watch --listen "$BPC_NODE_IP" --paths "$work/paths" --paths-interval 1 \
  --duration 600 --quiet -o json >"$work/sink.json" 2>"$work/sink.log" &
sink_pid=$!

# client_edges: the edges whose client is our client workload, as TSV.
client_edges() {
  jq -r --arg c "$ns/client" '.edges[] | select(.client == $c) |
    [.server, (.service // "-"), .protocol, .port, .connections, .last_seen] | @tsv' "$work/paths.json" 2>/dev/null
}
connections() { # the client -> app edge's connections, 0 when absent
  jq -r --arg c "$ns/client" --arg s "$ns/app" \
    '[.edges[] | select(.client == $c and .server == $s and .service == $s and .protocol == "tcp" and .port == 80)
      | .connections] | add // 0' "$work/paths.json" 2>/dev/null || echo 0
}
wait_connections() { # AT-LEAST SECONDS
  local n=0
  for _ in $(seq 1 "$2"); do
    n=$(connections)
    ((n >= $1)) && { echo "$n"; return 0; }
    sleep 1
  done
  echo "$n"
  return 1
}

step "the edge client -> app via Service $ns/app appears"
c1=$(wait_connections 5 60) || fail "no edge $ns/client -> $ns/app via $ns/app with 5 connections: $(client_edges)"
ok "$ns/client -> $ns/app via $ns/app tcp/80: $c1 connections"
client_edges

step "rollout restart of app: new pods, new IPs"
old_ips=$(kubectl get pods -n "$ns" -l app=app -o jsonpath='{.items[*].status.podIP}')
kubectl rollout restart -n "$ns" deploy/app
kubectl rollout status -n "$ns" deploy/app --timeout 120s
sleep 2
new_ips=
for ip in $(kubectl get pods -n "$ns" -l app=app --field-selector=status.phase=Running -o jsonpath='{.items[*].status.podIP}'); do
  [[ " $old_ips " == *" $ip "* ]] || new_ips+="$ip "
done
echo "app pod IPs before: $old_ips; new: $new_ips"
[[ -n $new_ips ]] || fail "the rollout gave app no pod with a new IP"
restarted=$(date +%s)
c0=$(connections)
c2=$(wait_connections $((c0 + 10)) 60) || fail "the edge stopped growing after the rollout: $c0 -> $c2 connections; $(client_edges)"
ok "same edge after the rollout: $c0 -> $c2 connections"

step "every call of the client is on that one edge, and it saw traffic after the rollout"
edges=$(client_edges)
echo "$edges"
[[ $(wc -l <<<"$edges") -eq 1 ]] || fail "the client has other edges (unlabelled peers?): $edges"
last=$(jq -r --arg c "$ns/client" '[.edges[] | select(.client == $c) | .last_seen] | max | floor' "$work/paths.json")
((last >= restarted)) || fail "edge last seen $last, before the rollout ended ($restarted)"
ok "one edge, last seen after the rollout"
# The app pods captured the same flows (DNATed, with the client's pod IP): counted once.
jq -e --arg c "$ns/client" '[.edges[] | select(.client == $c) | .observed_by] | all(. == ["client"])' \
  "$work/paths.json" >/dev/null || fail "flows both ends captured were counted from the server side too"
ok "flows captured by both ends counted once (observed_by client)"

e2e_stop_sink
ok "sink exited 0"
# The new app pods answered the calls: their sidecars' streams, labelled by the watched map.
for ip in $new_ips; do
  jq -e --arg ip "$ip" --arg w "$ns/deployment/app" \
    '[.streams[] | select(.source == $ip and .workload == $w) | .packets] | add > 0' "$work/sink.json" >/dev/null ||
    fail "no stream from the new app pod $ip labelled $ns/deployment/app: $(jq -c '[.streams[] | {source, workload, packets}]' "$work/sink.json")"
done
ok "new app pods ($new_ips) captured traffic, labelled $ns/deployment/app by --map-watch"
echo "e2e-cluster-paths: passed in $((SECONDS - e2e_started))s"
