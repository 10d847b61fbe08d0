# cmake/toolchains/aarch64-linux-gnu.cmake - cross build for 64-bit Arm Linux with Debian's
# g++-aarch64-linux-gnu; tests run under qemu-user (Debian: qemu-user).
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         [-DHWYCONV_QEMU_CPU=a64fx] [-DHWYCONV_STATIC_DISPATCH=ON -DCMAKE_CXX_FLAGS=-march=armv8.2-a]
#   ctest --test-dir build-arm64        # runs the tests through qemu-aarch64
#
# Dynamic dispatch links libhwy for arm64: `dpkg --add-architecture arm64 && apt-get update &&
# apt-get install libhwy-dev:arm64` (its CMake package lands in /usr/lib/aarch64-linux-gnu/cmake/hwy,
# the headers are the host's /usr/include/hwy). doctest (doctest-dev, architecture "all") is the
# host's: header-only, found in /usr/lib/cmake/doctest.
#
# HWYCONV_QEMU_CPU picks the emulated CPU, i.e. which Highway target dynamic dispatch chooses:
#   cortex-a72                          NEON
#   a64fx                               SVE, 512-bit vectors
#   max,sve-default-vector-length=32    SVE2 CPU with 256-bit vectors (Highway chooses SVE_256)
#   max                                 SVE2, qemu's default vector length (512-bit)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(HWYCONV_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${HWYCONV_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${HWYCONV_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${HWYCONV_CROSS_TRIPLE})

# Packages come from the host's root (multiarch: /usr/lib/aarch64-linux-gnu for arm64 libraries,
# /usr/include and /usr/lib/cmake for architecture-independent ones); programs are the host's.
set(CMAKE_FIND_ROOT_PATH /usr/${HWYCONV_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

set(HWYCONV_QEMU_CPU "cortex-a72" CACHE STRING
    "qemu-aarch64 -cpu value for running tests (cortex-a72, a64fx, max,sve-default-vector-length=32, ...)")
find_program(HWYCONV_QEMU_AARCH64 qemu-aarch64)
if(HWYCONV_QEMU_AARCH64)
  # -L: the cross libc's root, where the guest's loader (ld-linux-aarch64.so.1) comes from.
  # LD_LIBRARY_PATH: libc, libstdc++, libm, libgcc_s from that same root. Without it the loader reads
  # the host's /etc/ld.so.cache, which (once libhwy1:arm64 pulled in libc6:arm64 through multiarch)
  # points to /lib/aarch64-linux-gnu/libc.so.6 of another Debian build than the cross loader: the
  # mix hangs in pthread_create (measured: glibc 2.36-8cross1 loader, 2.36-9+deb12u14 libc).
  # libhwy.so.1 itself is found through the cache, in /usr/lib/aarch64-linux-gnu.
  set(CMAKE_CROSSCOMPILING_EMULATOR ${HWYCONV_QEMU_AARCH64} -L /usr/${HWYCONV_CROSS_TRIPLE}
      -E LD_LIBRARY_PATH=/usr/${HWYCONV_CROSS_TRIPLE}/lib -cpu ${HWYCONV_QEMU_CPU})
endif()
