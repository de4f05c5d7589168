// Whether this library's own CPU kernels (the hash dropout, nn/dropout.h; the attention's batched
// products, nn/batched_matmul.h) run on libtorch's intra-op threads. at::parallel_for is an
// inline template: it runs in parallel only where the code calling it is compiled with OpenMP
// (CMakeLists.txt, COMPACTER_OPENMP), else on the calling thread alone.
#pragma once

#include <cstdint>

namespace compacter::nn {

// Whether the library was built with OpenMP (COMPACTER_OPENMP with GCC).
bool built_with_openmp();

// How many distinct threads at::parallel_for, called from this library, runs `items` items of
// grain 1 on: at::get_num_threads() (at most `items`) when built with OpenMP, else 1.
int parallel_for_threads(int64_t items);

// Sets libtorch's intra-op threads to every core of the machine unless OMP_NUM_THREADS is set
// (then libtorch's own reading of it stands). libtorch 1.13's default on the 2-core VM was one
// thread. The program (tools/compacter/main.cpp) and the benchmarks that time its kernels call it.
void default_to_every_core();

}  // namespace compacter::nn
