#!/usr/bin/env bash
# scripts/test-arm.sh - hwyconv on 64-bit Arm: cross-builds with Debian's g++-aarch64-linux-gnu
# (cmake/toolchains/aarch64-linux-gnu.cmake) and runs the tests under qemu-aarch64 on several
# emulated CPUs, i.e. several Highway targets:
#
#   config    build                                   qemu -cpu                          expected target
#   neon      dynamic dispatch (libhwy-dev:arm64)     cortex-a72                         NEON
#   sve512    dynamic dispatch                        a64fx                              SVE (512-bit)
#   sve256    dynamic dispatch                        max,sve-default-vector-length=32   SVE_256 (SVE2 CPU)
#   static    HWYCONV_STATIC_DISPATCH, -march=armv8.2-a, no libhwy linked   neoverse-n1  NEON
#   riscv64   static dispatch, g++-riscv64-linux-gnu, qemu-riscv64 rv64               SCALAR
#
# Each config runs the doctest suite (every per-target test on every target the emulated CPU
# supports), the single-header test, the W^X test and examples/minimal_layer, and reports the
# target dynamic dispatch chose. The dynamic build's microkernels are also disassembled for register
# spills (row "spills"). Prints a summary table and "test-arm: N passed, N failed"; exits 1
# if anything failed.
#
# Installs what it needs when run as root (adds the arm64 architecture for libhwy-dev:arm64);
# otherwise prints the apt-get line and exits 0 with a SKIP message.
#
# Environment:
#   HWYCONV_ARM_CONFIGS  configs to run, comma-separated (default: neon,sve512,sve256,static,riscv64)
#   HWYCONV_ARM_SUBSET   SVE configs test every Nth shape of the ResNet-50 and random sweeps
#                        (HWYCONV_TEST_SUBSET, default 8) and skip the full-size 224x224 first-layer
#                        case: qemu runs SVE code more than 10x slower than NEON code. 1 = all shapes
#                        and cases. The other configs always run everything.
#   JOBS                 build parallelism (default 1)
#   HWYCONV_ARM_BUILD    build folder (default build-arm64; also <it>-static, build-riscv64, <it>-logs)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
configs=${HWYCONV_ARM_CONFIGS:-neon,sve512,sve256,static,riscv64}
sve_subset=${HWYCONV_ARM_SUBSET:-8}
jobs=${JOBS:-1}
bprefix=${HWYCONV_ARM_BUILD:-build-arm64}
rvdir=${bprefix/arm64/riscv64}
[ "$rvdir" = "$bprefix" ] && rvdir=$bprefix-riscv64
logdir=$bprefix-logs

phase() { printf '[%4ds] == %s\n' "$((SECONDS - start))" "$*"; }

want_dynamic=0
want_static=0
want_rv=0
for c in ${configs//,/ }; do
  case $c in
    neon|sve512|sve256) want_dynamic=1 ;;
    static) want_static=1 ;;
    riscv64) want_rv=1 ;;
    *) echo "test-arm: unknown config '$c' (neon, sve512, sve256, static, riscv64)"; exit 1 ;;
  esac
done

