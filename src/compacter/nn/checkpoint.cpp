// Hugging Face T5 directories in and out (model types t5, mt5 and umt5: io/t5_config.h).
#include "compacter/nn/checkpoint.h"

#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/io/checkpoint_files.h"
#include "compacter/io/hf_names.h"
#include "compacter/io/safetensors.h"

namespace compacter::nn {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// "encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight" (or decoder) with N > 0.
bool is_later_block_position_bias(const std::string& name) {
  static const std::string kSuffix = ".layer.0.SelfAttention.relative_attention_bias.weight";
  for (const std::string stack : {"encoder.block.", "decoder.block."}) {
    if (name.size() <= stack.size() + kSuffix.size() || name.rfind(stack, 0) != 0 ||
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
      continue;
    const std::string block =
        name.substr(stack.size(), name.size() - stack.size() - kSuffix.size());
    return block.find_first_not_of("0123456789") == std::string::npos && block != "0";
  }
  return false;
}

}  // namespace

T5Loaded load_t5(const std::string& dir, const T5LoadOptions& options) {
  namespace fs = std::filesystem;
  check(fs::is_directory(dir), "model folder not found: ", dir,
        " (expected a Hugging Face T5 folder with config.json and model.safetensors or "
        "pytorch_model.bin)");
  // The config first: its model_type is checked there (t5, mt5, umt5; anything else is refused
  // by name before any weight is read).
  const std::string config_file = dir + "/config.json";
  const T5Config config = load_t5_config(config_file);
  const CheckpointFiles ckpt = CheckpointFiles::open(dir);
  T5Loaded result;
  result.model = T5Model(config, false);
  auto params = result.model->named_parameters(/*recurse=*/true);
  const auto specs = hf_t5_tensors(config);

  std::set<std::string> used;
  std::vector<std::string> missing;
  torch::NoGradGuard no_grad;
  for (const HfTensorSpec& spec : specs) {
    std::string source;
    if (ckpt.contains(spec.name)) {
      source = spec.name;
    } else {
      for (const std::string& alias : ckpt.names()) {
        auto target = hf_t5_alias_target(config, alias);
        if (target && *target == spec.name) {
          source = alias;
          break;
        }
      }
    }
    if (source.empty()) {
      missing.push_back(spec.name);
      continue;
    }
    used.insert(source);
    const auto& info = ckpt.info(source);
    check(info.shape == spec.shape, ckpt.where(), ": tensor \"", source, "\": expected shape ",
          shape_str(spec.shape), ", got ", shape_str(info.shape));
    const auto dt = info.dtype;
    check(dt == safetensors::DType::F32 || dt == safetensors::DType::F16 ||
              dt == safetensors::DType::BF16 || dt == safetensors::DType::F64,
          ckpt.where(), ": tensor \"", source,
          "\": expected a floating dtype (F32, F16, BF16), got ", safetensors::dtype_name(dt));
    torch::Tensor* param = params.find(spec.name);
    check(param != nullptr, "internal: model has no parameter ", spec.name);
    param->copy_(ckpt.load(source));
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += "\n  " + missing[i];
    if (missing.size() > 8) list += cat("\n  ... and ", missing.size() - 8, " more");
    throw Error(
        cat(ckpt.where(), ": ", missing.size(), " tensor(s) of the T5 config are missing:", list));
  }
  for (const std::string& name : ckpt.names()) {
    if (used.count(name) || hf_t5_alias_target(config, name)) continue;
    // A position bias beyond block 0 is UMT5's layout: loading it as T5 would silently ignore
    // the bias of every later layer and give wrong logits.
    check(!is_later_block_position_bias(name), ckpt.where(), ": tensor \"", name,
          "\" is a relative-position bias outside block 0, as UMT5 checkpoints have, but ",
          config_file, " has model_type \"", config.model_type,
          "\" (T5 and mT5 have one in block 0 only; for a UMT5 checkpoint the config says "
          "\"model_type\": \"umt5\")");
    result.unexpected.push_back(name);
  }
  if (options.vocab_rows > 0 && options.vocab_rows != config.vocab_size)
    result.model->resize_vocab(options.vocab_rows);
  result.model->to(options.device, options.dtype);
  return result;
}

void save_t5(T5ModelImpl& model, const std::string& dir, torch::ScalarType float_dtype,
             bool checksum) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  auto params = model.named_parameters(true);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const HfTensorSpec& spec : hf_t5_tensors(model.config())) {
    torch::Tensor* p = params.find(spec.name);
    check(p != nullptr, "internal: model has no parameter ", spec.name);
    tensors.emplace_back(spec.name, p->detach().to(torch::kCPU));
  }
  safetensors::save(dir + "/model.safetensors", tensors, {{"format", "pt"}}, float_dtype, checksum);
  nlohmann::json cfg = t5_config_to_json(model.config());
  cfg["torch_dtype"] = float_dtype == torch::kBFloat16 ? "bfloat16"
                       : float_dtype == torch::kHalf   ? "float16"
                                                       : "float32";
  write_text_atomically(dir + "/config.json", cfg.dump(2) + "\n");
}

torch::Device parse_device(const std::string& name) {
  torch::Device device = torch::kCPU;
  try {
    device = torch::Device(name);
  } catch (const c10::Error&) {
    throw UsageError(cat("unknown device \"", name, "\" (expected cpu, cuda or cuda:N)"));
  }
  check_usage(!device.is_cuda() || torch::cuda::is_available(), "device \"", name,
              "\" asked for, but this build of libtorch has no CUDA or no GPU is visible");
  return device;
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  throw UsageError(cat("unknown dtype \"", name, "\" (expected fp32 or bf16)"));
}

Precision parse_precision(const std::string& name) {
  Precision p;
  if (name == "autocast-bf16") {
    p.autocast = true;
    return p;
  }
  if (name == "int8") {
    p.int8 = true;
    return p;
  }
  if (name == "fp32" || name == "float32" || name == "bf16" || name == "bfloat16") {
    p.weights = parse_dtype(name);
    return p;
  }
  throw UsageError(
      cat("unknown dtype \"", name, "\" (expected fp32, bf16, autocast-bf16 or int8)"));
}

}  // namespace compacter::nn
