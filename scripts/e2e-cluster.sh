#!/usr/bin/env bash
# The end-to-end scenario on a real cluster: the local one of
# scripts/cluster.sh by default, kind with --kind (where Docker exists). One
# script, so the two cannot drift. Every step asserts what it claims; the
# docs/cluster.md says what each step proves.
#
# Usage: scripts/e2e-cluster.sh [--kind] [--keep]
#   --kind   create a kind cluster instead (needs docker and kind)
#   --keep   leave the cluster up afterwards (local: scripts/cluster.sh down)
# Environment: BPC_E2E_CLUSTER=up uses a cluster that is already up (and
# leaves it up); KUBECTL_BPC / BPC_SIM: the binaries (default target/debug).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

mode=local keep=0
for arg in "$@"; do
  case $arg in
    --kind) mode=kind ;;
    --keep) keep=1 ;;
    *) echo "usage: scripts/e2e-cluster.sh [--kind] [--keep]" >&2; exit 2 ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "e2e-cluster: run as root (the cluster, the sink's raw socket, tcpdump)" >&2; exit 2; }

target=${CARGO_TARGET_DIR:-$repo/target}
bpc=${KUBECTL_BPC:-$target/debug/kubectl-bpc}
sim=${BPC_SIM:-$target/debug/bpc-sim}
ns="bpc-e2e"
work=$(mktemp -d)
# shellcheck source=scripts/e2e-lib.sh
source scripts/e2e-lib.sh
background() { "$@" & pids+=($!); }

cleanup() {
  local rc=$?
  e2e_kill_background
  if ((rc != 0)); then
    echo "e2e-cluster: failed (exit $rc); work files in $work" >&2
    kubectl get pods -A -o wide >&2 2>/dev/null || true
    [[ $mode != local ]] || echo "cluster logs: ${BPC_CLUSTER_STATE:-/var/lib/bpc-cluster}/logs" >&2
  fi
  # Only a cluster this run brought up: tearing down another run's cluster
  # (one already up when this run started) broke that run.
  if [[ $own_cluster == 1 && $keep == 0 ]]; then
    if [[ $mode == local ]]; then scripts/cluster.sh down || true; else kind delete cluster --name bpc-e2e >/dev/null 2>&1 || true; fi
  fi
  ((rc != 0)) || rm -rf "$work"
}
own_cluster=0
trap cleanup EXIT

# ---------------------------------------------------------------- cluster

# node_run CMD...: runs a command on the (only) node: here, or in kind's node container.
if [[ $mode == local ]]; then
  step "local cluster (scripts/cluster.sh)"
  if [[ ${BPC_E2E_CLUSTER:-} != up ]]; then
    # etcd's port (scripts/cluster.sh): taken means a cluster is up already.
    if ss -Htln "sport = :23790" | grep -q .; then
      fail "a local cluster is already up (another run's?): left alone; BPC_E2E_CLUSTER=up uses it"
    fi
    own_cluster=1
    scripts/cluster.sh up
  fi
  eval "$(scripts/cluster.sh env)"
  node_run() { "$@"; }
else
  step "kind cluster"
  for tool in docker kind; do command -v "$tool" >/dev/null || fail "$tool is required for --kind"; done
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
  export BPC_AGENT_IMAGE=localhost/bpc-agent:$version BPC_APP_IMAGE=busybox:1.36
  docker build -f agent/Dockerfile -t "$BPC_AGENT_IMAGE" .
  [[ ${BPC_E2E_CLUSTER:-} == up ]] || { own_cluster=1; kind create cluster --name bpc-e2e --wait 180s; }
  kind load docker-image "$BPC_AGENT_IMAGE" --name bpc-e2e
  BPC_NODE_IP=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' |
    tr ' ' '\n' | grep -E '^[0-9.]+$' | head -1)
  export BPC_NODE_IP
  node_run() { docker exec bpc-e2e-control-plane "$@"; }
fi
for bin in "$bpc" "$sim"; do [[ -x $bin ]] || fail "$bin not built (cargo build -p kubectl-bpc -p bpc-sim)"; done
collector=$BPC_NODE_IP
attach_opts=(--collector "$collector" --image "$BPC_AGENT_IMAGE")
sed "s|APP_IMAGE|$BPC_APP_IMAGE|g" testdata/cluster/app.yaml >"$work/app.yaml"

