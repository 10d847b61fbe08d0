#!/usr/bin/env bash
# scripts/test.sh - the test command: installs missing Debian 12 packages (as root; otherwise prints
# the apt-get command and exits 1), configures a Release build in build/ with Ninja, builds it and
# runs every test with ctest, then the Arm tests under emulation (scripts/test-arm.sh). Exits non-zero
# if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/deps.sh
source scripts/deps.sh

hwyconv_install_deps
timed configure cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DHWYCONV_BUILD_TESTS=ON -DHWYCONV_BUILD_BENCH=ON -DHWYCONV_BUILD_EXAMPLES=ON
timed build cmake --build build -j2
status=0
timed ctest ctest --test-dir build --output-on-failure || status=$?
# Arm (NEON, SVE, SVE2, static NEON) cross-built and run under qemu-user: scripts/test-arm.sh
# (about 10 min on 2 cores; it prints SKIP and succeeds when it cannot install its packages as a
# non-root user). HWYCONV_SKIP_ARM=1 leaves it out.
if [ "${HWYCONV_SKIP_ARM:-0}" != 1 ]; then
  timed arm env JOBS=2 bash scripts/test-arm.sh || status=1
fi
phase "tests finished with status $status"
exit "$status"
