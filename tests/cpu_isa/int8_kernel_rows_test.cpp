// The int8 layer on the library's own kernel (nn/int8_linear.h; a CPU with AVX-512 VNNI, else
// skipped): a row's result does not depend on the rows batched beside it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "compacter/core/error.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/nn/int8_rows.h"

namespace compacter::nn {
namespace {

// With the library's kernel a row's result is its own: the same bits alone or in any batch; a
// constant row is exact for the quantised weights; a row holding NaN or an infinity gives NaN
// and leaves the other rows as they were.
TEST(Int8Linear, ARowsResultDoesNotDependOnItsBatch) {
  if (!int8_rows_available()) GTEST_SKIP() << "per-row int8 needs a CPU with AVX-512 VNNI";
  torch::manual_seed(9);
  const torch::Tensor w = torch::randn({70, 96});
  Int8Weight q(w);
  torch::Tensor x = torch::randn({9, 96}) * torch::arange(1, 10).unsqueeze(1);
  x[3].fill_(0.75);
  const torch::Tensor y = q.forward(x);
  for (int64_t m = 0; m < 9; ++m)
    EXPECT_TRUE(torch::equal(q.forward(x[m].unsqueeze(0))[0], y[m])) << "row " << m;
  EXPECT_TRUE(torch::equal(q.forward(x.slice(0, 2, 7)), y.slice(0, 2, 7)));
  const torch::Tensor wq = q.int8_values().to(torch::kDouble) * q.scales().unsqueeze(1);
  EXPECT_LT((y[3].to(torch::kDouble) - 0.75 * wq.sum(1)).abs().max().item<double>(), 1e-5);
  torch::Tensor bad = x.clone();
  bad[5][17] = std::numeric_limits<float>::quiet_NaN();
  bad[6][0] = std::numeric_limits<float>::infinity();
  const torch::Tensor yb = q.forward(bad);
  EXPECT_TRUE(yb[5].isnan().all().item<bool>());
  EXPECT_TRUE(yb[6].isnan().all().item<bool>());
  EXPECT_TRUE(torch::equal(yb.slice(0, 0, 5), y.slice(0, 0, 5)));
  EXPECT_TRUE(torch::equal(yb.slice(0, 7, 9), y.slice(0, 7, 9)));
  EXPECT_THROW(q.forward(torch::randn({2, 95})), Error);  // the wrong width
}

}  // namespace
}  // namespace compacter::nn
