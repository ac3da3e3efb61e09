#!/usr/bin/env bash
# kubectl-bpc as a Wireshark extcap on a running cluster (scripts/e2e-cluster.sh
# calls it; it can also run alone), with Debian's tshark as the peer:
#   1. `kubectl bpc extcap install` (into a scratch HOME): `tshark -D` lists bpc;
#   2. `tshark -i bpc -o extcap.bpc.namespace:NS -o extcap.bpc.target:deploy/web`
#      while a client makes N HTTP requests to each of the Deployment's two
#      pods, stopped as a user stops it (SIGINT to tshark, which ends the
#      extcap): every request is in the file, one interface per pod, no pod
#      restarted, every capture container exited 0, and `tshark -N n` shows the
#      pods' names from the file's Name Resolution Block;
#   3. the same in a namespace enforcing Pod Security restricted: tshark
#      reports the extcap's one-line refusal;
#   4. `extcap uninstall`: tshark no longer lists bpc.
#
# Environment: as scripts/e2e-cluster-capture.sh (KUBECONFIG, BPC_AGENT_IMAGE,
# BPC_APP_IMAGE, KUBECTL_BPC). Needs kubectl, tshark and jq.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BPC_AGENT_IMAGE:?set BPC_AGENT_IMAGE}" "${BPC_APP_IMAGE:?set BPC_APP_IMAGE}"
bpc=${KUBECTL_BPC:?set KUBECTL_BPC to the kubectl-bpc binary}
requests=${BPC_CAPTURE_REQUESTS:-10}
# shellcheck source=scripts/e2e-lib.sh
source scripts/e2e-lib.sh
e2e_capture_setup extcap bpc-ext show_failure

show_failure() { e2e_show_logs 30; }

# Wireshark's personal folders follow HOME: the install stays in the scratch directory.
export KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config}
export HOME=$work/home
unset XDG_CONFIG_HOME
mkdir -p "$HOME"
tshark_() { tshark "$@" 2> >(grep -v 'Running as user' >&2); }

step "extcap install: tshark -D lists the bpc interface"
"$bpc" extcap install | tee "$work/install.log"
tshark_ -D | grep -x '[0-9]*\. bpc (Kubernetes workloads (kubectl bpc))' || fail "tshark -D does not list bpc"

step "a Deployment of two pods in namespace $ns"
kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=baseline >/dev/null
app_deployment web 2 | kubectl apply -n "$ns" -f - >/dev/null
kubectl rollout status -n "$ns" deploy/web --timeout 120s >/dev/null
pods_json() { kubectl get pods -n "$ns" -l app=web -o json; }
before=$(pods_json | jq -c '[.items[] | {name: .metadata.name, uid: .metadata.uid, restarts: [.status.containerStatuses[].restartCount]}] | sort_by(.name)')
mapfile -t ips < <(pods_json | jq -r '.items[].status.podIP')
ok "$before"

step "tshark -i bpc -o extcap.bpc.namespace:$ns -o extcap.bpc.target:deploy/web while a client makes $requests requests to each pod"
# tshark itself in the background (not a function's subshell): SIGINT must reach it.
tshark -i bpc -o "extcap.bpc.namespace:$ns" -o extcap.bpc.target:deploy/web \
  -o 'extcap.bpc.filter:tcp port 8080' -o "extcap.bpc.image:$BPC_AGENT_IMAGE" \
  -w "$work/web.pcapng" 2>"$work/tshark.log" &
tshark_pid=$!
pids+=("$tshark_pid")
# Both capture containers run and capture (their agent said so).
for _ in $(seq 1 180); do
  capturing=0
  while read -r pod container; do
    kubectl logs -n "$ns" "$pod" -c "$container" 2>/dev/null | grep -q capturing && capturing=$((capturing + 1))
  done < <(pods_json | jq -r '.items[] | .metadata.name as $p | (.status.ephemeralContainerStatuses // [])[] | select(.state.running) | "\($p) \(.name)"')
  ((capturing == 2)) && break
  sleep 0.5
done
((capturing == 2)) || fail "the capture containers did not start capturing: $(cat "$work/tshark.log")"
# shellcheck disable=SC2016 # expanded by the client pod's shell
kubectl run client -n "$ns" --image "$BPC_APP_IMAGE" --image-pull-policy IfNotPresent --restart Never \
  --command -- sh -c 'n=0; for i in $(seq 1 '"$requests"'); do for ip in '"${ips[*]}"'; do
    wget -q -O /dev/null "http://$ip:8080/?n=$i-$ip" && n=$((n+1)); done; done; echo "requests ok: $n"' >/dev/null
