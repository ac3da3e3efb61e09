#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, from upstream parts:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kube-proxy built from their Go modules (scripts/cluster/upstream/go.mod),
# containerd and runc from Debian, and a CNI bridge. What kind runs inside its
# node container, without the container. Needs root; no registry is reachable,
# so the pause, app and agent images are built locally and imported.
#
# Usage: scripts/cluster.sh up|down|status|env|build|bin
#   up      build what is missing (cached), start everything, wait until the
#           node is Ready and a test pod runs
#   down    stop exactly what up started (by PID), remove its pods' network
#           namespaces, the bridge, mounts, cgroups and iptables rules; safe to repeat
#   status  which components run, and the node
#   env     export lines: KUBECONFIG, PATH (this kubectl first), BPC_AGENT_IMAGE,
#           BPC_APP_IMAGE, BPC_NODE_IP (the node as pods reach it: a collector),
#           BPC_SINK_IP (a second node address);  use: eval "$(scripts/cluster.sh env)"
#   build   only build (or reuse) the upstream binaries
#   bin     print the directory of those binaries (kubectl of the cluster's version)
#
# Settings (environment): BPC_CLUSTER_CACHE (binaries, default
# /var/cache/bpc-cluster), BPC_CLUSTER_STATE (default /var/lib/bpc-cluster),
# BPC_AGENT_BINARY (default $CARGO_TARGET_DIR/release/bpc-agent, built when missing),
# BPC_AGENT_IMAGE_NAME (default localhost/bpc-agent:VERSION). `images` alone
# re-imports the images into a running cluster.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

k8s_version=v1.34.4
etcd_version=v3.6.4 # the one k8s.io/kubernetes v1.34.4 requires (go.mod)
cache=${BPC_CLUSTER_CACHE:-/var/cache/bpc-cluster}
bin=$cache/k8s-$k8s_version/bin
state=${BPC_CLUSTER_STATE:-/var/lib/bpc-cluster}
run=/run/bpc-cluster
logs=$state/logs
pki=$state/pki

