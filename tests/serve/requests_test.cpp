// The server's request parsing (serve/requests.h): every "parameters" field sets its
// GenerationConfig field and nothing else; each bad field is refused naming it, with the status
// kind the spec gives (400 wrong type / unknown field, 422 out of range / above a named limit);
// generate bodies (one object or a list) and the TGI-shaped reply JSON of a hand-built reply.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "compacter/serve/requests.h"

namespace compacter::serve {
namespace {

ServerLimits small_limits() {
  ServerLimits l;
  l.max_request_new_tokens = 20;
  l.max_request_beams = 4;
  l.max_request_sequences = 3;
  l.max_request_labels = 2;
  l.max_body_bytes = 200;
  l.max_inputs_per_request = 2;
  return l;
}

Request parse(const nlohmann::json& parameters) {
  Request r;
  parse_parameters(parameters, small_limits(), decoding::GenerationConfig{}, "parameters", r);
  return r;
}

TEST(ServeParameters, EachFieldSetsItsSettingAndNothingElse) {
  const nlohmann::json p = {
      {"adapter", "rte"},          {"max_new_tokens", 5},       {"num_beams", 4},
      {"num_return_sequences", 3}, {"no_repeat_ngram_size", 2}, {"repetition_penalty", 1.5},
      {"details", true},           {"labels", {"yes", "no"}},   {"top_k", nullptr}};  // null: unset
  const Request r = parse(p);
  ASSERT_TRUE(r.generation.has_value());
  decoding::GenerationConfig expected;
  expected.max_new_tokens = 5;
  expected.num_beams = 4;
  expected.num_return_sequences = 3;
  expected.no_repeat_ngram_size = 2;
  expected.repetition_penalty = 1.5;
  EXPECT_EQ(options::to_json(*r.generation), options::to_json(expected));
  EXPECT_EQ(r.adapter, "rte");
  EXPECT_TRUE(r.details);
  ASSERT_TRUE(r.labels.has_value());
  EXPECT_EQ(*r.labels, (std::vector<std::string>{"yes", "no"}));

  const Request s = parse({{"do_sample", true},
                           {"temperature", 0.5},
                           {"top_k", 7},
                           {"top_p", 0.9},
                           {"typical_p", 0.8},
                           {"seed", 42},
                           {"num_return_sequences", 2},
                           {"adapter_id", "x"},  // LoRAX's name
                           {"best_of", 1},
                           {"return_full_text", false},
                           {"stop", nlohmann::json::array()},
                           {"watermark", false},
                           {"truncate", nullptr}});
  decoding::GenerationConfig e2;
  e2.do_sample = true;
  e2.temperature = 0.5;
  e2.top_k = 7;
  e2.top_p = 0.9;
  e2.typical_p = 0.8;
  e2.seed = 42;
  e2.num_return_sequences = 2;
  EXPECT_EQ(options::to_json(*s.generation), options::to_json(e2));
  EXPECT_EQ(s.adapter, "x");
  EXPECT_FALSE(s.details);
  EXPECT_FALSE(s.labels.has_value());
}

TEST(ServeParameters, EachBadFieldIsNamedWithItsKind) {
  struct Case {
    nlohmann::json parameters;
    ErrorKind kind;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{{"foo", 1}}, ErrorKind::bad_request, "parameters: unknown field \"foo\""},
      {{{"max_new_tokens", "5"}}, ErrorKind::bad_request, "parameters.max_new_tokens must be an"},
      {{{"max_new_tokens", 2.5}}, ErrorKind::bad_request, "parameters.max_new_tokens must be an"},
      {{{"max_new_tokens", 0}}, ErrorKind::invalid, "parameters.max_new_tokens must be at least 1"},
      {{{"max_new_tokens", 21}},
       ErrorKind::invalid,
       "parameters.max_new_tokens is 21, above the server's limit max_request_new_tokens = 20"},
      {{{"max_new_tokens", 18446744073709551615ull}},
       ErrorKind::invalid,
       "limit max_request_new_tokens = 20"},
      {{{"num_beams", 5}}, ErrorKind::invalid, "limit max_request_beams = 4"},
      {{{"num_beams", true}}, ErrorKind::bad_request, "parameters.num_beams must be an integer"},
      {{{"num_beams", 2}, {"num_return_sequences", 4}},
       ErrorKind::invalid,
       "limit max_request_sequences = 3"},
      {{{"num_beams", 2}, {"num_return_sequences", 3}},
       ErrorKind::invalid,
       "parameters.num_return_sequences (3) must not exceed num_beams (2)"},
      {{{"num_return_sequences", 2}}, ErrorKind::invalid, "parameters.num_return_sequences is 2"},
      {{{"do_sample", 1}}, ErrorKind::bad_request, "parameters.do_sample must be true or false"},
      {{{"do_sample", true}, {"temperature", 0}},
       ErrorKind::invalid,
       "parameters.temperature must be a strictly positive number"},
      {{{"temperature", "hot"}}, ErrorKind::bad_request, "parameters.temperature must be a number"},
      {{{"do_sample", true}, {"top_p", 1.5}},
       ErrorKind::invalid,
       "parameters.top_p must be above 0 and below 1"},
      {{{"do_sample", true}, {"top_k", -1}},
       ErrorKind::invalid,
       "parameters.top_k must be at least 0"},
      {{{"do_sample", true}, {"typical_p", 0}}, ErrorKind::invalid, "parameters.typical_p"},
      {{{"repetition_penalty", 0}}, ErrorKind::invalid, "parameters.repetition_penalty"},
      {{{"no_repeat_ngram_size", -2}}, ErrorKind::invalid, "parameters.no_repeat_ngram_size"},
      {{{"seed", -1}}, ErrorKind::bad_request, "parameters.seed must be an integer >= 0"},
      {{{"details", "yes"}}, ErrorKind::bad_request, "parameters.details must be true or false"},
      {{{"labels", "yes"}}, ErrorKind::bad_request, "parameters.labels must be a list"},
      {{{"labels", {1}}}, ErrorKind::bad_request, "parameters.labels must be a list"},
      {{{"labels", nlohmann::json::array()}}, ErrorKind::invalid, "parameters.labels must hold"},
      {{{"labels", {"a", "b", "c"}}}, ErrorKind::invalid, "limit max_request_labels = 2"},
      {{{"adapter", 3}}, ErrorKind::bad_request, "parameters.adapter must be a string"},
      {{{"best_of", 2}}, ErrorKind::bad_request, "parameters.best_of = 2 is not supported"},
      {{{"stop", {"."}}}, ErrorKind::bad_request, "parameters.stop = [\".\"] is not supported"},
      {{{"do_sample", true}, {"num_beams", 2}}, ErrorKind::invalid, "parameters.do_sample"},
      {nlohmann::json::array(), ErrorKind::bad_request, "parameters must be a JSON object"},
  };
  for (const Case& c : cases) {
    try {
      parse(c.parameters);
      ADD_FAILURE() << "accepted: " << c.parameters.dump();
    } catch (const RequestError& e) {
      EXPECT_EQ(e.kind(), c.kind) << c.parameters.dump() << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
          << c.parameters.dump() << ": " << e.what();
    }
  }
}

TEST(ServeParameters, AnAdapterGivenTwiceMustAgree) {
  Request r;
  r.adapter = "a";
  parse_parameters({{"adapter", "a"}}, small_limits(), {}, "parameters", r);
  EXPECT_EQ(r.adapter, "a");
  try {
    parse_parameters({{"adapter", "b"}}, small_limits(), {}, "parameters", r);
    ADD_FAILURE() << "accepted two adapters";
  } catch (const RequestError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::bad_request);
    EXPECT_NE(std::string(e.what()).find("parameters.adapter is \"b\""), std::string::npos);
  }
}

