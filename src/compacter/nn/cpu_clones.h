// COMPACTER_CPU_CLONES: compiles a function twice, for AVX-512 (x86-64-v4) and the baseline, the
// CPU choosing at load time (GCC's target_clones, an ifunc), for this library's own element-wise
// CPU loops (nn/dropout.cpp, nn/rms_norm.cpp). The function must give the same results either
// way (no operation whose rounding depends on the vector width). Not in sanitizer builds: the
// ifunc's resolver runs while the library is relocated, before the sanitizer's runtime is set up,
// and TSan's instrumentation of it crashed every program at start.
#pragma once

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define COMPACTER_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define COMPACTER_CPU_CLONES
#endif
