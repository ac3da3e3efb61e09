#!/usr/bin/env bash
# Benchmarks bpc-agent against tcpdump and the send floor, side by side on the
# same traffic, in network namespaces (needs root):
#
#   gen ──veth── pod ──veth (MTU 9000)── col
#   loadgen      capturer                bpc-sim receive
#
# loadgen (pinned to CPU 0) sends UDP frames of 64, 512 and 1500 bytes to an
# address the pod's MAC answers for but the pod does not own, at stepped rates
# up to its maximum; each payload carries bpc-sim's latency marker. One at a
# time, on the pod's interface (pinned to CPU 1):
#   tcpdump        tcpdump -i IF -w /dev/null (capture only)
#   agent          bpc-agent forwarding every frame as GRE to col
#   agent-raw      the same with --send-path raw (sendmmsg on the raw GRE
#                  socket instead of the AF_PACKET TX ring)
#   agent-filter   bpc-agent with a filter matching 10% of the frames
#   floor          bench/tools send-floor: pre-built GRE packets of the same
#                  size, sendmmsg on a raw socket, no capture (no loadgen)
#   floor-txring   the same through an AF_PACKET TX ring with
#                  PACKET_QDISC_BYPASS (complete frames pre-built in the ring)
#   agent-vxlan, agent-erspan-ii, agent-erspan-iii
#                  bpc-agent as "agent" with --encap vxlan / erspan-ii /
#                  erspan-iii: CPU per packet for each format
#   agent-buffer-N bpc-agent as "agent" with --buffer N (MiB)
#   agent-batch-D  bpc-agent as "agent" with --batch D (e.g. agent-batch-1s);
#   agent-batch-D-raw   the same with --send-path raw
#   prompt-floor   bench/tools prompt-floor: the cheapest forwarder that sends
#                  each frame as soon as it is captured (blocking recv on a
#                  packet socket, one send on a raw GRE socket per frame): the
#                  CPU any prompt design pays per isolated frame (issue 26)
#   pktminerg      Netis packet-agent's pktminerg (issue 26's contender, built
#                  by scripts/build-pktminerg.sh) forwarding every frame as
#                  GRE to col with its defaults (libpcap TPACKET_V3, 256 MB
#                  buffer, 3 s timeout, filter "not host COL", key 1): started
#                  for each run, its pcap and send counters read from the
#                  statistics line it prints on exit (SIGINT)
# The collector link has MTU 9000 so a 1500-byte frame + GRE + outer IPv4 is
# one packet for every contender.
#
# Writes bench/results.json (every run plus headline ratios) and
# bench/results.md (the Markdown table), and prints the table.
#
# Usage: scripts/bench.sh
#   BENCH_SECONDS=1.5           traffic per run
#   BENCH_SIZES="64 512 1500"   frame sizes
#   BENCH_RATES="50000 100000 150000 0"   offered pps steps, 0 = generator maximum
#   BENCH_MODES="tcpdump agent agent-raw agent-filter agent-vxlan agent-erspan-ii agent-erspan-iii
#               floor floor-txring"   (also: profile
#                               and profile-raw, a perf profile of CPU 1 during an agent
#                               run into bench/profile[-raw]-SIZE.txt; modes may repeat)
#   BENCH_OUT=bench/results.json
#   BENCH_RECEIVER_CPU=0        CPU list for bpc-sim receive
#   BENCH_STALL=1               stall rows: the agent frozen (SIGSTOP) 3 times for each of
#   BENCH_STALL_MS="50 150 300" these milliseconds under BENCH_STALL_RATE (40000) pps of
#   BENCH_STALL_SIZES="64 1400" each frame size: kernel drops against the ring's ride-out
#   BENCH_DUAL=1                generator-maximum rows with tcpdump capturing beside the
#   BENCH_DUAL_SIZES="64 1400"  agent in the same run: both kernel drop counters
#   BENCH_AGENT_ARGS=           extra agent flags for every agent run (e.g. "--buffer 8")
#   BENCH_PKTMINERG=/opt/pktminerg/bin/pktminerg   mode pktminerg's binary (mode skipped,
#                               with a line on stderr, when it is not there)
#   BENCH_PKTMINERG_ARGS=       extra pktminerg flags (e.g. "-b 64" for a 64 MB buffer)
#   BENCH_TIMELINE=1            section "timeline": response times at the collector against
#                               tcpdump in the pod (scripts/bench-timeline.sh, its own knobs)
#   BENCH_AGENT, BENCH_SIM, BENCH_LOADGEN, BENCH_FLOOR   prebuilt binaries (else built here)
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-1.5}
SIZES=${BENCH_SIZES:-64 512 1500}
RATES=${BENCH_RATES:-50000 100000 150000 0}
MODES=${BENCH_MODES:-tcpdump agent agent-raw agent-filter agent-vxlan agent-erspan-ii agent-erspan-iii floor floor-txring}
OUT=${BENCH_OUT:-bench/results.json}
# The receiver shares the generator's CPU: the capturer's CPU then holds only
# the capturer, as a pod's CPU holds the application and its sidecar while
# the collector runs elsewhere. "0,1" lets the scheduler choose.
RECEIVER_CPU=${BENCH_RECEIVER_CPU:-0}

