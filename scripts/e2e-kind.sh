#!/usr/bin/env bash
# End-to-end on a real cluster (kind): build and load the agent image, deploy
# testdata/kind/app.yaml into a namespace that enforces Pod Security
# "baseline", attach with --wait, check the sidecar runs and its traffic
# reaches `kubectl bpc sink` on the host, re-attach (no-op), run the
# cluster-only tests, detach, and delete the cluster.
#
# Needs: docker, kind, kubectl, cargo, libpcap-dev, and root for the sink's
# raw GRE socket (sudo is used when not root). Runs in GitHub Actions
# (.github/workflows/e2e-kind.yml); it cannot run on machines without a
# container engine.
#
# Usage: scripts/e2e-kind.sh            (KEEP_CLUSTER=1 keeps it afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=${BPC_KIND_CLUSTER:-bpc-e2e}
ns=bpc-e2e
version=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="kubectl-bpc"))')
image="ghcr.io/kubectl-bpc/bpc-agent:$version"
work=$(mktemp -d)
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"

for tool in docker kind kubectl cargo; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 2; }
done

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
  if [[ -f $work/sink.pid ]]; then $sudo kill "$(cat "$work/sink.pid")" 2>/dev/null || true; fi
  if [[ ${KEEP_CLUSTER:-0} != 1 ]]; then kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step "build kubectl-bpc and the agent image $image"
cargo build --release --locked -p kubectl-bpc
export PATH="$PWD/target/release:$PATH"
docker build -f agent/Dockerfile -t "$image" .

step "kind cluster $cluster"
kind create cluster --name "$cluster" --wait 180s
kind load docker-image "$image" --name "$cluster"
kubectl create namespace "$ns"
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=baseline
kubectl apply -n "$ns" -f testdata/kind/app.yaml
kubectl rollout status -n "$ns" deploy/web --timeout=180s

# The collector is this host, as the pods see it: the kind network's gateway.
collector=$(docker network inspect kind -f '{{range .IPAM.Config}}{{if .Gateway}}{{.Gateway}} {{end}}{{end}}' |
  tr ' ' '\n' | grep -E '^[0-9.]+$' | head -1)
[[ -n $collector ]] || fail "no IPv4 gateway on the kind network"
key=$(kubectl-bpc inject -n "$ns" -f testdata/kind/app.yaml --collector "$collector" 2>/dev/null |
  grep -o '"key":"0x[0-9a-f]*"' | head -1 | cut -d'"' -f4)

step "sink on $collector, expecting workload key $key"
$sudo "$PWD/target/release/kubectl-bpc" sink --listen "$collector" --duration 120 -o json \
  --expect "key=$key packets>=10" >"$work/sink.json" 2>"$work/sink.log" &
echo $! >"$work/sink.pid"

step "attach (dry run, then for real with --wait)"
kubectl bpc attach web -n "$ns" --collector "$collector" --dry-run --diff | tee "$work/diff.txt"
grep -q '+      - name: bpc-agent' "$work/diff.txt" || fail "dry-run diff does not add the sidecar"
kubectl bpc attach web -n "$ns" --collector "$collector" --wait --timeout 3m

step "the sidecar runs in every pod"
for pod in $(kubectl get pods -n "$ns" -l app=web -o name); do
  state=$(kubectl get -n "$ns" "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="bpc-agent")].state}')
  [[ $state == *running* ]] || fail "$pod: bpc-agent is not running: $state"
done

step "traffic to the app, then status"
# shellcheck disable=SC2016 # expanded by the pod's shell
kubectl run -n "$ns" client --image=curlimages/curl:8.10.1 --restart=Never --rm -i --command -- \
  sh -c 'for i in $(seq 1 50); do curl -s -o /dev/null http://web/; done'
sleep 5
kubectl bpc status -n "$ns" || fail "status is not OK"

step "re-attach with the same options changes nothing"
kubectl bpc attach web -n "$ns" --collector "$collector" | tee "$work/again.txt"
grep -q unchanged "$work/again.txt" || fail "re-attach was not a no-op"

step "sink report"
$sudo kill -INT "$(cat "$work/sink.pid")" 2>/dev/null || true
wait "$(cat "$work/sink.pid")" || fail "sink expectation failed: $(cat "$work/sink.log")"
rm -f "$work/sink.pid"
cat "$work/sink.json"

step "detach"
kubectl bpc detach web -n "$ns" --wait --timeout 3m
if kubectl get deploy web -n "$ns" -o jsonpath='{.spec.template.spec.containers[*].name}' | grep -qw bpc-agent; then
  fail "bpc-agent still in the template after detach"
fi

step "cluster-only tests"
KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config} cargo test --release --locked -p kubectl-bpc -- --ignored

echo
echo "e2e-kind: all passed"