# Pods being deleted are left out: --wait returns once the rollout is complete,
# and the old pods may still be in their grace period then (issue 25).
app_pods() {
  kubectl get pods -n "$ns" -l "app=$1" --field-selector=status.phase=Running -o json |
    jq -r '.items[] | select(.metadata.deletionTimestamp == null) | "\(.metadata.name) \(.status.podIP)"'
}
# The names of the template's init containers (a native sidecar is one) and containers.
template_containers() { kubectl get "$1" -n "${2:-$ns}" -o jsonpath='{.spec.template.spec.initContainers[*].name} {.spec.template.spec.containers[*].name}'; }
pod_containers() { kubectl get pod "$1" -n "${2:-$ns}" -o jsonpath='{.spec.initContainers[*].name} {.spec.containers[*].name}'; }
spec_json() { # the workload's spec, normalised: no rollout-restart stamp, keys sorted
  kubectl get "$1" -n "${2:-$ns}" -o json |
    jq -S '.spec | del(.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]) |
           if .template.metadata.annotations == {} then del(.template.metadata.annotations) else . end'
}
resource_version() { kubectl get "$1" -n "${2:-$ns}" -o jsonpath='{.metadata.resourceVersion}'; }

# ---------------------------------------------------------------- app

if [[ ${BPC_E2E_CLUSTER:-} == up ]]; then # a cluster a previous run may have left objects in
  kubectl delete namespace "$ns" bpc-e2e-restricted bpc-e2e-host bpc-e2e-late --ignore-not-found --timeout 120s
  kubectl delete clusterrolebinding,clusterrole bpc-e2e-namespace --ignore-not-found
fi

step "namespace $ns enforcing Pod Security baseline; web (Deployment, 2), db (StatefulSet), edge (DaemonSet)"
kubectl create namespace "$ns"
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=baseline
kubectl apply -n "$ns" -f "$work/app.yaml"
for w in deploy/web sts/db ds/edge; do kubectl rollout status -n "$ns" "$w" --timeout 120s; done
workloads=(deployment/web statefulset/db daemonset/edge)
for w in "${workloads[@]}"; do spec_json "$w" >"$work/before-${w#*/}.json"; done

# ---------------------------------------------------------------- attach

step "attach --dry-run --diff writes nothing and shows the sidecar (native by default, --sidecar container)"
rv=$(resource_version deploy/web)
"$bpc" attach web -n "$ns" "${attach_opts[@]}" --dry-run --diff | tee "$work/diff.txt"
# Native (the default on this 1.34 server): a new initContainers list whose
# first entry is bpc-agent, restartPolicy Always, with a startup probe.
awk '/^\+ *initContainers:/ {init = 1; next} init && /^\+ *- name:/ {print $NF; exit}' "$work/diff.txt" | grep -qx bpc-agent ||
  fail "the dry-run diff does not add bpc-agent as the first init container"
grep -q '^+ *restartPolicy: Always' "$work/diff.txt" || fail "the dry-run diff's sidecar has no restartPolicy: Always"
grep -q '^+ *startupProbe:' "$work/diff.txt" || fail "the dry-run diff's sidecar has no startupProbe"
"$bpc" attach web -n "$ns" "${attach_opts[@]}" --sidecar container --dry-run --diff >"$work/diff-container.txt"
grep -q '^+ *- name: bpc-agent' "$work/diff-container.txt" || fail "the --sidecar container diff does not add the sidecar"
! grep -q '^+ *initContainers:\|^+ *restartPolicy: Always' "$work/diff-container.txt" || fail "the --sidecar container diff adds an init container"
# No BPC_LINGER here: the app's terminationGracePeriodSeconds is 1, and the
# linger is min(5 s, grace - 1 s) (e2e-cluster-lifecycle.sh checks it with 10 s).
[[ $(resource_version deploy/web) == "$rv" ]] || fail "--dry-run changed deploy/web"
ok "diff adds bpc-agent (first init container, restartPolicy Always; with --sidecar container a container); resourceVersion $rv unchanged"

