#!/usr/bin/env bash
# Fuzzes the GRE decoder (and VXLAN, ERSPAN II/III) with cargo-fuzz (libFuzzer + AddressSanitizer).
# Usage: scripts/fuzz.sh [SECONDS]   (default 60)
# cargo-fuzz needs nightly compiler flags; on a stable toolchain,
# RUSTC_BOOTSTRAP=1 unlocks them without installing nightly.
set -euo pipefail
cd "$(dirname "$0")/../wire/fuzz"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/decode
# Seeds: one packet of each header shape.
printf '\x30\x00\x65\x58\x00\x00\x00\x07\x00\x00\x00\x01\xde\xad' > corpus/decode/standard
printf '\x20\x00\x65\x58\x10\x00\x00\x01\xde\xad' > corpus/decode/netis
printf '\x80\x00\x65\x58\x7c\x09\x00\x00\xde\xad\xbe\xef\x01' > corpus/decode/checksum
printf '\x10\x00\x88\xbe\x00\x00\x00\x07\x10\x00\x02\x26\x00\x00\x00\x02\xde\xad' > corpus/decode/erspan-ii
printf '\x10\x00\x22\xeb\x00\x00\x00\x07\x20\x00\x02\x26\x07\x5b\xcd\x15\x00\x00\x80\x0d\x0c\x00\x00\x02\x65\x53\xf1\x00\xde' > corpus/decode/erspan-iii
printf '\x08\x00\x00\x00\x3f\x96\x26\x00\xde\xad' > corpus/decode/vxlan
cargo fuzz run decode corpus/decode -- -max_total_time="$seconds" -max_len=2048
