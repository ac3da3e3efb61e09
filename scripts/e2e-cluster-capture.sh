#!/usr/bin/env bash
# The `kubectl bpc capture` scenario on a running cluster (scripts/e2e-cluster.sh
# calls it at its end; it can also run alone). Every step asserts what it claims:
#   1. capture -w FILE from a running Deployment pod while a client makes N HTTP
#      requests: the pod's UID and restart counts stay as they were, the file
#      opens in tshark and holds exactly the client's N HTTP GET requests (by
#      URI), the capture container ended with exit 0 and status --captures
#      shows the agent's final tally;
#   2. capture --collector to `kubectl bpc sink` on the node: every packet the
#      agent sent reached the sink, zero loss;
#   3. capture in a namespace enforcing Pod Security restricted: refused before
#      anything is written (exit 2, no file, no ephemeral container).
#
# Environment (scripts/cluster.sh env gives all but the last): kubectl's
# cluster (KUBECONFIG or its current context), BPC_AGENT_IMAGE, BPC_APP_IMAGE, BPC_NODE_IP (an address of the node the pods
# can reach, where the sink listens), KUBECTL_BPC (the kubectl-bpc binary).
# Needs root (the sink's raw socket), kubectl, tshark and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BPC_AGENT_IMAGE:?set BPC_AGENT_IMAGE}" "${BPC_APP_IMAGE:?set BPC_APP_IMAGE}"
: "${BPC_NODE_IP:?set BPC_NODE_IP}"
bpc=${KUBECTL_BPC:?set KUBECTL_BPC to the kubectl-bpc binary}
requests=${BPC_CAPTURE_REQUESTS:-20}
# shellcheck source=scripts/e2e-lib.sh
source scripts/e2e-lib.sh
e2e_capture_setup capture bpc-cap show_failure

show_failure() {
  e2e_show_logs 30
  kubectl get pods -n "$ns" -o wide >&2 2>/dev/null || true
}

# app_pod NS NAME-PREFIX LABEL: the one running pod of label app=LABEL.
app_pod() {
  kubectl get pods -n "$1" -l "app=$2" --field-selector status.phase=Running -o jsonpath='{.items[0].metadata.name}'
}

# client NS NAME URL N: a pod that GETs URL?n=1 .. URL?n=N; asserts all N succeeded.
client() {
  # shellcheck disable=SC2016 # expanded by the client pod's shell
  kubectl run "$2" -n "$1" --image "$BPC_APP_IMAGE" --image-pull-policy IfNotPresent --restart Never \
    --command -- sh -c 'n=0; for i in $(seq 1 '"$4"'); do wget -q -O /dev/null "'"$3"'?n=$i" && n=$((n+1)); done
      echo "requests ok: $n"' >/dev/null
  kubectl wait -n "$1" "pod/$2" --for=jsonpath='{.status.phase}'=Succeeded --timeout 90s >/dev/null ||
    fail "client $2 did not finish: $(kubectl logs -n "$1" "$2" 2>&1 | tail -n 5)"
  local got
  got=$(kubectl logs -n "$1" "$2" | awk '/requests ok/ {print $3}')
  [[ $got == "$4" ]] || fail "client $2: $got of $4 requests succeeded"
}

# wait_capturing NS POD LOG: until the capture container of POD says it captures.
wait_capturing() {
  local name=""
  for _ in $(seq 1 120); do
    name=$(sed -n 's/.*added ephemeral container \(bpc-capture-[a-z0-9-]*\).*/\1/p' "$3" | head -n 1)
    if [[ -n $name ]] && kubectl logs -n "$1" "$2" -c "$name" 2>/dev/null | grep -q 'capturing'; then
      echo "$name"
      return 0
    fi
    sleep 0.5
  done
  fail "no capture container of $2 started capturing: $(cat "$3")"
}

# capture_during_requests CLIENT LOG TARGET ARGS...: `kubectl bpc capture
# TARGET ARGS...` (stderr to LOG) until the capture container of $pod runs
# (its name in $name), CLIENT's $requests HTTP requests to $ip, then Ctrl-C:
# the capture must exit 0.
capture_during_requests() {
  local client_name=$1 log=$2 target=$3 cap_pid rc=0
  shift 3
  "$bpc" capture -n "$ns" "$target" --image "$BPC_AGENT_IMAGE" --filter 'tcp port 8080' --duration 120s \
    "$@" 2>"$log" &
  cap_pid=$!
  pids+=("$cap_pid")
  name=$(wait_capturing "$ns" "$pod" "$log")
  client "$ns" "$client_name" "http://$ip:8080/" "$requests"
  sleep 2
  kill -INT "$cap_pid"
  wait "$cap_pid" || rc=$?
  ((rc == 0)) || fail "capture $target $* exited $rc: $(cat "$log")"
}

# exit_code NS POD CONTAINER: the terminated exit code of an ephemeral container.
exit_code() {
  kubectl get pod -n "$1" "$2" -o json |
    jq -r --arg c "$3" '.status.ephemeralContainerStatuses[] | select(.name == $c) | .state.terminated.exitCode // "running"'
}

