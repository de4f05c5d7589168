// UMT5 (model_type "umt5", transformers' modeling_umt5.py): a relative-position bias in the
// self-attention of every block. The model against the naive double-precision oracle
// (tests/support/naive_t5, written from the HF definition), incremental decoding against the full
// pass, the HF name table, and model_type read or refused by name.
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "compacter/core/error.h"
#include "compacter/io/hf_names.h"
#include "compacter/io/safetensors.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/checkpoint.h"
#include "support/naive_t5.h"
#include "support/raw_safetensors.h"
#include "support/tensor_near.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using testing::naive_random_t5_weights;
using testing::naive_t5_forward;

T5Config umt5_config() {
  T5Config c;
  c.model_type = "umt5";
  c.vocab_size = 50;
  c.d_model = 16;
  c.d_kv = 4;
  c.d_ff = 24;
  c.num_layers = 3;
  c.num_decoder_layers = 2;
  c.num_heads = 4;
  c.relative_attention_num_buckets = 8;
  c.relative_attention_max_distance = 12;
  c.feed_forward_proj = "gated-gelu";  // UMT5's published configs: gated-gelu, untied head
  c.tie_word_embeddings = false;
  c.validate();
  return c;
}

torch::Tensor umt5_tensor(const std::vector<double>& v, const std::vector<int64_t>& shape) {
  return torch::tensor(v, torch::kDouble).view(shape);
}

// A model of `c` holding the HF-named `w`, in eval mode.
nn::T5Model umt5_model(const T5Config& c, const std::map<std::string, torch::Tensor>& w) {
  nn::T5Model model(c);
  torch::NoGradGuard no_grad;
  auto params = model->named_parameters();
  for (const auto& spec : hf_t5_tensors(c)) params[spec.name].copy_(w.at(spec.name));
  model->eval();
  return model;
}

struct Batch {
  torch::Tensor ids, mask, labels, dec;
};

// Three rows, two of them padded, one label row mostly -100.
Batch umt5_batch(const T5Config& c, int64_t src, int64_t tgt) {
  torch::manual_seed(11);
  Batch b;
  b.ids = torch::randint(3, c.vocab_size, {3, src}, torch::kLong);
  b.mask = torch::ones({3, src}, torch::kLong);
  b.mask[1].narrow(0, src - 2, 2).fill_(0);
  b.mask[2].narrow(0, 1, src - 1).fill_(0);
  b.ids.masked_fill_(b.mask == 0, 0);
  b.labels = torch::randint(2, c.vocab_size, {3, tgt}, torch::kLong);
  b.labels[2].narrow(0, 1, tgt - 1).fill_(-100);
  b.dec = testing::naive_shift_right(b.labels, c.decoder_start_token_id, c.pad_token_id);
  return b;
}

TEST(UMT5, HfNameTableHasABiasInEverySelfAttention) {
  const T5Config c = umt5_config();
  std::vector<std::string> biases;
  for (const auto& s : hf_t5_tensors(c))
    if (s.name.find("relative_attention_bias") != std::string::npos) {
      biases.push_back(s.name);
      EXPECT_EQ(s.shape, (std::vector<int64_t>{8, 4})) << s.name;
    }
  const std::vector<std::string> want = {
      "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
      "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight",
      "encoder.block.2.layer.0.SelfAttention.relative_attention_bias.weight",
      "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
      "decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"};
  EXPECT_EQ(biases, want);
  // T5 and mT5 of the same shape: block 0 only; the rest of the table is the same.
  for (const char* type : {"t5", "mt5"}) {
    T5Config t = c;
    t.model_type = type;
    int64_t n = 0;
    for (const auto& s : hf_t5_tensors(t))
      n += s.name.find("relative_attention_bias") != std::string::npos;
    EXPECT_EQ(n, 2) << type;
    EXPECT_EQ(hf_t5_tensors(t).size() + 3, hf_t5_tensors(c).size()) << type;
  }
  // The model's parameters are exactly the table's.
  nn::T5Model model(c);
  EXPECT_EQ(model->named_parameters().size(), hf_t5_tensors(c).size());
}