if [[ $(id -u) -ne 0 ]]; then
  echo "bench.sh: needs root (network namespaces, raw sockets)" >&2
  exit 2
fi
# jq is the bench's own extra (not in scripts/install-deps.sh): install it if missing.
if ! command -v jq >/dev/null && command -v apt-get >/dev/null; then
  apt-get install -y -q jq >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q jq >/dev/null; } || true
fi
for tool in ip tcpdump taskset jq curl python3 iperf3 tshark; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is missing (scripts/install-deps.sh)" >&2; exit 2; }
done
if [[ $(nproc) -lt 2 ]]; then
  echo "bench.sh: needs 2 CPUs (generator and capturer are pinned to CPU 0 and 1)" >&2
  exit 2
fi

START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

AT=${CARGO_TARGET_DIR_AGENT:-${CARGO_TARGET_DIR:-$PWD/target}}
BT=${CARGO_TARGET_DIR_BENCH:-$PWD/bench/tools/target}
if [[ -z "${BENCH_AGENT:-}" || -z "${BENCH_SIM:-}" ]]; then
  CARGO_TARGET_DIR=$AT cargo build --release -q -p bpc-agent -p bpc-sim
fi
if [[ -z "${BENCH_LOADGEN:-}" || -z "${BENCH_FLOOR:-}" ]]; then
  CARGO_TARGET_DIR=$BT cargo build --release -q --manifest-path bench/tools/Cargo.toml
fi
AGENT=${BENCH_AGENT:-$AT/release/bpc-agent}
SIM=${BENCH_SIM:-$AT/release/bpc-sim}
LOADGEN=${BENCH_LOADGEN:-$BT/release/loadgen}
FLOOR=${BENCH_FLOOR:-$BT/release/send-floor}
FLOOR_TXRING=${BENCH_FLOOR_TXRING:-$BT/release/send-floor-txring}
PROMPT_FLOOR=${BENCH_PROMPT_FLOOR:-$BT/release/prompt-floor}

# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_topology bpc-bench "bb$$" 198.18.120 198.18.121 9000
# The generator's frames reach the pod's MAC but no IP of the pod: the pod's
# kernel drops them without any work for the "application".
POD_MAC=$(ip -n "$P" -j link show "$PIF" | jq -r '.[0].address')
ip -n "$G" neigh add "$TARGET_IP" lladdr "$POD_MAC" dev "$GIF" nud permanent
COL_MAC=$(ip -n "$C" -j link show "$CIF" | jq -r '.[0].address')
ip -n "$P" neigh add "$COL_IP" lladdr "$COL_MAC" dev "$PCIF" nud permanent

TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Run time of every thread of PID in nanoseconds (schedstat: finer than the
# 10 ms ticks of /proc/PID/stat, which an idle agent never reaches).
# (%.0f: mawk's %d stops at 2^31 - 1, 2.1 s of run time.)
run_ns() { cat /proc/"$1"/task/*/schedstat | awk '{n += $1} END {printf "%.0f", n}'; }
# Time every thread of PID spent runnable but waiting for a CPU (ns), and the
# time the hypervisor took CPU 1 from this machine (steal, ticks): a
# contender that loses frames while either grows was not given the CPU.
wait_ns() { cat /proc/"$1"/task/*/schedstat | awk '{n += $2} END {printf "%.0f", n}'; }
steal1() { awk '$1 == "cpu1" {print $9}' /proc/stat; }
# The difference of two such readings in seconds: DIVISOR B A.
secs() { awk -v d="$1" -v b="$2" -v a="$3" 'BEGIN {print (b - a) / d}'; }
hwm_kib() { awk '$1 == "VmHWM:" {print $2}' "/proc/$1/status"; }
rss_kib() { awk '$1 == "VmRSS:" {print $2}' "/proc/$1/status"; }
pod_rx() { ip -n "$P" -j -s link show "$PIF" | jq '.[0].stats64.rx.packets'; }
agent_stats() { ip netns exec "$P" curl -sf --max-time 2 127.0.0.1:9469/stats; }

# bpc-sim receive for DURATION seconds, JSON report to FILE.
start_sim() {
  ip netns exec "$C" taskset -c "$RECEIVER_CPU" "$SIM" receive --listen "$COL_IP" --duration "$1" --quiet -o json > "$2" 2>"$TMP/sim.err" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  sleep 0.3
}

loadgen() {
  ip netns exec "$G" taskset -c 0 "$LOADGEN" --to "$TARGET_IP" --size "$1" --pps "$2" --seconds "$SECS"
}

# Appends one run record; arguments are jq --argjson name/value pairs.
record() { jq -cn "$@" '$ARGS.named' >> "$RUNS"; }

run_tcpdump() {
  local size=$1 rate=$2 tpid rx0 rx1 t0 t1 gen hwm
  ip netns exec "$P" taskset -c 1 tcpdump -i "$PIF" -w /dev/null 2>"$TMP/tcpdump.err" &
  tpid=$!
  PIDS+=("$tpid")
  sleep 0.5
  # schedstat, not /proc/PID/stat: tcpdump's CPU is below the 10 ms tick at low rates.
  rx0=$(pod_rx); t0=$(run_ns "$tpid")
  gen=$(loadgen "$size" "$rate")
  sleep 0.3
  rx1=$(pod_rx); t1=$(run_ns "$tpid"); hwm=$(hwm_kib "$tpid")
  kill -INT "$tpid"
  wait "$tpid" || true
  # "captured" leaves out what was still in the ring at SIGINT: count what
  # the kernel queued for tcpdump (received by filter) minus its drops.
  local received drops captured
  received=$(awk '/received by filter/ {print $1}' "$TMP/tcpdump.err")
  drops=$(awk '/dropped by kernel/ {print $1}' "$TMP/tcpdump.err")
  captured=$((${received:-0} - ${drops:-0}))
  record --arg mode tcpdump --argjson size "$size" --argjson rate "$rate" --argjson gen "$gen" \
    --argjson reached "$((rx1 - rx0))" --argjson captured "$captured" --argjson kernel_drops "${drops:-0}" \
    --argjson cpu_seconds "$(secs 1e9 "$t1" "$t0")" \
    --argjson peak_rss_kib "$hwm"
}

AGENT_PID=
start_agent() {
  local extra
  read -r -a extra <<< "${BENCH_AGENT_ARGS:-}"
  local args=(--collector "$COL_IP" --interface "$PIF" --metrics-addr 127.0.0.1:9469 --key 0x0be7c401 "${extra[@]}" "$@")
  ip netns exec "$P" taskset -c 1 "$AGENT" "${args[@]}" 2>"$TMP/agent.log" &
  AGENT_PID=$!
  PIDS+=("$AGENT_PID")
  for _ in $(seq 50); do
    agent_stats >/dev/null 2>&1 && return 0
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench.sh: bpc-agent did not start:" >&2
  cat "$TMP/agent.log" >&2
  exit 1
}

stop_agent() {
  kill -TERM "$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=
}

# Seconds of a mode's --batch (agent-batch-500ms: 0.5), else 0.
batch_secs() {
  local b=${1#agent-batch-}
  [[ $1 == agent-batch-* ]] || { echo 0; return; }
  b=${b%-raw}
  case $b in
    *ms) awk -v v="${b%ms}" 'BEGIN {print v / 1000}' ;;
    *s) echo "${b%s}" ;;
    *) echo "$b" ;;
  esac
}

