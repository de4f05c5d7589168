// `compacter generate`: generation from text lines with the decoding library (greedy by
// default; beam search, sampling and the rest of transformers' GenerationConfig through the
// decoding flags or the model folder's generation_config.json).
#include <torch/torch.h>

#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/data/tokenizer.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/finetune.h"
#include "decoding_options.h"
#include "method_options.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct GenerateCliOptions {
  train::ModelSpec model;
  MethodOptions method;
  std::vector<std::string> texts;
  int64_t max_new_tokens = -1;  // -1: the model's generation_config.json, else 19
  int64_t max_source_length = 512;
  int64_t batch_size = train::kDefaultGenerationBatch;
  bool show_ids = false;
  bool output_json = false;
  DecodingFlags decoding;
};

void run_generate(const GenerateCliOptions& o) {
  check(o.batch_size > 0, "--batch-size must be positive");
  check_usage(o.max_new_tokens >= -1, "--max-new-tokens must be >= 0, got ", o.max_new_tokens);
  StderrProgress progress;
  train::BaseModel base = train::load_base_model(o.model, progress);
  decoding::GenerationConfig gen = with_decoding_flags(o.decoding, base.generation);
  if (o.max_new_tokens >= 0) gen.max_new_tokens = o.max_new_tokens;
  const T5Tokenizer& tok = base.tokenizer;
  nn::T5Model model = base.model;
  apply_method(o.method, *model,
               train::adapter_checks(base, o.method.allow_base_mismatch, progress));
  train::quantize_if_int8(base, *model);
  const auto dev = nn::parse_device(o.model.device);
  const auto lines = input_lines(o.texts);
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
    const auto out = decoding::generate(*model, input.to(dev), mask.to(dev), gen);
    // Text: one line per sequence (num_return_sequences lines per input), the ids padded to the
    // batch's longest as transformers' generate returns them; JSON: one object per input.
    const torch::Tensor padded =
        decoding::padded_tokens(out, decoding::output_padding_id(gen.resolved(model->config())));
    int64_t flat = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (o.output_json) {
        nlohmann::json seqs = nlohmann::json::array();
        for (const decoding::Sequence& s : out[r])
          seqs.push_back(sequence_json(tok.decode(s.tokens), s, gen.output_scores));
        std::cout << nlohmann::json{{"sequences", seqs}}.dump() << "\n";
        flat += static_cast<int64_t>(out[r].size());
        continue;
      }
      for (size_t k = 0; k < out[r].size(); ++k, ++flat) {
        std::vector<int64_t> row(padded[flat].data_ptr<int64_t>(),
                                 padded[flat].data_ptr<int64_t>() + padded.size(1));
        std::cout << tok.decode(row);
        if (o.show_ids) {
          std::cout << "\t[";
          for (size_t i = 0; i < row.size(); ++i) std::cout << (i ? " " : "") << row[i];
          std::cout << "]";
        }
        std::cout << "\n";
      }
    }
    std::cout.flush();
    status(end, lines.size());
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Generation: one output line per input line (--text or stdin; num_return_sequences lines "
      "with several sequences), or one JSON object per input with --output-json; greedy unless "
      "the decoding flags or the model's generation_config.json say otherwise");
  add_model_options(*cmd, o->model, true, /*int8=*/true);
  add_method_options(*cmd, o->method, true);
  add_text_option(*cmd, o->texts,
                  "one input text (repeat the flag for several); default: the lines of stdin");
  cmd->add_option("--max-new-tokens", o->max_new_tokens,
                  "stop after N generated tokens (default: the model's generation_config.json, "
                  "else 19: transformers' max_length 20)");
  cmd->add_option("--max-source-length", o->max_source_length,
                  "truncate inputs to N tokens (keeping </s>)")
      ->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "lines generated together")->capture_default_str();
  cmd->add_flag("--show-ids", o->show_ids, "also print the generated token ids (tab-separated)");
  cmd->add_flag("--json,--output-json", o->output_json,
                "print one JSON object per input: {\"sequences\": [{\"text\", \"score\", "
                "\"logprob_sum\", \"tokens\", \"finished\"(, \"token_logprobs\" with "
                "--output-scores)}]}");
  add_decoding_flags(*cmd, o->decoding);
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace compacter::cli
