#!/usr/bin/env bash
# Installs what kubectl-bpc needs to build and test, on Debian 12 as root.
# Idempotent: packages already present are skipped, so a second run is quick.
set -euo pipefail

packages=(
  libpcap-dev      # pcap crate (agent capture, CLI filter check)
  iproute2         # ip netns / veth: network namespaces stand in for pods
  tcpdump          # capture baseline in tests and benchmarks
  tshark           # independent decoder of our GRE and pcap output
  iputils-ping
  iperf3           # bulk TCP for the GSO/GRO super-frame tests
  curl             # metrics endpoint checks in scripts
  util-linux       # setpriv, for least-privilege tests
  shellcheck       # lints scripts/*.sh
  procps
  ethtool          # turn off veth offloads where a test compares exact frame counts
  python3          # the sample app server in the netns demo
  jq               # JSON checks in the e2e scripts
  graphviz         # dot: the receiver's --paths pictures (PREFIX.svg, PREFIX.png)
  # The local Kubernetes cluster (scripts/cluster.sh): runtime, CNI, images.
  containerd       # CRI runtime (1.6, CRI v1), with ctr to import images
  runc
  containernetworking-plugins  # bridge, host-local, loopback, portmap in /usr/lib/cni
  iptables         # kube-proxy and the kubelet's chains
  conntrack
  openssl          # the cluster's PKI
  libcap2-bin      # setcap: the agent image's cap_net_raw=+p
  busybox-static   # the test app image: sh, httpd, wget
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 2
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no, no prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found; install a Rust toolchain (https://rustup.rs) first" >&2
  exit 2
fi
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt 2>/dev/null || true
echo "install-deps: ok"
