#!/usr/bin/env bash
# Verdicts you can trust (issue 25), on a real cluster (scripts/e2e-cluster.sh
# calls it, it can also run alone):
#   1. two Deployments made unschedulable by the sidecar's request (--cpu 3
#      on a 2-core node): `attach --wait --timeout 60s` follows both together
#      and ends within 90 s, exit 1, naming "Insufficient cpu" for each;
#      `status` says UNSCHEDULABLE with the scheduler's message and --cpu;
#   2. a collector address where nothing receives GRE (the node, no sink):
#      `status` exits 1 with COLLECTOR-UNREACHABLE naming the collector and
#      the ICMP reason, and the agent's /healthz (through the pod proxy) says
#      the same.
# Step 1 of scripts/e2e-cluster-lifecycle.sh asserts the third: `status`
# exits 0 straight after `attach --wait` while old pods terminate.
#
# Environment (scripts/cluster.sh env): KUBECONFIG, PATH with kubectl,
# BPC_AGENT_IMAGE, BPC_APP_IMAGE, BPC_NODE_IP; KUBECTL_BPC (default
# target/debug/kubectl-bpc). Needs jq and curl. Uses its own namespace
# bpc-verdicts-PID and deletes it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/e2e-lib.sh
source scripts/e2e-lib.sh
e2e_cluster_needs e2e-cluster-verdicts jq curl
ns="bpc-verdicts-$$"
work=$(mktemp -d /tmp/bpc-e2e-cluster-verdicts.XXXXXX)
e2e_tag=verdicts

show_failure() { kubectl get pods -n "$ns" -o wide >&2 2>/dev/null || true; }
trap 'e2e_cluster_cleanup $? e2e-cluster-verdicts keep show_failure 120s "$ns"' EXIT

kubectl create namespace "$ns" >/dev/null
for d in v1 v2; do app_deployment "$d" 1; echo ---; done | kubectl apply -n "$ns" -f -
for d in v1 v2; do kubectl rollout status -n "$ns" "deploy/$d" --timeout 120s; done

# ---------------------------------------------------------------- unschedulable

step "attach --cpu 3 (a 2-core node) to v1 and v2 --wait --timeout 60s: both fail early, together"
started=$SECONDS
e2e_run "$work/attach.txt" "$bpc" attach deploy/v1 deploy/v2 -n "$ns" --collector "$BPC_NODE_IP" \
  --image "$BPC_AGENT_IMAGE" --cpu 3 --cpu-limit 3 --wait --timeout 60s
took=$((SECONDS - started))
echo "attach --wait: exit $code in $took s"
((code == 1)) || fail "attach --wait exit $code, want 1"
((took <= 90)) || fail "attach --wait took $took s with --timeout 60s"
for d in v1 v2; do
  grep -q "deployment.apps/$d in namespace $ns: rollout failed: pod $d-.* is unschedulable: .*Insufficient cpu" \
    "$work/attach.txt" || fail "attach does not name $d and Insufficient cpu"
done
ok "attach --wait: exit 1 in $took s, Insufficient cpu named for v1 and v2"

e2e_run "$work/status-unschedulable.txt" timeout 60 "$bpc" status -n "$ns" deploy/v1
((code == 1)) || fail "status exit $code, want 1"
grep -q "deployment/v1 .* UNSCHEDULABLE$" "$work/status-unschedulable.txt" || fail "v1 is not UNSCHEDULABLE"
grep -q 'UNSCHEDULABLE: pod cannot be scheduled: .*Insufficient cpu' "$work/status-unschedulable.txt" ||
  fail "status does not say UNSCHEDULABLE with the scheduler's message"
grep -q 'hint: the bpc-agent sidecar requests --cpu 3' "$work/status-unschedulable.txt" ||
  fail "the hint does not name the sidecar's --cpu"
ok "status: UNSCHEDULABLE, Insufficient cpu, the hint names --cpu 3; exit 1"

# ---------------------------------------------------------------- no receiver

step "re-attach v1 with the default requests, collector $BPC_NODE_IP where nothing receives GRE"
"$bpc" attach deploy/v1 -n "$ns" --collector "$BPC_NODE_IP" --image "$BPC_AGENT_IMAGE" --wait --timeout 2m
pod=$(kubectl get pods -n "$ns" -l app=v1 -o json |
  jq -r '[.items[] | select(.metadata.deletionTimestamp == null and .status.phase == "Running")][0].metadata.name')
ip=$(kubectl get pod -n "$ns" "$pod" -o jsonpath='{.status.podIP}')
# A few requests, a second apart: an idle pod whose every send bounces.
for _ in 1 2 3 4 5; do curl -s -o /dev/null --max-time 1 "http://$ip:8080/" || true; sleep 1; done
e2e_run "$work/status-noreceiver.txt" timeout 60 "$bpc" status -n "$ns" deploy/v1
((code == 1)) || fail "status exit $code with no GRE receiver, want 1"
grep -q "$pod COLLECTOR-UNREACHABLE: collector $BPC_NODE_IP.* unreachable: .*ICMP" "$work/status-noreceiver.txt" ||
  fail "status does not name the collector and the ICMP reason"
# /healthz answers 503 (kubectl shows no body then); /stats carries the same
# verdict with its reason (one function makes both).
if healthz=$(kubectl get --raw "/api/v1/namespaces/$ns/pods/$pod:9469/proxy/healthz" 2>&1); then
  fail "the agent's /healthz is OK: $healthz"
fi
[[ $healthz == *ServiceUnavailable* ]] || fail "the agent's /healthz: $healthz"
reason=$(kubectl get --raw "/api/v1/namespaces/$ns/pods/$pod:9469/proxy/stats" | jq -r '.health.reason')
echo "/healthz: 503; /stats health: $reason"
[[ $reason == *"collector $BPC_NODE_IP unreachable"*ICMP* ]] || fail "the agent's health does not agree: $reason"
ok "status: COLLECTOR-UNREACHABLE naming $BPC_NODE_IP and ICMP, exit 1; /healthz agrees"