# --- Packages ---------------------------------------------------------------------------------------
# libhwy-dev with its architecture: once libhwy-dev:arm64 is installed too, the bare name is ambiguous.
packages=(cmake ninja-build python3 doctest-dev qemu-user)
command -v dpkg >/dev/null 2>&1 && packages+=("libhwy-dev:$(dpkg --print-architecture)")
[ $((want_dynamic + want_static)) -gt 0 ] && packages+=(g++-aarch64-linux-gnu libhwy-dev:arm64)
[ $want_rv = 1 ] && packages+=(g++-riscv64-linux-gnu)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
else
  for c in cmake ninja python3 aarch64-linux-gnu-g++ qemu-aarch64; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  install="dpkg --add-architecture arm64 && apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test-arm: SKIP: missing ${missing[*]}. Install them as root, then rerun:"
    echo "  $install"
    exit 0
  fi
  phase "installing ${missing[*]}"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then dpkg --add-architecture arm64; fi
  if ! { apt-get update -q >/dev/null &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "test-arm: apt-get install ${missing[*]} failed"
    exit 1
  fi
fi
mkdir -p "$logdir"

# --- Builds -----------------------------------------------------------------------------------------
targets=(hwyconv_tests hwyconv_test_wx hwyconv_single_header minimal_layer)
# build NAME DIR TRIPLE CMAKE_ARGS...: configures and builds the test programs; 0 on success.
build() {
  local name=$1 dir=$2 triple=$3 t0=$SECONDS
  shift 3
  phase "build $name: $dir"
  if cmake -S . -B "$dir" -G Ninja -DCMAKE_TOOLCHAIN_FILE="cmake/toolchains/$triple.cmake" \
       -DCMAKE_BUILD_TYPE=Release -DHWYCONV_BUILD_TESTS=ON -DHWYCONV_BUILD_EXAMPLES=ON \
       -DHWYCONV_BUILD_BENCH=OFF "$@" >"$logdir/configure-$name.log" 2>&1 &&
     cmake --build "$dir" -j "$jobs" --target "${targets[@]}" >"$logdir/build-$name.log" 2>&1; then
    phase "build $name: done in $((SECONDS - t0)) s"
    return 0
  fi
  tail -40 "$logdir/configure-$name.log" "$logdir/build-$name.log"
  phase "build $name: FAILED after $((SECONDS - t0)) s (logs in $logdir)"
  return 1
}

dyn_ok=0
static_ok=0
rv_ok=0
if [ $want_dynamic = 1 ]; then
  build dynamic "$bprefix" aarch64-linux-gnu -DHWYCONV_STATIC_DISPATCH=OFF -DHWYCONV_TARGETS= \
    -DCMAKE_CXX_FLAGS= && dyn_ok=1
fi
if [ $want_static = 1 ]; then
  build static "$bprefix-static" aarch64-linux-gnu -DHWYCONV_STATIC_DISPATCH=ON -DHWYCONV_TARGETS= \
    -DCMAKE_CXX_FLAGS=-march=armv8.2-a -DHWYCONV_QEMU_CPU=neoverse-n1 && static_ok=1
fi
if [ $want_rv = 1 ]; then
  build riscv64 "$rvdir" riscv64-linux-gnu -DHWYCONV_STATIC_DISPATCH=ON -DHWYCONV_TARGETS= -DCMAKE_CXX_FLAGS= &&
    rv_ok=1
fi

# --- Runs -------------------------------------------------------------------------------------------
rows=()
passed=0
failed=0

# run_config NAME BUILD_DIR QEMU CPU SUBSET [DOCTEST_ARGS...]
run_config() {
  local name=$1 dir=$2 qemu_bin=$3 cpu=$4 subset=$5 t0=$SECONDS
  shift 5
  local triple=aarch64-linux-gnu
  [ "$qemu_bin" = qemu-riscv64 ] && triple=riscv64-linux-gnu
  # The loader and the C/C++ runtime from the cross root, together (see the toolchain file).
  local qemu=("$qemu_bin" -L "/usr/$triple" -E "LD_LIBRARY_PATH=/usr/$triple/lib" -cpu "$cpu")
  local chosen others="" bad=0 out rc
  phase "run $name: $qemu_bin -cpu $cpu, HWYCONV_TEST_SUBSET=$subset${*:+, doctest $*}"
  # The target dispatch picks, from the example's own report.
  out=$("${qemu[@]}" "$dir/examples/minimal_layer/minimal_layer" 2>&1)
  rc=$?
  echo "  $out"
  chosen=$(sed -n 's/^minimal_layer: \([A-Z0-9_]*\) .*/\1/p' <<<"$out")
  if [ $rc -eq 0 ]; then others+="minimal_layer ok"; else others+="minimal_layer FAILED"; bad=$((bad + 1)); fi
  out=$("${qemu[@]}" "$dir/tests/hwyconv_single_header" 2>&1)
  rc=$?
  sed 's/^/  /' <<<"$out"
  if [ $rc -eq 0 ]; then others+=", single_header ok"; else others+=", single_header FAILED"; bad=$((bad + 1)); fi
  out=$("${qemu[@]}" "$dir/tests/hwyconv_test_wx" 2>&1)
  rc=$?
  sed 's/^/  /' <<<"$out"
  case $rc in
    0) others+=", wx ok" ;;
    77) others+=", wx skipped (qemu hides W+X)" ;;
    *) others+=", wx FAILED"; bad=$((bad + 1)) ;;
  esac
  # The doctest suite, as an XML report (it names the per-target subcases that ran).
  local xml=$logdir/tests-$name.xml
  HWYCONV_TEST_SUBSET=$subset "${qemu[@]}" "$dir/tests/hwyconv_tests" -r=xml --out="$xml" "$@" \
    >"$logdir/tests-$name.out" 2>&1
  rc=$?
  sed 's/^/  /' "$logdir/tests-$name.out"
  local cases nok nbad detail
  IFS='|' read -r cases nok nbad detail < <(python3 scripts/doctest_xml.py summary "$xml")
  echo "  doctest: $cases, exit $rc; $detail"
  if [ "$rc" -ne 0 ] || [ "${nbad:-1}" -ne 0 ]; then
    bad=$((bad + 1))
    python3 scripts/doctest_xml.py failures "$xml" 12 | sed 's/^/  /'
  fi
  local secs=$((SECONDS - t0)) status=PASS
  if [ $bad -eq 0 ]; then passed=$((passed + 1)); else status=FAIL; failed=$((failed + 1)); fi
  rows+=("$(printf '%-8s %-33s %-8s %-4s %4ss  %s; %s; %s' "$name" "$cpu" "${chosen:-?}" "$status" "$secs" \
            "$cases" "$others" "$detail")")
  phase "run $name: $status in $secs s"
}

