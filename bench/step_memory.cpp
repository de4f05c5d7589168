// Where a training step's CPU memory goes: every CPU tensor allocation is counted by a wrapping
// allocator and charged to the operator that made it (libtorch's RecordFunction: the outermost
// aten operator and the innermost one). Prints, as one JSON object, the tensor bytes alive at the
// end of the forward pass (what autograd keeps for the backward, plus the weights), grouped by
// operator, and the peak of live tensor bytes over the whole step (forward, backward, clipping,
// AdamW). Tensor bytes only: the process's RSS adds libtorch's code and malloc's slack.
//
//   step_memory [--method compacter++] [--config t5-small] [--batch 16] [--source 128]
//               [--target 3] [--top 25]
#include <ATen/record_function.h>
#include <c10/core/CPUAllocator.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "compacter/io/t5_config.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/methods.h"
#include "compacter/train/step.h"

namespace {

thread_local std::vector<std::string> op_stack;  // the operators running on this thread

struct Ledger {
  std::mutex mutex;
  std::unordered_map<void*, std::pair<size_t, std::string>> live;  // pointer -> bytes, owner
  int64_t live_bytes = 0, peak_bytes = 0;
  bool counting = false;
};
Ledger ledger;

std::string owner_name() {
  if (op_stack.empty()) return "(outside any operator)";
  if (op_stack.size() == 1) return op_stack.front();
  return op_stack.front() + " > " + op_stack.back();
}

struct Tracked {
  c10::DataPtr inner;
};

void release(void* ctx) {
  auto* t = static_cast<Tracked*>(ctx);
  {
    std::lock_guard<std::mutex> lock(ledger.mutex);
    auto it = ledger.live.find(t->inner.get());
    if (it != ledger.live.end()) {
      ledger.live_bytes -= static_cast<int64_t>(it->second.first);
      ledger.live.erase(it);
    }
  }
  delete t;
}

// Wraps libtorch's CPU allocator: each block remembers its size and the operator that asked.
struct CountingAllocator final : c10::Allocator {
  c10::Allocator* base = nullptr;
  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr inner = base->allocate(n);
    void* data = inner.get();
    const c10::Device device = inner.device();
    {
      std::lock_guard<std::mutex> lock(ledger.mutex);
      ledger.live[data] = {n, owner_name()};
      ledger.live_bytes += static_cast<int64_t>(n);
      ledger.peak_bytes = std::max(ledger.peak_bytes, ledger.live_bytes);
    }
    auto* t = new Tracked{std::move(inner)};
    return c10::DataPtr(data, t, &release, device);
  }
  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }
};
CountingAllocator counting_allocator;

// VmRSS and VmHWM (the peak) of this process, MiB.
nlohmann::json rss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  nlohmann::json out;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) out["rss_MiB"] = std::stod(line.substr(6)) / 1024.0;
    if (line.rfind("VmHWM:", 0) == 0) out["peak_rss_MiB"] = std::stod(line.substr(6)) / 1024.0;
  }
  std::lock_guard<std::mutex> lock(ledger.mutex);
  out["live_tensors_MiB"] = ledger.live_bytes / 1048576.0;
  return out;
}

nlohmann::json live_by_owner(size_t top) {
  std::map<std::string, int64_t> by;
  std::lock_guard<std::mutex> lock(ledger.mutex);
  for (const auto& [ptr, entry] : ledger.live) by[entry.second] += entry.first;
  std::vector<std::pair<int64_t, std::string>> rows;
  for (const auto& [name, bytes] : by) rows.push_back({bytes, name});
  std::sort(rows.rbegin(), rows.rend());
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < rows.size() && i < top; ++i)
    out.push_back({{"owner", rows[i].second}, {"MiB", rows[i].first / 1048576.0}});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace compacter;
  std::string method = "compacter++", config_name = "t5-small";
  int64_t batch = 16, src = 128, tgt = 3;
  size_t top = 25;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--method")
      method = v;
    else if (k == "--config")
      config_name = v;
    else if (k == "--batch")
      batch = std::stoll(v);
    else if (k == "--source")
      src = std::stoll(v);
    else if (k == "--target")
      tgt = std::stoll(v);
    else if (k == "--top")
      top = std::stoul(v);
    else {
      std::cerr << "step_memory: unknown option " << k << "\n";
      return 2;
    }
  }
  counting_allocator.base = c10::GetCPUAllocator();
  c10::SetCPUAllocator(&counting_allocator, /*priority=*/100);
  at::addGlobalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
            op_stack.emplace_back(fn.name());
            return nullptr;
          },
          [](const at::RecordFunction&, at::ObserverContext*) {
            if (!op_stack.empty()) op_stack.pop_back();
          })
          .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));

  const T5Config config = builtin_t5_config(config_name);
  torch::manual_seed(0);
  nn::T5Model model(config);
  peft::attach(method, peft::method_defaults(method), *model, 0);
  model->train();
  train::TrainStep step(*model, train::StepOptions{});
  torch::Tensor ids = torch::randint(3, config.vocab_size, {batch, src}, torch::kLong);
  torch::Tensor mask = torch::ones({batch, src}, torch::kLong);
  torch::Tensor labels = torch::randint(3, config.vocab_size, {batch, tgt}, torch::kLong);
  labels.select(1, tgt - 1).fill_(config.eos_token_id);
  nlohmann::json report;
  report["process"]["model_ready"] = rss();
  // One step first: the optimizer's state and the gradients' buffers exist from then on.
  step.accumulate(ids, mask, labels);
  step.finish(1e-4);
  report["process"]["after_first_step"] = rss();
  int64_t before = 0;
  {
    std::lock_guard<std::mutex> lock(ledger.mutex);
    before = ledger.live_bytes;
    ledger.peak_bytes = ledger.live_bytes;
  }
  nn::Seq2SeqOutput out = model->forward(ids, mask, {}, labels);
  {
    std::lock_guard<std::mutex> lock(ledger.mutex);
    report["after_forward_MiB"] = ledger.live_bytes / 1048576.0;
    report["kept_for_backward_MiB"] = (ledger.live_bytes - before) / 1048576.0;
  }
  report["process"]["after_forward"] = rss();
  report["before_forward_MiB"] = before / 1048576.0;
  report["live_after_forward_by_operator"] = live_by_owner(top);
  out.loss.backward();
  step.finish(1e-4);
  out = {};
  report["process"]["after_second_step"] = rss();
  report["peak_live_MiB"] = ledger.peak_bytes / 1048576.0;
  report["settings"] = {{"method", method},
                        {"config", config_name},
                        {"batch", batch},
                        {"source", src},
                        {"target", tgt}};
  std::cout << report.dump(2) << "\n";
  return 0;
}