TEST(ServeGenerateBody, ObjectsListsAndTheirErrors) {
  bool is_list = true;
  auto one = parse_generate_body(R"({"inputs": "hi", "parameters": {"max_new_tokens": 3}})",
                                 small_limits(), {}, "base", is_list);
  EXPECT_FALSE(is_list);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].text, "hi");
  EXPECT_EQ(one[0].adapter, "base");
  EXPECT_EQ(one[0].generation->max_new_tokens, 3);

  auto list = parse_generate_body(
      R"([{"inputs": "a"}, {"sentence1": "x", "sentence2": "y", "parameters": {"adapter": "rte"}}])",
      small_limits(), {}, "base", is_list);
  EXPECT_TRUE(is_list);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_FALSE(list[0].generation.has_value());  // the server's settings
  EXPECT_EQ(list[1].adapter, "rte");
  EXPECT_EQ(list[1].fields, (nlohmann::json{{"sentence1", "x"}, {"sentence2", "y"}}));
  EXPECT_EQ(list[1].id, 1);

  struct Case {
    std::string body;
    std::string default_adapter;
    ErrorKind kind;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{\"inputs\": ", "base", ErrorKind::bad_request, "the body is not JSON"},
      {"3", "base", ErrorKind::bad_request, "expected a JSON object"},
      {"[]", "base", ErrorKind::bad_request, "the list of inputs is empty"},
      {R"([{"inputs": "a"}, {"inputs": "b"}, {"inputs": "c"}])", "base", ErrorKind::invalid,
       "limit max_inputs_per_request = 2"},
      {R"([{"inputs": "a"}, {"inputs": 5}])", "base", ErrorKind::bad_request,
       "inputs[1]: \"inputs\" must be a string"},
      {R"({"inputs": "a", "sentence1": "b"})", "base", ErrorKind::bad_request,
       "give \"inputs\" or the task's fields (such as \"sentence1\"), not both"},
      {R"({"parameters": {}})", "base", ErrorKind::bad_request, "no input"},
      {R"({"inputs": "a", "adapter": "rte"})", "base", ErrorKind::bad_request,
       "\"adapter\" goes under \"parameters\" over HTTP"},
      {R"({"sentence1": "a", "adapter_id": "rte"})", "base", ErrorKind::bad_request,
       "\"adapter_id\" goes under \"parameters\" over HTTP"},
      {R"({"inputs": "a"})", "", ErrorKind::bad_request,
       "parameters.adapter is required when several adapters are served"},
      {R"({"inputs": "a", "stream": true})", "base", ErrorKind::bad_request, "generate_stream"},
      {R"({"inputs": "a", "parameters": {"num_beams": "2"}})", "base", ErrorKind::bad_request,
       "parameters.num_beams must be an integer"},
      {"{\"inputs\": \"" + std::string(300, 'x') + "\"}", "base", ErrorKind::too_large,
       "above the server's limit max_body_bytes = 200"},
  };
  for (const Case& c : cases) {
    try {
      parse_generate_body(c.body, small_limits(), {}, c.default_adapter, is_list);
      ADD_FAILURE() << "accepted: " << c.body;
    } catch (const RequestError& e) {
      EXPECT_EQ(e.kind(), c.kind) << c.body << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
          << c.body << ": " << e.what();
    }
  }
}