# no_libhwy NAME DIR TRIPLE: a static build must not need libhwy.
no_libhwy() {
  local needed
  needed=$("$3-readelf" -d "$2/tests/hwyconv_tests" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  echo "  $1: hwyconv_tests needs $needed"
  if grep -q libhwy <<<"$needed"; then
    rows+=("$(printf '%-8s %-33s %-8s %-4s %4ss  %s' "$1" - - FAIL 0 "links libhwy: $needed")")
    failed=$((failed + 1))
  fi
}

# spills: the aarch64 object of tests/spill_probe.cpp (every microkernel of every Arm target of the
# dynamic build: NEON, SVE, SVE2, SVE_256, SVE2_128) disassembled by scripts/check_spills.py (ctest
# no_spills of the cross build; no emulator): no accumulator on the stack in a hot loop.
if [ $want_dynamic = 1 ] && [ $dyn_ok = 1 ]; then
  t0=$SECONDS
  phase "spills: build hwyconv_spill_probe, ctest no_spills"
  if cmake --build "$bprefix" -j "$jobs" --target hwyconv_spill_probe >"$logdir/build-spills.log" 2>&1 &&
     ctest --test-dir "$bprefix" -R '^no_spills$' -V >"$logdir/spills.out" 2>&1; then
    status=PASS; passed=$((passed + 1))
  else
    status=FAIL; failed=$((failed + 1))
  fi
  sed 's/^/  /' "$logdir/build-spills.log" | tail -5
  grep -E 'SPILL|checked' "$logdir/spills.out" | sed 's/^/  /'
  rows+=("$(printf '%-8s %-33s %-8s %-4s %4ss  %s' spills "(objdump, no emulator)" all "$status" "$((SECONDS - t0))" \
            "$(grep -h 'checked' "$logdir/spills.out" | tail -1)")")
  phase "spills: $status"
fi

sve_args=()
[ "$sve_subset" -gt 1 ] && sve_args=("--test-case-exclude=fwd: first layer*")
for c in ${configs//,/ }; do
  ok=$dyn_ok
  case $c in
    static) ok=$static_ok ;;
    riscv64) ok=$rv_ok ;;
  esac
  if [ "$ok" != 1 ]; then
    rows+=("$(printf '%-8s %-33s %-8s %-4s %4ss  %s' "$c" - - FAIL 0 "build failed (see $logdir)")")
    failed=$((failed + 1))
    continue
  fi
  case $c in
    neon) run_config neon "$bprefix" qemu-aarch64 cortex-a72 1 ;;
    sve512) run_config sve512 "$bprefix" qemu-aarch64 a64fx "$sve_subset" "${sve_args[@]}" ;;
    sve256) run_config sve256 "$bprefix" qemu-aarch64 max,sve-default-vector-length=32 "$sve_subset" "${sve_args[@]}" ;;
    static)
      no_libhwy static "$bprefix-static" aarch64-linux-gnu
      run_config static "$bprefix-static" qemu-aarch64 neoverse-n1 1 ;;
    riscv64)
      no_libhwy riscv64 "$rvdir" riscv64-linux-gnu
      run_config riscv64 "$rvdir" qemu-riscv64 rv64 1 ;;
  esac
done

echo
echo "config   qemu -cpu                         target   result time  tests"
for r in "${rows[@]}"; do echo "$r"; done
echo "total: $((SECONDS - start)) s (logs and doctest XML reports in $logdir/)"
echo "test-arm: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
