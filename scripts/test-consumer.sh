#!/usr/bin/env bash
# scripts/test-consumer.sh - hwyconv as a downstream project takes it in. Installs hwyconv
# (cmake --install) into a temporary prefix, then builds and runs tests/consumer (one convolution
# checked against the reference) four ways:
#   package       find_package(hwyconv) from the installed prefix (hwyconv::hwyconv)
#   subdirectory  add_subdirectory() of this source tree
#   single        the installed single header (<prefix>/include/hwyconv-single) + Highway
#   pkg-config    g++ $(pkg-config --cflags --libs hwyconv) with PKG_CONFIG_PATH=<prefix>/share/pkgconfig
# Prints a summary table and "N passed, N failed"; exits 1 if any way failed.
#
# Environment: CXX (compiler, default c++), HWYCONV_CONSUMER_BUILD_TYPE (CMake build type of the
# consumers, default empty: no optimisation flags, the fastest to compile), KEEP=1 keeps the
# temporary folder, JOBS (default 1). Needs cmake, a C++20 compiler, libhwy-dev, pkg-config (the
# pkg-config way is skipped without it).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD
start=$SECONDS
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hwyconv-consumer.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
  echo "keeping $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
jobs=${JOBS:-1}
build_type=${HWYCONV_CONSUMER_BUILD_TYPE:-}
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)

declare -a rows
passed=0
failed=0
skipped=0

log() { printf '[%4ds] %s\n' "$((SECONDS - start))" "$*"; }

# record NAME STATUS DETAIL SECONDS
record() {
  rows+=("$(printf '%-13s %-5s %5ss  %s' "$1" "$2" "$4" "$3")")
  case $2 in
    PASS) passed=$((passed + 1)) ;;
    SKIP) skipped=$((skipped + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
}

# run_way NAME CMAKE_ARGS...: configure, build and run tests/consumer.
run_way() {
  local name=$1
  shift
  local t0=$SECONDS bdir=$tmp/consumer-$name out
  log "$name: configure and build"
  if ! cmake -S tests/consumer -B "$bdir" "${gen[@]}" -DCMAKE_BUILD_TYPE="$build_type" \
       -DHWYCONV_CONSUMER_MODE="$name" "$@" >"$bdir.log" 2>&1 ||
     ! cmake --build "$bdir" -j "$jobs" >>"$bdir.log" 2>&1; then
    tail -30 "$bdir.log"
    record "$name" FAIL "build failed (log above)" $((SECONDS - t0))
    return
  fi
  if out=$("$bdir/consumer" 2>&1); then
    log "$out"
    record "$name" PASS "$out" $((SECONDS - t0))
  else
    log "$out"
    record "$name" FAIL "$out" $((SECONDS - t0))
  fi
}

# 1. Install into the temporary prefix.
prefix=$tmp/prefix
log "install: cmake --install into $prefix"
t0=$SECONDS
if cmake -S . -B "$tmp/build-hwyconv" "${gen[@]}" -DHWYCONV_BUILD_TESTS=OFF -DHWYCONV_BUILD_BENCH=OFF \
     -DHWYCONV_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >"$tmp/install.log" 2>&1 &&
   cmake --build "$tmp/build-hwyconv" >>"$tmp/install.log" 2>&1 &&
   cmake --install "$tmp/build-hwyconv" >>"$tmp/install.log" 2>&1; then
  missing=""
  for f in include/hwyconv/hwyconv.hpp include/hwyconv/kernels/fwd-inl.h include/hwyconv-single/hwyconv/hwyconv.hpp \
           share/cmake/hwyconv/hwyconvConfig.cmake share/cmake/hwyconv/hwyconvConfigVersion.cmake \
           share/cmake/hwyconv/hwyconvTargets.cmake share/pkgconfig/hwyconv.pc; do
    [ -f "$prefix/$f" ] || missing+=" $f"
  done
  if [ -z "$missing" ]; then
    record install PASS "$(find "$prefix" -type f | wc -l) files in <prefix>" $((SECONDS - t0))
  else
    record install FAIL "missing:$missing" $((SECONDS - t0))
  fi
else
  tail -30 "$tmp/install.log"
  record install FAIL "cmake --install failed (log above)" $((SECONDS - t0))
fi

# 2. The consumer, three ways with CMake.
run_way package -DCMAKE_PREFIX_PATH="$prefix"
run_way subdirectory -DHWYCONV_SOURCE_DIR="$src"
run_way single -DHWYCONV_SINGLE_INCLUDE_DIR="$prefix/include/hwyconv-single"

# 3. pkg-config, no CMake.
t0=$SECONDS
if command -v pkg-config >/dev/null 2>&1; then
  log "pkg-config: compile"
  export PKG_CONFIG_PATH=$prefix/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  if flags=$(pkg-config --cflags --libs hwyconv 2>&1); then
    log "pkg-config --cflags --libs hwyconv: $flags"
    # shellcheck disable=SC2086  # flags are words
    if ${CXX:-c++} -std=c++20 -DHWYCONV_CONSUMER_MODE='"pkg-config"' tests/consumer/main.cpp $flags \
         -o "$tmp/consumer-pkg-config" >"$tmp/pkg-config.log" 2>&1; then
      if out=$("$tmp/consumer-pkg-config" 2>&1); then
        log "$out"
        record pkg-config PASS "$out" $((SECONDS - t0))
      else
        record pkg-config FAIL "$out" $((SECONDS - t0))
      fi
    else
      tail -30 "$tmp/pkg-config.log"
      record pkg-config FAIL "compile failed (log above)" $((SECONDS - t0))
    fi
  else
    record pkg-config FAIL "pkg-config: $flags" $((SECONDS - t0))
  fi
else
  record pkg-config SKIP "pkg-config not installed (apt-get install pkgconf)" 0
fi

echo
echo "way           result  time  output"
for r in "${rows[@]}"; do echo "$r"; done
echo "total: $((SECONDS - start)) s"
echo "consumer: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
