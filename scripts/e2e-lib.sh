# shellcheck shell=bash
# What the e2e scripts share (sourced, not run), so the scenarios cannot
# drift apart: the report lines and the test app's Deployment; for the
# cluster scenarios the checks before a run, the exit trap and the sink's
# stop; for the netns ones the counted checks, the setup and the cleanup.
# A script may set e2e_tag (e.g. "capture"): its step lines carry it.

e2e_started=$SECONDS
step() { printf '\n== [%s%3ds] %s\n' "${e2e_tag:+$e2e_tag }" "$((SECONDS - e2e_started))" "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok - $*"; }

# app_deployment NAME REPLICAS [COMMAND] [POD-SPEC LINE] [CONTAINER LINE]:
# a Deployment of $BPC_APP_IMAGE labelled app=NAME, its container named app,
# port 8080 named http. COMMAND is a YAML list; the default serves NAME with
# busybox httpd on 8080.
app_deployment() {
  local command=${3:-"[sh, -c, 'mkdir -p /tmp/www && echo $1 > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']"}
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $1, labels: {app: $1}}
spec:
  replicas: $2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec:
      terminationGracePeriodSeconds: 1
      ${4:-}
      containers:
      - name: app
        image: $BPC_APP_IMAGE
        imagePullPolicy: IfNotPresent
        command: $command
        ports: [{containerPort: 8080, name: http}]
        ${5:-}
EOF
}

# pids: what a scenario starts in the background; e2e_kill_background ends
# those (SIGTERM) and reaps every child left.
pids=()
e2e_kill_background() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# e2e_run FILE CMD...: runs CMD with its output added to FILE, then shows
# FILE, and sets code to CMD's exit code (a failure does not end the
# scenario). FILE may hold output already: `e2e_run FILE wait PID` for a
# background command that writes to FILE.
e2e_run() {
  local file=$1
  shift
  set +e
  "$@" >>"$file" 2>&1
  # shellcheck disable=SC2034 # code is the caller's
  code=$?
  set -e
  cat "$file"
}

# e2e_cluster_needs NAME TOOL...: for a cluster scenario (that may run
# alone): exits 2 with a line "NAME: ..." unless BPC_AGENT_IMAGE,
# BPC_APP_IMAGE and BPC_NODE_IP are set (scripts/cluster.sh env gives them)
# and every TOOL is on PATH; sets bpc, the kubectl-bpc binary (KUBECTL_BPC,
# by default the debug build), and exits 2 unless it is built.
e2e_cluster_needs() {
  local name=$1 v tool
  shift
  for v in BPC_AGENT_IMAGE BPC_APP_IMAGE BPC_NODE_IP; do
    [[ -n ${!v:-} ]] || { echo "$name: $v is not set (eval \"\$(scripts/cluster.sh env)\")" >&2; exit 2; }
  done
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name: $tool is required" >&2; exit 2; }
  done
  bpc=${KUBECTL_BPC:-${CARGO_TARGET_DIR:-target}/debug/kubectl-bpc}
  [[ -x $bpc ]] || { echo "$name: $bpc not built (cargo build -p kubectl-bpc)" >&2; exit 2; }
}

# e2e_cluster_cleanup RC NAME WORK SHOW TIMEOUT NAMESPACE...: the end of a
# cluster scenario, from its EXIT trap (RC: the exit code it ends with).
# Ends its background processes (e2e_kill_background); when RC is not 0,
# says "NAME: failed" and runs the command SHOW (the pods and logs that
# explain the failure); deletes the NAMESPACEs (kubectl delete --timeout
# TIMEOUT) and the work directory, which a failed run keeps and names when
# WORK is "keep" (with "remove" the failure line announces SHOW's logs).
# Every command here returns 0: one that fails would end the trap early
# (errexit), leaving the namespaces behind.
e2e_cluster_cleanup() {
  local rc=$1 name=$2 keep=$3 show=$4 timeout=$5
  shift 5
  e2e_kill_background
  if ((rc != 0)); then
    if [[ $keep == keep ]]; then
      echo "$name: failed (exit $rc); work files in $work" >&2
    else
      echo "$name: failed (exit $rc); logs:" >&2
    fi
    "$show"
  fi
  kubectl delete namespace "$@" --ignore-not-found --timeout "$timeout" >/dev/null 2>&1 || true
  if [[ $keep != keep ]] || ((rc == 0)); then rm -rf "$work"; fi
}