step "attach --wait on the Deployment, the StatefulSet and the DaemonSet"
"$bpc" attach web sts/db ds/edge -n "$ns" "${attach_opts[@]}" --wait --timeout 3m
for app in web db edge; do
  while read -r pod _; do
    # The native sidecar: the first init container, restartPolicy Always, running and started.
    first=$(kubectl get pod "$pod" -n "$ns" -o jsonpath='{.spec.initContainers[0].name} {.spec.initContainers[0].restartPolicy}')
    [[ $first == "bpc-agent Always" ]] || fail "$pod: the first init container is '$first', want 'bpc-agent Always'"
    [[ $(kubectl get pod "$pod" -n "$ns" -o jsonpath='{.spec.containers[*].name}') != *bpc-agent* ]] ||
      fail "$pod: bpc-agent is also a regular container"
    state=$(kubectl get pod "$pod" -n "$ns" -o jsonpath='{.status.initContainerStatuses[?(@.name=="bpc-agent")].state}')
    [[ $state == *running* ]] || fail "$pod: bpc-agent not running: $state"
    started=$(kubectl get pod "$pod" -n "$ns" -o jsonpath='{.status.initContainerStatuses[?(@.name=="bpc-agent")].started}')
    [[ $started == true ]] || fail "$pod: bpc-agent not started (startup probe): $started"
  done < <(app_pods "$app")
done
ok "bpc-agent runs as a native sidecar (first init container, started) in every pod of web, db and edge"
for w in "${workloads[@]}"; do
  form=$(kubectl get "$w" -n "$ns" -o json | jq -r '.spec.template.metadata.annotations["bpc.kubectl.io/status"] | fromjson | .sidecar')
  [[ $form == native ]] || fail "$w: the status annotation records sidecar '$form', want native"
done
ok "the status annotations record \"sidecar\":\"native\""

step "in every new pod the agent has exactly NET_RAW effective, NoNewPrivs, uid 0 (capabilities mode default)"
for app in web db edge; do
  while read -r pod _; do
    uid=$(kubectl get pod "$pod" -n "$ns" -o jsonpath='{.metadata.uid}')
    # The agent's process: comm bpc-agent, in a cgroup of this pod (its UID in the path).
    pid=$(node_run sh -c "for p in /proc/[0-9]*; do [ \"\$(cat \$p/comm 2>/dev/null)\" = bpc-agent ] && grep -q '${uid//-/_}\|$uid' \$p/cgroup 2>/dev/null && echo \${p#/proc/}; done; true" | head -1)
    [[ -n $pid ]] || fail "$pod: no bpc-agent process on the node"
    node_run cat "/proc/$pid/status" >"$work/status-$pod"
    capeff=$(awk '/^CapEff:/ {print $2}' "$work/status-$pod")
    nnp=$(awk '/^NoNewPrivs:/ {print $2}' "$work/status-$pod")
    euid=$(awk '/^Uid:/ {print $3}' "$work/status-$pod")
    [[ $capeff == 0000000000002000 ]] || fail "$pod: agent CapEff $capeff, want 0000000000002000 (NET_RAW only)"
    [[ $nnp == 1 ]] || fail "$pod: agent NoNewPrivs $nnp, want 1"
    [[ $euid == 0 ]] || fail "$pod: agent euid $euid, want 0 (the default mode's documented uid)"
    ok "$pod: pid $pid CapEff $capeff NoNewPrivs $nnp uid $euid"
  done < <(app_pods "$app")
done

# ---------------------------------------------------------------- traffic

step "map -o json, then the sink and bpc-sim receive on $collector (the node) with it"
"$bpc" map -n "$ns" -o json >"$work/map.json"
jq -e 'length >= 4' "$work/map.json" >/dev/null || fail "map lists fewer than 4 pods: $(cat "$work/map.json")"
background "$bpc" sink --listen "$collector" --duration 60 --quiet -o json --map "$work/map.json" \
  --write "$work/sink.pcapng" >"$work/sink.json" 2>"$work/sink.log"
sink_pid=${pids[-1]}
# A second raw socket gets its own copy of every GRE packet: the standalone receiver, same map.
background "$sim" receive --listen "$collector" --duration 60 --quiet -o json --map "$work/map.json" \
  >"$work/sim.json" 2>"$work/sim.log"
sim_pid=${pids[-1]}
# The agents have been sending since attach, and the node bounced every
# packet (ICMP protocol unreachable) until the sink listened. A collector
# that bounced is healthy again once sends have succeeded for 5 s after the
# last bounce (contract CURED_AFTER_SECONDS, read from the error queue once
# a second): the traffic below starts after that, so the status step judges
# a collector that is listening, not the minutes before (seen in CI: status
# 5 s after the sink started said COLLECTOR-UNREACHABLE).
sleep 7

