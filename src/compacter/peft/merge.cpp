// Merging an adapter into its base checkpoint (see merge.h).
#include "compacter/peft/merge.h"

#include <torch/torch.h>

#include <filesystem>
#include <vector>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/json_file.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"

namespace compacter::peft {

namespace {

int64_t adapter_vocab_rows(const std::string& adapter_dir) {
  const std::string path = adapter_dir + "/" + kAdapterConfigFile;
  const nlohmann::json j = read_json_document(path);  // read_adapter_spec validated it
  const auto& base = j.at("base_model");
  check(base.is_object() && base.contains("vocab_rows") && base["vocab_rows"].is_number_integer(),
        path, ": base_model lacks an integer \"vocab_rows\"");
  return base["vocab_rows"].get<int64_t>();
}

}  // namespace

MergeReport merge_adapter(const std::string& base_dir, const std::string& adapter_dir,
                          const std::string& out_dir, bool overwrite) {
  namespace fs = std::filesystem;
  const AdapterSpec spec = read_adapter_spec(adapter_dir);
  check_mergeable(spec.method);
  check(!(fs::exists(out_dir) && fs::exists(base_dir) && fs::equivalent(out_dir, base_dir)),
        "the output folder ", out_dir, " is the base model's folder; give another");
  const std::string weights = out_dir + "/model.safetensors";
  check(overwrite || !fs::exists(weights), weights, " already exists (overwrite to replace it)");

  nn::T5Model model = nn::load_t5(base_dir).model;
  const int64_t rows = adapter_vocab_rows(adapter_dir);
  const int64_t have = model->shared->weight.size(0);
  check(rows <= have, "adapter ", adapter_dir, " was trained on ", rows,
        " vocabulary rows, more than the ", have, " of the base model ", base_dir);
  if (rows < have) model->resize_vocab(rows);
  load_adapter(*model, adapter_dir);
  model->eval();
  nn::T5Model merged = merge_into_base(*model, spec.method);
  nn::save_t5(*merged, out_dir);

  MergeReport report;
  report.method = spec.method;
  report.vocab_rows = rows;
  for (const char* name :
       {"spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path from = fs::path(base_dir) / name;
    if (!fs::exists(from)) continue;
    write_atomically((fs::path(out_dir) / name).string(), [&](const std::string& tmp) {
      fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
    });
    report.copied_files.push_back(name);
  }
  return report;
}

}  // namespace compacter::peft