kubectl wait -n "$ns" pod/client --for=jsonpath='{.status.phase}'=Succeeded --timeout 90s >/dev/null ||
  fail "client did not finish: $(kubectl logs -n "$ns" client 2>&1 | tail -n 5)"
sleep 2
kill -INT "$tshark_pid"
wait "$tshark_pid" || fail "tshark exited $?: $(cat "$work/tshark.log")"
! grep 'Error by extcap' "$work/tshark.log" || fail "a clean capture made the extcap write to stderr (Wireshark shows it as an error)"
ok "tshark stopped: $(grep -i captured "$work/tshark.log" || true)"

step "every request is in the file, one interface per pod, no pod restarted, every agent exited 0"
uris=$(tshark_ -r "$work/web.pcapng" -Y 'http.request.method == "GET"' -T fields -e http.request.uri | sort)
expected=$(for i in $(seq 1 "$requests"); do for ip in "${ips[@]}"; do echo "/?n=$i-$ip"; done; done | sort)
[[ $uris == "$expected" ]] || fail "GET requests in the file: $(diff <(echo "$expected") <(echo "$uris") | head -n 5)"
ifaces=$(tshark_ -r "$work/web.pcapng" -T fields -e frame.interface_name | sort -u | tr '\n' ' ')
want_ifaces=$(pods_json | jq -r --arg ns "$ns" '.items[] | "\($ns)/\(.metadata.name)"' | sort | tr '\n' ' ')
[[ $ifaces == "$want_ifaces" ]] || fail "interfaces: $ifaces, not $want_ifaces"
after=$(pods_json | jq -c '[.items[] | {name: .metadata.name, uid: .metadata.uid, restarts: [.status.containerStatuses[].restartCount]}] | sort_by(.name)')
[[ $after == "$before" ]] || fail "pods changed: before $before, after $after"
for _ in $(seq 1 40); do
  codes=$(pods_json | jq -r '[.items[].status.ephemeralContainerStatuses[].state.terminated.exitCode // "running"] | join(" ")')
  [[ $codes == *running* ]] || break
  sleep 0.5
done
[[ $codes == "0 0" ]] || fail "capture containers' exit codes: $codes"
ok "$(grep -c . <<<"$uris") GET requests; interfaces $ifaces; exit codes $codes"

step "tshark -N n shows the pods' names from the file (its Name Resolution Block)"
names=$(tshark_ -N n -o nameres.use_external_name_resolver:FALSE -r "$work/web.pcapng" \
  -Y 'http.request.method == "GET"' -T fields -e ip.dst_host | sort -u | tr '\n' ' ')
want_names=$(pods_json | jq -r '.items[].metadata.name' | sort | tr '\n' ' ')
[[ $names == "$want_names" ]] || fail "tshark -N n shows $names, not $want_names"
ok "$names"

step "a capture in namespace $restricted (enforce: restricted): tshark reports the extcap's refusal in one line"
e2e_restricted_pod "$restricted"
rc=0
# tshark 4.0 prints the extcap's error, then waits to be stopped (its dumpcap
# keeps the pipe open): stopped as a user would, with Ctrl-C.
timeout -s INT 15 tshark -i bpc -o "extcap.bpc.namespace:$restricted" -o extcap.bpc.target:pod/locked \
  -o "extcap.bpc.image:$BPC_AGENT_IMAGE" -w "$work/locked.pcapng" >"$work/refused.log" 2>&1 || rc=$?
refusal=$(grep 'Error by extcap pipe: kubectl-bpc: ' "$work/refused.log" || true)
[[ $refusal == *restricted* && $(grep -c 'Error by extcap' "$work/refused.log") == 1 ]] ||
  fail "tshark (exit $rc) shows no one-line refusal of the extcap: $(cat "$work/refused.log")"
[[ -z $(kubectl get pod -n "$restricted" locked -o jsonpath='{.spec.ephemeralContainers}') ]] ||
  fail "the restricted pod got an ephemeral container"
ok "exit $rc: $refusal"

step "extcap uninstall: tshark no longer lists bpc"
"$bpc" extcap uninstall
! tshark_ -D | grep -q ' bpc ' || fail "tshark -D still lists bpc"
ok "removed"

echo
echo "e2e-cluster-extcap: all passed in $((SECONDS - e2e_started)) s"
