#!/usr/bin/env bash
# Builds Netis packet-agent's pktminerg (the contender of scripts/bench.sh's
# mode "pktminerg", issue 26) as a Release build with -O3 and installs the
# binary to PREFIX/bin/pktminerg (default /opt/pktminerg). Not run by CI.
#
# Usage: scripts/build-pktminerg.sh [SOURCE]
#   SOURCE   a source directory of packet-agent, or a git directory (bare or
#            not) holding its history, of which tag v0.3.6 is built
#            (default: the mirror /work/.mirror/Netis+packet-agent/repo)
#   PKTMINERG_REF=v0.3.6        the tag or commit taken from a git SOURCE
#   PKTMINERG_PREFIX=/opt/pktminerg
#   PKTMINERG_BUILD=/tmp/pktminerg-build   scratch directory (source copy + build)
#   PKTMINERG_JOBS=1            make -j (the bench machine has 2 cores)
#
# Build dependencies (Debian 12): cmake g++ make libpcap-dev
# libboost-program-options-dev libboost-system-dev libboost-filesystem-dev
# (pktminerg links these three statically) libzmq3-dev cppzmq-dev (the
# ZeroMQ export is compiled in even when unused). Installed with apt-get when
# missing and we are root.
#
# The project's CMakeLists.txt is used unchanged: CMAKE_BUILD_TYPE=Release
# with CMAKE_CXX_FLAGS_RELEASE="-O3 -DNDEBUG" (its own flags add -std=c++11
# -Wall -pthread); only the pktminerg target is built. libpcap is the
# system's (linked dynamically).
set -euo pipefail

SRC=${1:-/work/.mirror/Netis+packet-agent/repo}
REF=${PKTMINERG_REF:-v0.3.6}
PREFIX=${PKTMINERG_PREFIX:-/opt/pktminerg}
WORK=${PKTMINERG_BUILD:-/tmp/pktminerg-build}
JOBS=${PKTMINERG_JOBS:-1}

DEPS=(cmake g++ make libpcap-dev libboost-program-options-dev libboost-system-dev libboost-filesystem-dev
  libzmq3-dev cppzmq-dev)
missing=()
for p in "${DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "build-pktminerg.sh: missing packages: ${missing[*]}" >&2
    exit 2
  fi
fi

rm -rf "$WORK"
mkdir -p "$WORK/src" "$WORK/build"
if [[ -f $SRC/CMakeLists.txt ]]; then
  cp -a "$SRC/." "$WORK/src/"
  DESC="source directory $SRC"
else
  # A git directory: a checkout of REF sharing its objects (CMakeLists.txt
  # asks git in the source directory for the commit that --version prints).
  rmdir "$WORK/src"
  git clone -q --shared --no-checkout "$SRC" "$WORK/src"
  git -C "$WORK/src" -c advice.detachedHead=false checkout -q "$REF"
  DESC="$REF ($(git -C "$WORK/src" rev-parse HEAD)) of $SRC"
fi
echo "build-pktminerg.sh: building $DESC" >&2

# Two adaptations to CMake 3.25 and Debian 12, no change to the source:
# - Boost_NO_BOOST_CMAKE: FindBoost's module mode, whose Boost_*_LIBRARY are
#   file paths (CMakeLists.txt copies them; BoostConfig's are target names);
# - Debian's cppzmq-dev defines the target cppzmq-static on a libzmq-static
#   that its FindZeroMQ never defines: define it here as the shared libzmq
#   (only the ZeroMQ export, -z, which the bench does not use, calls it).
cat >"$WORK/project-include.cmake" <<'CMAKE'
if(NOT TARGET libzmq-static)
  add_library(libzmq-static INTERFACE IMPORTED)
  set_target_properties(libzmq-static PROPERTIES INTERFACE_LINK_LIBRARIES zmq)
endif()
CMAKE
cmake -S "$WORK/src" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O3 -DNDEBUG" \
  -DBoost_NO_BOOST_CMAKE=ON -DCMAKE_PROJECT_INCLUDE="$WORK/project-include.cmake" \
  >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log" >&2; exit 1; }
make -C "$WORK/build" -j"$JOBS" VERBOSE=1 pktminerg >"$WORK/make.log" 2>&1 || { tail -50 "$WORK/make.log" >&2; exit 1; }

install -D -m 0755 "$WORK/src/bin/pktminerg" "$PREFIX/bin/pktminerg"
echo "build-pktminerg.sh: installed $PREFIX/bin/pktminerg" >&2
"$PREFIX/bin/pktminerg" --version
