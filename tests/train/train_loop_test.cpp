// The training loop (spec §6.1): AdamW against a hand-written double-precision loop, the linear
// schedule against hand-computed values, and --resume reproducing an uninterrupted run exactly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <sstream>

#include "compacter/core/error.h"
#include "compacter/nn/t5.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "compacter/train/adamw.h"
#include "compacter/train/loop.h"
#include "support/tensor_near.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter::train {
namespace {

TEST(TrainLoop, AdamWMatchesTheTransformersFormula) {
  torch::Tensor p = torch::tensor({0.5, -1.0, 2.0}, torch::kDouble).requires_grad_(true);
  AdamWOptions o;
  o.weight_decay = 0.1;
  AdamW opt({{"p", p}}, o);
  double ref[3] = {0.5, -1.0, 2.0}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  const double lrs[3] = {1e-2, 5e-3, 2e-2};
  for (int t = 1; t <= 3; ++t) {
    double g[3];
    for (int i = 0; i < 3; ++i) g[i] = std::sin(ref[i] * t) + 0.3 * i;  // any gradient
    p.mutable_grad() = torch::tensor({g[0], g[1], g[2]}, torch::kDouble);
    opt.step(lrs[t - 1]);
    opt.zero_grad();
    const double lr = lrs[t - 1];
    const double step = lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
    for (int i = 0; i < 3; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      ref[i] -= step * m[i] / (std::sqrt(v[i]) + 1e-8);
      ref[i] -= lr * 0.1 * ref[i];
      EXPECT_NEAR(p[i].item<double>(), ref[i], 1e-15) << "step " << t << " entry " << i;
    }
  }
  EXPECT_EQ(opt.steps(), 3);
}

// Several tensors at once (the multi-tensor path): every entry follows the formula of the test
// above, written as a plain loop; a tensor without a gradient is neither changed nor given state.
TEST(TrainLoop, AdamWUpdatesEveryTensorWithAGradientAndOnlyThose) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> ps = {torch::randn({4, 3}, torch::kDouble),
                                   torch::randn({5}, torch::kDouble),
                                   torch::randn({2, 2}, torch::kDouble)};
  std::vector<std::pair<std::string, torch::Tensor>> named;
  std::vector<std::vector<double>> ref, m, v;
  for (size_t i = 0; i < ps.size(); ++i) {
    ps[i].requires_grad_(true);
    named.emplace_back("t" + std::to_string(i), ps[i]);
    const torch::Tensor flat = ps[i].detach().reshape(-1);
    ref.emplace_back(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
    m.emplace_back(ref.back().size(), 0.0);
    v.emplace_back(ref.back().size(), 0.0);
  }
  AdamWOptions o;
  o.weight_decay = 0.05;
  AdamW opt(named, o);
  const double lr = 1e-2;
  for (int t = 1; t <= 3; ++t) {
    const double step = lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
    for (size_t i = 0; i < ps.size(); ++i) {
      if (i == 1) continue;  // no gradient
      std::vector<double> g(ref[i].size());
      for (size_t k = 0; k < g.size(); ++k) g[k] = std::cos(0.7 * k + t) * (i + 1.0);
      ps[i].mutable_grad() = torch::tensor(g, torch::kDouble).reshape(ps[i].sizes());
      for (size_t k = 0; k < g.size(); ++k) {
        m[i][k] = 0.9 * m[i][k] + 0.1 * g[k];
        v[i][k] = 0.999 * v[i][k] + 0.001 * g[k] * g[k];
        ref[i][k] -= step * m[i][k] / (std::sqrt(v[i][k]) + 1e-8);
        ref[i][k] -= lr * 0.05 * ref[i][k];
      }
    }
    opt.step(lr);
    opt.zero_grad();
    for (size_t i = 0; i < ps.size(); ++i) {
      const torch::Tensor flat = ps[i].detach().reshape(-1);
      for (size_t k = 0; k < ref[i].size(); ++k)
        EXPECT_NEAR(flat[static_cast<int64_t>(k)].item<double>(), ref[i][k], 1e-15)
            << "step " << t << " tensor " << i << " entry " << k;
    }
  }
  const auto state = opt.state();
  ASSERT_EQ(state.size(), 4u);  // exp_avg and exp_avg_sq of t0 and t2 only
  for (const auto& [name, tensor] : state) EXPECT_EQ(name.find("t1"), std::string::npos) << name;
}

// torch.nn.utils.clip_grad_norm_: g *= min(1, max / (||g|| + 1e-6)) over every gradient jointly.
TEST(TrainLoop, ClipGradNormScalesByTheJointNorm) {
  torch::Tensor a = torch::zeros({2}, torch::kDouble).requires_grad_(true);
  torch::Tensor b = torch::zeros({2, 1}, torch::kDouble).requires_grad_(true);
  torch::Tensor none = torch::zeros({3}, torch::kDouble).requires_grad_(true);
  a.mutable_grad() = torch::tensor({3.0, 0.0}, torch::kDouble);
  b.mutable_grad() = torch::tensor({{0.0}, {4.0}}, torch::kDouble);  // joint norm 5
  const torch::Tensor norm = clip_grad_norm({a, none, b}, 1.0);
  EXPECT_DOUBLE_EQ(norm.item<double>(), 5.0);
  const double coef = 1.0 / (5.0 + 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3.0 * coef, 1e-15);
  EXPECT_NEAR(b.grad()[1][0].item<double>(), 4.0 * coef, 1e-15);
  EXPECT_FALSE(none.grad().defined());
  // Below the limit nothing changes.
  a.mutable_grad() = torch::tensor({0.3, 0.4}, torch::kDouble);
  b.mutable_grad() = torch::zeros({2, 1}, torch::kDouble);
  EXPECT_NEAR(clip_grad_norm({a, b}, 1.0).item<double>(), 0.5, 1e-15);
  EXPECT_EQ(a.grad()[0].item<double>(), 0.3);
  EXPECT_EQ(a.grad()[1].item<double>(), 0.4);
  EXPECT_FALSE(clip_grad_norm({none}, 1.0).defined());
}

// --config's "training" object: absent keys keep their values; an unknown key or a value of
// the wrong type is an error naming the file and the key.
TEST(TrainLoop, TrainingOptionsFromJsonAreStrict) {
  TrainOptions o;
  const int64_t steps_before = o.max_steps;
  train_options_from_json({{"learning_rate", 0.5}, {"batch_size", 4}}, "cfg.json", o);
  EXPECT_EQ(o.learning_rate, 0.5);
  EXPECT_EQ(o.batch_size, 4);
  EXPECT_EQ(o.max_steps, steps_before);
  auto message = [&](const nlohmann::json& j) {
    try {
      train_options_from_json(j, "cfg.json", o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({{"lr", 1}}).find("cfg.json: unknown training option \"lr\" (known: "),
            std::string::npos);
  EXPECT_NE(message({{"epochs", "many"}}).find("training option \"epochs\" has the wrong type"),
            std::string::npos);
  EXPECT_NE(message(nlohmann::json::array()).find("must be a JSON object"), std::string::npos);
}

TEST(TrainLoop, LinearScheduleWithWarmup) {
  // get_linear_schedule_with_warmup(warmup 4, total 10) at peak 1: 0, .25, .5, .75, 1, then
  // (10 - s) / 6.
  const double expected[11] = {0, 0.25, 0.5, 0.75, 1, 5.0 / 6, 4.0 / 6, 0.5, 2.0 / 6, 1.0 / 6, 0};
  for (int s = 0; s <= 10; ++s) EXPECT_NEAR(linear_schedule(s, 4, 10, 1.0), expected[s], 1e-15);
  EXPECT_DOUBLE_EQ(linear_schedule(0, 0, 10, 2.0), 2.0);
  EXPECT_DOUBLE_EQ(linear_schedule(12, 0, 10, 2.0), 0.0);
}

nn::T5Model loop_tiny_model() {
  testing::TinyT5 shape;
  shape.vocab = 30;
  return testing::tiny_t5(shape, 1);
}

std::vector<tasks::EncodedExample> toy_data() {
  std::vector<tasks::EncodedExample> out;
  for (int64_t i = 0; i < 13; ++i) {
    tasks::EncodedExample e;
    for (int64_t k = 0; k < 3 + i % 4; ++k) e.source_ids.push_back(3 + (i * 7 + k * 5) % 25);
    e.source_ids.push_back(1);
    e.target_ids = {3 + i % 5, 1};
    out.push_back(e);
  }
  return out;
}

TrainOptions toy_options() {
  TrainOptions o;
  o.learning_rate = 1e-2;
  o.batch_size = 4;
  o.gradient_accumulation = 2;
  o.epochs = 3;  // 4 batches -> 2 steps per epoch -> 6 steps
  o.warmup_steps = 2;
  o.eval_steps = 3;
  o.log_steps = 100;
  o.seed = 5;
  return o;
}

// Runs the toy training; interrupt_at > 0 raises SIGINT during the evaluation at that step.
std::vector<torch::Tensor> train_toy(const std::string& dir, bool resume, int64_t interrupt_at) {
  auto model = loop_tiny_model();
  peft::PeftOptions po = peft::method_defaults("compacter");
  po.reduction_factor = 2;
  po.n = 2;
  peft::attach("compacter", po, *model, 7);
  LoopCallbacks cb;
  int64_t evals = 0;
  cb.evaluate = [&] {
    ++evals;
    if (interrupt_at > 0 && evals * 3 == interrupt_at) std::raise(SIGINT);
    Evaluation e;
    e.selection = 0.0;  // the first evaluation stays the best
    return e;
  };
  cb.save_adapter = [&](const std::string& out) {
    peft::save_adapter(*model, {"compacter", po, 7}, out);
  };
  run_training(*model, toy_data(), toy_options(), dir, resume, cb);
  std::vector<torch::Tensor> out;
  for (const auto& p : peft::trainable_parameters(*model)) out.push_back(p.detach().clone());
  return out;
}

TEST(TrainLoop, ResumeReproducesAnUninterruptedRun) {
  testing::TempDir dir;
  const auto straight = train_toy(dir.path() + "/a", false, 0);
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/a/best_adapter/adapter_model.safetensors"));
  // The checkpoint stays until the caller has written the run's results (run_finetune).
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/a/checkpoint/state.json"));

  EXPECT_THROW(train_toy(dir.path() + "/b", false, 3), Interrupted);
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/b/checkpoint/state.json"));
  // A crash between the two renames of a checkpoint update leaves only checkpoint.old.
  std::filesystem::rename(dir.path() + "/b/checkpoint", dir.path() + "/b/checkpoint.old");
  const auto resumed = train_toy(dir.path() + "/b", true, 0);
  ASSERT_EQ(straight.size(), resumed.size());
  for (size_t i = 0; i < straight.size(); ++i) EXPECT_TENSOR_NEAR(straight[i], resumed[i], 0) << i;
  // The interrupted run's metrics.jsonl equals the uninterrupted one's record for record
  // (apart from timings).
  auto records = [&](const std::string& run) {
    std::vector<nlohmann::json> out;
    std::istringstream in(testing::read_file(run + "/metrics.jsonl"));
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      j.erase("elapsed_seconds");
      j.erase("examples_per_second");
      out.push_back(j);
    }
    return out;
  };
  EXPECT_EQ(records(dir.path() + "/a"), records(dir.path() + "/b"));
  // Epochs are numbered from 1 in both kinds of record: an evaluation carries the epoch of the
  // training step it follows (toy_options: 2 steps per epoch, evaluations at steps 3 and 6).
  std::map<int64_t, int64_t> eval_epoch;
  for (const auto& r : records(dir.path() + "/a"))
    if (r["type"] == "eval") eval_epoch[r["step"].get<int64_t>()] = r["epoch"].get<int64_t>();
  ASSERT_EQ(eval_epoch.size(), 2u);
  EXPECT_EQ(eval_epoch[3], 2);
  EXPECT_EQ(eval_epoch[6], 3);
}

// A damaged checkpoint is refused on --resume with a message, never resumed from other values:
// a flipped bit in state.safetensors (caught by state.json's checksum), a truncated metrics.jsonl
// line, a mistyped state.json field.
TEST(TrainLoop, DamagedCheckpointIsRefusedOnResume) {
  testing::TempDir dir;
  const std::string run = dir.path() + "/run", ckpt = run + "/checkpoint";
  EXPECT_THROW(train_toy(run, false, 3), Interrupted);
  const std::string state = testing::read_file(ckpt + "/state.safetensors");
  const std::string json = testing::read_file(ckpt + "/state.json");
  const std::string metrics = testing::read_file(ckpt + "/metrics.jsonl");
  auto refused = [&](const std::string& fragment) {
    try {
      train_toy(run, true, 0);
      ADD_FAILURE() << "resumed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  std::string flipped = state;
  flipped[flipped.size() - 5] = static_cast<char>(flipped[flipped.size() - 5] ^ 0x01);
  testing::write_file(ckpt + "/state.safetensors", flipped);
  refused("state.safetensors: its bytes do not match the checksum in state.json");
  testing::write_file(ckpt + "/state.safetensors", state);
  testing::write_file(ckpt + "/metrics.jsonl", metrics.substr(0, metrics.size() / 2));
  refused("metrics.jsonl:");
  testing::write_file(ckpt + "/metrics.jsonl", metrics);
  auto j = nlohmann::json::parse(json);
  j["optimizer_steps"] = "three";
  testing::write_file(ckpt + "/state.json", j.dump());
  refused("state.json: \"optimizer_steps\" must be an integer of at least 0");
  j = nlohmann::json::parse(json);
  j["gradient_bucket_order"] = {1, -2, 0};
  testing::write_file(ckpt + "/state.json", j.dump());
  refused(
      "state.json: an item of \"gradient_bucket_order\" must be an integer of at least 0, got -2");
  testing::write_file(ckpt + "/state.json", json);
  EXPECT_NO_THROW(train_toy(run, true, 0));  // the intact checkpoint still resumes
}

TEST(TrainLoop, EtaCountsTrainingTimeFromTheFirstStep) {
  // 10 steps in 25 s, 5 of them in an evaluation: 2 s per step; 40 steps left: 80 s.
  EXPECT_DOUBLE_EQ(eta_seconds(25.0, 5.0, 10, 40), 80.0);
  EXPECT_DOUBLE_EQ(eta_seconds(25.0, 0.0, 10, 0), 0.0);
  EXPECT_DOUBLE_EQ(eta_seconds(0.0, 0.0, 0, 40), 0.0);  // no step yet: no estimate
}

TEST(TrainLoop, RefusesBadSettings) {
  testing::TempDir dir;
  auto model = loop_tiny_model();
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  EXPECT_THROW(run_training(*model, toy_data(), toy_options(), dir.path(), false, {}), Error);
  TrainOptions o = toy_options();
  o.batch_size = 0;
  EXPECT_THROW(run_training(*model, toy_data(), o, dir.path(), false, {}), Error);
  EXPECT_THROW(run_training(*model, toy_data(), toy_options(), dir.path() + "/none", true, {}),
               Error);
  TrainOptions parsed;
  EXPECT_THROW(train_options_from_json({{"learning_rte", 1}}, "x.json", parsed), Error);
  EXPECT_THROW(train_options_from_json({{"epochs", "three"}}, "x.json", parsed), Error);
  train_options_from_json({{"epochs", 3}, {"learning_rate", 0.1}}, "x.json", parsed);
  EXPECT_EQ(parsed.epochs, 3);
  EXPECT_DOUBLE_EQ(parsed.learning_rate, 0.1);
}

}  // namespace
}  // namespace compacter::train
