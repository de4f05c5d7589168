// PEFT adapter folders (interop/peft_format.h) against PEFT's documented layout, written here by
// hand (not by our exporter): a LoRA / (IA)^3 folder imported onto the tiny T5 of ../shared gives
// the logits of a plain model whose weights were changed as PEFT's layers compute them (W +
// (lora_alpha / r) B A; k, v rows and wo columns scaled); prompt tuning keeps the encoder's rows;
// export writes PEFT's key names and config fields; export -> import and import -> export give
// bit-identical tensors; what PEFT can express and we cannot is refused, naming file and field.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/interop/peft_format.h"
#include "compacter/io/safetensors.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/tensor_near.h"
#include "support/test_support.h"

namespace compacter::interop::peft_format_test {
namespace {

namespace fs = std::filesystem;
using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

const char* kTiny = "data/tiny-t5";
constexpr int64_t kByteRows = 384;  // the byte-level tokenizer's ids: the base is cut to them

// The attention paths of the tiny T5 (2 + 2 blocks), as PEFT names modules.
std::vector<std::string> attentions() {
  return {"encoder.block.0.layer.0.SelfAttention", "encoder.block.1.layer.0.SelfAttention",
          "decoder.block.0.layer.0.SelfAttention", "decoder.block.0.layer.1.EncDecAttention",
          "decoder.block.1.layer.0.SelfAttention", "decoder.block.1.layer.1.EncDecAttention"};
}
std::vector<std::string> feed_forwards() {
  return {"encoder.block.0.layer.1.DenseReluDense", "encoder.block.1.layer.1.DenseReluDense",
          "decoder.block.0.layer.2.DenseReluDense", "decoder.block.1.layer.2.DenseReluDense"};
}

void write_peft(const std::string& dir, const nlohmann::json& config, const Tensors& tensors) {
  fs::create_directories(dir);
  testing::write_file(dir + "/adapter_config.json", config.dump(2));
  safetensors::save(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
}

ImportOptions import_options(const std::string& dir, const std::string& out) {
  ImportOptions o;
  o.dir = dir;
  o.base.dir = testing::shared_path(kTiny);
  o.base.tokenizer = "byte";
  o.out = out;
  return o;
}

nn::T5Model base_model() {
  nn::T5Model m = nn::load_t5(testing::shared_path(kTiny)).model;
  m->resize_vocab(kByteRows);
  m->eval();
  return m;
}

torch::Tensor logits_of(nn::T5ModelImpl& model) {
  torch::NoGradGuard no_grad;
  const torch::Tensor ids =
      torch::tensor({{13, 58, 211, 7, 304, 1}, {99, 3, 301, 1, 0, 0}}, torch::kLong);
  const torch::Tensor labels = torch::tensor({{31, 250, 1}, {77, 1, -100}}, torch::kLong);
  return model.forward(ids, (ids != 0).to(torch::kLong), {}, labels).logits;
}

torch::Tensor& weight(nn::T5ModelImpl& model, const std::string& name) {
  torch::Tensor* t = model.named_parameters(true).find(name);
  EXPECT_NE(t, nullptr) << name;
  return *t;
}

Tensors read_all(const std::string& file) {
  Tensors out;
  const safetensors::File f = safetensors::File::open(file);
  for (const auto& info : f.header().tensors) out.emplace_back(info.name, f.load(info.name));
  return out;
}

void expect_same_tensors(const Tensors& a, const Tensors& b) {
  std::map<std::string, torch::Tensor> mb(b.begin(), b.end());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(mb.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, mb[name])) << name;
  }
}

nlohmann::json lora_config() {
  return {{"peft_type", "LORA"},
          {"task_type", "SEQ_2_SEQ_LM"},
          {"r", 2},
          {"lora_alpha", 6},
          {"lora_dropout", 0.1},
          {"target_modules", {"q", "v"}},
          {"bias", "none"},
          {"fan_in_fan_out", false},
          {"modules_to_save", nullptr},
          {"init_lora_weights", true},
          {"use_rslora", false},
          {"use_dora", false},
          {"rank_pattern", nlohmann::json::object()},
          {"alpha_pattern", nlohmann::json::object()},
          {"layers_to_transform", nullptr},
          {"base_model_name_or_path", "tiny-t5"}};
}

Tensors lora_tensors() {
  torch::manual_seed(21);
  Tensors t;
  for (const std::string& a : attentions())
    for (const char* m : {"q", "v"}) {
      const std::string p = "base_model.model." + a + "." + m;
      t.emplace_back(p + ".lora_A.weight", torch::randn({2, 64}) * 0.3);
      t.emplace_back(p + ".lora_B.weight", torch::randn({64, 2}) * 0.3);
    }
  return t;
}

TEST(PeftFormat, ImportedLoraComputesWPlusAlphaOverRBA) {
  REQUIRE_SHARED(kTiny);
  testing::TempDir dir;
  const Tensors tensors = lora_tensors();
  write_peft(dir.file("peft"), lora_config(), tensors);
  const InteropReport r = import_peft(import_options(dir.file("peft"), dir.file("ours")));
  EXPECT_EQ(r.method, "lora");
  const peft::AdapterSpec spec = peft::read_adapter_spec(dir.file("ours"));
  EXPECT_EQ(spec.method, "lora");
  EXPECT_EQ(spec.options.rank, 2);
  EXPECT_EQ(spec.options.lora_alpha, 6.0);
  EXPECT_EQ(spec.options.lora_dropout, 0.1);
  EXPECT_EQ(spec.options.target_modules, "q,v");

  nn::T5Model adapted = base_model();
  peft::load_adapter(*adapted, dir.file("ours"));
  adapted->eval();
  nn::T5Model plain = base_model();
  {
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> t(tensors.begin(), tensors.end());
    for (const std::string& a : attentions())
      for (const char* m : {"q", "v"}) {
        const std::string p = "base_model.model." + a + "." + m;
        weight(*plain, a + "." + m + ".weight") +=
            (6.0 / 2.0) * torch::mm(t[p + ".lora_B.weight"], t[p + ".lora_A.weight"]);
      }
  }
  const torch::Tensor want = logits_of(*plain);
  EXPECT_TENSOR_NEAR(logits_of(*adapted), want, 1e-5);
  EXPECT_GT((logits_of(*base_model()) - want).abs().max().item<double>(), 1e-3);

  // Back out: PEFT's tensors bit for bit.
  export_peft({dir.file("ours"), "", dir.file("again"), false});
  expect_same_tensors(read_all(dir.file("again/adapter_model.safetensors")), tensors);
}

// Rank-stabilised LoRA: PEFT scales by lora_alpha / sqrt(r).
TEST(PeftFormat, ImportedRsLoraScalesByAlphaOverSqrtR) {
  REQUIRE_SHARED(kTiny);
  testing::TempDir dir;
  const Tensors tensors = lora_tensors();
  nlohmann::json config = lora_config();
  config["use_rslora"] = true;
  write_peft(dir.file("peft"), config, tensors);
  const InteropReport r = import_peft(import_options(dir.file("peft"), dir.file("ours")));
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("use_rslora"), std::string::npos) << r.notes[0];
  nn::T5Model adapted = base_model();
  peft::load_adapter(*adapted, dir.file("ours"));
  adapted->eval();
  nn::T5Model plain = base_model();
  {
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> t(tensors.begin(), tensors.end());
    for (const std::string& a : attentions())
      for (const char* m : {"q", "v"}) {
        const std::string p = "base_model.model." + a + "." + m;
        weight(*plain, a + "." + m + ".weight") +=
            (6.0 / std::sqrt(2.0)) * torch::mm(t[p + ".lora_B.weight"], t[p + ".lora_A.weight"]);
      }
  }
  // fp32: the hook's x A^T B^T against x (W + s B A)^T, the merged weight rounded once more (up
  // to 2.0e-5 on logits of about 1 was seen; 3.5e-5 with OpenBLAS's generic Prescott kernels, its
  // default on a Xeon of family 6, model 207, where the tests run without the launcher's choice).
  EXPECT_TENSOR_NEAR(logits_of(*adapted), logits_of(*plain), 6e-5);
}