# Addresses: all inside 198.18.0.0/15, away from the netns tests' 198.18.x.
node_ip=198.19.64.1
sink_ip=198.19.64.254
pod_cidr=198.19.64.0/24
service_cidr=198.19.96.0/24
bridge=bpc-cni0
node_name=bpc-node
etcd_port=23790
etcd_peer_port=23800
apiserver_port=6443
ports=("$etcd_port" "$etcd_peer_port" "$apiserver_port" 10250 10248 10257 10259 10249 10256)

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
agent_image=${BPC_AGENT_IMAGE_NAME:-localhost/bpc-agent:$version}
app_image=localhost/bpc-app:1
pause_image=localhost/bpc-pause:1
components=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 2; }
ctr_() { ctr --address "$run/containerd/containerd.sock" --namespace k8s.io "$@"; }
kubectl_() { "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------- build

build() {
  local tools=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy etcd)
  local missing=0 t
  for t in "${tools[@]}"; do [[ -x $bin/$t ]] || missing=1; done
  ((missing)) || { say "upstream binaries $k8s_version (etcd $etcd_version) cached in $bin"; return; }
  command -v go >/dev/null || die "go is required to build the upstream binaries (Go 1.24 or newer)"
  say "building kube-* $k8s_version and etcd $etcd_version into $bin (cold: about 7 min on 2 cores)"
  local started=$SECONDS ld v=$k8s_version minor=${k8s_version#v1.}
  minor=${minor%%.*}
  ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$bin.partial"
  (
    cd "$repo/scripts/cluster/upstream"
    CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ld" -o "$bin.partial/" \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kube-proxy go.etcd.io/etcd/server/v3
  )
  mv "$bin.partial/server" "$bin.partial/etcd" # the main package of go.etcd.io/etcd/server/v3
  rm -rf "$bin" && mv "$bin.partial" "$bin"
  say "built in $((SECONDS - started)) s"
}

# ---------------------------------------------------------------- images

# Builds the three local images as OCI archives and imports them.
images() {
  local work
  work=$(mktemp -d)
  local target=${CARGO_TARGET_DIR:-$repo/target}
  [[ $target == /* ]] || target=$repo/$target
  local agent=${BPC_AGENT_BINARY:-$target/release/bpc-agent}
  if [[ -z ${BPC_AGENT_BINARY:-} ]]; then
    say "building the agent (cargo build --release -p bpc-agent)"
    (cd "$repo" && cargo build --release --locked -q -p bpc-agent)
  fi
  [[ -x $agent ]] || die "no agent binary at $agent"

  mkdir -p "$work/pause/bin"
  gcc -static -Os -o "$work/pause/bin/pause" "$repo/scripts/cluster/pause.c"
  "$repo/scripts/cluster/oci-image.sh" --name "$pause_image" --rootfs "$work/pause" \
    --out "$work/pause.tar" --user 65535:65535 --entrypoint '["/bin/pause"]' >&2

  # The test app: busybox's sh, httpd and wget; serves /www on port 8080.
  local busybox
  busybox=$(command -v busybox) || die "busybox is required for the app image (apt-get install busybox-static)"
  [[ $(ldd "$busybox" 2>&1 || true) =~ not\ a\ dynamic\ executable|statically\ linked ]] ||
    die "$busybox is not static; install busybox-static"
  mkdir -p "$work/app/bin" "$work/app/www" "$work/app/tmp" "$work/app/etc"
  cp "$busybox" "$work/app/bin/busybox"
  for applet in sh httpd wget sleep cat echo seq ls ps grep nc ip ifconfig hostname id; do
    ln -s busybox "$work/app/bin/$applet"
  done
  echo 'bpc-app' >"$work/app/www/index.html"
  chmod 1777 "$work/app/tmp"
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$work/app/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$work/app/etc/group"
  "$repo/scripts/cluster/oci-image.sh" --name "$app_image" --rootfs "$work/app" --out "$work/app.tar" \
    --port 8080 --cmd '["httpd","-f","-p","8080","-h","/www"]' >&2

  "$repo/scripts/agent-rootfs.sh" "$agent" "$work/agent" --standalone
  "$repo/scripts/cluster/oci-image.sh" --name "$agent_image" --rootfs "$work/agent" \
    --out "$work/agent.tar" --user 65534:65534 --port 9469 --entrypoint '["/usr/local/bin/bpc-agent"]' >&2

  local img
  for img in pause app agent; do
    ctr_ images import --no-unpack=false "$work/$img.tar" >/dev/null ||
      die "ctr images import $img failed (containerd log: $logs/containerd.log)"
  done
  rm -rf "$work"
  say "images imported: $pause_image $app_image $agent_image"
}

# ---------------------------------------------------------------- PKI

cert() { # name CN O sans(comma list or "") usage(server|client|both)
  local name=$1 org=$3 sans=$4 usage=$5 subj="/CN=$2" ext
  [[ -z $org ]] || subj="/O=$org$subj"
  case $usage in
    server) ext="extendedKeyUsage=serverAuth" ;;
    client) ext="extendedKeyUsage=clientAuth" ;;
    both) ext="extendedKeyUsage=serverAuth,clientAuth" ;;
  esac
  ext+=$'\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE'
  [[ -z $sans ]] || ext+=$'\n'"subjectAltName=$sans"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subj" \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 365 -out "$pki/$name.crt" -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$pki/$name.csr"
}

kubeconfig() { # file user-cert-name server
  local b64="base64 -w0"
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bpc-local
  cluster:
    server: $3
    certificate-authority-data: $($b64 <"$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$pki/$2.crt")
    client-key-data: $($b64 <"$pki/$2.key")
contexts:
- name: bpc-local
  context: {cluster: bpc-local, user: $2}
current-context: bpc-local
EOF
}

write_pki() {
  [[ -f $pki/ca.crt ]] && return
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj /CN=bpc-cluster-ca -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  local svc_ip=${service_cidr%.*}.1
  cert apiserver kube-apiserver "" "IP:127.0.0.1,IP:$node_ip,IP:$svc_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" server
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters "" client
  cert admin kubernetes-admin system:masters "" client
  cert controller-manager system:kube-controller-manager "" "" client
  cert scheduler system:kube-scheduler "" "" client
  cert kube-proxy system:kube-proxy "" "" client
  cert kubelet "system:node:$node_name" system:nodes "" client
  cert kubelet-serving "$node_name" "" "IP:$node_ip,DNS:$node_name" server
  openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null
  openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  local server=https://127.0.0.1:$apiserver_port
  kubeconfig "$state/admin.kubeconfig" admin "$server"
  kubeconfig "$state/controller-manager.kubeconfig" controller-manager "$server"
  kubeconfig "$state/scheduler.kubeconfig" scheduler "$server"
  kubeconfig "$state/kube-proxy.kubeconfig" kube-proxy "$server"
  kubeconfig "$state/kubelet.kubeconfig" kubelet "$server"
}

# ---------------------------------------------------------------- processes

start() { # name args...
  local name=$1
  shift
  say "starting $name (log: $logs/$name.log)"
  setsid "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

alive() { [[ -f $run/$1.pid ]] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

wait_for() { # what seconds command...
  local what=$1 seconds=$2 i
  shift 2
  for ((i = 0; i < seconds * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  say "timed out after ${seconds}s waiting for $what"
  local c
  for c in "${components[@]}"; do
    [[ -f $logs/$c.log ]] || continue
    if alive "$c"; then say "  $c: running, log $logs/$c.log"; else say "  $c: NOT running, log $logs/$c.log"; fi
  done
  return 1
}

stop_pid() { # name
  local name=$1 pid i
  [[ -f $run/$name.pid ]] || return 0
  pid=$(cat "$run/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$run/$name.pid"
}

# ---------------------------------------------------------------- up

preflight() {
  [[ $(id -u) -eq 0 ]] || die "must run as root (it starts containerd and the kubelet)"
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] ||
    die "no cgroups mounted at /sys/fs/cgroup (the kubelet needs the memory controller)"
  local tool
  for tool in containerd containerd-shim-runc-v2 runc ctr openssl iptables ip setcap gcc curl; do
    command -v "$tool" >/dev/null || die "$tool not found; run scripts/install-deps.sh"
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
    die "CNI plugins not in /usr/lib/cni; apt-get install containernetworking-plugins"
  local port
  for port in "${ports[@]}"; do
    if ss -Htln "sport = :$port" | grep -q .; then
      die "port $port is taken ($(ss -Htlnp "sport = :$port" | awk '{print $NF}' | head -1)); is a cluster already up? scripts/cluster.sh down"
    fi
  done
  ! ip link show "$bridge" >/dev/null 2>&1 || die "bridge $bridge exists: a cluster is up or was not brought down; scripts/cluster.sh down"
}

network() {
  # containerd bind-mounts each pod's network namespace under /run/netns. The
  # first `ip netns add` (the netns tests) that finds /run/netns unmounted
  # bind-mounts it onto itself, hiding those mounts: kubelet then cannot
  # remove a pod ("remove netns: device or resource busy"). Do it first, as ip does.
  mkdir -p /run/netns
  if ! mountpoint -q /run/netns; then
    mount --bind /run/netns /run/netns
    touch "$run/netns-mounted" # down undoes it when nobody else uses /run/netns
  fi
  mount --make-shared /run/netns
  # A fixed MAC: a Linux bridge without one takes its lowest port's MAC and
  # changes it as pods come and go, and the pods' neighbour entries for the
  # gateway then name a MAC nobody owns until they expire (measured here: an
  # agent's GRE stream lost 236 of 242 packets after a rollout removed the pod
  # whose veth MAC the bridge had).
  ip link add "$bridge" address 02:42:c6:13:40:01 type bridge
  ip addr add "$node_ip/${pod_cidr#*/}" dev "$bridge"
  # A second node address, for a sink beside the collector (verify needs its own).
  ip addr add "$sink_ip/32" dev "$bridge"
  ip link set "$bridge" up
  # Service IPs exist only as kube-proxy's DNAT rules; never route them out.
  ip route add unreachable "$service_cidr"
  # Pods may reach only the cluster's own ranges, never another network.
  iptables -I FORWARD -s "$pod_cidr" ! -d 198.18.0.0/15 -j DROP -m comment --comment bpc-cluster
  echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  echo 1 >/proc/sys/net/ipv4/ip_forward
  mkdir -p "$state/cni/net.d"
  cat >"$state/cni/net.d/10-bpc.conflist" <<EOF
{"cniVersion":"0.4.0","name":"bpc-cluster","plugins":[
 {"type":"bridge","bridge":"$bridge","isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","dataDir":"$state/cni/ipam",
          "ranges":[[{"subnet":"$pod_cidr","gateway":"$node_ip"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
EOF
  printf 'nameserver 127.0.0.1\n' >"$state/resolv.conf"
}

containerd_config() {
  cat >"$state/containerd.toml" <<EOF
version = 2
root = "$state/containerd"
state = "$run/containerd"
[grpc]
  address = "$run/containerd/containerd.sock"
[ttrpc]
  address = "$run/containerd/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # This VM's root lacks CAP_SYS_RESOURCE: a negative oom_score_adj fails runc.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
EOF
}

kubelet_config() {
  cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://$run/containerd/containerd.sock
failSwapOn: false
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
resolvConf: $state/resolv.conf
# No registry: the imported images must never be garbage-collected.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOF
}

up() {
  preflight
  build
  local started=$SECONDS
  mkdir -p "$state" "$logs" "$run"
  write_pki
  network
  containerd_config
  kubelet_config

  start containerd containerd --config "$state/containerd.toml"
  wait_for containerd 30 ctr_ version
  images

  start etcd "$bin/etcd" --name bpc --data-dir "$state/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "bpc=http://127.0.0.1:$etcd_peer_port" --listen-metrics-urls ""
  wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 0.0.0.0 --secure-port "$apiserver_port" --advertise-address "$node_ip" \
    --service-cluster-ip-range "$service_cidr" \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged=true
  wait_for kube-apiserver 90 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$apiserver_port/readyz"

  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controller-manager.kubeconfig" --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1 \
    --service-cluster-ip-range "$service_cidr" --cluster-cidr "$pod_cidr"
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1
  start kubelet "$bin/kubelet" --config "$state/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
    --hostname-override "$node_name" --node-ip "$node_ip" --root-dir "$state/kubelet"
  start kube-proxy "$bin/kube-proxy" --kubeconfig "$state/kube-proxy.kubeconfig" --hostname-override "$node_name" \
    --proxy-mode iptables --cluster-cidr "$pod_cidr" --conntrack-max-per-core 0 \
    --bind-address 127.0.0.1 --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256

  wait_for "node $node_name Ready" 120 kubectl_ wait --for=condition=Ready "node/$node_name" --timeout 1s
  wait_for "the default ServiceAccount" 60 kubectl_ get serviceaccount default -n default
  smoke_pod
  say "up in $((SECONDS - started)) s (after the build); eval \"\$(scripts/cluster.sh env)\" to use it"
}

# A pod of the test app runs and its server answers on the pod IP.
smoke_pod() {
  kubectl_ run bpc-smoke -n default --image "$app_image" --image-pull-policy IfNotPresent --restart Never >/dev/null
  wait_for "the smoke pod to run" 90 kubectl_ wait --for=condition=Ready pod/bpc-smoke -n default --timeout 1s || {
    kubectl_ describe pod bpc-smoke -n default >&2 || true
    return 1
  }
  local ip
  ip=$(kubectl_ get pod bpc-smoke -n default -o jsonpath='{.status.podIP}')
  curl -sf --max-time 5 "http://$ip:8080/" | grep -q bpc-app || die "the smoke pod's server at $ip:8080 does not answer"
  kubectl_ delete pod bpc-smoke -n default --grace-period 0 --force >/dev/null 2>&1
  say "smoke pod ran at $ip"
}

# ---------------------------------------------------------------- down

# The KUBE-* chains the kubelet and kube-proxy made, and the jumps into them.
remove_kube_chains() { # iptables|ip6tables
  local cmd=$1 table chain rule chains
  command -v "$cmd" >/dev/null || return 0
  for table in filter nat mangle; do
    chains=$("$cmd" -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}') || continue
    "$cmd" -t "$table" -S 2>/dev/null | awk '/^-A / && / -j KUBE-/ && $2 !~ /^KUBE-/' | sed 's/^-A/-D/' |
      while read -r rule; do eval "$cmd -t $table $rule" 2>/dev/null || true; done
    for chain in $chains; do "$cmd" -t "$table" -F "$chain" 2>/dev/null || true; done
    for chain in $chains; do "$cmd" -t "$table" -X "$chain" 2>/dev/null || true; done
  done
}

down() {
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  local c netns=() id
  stop_pid kube-proxy
  [[ ! -x $bin/kube-proxy ]] || "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  stop_pid kubelet
  # The pods: every container containerd runs for us, and the network
  # namespaces their sandboxes hold (read from the specs, not guessed).
  if alive containerd; then
    for id in $(ctr_ containers ls -q 2>/dev/null); do
      while read -r path; do [[ -z $path ]] || netns+=("$path"); done < <(
        ctr_ containers info "$id" 2>/dev/null |
          jq -r '.Spec.linux.namespaces[]? | select(.type=="network") | .path // empty' 2>/dev/null
      )
      ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for id in $(ctr_ containers ls -q 2>/dev/null); do
      ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true
      ctr_ containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  for c in kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do stop_pid "$c"; done
  # The runc shims of our containerd (their -address names its socket).
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $run/containerd/containerd.sock" 2>/dev/null || true
  # Whatever is left in the kubelet's cgroups (the pods' processes).
  local cg
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
    [[ -d $cg ]] || continue
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
  done
  sleep 0.3
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods; do
    if [[ -d $cg ]]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  for path in "${netns[@]}"; do
    umount "$path" 2>/dev/null || true
    rm -f "$path"
  done
  # The bind mount of /run/netns that up made, unless other namespaces (ip
  # netns add by someone else, who relies on it as ip made it) are there now.
  if [[ -f $run/netns-mounted ]] && [[ -z $(ls -A /run/netns 2>/dev/null) ]]; then
    umount /run/netns 2>/dev/null || true
  fi
  # Mounts under our directories (kubelet volumes, rootfs, shm), deepest first.
  awk -v s="$state" -v r="$run" '$2 ~ "^"s"/" || $2 ~ "^"r"/" {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  ip link del "$bridge" 2>/dev/null || true
  ip route del unreachable "$service_cidr" 2>/dev/null || true
  while iptables -D FORWARD -s "$pod_cidr" ! -d 198.18.0.0/15 -j DROP -m comment --comment bpc-cluster 2>/dev/null; do :; done
  remove_kube_chains iptables
  remove_kube_chains ip6tables
  rm -rf "$run" "$state/containerd" "$state/kubelet" "$state/etcd" "$state/cni" "$state/pki" "$state"/*.kubeconfig
  say "down"
}

# ---------------------------------------------------------------- status / env

status() {
  local c up=0
  for c in "${components[@]}"; do
    if alive "$c"; then
      printf '%-24s running (pid %s)\n' "$c" "$(cat "$run/$c.pid")"
      up=$((up + 1))
    else
      printf '%-24s stopped\n' "$c"
    fi
  done
  ((up)) || return 3
  kubectl_ get nodes -o wide 2>/dev/null || true
  ((up == ${#components[@]}))
}

env_() {
  [[ -f $state/admin.kubeconfig ]] || die "no cluster: scripts/cluster.sh up first"
  cat <<EOF
export KUBECONFIG=$state/admin.kubeconfig
export PATH=$bin:\$PATH
export BPC_AGENT_IMAGE=$agent_image
export BPC_APP_IMAGE=$app_image
export BPC_NODE_IP=$node_ip
export BPC_SINK_IP=$sink_ip
EOF
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  env) env_ ;;
  build) build ;;
  bin) echo "$bin" ;;
  images) images ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