step "tcpdump on each web pod's host-side veth, then a client makes HTTP requests"
declare -A veth
while read -r pod ip; do
  # The host end of the pod's eth0: the interface whose index is eth0's iflink.
  idx=$(kubectl exec -n "$ns" "$pod" -c app -- cat /sys/class/net/eth0/iflink)
  veth[$pod]=$(node_run ip -o link | awk -F': ' -v i="$idx" '$1 == i {print $2}' | cut -d@ -f1)
  [[ -n ${veth[$pod]} ]] || fail "$pod: no host interface with index $idx"
  # To stdout: under --kind tcpdump runs in the node's container, the file is written here.
  background node_run tcpdump -i "${veth[$pod]}" -n -U -w - "tcp port 8080 and host $ip" >"$work/veth-$pod.pcap"
done < <(app_pods web)
sleep 1
web_ips=$(app_pods web | awk '{print $2}' | tr '\n' ' ')
svc_ip=$(kubectl get svc web -n "$ns" -o jsonpath='{.spec.clusterIP}')
# shellcheck disable=SC2016 # expanded by the client pod's shell
kubectl run client -n "$ns" --image "$BPC_APP_IMAGE" --image-pull-policy IfNotPresent --restart Never \
  --command -- sh -c 'n=0; for i in $(seq 1 10); do for ip in '"$web_ips $svc_ip:80"'; do
    case $ip in *:*) url=http://$ip/ ;; *) url=http://$ip:8080/ ;; esac
    wget -q -O - "$url" >/dev/null && n=$((n+1)); done; done; echo "requests ok: $n"'
kubectl wait -n "$ns" pod/client --for=jsonpath='{.status.phase}'=Succeeded --timeout 60s
kubectl logs -n "$ns" client | tee "$work/client.txt"
kubectl delete pod -n "$ns" client --wait=false
requests=$(awk '/requests ok/ {print $3}' "$work/client.txt")
(( requests == 30 )) || fail "client: $requests of 30 requests succeeded"
step "status through the real pod proxy while the sink runs: OK for every pod, exit 0"
timeout 60 "$bpc" status -n "$ns" | tee "$work/status.txt" || fail "status exit $? with every agent healthy"
[[ $(grep -c 'OK$' "$work/status.txt") -ge 5 ]] || fail "status shows fewer than 5 OK lines"

sleep 2
for pid in "${pids[@]}"; do [[ $pid == "$sink_pid" || $pid == "$sim_pid" ]] || kill -INT "$pid" 2>/dev/null || true; done
kill -INT "$sink_pid" "$sim_pid"
wait "$sink_pid" || fail "sink failed: $(cat "$work/sink.log")"
wait "$sim_pid" || fail "bpc-sim receive failed: $(cat "$work/sim.log")"
pids=()

step "the sink got every packet: per pod, equal to tcpdump's on its veth; zero loss"
while read -r pod ip; do
  seen=$(tcpdump -n -r "$work/veth-$pod.pcap" 2>/dev/null | wc -l)
  got=$(tshark -r "$work/sink.pcapng" -Y "tcp.port == 8080 && ip.addr == $ip" 2>/dev/null | wc -l)
  ((seen > 0)) || fail "$pod: tcpdump saw no HTTP packets on ${veth[$pod]}"
  [[ $got == "$seen" ]] || fail "$pod ($ip): sink has $got HTTP packets, tcpdump on ${veth[$pod]} saw $seen"
  ok "$pod ($ip): $got HTTP packets at the sink = $seen on ${veth[$pod]}"
done < <(app_pods web)
# The sink (kubectl bpc sink) and the standalone receiver (bpc-sim receive), same map.
for receiver in sink sim; do
  jq -e '.totals.lost == 0' "$work/$receiver.json" >/dev/null ||
    fail "$receiver lost packets: $(jq -c .totals "$work/$receiver.json")"
  jq -e --arg w "$ns/deployment/web" '[.keys[] | select(.workload == $w)] | length == 1' "$work/$receiver.json" >/dev/null ||
    fail "$receiver did not label the web streams by workload with --map: $(jq -c '.keys' "$work/$receiver.json")"
done
ok "the sink and bpc-sim receive label the web streams $ns/deployment/web from the map, lost 0"

