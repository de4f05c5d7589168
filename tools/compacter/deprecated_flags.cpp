// Deprecated flag spellings: see deprecated_flags.h.
#include "deprecated_flags.h"

#include <set>

#include "compacter/core/error.h"

namespace compacter::cli {

namespace {

enum class Rewrite {
  kRename,    // the same value under the new name
  kMinusOne,  // a max_length counting the decoder start token -> max_new_tokens
  kAutocast,  // --bf16-autocast true -> --dtype autocast-bf16 (false: dropped)
};

struct Deprecated {
  const char* command;
  const char* old_flag;
  const char* new_flag;
  Rewrite rewrite;
};

constexpr Deprecated kDeprecated[] = {
    {"init-model", "--config", "--model-config", Rewrite::kRename},
    {"bench", "--batch", "--batch-size", Rewrite::kRename},
    {"bench", "--steps", "--max-steps", Rewrite::kRename},
    {"train", "--generation-max-length", "--max-new-tokens", Rewrite::kMinusOne},
    {"train", "--bf16-autocast", "--dtype", Rewrite::kAutocast},
    {"pretrain", "--bf16-autocast", "--dtype", Rewrite::kAutocast},
    {"eval", "--generation-max-length", "--max-new-tokens", Rewrite::kMinusOne},
    {"predict", "--max-length", "--max-new-tokens", Rewrite::kMinusOne},
    {"serve", "--max-length", "--max-new-tokens", Rewrite::kMinusOne},
};

std::string rewrite_value(Rewrite rewrite, const std::string& flag, const std::string& value) {
  if (rewrite == Rewrite::kRename) return value;
  if (rewrite == Rewrite::kAutocast) {
    check_usage(value == "true" || value == "false", flag, ": expected true or false, got \"",
                value, "\"");
    return value == "true" ? "autocast-bf16" : "";
  }
  int64_t n = 0;
  try {
    size_t used = 0;
    n = std::stoll(value, &used);
    check_usage(used == value.size(), "");
  } catch (const std::exception&) {
    throw UsageError(cat(flag, ": expected a whole number, got \"", value, "\""));
  }
  check_usage(n >= 2, flag, " must be at least 2 (the start token and one more), got ", n);
  return std::to_string(n - 1);
}

}  // namespace

std::vector<std::string> replace_deprecated_flags(int argc, char** argv, std::ostream& notes) {
  std::vector<std::string> in(argv + 1, argv + argc), out;
  std::string command;
  for (const auto& a : in)
    if (!a.empty() && a[0] != '-') {
      command = a;
      break;
    }
  for (size_t i = 0; i < in.size(); ++i) {
    const Deprecated* hit = nullptr;
    std::string value;
    bool inline_value = false;
    for (const Deprecated& d : kDeprecated) {
      if (command != d.command) continue;
      const std::string old = d.old_flag;
      if (in[i] == old) {
        hit = &d;
      } else if (in[i].rfind(old + "=", 0) == 0) {
        hit = &d;
        value = in[i].substr(old.size() + 1);
        inline_value = true;
      }
      if (hit) break;
    }
    if (!hit) {
      out.push_back(in[i]);
      continue;
    }
    if (!inline_value) {
      check_usage(i + 1 < in.size(), hit->old_flag, " needs a value");
      value = in[++i];
    }
    const std::string replaced = rewrite_value(hit->rewrite, hit->old_flag, value);
    notes << "compacter: note: " << hit->old_flag << " is deprecated; use " << hit->new_flag
          << (hit->rewrite == Rewrite::kMinusOne   ? " (new tokens: one less, the start token is "
                                                     "not counted)"
              : hit->rewrite == Rewrite::kAutocast ? " autocast-bf16"
                                                   : "")
          << "\n";
    if (replaced.empty()) continue;
    out.push_back(hit->new_flag);
    out.push_back(replaced);
  }
  return out;
}

}  // namespace compacter::cli