run_agent() {
  local mode=$1 size=$2 rate=$3 s0 s1 rx0 rx1 t0 t1 n0 n1 w0 w1 st0 st1 gen tail
  # The agent reads the kernel's drop counter every second: wait for it, and
  # with --batch for the frames gathered at the end too (up to twice the batch).
  tail=$(awk -v b="$(batch_secs "$mode")" 'BEGIN {print 1.2 + 2 * b}')
  start_sim "$(awk -v s="$SECS" -v t="$tail" 'BEGIN {print s + t + 1}')" "$TMP/sim.json"
  s0=$(agent_stats); rx0=$(pod_rx); t0=$(ticks "$AGENT_PID"); n0=$(run_ns "$AGENT_PID")
  w0=$(wait_ns "$AGENT_PID"); st0=$(steal1)
  gen=$(loadgen "$size" "$rate")
  sleep "$tail"
  s1=$(agent_stats); rx1=$(pod_rx); t1=$(ticks "$AGENT_PID"); n1=$(run_ns "$AGENT_PID")
  w1=$(wait_ns "$AGENT_PID"); st1=$(steal1)
  wait "$SIM_PID" || true
  record --arg mode "$mode" --argjson size "$size" --argjson rate "$rate" --argjson gen "$gen" \
    --argjson reached "$((rx1 - rx0))" \
    --argjson captured "$(jq -n --argjson a "$s0" --argjson b "$s1" '$b.capture.packets - $a.capture.packets')" \
    --argjson kernel_drops "$(jq -n --argjson a "$s0" --argjson b "$s1" '$b.capture.kernel_drops - $a.capture.kernel_drops')" \
    --argjson forwarded "$(jq -n --argjson a "$s0" --argjson b "$s1" '$b.collectors[0].sent_packets - $a.collectors[0].sent_packets')" \
    --argjson send_errors "$(jq -n --argjson a "$s0" --argjson b "$s1" '[$b.collectors[0].errors[]] | add - ([$a.collectors[0].errors[]] | add)')" \
    --argjson errors "$(jq -cn --argjson a "$s0" --argjson b "$s1" '$b.collectors[0].errors | with_entries(.value -= $a.collectors[0].errors[.key])')" \
    --argjson cpu_seconds "$(secs "$TCK" "$t1" "$t0")" \
    --argjson sched_seconds "$(secs 1e9 "$n1" "$n0")" \
    --argjson wait_seconds "$(secs 1e9 "$w1" "$w0")" --argjson cpu1_steal_seconds "$(secs "$TCK" "$st1" "$st0")" \
    --argjson peak_rss_kib "$(hwm_kib "$AGENT_PID")" --argjson rss_kib "$(rss_kib "$AGENT_PID")" \
    --arg agent_args "${BENCH_AGENT_ARGS:-}" --argjson sim "$(cat "$TMP/sim.json")"
}