step "status with no GRE receiver on the collector (the sink stopped): a verdict that says so, exit 1"
# Traffic from the node meanwhile, so the agents keep sending into the void.
web_ip=$(app_pods web | awk 'NR == 1 {print $2}')
background sh -c "for i in \$(seq 1 100); do curl -s -o /dev/null --max-time 1 http://$web_ip:8080/; sleep 0.1; done"
sleep 2
set +e
timeout 60 "$bpc" status -n "$ns" web | tee "$work/status-nosink.txt"
code=$?
set -e
kill "${pids[-1]}" 2>/dev/null || true
((code == 1)) || fail "status exit $code, want 1"
grep -q 'COLLECTOR-UNREACHABLE' "$work/status-nosink.txt" || fail "no COLLECTOR-UNREACHABLE verdict"
ok "COLLECTOR-UNREACHABLE, exit 1"

step "attached with --metrics-port 9500, status still reads the agent"
"$bpc" attach sts/db -n "$ns" "${attach_opts[@]}" --metrics-port 9500 --wait --timeout 3m
timeout 60 "$bpc" status -n "$ns" sts/db -o json >"$work/status-9500.json" || true
jq -e '[.workloads[].pods[] | select(.stats != null and .stats.workload == "'"$ns"'/statefulset/db")] | length == 1' "$work/status-9500.json" >/dev/null ||
  fail "status did not read the agent on port 9500: $(jq -c '[.workloads[].pods[] | {pod: .name, verdict, reason}]' "$work/status-9500.json")"
ok "status read the agent on port 9500"
"$bpc" attach sts/db -n "$ns" "${attach_opts[@]}" --wait --timeout 3m

# ---------------------------------------------------------------- verify

step "verify: PASS, and the collectors are restored afterwards"
before_env=$(kubectl get deploy web -n "$ns" -o jsonpath='{.spec.template.spec.initContainers[?(@.name=="bpc-agent")].env}')
[[ $before_env == *BPC_COLLECTOR* ]] || fail "no env of the native sidecar bpc-agent in deploy/web: $before_env"
"$bpc" verify deploy/web -n "$ns" --sink "$BPC_SINK_IP" --timeout 120s | tee "$work/verify.txt"
grep -q PASS "$work/verify.txt" || fail "verify did not PASS"
after_env=$(kubectl get deploy web -n "$ns" -o jsonpath='{.spec.template.spec.initContainers[?(@.name=="bpc-agent")].env}')
[[ $before_env == "$after_env" ]] || fail "verify did not restore the sidecar's env: $before_env -> $after_env"
kubectl rollout status -n "$ns" deploy/web --timeout 120s
ok "PASS; the sidecar's env is as before"
# The pods that sent to the sink go before the next step counts pods.
for _ in $(seq 1 120); do
  [[ -z $(kubectl get pods -n "$ns" -l app=web -o jsonpath='{.items[?(@.metadata.deletionTimestamp)].metadata.name}') ]] && break
  sleep 0.5
done

step "verify --ephemeral: PASS with no rollout (same ReplicaSets, same pods)"
rs_before=$(kubectl get rs -n "$ns" -l app=web -o name | sort)
pods_before=$(app_pods web | awk '{print $1}' | sort)
web_ips=$(app_pods web | awk '{print $2}' | tr '\n' ' ')
background sh -c "for i in \$(seq 1 300); do for ip in $web_ips; do curl -s -o /dev/null --max-time 1 http://\$ip:8080/; done; sleep 0.1; done"
"$bpc" verify deploy/web -n "$ns" --ephemeral --image "$BPC_AGENT_IMAGE" --sink "$BPC_SINK_IP" --timeout 60s |
  tee "$work/verify-ephemeral.txt"
kill "${pids[-1]}" 2>/dev/null || true
grep -q PASS "$work/verify-ephemeral.txt" || fail "verify --ephemeral did not PASS"
[[ $(kubectl get rs -n "$ns" -l app=web -o name | sort) == "$rs_before" ]] || fail "verify --ephemeral made a ReplicaSet"
[[ $(app_pods web | awk '{print $1}' | sort) == "$pods_before" ]] || fail "verify --ephemeral replaced pods"
ok "PASS; no new ReplicaSet, the same pods"

# ---------------------------------------------------------------- netis

step "--gre-profile netis: map gives the keybit the agent sends, verify passes, sink --map-watch labels the stream"
"$bpc" attach sts/db -n "$ns" "${attach_opts[@]}" --gre-profile netis --wait --timeout 3m
"$bpc" map -n "$ns" -o json >"$work/map-netis.json"
jq -e '[.[] | select(.type == "pod" and .workload == "db")] | all(.profile == "netis" and (.key | ltrimstr("0x") | .[0:1]) == "0")' \
  "$work/map-netis.json" >/dev/null || fail "map does not give db's netis keybit: $(jq -c '[.[] | select(.workload == "db")]' "$work/map-netis.json")"