// The oracle itself: a UMT5 whose later biases equal block 0's is a T5 (the T5 oracle is checked
// against Hugging Face's outputs in naive_t5_test.cpp); with their own biases it is not.
TEST(UMT5, OracleWithSharedBiasesIsT5) {
  const T5Config u = umt5_config();
  T5Config t = u;
  t.model_type = "t5";
  auto w = naive_random_t5_weights(u, 5);
  const Batch b = umt5_batch(u, 7, 5);
  const auto with_own = naive_t5_forward(u, w, b.ids, b.mask, b.dec, b.labels);
  for (const char* stack : {"encoder", "decoder"})
    for (int64_t i = 1; i < (stack[0] == 'e' ? u.num_layers : u.decoder_layers()); ++i)
      w[cat(stack, ".block.", i, ".layer.0.SelfAttention.relative_attention_bias.weight")] =
          w.at(cat(stack, ".block.0.layer.0.SelfAttention.relative_attention_bias.weight"));
  const auto shared_u = naive_t5_forward(u, w, b.ids, b.mask, b.dec, b.labels);
  const auto as_t5 = naive_t5_forward(t, w, b.ids, b.mask, b.dec, b.labels);
  EXPECT_EQ(shared_u.logits, as_t5.logits);
  EXPECT_EQ(shared_u.encoder_last_hidden_state, as_t5.encoder_last_hidden_state);
  double most = 0;
  for (size_t i = 0; i < with_own.logits.size(); ++i)
    most = std::max(most, std::abs(with_own.logits[i] - as_t5.logits[i]));
  EXPECT_GT(most, 1e-3);  // the per-layer biases matter
}

TEST(UMT5, MatchesNaiveReference) {
  struct Case {
    std::string name;
    std::function<void(T5Config&)> edit;
    int64_t src, tgt;
  };
  const std::vector<Case> cases = {
      {"gated-gelu, untied, 3 + 2 layers", [](T5Config&) {}, 9, 6},
      {"relu, tied head (d_model^-0.5 scaling)",
       [](T5Config& c) {
         c.feed_forward_proj = "relu";
         c.tie_word_embeddings = true;
       },
       6, 5},
      {"long sequences past max_distance",
       [](T5Config& c) {
         c.relative_attention_num_buckets = 6;
         c.relative_attention_max_distance = 5;
         c.num_decoder_layers = 4;
       },
       21, 17},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.name);
    T5Config c = umt5_config();
    k.edit(c);
    const auto w = naive_random_t5_weights(c, 1234);
    const Batch b = umt5_batch(c, k.src, k.tgt);
    const auto ref = naive_t5_forward(c, w, b.ids, b.mask, b.dec, b.labels);
    torch::NoGradGuard no_grad;
    auto model = umt5_model(c, w);
    auto out = model->forward(b.ids, b.mask, b.dec, b.labels);
    EXPECT_TENSOR_NEAR(out.logits, umt5_tensor(ref.logits, ref.logits_shape), 2e-5);
    EXPECT_TENSOR_NEAR(out.encoder_last_hidden_state,
                       umt5_tensor(ref.encoder_last_hidden_state, ref.encoder_shape), 2e-5);
    EXPECT_NEAR(out.loss.item<double>(), ref.loss, 2e-5);
    // In double precision the two agree to rounding.
    model->to(torch::kDouble);
    auto out64 = model->forward(b.ids, b.mask, b.dec, b.labels);
    EXPECT_TENSOR_NEAR(out64.logits, umt5_tensor(ref.logits, ref.logits_shape), 1e-10);
    // Read as a T5 (block 0's bias everywhere), the same weights give other logits.
    T5Config as_t5 = c;
    as_t5.model_type = "t5";
    std::map<std::string, torch::Tensor> t5_weights;
    for (const auto& s : hf_t5_tensors(as_t5)) t5_weights[s.name] = w.at(s.name);
    auto t5 = umt5_model(as_t5, t5_weights);
    EXPECT_GT((t5->forward(b.ids, b.mask, b.dec, b.labels).logits.to(torch::kDouble) - out64.logits)
                  .abs()
                  .max()
                  .item<double>(),
              1e-3);
  }
}

