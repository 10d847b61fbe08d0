# cmake/hwyconvHwyHeaders.cmake - a header-only hwy::hwy for static dispatch where no hwy CMake
# package exists for the target (e.g. cross builds for riscv64 on Debian 12). Used by hwyconv's
# CMakeLists.txt and by the installed hwyconvConfig.cmake (static-dispatch installs only).
if(NOT TARGET hwy::hwy)
  find_path(HWYCONV_HWY_INCLUDE_DIR hwy/highway.h)
  if(NOT HWYCONV_HWY_INCLUDE_DIR)
    message(FATAL_ERROR "hwyconv: Highway not found: no hwy CMake package and no hwy/highway.h "
                        "(Debian: apt-get install libhwy-dev; or set HWYCONV_HWY_INCLUDE_DIR)")
  endif()
  add_library(hwy::hwy INTERFACE IMPORTED)
  set_target_properties(hwy::hwy PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${HWYCONV_HWY_INCLUDE_DIR}")
  message(STATUS "hwyconv: no hwy package for this target; Highway headers from ${HWYCONV_HWY_INCLUDE_DIR}")
endif()
