// Training-step benchmark of the T5 backbone: train/step.h's step (forward, backward, clipping,
// AdamW) with every weight frozen except the layer-norm scales (the backbone cost of the adapter
// methods), on a t5-small-shaped model, batch 16, source 128, target 3, dropout on -- the
// setting of the performance aim in the developers' brief. Also measures the machine's fp32 / bf16
// GEMM rate in the same run, so the step's efficiency is a ratio. Prints one JSON object.
//
//   bench_t5_step [--config t5-small] [--batch 16] [--source 128] [--target 3] [--steps 3]
//                 [--device cpu|cuda] [--dtype fp32|bf16] [--threads N (default: all cores)]
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "compacter/nn/t5.h"
#include "compacter/train/flops.h"
#include "compacter/train/step.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best-of-3 GFLOP/s of an n x n x n matrix product.
double gemm_gflops(int64_t n, torch::ScalarType dtype, const torch::Device& device) {
  torch::Tensor a = torch::randn({n, n}).to(device, dtype),
                b = torch::randn({n, n}).to(device, dtype);
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  torch::mm(a, b);
  sync();
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    torch::mm(a, b);
    sync();
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * n * n * n / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config = "t5-small", dtype_name = "fp32", device_name = "cpu";
  int64_t batch = 16, src = 128, tgt = 3, steps = 3, threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--config")
      config = v;
    else if (k == "--batch")
      batch = std::stoll(v);
    else if (k == "--source")
      src = std::stoll(v);
    else if (k == "--target")
      tgt = std::stoll(v);
    else if (k == "--steps")
      steps = std::stoll(v);
    else if (k == "--dtype")
      dtype_name = v;
    else if (k == "--threads")
      threads = std::stoll(v);
    else if (k == "--device")
      device_name = v;
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(threads));
  const auto dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
  compacter::T5Config c = compacter::builtin_t5_config(config);
  const torch::Device device(device_name);
  auto sync = [&] {
    if (device.is_cuda()) torch::cuda::synchronize();
  };
  compacter::nn::T5Model model(c);
  model->to(device, dtype);
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  for (auto* ln : model->layer_norms()) ln->weight.set_requires_grad(true);
  model->train();

  torch::manual_seed(0);
  torch::Tensor ids = torch::randint(3, c.vocab_size, {batch, src}, torch::kLong).to(device);
  torch::Tensor mask = torch::ones({batch, src}, torch::kLong).to(device);
  torch::Tensor labels = torch::randint(3, c.vocab_size, {batch, tgt}, torch::kLong).to(device);

  // The training step `train` runs (train/step.h): forward, backward, clipping, AdamW over the
  // trainable layer-norm scales, zeroed gradients.
  compacter::train::TrainStep train_step(*model, compacter::train::StepOptions{});
  auto step = [&] {
    train_step.accumulate(ids, mask, labels);
    train_step.finish(1e-4);
  };
  step();  // warm-up
  std::vector<double> times;
  for (int64_t s = 0; s < steps; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    sync();
    times.push_back(seconds_since(t0));
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  // Backward of a frozen layer needs only input gradients: about one forward's FLOPs.
  const double flops = compacter::train::training_step_flops(
      compacter::train::t5_forward_flops(c, batch, src, tgt), false);
  const double peak = gemm_gflops(device.is_cuda() ? 8192 : 2048, dtype, device);
  nlohmann::json j = {{"bench", "t5_step_frozen_backbone"},
                      {"config", config},
                      {"dtype", dtype_name},
                      {"device", device_name},
                      {"threads", torch::get_num_threads()},
                      {"batch", batch},
                      {"source_len", src},
                      {"target_len", tgt},
                      {"step_seconds_median", median},
                      {"step_seconds_all", times},
                      {"step_gflop", flops / 1e9},
                      {"step_gflops_per_s", flops / median / 1e9},
                      {"gemm_gflops_per_s", peak},
                      {"efficiency", flops / median / 1e9 / peak}};
  std::cout << j.dump() << "\n";
  return 0;
}
