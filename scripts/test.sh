#!/usr/bin/env bash
# scripts/test.sh - the test command: installs missing Debian 12 packages (as root; otherwise prints
# the apt-get command and exits 1), configures a Release build in build/ with Ninja, builds it and
# runs every test with ctest. Exits with ctest's status.
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
phase "tests finished with status $status"
exit "$status"
