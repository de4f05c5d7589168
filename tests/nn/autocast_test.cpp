// bf16 autocast (nn/autocast.h) on the CPU: inside the scope matrix products come out bf16 and
// the state before it is restored after; the tiny checkpoint's loss under autocast stays close
// to Hugging Face's fp32 loss, its weights stay fp32, and its gradients are close to fp32 ones.
#include <torch/torch.h>

#include "compacter/nn/autocast.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/methods.h"
#include "support/raw_safetensors.h"
#include "support/test_support.h"

namespace compacter {
namespace {

TEST(Autocast, ScopeCastsMatrixProductsAndRestoresState) {
  torch::Tensor a = torch::randn({4, 8});
  torch::Tensor b = torch::randn({8, 3});
  {
    nn::AutocastScope scope(torch::kCPU, true);
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    {
      nn::AutocastScope off(torch::kCPU, false);  // a disabled scope changes nothing
      EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    }
  }
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat32);
}

TEST(Autocast, TinyCheckpointLossAndGradientsCloseToFp32) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  auto ref =
      testing::raw_load_safetensors(testing::shared_path("data/tiny-t5/reference.safetensors"));
  auto run = [&](bool autocast) {
    auto model = nn::load_t5(testing::shared_path("data/tiny-t5")).model;
    model->eval();
    peft::PeftOptions o = peft::method_defaults("compacter++");
    o.reduction_factor = 4;  // bottleneck 16 of d_model 64, n = 4 divides it
    o.n = 4;
    peft::attach("compacter++", o, *model, 7);
    torch::Tensor loss;
    {
      nn::AutocastScope scope(torch::kCPU, autocast);
      loss = model->forward(ref["input_ids"], ref["attention_mask"], {}, ref["labels"]).loss;
    }
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& [name, p] : peft::trainable_named_parameters(*model)) {
      EXPECT_EQ(p.scalar_type(), torch::kFloat32) << name;
      EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32) << name;
      grads.push_back(p.grad().flatten());
    }
    return std::make_pair(loss.item<double>(), torch::cat(grads));
  };
  auto [loss32, grad32] = run(false);
  auto [loss16, grad16] = run(true);
  EXPECT_NEAR(loss32, ref["loss"].item<double>(), 1e-5);
  EXPECT_NEAR(loss16, ref["loss"].item<double>(), 0.05);
  EXPECT_NE(loss16, loss32);  // bf16 products really ran
  const double rel = ((grad16 - grad32).norm() / grad32.norm()).item<double>();
  EXPECT_LT(rel, 0.05);
}

}  // namespace
}  // namespace compacter
