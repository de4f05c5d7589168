// AdapterHub folders (interop/adapterhub_format.h) against the `adapters` library's layout as its
// source defines it (BnConfig's fields, T5AdapterModel's state-dict names), written out here by
// hand: export writes exactly those names, shapes and fields; export -> import and a hand-written
// AdapterHub folder -> import -> export give bit-identical tensors and outputs; T5's trained layer
// norms travel in the documented extra file; AdapterHub's SeqBn placement and settings we cannot
// compute are refused, naming the file and the field.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "compacter/core/error.h"
#include "compacter/interop/adapterhub_format.h"
#include "compacter/io/safetensors.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/nn/hooks.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/tensor_near.h"
#include "support/test_support.h"
#include "support/tiny_t5.h"

namespace compacter::interop::adapterhub_format_test {
namespace {

namespace fs = std::filesystem;
using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

// A base with room for the byte-level tokenizer (384 ids): d_model 8, 2 + 2 blocks.
struct Base {
  testing::TempDir dir;
  Base() {
    testing::TinyT5 shape;
    shape.vocab = 400;
    nn::save_t5(*testing::tiny_t5(shape, 6), dir.file("base"));
  }
  nn::T5Model model() const {
    nn::T5Model m = nn::load_t5(dir.file("base")).model;
    m->resize_vocab(384);
    m->eval();
    return m;
  }
  ImportOptions import(const std::string& from, const std::string& out) const {
    ImportOptions o;
    o.dir = from;
    o.base.dir = dir.file("base");
    o.base.tokenizer = "byte";
    o.out = out;
    return o;
  }
};

// Saves `method` (reduction factor 2, n = 2) with its tensors moved from their init.
nn::T5Model write_ours(const Base& base, const std::string& method, const std::string& out,
                       bool layer_norm_after = false) {
  nn::T5Model model = base.model();
  peft::PeftOptions o = peft::method_defaults(method);
  o.reduction_factor = 2;
  o.n = 2;
  o.layer_norm_after = layer_norm_after;
  peft::attach(method, o, *model, 7);
  {
    torch::NoGradGuard no_grad;
    torch::manual_seed(13);
    for (auto& p : peft::trainable_parameters(*model)) p.add_(torch::randn_like(p) * 0.3);
  }
  peft::save_adapter(*model, {method, o, 7}, out, {{"task", "rte"}});
  return model;
}

Tensors read_all(const std::string& file) {
  Tensors out;
  const safetensors::File f = safetensors::File::open(file);
  for (const auto& info : f.header().tensors) out.emplace_back(info.name, f.load(info.name));
  return out;
}

std::map<std::string, std::vector<int64_t>> shapes_of(const std::string& file) {
  std::map<std::string, std::vector<int64_t>> out;
  const safetensors::File f = safetensors::File::open(file);
  for (const auto& t : f.header().tensors) out[t.name] = t.shape;
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

nlohmann::json json_of(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

torch::Tensor logits_of(nn::T5ModelImpl& model) {
  torch::NoGradGuard no_grad;
  const torch::Tensor ids = torch::tensor({{3, 7, 9, 1}, {4, 5, 1, 0}}, torch::kLong);
  const torch::Tensor labels = torch::tensor({{6, 2, 1}, {8, 1, -100}}, torch::kLong);
  return model.forward(ids, (ids != 0).to(torch::kLong), {}, labels).logits;
}

// BnConfig's fields (adapters/configuration/adapter_config.py), with AdapterConfig's
// "architecture".
const std::set<std::string> kBnConfigFields = {"architecture",
                                               "mh_adapter",
                                               "output_adapter",
                                               "reduction_factor",
                                               "non_linearity",
                                               "original_ln_before",
                                               "original_ln_after",
                                               "ln_before",
                                               "ln_after",
                                               "init_weights",
                                               "init_weights_seed",
                                               "is_parallel",
                                               "scaling",
                                               "use_gating",
                                               "residual_before_ln",
                                               "adapter_residual_before_ln",
                                               "inv_adapter",
                                               "inv_adapter_reduction_factor",
                                               "cross_adapter",
                                               "leave_out",
                                               "dropout",
                                               "phm_layer",
                                               "phm_dim",
                                               "factorized_phm_W",
                                               "shared_W_phm",
                                               "shared_phm_rule",
                                               "factorized_phm_rule",
                                               "phm_c_init",
                                               "phm_init_range",
                                               "learn_phm",
                                               "hypercomplex_nonlinearity",
                                               "phm_rank",
                                               "phm_bias",
                                               "stochastic_depth"};

TEST(AdapterHubFormat, CompacterPlusPlusIsWrittenAsAdaptersNamesIt) {
  Base base;
  nn::T5Model model = write_ours(base, "compacter++", base.dir.file("ours"));
  const InteropReport r =
      export_adapterhub({base.dir.file("ours"), "", "", base.dir.file("hub"), false});
  EXPECT_EQ(r.method, "compacter++");

  // Keys: the shared A, and per feed-forward layer (encoder layer 1, decoder layer 2) the two
  // factorised PHM layers of an adapter named after the task. d = 8 / 2 = 4, n = 2, r = 1.
  std::map<std::string, std::vector<int64_t>> want = {
      {"transformer.shared_parameters.rte.phm_rule", {2, 2, 2}}};
  for (const std::string ff : {"encoder.block.0.layer.1", "encoder.block.1.layer.1",
                               "decoder.block.0.layer.2", "decoder.block.1.layer.2"}) {
    const std::string p = "transformer." + ff + ".adapters.rte.";
    want[p + "adapter_down.0.W_left"] = {2, 4, 1};
    want[p + "adapter_down.0.W_right"] = {2, 1, 2};
    want[p + "adapter_down.0.b"] = {4};
    want[p + "adapter_up.W_left"] = {2, 2, 1};
    want[p + "adapter_up.W_right"] = {2, 1, 4};
    want[p + "adapter_up.b"] = {8};
  }
  EXPECT_EQ(shapes_of(base.dir.file("hub/adapter.safetensors")), want);

  // The config: every BnConfig field; the paper's placement (original_ln_before false).
  const nlohmann::json j = json_of(base.dir.file("hub/adapter_config.json"));
  EXPECT_EQ(j.at("name"), "rte");
  EXPECT_EQ(j.at("model_type"), "t5");
  EXPECT_EQ(j.at("model_class"), "T5AdapterModel");
  EXPECT_EQ(j.at("hidden_size"), 8);
  EXPECT_EQ(j.at("version").get<std::string>().rfind("adapters.", 0), 0u);
  const nlohmann::json& c = j.at("config");
  std::set<std::string> fields;
  for (const auto& item : c.items()) fields.insert(item.key());
  EXPECT_EQ(fields, kBnConfigFields);
  EXPECT_TRUE(c.at("architecture").is_null());
  EXPECT_EQ(c.at("mh_adapter"), false);
  EXPECT_EQ(c.at("output_adapter"), true);
  EXPECT_EQ(c.at("original_ln_before"), false);
  EXPECT_EQ(c.at("original_ln_after"), true);
  EXPECT_EQ(c.at("residual_before_ln"), true);
  EXPECT_EQ(c.at("phm_layer"), true);
  EXPECT_EQ(c.at("phm_dim"), 2);
  EXPECT_EQ(c.at("reduction_factor"), 2);
  EXPECT_EQ(c.at("shared_phm_rule"), true);
  EXPECT_EQ(c.at("factorized_phm_W"), true);
  EXPECT_EQ(c.at("non_linearity"), "gelu_new");

  // T5's layer norms (trained by default): the documented extra file, HF names.
  ASSERT_EQ(r.notes.size(), 1u);
  const auto extra = shapes_of(base.dir.file("hub/t5_trained_weights.safetensors"));
  EXPECT_EQ(extra.size(), 2u * 2 + 2u * 3 + 2u);  // block norms of both stacks + final norms
  EXPECT_EQ(extra.at("encoder.block.0.layer.0.layer_norm.weight"), (std::vector<int64_t>{8}));
  EXPECT_EQ(extra.count("decoder.final_layer_norm.weight"), 1u);

  // Back: bit-identical tensors and outputs.
  EXPECT_EQ(import_adapterhub(base.import(base.dir.file("hub"), base.dir.file("back"))).method,
            "compacter++");
  expect_same_tensors(read_all(base.dir.file("back/adapter_model.safetensors")),
                      read_all(base.dir.file("ours/adapter_model.safetensors")));
  nn::T5Model again = base.model();
  peft::load_adapter(*again, base.dir.file("back"));
  again->eval();
  model->eval();
  EXPECT_TRUE(torch::equal(logits_of(*again), logits_of(*model)));
}

TEST(AdapterHubFormat, EveryMappedMethodRoundTrips) {
  Base base;
  for (const std::string method : {"adapter", "pfeiffer", "phm", "compacter"}) {
    SCOPED_TRACE(method);
    const std::string ours = base.dir.file(method), hub = base.dir.file(method + "-hub"),
                      back = base.dir.file(method + "-back");
    write_ours(base, method, ours, /*layer_norm_after=*/method == "adapter");
    export_adapterhub({ours, "task_a", "", hub, false});
    const auto keys = shapes_of(hub + "/adapter.safetensors");
    const std::string p = "transformer.decoder.block.1.layer.0.adapters.task_a.";
    if (method == "adapter" || method == "pfeiffer") {
      EXPECT_EQ(keys.at(p + "adapter_down.0.weight"), (std::vector<int64_t>{4, 8}));
      EXPECT_EQ(keys.at(p + "adapter_up.bias"), (std::vector<int64_t>{8}));
    } else {
      EXPECT_EQ(keys.count(p + "adapter_down.0.W_left") + keys.count(p + "adapter_down.0.W"), 1u);
    }
    if (method == "adapter") {
      EXPECT_EQ(keys.at(p + "adapter_norm_after.weight"), (std::vector<int64_t>{8}));
    }
    if (method == "pfeiffer") {  // after self-attention only, as the reference code places it
      EXPECT_EQ(keys.count("transformer.decoder.block.1.layer.2.adapters.task_a.adapter_up.bias"),
                0u);
    }
    if (method == "phm") {
      EXPECT_EQ(keys.at(p + "adapter_up.phm_rule"), (std::vector<int64_t>{2, 2, 2}));
    }
    EXPECT_EQ(import_adapterhub(base.import(hub, back)).method, method);
    expect_same_tensors(read_all(back + "/adapter_model.safetensors"),
                        read_all(ours + "/adapter_model.safetensors"));
  }
}

// AdapterHub's PHMLayer computed naively from its definition (methods/modeling.py):
// W[p] = W_left[p] W_right[p], H = sum_p kronecker_product(rule[p], W[p]) with
// kronecker_product(a, b)[i K + k, j L + l] = a[i, j] b[k, l], and y = x H + b.
torch::Tensor naive_phm(const torch::Tensor& x, const torch::Tensor& rule,
                        const torch::Tensor& left, const torch::Tensor& right,
                        const torch::Tensor& bias) {
  const int64_t n = rule.size(0), K = left.size(1), L = right.size(2);
  torch::Tensor H = torch::zeros({n * K, n * L}, torch::kFloat64);
  const torch::Tensor R = rule.to(torch::kFloat64);
  auto r = R.accessor<double, 3>();
  const torch::Tensor W = torch::bmm(left.to(torch::kFloat64), right.to(torch::kFloat64));
  auto w = W.accessor<double, 3>();
  auto h = H.accessor<double, 2>();
  for (int64_t p = 0; p < n; ++p)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t l = 0; l < L; ++l) h[i * K + k][j * L + l] += r[p][i][j] * w[p][k][l];
  return (torch::matmul(x.to(torch::kFloat64), H) + bias.to(torch::kFloat64)).to(x.scalar_type());
}

// AdapterHub's Adapter in a T5 layer with original_ln_before false, residual_before_ln true,
// original_ln_after true, no layer norms (methods/modeling.py, methods/bottleneck.py): the
// sublayer output h becomes h + up(gelu(down(h))), to which the layer adds its input x.
class NaiveHubAdapter : public nn::OutputHook {
 public:
  NaiveHubAdapter(const std::map<std::string, torch::Tensor>& t, const std::string& prefix,
                  const std::string& rule)
      : t_(t), p_(prefix), rule_(rule) {}
  torch::Tensor forward(const torch::Tensor& h) override {
    const torch::Tensor down =
        naive_phm(h, t_.at(rule_), t_.at(p_ + "adapter_down.0.W_left"),
                  t_.at(p_ + "adapter_down.0.W_right"), t_.at(p_ + "adapter_down.0.b"));
    const torch::Tensor act = 0.5 * down * (1.0 + torch::erf(down / std::sqrt(2.0)));  // "gelu"
    return h + naive_phm(act, t_.at(rule_), t_.at(p_ + "adapter_up.W_left"),
                         t_.at(p_ + "adapter_up.W_right"), t_.at(p_ + "adapter_up.b"));
  }

 private:
  std::map<std::string, torch::Tensor> t_;
  std::string p_, rule_;
};

// A hand-written AdapterHub folder: T5ForConditionalGeneration's names (no "transformer."),
// CompacterConfig's fields; imported, its tensors land on ours, and export gives them back.
TEST(AdapterHubFormat, HandWrittenCompacterImports) {
  Base base;
  torch::manual_seed(17);
  Tensors t = {{"shared_parameters.x.phm_rule", torch::randn({2, 2, 2})}};
  std::vector<std::string> sites;
  for (const char* s :
       {"encoder.block.0.layer.0", "encoder.block.0.layer.1", "encoder.block.1.layer.0",
        "encoder.block.1.layer.1", "decoder.block.0.layer.0", "decoder.block.0.layer.2",
        "decoder.block.1.layer.0", "decoder.block.1.layer.2"})
    sites.push_back(s);
  for (const std::string& s : sites) {
    const std::string p = s + ".adapters.x.";
    t.emplace_back(p + "adapter_down.0.W_left", torch::randn({2, 4, 1}));
    t.emplace_back(p + "adapter_down.0.W_right", torch::randn({2, 1, 2}));
    t.emplace_back(p + "adapter_down.0.b", torch::randn({4}));
    t.emplace_back(p + "adapter_up.W_left", torch::randn({2, 2, 1}));
    t.emplace_back(p + "adapter_up.W_right", torch::randn({2, 1, 4}));
    t.emplace_back(p + "adapter_up.b", torch::randn({8}));
  }
  nlohmann::json c = {{"mh_adapter", true},
                      {"output_adapter", true},
                      {"reduction_factor", 2},
                      {"non_linearity", "gelu"},
                      {"original_ln_before", false},
                      {"original_ln_after", true},
                      {"residual_before_ln", true},
                      {"phm_layer", true},
                      {"phm_dim", 2},
                      {"shared_phm_rule", true},
                      {"factorized_phm_W", true},
                      {"phm_rank", 1},
                      {"dropout", 0.1},
                      {"learn_phm", false}};
  const nlohmann::json config = {{"config", c},
                                 {"name", "x"},
                                 {"model_type", "t5"},
                                 {"hidden_size", 8},
                                 {"version", "adapters.1.2.0"}};
  fs::create_directories(base.dir.file("hub"));
  testing::write_file(base.dir.file("hub/adapter_config.json"), config.dump());
  safetensors::save(base.dir.file("hub/adapter.safetensors"), t);
  const InteropReport r =
      import_adapterhub(base.import(base.dir.file("hub"), base.dir.file("ours")));
  EXPECT_EQ(r.method, "compacter");
  ASSERT_EQ(r.notes.size(), 2u);  // the fixed A kept, the dropout dropped
  const peft::AdapterSpec spec = peft::read_adapter_spec(base.dir.file("ours"));
  EXPECT_EQ(spec.options.non_linearity, "gelu");
  EXPECT_FALSE(spec.options.train_layer_norms);
  EXPECT_TRUE(spec.options.learn_phm);  // so that the file's A is stored, not drawn again
  std::map<std::string, torch::Tensor> ours;
  for (auto& [k, v] : read_all(base.dir.file("ours/adapter_model.safetensors"))) ours[k] = v;
  EXPECT_TRUE(torch::equal(ours.at("phm_rule"), t[0].second));
  const std::map<std::string, torch::Tensor> hub(t.begin(), t.end());
  EXPECT_TRUE(torch::equal(ours.at("decoder.block.1.layer.2.adapter.up_sampler.W_right"),
                           hub.at("decoder.block.1.layer.2.adapters.x.adapter_up.W_right")));
  EXPECT_TRUE(torch::equal(ours.at("encoder.block.0.layer.0.adapter.down_sampler.W_left"),
                           hub.at("encoder.block.0.layer.0.adapters.x.adapter_down.0.W_left")));
  // Its outputs: a plain T5 with AdapterHub's adapter computed naively after self-attention and
  // feed-forward (not after cross-attention).
  {
    nn::T5Model imported = base.model();
    peft::load_adapter(*imported, base.dir.file("ours"));
    imported->eval();
    nn::T5Model plain = base.model();
    plain->for_each_sublayer([&](const std::string& stack, int64_t block, nn::HookSite site,
                                 nn::SublayerImpl& layer) {
      if (site == nn::HookSite::kCrossAttention) return;
      const int64_t index = site == nn::HookSite::kSelfAttention ? 0 : (stack == "encoder" ? 1 : 2);
      const std::string prefix = cat(stack, ".block.", block, ".layer.", index, ".adapters.x.");
      layer.set_output_hook("adapter", std::make_shared<NaiveHubAdapter>(
                                           hub, prefix, "shared_parameters.x.phm_rule"));
    });
    plain->eval();
    EXPECT_TENSOR_NEAR(logits_of(*imported), logits_of(*plain), 1e-5);
    EXPECT_GT((logits_of(*imported) - logits_of(*base.model())).abs().max().item<double>(), 1e-3);
  }
  export_adapterhub({base.dir.file("ours"), "x", "", base.dir.file("again"), false});
  Tensors prefixed;
  for (const auto& [k, v] : t) prefixed.emplace_back("transformer." + k, v);
  expect_same_tensors(read_all(base.dir.file("again/adapter.safetensors")), prefixed);

  // Refusals, each naming the file and the field; nothing written.
  auto refused = [&](const nlohmann::json& bad_config, const std::string& field) {
    testing::write_file(base.dir.file("hub/adapter_config.json"), bad_config.dump());
    try {
      import_adapterhub(base.import(base.dir.file("hub"), base.dir.file("bad")));
      ADD_FAILURE() << field;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("adapter_config.json"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(base.dir.file("bad")));
  };
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, nlohmann::json>>{{"original_ln_before", true},
                                                           {"is_parallel", true},
                                                           {"use_gating", true},
                                                           {"scaling", 2.0},
                                                           {"leave_out", {0}},
                                                           {"cross_adapter", true},
                                                           {"reduction_factor", 1.5},
                                                           {"architecture", "lora"}}) {
    nlohmann::json bad = config;
    bad["config"][field] = value;
    refused(bad, field);
  }
  nlohmann::json dense_ff = config;  // dense adapters after the feed-forward only: none of ours
  dense_ff["config"]["phm_layer"] = false;
  dense_ff["config"]["mh_adapter"] = false;
  refused(dense_ff, "matches none of our methods");

  // A tensor of the wrong shape: the file and the tensor.
  testing::write_file(base.dir.file("hub/adapter_config.json"), config.dump());
  Tensors wrong = t;
  wrong[1].second = torch::randn({2, 3, 1});
  safetensors::save(base.dir.file("hub/adapter.safetensors"), wrong);
  try {
    import_adapterhub(base.import(base.dir.file("hub"), base.dir.file("bad")));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adapter.safetensors: tensor \"" + wrong[1].first),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(base.dir.file("bad")));
}

TEST(AdapterHubFormat, ExportRefusesWhatAdapterHubHasNot) {
  Base base;
  for (const std::string method : {"lowrank", "lora"}) {
    nn::T5Model model = base.model();
    peft::PeftOptions o = peft::method_defaults(method);
    o.reduction_factor = 2;
    peft::attach(method, o, *model, 1);
    peft::save_adapter(*model, {method, o, 1}, base.dir.file(method));
    try {
      export_adapterhub({base.dir.file(method), "", "", base.dir.file("out"), false});
      ADD_FAILURE() << method;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("method " + method), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(base.dir.file("out")));
  }
  // A fixed A (learn_phm false) is not in our file: AdapterHub would draw its own.
  nn::T5Model model = base.model();
  peft::PeftOptions o = peft::method_defaults("compacter");
  o.reduction_factor = 2;
  o.n = 2;
  o.learn_phm = false;
  peft::attach("compacter", o, *model, 1);
  peft::save_adapter(*model, {"compacter", o, 1}, base.dir.file("fixed"));
  try {
    export_adapterhub({base.dir.file("fixed"), "", "", base.dir.file("out"), false});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("learn_phm"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(base.dir.file("out")));
}

}  // namespace
}  // namespace compacter::interop::adapterhub_format_test
