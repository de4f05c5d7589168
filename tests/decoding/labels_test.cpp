// Constrained decoding to a label set: each label's log-probability equals a direct
// teacher-forced computation (one forward pass per input and label, the label followed by </s>),
// and the distribution over the labels sums to 1 with the argmax as the prediction.
#include <torch/torch.h>

#include <cmath>

#include "compacter/train/decoding/label_scores.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter {
namespace {

TEST(LabelScores, EqualTeacherForcedLogProbabilitiesAndNormalise) {
  testing::TinyT5 shape;
  shape.vocab = 30;
  shape.d_model = 16;
  shape.heads = 4;
  nn::T5Model model = testing::tiny_t5(shape, 13);
  torch::manual_seed(4);
  torch::Tensor ids = torch::randint(2, 30, {3, 5}, torch::kLong);
  torch::Tensor mask = torch::ones({3, 5}, torch::kLong);
  mask[2].narrow(0, 2, 3).fill_(0);
  ids.masked_fill_(mask == 0, 0);
  const std::vector<std::vector<int64_t>> labels = {{5}, {6, 7}, {8, 9, 10}, {}};
  const auto out = decoding::score_labels(*model, ids, mask, labels, /*eos=*/1, /*start=*/0);
  ASSERT_EQ(out.size(), 3u);
  torch::NoGradGuard g;
  model->eval();
  for (int64_t b = 0; b < 3; ++b) {
    const auto& d = out[b];
    ASSERT_EQ(d.logprobs.size(), labels.size());
    double total = 0.0;
    size_t best = 0;
    for (size_t i = 0; i < labels.size(); ++i) {
      std::vector<int64_t> target = labels[i], input{0};
      target.push_back(1);
      input.insert(input.end(), labels[i].begin(), labels[i].end());
      torch::Tensor lp =
          torch::log_softmax(model
                                 ->forward(ids[b].unsqueeze(0), mask[b].unsqueeze(0),
                                           torch::tensor(input, torch::kLong).unsqueeze(0), {})
                                 .logits[0]
                                 .to(torch::kDouble),
                             -1);
      double expected = 0.0;
      for (size_t t = 0; t < target.size(); ++t)
        expected += lp[static_cast<int64_t>(t)][target[t]].item<double>();
      EXPECT_NEAR(d.logprobs[i], expected, 1e-5) << "input " << b << " label " << i;
      total += d.probabilities[i];
      if (d.logprobs[i] > d.logprobs[best]) best = i;
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
    EXPECT_EQ(d.best, static_cast<int64_t>(best));
    // Probabilities are the label probabilities renormalised over the set.
    const double z = std::exp(d.logprobs[0]) + std::exp(d.logprobs[1]) + std::exp(d.logprobs[2]) +
                     std::exp(d.logprobs[3]);
    EXPECT_NEAR(d.probabilities[1], std::exp(d.logprobs[1]) / z, 1e-12);
  }
  EXPECT_THROW(decoding::score_labels(*model, ids, mask, {}, 1, 0), UsageError);
  EXPECT_THROW(decoding::score_labels(*model, ids, mask, {{99}}, 1, 0), UsageError);
}

}  // namespace
}  // namespace compacter
