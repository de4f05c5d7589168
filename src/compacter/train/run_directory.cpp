// Run folders: see run_directory.h.
#include "compacter/train/run_directory.h"

#include <filesystem>
#include <fstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"

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
    nlohmann::json recorded;
    {
      std::ifstream in(config);
      check(in.good(), "cannot open ", config);
      try {
        recorded = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception& e) {
        throw Error(cat(config, ": not valid JSON (", e.what(), ")"));
      }
    }
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

}  // namespace compacter::train