"$bpc" verify sts/db -n "$ns" --sink "$BPC_SINK_IP" --timeout 120s | tee "$work/verify-netis.txt"
grep -q PASS "$work/verify-netis.txt" || fail "verify of a netis sidecar did not PASS"
kubectl rollout status -n "$ns" sts/db --timeout 120s
db_ip=$(app_pods db | awk 'NR == 1 {print $2}')
background "$bpc" sink -n "$ns" --map-watch --listen "$collector" --duration 15 --quiet -o json >"$work/sink-netis.json" 2>"$work/sink-netis.log"
sink_pid=${pids[-1]}
sleep 3
for _ in $(seq 1 20); do curl -s -o /dev/null --max-time 1 "http://$db_ip:8080/" || true; sleep 0.2; done
wait "$sink_pid" || fail "sink --map-watch failed: $(cat "$work/sink-netis.log")"
pids=()
jq -e --arg w "$ns/statefulset/db" '[.streams[] | select(.profile == "netis" and .workload == $w)] | length >= 1' \
  "$work/sink-netis.json" >/dev/null || fail "sink --map-watch did not label the netis stream: $(jq -c '.streams' "$work/sink-netis.json")"
ok "netis: map keybit, verify PASS, sink labels $(jq -r '[.streams[] | select(.profile == "netis")][0].key' "$work/sink-netis.json") as $ns/statefulset/db"
"$bpc" attach sts/db -n "$ns" "${attach_opts[@]}" --wait --timeout 3m

# ---------------------------------------------------------------- map

step "map --watch across a rollout: old pod IPs deleted, new ones added"
old_ips=$(app_pods web | awk '{print $2}' | sort)
old_pods=$(app_pods web | awk '{print "pod/" $1}')
background "$bpc" map -n "$ns" --watch -o json >"$work/watch.jsonl" 2>"$work/watch.log"
sleep 2
kubectl rollout restart -n "$ns" deploy/web
kubectl rollout status -n "$ns" deploy/web --timeout 120s
# shellcheck disable=SC2086 # one argument per pod
kubectl wait -n "$ns" --for=delete $old_pods --timeout 60s
sleep 2
kill "${pids[-1]}"
pids=()
new_ips=$(app_pods web | awk '{print $2}' | sort)
for ip in $old_ips; do
  grep "\"$ip\"" "$work/watch.jsonl" | grep -qi 'delete' || fail "map --watch did not report old IP $ip deleted: $(cat "$work/watch.jsonl")"
done
for ip in $new_ips; do
  grep "\"$ip\"" "$work/watch.jsonl" | grep -qiE 'add|upsert' || fail "map --watch did not report new IP $ip added: $(cat "$work/watch.jsonl")"
done
ok "deleted: $(echo "$old_ips" | tr '\n' ' ')added: $(echo "$new_ips" | tr '\n' ' ')"

# ---------------------------------------------------------------- no-op

step "re-attach with the same options: unchanged, no rollout"
gen=$(kubectl get deploy web -n "$ns" -o jsonpath='{.metadata.generation}')
"$bpc" attach web -n "$ns" "${attach_opts[@]}" | tee "$work/again.txt"
grep -q unchanged "$work/again.txt" || fail "re-attach was not a no-op"
[[ $(kubectl get deploy web -n "$ns" -o jsonpath='{.metadata.generation}') == "$gen" ]] || fail "re-attach rolled the Deployment"
ok "unchanged, generation $gen"

# ---------------------------------------------------------------- refusals

sa_kubeconfig() { # SERVICEACCOUNT: $work/SERVICEACCOUNT.kubeconfig, the cluster as that account of $ns sees it
  local token server
  token=$(kubectl create token "$1" -n "$ns" --duration 1h)
  server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  kubectl config view --minify --raw -o json |
    jq --arg t "$token" '.users[0].user = {token: $t} | .clusters[0].cluster.server = "'"$server"'"' >"$work/$1.kubeconfig"
}

