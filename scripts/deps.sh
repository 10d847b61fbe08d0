# shellcheck shell=bash
# scripts/deps.sh - sourced by scripts/test.sh and scripts/run.sh: checks the Debian 12 packages the
# build needs and installs the missing ones (as root), or prints the apt-get command (otherwise).
#
# Library and tests: cmake ninja-build g++ python3 libhwy-dev doctest-dev.
# bench/: libcxxopts-dev nlohmann-json3-dev (required there), libdnnl-dev libopenblas-dev pkgconf
# libxnnpack-dev libpthreadpool-dev (the oneDNN, im2col + OpenBLAS and XNNPACK baselines;
# ocl-icd-opencl-dev because Debian's oneDNN CMake config requires OpenCL, a package it only
# recommends). examples/: dataset-fashion-mnist zlib1g-dev.

HWYCONV_PACKAGES=(cmake ninja-build g++ python3 libhwy-dev doctest-dev
                  libcxxopts-dev nlohmann-json3-dev libdnnl-dev ocl-icd-opencl-dev libopenblas-dev pkgconf
                  libxnnpack-dev libpthreadpool-dev
                  dataset-fashion-mnist zlib1g-dev)

# Prints "[phase] message" with the seconds since the script started.
phase() {
  printf '[%4ds] == %s\n' "$SECONDS" "$*"
}

# Runs a command as a named phase and reports how long it took.
timed() {
  local name=$1
  shift
  local start=$SECONDS
  local rc=0
  phase "$name: $*"
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    phase "$name: done in $((SECONDS - start)) s"
  else
    phase "$name: FAILED (status $rc) after $((SECONDS - start)) s"
  fi
  return "$rc"
}

# Prints the packages of HWYCONV_PACKAGES that are not installed. A package installed for this
# machine's architecture counts (`dpkg -s` alone fails as "ambiguous" when, e.g., libhwy-dev is
# installed for amd64 and arm64 side by side); architecture-independent packages are looked up
# by name.
hwyconv_missing_packages() {
  local p arch
  arch=$(dpkg --print-architecture)
  for p in "${HWYCONV_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p:$arch" 2>/dev/null | grep -q '^install ok installed' && continue
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' && continue
    printf '%s\n' "$p"
  done
}

hwyconv_install_deps() {
  if ! command -v dpkg >/dev/null 2>&1; then
    phase "deps: no dpkg (not Debian); assuming ${HWYCONV_PACKAGES[*]} are provided"
    return 0
  fi
  local missing
  mapfile -t missing < <(hwyconv_missing_packages)
  if [ "${#missing[@]}" -eq 0 ]; then
    phase "deps: all packages present"
    return 0
  fi
  local cmd="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing packages: ${missing[*]}" >&2
    echo "Install them as root, then rerun:" >&2
    echo "  apt-get update && $cmd" >&2
    exit 1
  fi
  phase "deps: installing ${missing[*]}"
  timed "apt-get update" apt-get update
  timed "apt-get install" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}
