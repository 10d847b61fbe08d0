#!/usr/bin/env bash
# scripts/run.sh - the main job: installs missing Debian 12 packages (as root; otherwise prints the
# apt-get command and exits 1), builds the Fashion-MNIST example in Release (build/) and trains it
# with its defaults: a small CNN whose every convolution pass (forward, backward data, backward
# weights) runs in hwyconv. Ends with the test accuracy. The learning curve (CSV, SVG) and the
# weights go to build/fashion_mnist/. Extra arguments are passed on to build/examples/fashion_mnist
# (e.g. --epochs 1, --threads 1; see --help). The benchmark is scripts/bench.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

hwyconv_install_deps
timed configure cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHWYCONV_BUILD_EXAMPLES=ON
timed build cmake --build build -j2 --target fashion_mnist
example=build/examples/fashion_mnist
if [ ! -x "$example" ]; then
  echo "error: $example was not built (zlib1g-dev or libcxxopts-dev missing, or HWYCONV_BUILD_EXAMPLES=OFF)" >&2
  exit 1
fi
out=build/fashion_mnist
mkdir -p "$out"
timed example "$example" --out "$out" "$@" | tee "$out/run.log"
# The last line: the example's final test accuracy (nothing when it only printed --help).
grep '^test accuracy' "$out/run.log" | tail -n 1 || true