// The incremental decoder (one position at a time, with caches) gives the full pass's logits:
// each block's bias is taken at the right query offset.
TEST(UMT5, IncrementalDecodingEqualsFullPass) {
  const T5Config c = umt5_config();
  const auto w = naive_random_t5_weights(c, 77);
  auto model = umt5_model(c, w);
  const Batch b = umt5_batch(c, 8, 7);
  torch::NoGradGuard no_grad;
  const torch::Tensor full = model->forward(b.ids, b.mask, b.dec, {}).logits;
  auto [enc, enc_mask] = model->encoder->encode(b.ids, b.mask);
  nn::DecoderCache cache;
  std::vector<torch::Tensor> steps;
  for (int64_t t = 0; t < b.dec.size(1); ++t) {
    torch::Tensor h = model->decoder->decode(b.dec.narrow(1, t, 1), enc, enc_mask, &cache);
    steps.push_back(model->lm_head->forward(h));
  }
  EXPECT_TENSOR_NEAR(torch::cat(steps, 1), full, 1e-5);
  // Two positions at once after a one-position prefix (a causal block with an offset).
  nn::DecoderCache cache2;
  torch::Tensor first = model->decoder->decode(b.dec.narrow(1, 0, 1), enc, enc_mask, &cache2);
  torch::Tensor next = model->decoder->decode(b.dec.narrow(1, 1, 2), enc, enc_mask, &cache2);
  EXPECT_TENSOR_NEAR(model->lm_head->forward(next), full.narrow(1, 1, 2), 1e-5);
}

// ---- config.json: model_type --------------------------------------------------------------

nlohmann::json umt5_config_json(const std::string& model_type) {
  T5Config c = umt5_config();
  nlohmann::json j = t5_config_to_json(c);
  if (model_type.empty())
    j.erase("model_type");
  else
    j["model_type"] = model_type;
  return j;
}

TEST(ModelType, ReadAndWritten) {
  EXPECT_EQ(t5_config_from_json(umt5_config_json("umt5"), "x").model_type, "umt5");
  EXPECT_EQ(t5_config_from_json(umt5_config_json("mt5"), "x").model_type, "mt5");
  EXPECT_EQ(t5_config_from_json(umt5_config_json("t5"), "x").model_type, "t5");
  EXPECT_EQ(t5_config_from_json(umt5_config_json(""), "x").model_type, "t5");  // absent: t5
  EXPECT_TRUE(t5_config_from_json(umt5_config_json("umt5"), "x").per_layer_position_bias());
  EXPECT_FALSE(t5_config_from_json(umt5_config_json("mt5"), "x").per_layer_position_bias());
  T5Config c = umt5_config();
  EXPECT_EQ(t5_config_to_json(c)["architectures"],
            nlohmann::json({"UMT5ForConditionalGeneration"}));
  EXPECT_EQ(t5_config_to_json(c)["model_type"], "umt5");
  c.model_type = "mt5";
  EXPECT_EQ(t5_config_to_json(c)["architectures"], nlohmann::json({"MT5ForConditionalGeneration"}));
  c.model_type = "t5";
  EXPECT_EQ(t5_config_to_json(c)["architectures"], nlohmann::json({"T5ForConditionalGeneration"}));
  EXPECT_EQ(supported_model_types(), "t5, mt5, umt5");
}

TEST(ModelType, OthersAreRefusedByName) {
  for (const char* type : {"longt5", "switch_transformers", "bart", "T5", ""}) {
    SCOPED_TRACE(type);
    nlohmann::json j = umt5_config_json("t5");
    j["model_type"] = type;
    try {
      t5_config_from_json(j, "DIR/config.json");
      ADD_FAILURE() << "expected a refusal";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), cat("model_type \"", type,
                                           "\" in DIR/config.json: not supported; supported: t5, "
                                           "mt5, umt5"));
    }
  }
  // A LongT5 config lacks nothing we read, but its type comes first anyway; a non-string type
  // is named too.
  nlohmann::json j = umt5_config_json("longt5");
  j.erase("d_model");
  EXPECT_THROW(
      {
        try {
          t5_config_from_json(j, "c.json");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("model_type \"longt5\""), std::string::npos);
          throw;
        }
      },
      Error);
  j["model_type"] = 5;
  try {
    t5_config_from_json(j, "c.json");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model_type"), std::string::npos) << e.what();
  }
  T5Config c;
  c.model_type = "longt5";
  EXPECT_THROW(c.validate(), Error);
  EXPECT_THROW(nn::T5Model{c}, Error);
}

