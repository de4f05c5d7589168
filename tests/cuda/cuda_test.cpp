// The same model on a CUDA device: Hugging Face parity of the tiny checkpoint, greedy generation
// and beam search equal to the CPU's, every method decoding as on the CPU (and in bf16), every
// method's gradients equal to the CPU's, and a bf16-autocast training run that learns. Every test
// is skipped (CTest reports it as skipped) without a CUDA device; scripts/gpu-check.sh runs them on
// a lent GPU.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "compacter/nn/autocast.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/methods.h"
#include "compacter/train/adamw.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/decoding/label_scores.h"
#include "compacter/train/generate.h"
#include "support/raw_safetensors.h"
#include "support/tensor_near.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

#define REQUIRE_CUDA()                                                  \
  do {                                                                  \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

namespace compacter {
namespace {

nn::T5Model cuda_tiny_checkpoint(torch::Device device) {
  nn::T5LoadOptions o;
  o.device = device;
  auto model = nn::load_t5(testing::shared_path("data/tiny-t5"), o).model;
  model->eval();
  return model;
}

TEST(Cuda, TinyCheckpointMatchesHuggingFace) {
  REQUIRE_CUDA();
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  auto model = cuda_tiny_checkpoint(torch::kCUDA);
  EXPECT_TRUE(model->shared->weight.is_cuda());
  auto ref =
      testing::raw_load_safetensors(testing::shared_path("data/tiny-t5/reference.safetensors"));
  torch::NoGradGuard no_grad;
  auto out = model->forward(ref["input_ids"].cuda(), ref["attention_mask"].cuda(),
                            ref["decoder_input_ids"].cuda(), ref["labels"].cuda());
  EXPECT_TRUE(out.logits.is_cuda());
  EXPECT_TENSOR_NEAR(out.logits, ref["logits"], 5e-5);
  EXPECT_TENSOR_NEAR(out.encoder_last_hidden_state, ref["encoder_last_hidden_state"], 5e-5);
  EXPECT_NEAR(out.loss.item<double>(), ref["loss"].item<double>(), 5e-5);
}

TEST(Cuda, GreedyGenerationEqualsCpu) {
  REQUIRE_CUDA();
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  auto ref =
      testing::raw_load_safetensors(testing::shared_path("data/tiny-t5/reference.safetensors"));
  GenerateOptions g;
  g.max_new_tokens = 10;
  auto cpu = cuda_tiny_checkpoint(torch::kCPU);
  auto gpu = cuda_tiny_checkpoint(torch::kCUDA);
  torch::Tensor on_cpu = greedy_generate(*cpu, ref["input_ids"], ref["attention_mask"], g);
  torch::Tensor on_gpu =
      greedy_generate(*gpu, ref["input_ids"].cuda(), ref["attention_mask"].cuda(), g).cpu();
  EXPECT_TRUE(torch::equal(on_cpu, on_gpu)) << on_cpu << "\n" << on_gpu;
}

TEST(Cuda, BeamSearchEqualsCpu) {
  REQUIRE_CUDA();
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  auto ref =
      testing::raw_load_safetensors(testing::shared_path("data/tiny-t5/reference.safetensors"));
  auto cpu = cuda_tiny_checkpoint(torch::kCPU);
  auto gpu = cuda_tiny_checkpoint(torch::kCUDA);
  decoding::GenerationConfig c = decoding::from_model_config(cpu->config());
  c.max_new_tokens = 8;
  c.num_beams = 4;
  c.num_return_sequences = 2;
  c.output_scores = true;
  const auto on_cpu = decoding::generate(*cpu, ref["input_ids"], ref["attention_mask"], c);
  const auto on_gpu =
      decoding::generate(*gpu, ref["input_ids"].cuda(), ref["attention_mask"].cuda(), c);
  ASSERT_EQ(on_cpu.size(), on_gpu.size());
  for (size_t b = 0; b < on_cpu.size(); ++b)
    for (size_t k = 0; k < on_cpu[b].size(); ++k) {
      EXPECT_EQ(on_cpu[b][k].tokens, on_gpu[b][k].tokens) << "input " << b << " sequence " << k;
      EXPECT_NEAR(on_cpu[b][k].score, on_gpu[b][k].score, 1e-4);
    }
}

T5Config cuda_small_config() {
  testing::TinyT5 shape;
  shape.vocab = 64;
  shape.d_model = 32;
  shape.d_kv = 8;
  shape.heads = 4;
  shape.d_ff = 64;
  T5Config c = testing::tiny_t5_config(shape);
  c.dropout_rate = 0.0;
  return c;
}

// Gradients of one loss on the CPU and on CUDA, for every method of the paper.
TEST(Cuda, EveryMethodsGradientsEqualCpu) {
  REQUIRE_CUDA();
  torch::manual_seed(5);
  torch::Tensor ids = torch::randint(3, 64, {3, 9}, torch::kLong);
  torch::Tensor mask = torch::ones({3, 9}, torch::kLong);
  mask[2].narrow(0, 6, 3).fill_(0);
  torch::Tensor labels = torch::randint(3, 64, {3, 4}, torch::kLong);
  labels[1][3] = -100;
  for (const auto& info : peft::all_methods()) {
    const std::string method = info.name;
    SCOPED_TRACE(method);
    peft::PeftOptions o = peft::method_defaults(method);
    o.reduction_factor = 4;  // bottleneck 8
    o.n = 2;
    o.prompt_length = 3;
    o.intrinsic_dim = 100;
    o.adapterdrop_layers = "0";  // the model has blocks 0 and 1
    std::map<std::string, torch::Tensor> grads[2];
    double losses[2] = {0, 0};
    for (int d = 0; d < 2; ++d) {
      const torch::Device device =
          d == 0 ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA);
      nn::T5Model model(cuda_small_config());
      model->init_weights(3);
      model->to(device);
      peft::attach(method, o, *model, 11);
      model->train();  // dropout 0: deterministic
      auto out = model->forward(ids.to(device), mask.to(device), {}, labels.to(device));
      out.loss.backward();
      losses[d] = out.loss.item<double>();
      for (const auto& [name, p] : peft::trainable_named_parameters(*model)) {
        EXPECT_EQ(p.device().type(), device.type()) << name;
        grads[d][name] = p.grad().defined() ? p.grad().cpu() : torch::zeros_like(p).cpu();
      }
    }
    EXPECT_NEAR(losses[0], losses[1], 1e-4);
    ASSERT_EQ(grads[0].size(), grads[1].size());
    // Relative to the largest gradient of the method: some are exactly zero in exact arithmetic
    // (the key biases of BitFit: softmax ignores a shift shared by all keys) and hold only noise.
    double scale = 1e-12;
    for (const auto& [name, g] : grads[0]) scale = std::max(scale, g.abs().max().item<double>());
    for (const auto& [name, g] : grads[0])
      EXPECT_TENSOR_NEAR(g, grads[1].at(name), 1e-3 * scale) << name;
  }
}

// Decoding with every method attached (prompt tuning included), its trained parameters moved
// off their identity initialisation: beam search and label scores on CUDA equal the CPU's; in
// bf16 autocast, greedy search and sampling run on CUDA, give valid tokens and finite scores, and
// a seeded sampling run repeats itself.
TEST(Cuda, EveryMethodDecodesAsOnCpu) {
  REQUIRE_CUDA();
  torch::manual_seed(6);
  torch::Tensor ids = torch::randint(3, 64, {3, 8}, torch::kLong);
  torch::Tensor mask = torch::ones({3, 8}, torch::kLong);
  mask[1].narrow(0, 5, 3).fill_(0);
  ids[1].narrow(0, 5, 3).fill_(0);
  for (const auto& info : peft::all_methods()) {
    const std::string method = info.name;
    SCOPED_TRACE(method);
    peft::PeftOptions o = peft::method_defaults(method);
    o.reduction_factor = 4;
    o.n = 2;
    o.prompt_length = 3;
    o.intrinsic_dim = 100;
    o.adapterdrop_layers = "0";
    std::vector<std::vector<decoding::Sequence>> beams[2];
    std::vector<decoding::LabelDistribution> labels[2];
    for (int d = 0; d < 2; ++d) {
      const torch::Device device =
          d == 0 ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA);
      nn::T5Model model(cuda_small_config());
      model->init_weights(3);
      model->to(device);
      peft::attach(method, o, *model, 11);
      {
        torch::NoGradGuard no_grad;
        auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
        for (auto& [name, p] : peft::trainable_named_parameters(*model))
          p.add_(0.05 * at::randn(p.sizes(), gen, torch::kFloat32).to(device));
      }
      model->eval();
      decoding::GenerationConfig c = decoding::from_model_config(model->config());
      c.max_new_tokens = 6;
      c.num_beams = 3;
      c.num_return_sequences = 2;
      c.output_scores = true;
      beams[d] = decoding::generate(*model, ids.to(device), mask.to(device), c);
      labels[d] = decoding::score_labels(*model, ids.to(device), mask.to(device), {{5, 6}, {9}, {}},
                                         model->config().eos_token_id,
                                         model->config().decoder_start_token_id);
      if (d == 1) {
        nn::AutocastScope autocast(device, true);
        decoding::GenerationConfig g = decoding::from_model_config(model->config());
        g.max_new_tokens = 6;
        g.output_scores = true;
        for (bool sample : {false, true}) {
          g.do_sample = sample;
          g.seed = 3;
          const auto first = decoding::generate(*model, ids.to(device), mask.to(device), g);
          const auto again = decoding::generate(*model, ids.to(device), mask.to(device), g);
          for (size_t b = 0; b < first.size(); ++b) {
            EXPECT_EQ(first[b][0].tokens, again[b][0].tokens) << "sample " << sample;
            for (int64_t t : first[b][0].tokens) EXPECT_TRUE(t >= 0 && t < 64) << t;
            for (double lp : first[b][0].token_logprobs) EXPECT_TRUE(std::isfinite(lp));
          }
        }
      }
    }
    ASSERT_EQ(beams[0].size(), beams[1].size());
    for (size_t b = 0; b < beams[0].size(); ++b)
      for (size_t k = 0; k < beams[0][b].size(); ++k) {
        EXPECT_EQ(beams[0][b][k].tokens, beams[1][b][k].tokens) << "input " << b << " seq " << k;
        EXPECT_NEAR(beams[0][b][k].score, beams[1][b][k].score, 1e-4);
      }
    ASSERT_EQ(labels[0].size(), labels[1].size());
    for (size_t b = 0; b < labels[0].size(); ++b)
      for (size_t l = 0; l < labels[0][b].probabilities.size(); ++l)
        EXPECT_NEAR(labels[0][b].probabilities[l], labels[1][b].probabilities[l], 1e-4);
  }
}

// Compacter++ with bf16 autocast on CUDA fits a small batch: fp32 weights, bf16 products.
TEST(Cuda, Bf16AutocastTrainingLearns) {
  REQUIRE_CUDA();
  const torch::Device device(torch::kCUDA);
  nn::T5Model model(cuda_small_config());
  model->init_weights(4);
  model->to(device);
  peft::PeftOptions o = peft::method_defaults("compacter++");
  o.reduction_factor = 4;
  o.n = 2;
  peft::attach("compacter++", o, *model, 1);
  model->train();
  auto params = peft::trainable_named_parameters(*model);
  train::AdamW optimizer(params, train::AdamWOptions{});
  torch::manual_seed(9);
  torch::Tensor ids = torch::randint(3, 64, {8, 10}, torch::kLong).to(device);
  torch::Tensor mask = torch::ones({8, 10}, torch::kLong).to(device);
  torch::Tensor labels = torch::randint(3, 64, {8, 2}, torch::kLong).to(device);
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 150; ++step) {
    torch::Tensor loss;
    {
      nn::AutocastScope autocast(device, true);
      auto out = model->forward(ids, mask, {}, labels);
      EXPECT_EQ(out.logits.scalar_type(), torch::kBFloat16);
      loss = out.loss;
    }
    loss.backward();
    optimizer.step(3e-2);
    optimizer.zero_grad();
    (step == 0 ? first : last) = loss.item<double>();
  }
  for (const auto& [name, p] : params) EXPECT_EQ(p.scalar_type(), torch::kFloat32) << name;
  EXPECT_LT(last, 0.5 * first) << "first " << first << ", last " << last;
}

}  // namespace
}  // namespace compacter