TEST(PeftFormat, ExportWritesPeftsNamesAndConfig) {
  REQUIRE_SHARED(kTiny);
  testing::TempDir dir;
  // Ours: LoRA r = 8 on q, v (PEFT's defaults), moved from its init.
  nn::T5Model model = base_model();
  const peft::PeftOptions o = peft::method_defaults("lora");
  peft::attach("lora", o, *model, 3);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(5);
    for (auto& p : peft::trainable_parameters(*model)) p.add_(torch::randn_like(p) * 0.1);
  }
  peft::save_adapter(*model, {"lora", o, 3}, dir.file("ours"), {{"base", {{"name", "tiny-t5"}}}});
  const InteropReport r = export_peft({dir.file("ours"), "", dir.file("peft"), false});
  EXPECT_EQ(r.method, "lora");

  std::set<std::string> want;
  for (const std::string& a : attentions())
    for (const char* m : {"q", "v"})
      for (const char* f : {"lora_A", "lora_B"})
        want.insert("base_model.model." + a + "." + m + "." + f + ".weight");
  const safetensors::File file =
      safetensors::File::open(dir.file("peft/adapter_model.safetensors"));
  std::set<std::string> got;
  for (const auto& t : file.header().tensors) {
    got.insert(t.name);
    EXPECT_EQ(t.dtype, safetensors::DType::F32);
    const bool a = t.name.find(".lora_A.") != std::string::npos;
    const std::vector<int64_t> shape =
        a ? std::vector<int64_t>{8, 64} : std::vector<int64_t>{64, 8};
    EXPECT_EQ(t.shape, shape) << t.name;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(file.header().metadata.at("format"), "pt");

  std::ifstream in(dir.file("peft/adapter_config.json"));
  const nlohmann::json c = nlohmann::json::parse(in);
  EXPECT_EQ(c.at("peft_type"), "LORA");
  EXPECT_EQ(c.at("task_type"), "SEQ_2_SEQ_LM");
  EXPECT_EQ(c.at("base_model_name_or_path"), "tiny-t5");
  EXPECT_EQ(c.at("r"), 8);
  EXPECT_EQ(c.at("lora_alpha"), 16);
  EXPECT_EQ(c.at("lora_dropout"), 0);
  EXPECT_EQ(c.at("target_modules"), nlohmann::json({"q", "v"}));
  EXPECT_EQ(c.at("bias"), "none");
  EXPECT_EQ(c.at("fan_in_fan_out"), false);
  EXPECT_EQ(c.at("use_rslora"), false);
  EXPECT_EQ(c.at("use_dora"), false);
  EXPECT_TRUE(c.at("modules_to_save").is_null());

  // And back in: the same tensors, and the same logits.
  import_peft(import_options(dir.file("peft"), dir.file("back")));
  expect_same_tensors(read_all(dir.file("back/adapter_model.safetensors")),
                      read_all(dir.file("ours/adapter_model.safetensors")));
  nn::T5Model again = base_model();
  peft::load_adapter(*again, dir.file("back"));
  again->eval();
  model->eval();
  EXPECT_TRUE(torch::equal(logits_of(*again), logits_of(*model)));
}

