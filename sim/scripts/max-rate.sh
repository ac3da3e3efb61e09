#!/usr/bin/env bash
# Measures bpc-sim receive's loss-free rate: replay --synthetic into a
# receiver on the loopback of a private network namespace at rising rates.
# Usage: sim/scripts/max-rate.sh [BIN] [SIZE] (needs root).
set -euo pipefail
BIN=${1:-target/release/bpc-sim}
SIZE=${2:-128}
NS=bpcsim-rate-$$
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
ip netns exec "$NS" ip link set lo up
for PPS in 100000 200000 300000 400000 600000 0; do
  COUNT=$(( PPS > 0 ? PPS * 2 : 1000000 ))
  OUT=$(mktemp)
  ip netns exec "$NS" "$BIN" receive --listen 127.0.0.1 --quiet -o json --count "$COUNT" --duration 8 >"$OUT" &
  RX=$!
  sleep 0.5
  SENT=$(ip netns exec "$NS" "$BIN" replay --to 127.0.0.1 --key 1 --synthetic --size "$SIZE" --count "$COUNT" --pps "$PPS")
  wait "$RX" || true
  GOT=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); s=r["streams"][0] if r["streams"] else {}; l=r.get("latency") or {}; print(s.get("packets",0), s.get("lost",0), l.get("p50_us"), l.get("p99_us"))' "$OUT")
  echo "pps=${PPS:-max} size=$SIZE | $SENT | received/lost/p50us/p99us: $GOT"
  rm -f "$OUT"
done
