// The fixture of the mixed-adapter batch tests (tests/serve/mixed_batch_test.cpp, and the int8
// one in tests/cpu_isa that needs VNNI): a tiny T5 base with an adapter of every
// batchable method (and SAID and a moved `full`) written once per test program, servers of it,
// mixed requests, and each request decoded alone with its adapter attached the ordinary way.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compacter/data/tokenizer.h"
#include "compacter/peft/methods.h"
#include "compacter/serve/adapter_server.h"
#include "compacter/train/base_model.h"
#include "compacter/train/decoding/decode.h"
#include "support/adapter_models.h"
#include "support/test_support.h"

namespace compacter {

// Each adapter's trainable tensors moved by N(0, 0.2^2): enough for every method's output to
// differ from the others' (checked), not so much that activations grow huge (fp32 rounding of
// differently shaped products grows with them).
inline constexpr double kNoise = 0.2;

inline const char* kTexts[] = {"translate English to German: The house is wonderful.",
                               "cola sentence: the cat sat",
                               "summarize: a b c d e f g h i j k l m"};

inline std::vector<std::string> batchable_methods() {
  std::vector<std::string> out;
  for (const peft::MethodInfo& m : peft::all_methods())
    if (!m.rewrites_backbone) out.push_back(m.name);
  return out;
}

class MixedBatch : public testing::AdapterModelsTest {
 protected:
  static void SetUpTestSuite() {
    std::vector<std::string> methods = batchable_methods();
    methods.push_back("said");
    if (write_models(5, methods, kNoise))
      testing::write_moved_adapter(model_dir(), "full", adapter_dir("full"), 0.05);
  }
  static decoding::GenerationConfig settings(int64_t beams, int64_t sequences) {
    decoding::GenerationConfig c = testing::t5_generation(6);
    c.num_beams = beams;
    c.num_return_sequences = sequences;
    return c;
  }
  // The methods an int8 server is tested with (SAID is refused there).
  static const std::vector<std::string>& int8_methods() {
    static const std::vector<std::string> methods = {"compacter++", "lora", "ia3", "prompt-t",
                                                     "full"};
    return methods;
  }
  // A server of the test's base model in `dtype`, answering greedily, with `methods` added.
  static std::unique_ptr<serve::AdapterServer> server_of(
      const std::string& dtype, const std::vector<std::string>& methods = {}) {
    train::ModelSpec spec;
    spec.dir = model_dir();
    spec.tokenizer = tokenizer();
    spec.dtype = dtype;
    serve::ServerOptions options;
    options.generation = settings(1, 1);
    auto server = std::make_unique<serve::AdapterServer>(train::load_base_model(spec), options);
    for (const std::string& m : methods) server->add(m, adapter_dir(m));
    return server;
  }
  // Two requests per method, texts interleaved so that each batch mixes them.
  static std::vector<serve::Request> mixed_requests(const std::vector<std::string>& methods) {
    std::vector<serve::Request> requests;
    for (size_t pass = 0; pass < 2; ++pass)
      for (size_t k = 0; k < methods.size(); ++k) {
        serve::Request r;
        r.adapter = methods[k];
        r.text = kTexts[(k + pass) % 3];
        requests.push_back(r);
      }
    return requests;
  }
  static std::vector<decoding::Sequence> sequences(const serve::Reply& reply) {
    std::vector<decoding::Sequence> out;
    for (const auto& s : reply.sequences) out.push_back(s.sequence);
    return out;
  }
  // `text` decoded alone by a fresh model with `method` attached ("base": none).
  static std::vector<decoding::Sequence> alone(const std::string& method, const std::string& text,
                                               const decoding::GenerationConfig& c) {
    static std::map<std::string, nn::T5Model> models;  // each loaded once per run
    nn::T5Model& model = models.emplace(method, nullptr).first->second;
    if (!model)
      model = testing::load_with_adapter(model_dir(), method == "base" ? "" : adapter_dir(method));
    static const T5Tokenizer tok = T5Tokenizer::load(tokenizer());
    return testing::decode_alone(*model, tok, text, c);
  }
  static void expect_same(const std::vector<decoding::Sequence>& got,
                          const std::vector<decoding::Sequence>& want, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t s = 0; s < got.size(); ++s) {
      EXPECT_EQ(got[s].tokens, want[s].tokens) << what << " sequence " << s;
      EXPECT_NEAR(got[s].score, want[s].score, 1e-5) << what << " sequence " << s;
      ASSERT_EQ(got[s].token_logprobs.size(), want[s].token_logprobs.size()) << what;
      for (size_t t = 0; t < got[s].token_logprobs.size(); ++t)
        EXPECT_NEAR(got[s].token_logprobs[t], want[s].token_logprobs[t], 1e-5)
            << what << " sequence " << s << " token " << t;
    }
  }
};

}  // namespace compacter
