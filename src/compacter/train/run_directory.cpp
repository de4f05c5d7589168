// Run folders: see run_directory.h.
#include "compacter/train/run_directory.h"

#include <filesystem>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/json_file.h"

namespace compacter::train {

namespace fs = std::filesystem;

namespace {

// Swapped directories (replace_directory) and their leftovers.
const char* const kSwapped[] = {"checkpoint", "best_adapter"};

std::string state_of(const std::string& dir, const RunLayout& layout) {
  if (fs::exists(dir + "/" + layout.results)) return "finished";
  if (fs::exists(dir + "/" + layout.config)) return "unfinished";
  for (const auto& f : layout.blocking)
    if (fs::exists(dir + "/" + f)) return f;
  return "";
}

void flatten(const nlohmann::json& j, const std::string& prefix,
             std::vector<std::pair<std::string, nlohmann::json>>& out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& item : j.items())
      flatten(item.value(), prefix.empty() ? item.key() : prefix + "." + item.key(), out);
    return;
  }
  out.emplace_back(prefix, j);
}

std::string normal_path(const std::string& p) {
  if (p.empty()) return p;
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(fs::absolute(p), ec);
  std::string s = (ec ? fs::path(p).lexically_normal() : canonical).string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

nlohmann::json normal_paths(const nlohmann::json& v) {
  if (v.is_string()) return normal_path(v.get<std::string>());
  if (v.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& x : v) out.push_back(normal_paths(x));
    return out;
  }
  return v;
}

}  // namespace

RunLayout finetune_layout() {
  RunLayout l;
  l.files = {"results.json",           "metrics.jsonl",
             "run_config.json",        "predictions_validation.jsonl",
             "predictions_test.jsonl", "checkpoint",
             "checkpoint.old",         "checkpoint.new",
             "best_adapter",           "best_adapter.old",
             "best_adapter.new"};
  l.path_settings = {"model", "tokenizer", "data_dir"};
  return l;
}

std::string first_config_difference(const nlohmann::json& recorded, const nlohmann::json& now,
                                    const std::set<std::string>& path_settings) {
  std::vector<std::pair<std::string, nlohmann::json>> a, b;
  flatten(recorded, "", a);
  flatten(now, "", b);
  auto value_of = [](const std::vector<std::pair<std::string, nlohmann::json>>& items,
                     const std::string& key) -> const nlohmann::json* {
    for (const auto& [k, v] : items)
      if (k == key) return &v;
    return nullptr;
  };
  auto describe = [](const nlohmann::json* v) { return v ? v->dump() : std::string("(absent)"); };
  std::vector<std::string> keys;
  for (const auto& [k, v] : b) keys.push_back(k);
  for (const auto& [k, v] : a)
    if (!value_of(b, k)) keys.push_back(k);
  for (const std::string& key : keys) {
    const nlohmann::json* was = value_of(a, key);
    const nlohmann::json* is = value_of(b, key);
    bool same = was && is && *was == *is;
    if (!same && was && is && path_settings.count(key))
      same = normal_paths(*was) == normal_paths(*is);
    if (!same) return cat(key, ": the run started with ", describe(was), ", now ", describe(is));
  }
  return "";
}

void RunDirectory::check_usable(const std::string& dir, const RunLayout& layout, RunMode mode) {
  const std::string state = state_of(dir, layout);
  switch (mode) {
    case RunMode::kResume:
      check_usage(state != "finished", dir, " holds a finished ", layout.kind, " (", layout.results,
                  "): nothing to resume");
      check_usage(state == "unfinished", "--resume: ", dir, " holds no unfinished ", layout.kind,
                  " (no ", layout.config, ")");
      return;
    case RunMode::kNew:
      if (state.empty()) return;
      if (state == "finished" || state == "unfinished")
        throw UsageError(cat(dir, " already holds a", state == "unfinished" ? "n " : " ", state,
                             " ", layout.kind, ": pass --overwrite to replace it",
                             state == "unfinished" ? " or --resume to continue it" : ""));
      throw UsageError(cat(dir, " already holds ", state, ": pass --overwrite to replace it"));
    case RunMode::kOverwrite:
      return;
  }
}

RunDirectory RunDirectory::open(const std::string& dir, const RunLayout& layout, RunMode mode,
                                const nlohmann::json& effective) {
  check_usable(dir, layout, mode);
  const std::string config = dir + "/" + layout.config;
  if (mode == RunMode::kResume) {
    const nlohmann::json recorded = read_json_document(config);
    const std::string diff = first_config_difference(recorded, effective, layout.path_settings);
    check_usage(diff.empty(), "--resume: a setting differs from the one the run started with (",
                config, "): ", diff);
    for (const char* name : kSwapped) {
      const std::string d = dir + "/" + name;
      if (!fs::exists(d) && fs::exists(d + ".old")) fs::rename(d + ".old", d);
      fs::remove_all(d + ".new");
    }
    return RunDirectory(dir, true);
  }
  if (mode == RunMode::kOverwrite)
    for (const auto& f : layout.files) fs::remove_all(dir + "/" + f);
  fs::create_directories(dir);
  write_text_atomically(config, effective.dump(2) + "\n");
  return RunDirectory(dir, false);
}

