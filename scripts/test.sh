#!/usr/bin/env bash
# The one test command (README, CI): installs dependencies, then checks
# formatting, lints, runs every test of the workspace, the netns end to end,
# and the end to end on a real local Kubernetes cluster (docs/cluster.md).
# Needs root: the tests build network namespaces (a pod is one network
# namespace) and the cluster runs containerd and the kubelet.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== shellcheck"
shellcheck -x scripts/*.sh scripts/cluster/*.sh .ci/run

echo "== upstream Kubernetes binaries (scripts/cluster.sh build: from the Go module proxy, cached by version)"
scripts/cluster.sh build
# The cargo tests' peer (kubectl patch --local, kubectl kustomize) is the
# cluster's pinned kubectl, whatever else the machine has.
PATH="$(scripts/cluster.sh bin):$PATH"

echo "== cargo test"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"

echo "== e2e (netns pods)"
scripts/e2e-netns.sh "${CARGO_TARGET_DIR:-target}/debug"

echo "== e2e (netns service paths)"
scripts/e2e-netns-paths.sh "${CARGO_TARGET_DIR:-target}/debug"

echo "== e2e (a real Kubernetes cluster: scripts/cluster.sh up, the scenario, down)"
scripts/e2e-cluster.sh

echo "== test.sh: all passed"
