// `compacter generate`: greedy generation from text lines.
#include <torch/torch.h>

#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/data/tokenizer.h"
#include "compacter/train/finetune.h"
#include "compacter/train/generate.h"
#include "method_options.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct GenerateCliOptions {
  train::ModelSpec model;
  MethodOptions method;
  std::vector<std::string> texts;
  int64_t max_new_tokens = train::kDefaultMaxNewTokens;
  int64_t max_source_length = 512;
  int64_t batch_size = train::kDefaultGenerationBatch;
  bool show_ids = false;
};

void run_generate(const GenerateCliOptions& o) {
  check(o.batch_size > 0, "--batch-size must be positive");
  StderrProgress progress;
  train::BaseModel base = train::load_base_model(o.model, progress);
  const T5Tokenizer& tok = base.tokenizer;
  nn::T5Model model = base.model;
  apply_method(o.method, *model,
               train::adapter_checks(base, o.method.allow_base_mismatch, progress));
  const auto dev = nn::parse_device(o.model.device);
  const auto lines = input_lines(o.texts);
  GenerateOptions go;
  go.max_new_tokens = o.max_new_tokens;
  PeriodicStatus status(progress, "generating", "lines");
  for (size_t start = 0; start < lines.size(); start += o.batch_size) {
    const size_t end = std::min(lines.size(), start + static_cast<size_t>(o.batch_size));
    std::vector<std::vector<int64_t>> ids;
    int64_t width = 1;
    for (size_t i = start; i < end; ++i) {
      ids.push_back(tok.encode(lines[i], o.max_source_length));
      width = std::max<int64_t>(width, ids.back().size());
    }
    const int64_t rows = static_cast<int64_t>(ids.size());
    torch::Tensor input = torch::full({rows, width}, tok.pad_id(), torch::kLong);
    torch::Tensor mask = torch::zeros({rows, width}, torch::kLong);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = static_cast<int64_t>(ids[r].size());
      input[r].narrow(0, 0, n).copy_(torch::tensor(ids[r], torch::kLong));
      mask[r].narrow(0, 0, n).fill_(1);
    }
    check(input.max().item<int64_t>() < model->config().vocab_size,
          "the tokenizer produced ids beyond the model's vocabulary (", model->config().vocab_size,
          " rows): is the tokenizer (", tok.source(), ") this model's?");
    torch::Tensor out = greedy_generate(*model, input.to(dev), mask.to(dev), go).to(torch::kCPU);
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int64_t> row(out[r].data_ptr<int64_t>(),
                               out[r].data_ptr<int64_t>() + out.size(1));
      std::cout << tok.decode(row);
      if (o.show_ids) {
        std::cout << "\t[";
        for (size_t i = 0; i < row.size(); ++i) std::cout << (i ? " " : "") << row[i];
        std::cout << "]";
      }
      std::cout << "\n";
    }
    std::cout.flush();
    status(end, lines.size());
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "generate", "Greedy generation: one output line per input line (--text or stdin)");
  add_model_options(*cmd, o->model);
  add_method_options(*cmd, o->method, true);
  add_text_option(*cmd, o->texts,
                  "one input text (repeat the flag for several); default: the lines of stdin");
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "stop after N generated tokens")
      ->capture_default_str();
  cmd->add_option("--max-source-length", o->max_source_length,
                  "truncate inputs to N tokens (keeping </s>)")
      ->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "lines generated together")->capture_default_str();
  cmd->add_flag("--show-ids", o->show_ids, "also print the generated token ids (tab-separated)");
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace compacter::cli
