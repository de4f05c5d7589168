// The library's own CPU kernels run on libtorch's threads (nn/parallel.h): at::parallel_for,
// called from the library, spreads work over at::get_num_threads() threads. Built without
// OpenMP it could not (the kernels then ran on one thread, the BLAS under them splitting every
// small product), which this test catches unless the build says so on purpose.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

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

// default_to_every_core: the machine's cores (std::thread's count) when OMP_NUM_THREADS is unset;
// a thread count already set stands when it is set (the tests run with OMP_NUM_THREADS=1).
TEST(Parallel, DefaultToEveryCoreUnlessOmpNumThreadsIsSet) {
  const int before = at::get_num_threads();
  const char* env = std::getenv("OMP_NUM_THREADS");
  const std::string saved = env ? env : "";
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int other = cores <= 1 ? 2 : 1;  // a count default_to_every_core would not choose

  setenv("OMP_NUM_THREADS", "1", 1);
  at::set_num_threads(other);
  default_to_every_core();
  const int with_variable = at::get_num_threads();

  unsetenv("OMP_NUM_THREADS");
  at::set_num_threads(other);
  default_to_every_core();
  const int without_variable = at::get_num_threads();

  if (env) setenv("OMP_NUM_THREADS", saved.c_str(), 1);
  at::set_num_threads(before);
  EXPECT_EQ(with_variable, other);
  EXPECT_EQ(without_variable, std::max(cores, 1));  // a count of 0 means unknown
}

}  // namespace compacter::nn::parallel_test
