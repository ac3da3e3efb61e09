#!/usr/bin/env bash
# Pods without a cluster: network namespaces wired the way a CNI bridge wires
# pods on a node. A pod *is* one network namespace shared by its containers,
# so a process started in one of these namespaces sees exactly what a sidecar
# sees in a real pod: an eth0 with the pod's IP and a default route.
#
#   scripts/netns-pod.sh up CLUSTER [PREFIX]     node (bridge), collector, client
#   scripts/netns-pod.sh add-pod CLUSTER POD IP  a pod namespace CLUSTER-POD with eth0 = IP/24
#   scripts/netns-pod.sh del-pod CLUSTER POD
#   scripts/netns-pod.sh exec CLUSTER NAME CMD...   run CMD in CLUSTER-NAME
#   scripts/netns-pod.sh app CLUSTER POD IP DIR      static web server IP:8080 serving DIR
#   scripts/netns-pod.sh down CLUSTER            removes every namespace of CLUSTER
#
# PREFIX is the first three octets of a /24 inside 198.18.0.0/15, the
# benchmarking range (default 198.18.100). The collector is PREFIX.2, the
# client PREFIX.3. Namespace names start with CLUSTER-, so clusters with
# different names never collide. Can also be sourced for its functions.
set -euo pipefail

bpc_ns_up() {
  local cluster=$1 prefix=${2:-198.18.100}
  case $prefix in 198.18.*|198.19.*) ;; *) echo "netns-pod: $prefix is outside 198.18.0.0/15" >&2; return 2 ;; esac
  ip netns add "$cluster-node"
  ip -n "$cluster-node" link add br0 type bridge
  ip -n "$cluster-node" link set br0 up
  ip -n "$cluster-node" link set lo up
  mkdir -p /run/bpc-netns
  echo "$prefix" > "/run/bpc-netns/$cluster.prefix"
  bpc_ns_attach "$cluster" collector "$prefix.2"
  bpc_ns_attach "$cluster" client "$prefix.3"
}

# Creates namespace CLUSTER-NAME with eth0 (IP/24, default route) bridged on the node.
bpc_ns_attach() {
  local cluster=$1 name=$2 ip=$3 ns="$1-$2"
  local port="v${name:0:13}"
  ip netns add "$ns"
  ip -n "$cluster-node" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$cluster-node" link set "$port" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default dev eth0
}

bpc_ns_add_pod() { bpc_ns_attach "$1" "$2" "$3"; }

bpc_ns_del_pod() {
  local cluster=$1 name=$2
  ip netns pids "$cluster-$name" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$cluster-$name" 2>/dev/null || true
  ip -n "$cluster-node" link del "v${name:0:13}" 2>/dev/null || true
}

bpc_ns_down() {
  local cluster=$1 ns
  for ns in $(ip netns list | awk '{print $1}' | grep "^$cluster-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  done
  sleep 0.2
  for ns in $(ip netns list | awk '{print $1}' | grep "^$cluster-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "/run/bpc-netns/$cluster.prefix"
}

# The workload key of NAMESPACE KIND NAME (FNV-1a 32 of "ns/kind/name", as
# bpc_wire::WorkloadKey computes it), in decimal. ASCII names only.
bpc_key() {
  local s="$1/$2/$3" h=2166136261 i c
  for ((i = 0; i < ${#s}; i++)); do
    printf -v c '%d' "'${s:i:1}"
    h=$(( ((h ^ c) * 16777619) & 0xffffffff ))
  done
  echo "$h"
}

# A static web server on IP:8080 inside namespace NS serving DIR, in the
# background (its pid in $!). Not `python3 -m http.server`: that one looks
# up its own name (getfqdn) at start, and with no DNS in the namespace that
# takes seconds.
bpc_ns_app_server() {
  local ns=$1 ip=$2 dir=$3
  (cd "$dir" && exec ip netns exec "$ns" python3 -c '
import http.server, socketserver, sys
socketserver.TCPServer.allow_reuse_address = True
socketserver.TCPServer((sys.argv[1], 8080), http.server.SimpleHTTPRequestHandler).serve_forever()
' "$ip" >/dev/null 2>&1) &
}

bpc_ns_prefix() { cat "/run/bpc-netns/$1.prefix"; }

# bpc_ns_wait_http NS URL: 0 once URL answers from inside NS (10 s at most).
bpc_ns_wait_http() {
  for _ in $(seq 1 100); do
    ip netns exec "$1" curl -sf -o /dev/null "$2" && return 0
    sleep 0.1
  done
  return 1
}

# bpc_ns_agent NS LOG PIDFILE COMMAND...: a sidecar (COMMAND, e.g. `env
# BPC_WORKLOAD=ns/kind/name bpc-agent ...`) in NS, in the background, its
# output appended to LOG and its pid in PIDFILE (ip netns exec and env exec
# in place: the pid is the agent's); returns once its capture runs
# (/healthz on 9469 answers).
bpc_ns_agent() {
  local ns=$1 log=$2 pidfile=$3
  shift 3
  ip netns exec "$ns" "$@" >>"$log" 2>&1 &
  echo $! >"$pidfile"
  bpc_ns_wait_http "$ns" "http://127.0.0.1:9469/healthz" && return 0
  echo "agent in $ns never became healthy" >&2
  cat "$log" >&2
  return 1
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  cmd=${1:-}
  shift || true
  case $cmd in
    up) bpc_ns_up "$@" ;;
    add-pod) bpc_ns_add_pod "$@" ;;
    del-pod) bpc_ns_del_pod "$@" ;;
    app) bpc_ns_app_server "$1-$2" "$3" "$4"; wait ;;
    exec) cluster=$1 name=$2; shift 2; exec ip netns exec "$cluster-$name" "$@" ;;
    down) bpc_ns_down "$@" ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
  esac
fi
