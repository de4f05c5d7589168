// `compacter forward`: one teacher-forced pass over a batch stored in a safetensors file; writes
// logits, encoder states and (with labels) the loss, in the layout of HF's reference files.
// With --method (fresh init from --init-seed) or --adapter DIR, the method is attached first.
#include <torch/torch.h>

#include <iostream>

#include "commands.h"
#include "common.h"
#include "compacter/core/error.h"
#include "compacter/io/safetensors.h"
#include "method_options.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct ForwardOptions {
  train::ModelSpec model;
  MethodOptions method;
  std::string inputs;
  std::string out;
};

// An int64 [B, L] tensor from the inputs file, or undefined when absent and optional.
torch::Tensor read_ids(const safetensors::File& f, const std::string& name, bool required) {
  if (!f.contains(name)) {
    check(!required, f.path(), ": missing tensor \"", name, "\"");
    return {};
  }
  torch::Tensor t = f.load(name);
  check(t.scalar_type() == torch::kLong, f.path(), ": tensor \"", name, "\" must be I64, got ",
        safetensors::dtype_name(f.info(name).dtype));
  check(t.dim() == 2, f.path(), ": tensor \"", name, "\" must be [batch, length], got ", t.dim(),
        " dimension(s)");
  return t;
}

void check_range(const torch::Tensor& t, const std::string& name, int64_t vocab, bool allow_ignore,
                 const std::string& file) {
  if (!t.defined() || t.numel() == 0) return;
  torch::Tensor bad = (t < 0) | (t >= vocab);
  if (allow_ignore) bad = bad & (t != -100);
  check(!bad.any().item<bool>(), file, ": tensor \"", name, "\" holds ids outside [0, ", vocab, ")",
        allow_ignore ? " (or -100)" : "");
}

void run_forward(const ForwardOptions& o) {
  auto f = safetensors::File::open(o.inputs);
  torch::Tensor input_ids = read_ids(f, "input_ids", true);
  torch::Tensor mask = read_ids(f, "attention_mask", false);
  torch::Tensor labels = read_ids(f, "labels", false);
  torch::Tensor dec_ids = read_ids(f, "decoder_input_ids", false);
  check(labels.defined() || dec_ids.defined(), o.inputs,
        ": needs \"labels\" and/or \"decoder_input_ids\"");
  if (mask.defined())
    check(mask.sizes() == input_ids.sizes(), o.inputs,
          ": \"attention_mask\" must have the shape of \"input_ids\"");
  for (const auto& t : {labels, dec_ids})
    if (t.defined())
      check(t.size(0) == input_ids.size(0), o.inputs,
            ": labels / decoder_input_ids must have the batch size of input_ids");
  if (labels.defined() && dec_ids.defined())
    check(labels.sizes() == dec_ids.sizes(), o.inputs,
          ": \"labels\" and \"decoder_input_ids\" must have the same shape");

  StderrProgress progress;
  train::BaseWeights base = train::load_base_weights(o.model, o.method.adapter_dir, progress);
  nn::T5Model model = base.model;
  peft::AdapterLoadOptions checks;
  checks.base = &base.identity;
  checks.allow_base_mismatch = o.method.allow_base_mismatch;
  checks.progress = &progress;
  apply_method(o.method, *model, checks);
  model->eval();
  const int64_t vocab = model->config().vocab_size;
  check_range(input_ids, "input_ids", vocab, false, o.inputs);
  check_range(dec_ids, "decoder_input_ids", vocab, false, o.inputs);
  check_range(labels, "labels", vocab, true, o.inputs);

  torch::NoGradGuard no_grad;
  const auto dev = nn::parse_device(o.model.device);
  auto to_dev = [&](const torch::Tensor& t) { return t.defined() ? t.to(dev) : t; };
  nn::Seq2SeqOutput out =
      model->forward(to_dev(input_ids), to_dev(mask), to_dev(dec_ids), to_dev(labels));
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"logits", out.logits.to(torch::kCPU, torch::kFloat32)},
      {"encoder_last_hidden_state", out.encoder_last_hidden_state.to(torch::kCPU, torch::kFloat32)},
  };
  if (out.loss.defined()) {
    tensors.emplace_back("loss", out.loss.to(torch::kCPU, torch::kFloat32));
    std::cerr << "loss " << out.loss.item<double>() << "\n";
  }
  safetensors::save(o.out, tensors);
}

}  // namespace

void add_forward_command(CLI::App& app) {
  auto o = std::make_shared<ForwardOptions>();
  CLI::App* cmd = app.add_subcommand(
      "forward",
      "Run T5 on a batch (input_ids, attention_mask, labels / decoder_input_ids in a "
      "safetensors file) and write logits, encoder states and loss");
  add_model_options(*cmd, o->model, false);
  add_method_options(*cmd, o->method, true);
  cmd->add_option("--inputs", o->inputs,
                  "safetensors file with int64 input_ids, attention_mask, "
                  "labels (-100 = ignore) and/or decoder_input_ids")
      ->required();
  cmd->add_option("--out", o->out, "safetensors file to write (atomically)")->required();
  cmd->callback([o] { run_forward(*o); });
}

}  // namespace compacter::cli
