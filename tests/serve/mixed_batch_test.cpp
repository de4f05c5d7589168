// Mixed-adapter batches (serve/mixed_batch.h): one batch whose rows use different adapters -
// every method that can be applied per row (the adapter family, bitfit, prompt tuning, lora,
// ia3), each with moved (non-initial) tensors, trained layer norms included - gives each row
// exactly what it gets decoded alone with its adapter attached the ordinary way (nn::load_t5 +
// peft::load_adapter + decoding::generate on one input: no serving code): token ids identical,
// scores and token log-probabilities within 1e-5. Greedy and beam search (n-best), in one
// decoding::generate call on the mixed model and through AdapterServer::answer. Methods that
// rewrite base weights are kept out with a reason and still answered correctly.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/data/tokenizer.h"
#include "compacter/io/safetensors.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/nn/int8_rows.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "compacter/serve/adapter_server.h"
#include "compacter/serve/mixed_batch.h"
#include "compacter/train/base_model.h"
#include "compacter/train/decoding/decode.h"
#include "support/adapter_models.h"
#include "support/mixed_batch_fixture.h"
#include "support/test_support.h"

namespace compacter {
namespace {

// Every batchable method (and the base) in one generate call: rows of all of them in one batch.
TEST_F(MixedBatch, OneBatchOfEveryMethodMatchesEachAlone) {
  torch::NoGradGuard no_grad;
  nn::T5Model base = nn::load_t5(model_dir()).model;
  base->resize_vocab(32100);
  base->eval();
  std::vector<std::string> methods = batchable_methods();
  methods.insert(methods.begin(), "base");
  std::vector<nn::T5Model> adapted;
  std::vector<nn::T5ModelImpl*> variants;
  for (const std::string& m : methods) {
    if (m == "base") {
      variants.push_back(base.get());
      continue;
    }
    adapted.push_back(nn::share_weights(*base));
    const std::string method = peft::load_adapter(*adapted.back(), adapter_dir(m)).method;
    adapted.back()->eval();
    EXPECT_EQ(serve::mixed_batch_refusal(*base, *adapted.back(), method), "") << m;
    variants.push_back(adapted.back().get());
  }
  const T5Tokenizer tok = T5Tokenizer::load(tokenizer());
  // Rows: method k with text k % 3 and (k + 1) % 3, interleaved so groups are not contiguous.
  std::vector<std::pair<size_t, size_t>> rows;  // (method, text)
  for (size_t pass = 0; pass < 2; ++pass)
    for (size_t k = 0; k < methods.size(); ++k) rows.emplace_back(k, (k + pass) % 3);
  int64_t width = 0;
  std::vector<std::vector<int64_t>> ids;
  for (auto& [k, t] : rows) {
    ids.push_back(tok.encode(kTexts[t], 512));
    width = std::max<int64_t>(width, static_cast<int64_t>(ids.back().size()));
  }
  torch::Tensor input = torch::zeros({static_cast<int64_t>(rows.size()), width}, torch::kLong);
  torch::Tensor mask = torch::zeros_like(input);
  for (size_t r = 0; r < ids.size(); ++r) {
    const int64_t n = static_cast<int64_t>(ids[r].size());
    input[static_cast<int64_t>(r)].narrow(0, 0, n).copy_(torch::tensor(ids[r], torch::kLong));
    mask[static_cast<int64_t>(r)].narrow(0, 0, n).fill_(1);
  }
  serve::MixedBatchModel mixed(*base);
  mixed.set_variants(variants);
  // (text, tokens): the adapters disagree with each other, so a mix-up would show.
  std::set<std::pair<size_t, std::vector<int64_t>>> distinct;
  for (const auto& c : {settings(1, 1), settings(3, 2)}) {
    std::vector<int64_t> of_row;
    for (auto& [k, t] : rows) of_row.push_back(static_cast<int64_t>(k));
    mixed.set_rows(of_row);
    const auto got = decoding::generate(mixed.model(), input, mask, c);
    ASSERT_EQ(got.size(), rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      expect_same(got[r], alone(methods[rows[r].first], kTexts[rows[r].second], c),
                  methods[rows[r].first] + " / text " + std::to_string(rows[r].second) +
                      " / beams " + std::to_string(c.num_beams));
      if (c.num_beams == 1) distinct.emplace(rows[r].second, got[r][0].tokens);
    }
  }
  EXPECT_GE(distinct.size(), rows.size() / 2) << "of " << rows.size() << " rows";
}

// Through the server: mixed requests, a SAID adapter among them (refused from mixed batches,
// answered in its own), each reply what its adapter gives alone.
TEST_F(MixedBatch, ServerAnswersMixedRequestsAsAlone) {
  const auto owner = server_of("fp32");
  serve::AdapterServer& server = *owner;
  const std::vector<std::string> methods = {"compacter++", "lora",     "ia3",
                                            "bitfit",      "prompt-t", "said"};
  for (const std::string& m : methods) server.add(m, adapter_dir(m));
  for (const serve::AdapterInfo& info : server.list()) {
    if (info.method == "said")
      EXPECT_NE(info.mixed_refusal.find("rewrites the base weights"), std::string::npos)
          << info.mixed_refusal;
    else
      EXPECT_EQ(info.mixed_refusal, "") << info.name;
  }
  std::vector<serve::Request> requests = mixed_requests(methods);
  serve::Request b;
  b.adapter = serve::kBaseName;
  b.text = kTexts[0];
  requests.push_back(b);
  const auto replies = server.answer(requests);
  ASSERT_EQ(replies.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_EQ(replies[i].error, "") << requests[i].adapter;
    expect_same(sequences(replies[i]), alone(requests[i].adapter, requests[i].text, settings(1, 1)),
                requests[i].adapter);
  }
}

// An int8 base's mixed batches run its quantised layers: the mixed model's linear layers share the
// base's int8 weights, and with the base as its only variant it gives the base's own logits, bit
// for bit (before, it ran them in fp32).
TEST_F(MixedBatch, Int8MixedBatchesRunTheBasesQuantisedLayers) {
  if (!nn::int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  torch::NoGradGuard no_grad;
  nn::T5Model base = nn::load_t5(model_dir()).model;
  base->resize_vocab(32100);
  base->eval();
  ASSERT_GT(nn::quantize_linears_int8(*base, nn::Fp32Weights::kKeep), 0);
  serve::MixedBatchModel mixed(*base);
  mixed.set_variants({base.get()});
  mixed.set_rows({0, 0});
  const auto mine = base->linears(), theirs = mixed.model().linears();
  ASSERT_EQ(mine.size(), theirs.size());
  for (size_t i = 0; i < mine.size(); ++i) EXPECT_EQ(theirs[i]->int8(), mine[i]->int8()) << i;
  const T5Tokenizer tok = T5Tokenizer::load(tokenizer());
  const std::vector<int64_t> a = tok.encode(kTexts[0], 512), b = tok.encode(kTexts[2], 512);
  const int64_t width = static_cast<int64_t>(std::max(a.size(), b.size()));
  torch::Tensor ids = torch::zeros({2, width}, torch::kLong), mask = torch::zeros_like(ids);
  ids[0].narrow(0, 0, a.size()).copy_(torch::tensor(a, torch::kLong));
  ids[1].narrow(0, 0, b.size()).copy_(torch::tensor(b, torch::kLong));
  mask[0].narrow(0, 0, a.size()).fill_(1);
  mask[1].narrow(0, 0, b.size()).fill_(1);
  const torch::Tensor labels = torch::tensor({{5, 6, 1}, {7, 1, 0}}, torch::kLong);
  EXPECT_TRUE(torch::equal(mixed.model().forward(ids, mask, {}, labels).logits,
                           base->forward(ids, mask, {}, labels).logits));
}

// int8 serving (--dtype int8): the base's linear layers are quantised once, their fp32 weights
// freed, and shared by every adapter, loaded onto that freed base, except those a method retrained
// (`full`, whose tensors are checked against the freed layers' shapes), which get their own and
// free their fp32 copy too. Each request answered
// alone must equal a fresh model with its adapter attached and then quantised the way `eval` and
// `generate` do it (nn::quantize_linears_int8 after peft::load_adapter). Requests are answered
// one at a time here; in mixed batches in tests/cpu_isa/int8_server_rows_test.cpp.
TEST_F(MixedBatch, ServerInt8AnswersAsEachAdapterQuantisedAlone) {
  if (!nn::int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  const std::vector<std::string>& methods = int8_methods();
  const auto owner = server_of("int8", methods);
  serve::AdapterServer& server = *owner;
  EXPECT_THROW(server.add("said", adapter_dir("said")), Error);
  const T5Tokenizer tok = T5Tokenizer::load(tokenizer());
  std::set<std::vector<int64_t>> outputs;
  for (const std::string& m : methods) {
    torch::NoGradGuard no_grad;
    nn::T5Model model = nn::load_t5(model_dir()).model;
    model->resize_vocab(32100);
    peft::load_adapter(*model, adapter_dir(m));
    EXPECT_GT(nn::quantize_linears_int8(*model, nn::Fp32Weights::kFree), 0);
    model->eval();
    for (const char* text : kTexts) {
      serve::Request r;
      r.adapter = m;
      r.text = text;
      const auto replies = server.answer({r});
      ASSERT_EQ(replies.size(), 1u);
      ASSERT_EQ(replies[0].error, "") << m;
      const torch::Tensor input = torch::tensor(tok.encode(text, 512), torch::kLong).unsqueeze(0);
      const auto want = decoding::generate(*model, input, torch::ones_like(input), settings(1, 1));
      expect_same({replies[0].sequences.at(0).sequence}, want[0], m + " / " + text);
      outputs.insert(want[0][0].tokens);
    }
  }
  EXPECT_GE(outputs.size(), methods.size()) << "the adapters should disagree";

  // Memory as reported: the base's bytes and `full`'s own include their int8 weights
  // (int8_linear.h, bytes()); compacter++ shares the base's. With the library's kernel (a CPU with
  // AVX-512 VNNI): its packed values, out and in rounded up to multiples of 64 and 4, and per row
  // an fp64 and an fp32 scale and a 4-byte sum. With oneDNN: out x in values twice (the engine's
  // quantised tensor and oneDNN's packed copy), a scale and a zero point of 8 bytes each and a
  // 4-byte sum per row.
  const auto fp32_owner = server_of("fp32");
  serve::AdapterServer& fp32 = *fp32_owner;
  // And below, the fp32 weights of the same layers: 4 bytes each.
  // The output layer is int8 too: the tiny T5's is tied, an int8 copy of the shared embedding
  // whose fp32 rows the input still reads (nothing of it to free).
  int64_t int8_bytes = 0, fp32_bytes = 0;
  auto add_int8 = [&](int64_t out, int64_t in) {
    if (nn::int8_rows_available())
      int8_bytes += (out + 63) / 64 * 64 * ((in + 3) / 4 * 4) + 16 * out;
    else
      int8_bytes += 2 * out * in + 20 * out;
  };
  nn::T5Model shapes = nn::load_t5(model_dir()).model;
  shapes->resize_vocab(32100);  // as the server's base (the tokenizer's rows)
  shapes->for_each_linear([&](const std::string& path, nn::LinearImpl& linear) {
    if (nn::Int8Keep{}.keeps(path)) return;
    add_int8(linear.out_features(), linear.in_features());
    fp32_bytes += 4 * linear.out_features() * linear.in_features();
  });
  ASSERT_FALSE(shapes->lm_head->owns_matrix());
  add_int8(shapes->lm_head->matrix().size(0), shapes->lm_head->matrix().size(1));
  auto own_bytes = [](const serve::AdapterServer& s, const std::string& name) {
    for (const serve::AdapterInfo& a : s.list())
      if (a.name == name) return a.own_bytes;
    ADD_FAILURE() << "no adapter " << name;
    return int64_t{0};
  };
  for (const std::string m : {"compacter++", "full"}) fp32.add(m, adapter_dir(m));
  EXPECT_EQ(own_bytes(server, "compacter++"), own_bytes(fp32, "compacter++"));
  // The parameters an adapter trained are its own in either dtype (`full`: every one).
  auto info = [](const serve::AdapterServer& s, const std::string& name) {
    for (const serve::AdapterInfo& a : s.list())
      if (a.name == name) return a;
    ADD_FAILURE() << "no adapter " << name;
    return serve::AdapterInfo{};
  };
  for (const std::string m : {"compacter++", "full"}) {
    EXPECT_EQ(info(server, m).own_parameters, info(fp32, m).own_parameters) << m;
    EXPECT_EQ(info(server, m).mixed_refusal, info(fp32, m).mixed_refusal) << m;
  }

  // The fp32 weights the quantised layers had are not held: not the base's, not `full`'s own.
  EXPECT_EQ(server.base_bytes() - fp32.base_bytes(), int8_bytes - fp32_bytes);
  EXPECT_EQ(own_bytes(server, "full") - own_bytes(fp32, "full"), int8_bytes - fp32_bytes);
  for (const serve::AdapterInfo& a : server.list()) {
    server.model_of(a.name)->for_each_linear([&](const std::string& path, nn::LinearImpl& l) {
      if (l.is_int8()) {
        EXPECT_EQ(l.weight.numel(), 0) << a.name << " " << path;
      }
    });
  }
}

// A `full` adapter loaded onto an int8 server's freed base is still checked against the layers'
// shapes: a tensor cut to the wrong shape is refused, naming the shape the file's own tensor had
// (not the freed weight's [0]), and nothing is added.
TEST_F(MixedBatch, ServerInt8RefusesAFullAdapterOfTheWrongShape) {
  if (!nn::int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  const auto owner = server_of("int8");
  testing::TempDir dir;
  const std::string from = adapter_dir("full");
  nlohmann::json config = peft::read_adapter_config(from);
  config.erase("weights_fnv1a64");  // the weights are rewritten below
  testing::write_file(dir.file(peft::kAdapterConfigFile), config.dump());
  const safetensors::File file = safetensors::File::open(from + "/" + peft::kAdapterWeightsFile);
  const std::string cut = "decoder.block.0.layer.1.EncDecAttention.q.weight";
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::vector<int64_t> shape;
  for (const auto& info : file.header().tensors) {
    const std::string& name = info.name;
    torch::Tensor t = file.load(name);
    if (name == cut) {
      shape = t.sizes().vec();
      t = t.narrow(1, 0, t.size(1) - 1).contiguous();
    }
    tensors.emplace_back(name, t);
  }
  ASSERT_EQ(shape.size(), 2u) << "the full adapter has no " << cut;
  safetensors::save(dir.file(peft::kAdapterWeightsFile), tensors);
  try {
    owner->add("bad", dir.path());
    ADD_FAILURE() << "a wrong shape was accepted";
  } catch (const Error& e) {
    const std::string want = cat("tensor \"", cut, "\" has shape [", shape[0], ", ", shape[1] - 1,
                                 "], expected [", shape[0], ", ", shape[1], "]");
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
  EXPECT_EQ(owner->list().size(), 1u);  // the base alone
}

// An int8 server frees an untied base's output layer (T5 v1.1) and the int8 copy's own of an
// adapter that trained it (--train-lm-head); it still refuses that adapter mixed batches, as an
// fp32 server does, for the head it trained: the mixed model runs the base's.
TEST_F(MixedBatch, ServerInt8RefusesMixedBatchesToAnUntiedHeadItTrained) {
  if (!nn::int8_available()) GTEST_SKIP() << "no int8 engine on this machine";
  testing::TempDir dir;
  nlohmann::json config = nlohmann::json::parse(testing::tiny_t5_config_json(32128));
  config["tie_word_embeddings"] = false;
  {
    nn::T5Model model(t5_config_from_json(config, "the untied tiny T5"));
    model->init_weights(3);
    nn::save_t5(*model, dir.file("model"));
  }
  nn::T5Model model = nn::load_t5(dir.file("model")).model;
  model->resize_vocab(32100);
  peft::PeftOptions o = peft::method_defaults("compacter++");
  o.reduction_factor = 4;
  o.n = 2;
  o.train_lm_head = true;
  peft::attach("compacter++", o, *model, 1);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : peft::trainable_parameters(*model)) p.add_(torch::randn_like(p) * 0.1);
  }
  peft::save_adapter(*model, {"compacter++", o, 1}, dir.file("adapter"));
  for (const std::string dtype : {"fp32", "int8"}) {
    train::ModelSpec spec;
    spec.dir = dir.file("model");
    spec.tokenizer = tokenizer();
    spec.dtype = dtype;
    serve::ServerOptions options;
    options.generation = settings(1, 1);
    serve::AdapterServer server(train::load_base_model(spec), options);
    const serve::AdapterInfo& a = server.add("head", dir.file("adapter"));
    EXPECT_NE(a.mixed_refusal.find("it retrains the base tensor lm_head.weight"), std::string::npos)
        << dtype << ": " << a.mixed_refusal;
  }
}

}  // namespace
}  // namespace compacter
