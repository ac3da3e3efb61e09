# shellcheck shell=bash
# What the e2e scripts share (sourced, not run), so the scenarios cannot
# drift apart: the report lines and the test app's Deployment of the cluster
# scenarios, the counted checks and the setup and cleanup of the netns ones.
# A script may set e2e_tag (e.g. "capture") before sourcing.

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

# e2e_kill_background: ends what a scenario started in the background (the
# pids in its array `pids`) and reaps it.
e2e_kill_background() {
  local pid
  # shellcheck disable=SC2154 # pids is the sourcing script's
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
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
