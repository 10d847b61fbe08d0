# cmake/toolchains/riscv64-linux-gnu.cmake - cross build for 64-bit RISC-V Linux with Debian's
# g++-riscv64-linux-gnu; tests run under qemu-riscv64 (Debian: qemu-user).
#
#   cmake -S . -B build-riscv64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/riscv64-linux-gnu.cmake \
#         -DHWYCONV_STATIC_DISPATCH=ON
#   ctest --test-dir build-riscv64
#
# Static dispatch only: with gcc 12 Highway 1.0.3 compiles the SCALAR target there (gcc 12 has no
# RVV intrinsics), and Debian 12 has no libhwy for riscv64, so only Highway's headers (the host's
# /usr/include/hwy) are used; hwyconv's CMake makes a header-only hwy::hwy when no hwy package is
# found for the target.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)

set(HWYCONV_CROSS_TRIPLE riscv64-linux-gnu)
set(CMAKE_C_COMPILER ${HWYCONV_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${HWYCONV_CROSS_TRIPLE}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${HWYCONV_CROSS_TRIPLE})

set(CMAKE_FIND_ROOT_PATH /usr/${HWYCONV_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

set(HWYCONV_QEMU_CPU "rv64" CACHE STRING "qemu-riscv64 -cpu value for running tests")
find_program(HWYCONV_QEMU_RISCV64 qemu-riscv64)
if(HWYCONV_QEMU_RISCV64)
  # As for aarch64: the loader and the C/C++ runtime from the cross root, together.
  set(CMAKE_CROSSCOMPILING_EMULATOR ${HWYCONV_QEMU_RISCV64} -L /usr/${HWYCONV_CROSS_TRIPLE}
      -E LD_LIBRARY_PATH=/usr/${HWYCONV_CROSS_TRIPLE}/lib -cpu ${HWYCONV_QEMU_CPU})
endif()
