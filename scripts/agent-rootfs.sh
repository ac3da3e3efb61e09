#!/usr/bin/env bash
# The one list of what the bpc-agent image holds, used by agent/Dockerfile
# (on top of distroless cc-debian12) and by scripts/cluster.sh (no base image:
# --standalone adds what distroless would have given), so the two cannot drift.
#
# Usage: agent-rootfs.sh BINARY OUTDIR [--standalone]
#
# - the binary at /usr/local/bin/bpc-agent, mode 0755, with the file capability
#   cap_net_raw=+p (permitted, not effective: see docs/agent.md, Privileges);
# - libpcap and every library it links (libdbus, libsystemd, ...), except
#   glibc and libgcc, which the distroless base has;
# - --standalone: glibc, libgcc, the dynamic loader, /etc/passwd and
#   /etc/group naming nobody (65534), and /tmp, as the distroless base has them.
set -euo pipefail

binary=${1:?usage: agent-rootfs.sh BINARY OUTDIR [--standalone]}
out=${2:?usage: agent-rootfs.sh BINARY OUTDIR [--standalone]}
standalone=0
[[ ${3:-} == --standalone ]] && standalone=1
base_libs='/(libc|libm|libdl|librt|libpthread|libgcc_s)\.so'

install -D -m 0755 "$binary" "$out/usr/local/bin/bpc-agent"
setcap cap_net_raw=+p "$out/usr/local/bin/bpc-agent"
getcap "$out/usr/local/bin/bpc-agent" | grep -q 'cap_net_raw=p' || {
  echo "agent-rootfs: setcap did not set cap_net_raw=+p (needs root and libcap2-bin)" >&2
  exit 1
}

libs=$(ldd "$binary" | awk '/=> \// {print $3}')
if ((standalone)); then
  printf '%s\n' "$libs" | xargs -I{} cp -L --parents {} "$out/"
  loader=$(ldd "$binary" | awk '!/=>/ && /ld-linux/ {print $1}')
  cp -L --parents "$loader" "$out/"
  mkdir -p "$out/etc" "$out/tmp"
  chmod 1777 "$out/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$out/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$out/etc/group"
else
  printf '%s\n' "$libs" | grep -vE "$base_libs" | xargs -I{} cp -L --parents {} "$out/"
fi