# e2e_capture_setup TAG PREFIX SHOW: for a capture scenario
# (scripts/e2e-cluster-TAG.sh): sets e2e_tag (TAG), ns (PREFIX-PID, its
# namespace), restricted (PREFIX-r-PID, the one for e2e_restricted_pod),
# work (a temporary directory) and the EXIT trap (e2e_cluster_cleanup):
# SHOW after a failure; both namespaces and work deleted in any case.
e2e_capture_setup() {
  e2e_tag=$1 ns="$2-$$" restricted="$2-r-$$"
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # all but the exit code are fixed now
  trap "e2e_cluster_cleanup \$? e2e-cluster-$1 remove $3 120s $ns $restricted" EXIT
}

# e2e_stop_sink: Ctrl-C to the scenario's `kubectl bpc sink` (pid in
# sink_pid, emptied: its EXIT trap has no sink to stop then), which must
# exit 0; else the failure shows the end of its log, $work/sink.log.
e2e_stop_sink() {
  local rc=0
  kill -INT "$sink_pid"
  wait "$sink_pid" || rc=$?
  sink_pid=
  ((rc == 0)) || fail "sink exited $rc: $(tail -n 5 "$work/sink.log")"
}

# e2e_show_logs LINES: the last LINES lines of every log in $work, to stderr.
e2e_show_logs() {
  local f
  for f in "$work"/*.log; do
    if [[ -e $f ]]; then echo "--- $f" >&2; tail -n "$1" "$f" >&2; fi
  done
}

# e2e_restricted_pod NS: namespace NS enforcing Pod Security restricted and
# in it pod locked (labelled app=locked; an httpd that complies), Running.
e2e_restricted_pod() {
  kubectl create namespace "$1" >/dev/null
  kubectl label namespace "$1" pod-security.kubernetes.io/enforce=restricted >/dev/null
  kubectl apply -n "$1" -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: locked, labels: {app: locked}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: $BPC_APP_IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'mkdir -p /tmp/www && exec httpd -f -p 8080 -h /tmp/www']
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
EOF
  kubectl wait -n "$1" pod/locked --for=jsonpath='{.status.phase}'=Running --timeout 90s >/dev/null
}

# The netns scenarios run every check and count: check NAME EXIT-CODE prints
# one result line; e2e_summary NAME prints the tally and fails if one failed.
passed=0 failed=0
check() {
  if [[ $2 -eq 0 ]]; then
    echo "ok   - $1"
    passed=$((passed + 1))
  else
    echo "FAIL - $1"
    failed=$((failed + 1))
  fi
}
e2e_summary() {
  echo "$1: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}

# e2e_netns_setup NAME CLUSTER [BIN_DIR]: for a netns scenario run as root:
# sets bin (BIN_DIR, default target/debug, with bpc-agent and bpc-sim built
# if missing), cluster (CLUSTER, unique per run: parallel runs never share a
# namespace) and work (a temporary directory), and a trap that stops the
# receiver (pid in $receiver), removes the namespaces and, when every check
# passed and BPC_E2E_KEEP is unset, the work directory.
e2e_netns_setup() {
  e2e_name=$1 cluster=$2
  [[ $(id -u) -eq 0 ]] || { echo "$e2e_name: run as root (it creates network namespaces)" >&2; exit 2; }
  bin=${3:-target/debug}
  if [[ ! -x $bin/bpc-agent || ! -x $bin/bpc-sim ]]; then
    cargo build -p bpc-agent -p bpc-sim
  fi
  bin=$(realpath "$bin")
  work=$(mktemp -d "/tmp/bpc-$e2e_name.XXXXXX")
  receiver=
  trap e2e_netns_cleanup EXIT
  trap 'exit 130' INT TERM
}
# e2e_stop_receiver: Ctrl-C to the receiver (pid in $receiver), which must
# exit 0 with its report written; its log to stderr.
e2e_stop_receiver() {
  local rc=0
  kill -INT "$receiver"
  wait "$receiver" || rc=$?
  receiver=
  check "receiver exits 0 on SIGINT" "$rc"
  cat "$work/receiver.log" >&2
}
e2e_netns_cleanup() {
  [[ -n $receiver ]] && kill "$receiver" 2>/dev/null
  bpc_ns_down "$cluster"
  if [[ $failed -eq 0 && -z ${BPC_E2E_KEEP:-} ]]; then rm -rf "$work"; else echo "$e2e_name: files kept in $work" >&2; fi
}
