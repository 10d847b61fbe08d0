#!/usr/bin/env bash
# scripts/bench.sh - the benchmark: installs missing Debian 12 packages (as root; otherwise prints the
# apt-get command and exits 1), builds hwyconv_bench in Release (build/) and runs it with its defaults
# (hwyconv against oneDNN and im2col + OpenBLAS). Extra arguments are passed on to hwyconv_bench.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

hwyconv_install_deps
timed configure cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHWYCONV_BUILD_BENCH=ON
timed build cmake --build build -j2 --target hwyconv_bench
bench=build/bench/hwyconv_bench
if [ ! -x "$bench" ]; then
  echo "error: $bench was not built (bench/CMakeLists.txt missing or HWYCONV_BUILD_BENCH=OFF)" >&2
  exit 1
fi
timed bench "$bench" "$@"
