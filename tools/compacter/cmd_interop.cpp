// `compacter export --to hf|peft|adapterhub SOURCE --out DIR` and `compacter import --from
// peft|adapterhub DIR --model BASE --out ADAPTER_DIR`: adapters in and out of other libraries'
// formats (src/compacter/interop, docs/interop.md).
#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/interop/adapterhub_format.h"
#include "compacter/interop/hf_export.h"
#include "compacter/interop/peft_format.h"

namespace compacter::cli {

namespace {

struct ExportOptions {
  std::string to, source, model, tokenizer, name, out;
  bool force = false;
};

struct ImportOptions {
  std::string from, dir, out;
  train::ModelSpec base;
  bool force = false;
};

void print_report(const interop::InteropReport& r, const std::string& what) {
  std::cerr << "wrote " << r.out << ": " << r.method << " " << what << " (";
  for (size_t i = 0; i < r.files.size(); ++i) std::cerr << (i ? ", " : "") << r.files[i];
  std::cerr << ")\n";
  for (const std::string& note : r.notes) std::cerr << "note: " << note << "\n";
}

void run_export(const ExportOptions& o) {
  if (o.to == "hf") {
    print_report(interop::export_hf({o.source, o.model, o.tokenizer, o.out, o.force}),
                 "merged into a Hugging Face T5 folder");
    return;
  }
  check_usage(o.tokenizer.empty(), "--tokenizer is for --to hf only");
  check_usage(o.name.empty() || o.to == "adapterhub", "--name is for --to adapterhub only");
  if (o.to == "adapterhub") {
    print_report(interop::export_adapterhub({o.source, o.name, o.model, o.out, o.force}),
                 "as an AdapterHub adapter");
    return;
  }
  if (o.to == "peft") {
    print_report(interop::export_peft({o.source, o.model, o.out, o.force}), "as a PEFT adapter");
    return;
  }
  throw UsageError(cat("export --to ", o.to, ": unknown format (expected hf, peft or adapterhub)"));
}

void run_import(const ImportOptions& o) {
  interop::ImportOptions io{o.dir, o.base, o.out, o.force, invocation()};
  if (o.from == "peft") {
    print_report(interop::import_peft(io), "adapter imported from PEFT");
    return;
  }
  if (o.from == "adapterhub") {
    print_report(interop::import_adapterhub(io), "adapter imported from AdapterHub");
    return;
  }
  throw UsageError(cat("import --from ", o.from, ": unknown format (expected peft or adapterhub)"));
}

}  // namespace

void add_interop_commands(CLI::App& app) {
  auto e = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Write an adapter (or a run's best adapter) in another library's format: hf (full, lora, "
      "ia3 merged into a Hugging Face T5 folder), peft (lora, ia3, prompt tuning), adapterhub "
      "(adapter, pfeiffer, phm, compacter, compacter++)");
  cmd->add_option("--to", e->to, "hf | peft | adapterhub")
      ->required()
      ->check(CLI::IsMember({"hf", "peft", "adapterhub"}));
  cmd->add_option("source", e->source, "adapter folder, or a training run (its best_adapter)")
      ->required();
  cmd->add_option("--out", e->out, "output folder (written whole, or not at all)")->required();
  cmd->add_option("-m,--model", e->model,
                  "the base model's Hugging Face T5 folder (hf: its weights, tokenizer and "
                  "generation config; peft, adapterhub: written as the base's name). Default: a "
                  "run's recorded --model");
  cmd->add_option("--tokenizer", e->tokenizer,
                  "hf: the spiece.model to write (default: the base folder's tokenizer files)");
  cmd->add_option("--name", e->name,
                  "adapterhub: the adapter's name (default: its task's, else its method's)");
  cmd->add_flag("--force", e->force, "replace an existing output folder");
  cmd->callback([e] { run_export(*e); });

  auto i = std::make_shared<ImportOptions>();
  CLI::App* imp = app.add_subcommand(
      "import",
      "Turn another library's adapter into an adapter folder of ours (peft: LoRA, IA3, prompt "
      "tuning; adapterhub: bottleneck adapters, Compacter), to use with forward, generate, eval, "
      "predict and serve");
  imp->add_option("--from", i->from, "peft | adapterhub")
      ->required()
      ->check(CLI::IsMember({"peft", "adapterhub"}));
  imp->add_option("dir", i->dir, "the adapter folder to read")->required();
  imp->add_option("--out", i->out, "our adapter folder to write (written whole, or not at all)")
      ->required();
  imp->add_option("-m,--model", i->base.dir,
                  "the base model's Hugging Face T5 folder (the adapter records its shape and "
                  "fingerprints, and loads onto it)")
      ->required();
  imp->add_option("--tokenizer", i->base.tokenizer,
                  "spiece.model, or \"byte\" (default: the model folder's); as in train, the "
                  "vocabulary is cut to the tokenizer's size");
  imp->add_option("--resize-vocab", i->base.vocab_rows,
                  "cut or extend the vocabulary to N rows instead (as train's --resize-vocab)");
  imp->add_flag("--force", i->force, "replace an existing output folder");
  imp->callback([i] { run_import(*i); });
}

}  // namespace compacter::cli
