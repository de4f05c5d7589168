// `compacter export --to hf` (see hf_export.h).
#include "compacter/interop/hf_export.h"

#include <torch/torch.h>

#include <filesystem>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/interop/staged_dir.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"

namespace compacter::interop {

namespace fs = std::filesystem;

namespace {

int64_t recorded_vocab_rows(const std::string& adapter_dir) {
  const nlohmann::json j = peft::read_adapter_config(adapter_dir);
  const auto base = j.find("base_model");
  check(base != j.end() && base->is_object() && base->contains("vocab_rows") &&
            (*base)["vocab_rows"].is_number_integer(),
        adapter_dir, "/", peft::kAdapterConfigFile, ": base_model lacks an integer \"vocab_rows\"");
  return (*base)["vocab_rows"].get<int64_t>();
}

void copy_file(const fs::path& from, const std::string& to) {
  write_atomically(to, [&](const std::string& tmp) {
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  });
}

}  // namespace

InteropReport export_hf(const HfExportOptions& o) {
  const ExportSource source = resolve_export_source(o.source);
  const peft::AdapterSpec spec = peft::read_adapter_spec(source.adapter_dir);
  check(peft::find_method(spec.method).merge != nullptr, "export --to hf: method ", spec.method,
        " (", source.adapter_dir,
        ") cannot be written as a plain T5: only methods that change T5's own weights can (full, "
        "lora, ia3); use --to peft or --to adapterhub for the others");
  const std::string base_dir = base_model_folder(source, o.model, "export --to hf");
  check(o.tokenizer.empty() || fs::is_regular_file(o.tokenizer), "--tokenizer ", o.tokenizer,
        ": not found (expected a spiece.model file)");
  StagedDir out(o.out, o.overwrite, source.adapter_dir);

  nn::T5Model model = nn::load_t5(base_dir).model;
  const int64_t rows = recorded_vocab_rows(source.adapter_dir);
  const int64_t have = model->shared->weight.size(0);
  check(rows <= have, "adapter ", source.adapter_dir, " was trained on ", rows,
        " vocabulary rows, more than the ", have, " of the base model ", base_dir);
  if (rows < have) model->resize_vocab(rows);
  peft::load_adapter(*model, source.adapter_dir);
  model->eval();
  nn::T5Model merged = peft::merge_into_base(*model, spec.method);
  nn::save_t5(*merged, out.path(), torch::kFloat32, /*checksum=*/false);  // as transformers writes

  InteropReport report;
  report.method = spec.method;
  report.out = o.out;
  report.files = {"config.json", "model.safetensors"};
  if (rows < have)
    report.notes.push_back(cat("vocab_size ", rows,
                               ": the rows the adapter was trained on (the base ", base_dir,
                               " has ", have, ")"));

  const fs::path generation = fs::path(base_dir) / "generation_config.json";
  if (fs::exists(generation)) {
    copy_file(generation, out.file("generation_config.json"));
  } else {
    const T5Config& c = merged->config();
    const nlohmann::json g = {{"_from_model_config", true},
                              {"decoder_start_token_id", c.decoder_start_token_id},
                              {"eos_token_id", c.eos_token_id},
                              {"pad_token_id", c.pad_token_id}};
    write_text_atomically(out.file("generation_config.json"), g.dump(2) + "\n");
  }
  report.files.push_back("generation_config.json");

  if (!o.tokenizer.empty()) {
    copy_file(o.tokenizer, out.file("spiece.model"));
    report.files.push_back("spiece.model");
  } else {
    for (const char* name :
         {"spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      const fs::path from = fs::path(base_dir) / name;
      if (!fs::exists(from)) continue;
      copy_file(from, out.file(name));
      report.files.push_back(name);
    }
    if (!fs::exists(out.file("spiece.model")) && !fs::exists(out.file("tokenizer.json")))
      report.notes.push_back(cat("no tokenizer: ", base_dir,
                                 " has no spiece.model; transformers loads the model, but "
                                 "AutoTokenizer needs one (give --tokenizer FILE)"));
  }
  out.commit();
  return report;
}

}  // namespace compacter::interop
