// Whether at::parallel_for runs in parallel from this library's code (see parallel.h).
#include "compacter/nn/parallel.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

namespace compacter::nn {

bool built_with_openmp() {
  return COMPACTER_WITH_OPENMP != 0;
}

int parallel_for_threads(int64_t items) {
  std::mutex mutex;
  std::set<int> seen;
  at::parallel_for(0, items, 1, [&](int64_t, int64_t) {
    const std::lock_guard<std::mutex> lock(mutex);
    seen.insert(at::get_thread_num());
  });
  return static_cast<int>(seen.size());
}

void default_to_every_core() {
  if (std::getenv("OMP_NUM_THREADS") == nullptr)
    at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace compacter::nn
