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

bench_cleanup() {
  local p n
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${BENCH_NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$TMP"
}