identity() { kubectl get pod -n "$1" "$2" -o json | jq -c '{uid: .metadata.uid, restarts: [.status.containerStatuses[].restartCount]}'; }

step "a Deployment of the test app in namespace $ns (Pod Security baseline)"
kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=baseline >/dev/null
app_deployment web 1 | kubectl apply -n "$ns" -f - >/dev/null
kubectl rollout status -n "$ns" deploy/web --timeout 120s >/dev/null
pod=$(app_pod "$ns" web web)
ip=$(kubectl get pod -n "$ns" "$pod" -o jsonpath='{.status.podIP}')
before=$(identity "$ns" "$pod")
ok "pod $pod ($ip): $before"

step "capture -w FILE from pod/$pod while a client makes $requests HTTP requests; Ctrl-C ends it"
capture_during_requests client-w "$work/capture-w.log" "pod/$pod" -w "$work/web.pcapng"
ok "capture exit 0: $(grep -c . "$work/capture-w.log") lines on stderr"

step "the pod was not restarted: UID and restart counts as before"
after=$(identity "$ns" "$pod")
[[ $after == "$before" ]] || fail "pod changed: before $before, after $after"
ok "$after"

step "the file opens in tshark and holds exactly the client's $requests HTTP GET requests"
uris=$(tshark -r "$work/web.pcapng" -Y 'http.request.method == "GET"' -T fields -e http.request.uri \
  2>"$work/tshark.log" | sort)
expected=$(for i in $(seq 1 "$requests"); do echo "/?n=$i"; done | sort)
gets=$(grep -c . <<<"$uris" || true)
[[ $uris == "$expected" ]] || fail "tshark finds $gets GET requests: $(diff <(echo "$expected") <(echo "$uris") | head -n 5)"
ifaces=$(tshark -r "$work/web.pcapng" -T fields -e frame.interface_name 2>/dev/null | sort -u)
[[ $ifaces == "$ns/$pod" ]] || fail "interface names in the file: $ifaces"
ok "$gets GET requests, on interface $ifaces"

step "the capture container $name ended with exit 0 and stays listed as terminated"
code=$(exit_code "$ns" "$pod" "$name")
[[ $code == 0 ]] || fail "$name: $code"
"$bpc" status -n "$ns" --captures | tee "$work/status.log"
grep -q "$name.*finished.*stopped after" "$work/status.log" ||
  fail "status does not list $name as finished with the agent's tally"
ok "$name terminated, exit 0; status --captures shows the agent's tally"

step "capture --collector $BPC_NODE_IP to kubectl bpc sink: zero loss"
"$bpc" sink --listen "$BPC_NODE_IP" --duration 120 --quiet -o json >"$work/sink.json" 2>"$work/sink.log" &
sink_pid=$!
pids+=("$sink_pid")
sleep 1
capture_during_requests client-c "$work/capture-c.log" deploy/web --collector "$BPC_NODE_IP"
kill -INT "$sink_pid"
wait "$sink_pid" || fail "sink failed: $(cat "$work/sink.log")"
sent=$(sed -n "s/.*sent to $BPC_NODE_IP \([0-9]*\) packets.*/\1/p" "$work/capture-c.log")
# Only this pod's stream: other agents on a shared cluster may send to the node too.
mine=$(jq -c --arg ip "$ip" '[.streams[] | select(.source == $ip)]' "$work/sink.json")
received=$(jq '[.[].packets] | add // 0' <<<"$mine")
jq -e 'length == 1 and .[0].lost == 0' <<<"$mine" >/dev/null || fail "the pod's stream at the sink: $mine"
{ [[ -n $sent ]] && ((sent > 0)); } || fail "no 'sent to' count from the agent: $(cat "$work/capture-c.log")"
[[ $received == "$sent" ]] || fail "the agent sent $sent packets, the sink received $received"
[[ $(identity "$ns" "$pod") == "$before" ]] || fail "pod changed after the collector capture"
ok "the agent sent $sent packets, the sink received $received, lost 0; pod unchanged"

step "a capture in namespace $restricted (enforce: restricted) is refused before anything is written"
e2e_restricted_pod "$restricted"
rc=0
"$bpc" capture -n "$restricted" pod/locked --image "$BPC_AGENT_IMAGE" -w "$work/locked.pcapng" \
  2>"$work/capture-r.log" || rc=$?
((rc == 2)) || fail "capture in a restricted namespace exited $rc, not 2: $(cat "$work/capture-r.log")"
grep -q "restricted" "$work/capture-r.log" || fail "the refusal does not name restricted: $(cat "$work/capture-r.log")"
[[ ! -e $work/locked.pcapng ]] || fail "the output file was created"
ephemeral=$(kubectl get pod -n "$restricted" locked -o jsonpath='{.spec.ephemeralContainers}')
[[ -z $ephemeral ]] || fail "the pod got an ephemeral container: $ephemeral"
ok "exit 2, no file, no ephemeral container: $(head -n 1 "$work/capture-r.log")"

echo
echo "e2e-cluster-capture: all passed in $((SECONDS - e2e_started)) s"
