// The bf16-autocast linear layers' products compared in whole training steps, in one process, step
// against step so that a shared machine's drift falls on all of them alike (nn/bf16_linear.h):
//   gemm     oneDNN's GEMM API only (dnnl_gemm_bf16bf16f32; fp32 results, rounded in a second pass)
//   matmul   the default: oneDNN's matmul primitive from kBf16MatmulRowsFrom rows
//   (nn/onednn_matmul.h) libtorch torch::linear under libtorch's autocast
//   (COMPACTER_BF16_LINEAR=libtorch)
// The step is train/step.h's on a t5-small-shaped model with every weight frozen but the layer-norm
// scales (the backbone cost of the adapter methods), batch 16, source 128, target 3, dropout on.
// Prints one JSON object: per path the median and minimum step time, and in how many pairs it was
// at least as fast as the first path named.
//
//   bench_bf16_products [--pairs 16] [--paths gemm,matmul,libtorch] [--config t5-small]
//                       [--threads N (default: every core)]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/t5.h"
#include "compacter/train/step.h"

namespace {

using compacter::nn::Bf16LinearKernel;

void use_path(const std::string& path) {
  compacter::nn::set_bf16_linear_kernel(path == "libtorch" ? Bf16LinearKernel::kLibtorch
                                                           : Bf16LinearKernel::kOnednn);
  compacter::nn::set_bf16_matmul_primitive(path == "matmul");
}

}  // namespace

int main(int argc, char** argv) {
  int64_t pairs = 16, threads = 0;
  std::string config = "t5-small", path_list = "gemm,matmul,libtorch";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--pairs")
      pairs = std::stoll(v);
    else if (k == "--paths")
      path_list = v;
    else if (k == "--config")
      config = v;
    else if (k == "--threads")
      threads = std::stoll(v);
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  std::vector<std::string> paths;
  std::stringstream list(path_list);
  for (std::string p; std::getline(list, p, ',');) {
    if (p != "gemm" && p != "matmul" && p != "libtorch") {
      std::cerr << "--paths: unknown path \"" << p << "\" (gemm, matmul or libtorch)\n";
      return 2;
    }
    paths.push_back(p);
  }
  if (paths.empty() || pairs < 1) {
    std::cerr << "--paths needs a path and --pairs a positive count\n";
    return 2;
  }
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(threads));
  const compacter::T5Config c = compacter::builtin_t5_config(config);
  compacter::nn::T5Model model(c);
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  for (auto* ln : model->layer_norms()) ln->weight.set_requires_grad(true);
  model->train();
  torch::manual_seed(0);
  const torch::Tensor ids = torch::randint(3, c.vocab_size, {16, 128}, torch::kLong);
  const torch::Tensor mask = torch::ones({16, 128}, torch::kLong);
  const torch::Tensor labels = torch::randint(3, c.vocab_size, {16, 3}, torch::kLong);
  compacter::train::StepOptions options;
  options.bf16_autocast = true;
  compacter::train::TrainStep step(*model, options);
  auto timed_step = [&](const std::string& path) {
    use_path(path);
    const auto t0 = std::chrono::steady_clock::now();
    step.accumulate(ids, mask, labels);
    step.finish(1e-4);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (const std::string& p : paths) timed_step(p);  // warm-up
  std::map<std::string, std::vector<double>> times;
  for (int64_t i = 0; i < pairs; ++i)
    for (size_t j = 0; j < paths.size(); ++j) {
      const std::string& p = paths[i % 2 ? paths.size() - 1 - j : j];  // alternate the order
      times[p].push_back(timed_step(p));
    }
  nlohmann::json out = {{"bench", "bf16_products_paired_steps"},
                        {"config", config},
                        {"pairs", pairs},
                        {"threads", torch::get_num_threads()}};
  use_path("matmul");
  out["matmul_primitive_available"] = compacter::nn::bf16_matmul_primitive_used();
  for (const std::string& p : paths) {
    std::vector<double> sorted = times[p];
    std::sort(sorted.begin(), sorted.end());
    int64_t as_fast = 0;
    for (int64_t i = 0; i < pairs; ++i) as_fast += times[p][i] <= times[paths[0]][i];
    out["paths"][p] = {{"median_seconds", sorted[sorted.size() / 2]},
                       {"min_seconds", sorted.front()},
                       {"pairs_as_fast_as_" + paths[0], as_fast}};
  }
  std::cout << out.dump(1) << "\n";
  return 0;
}