# Netis pktminerg (issue 26's contender): started for each run, so that the
# statistics line it prints when SIGINT ends its pcap_loop holds this run's
# counters only: "[now] first_time,pkt_time,ps_recv,ps_drop,ps_ifdrop,
# filter_drop,,live_time,bps,pps,,send_num,total_send_drop:send_drop,".
# ps_recv counts dropped frames too (the kernel adds tp_drops to tp_packets),
# so captured = ps_recv - ps_drop, as for tcpdump. It has no /stats: CPU and
# memory come from /proc as for the agent. Its ring retires a block 3 s
# (its default --timeout) after the block opened at the latest: the run waits
# that long after the traffic, so the last frames reach the collector before
# SIGINT (pcap_breakloop leaves an unretired block unread).
PKTMINERG=${BENCH_PKTMINERG:-/opt/pktminerg/bin/pktminerg}
PKTMINERG_TAIL=${BENCH_PKTMINERG_TAIL:-3.5}
have_pktminerg() { [[ -x "$PKTMINERG" ]]; }
run_pktminerg() {
  local size=$1 rate=$2 ppid extra rx0 rx1 t0 t1 n0 n1 w0 w1 st0 st1 gen hwm rss line
  read -r -a extra <<< "${BENCH_PKTMINERG_ARGS:-}"
  ip netns exec "$P" taskset -c 1 "$PKTMINERG" -i "$PIF" -r "$COL_IP" "${extra[@]}" \
    >"$TMP/pktminerg.out" 2>"$TMP/pktminerg.err" &
  ppid=$!
  PIDS+=("$ppid")
  # Its 256 MB ring takes this machine over a second of CPU to set up.
  for _ in $(seq 150); do
    grep -q 'Start pcap snoop' "$TMP/pktminerg.out" 2>/dev/null && break
    kill -0 "$ppid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q 'Start pcap snoop' "$TMP/pktminerg.out" 2>/dev/null; then
    echo "bench.sh: pktminerg did not start:" >&2
    cat "$TMP/pktminerg.out" "$TMP/pktminerg.err" >&2
    exit 1
  fi
  sleep 0.5
  start_sim "$(awk -v s="$SECS" -v t="$PKTMINERG_TAIL" 'BEGIN {print s + t + 1}')" "$TMP/sim.json"
  rx0=$(pod_rx); t0=$(ticks "$ppid"); n0=$(run_ns "$ppid"); w0=$(wait_ns "$ppid"); st0=$(steal1)
  gen=$(loadgen "$size" "$rate")
  sleep "$PKTMINERG_TAIL"
  rx1=$(pod_rx); t1=$(ticks "$ppid"); n1=$(run_ns "$ppid"); w1=$(wait_ns "$ppid"); st1=$(steal1)
  hwm=$(hwm_kib "$ppid"); rss=$(rss_kib "$ppid")
  wait "$SIM_PID" || true
  kill -INT "$ppid"
  wait "$ppid" || true
  # The last statistics line: ps_recv, ps_drop (since its first packet),
  # send_num and the sendto failures.
  line=$(grep -E '^\[[^]]*\] [0-9]+,[0-9]+,[0-9]+,[0-9]+,[0-9]+,[0-9]+,,' "$TMP/pktminerg.out" | tail -1 || true)
  if [[ -z $line ]]; then
    echo "bench.sh: pktminerg printed no statistics line:" >&2
    tail -5 "$TMP/pktminerg.out" "$TMP/pktminerg.err" >&2
    exit 1
  fi
  local stats recv drops sent send_drops
  stats=${line#*] }
  IFS=, read -r _ _ recv drops _ _ <<< "${stats%%,,*}"
  IFS=',:' read -r sent send_drops _ <<< "${stats##*,,}"
  record --arg mode pktminerg --argjson size "$size" --argjson rate "$rate" --argjson gen "$gen" \
    --argjson reached "$((rx1 - rx0))" --argjson captured "$((recv - drops))" --argjson kernel_drops "$drops" \
    --argjson forwarded "$sent" --argjson send_errors "$send_drops" \
    --argjson cpu_seconds "$(secs "$TCK" "$t1" "$t0")" \
    --argjson sched_seconds "$(secs 1e9 "$n1" "$n0")" \
    --argjson wait_seconds "$(secs 1e9 "$w1" "$w0")" --argjson cpu1_steal_seconds "$(secs "$TCK" "$st1" "$st0")" \
    --argjson startup_cpu_seconds "$(awk -v t="$t0" -v k="$TCK" 'BEGIN {print t / k}')" \
    --argjson peak_rss_kib "$hwm" --argjson rss_kib "$rss" --arg args "${BENCH_PKTMINERG_ARGS:-}" \
    --arg stats_line "$line" --argjson sim "$(cat "$TMP/sim.json")"
}

# The prompt floor forwards what the generator sends, as the agent would:
# CPU from /proc as for the agent, frames from the line it prints at its end.
run_prompt_floor() {
  local size=$1 rate=$2 fpid rx0 rx1 t0 t1 n0 n1 w0 w1 st0 st1 gen hwm rss
  start_sim "$(awk -v s="$SECS" 'BEGIN {print s + 2.2}')" "$TMP/sim.json"
  ip netns exec "$P" taskset -c 1 "$PROMPT_FLOOR" --interface "$PIF" --to "$COL_IP" \
    --seconds "$(awk -v s="$SECS" 'BEGIN {print s + 1.2}')" > "$TMP/prompt-floor.json" &
  fpid=$!
  PIDS+=("$fpid")
  sleep 0.2
  rx0=$(pod_rx); t0=$(ticks "$fpid"); n0=$(run_ns "$fpid"); w0=$(wait_ns "$fpid"); st0=$(steal1)
  gen=$(loadgen "$size" "$rate")
  sleep 0.5
  rx1=$(pod_rx); t1=$(ticks "$fpid"); n1=$(run_ns "$fpid"); w1=$(wait_ns "$fpid"); st1=$(steal1)
  hwm=$(hwm_kib "$fpid"); rss=$(rss_kib "$fpid")
  wait "$fpid" || true
  wait "$SIM_PID" || true
  record --arg mode prompt-floor --argjson size "$size" --argjson rate "$rate" --argjson gen "$gen" \
    --argjson reached "$((rx1 - rx0))" --argjson captured "$(jq .frames "$TMP/prompt-floor.json")" \
    --argjson kernel_drops 0 --argjson forwarded "$(jq .frames "$TMP/prompt-floor.json")" --argjson send_errors 0 \
    --argjson cpu_seconds "$(secs "$TCK" "$t1" "$t0")" --argjson sched_seconds "$(secs 1e9 "$n1" "$n0")" \
    --argjson wait_seconds "$(secs 1e9 "$w1" "$w0")" --argjson cpu1_steal_seconds "$(secs "$TCK" "$st1" "$st0")" \
    --argjson peak_rss_kib "$hwm" --argjson rss_kib "$rss" --argjson sim "$(cat "$TMP/sim.json")"
}

run_floor() {
  local mode=$1 size=$2 rate=$3 out
  start_sim "$(awk -v s="$SECS" 'BEGIN {print s + 0.7}')" "$TMP/sim.json"
  if [[ $mode == floor ]]; then
    out=$(ip netns exec "$P" taskset -c 1 "$FLOOR" --to "$COL_IP" --size "$size" --pps "$rate" --seconds "$SECS")
  else
    out=$(ip netns exec "$P" taskset -c 1 "$FLOOR_TXRING" --ifname "$PCIF" --dst-mac "$COL_MAC" \
      --src "$POD_C_IP" --to "$COL_IP" --size "$size" --pps "$rate" --seconds "$SECS")
  fi
  wait "$SIM_PID" || true
  record --arg mode "$mode" --argjson size "$size" --argjson rate "$rate" --argjson floor "$out" \
    --argjson sim "$(cat "$TMP/sim.json")"
}

# perf profile of CPU 1 (the agent, its sends and whatever softirq work lands
# there) during a max-rate agent run: bench/profile-SIZE.txt.
run_profile() {
  local mode=$1 size=$2 rate=$3 ppid out
  out="bench/$mode-$size.txt"
  command -v perf >/dev/null || { echo "bench.sh: profile needs perf (apt-get install linux-perf)" >&2; return 0; }
  start_sim "$(awk -v s="$SECS" 'BEGIN {print s + 1.5}')" "$TMP/sim.json"
  perf record -q -C 1 -g -o "$TMP/perf.data" -- sleep "$(awk -v s="$SECS" 'BEGIN {print s + 0.3}')" 2>/dev/null &
  ppid=$!
  loadgen "$size" "$rate" >/dev/null
  wait "$ppid" || true
  wait "$SIM_PID" || true
  perf report -i "$TMP/perf.data" --stdio --no-children --sort comm,dso,sym --percent-limit 0.7 -g none \
    2>/dev/null | grep -v '^$' > "$out" || true
  perf report -i "$TMP/perf.data" --stdio --no-children --sort comm --percent-limit 0.5 -g none \
    2>/dev/null | grep -v '^#' | grep -v '^$' >> "$out" || true
}

idle_agent() {
  # Idle footprint: no traffic at all for 5 s.
  local n0 n1
  start_agent
  sleep 1
  n0=$(run_ns "$AGENT_PID")
  sleep 5
  n1=$(run_ns "$AGENT_PID")
  record --arg mode idle --argjson seconds 5 \
    --argjson cpu_seconds "$(secs 1e9 "$n1" "$n0")" \
    --argjson peak_rss_kib "$(hwm_kib "$AGENT_PID")" --argjson rss_kib "$(rss_kib "$AGENT_PID")"
  stop_agent
}

echo "bench: $(nproc) CPUs, load $LOAD_BEFORE, ${SECS}s per run, sizes $SIZES, rates $RATES" >&2
if [[ " $MODES " == *" pktminerg "* ]] && ! have_pktminerg; then
  echo "bench.sh: mode pktminerg skipped: no $PKTMINERG (scripts/build-pktminerg.sh builds it; BENCH_PKTMINERG)" >&2
fi
idle_agent
for size in $SIZES; do
  for mode in $MODES; do
    case $mode in
      agent | profile) start_agent ;;
      agent-raw | profile-raw) start_agent --send-path raw ;;
      agent-filter) start_agent --filter "udp dst port 10" ;;
      agent-vxlan | agent-erspan-ii | agent-erspan-iii) start_agent --encap "${mode#agent-}" ;;
      agent-buffer-*) start_agent --buffer "${mode#agent-buffer-}" ;;
      agent-batch-*-raw) b=${mode#agent-batch-}; start_agent --batch "${b%-raw}" --send-path raw ;;
      agent-batch-*) start_agent --batch "${mode#agent-batch-}" ;;
      pktminerg) have_pktminerg || continue ;;
    esac
    for rate in $RATES; do
      echo "bench: $size B, $mode, ${rate/#0/max} pps" >&2
      case $mode in
        tcpdump) run_tcpdump "$size" "$rate" ;;
        agent | agent-raw | agent-filter | agent-vxlan | agent-erspan-ii | agent-erspan-iii | agent-buffer-* | agent-batch-*)
          run_agent "$mode" "$size" "$rate" ;;
        pktminerg) run_pktminerg "$size" "$rate" ;;
        floor | floor-txring) run_floor "$mode" "$size" "$rate" ;;
        prompt-floor) run_prompt_floor "$size" "$rate" ;;
        profile | profile-raw) run_profile "$mode" "$size" "$rate" ;;
        *) echo "bench.sh: unknown mode $mode" >&2; exit 2 ;;
      esac
    done
    [[ -n "$AGENT_PID" ]] && stop_agent
  done