TEST(PeftFormat, ImportedIa3ScalesKVOutputsAndWoInputs) {
  REQUIRE_SHARED(kTiny);
  testing::TempDir dir;
  torch::manual_seed(8);
  Tensors tensors;
  for (const std::string& a : attentions())
    for (const char* m : {"k", "v"})
      tensors.emplace_back("base_model.model." + a + "." + m + ".ia3_l",
                           1.0 + 0.3 * torch::randn({64, 1}));
  for (const std::string& f : feed_forwards())
    tensors.emplace_back("base_model.model." + f + ".wo.ia3_l", 1.0 + 0.3 * torch::randn({1, 128}));
  const nlohmann::json config = {{"peft_type", "IA3"},
                                 {"task_type", "SEQ_2_SEQ_LM"},
                                 {"target_modules", {"k", "v", "wo"}},
                                 {"feedforward_modules", {"wo"}},
                                 {"fan_in_fan_out", false},
                                 {"modules_to_save", nullptr},
                                 {"init_ia3_weights", true}};
  write_peft(dir.file("peft"), config, tensors);
  EXPECT_EQ(import_peft(import_options(dir.file("peft"), dir.file("ours"))).method, "ia3");
  nn::T5Model adapted = base_model();
  peft::load_adapter(*adapted, dir.file("ours"));
  adapted->eval();
  nn::T5Model plain = base_model();
  {
    torch::NoGradGuard no_grad;
    std::map<std::string, torch::Tensor> t(tensors.begin(), tensors.end());
    for (const std::string& a : attentions())
      for (const char* m : {"k", "v"}) {
        torch::Tensor& w = weight(*plain, a + "." + m + ".weight");  // [out, in]: scale rows
        w.mul_(t["base_model.model." + a + "." + m + ".ia3_l"]);
      }
    for (const std::string& f : feed_forwards()) {
      torch::Tensor& w = weight(*plain, f + ".wo.weight");  // [d_model, d_ff]: scale columns
      w.mul_(t["base_model.model." + f + ".wo.ia3_l"]);
    }
  }
  EXPECT_TENSOR_NEAR(logits_of(*adapted), logits_of(*plain), 1e-5);
  export_peft({dir.file("ours"), "", dir.file("again"), false});
  expect_same_tensors(read_all(dir.file("again/adapter_model.safetensors")), tensors);
  std::ifstream in(dir.file("again/adapter_config.json"));
  const nlohmann::json c = nlohmann::json::parse(in);
  EXPECT_EQ(c.at("peft_type"), "IA3");
  EXPECT_EQ(c.at("target_modules"), nlohmann::json({"k", "v", "wo"}));
  EXPECT_EQ(c.at("feedforward_modules"), nlohmann::json({"wo"}));

  // k marked feed-forward: PEFT would scale its input; refused by name.
  nlohmann::json bad = config;
  bad["feedforward_modules"] = {"k", "wo"};
  write_peft(dir.file("bad"), bad, tensors);
  try {
    import_peft(import_options(dir.file("bad"), dir.file("bad-out")));
    ADD_FAILURE() << "imported";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("adapter_config.json"), std::string::npos) << m;
    EXPECT_NE(m.find("feedforward_modules"), std::string::npos) << m;
    EXPECT_NE(m.find("SelfAttention.k"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(dir.file("bad-out")));
}

TEST(PeftFormat, PromptTuningKeepsTheEncodersRows) {
  REQUIRE_SHARED(kTiny);
  testing::TempDir dir;
  // The encoder's 5 rows are the embeddings of tokens 5, 9, 11, 2, 7; the decoder's 5 (which
  // PEFT's seq2seq prompt tuning never reads) are noise.
  const std::vector<int64_t> prompt_ids = {5, 9, 11, 2, 7};
  nn::T5Model plain = base_model();
  torch::manual_seed(9);
  const torch::Tensor rows =
      torch::cat({plain->shared->weight.detach().index_select(0, torch::tensor(prompt_ids)),
                  torch::randn({5, 64})});
  const nlohmann::json config = {{"peft_type", "PROMPT_TUNING"},
                                 {"task_type", "SEQ_2_SEQ_LM"},
                                 {"num_virtual_tokens", 5},
                                 {"token_dim", 64},
                                 {"num_transformer_submodules", 2},
                                 {"num_attention_heads", 4},
                                 {"num_layers", 2},
                                 {"prompt_tuning_init", "RANDOM"}};
  write_peft(dir.file("peft"), config, {{"prompt_embeddings", rows}});
  const InteropReport r = import_peft(import_options(dir.file("peft"), dir.file("ours")));
  EXPECT_EQ(r.method, "prompt-r");
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("dropped"), std::string::npos) << r.notes[0];
  const Tensors ours = read_all(dir.file("ours/adapter_model.safetensors"));
  ASSERT_EQ(ours.size(), 1u);
  EXPECT_EQ(ours[0].first, "encoder.prompt.weight");
  EXPECT_TRUE(torch::equal(ours[0].second, rows.narrow(0, 0, 5)));
  EXPECT_EQ(peft::read_adapter_spec(dir.file("ours")).options.prompt_length, 5);
  // PEFT's forward: the prompt rows before the input's embeddings, ones in the mask; so the
  // prompt model on X equals the plain model on the prompt's tokens followed by X.
  {
    nn::T5Model adapted = base_model();
    peft::load_adapter(*adapted, dir.file("ours"));
    adapted->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor ids = torch::tensor({{13, 58, 211, 1}, {99, 3, 1, 0}}, torch::kLong);
    const torch::Tensor mask = (ids != 0).to(torch::kLong);
    const torch::Tensor labels = torch::tensor({{31, 250, 1}, {77, 1, -100}}, torch::kLong);
    const torch::Tensor prefix = torch::tensor(prompt_ids).unsqueeze(0).expand({2, 5});
    const torch::Tensor want =
        plain
            ->forward(torch::cat({prefix, ids}, 1),
                      torch::cat({torch::ones({2, 5}, torch::kLong), mask}, 1), {}, labels)
            .logits;
    EXPECT_TENSOR_NEAR(adapted->forward(ids, mask, {}, labels).logits, want, 1e-5);
  }

  export_peft({dir.file("ours"), "", dir.file("again"), false});
  const Tensors again = read_all(dir.file("again/adapter_model.safetensors"));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].first, "prompt_embeddings");
  EXPECT_TRUE(torch::equal(again[0].second, rows.narrow(0, 0, 5)));
  std::ifstream in(dir.file("again/adapter_config.json"));
  const nlohmann::json c = nlohmann::json::parse(in);
  EXPECT_EQ(c.at("peft_type"), "PROMPT_TUNING");
  EXPECT_EQ(c.at("num_virtual_tokens"), 5);
  EXPECT_EQ(c.at("num_transformer_submodules"), 1);
  EXPECT_EQ(c.at("token_dim"), 64);
  EXPECT_EQ(c.at("num_attention_heads"), 4);
  EXPECT_EQ(c.at("num_layers"), 2);
  // ... which imports to the same prompt again, with nothing dropped.
  EXPECT_TRUE(import_peft(import_options(dir.file("again"), dir.file("ours2"))).notes.empty());
  expect_same_tensors(read_all(dir.file("ours2/adapter_model.safetensors")), ours);
}