TEST(ServeGenerateBody, JsonLinesTakeTheSameParameters) {
  ServerOptions options;
  options.limits = small_limits();
  const Request ok = parse_request_line(
      R"({"text": "x", "parameters": {"num_beams": 2, "details": true}})", 3, "base", options, {});
  EXPECT_TRUE(ok.error.empty()) << ok.error;
  EXPECT_EQ(ok.generation->num_beams, 2);
  EXPECT_TRUE(ok.details);
  const Request bad = parse_request_line(R"({"text": "x", "parameters": {"num_beams": 9}})", 3,
                                         "base", options, {});
  EXPECT_EQ(bad.error_kind, ErrorKind::invalid);
  EXPECT_NE(bad.error.find("line 3: parameters.num_beams is 9, above the server's limit "
                           "max_request_beams = 4"),
            std::string::npos)
      << bad.error;
  const Request big =
      parse_request_line("{\"text\": \"" + std::string(300, 'x') + "\"}", 4, "base", options, {});
  EXPECT_EQ(big.error_kind, ErrorKind::too_large);
}

TEST(ServeAdapterLoadBody, NameAndPathOnly) {
  const AdapterLoadBody ok = parse_adapter_load_body(R"({"name": "rte-2", "path": "runs/rte"})");
  EXPECT_EQ(ok.name, "rte-2");
  EXPECT_EQ(ok.path, "runs/rte");
  const struct {
    const char* body;
    ErrorKind kind;
    const char* message;
  } cases[] = {
      {"not json", ErrorKind::bad_request, "expected a JSON object"},
      {R"(["a"])", ErrorKind::bad_request, "expected a JSON object"},
      {R"({"name": "a", "path": "p", "x": 1})", ErrorKind::bad_request, "unknown field \"x\""},
      {R"({"name": "a"})", ErrorKind::bad_request, "\"path\" must be a string"},
      {R"({"name": 3, "path": "p"})", ErrorKind::bad_request, "\"name\" must be a string"},
      {R"({"name": "-a", "path": "p"})", ErrorKind::bad_request, "expected 1 to 64 letters"},
      {R"({"name": "", "path": "p"})", ErrorKind::bad_request, "expected 1 to 64 letters"},
      {R"({"name": "a/b", "path": "p"})", ErrorKind::bad_request, "expected 1 to 64 letters"},
      {R"({"name": "base", "path": "p"})", ErrorKind::conflict, "reserved for the base model"},
  };
  for (const auto& c : cases) {
    try {
      parse_adapter_load_body(c.body);
      ADD_FAILURE() << c.body << " was accepted";
    } catch (const RequestError& e) {
      EXPECT_EQ(e.kind(), c.kind) << c.body;
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  // 64 characters are the most a name may have.
  EXPECT_NO_THROW(parse_adapter_load_body(
      nlohmann::json({{"name", std::string(64, 'a')}, {"path", "p"}}).dump()));
  EXPECT_THROW(parse_adapter_load_body(
                   nlohmann::json({{"name", std::string(65, 'a')}, {"path", "p"}}).dump()),
               RequestError);
}

TEST(ServeReplyJson, TgiShapeWithNBestAndTokens) {
  Reply r;
  r.adapter = "rte";
  r.output = "yes";
  r.details = true;
  r.label = "entailment";
  ReplySequence a;
  a.text = "yes";
  a.sequence.tokens = {4273, 1};
  a.sequence.token_logprobs = {-0.25, -0.5};
  a.sequence.score = -0.375;
  a.sequence.logprob_sum = -0.75;
  a.sequence.finished = true;
  a.token_texts = {"yes", ""};
  a.token_special = {false, true};
  ReplySequence b;
  b.text = "no no";
  b.sequence.tokens = {150, 150};
  b.sequence.token_logprobs = {-1, -2};
  b.sequence.score = -1.5;
  b.sequence.logprob_sum = -3;
  b.token_texts = {"no", " no"};
  b.token_special = {false, false};
  r.sequences = {a, b};
  const nlohmann::json expected = nlohmann::json::parse(R"({
    "generated_text": "yes", "adapter": "rte", "label": "entailment",
    "details": {"finish_reason": "eos_token", "generated_tokens": 2, "seed": null,
                "score": -0.375, "logprob_sum": -0.75,
                "tokens": [{"id": 4273, "text": "yes", "logprob": -0.25, "special": false},
                           {"id": 1, "text": "", "logprob": -0.5, "special": true}],
                "best_of_sequences": [
                  {"generated_text": "no no", "finish_reason": "length", "generated_tokens": 2,
                   "seed": null, "score": -1.5, "logprob_sum": -3.0,
                   "tokens": [{"id": 150, "text": "no", "logprob": -1.0, "special": false},
                              {"id": 150, "text": " no", "logprob": -2.0, "special": false}]}]}})");
  EXPECT_EQ(generate_reply_json(r), expected);

  // Without details and with one sequence: TGI's bare reply.
  r.details = false;
  r.sequences.pop_back();
  EXPECT_EQ(
      generate_reply_json(r),
      (nlohmann::json{{"generated_text", "yes"}, {"adapter", "rte"}, {"label", "entailment"}}));
  EXPECT_EQ(error_json("x", ErrorKind::too_large),
            (nlohmann::json{{"error", "x"}, {"error_type", "payload_too_large"}}));
  EXPECT_EQ(http_status(ErrorKind::invalid), 422);
  EXPECT_EQ(http_status(ErrorKind::not_found), 404);
}

// Mutated bodies (bytes flipped, inserted, cut; a fixed seed): the parser returns requests or
// throws RequestError, never anything else, and whatever it returns is within the limits.
TEST(ServeGenerateBody, MutatedBodiesGiveRequestsOrRequestErrors) {
  ServerLimits limits = small_limits();
  limits.max_body_bytes = 4096;
  const std::vector<std::string> seeds = {
      R"({"inputs": "hi", "parameters": {"max_new_tokens": 3, "num_beams": 2, "details": true}})",
      R"([{"inputs": "a"}, {"sentence1": "x", "parameters": {"labels": ["yes", "no"]}}])",
      R"({"inputs": "x", "parameters": {"do_sample": true, "seed": 7, "top_p": 0.5}})"};
  const std::string alphabet = "{}[]\":,0123456789-.eE truefalsnul\\u";
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  int accepted = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string body = seeds[i % seeds.size()];
    for (int k = 0, edits = 1 + static_cast<int>(next() % 4); k < edits; ++k) {
      const size_t at = next() % (body.size() + 1);
      switch (next() % 3) {
        case 0:
          if (at < body.size()) body[at] = alphabet[next() % alphabet.size()];
          break;
        case 1:
          body.insert(at, 1, alphabet[next() % alphabet.size()]);
          break;
        default:
          if (at < body.size()) body.erase(at, 1 + next() % 3);
      }
    }
    bool is_list = false;
    try {
      const auto requests = parse_generate_body(body, limits, {}, "base", is_list);
      ++accepted;
      EXPECT_LE(static_cast<int64_t>(requests.size()), limits.max_inputs_per_request);
      for (const auto& r : requests) {
        EXPECT_FALSE(r.adapter.empty()) << body;
        if (!r.generation) continue;
        EXPECT_LE(r.generation->new_token_limit(), limits.max_request_new_tokens) << body;
        EXPECT_LE(r.generation->num_beams, limits.max_request_beams) << body;
        EXPECT_LE(r.generation->num_return_sequences, limits.max_request_sequences) << body;
      }
    } catch (const RequestError&) {
      ++refused;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a RequestError: " << e.what() << "\n" << body;
    }
  }
  EXPECT_GT(accepted, 100);  // the mutations keep some bodies valid and break others
  EXPECT_GT(refused, 100);
}

}  // namespace
}  // namespace compacter::serve