bool RunDirectory::has_checkpoint() const {
  return fs::exists(dir_ + "/checkpoint/state.json") ||
         fs::exists(dir_ + "/checkpoint.old/state.json");
}

void replace_directory(const std::string& fresh, const std::string& dir) {
  const std::string old = dir + ".old";
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(fresh, dir);
  fs::remove_all(old);
}

void write_directory(const std::string& dir, const std::function<void(const std::string&)>& fill) {
  const std::string fresh = dir + ".new";
  fs::remove_all(fresh);
  try {
    fill(fresh);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(fresh, ignored);
    throw;
  }
  replace_directory(fresh, dir);
}

nlohmann::json checkpoint_state_to_json(const CheckpointState& s) {
  nlohmann::json j = {{"step", s.step},
                      {"epoch", s.epoch},
                      {"batch_in_epoch", s.batch_in_epoch},
                      {"best", s.best},
                      {"best_step", s.best_step},
                      {"train_seconds", s.train_seconds},
                      {"evaluation_seconds", s.evaluation_seconds},
                      {"epoch_seconds_so_far", s.epoch_seconds_so_far},
                      {"examples", s.examples},
                      {"loss_sum", s.loss_sum},
                      {"loss_count", s.loss_count},
                      {"epoch_seconds", s.epoch_seconds},
                      {"evaluations", s.evaluations},
                      {"optimizer_steps", s.optimizer_steps}};
  if (!s.gradient_bucket_order.empty()) j["gradient_bucket_order"] = s.gradient_bucket_order;
  return j;
}

CheckpointState checkpoint_state_from_json(const nlohmann::json& j, const std::string& source) {
  check(j.is_object(), source, ": expected a JSON object, got ", j.type_name());
  auto field = [&](const char* key) -> const nlohmann::json& {
    const auto it = j.find(key);
    check(it != j.end(), source, ": missing field \"", key, "\"");
    return *it;
  };
  // A JSON integer within int64_t: a float (1e30) or an unsigned above 2^63 - 1 is refused
  // instead of being cast out of range. `what` names `v` in the message.
  auto integer_value = [&](const nlohmann::json& v, const std::string& what, int64_t minimum) {
    check(v.is_number_integer() &&
              (!v.is_number_unsigned() || v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) &&
              v.get<int64_t>() >= minimum,
          source, ": ", what, " must be an integer of at least ", minimum, ", got ", v.dump());
    return v.get<int64_t>();
  };
  auto integer = [&](const char* key, int64_t minimum) {
    return integer_value(field(key), cat("\"", key, "\""), minimum);
  };
  auto number = [&](const nlohmann::json& v, const std::string& key) {
    check(v.is_number(), source, ": \"", key, "\" must be a number, got ", v.dump());
    return v.get<double>();
  };
  CheckpointState s;
  s.optimizer_steps = integer("optimizer_steps", 0);
  s.step = integer("step", 0);
  s.epoch = integer("epoch", 0);
  s.batch_in_epoch = integer("batch_in_epoch", 0);
  s.best = number(field("best"), "best");
  s.best_step = integer("best_step", -1);
  check(s.best_step <= s.step, source, ": \"best_step\" ", s.best_step, " is after \"step\" ",
        s.step);
  s.train_seconds = number(field("train_seconds"), "train_seconds");
  if (j.contains("evaluation_seconds"))  // checkpoints written before it have none
    s.evaluation_seconds = number(j["evaluation_seconds"], "evaluation_seconds");
  s.epoch_seconds_so_far = number(field("epoch_seconds_so_far"), "epoch_seconds_so_far");
  s.examples = integer("examples", 0);
  s.loss_sum = number(field("loss_sum"), "loss_sum");
  s.loss_count = integer("loss_count", 0);
  const nlohmann::json& epochs = field("epoch_seconds");
  check(epochs.is_array(), source, ": \"epoch_seconds\" must be a list of numbers");
  for (const auto& e : epochs) s.epoch_seconds.push_back(number(e, "epoch_seconds"));
  const nlohmann::json& evaluations = field("evaluations");
  check(evaluations.is_array(), source, ": \"evaluations\" must be a list");
  for (const auto& e : evaluations) s.evaluations.push_back(e);
  if (j.contains("gradient_bucket_order")) {  // data-parallel runs that re-planned their buckets
    const nlohmann::json& order = j["gradient_bucket_order"];
    check(order.is_array(), source, ": \"gradient_bucket_order\" must be a list of indices");
    for (const auto& i : order)
      s.gradient_bucket_order.push_back(
          integer_value(i, "an item of \"gradient_bucket_order\"", 0));
  }
  return s;
}

}  // namespace compacter::train
