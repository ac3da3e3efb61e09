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

bench_cleanup() {
  local p n
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${BENCH_NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$TMP"
}
