// release_free_memory (train/loop.h) in a program without TCMalloc (this test program): glibc's
// malloc_trim, which returns free heap pages below a block still in use, pages that freeing alone
// leaves resident. Measured in this process's VmRSS.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "compacter/train/loop.h"

namespace compacter::train {
namespace {

TEST(ProcessMemory, ReleaseFreeMemoryReturnsFreedHeapPages) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers' allocators keep freed memory in quarantine";
#endif
  // 64 MiB in blocks below glibc's mmap threshold (so on the heap), each written; the block at
  // the highest address stays while the others are freed, so that the heap's top cannot shrink
  // past them (freeing alone then returns nothing).
  constexpr size_t kBlock = 4000, kBlocks = size_t{64} << 20 >> 12;
  std::vector<char*> blocks;
  blocks.reserve(kBlocks);
  for (size_t i = 0; i < kBlocks; ++i) {
    blocks.push_back(static_cast<char*>(std::malloc(kBlock)));
    ASSERT_NE(blocks.back(), nullptr);
    std::memset(blocks.back(), 1, kBlock);
  }
  char* const pin = *std::max_element(blocks.begin(), blocks.end());
  for (char* b : blocks)
    if (b != pin) std::free(b);
  const int64_t freed = resident_bytes();
  release_free_memory();
  const int64_t released = resident_bytes();
  std::free(pin);
  ASSERT_GT(freed, 0);
  EXPECT_LT(released, freed - (int64_t{32} << 20))
      << "resident after free " << freed << " bytes, after release_free_memory " << released;
}

}  // namespace
}  // namespace compacter::train
