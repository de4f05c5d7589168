// The library's own CPU kernels run on libtorch's threads (nn/parallel.h): at::parallel_for,
// called from the library, spreads work over at::get_num_threads() threads. Built without
// OpenMP it could not (the kernels then ran on one thread, the BLAS under them splitting every
// small product), which this test catches unless the build says so on purpose.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "compacter/nn/parallel.h"

namespace compacter::nn::parallel_test {

TEST(Parallel, TheLibrarysParallelForUsesLibtorchsThreads) {
  if (!built_with_openmp())
    GTEST_SKIP() << "built with -DCOMPACTER_OPENMP=OFF (or not with GCC): one thread by design";
  const int before = at::get_num_threads();
  at::set_num_threads(2);  // OpenMP starts 2 threads whatever the machine has
  const int threads = parallel_for_threads(64);
  const int one = parallel_for_threads(1);  // a single item stays on the calling thread
  at::set_num_threads(before);
  EXPECT_EQ(threads, 2);
  EXPECT_EQ(one, 1);
}

}  // namespace compacter::nn::parallel_test