done

# Stall rows (the capture ring issue): the agent frozen with SIGSTOP three
# times for FREEZE ms, 400 ms apart, under RATE pps; kernel drops, what was
# captured and forwarded. A ring rides out (blocks - 1) x max(1 ms, time to
# fill a block) of stall: report.py sets the prediction beside the drops.
STALL=$TMP/stall.jsonl
: > "$STALL"
delta() { jq -n --argjson a "$1" --argjson b "$2" "\$b$3 - \$a$3"; }
run_stall() {
  local size=$1 rate=$2 ms=$3 secs s0 s1 rx0 rx1 lpid
  secs=$(awk -v f="$ms" 'BEGIN {print 0.6 + 3 * (f / 1000 + 0.4)}')
  start_sim "$(awk -v s="$secs" 'BEGIN {print s + 2}')" "$TMP/sim.json"
  s0=$(agent_stats); rx0=$(pod_rx)
  ip netns exec "$G" taskset -c 0 "$LOADGEN" --to "$TARGET_IP" --size "$size" --pps "$rate" --seconds "$secs" \
    > "$TMP/gen.json" &
  lpid=$!
  PIDS+=("$lpid")
  local freeze
  freeze=$(awk -v f="$ms" 'BEGIN {print f / 1000}')
  sleep 0.6
  for _ in 1 2 3; do
    # Nothing but the sleep between STOP and CONT: the freeze lasts $ms plus
    # a fork and exec of sleep (a few ms).
    kill -STOP "$AGENT_PID"
    sleep "$freeze"
    kill -CONT "$AGENT_PID"
    sleep 0.4
  done
  wait "$lpid"
  sleep 1.2
  s1=$(agent_stats); rx1=$(pod_rx)
  wait "$SIM_PID" || true
  jq -cn --argjson size "$size" --argjson rate "$rate" --argjson freeze_ms "$ms" --argjson freezes 3 \
    --argjson gen "$(cat "$TMP/gen.json")" --argjson reached "$((rx1 - rx0))" \
    --argjson captured "$(delta "$s0" "$s1" .capture.packets)" \
    --argjson kernel_drops "$(delta "$s0" "$s1" .capture.kernel_drops)" \
    --argjson forwarded "$(delta "$s0" "$s1" '.collectors[0].sent_packets')" \
    --argjson send_errors "$(jq -n --argjson a "$s0" --argjson b "$s1" '[$b.collectors[0].errors[]] | add - ([$a.collectors[0].errors[]] | add)')" \
    --argjson sim "$(jq -c '{totals, latency}' "$TMP/sim.json")" \
    --argjson peak_rss_kib "$(hwm_kib "$AGENT_PID")" --arg agent_args "${BENCH_AGENT_ARGS:-}" \
    '$ARGS.named' >> "$STALL"
}
if [[ ${BENCH_STALL:-1} == 1 ]]; then
  for size in ${BENCH_STALL_SIZES:-64 1400}; do
    start_agent
    for ms in ${BENCH_STALL_MS:-50 150 300}; do
      echo "bench: stall, $size B, ${BENCH_STALL_RATE:-40000} pps, 3 x $ms ms" >&2
      run_stall "$size" "${BENCH_STALL_RATE:-40000}" "$ms"
    done
    stop_agent
  done
