#!/usr/bin/env bash
# What the benchmark scripts (bench.sh, bench-timeline.sh) share: their
# scratch directory, the processes they start, and their network namespaces,
# all removed on exit, also on Ctrl-C.

# bench_start PREFIX NETNS...: TMP (a fresh /tmp/PREFIX.XXXXXX) with an empty
# RUNS file in it, an empty PIDS list (add every background process), the
# cleanup trap, and the namespaces, each with loopback up.
bench_start() {
  TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  RUNS=$TMP/runs.jsonl
  : > "$RUNS"
  PIDS=()
  BENCH_NETNS=("${@:2}")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  local n
  for n in "${BENCH_NETNS[@]}"; do ip netns add "$n"; ip -n "$n" link set lo up; done
}

# bench_veth NS_A IF_A IP_A NS_B IF_B IP_B [MTU]: a veth pair between two of
# the namespaces, a /24 address on each end, both up.
bench_veth() {
  local mtu=()
  [[ -z ${7:-} ]] || mtu=(mtu "$7")
  ip link add "$2" netns "$1" "${mtu[@]}" type veth peer name "$5" netns "$4" "${mtu[@]}"
  ip -n "$1" addr add "$3/24" dev "$2"
  ip -n "$4" addr add "$6/24" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

# bench_topology PREFIX ID NET_A NET_B [MTU]: bench_start, then three
# namespaces, generator/client G, pod P, collector C (named ID g, p, c), and
# two links: G GIF (NET_A.1) -- PIF (NET_A.2) P, and P PCIF (NET_B.1) --
# CIF (NET_B.2) C, the second with MTU. TARGET_IP (NET_A.250) is an address
# of no one, for traffic that reaches the pod's MAC only.
# shellcheck disable=SC2034 # the names are the callers'
bench_topology() {
  G=${2}g P=${2}p C=${2}c
  GIF=${2}ga PIF=${2}pa PCIF=${2}pb CIF=${2}cb
  GEN_IP=$3.1 POD_IP=$3.2 TARGET_IP=$3.250
  POD_C_IP=$4.1 COL_IP=$4.2
  bench_start "$1" "$G" "$P" "$C"
  bench_veth "$G" "$GIF" "$GEN_IP" "$P" "$PIF" "$POD_IP"
  bench_veth "$P" "$PCIF" "$POD_C_IP" "$C" "$CIF" "$COL_IP" "${5:-}"
}

bench_cleanup() {
  local p n
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${BENCH_NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$TMP"
}