// Imports `config` / `tensors`; expects an Error whose message holds every one of `parts`, and
// no output folder.
void expect_refused(const nlohmann::json& config, const Tensors& tensors,
                    const std::vector<std::string>& parts) {
  testing::TempDir dir;
  write_peft(dir.file("peft"), config, tensors);
  try {
    import_peft(import_options(dir.file("peft"), dir.file("out")));
    ADD_FAILURE() << "imported " << config.dump();
  } catch (const UsageError& e) {
    ADD_FAILURE() << "a usage error: " << e.what();
  } catch (const Error& e) {
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\n  lacks " << p;
  }
  EXPECT_FALSE(fs::exists(dir.file("out")));
}

TEST(PeftFormat, RefusesWhatOursCannotRepresent) {
  REQUIRE_SHARED(kTiny);
  const Tensors t = lora_tensors();
  auto with = [](const char* key, const nlohmann::json& value) {
    nlohmann::json c = lora_config();
    c[key] = value;
    return c;
  };
  expect_refused(with("peft_type", "PREFIX_TUNING"), t, {"adapter_config.json", "PREFIX_TUNING"});
  expect_refused(with("use_dora", true), t, {"adapter_config.json", "use_dora"});
  expect_refused(with("layers_to_transform", {0}), t, {"layers_to_transform"});
  expect_refused(with("modules_to_save", {"lm_head"}), t, {"modules_to_save"});
  expect_refused(with("init_lora_weights", "pissa"), t, {"init_lora_weights", "base"});
  expect_refused(with("rank_pattern", {{"q", 4}}), t, {"rank_pattern"});
  expect_refused(with("r", 3), t, {"adapter_model.safetensors", "lora_A.weight", "r = 3"});
  nlohmann::json no_type = lora_config();
  no_type.erase("peft_type");
  expect_refused(no_type, t, {"adapter_config.json", "peft_type"});

  Tensors head = t;
  head.emplace_back("base_model.model.lm_head.lora_A.weight", torch::zeros({2, 64}));
  expect_refused(lora_config(), head, {"adapter_model.safetensors", "lm_head", "linear layer"});
  Tensors embedding = t;
  embedding.emplace_back("base_model.model.shared.lora_embedding_A", torch::zeros({2, 512}));
  expect_refused(lora_config(), embedding, {"adapter_model.safetensors", "lora_embedding_A"});
  Tensors some;  // only the encoder's q: ours puts LoRA on every q
  for (const auto& [k, v] : t)
    if (k.find("encoder.block.0") != std::string::npos) some.emplace_back(k, v);
  expect_refused(lora_config(), some, {"adapter_model.safetensors", "every one"});

  nlohmann::json prompt = {
      {"peft_type", "PROMPT_TUNING"}, {"task_type", "CAUSAL_LM"}, {"num_virtual_tokens", 2}};
  expect_refused(prompt, {{"prompt_embeddings", torch::zeros({2, 64})}},
                 {"task_type", "SEQ_2_SEQ_LM"});

  // No config at all, and no folder at all.
  testing::TempDir dir;
  fs::create_directories(dir.file("empty"));
  try {
    import_peft(import_options(dir.file("empty"), dir.file("out")));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty/adapter_config.json: not found"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(import_peft(import_options(dir.file("none"), dir.file("out"))), Error);
}

TEST(PeftFormat, ExportRefusesMethodsPeftHasNot) {
  REQUIRE_SHARED(kTiny);
  testing::TempDir dir;
  for (const std::string method : {"bitfit", "compacter"}) {
    nn::T5Model model = base_model();
    peft::PeftOptions o = peft::method_defaults(method);
    o.reduction_factor = 16;  // d = 4, divisible by n = 4
    peft::attach(method, o, *model, 1);
    peft::save_adapter(*model, {method, o, 1}, dir.file(method));
    try {
      export_peft({dir.file(method), "", dir.file(method + "-peft"), false});
      ADD_FAILURE() << method;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("method " + method), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir.file(method + "-peft")));
  }
  // LoRA that also trains T5's layer norms.
  nn::T5Model model = base_model();
  peft::PeftOptions o = peft::method_defaults("lora");
  o.train_layer_norms = true;
  peft::attach("lora", o, *model, 1);
  peft::save_adapter(*model, {"lora", o, 1}, dir.file("lora-norms"));
  try {
    export_peft({dir.file("lora-norms"), "", dir.file("out"), false});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train_layer_norms"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace compacter::interop::peft_format_test