// ---- folders ------------------------------------------------------------------------------

TEST(UMT5Checkpoint, SaveLoadRoundTripAndLongT5Refused) {
  testing::TempDir tmp;
  nn::T5Model model(umt5_config());
  model->init_weights(4);
  nn::save_t5(*model, tmp.path());
  const auto cfg = nlohmann::json::parse(testing::read_file(tmp.file("config.json")));
  EXPECT_EQ(cfg["model_type"], "umt5");
  auto loaded = nn::load_t5(tmp.path());
  EXPECT_TRUE(loaded.unexpected.empty());
  EXPECT_EQ(loaded.model->config().model_type, "umt5");
  auto a = model->named_parameters(), b = loaded.model->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();
  ASSERT_TRUE(b.contains("decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"));

  // The same folder typed longt5: refused before any weight is read, naming the type and file.
  auto j = cfg;
  j["model_type"] = "longt5";
  testing::write_file(tmp.file("config.json"), j.dump());
  try {
    nn::load_t5(tmp.path());
    ADD_FAILURE() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "model_type \"longt5\" in " + tmp.path() +
                                         "/config.json: not supported; supported: t5, mt5, umt5");
  }
}

// A UMT5 checkpoint whose config says t5 (or has no model_type) would silently lose its later
// biases: refused, naming the tensor and the type.
TEST(UMT5Checkpoint, PerLayerBiasesUnderAT5ConfigAreRefused) {
  testing::TempDir tmp;
  nn::T5Model model(umt5_config());
  model->init_weights(4);
  nn::save_t5(*model, tmp.path());
  for (const std::string type : {"t5", ""}) {
    SCOPED_TRACE(type);
    auto j = nlohmann::json::parse(testing::read_file(tmp.file("config.json")));
    if (type.empty())
      j.erase("model_type");
    else
      j["model_type"] = type;
    testing::write_file(tmp.file("config.json"), j.dump());
    try {
      nn::load_t5(tmp.path());
      ADD_FAILURE() << "expected a refusal";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("coder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"),
                std::string::npos)
          << m;
      EXPECT_NE(m.find("model_type \"t5\""), std::string::npos) << m;
      EXPECT_NE(m.find("umt5"), std::string::npos) << m;
    }
  }
}

// `compacter forward` on a UMT5 folder (config.json with "model_type": "umt5") gives the
// oracle's logits.
TEST(UMT5Checkpoint, ForwardCommandMatchesNaiveReference) {
  testing::TempDir tmp;
  const T5Config c = umt5_config();
  const auto w = naive_random_t5_weights(c, 99);
  std::vector<std::pair<std::string, torch::Tensor>> tensors(w.begin(), w.end());
  std::filesystem::create_directories(tmp.file("model"));
  safetensors::save(tmp.file("model/model.safetensors"), tensors);
  testing::write_file(tmp.file("model/config.json"), t5_config_to_json(c).dump(2));
  const Batch b = umt5_batch(c, 6, 4);
  safetensors::save(tmp.file("in.safetensors"), {{"input_ids", b.ids},
                                                 {"attention_mask", b.mask},
                                                 {"decoder_input_ids", b.dec},
                                                 {"labels", b.labels}});
  auto r =
      testing::run_compacter("forward --model " + tmp.file("model") + " --inputs " +
                             tmp.file("in.safetensors") + " --out " + tmp.file("out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("ignored"), std::string::npos) << r.err;
  auto out = testing::raw_load_safetensors(tmp.file("out.safetensors"));
  const auto ref = naive_t5_forward(c, w, b.ids, b.mask, b.dec, b.labels);
  EXPECT_TENSOR_NEAR(out.at("logits"), umt5_tensor(ref.logits, ref.logits_shape), 2e-5);
  EXPECT_NEAR(out.at("loss").item<double>(), ref.loss, 2e-5);
}

}  // namespace
}  // namespace compacter
