// EDGEFL_TARGET_CLONES: compile a hot loop once per x86-64 level and let the loader pick.
//
// The default build targets baseline x86-64 (SSE2), so that one binary runs anywhere. A
// function marked EDGEFL_TARGET_CLONES is compiled three times, for x86-64-v4 (AVX-512),
// x86-64-v3 (AVX2 + FMA) and the baseline, and an ifunc resolver picks the widest the CPU
// has at load time. Meant for loops over plain arrays or GCC vector types, which each clone
// lowers to its own registers; kernels that need intrinsics per level live in per-level files
// instead (models/src/kernels). Empty elsewhere (other compilers or architectures) and under
// AddressSanitizer, whose instrumentation does not support ifuncs.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__SANITIZE_ADDRESS__)
#define EDGEFL_TARGET_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EDGEFL_TARGET_CLONES
#endif
