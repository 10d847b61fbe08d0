// An object file holding every microkernel of every Highway target, for scripts/check_spills.py
// (ctest no_spills): accumulators must stay in registers in the hot loops.
#include <hwyconv/hwyconv.hpp>

/// Keeps the kernel tables (and so every instantiation) in the object.
const hwyconv::KernelTable* hwyconv_spill_probe() { return &hwyconv::kernels(); }
