#!/usr/bin/env bash
# Times `kubectl bpc inject` on inputs that stress the manifest reader:
# 200 KB of nested brackets (which once took tens of seconds: the YAML
# parser's cost is the nesting depth times the length) and a large real
# manifest (4000 Deployments, 1.2 MB). A measurement, not a test: the
# figures go in docs/guide.md ("What inject reads").
#
#   scripts/bench-manifests.sh [BIN]     # default target/debug/kubectl-bpc
set -euo pipefail

bin=${1:-target/debug/kubectl-bpc}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
n = 100_000
open(f"{d}/nested-seq.yaml", "w").write("[" * n + "]" * n + "\n")
open(f"{d}/nested-value.yaml", "w").write("a: " + "[" * n + "]" * n + "\n")
open(f"{d}/nested-map.yaml", "w").write("a: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n")
deploy = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web{i}
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web{i}
  template:
    metadata:
      labels:
        app: web{i}
    spec:
      containers:
      - name: app
        image: nginx
"""
open(f"{d}/large.yaml", "w").write("---\n".join(deploy.format(i=i) for i in range(4000)))
PY

printf '%-18s %10s %6s %8s\n' input bytes exit seconds
for f in nested-seq nested-value nested-map large; do
  start=$(date +%s.%N)
  set +e
  "$bin" inject -f "$dir/$f.yaml" --collector 198.18.0.2 >/dev/null 2>&1
  rc=$?
  set -e
  end=$(date +%s.%N)
  printf '%-18s %10d %6d %8.2f\n' "$f" "$(wc -c <"$dir/$f.yaml")" "$rc" "$(echo "$end - $start" | bc)"
done