refused() { # namespace workload expected-message args...: attach fails with the message, writes nothing
  local rns=$1 w=$2 want=$3 spec out code
  shift 3
  spec=$(spec_json "$w" "$rns")
  set +e
  out=$("$bpc" attach "$w" -n "$rns" "${attach_opts[@]}" "$@" 2>&1)
  code=$?
  set -e
  echo "$out"
  ((code != 0)) || fail "attach $w in $rns was not refused"
  grep -qi -- "$want" <<<"$out" || fail "attach $w in $rns: the refusal does not say '$want'"
  [[ $(spec_json "$w" "$rns") == "$spec" ]] || fail "attach $w in $rns changed its spec although refused"
  ok "refused (exit $code, '$want'); $w unchanged"
}

step "refusals on the real server, each before anything is written"
kubectl create namespace bpc-e2e-restricted
kubectl label namespace bpc-e2e-restricted pod-security.kubernetes.io/enforce=restricted
app_deployment locked 1 '[sleep, "3600"]' 'securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}' \
  'securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}' | kubectl apply -n bpc-e2e-restricted -f -
refused bpc-e2e-restricted deploy/locked restricted

kubectl create namespace bpc-e2e-host
app_deployment hostnet 0 '[sleep, "3600"]' 'hostNetwork: true' | kubectl apply -n bpc-e2e-host -f -
refused bpc-e2e-host deploy/hostnet hostNetwork

refused "$ns" deploy/web "NET_RAW" --capabilities add

# The same request from an account that cannot read the namespace's labels:
# the client-side check cannot know the level, the server's dry-run Pod is
# what refuses it (Pod Security admission, for real).
kubectl create serviceaccount dryrunner -n "$ns"
kubectl create role bpc-dryrunner -n "$ns" --verb=get,list,patch --resource=deployments.apps
kubectl create role bpc-dryrunner-pods -n "$ns" --verb=create --resource=pods
kubectl create rolebinding bpc-dryrunner -n "$ns" --role=bpc-dryrunner --serviceaccount="$ns:dryrunner"
kubectl create rolebinding bpc-dryrunner-pods -n "$ns" --role=bpc-dryrunner-pods --serviceaccount="$ns:dryrunner"
sa_kubeconfig dryrunner
KUBECONFIG=$work/dryrunner.kubeconfig kubectl auth can-i get namespace "$ns" >/dev/null 2>&1 &&
  fail "the dryrunner account can read namespace $ns; the server's refusal would not be tested"
KUBECONFIG=$work/dryrunner.kubeconfig refused "$ns" deploy/web "would refuse its pods with the sidecar.*PodSecurity" \
  --capabilities add

# ---------------------------------------------------------------- --wait on refused pods

step "--wait on a rollout whose new pods the server refuses stops at the real FailedCreate"
# The pre-flight's dry-run Pod passes (baseline); the namespace then enforces
# restricted before the ReplicaSet creates the new pods (the Deployment is
# paused until then), so the real controller's create is refused.
kubectl create namespace bpc-e2e-late
kubectl label namespace bpc-e2e-late pod-security.kubernetes.io/enforce=baseline
app_deployment tight 1 '[sleep, "3600"]' | kubectl apply -n bpc-e2e-late -f -
kubectl rollout status -n bpc-e2e-late deploy/tight --timeout 60s
kubectl rollout pause -n bpc-e2e-late deploy/tight
"$bpc" attach deploy/tight -n bpc-e2e-late "${attach_opts[@]}" --wait --timeout 90s >"$work/late.txt" 2>&1 &
attach_pid=$!
pids+=("$attach_pid")
for _ in $(seq 1 120); do
  [[ $(template_containers deploy/tight bpc-e2e-late) != *bpc-agent* ]] || break
  sleep 0.25
done
[[ $(template_containers deploy/tight bpc-e2e-late) == *bpc-agent* ]] || fail "attach did not patch deploy/tight"
kubectl label namespace bpc-e2e-late pod-security.kubernetes.io/enforce=restricted --overwrite
kubectl rollout resume -n bpc-e2e-late deploy/tight
e2e_run "$work/late.txt" wait "$attach_pid" # late.txt has the attach's output
unset 'pids[-1]'
((code == 1)) || fail "attach --wait exit $code, want 1"
grep -q 'forbidden' "$work/late.txt" || fail "attach --wait did not report the refusal"
grep -q 'kubectl bpc detach deployment/tight -n bpc-e2e-late' "$work/late.txt" || fail "no rollback command printed"
ok "stopped at the FailedCreate (PodSecurity restricted) with the rollback command"