fi

# Generator-maximum rows with tcpdump (default options, pinned to the
# generator's CPU so it does not take the agent's) capturing the same
# interface in the same run: the agent's kernel drops beside tcpdump's.
DUAL=$TMP/dual.jsonl
: > "$DUAL"
run_dual() {
  local size=$1 tpid s0 s1 rx0 rx1 gen received drops
  start_agent
  ip netns exec "$P" taskset -c 0 tcpdump -i "$PIF" -w /dev/null 2>"$TMP/dual-tcpdump.err" &
  tpid=$!
  PIDS+=("$tpid")
  sleep 0.5
  start_sim "$(awk -v s="$SECS" 'BEGIN {print s + 2.2}')" "$TMP/sim.json"
  s0=$(agent_stats); rx0=$(pod_rx)
  gen=$(loadgen "$size" 0)
  sleep 1.2
  s1=$(agent_stats); rx1=$(pod_rx)
  wait "$SIM_PID" || true
  kill -INT "$tpid"
  wait "$tpid" || true
  stop_agent
  received=$(awk '/received by filter/ {print $1}' "$TMP/dual-tcpdump.err")
  drops=$(awk '/dropped by kernel/ {print $1}' "$TMP/dual-tcpdump.err")
  jq -cn --argjson size "$size" --argjson gen "$gen" --argjson reached "$((rx1 - rx0))" \
    --argjson captured "$(delta "$s0" "$s1" .capture.packets)" \
    --argjson kernel_drops "$(delta "$s0" "$s1" .capture.kernel_drops)" \
    --argjson forwarded "$(delta "$s0" "$s1" '.collectors[0].sent_packets')" \
    --argjson sim "$(jq -c '{totals, latency}' "$TMP/sim.json")" \
    --argjson tcpdump_received "${received:-0}" --argjson tcpdump_drops "${drops:-0}" \
    --arg agent_args "${BENCH_AGENT_ARGS:-}" '$ARGS.named' >> "$DUAL"
}
if [[ ${BENCH_DUAL:-1} == 1 ]]; then
  for size in ${BENCH_DUAL_SIZES:-64 1400}; do
    echo "bench: generator maximum, $size B, agent and tcpdump in the same run" >&2
    run_dual "$size"
  done
