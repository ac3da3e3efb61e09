#!/usr/bin/env bash
# Packs a root filesystem directory into a one-layer OCI image archive that
# `ctr images import` (containerd) takes, with no Docker engine and no
# registry. File capabilities (security.capability xattrs, as setcap writes
# them) are kept in the layer as PAX headers, which containerd applies.
#
# Usage: oci-image.sh --name REF --rootfs DIR --out FILE.tar
#                     [--user UID:GID] [--entrypoint JSON] [--cmd JSON] [--port N]
# e.g.   oci-image.sh --name localhost/bpc-agent:0.1.0 --rootfs /tmp/rootfs \
#          --out agent.tar --user 65534:65534 --entrypoint '["/usr/local/bin/bpc-agent"]'
set -euo pipefail

name="" rootfs="" out="" user="0:0" entrypoint="null" cmd="null" port=""
while (($#)); do
  case $1 in
    --name) name=$2 ;;
    --rootfs) rootfs=$2 ;;
    --out) out=$2 ;;
    --user) user=$2 ;;
    --entrypoint) entrypoint=$2 ;;
    --cmd) cmd=$2 ;;
    --port) port=$2 ;;
    *) echo "oci-image: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -n $name && -d $rootfs && -n $out ]] || {
  echo "oci-image: --name, --rootfs (a directory) and --out are required" >&2
  exit 2
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/blobs/sha256"

blob() { # file -> prints "sha256 size", stores the file as a blob
  local sum size
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  mv "$1" "$work/blobs/sha256/$sum"
  echo "$sum $size"
}

# Reproducible layer: sorted names, fixed times, numeric owners as on disk.
tar --format=pax --xattrs --xattrs-include='security.capability' --sort=name \
  --mtime=@0 --numeric-owner --pax-option=delete=atime,delete=ctime \
  -C "$rootfs" -cf "$work/layer.tar" .
read -r layer_sum layer_size < <(blob "$work/layer.tar")

exposed="{}"
[[ -z $port ]] || exposed="{\"$port/tcp\":{}}"
cat >"$work/config.json" <<EOF
{"architecture":"amd64","os":"linux",
 "config":{"User":"$user","Entrypoint":$entrypoint,"Cmd":$cmd,"ExposedPorts":$exposed,
           "Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
 "rootfs":{"type":"layers","diff_ids":["sha256:$layer_sum"]},
 "history":[{"created_by":"scripts/cluster/oci-image.sh"}]}
EOF
read -r config_sum config_size < <(blob "$work/config.json")

cat >"$work/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_sum","size":$config_size},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer_sum","size":$layer_size}]}
EOF
read -r manifest_sum manifest_size < <(blob "$work/manifest.json")

echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci-layout"
cat >"$work/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "digest":"sha256:$manifest_sum","size":$manifest_size,
 "annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"${name##*:}"}}]}
EOF
tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$work" -cf "$out" oci-layout index.json blobs
echo "oci-image: $name -> $out (layer sha256:${layer_sum:0:12}, $((layer_size / 1024)) KiB)"