# ---------------------------------------------------------------- RBAC

step "RBAC: a ServiceAccount with the documented verbs can attach and read status; without pods/proxy, status names it"
kubectl create serviceaccount operator -n "$ns"
kubectl create role bpc-operator -n "$ns" --verb=get,list,patch --resource=deployments.apps,statefulsets.apps,daemonsets.apps
kubectl create rolebinding bpc-operator -n "$ns" --role=bpc-operator --serviceaccount="$ns:operator"
kubectl create role bpc-reader -n "$ns" --verb=get,list --resource=pods,pods/log,replicasets.apps,events,namespaces
kubectl create rolebinding bpc-reader -n "$ns" --role=bpc-reader --serviceaccount="$ns:operator"
kubectl create clusterrole bpc-e2e-namespace --verb=get --resource=namespaces
kubectl create clusterrolebinding bpc-e2e-namespace --clusterrole=bpc-e2e-namespace --serviceaccount="$ns:operator"
sa_kubeconfig operator
KUBECONFIG=$work/operator.kubeconfig "$bpc" attach ds/edge -n "$ns" "${attach_opts[@]}" --filter 'tcp port 8080' --wait --timeout 3m ||
  fail "the operator ServiceAccount could not attach"
set +e
KUBECONFIG=$work/operator.kubeconfig "$bpc" status -n "$ns" ds/edge | tee "$work/status-noproxy.txt"
set -e
grep -q 'pods/proxy' "$work/status-noproxy.txt" || fail "status without pods/proxy does not name the missing permission"
kubectl create role bpc-proxy -n "$ns" --verb=get --resource=pods/proxy
kubectl create rolebinding bpc-proxy -n "$ns" --role=bpc-proxy --serviceaccount="$ns:operator"
KUBECONFIG=$work/operator.kubeconfig "$bpc" status -n "$ns" ds/edge || fail "status with pods/proxy is not OK"
ok "attach and status with the documented verbs; the missing pods/proxy named"
"$bpc" attach ds/edge -n "$ns" "${attach_opts[@]}" --wait --timeout 3m

# ---------------------------------------------------------------- detach

step "detach --wait: every spec equals what it was before attach; the new pods have no sidecar"
"$bpc" detach web sts/db ds/edge -n "$ns" --wait --timeout 3m
for w in "${workloads[@]}"; do
  spec_json "$w" >"$work/after-${w#*/}.json"
  diff -u "$work/before-${w#*/}.json" "$work/after-${w#*/}.json" || fail "$w: spec after detach differs from before attach"
done
for app in web db edge; do
  while read -r pod _; do
    [[ $(pod_containers "$pod") != *bpc-agent* ]] ||
      fail "$pod still has bpc-agent"
  done < <(app_pods "$app")
done
ok "specs restored; no sidecar in the new pods"

# ---------------------------------------------------------------- capture now

step "kubectl bpc capture: ephemeral containers, no restart (scripts/e2e-cluster-capture.sh)"
KUBECTL_BPC=$bpc scripts/e2e-cluster-capture.sh

step "kubectl-bpc as a Wireshark extcap: tshark -i bpc (scripts/e2e-cluster-extcap.sh)"
KUBECTL_BPC=$bpc scripts/e2e-cluster-extcap.sh

# ---------------------------------------------------------------- service paths

step "service paths: sink --map-watch --paths across a rollout (scripts/e2e-cluster-paths.sh)"
KUBECTL_BPC=$bpc scripts/e2e-cluster-paths.sh

# ---------------------------------------------------------------- lifecycle

step "the sidecar's lifecycle: native and container forms, a CronJob, an agent that cannot capture (scripts/e2e-cluster-lifecycle.sh)"
KUBECTL_BPC=$bpc scripts/e2e-cluster-lifecycle.sh

# ---------------------------------------------------------------- verdicts

step "verdicts: unschedulable --wait and status, a collector with no receiver (scripts/e2e-cluster-verdicts.sh)"
KUBECTL_BPC=$bpc scripts/e2e-cluster-verdicts.sh

# ---------------------------------------------------------------- cluster-only tests

step "cluster-only tests (cargo test -- --ignored) against this cluster (attach + detach of web)"
cargo test --locked -p kubectl-bpc --test attach_mock -- --ignored

echo
echo "e2e-cluster ($mode): all passed in $((SECONDS - e2e_started)) s"