fi

# Bulk TCP (the oversize issue): iperf3 --bidir through the pod with the
# agent in each --oversize mode, the collector link at MTU 1500 as in a real
# cluster. TCP payload bytes delivered to the collector (bpc-sim's pcap) /
# seen by tcpdump -s 0 in the pod: GSO/GRO super-frames are where payload
# gets lost.
BULK=$TMP/bulk.jsonl
: > "$BULK"
# TCP payload bytes actually present in a pcap: a truncated frame keeps its
# original length (and tshark's tcp.len) but lacks the cut-off bytes.
payload() {
  tshark -r "$1" -T fields -e tcp.len -e frame.len -e frame.cap_len -Y 'tcp.port == 5201' 2>/dev/null |
    awk '{p = $1 - ($2 - $3); if (p > 0) n += p} END {printf "%d", n}'
}
frames() { # PCAP SIZE: frames, frames longer than SIZE as carried, largest as carried
  tshark -r "$1" -T fields -e frame.cap_len 2>/dev/null |
    awk -v m="$2" '{n++; if ($1 > m) big++; if ($1 > max) max = $1} END {printf "{\"frames\":%d,\"over\":%d,\"largest\":%d}", n, big, max}'
}
run_bulk() {
  local mode=$1 tpid spid seen delivered
  ip netns exec "$P" iperf3 -s -1 -B "$POD_IP" >/dev/null 2>&1 &
  PIDS+=($!)
  ip netns exec "$P" tcpdump -i "$PIF" -s 0 --immediate-mode -U -w "$TMP/bulk-pod.pcap" "tcp port 5201" \
    2>"$TMP/bulk-tcpdump.err" &
  tpid=$!
  PIDS+=("$tpid")
  ip netns exec "$C" "$SIM" receive --listen "$COL_IP" --quiet -o json --write "$TMP/bulk-col.pcap" \
    >"$TMP/bulk-sim.json" 2>"$TMP/sim.err" &
  spid=$!
  PIDS+=("$spid")
  start_agent --oversize "$mode" --filter "tcp port 5201"
  sleep 0.5
  ip netns exec "$G" iperf3 -c "$POD_IP" --bidir -b "${BENCH_BULK_RATE:-40M}" -t "${BENCH_BULK_SECONDS:-3}" >/dev/null
  sleep 0.5
  stop_agent
  kill -INT "$tpid" "$spid" 2>/dev/null || true
  wait "$tpid" "$spid" 2>/dev/null || true
  seen=$(payload "$TMP/bulk-pod.pcap")
  delivered=$(payload "$TMP/bulk-col.pcap")
  jq -cn --arg oversize "$mode" --argjson seen "$seen" --argjson delivered "$delivered" \
    --argjson captured "$(frames "$TMP/bulk-pod.pcap" 1514)" --argjson sent "$(frames "$TMP/bulk-col.pcap" 1514)" \
    --argjson tcpdump_drops "$(awk '/dropped by kernel/ {print $1}' "$TMP/bulk-tcpdump.err")" \
    '$ARGS.named' >>"$BULK"
}
if [[ ${BENCH_BULK:-1} == 1 ]]; then
  ip -n "$P" link set "$PCIF" mtu 1500
  ip -n "$C" link set "$CIF" mtu 1500
  for mode in ${BENCH_BULK_MODES:-segment fragment truncate}; do
    echo "bench: bulk TCP, --oversize $mode" >&2
    run_bulk "$mode"
  done
fi

CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
python3 bench/report.py "$RUNS" "$OUT" "${OUT%.json}.md" \
  --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --nproc "$(nproc)" --cpu "$CPU_MODEL" --kernel "$(uname -r)" \
  --load-before "$LOAD_BEFORE" --load-after "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --seconds-per-run "$SECS" --elapsed "$(($(date +%s) - START))" --bulk "$BULK" --stall "$STALL" --dual "$DUAL"
cat "${OUT%.json}.md"

# Section "timeline": the response-time error at the collector against
# tcpdump in the pod (scripts/bench-timeline.sh), into OUT's -timeline.json/.md.
if [[ ${BENCH_TIMELINE:-1} == 1 ]]; then
  echo "bench: timeline (scripts/bench-timeline.sh)" >&2
  BENCH_AGENT=$AGENT BENCH_LOADGEN=$LOADGEN scripts/bench-timeline.sh "${OUT%.json}-timeline.json"
fi
