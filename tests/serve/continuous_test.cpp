// Continuous batching (serve/continuous.h): requests for different adapters join a running
// batch at step boundaries and leave when they end, and each still gets exactly what
// decoding::generate gives it decoded alone on a fresh model with its adapter attached the
// ordinary way (no serving code): greedy with logits processors, sampling with its seed (two
// return sequences), different lengths and limits; token ids identical, scores within 1e-5.
// The streamed tokens are the reply's. A batch limit of 2 rows makes later jobs wait and join
// as rows leave, with the same results.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "compacter/data/tokenizer.h"
#include "compacter/serve/continuous.h"
#include "compacter/serve/scheduler.h"
#include "compacter/train/base_model.h"
#include "compacter/train/decoding/decode.h"
#include "support/adapter_models.h"
#include "support/test_support.h"

namespace compacter {
namespace {

class Continuous : public testing::AdapterModelsTest {
 protected:
  static void SetUpTestSuite() { write_models(9, {"compacter++", "lora", "prompt-r", "ia3"}, 0.2); }

  static std::unique_ptr<serve::AdapterServer> make_server() {
    train::ModelSpec spec;
    spec.dir = model_dir();
    spec.tokenizer = tokenizer();
    serve::ServerOptions options;
    options.generation = testing::t5_generation(6);
    auto server = std::make_unique<serve::AdapterServer>(train::load_base_model(spec), options);
    for (const std::string method : {"compacter++", "lora", "prompt-r", "ia3"})
      server->add(method, adapter_dir(method));
    return server;
  }

  static std::vector<decoding::Sequence> alone(const std::string& method, const std::string& text,
                                               const decoding::GenerationConfig& c) {
    nn::T5Model model =
        testing::load_with_adapter(model_dir(), method == "base" ? "" : adapter_dir(method));
    return testing::decode_alone(*model, T5Tokenizer::load(tokenizer()), text, c);
  }

  struct Case {
    std::string adapter, text;
    decoding::GenerationConfig settings;
  };
  static std::vector<Case> cases() {
    const decoding::GenerationConfig base = testing::t5_generation(6);
    auto longer = base;
    longer.max_new_tokens = 11;
    longer.repetition_penalty = 1.3;
    auto sampled = base;
    sampled.do_sample = true;
    sampled.seed = 77;
    sampled.top_k = 30;
    sampled.temperature = 0.8;
    sampled.num_return_sequences = 2;
    sampled.max_new_tokens = 9;
    auto short_one = base;
    short_one.max_new_tokens = 2;
    auto ngram = base;
    ngram.no_repeat_ngram_size = 1;
    ngram.max_new_tokens = 8;
    return {{"lora", "translate English to German: The house is wonderful.", base},
            {"compacter++", "cola sentence: the cat sat", longer},
            {"prompt-r", "summarize: a b c d e f g h i j k l m n o p", sampled},
            {"base", "hello", short_one},
            {"ia3", "stsb sentence1: one. sentence2: two.", ngram},
            {"lora", "hello world", sampled}};
  }

  // Runs the cases through a batch, job k added before step k (so they join a running batch),
  // and checks each reply and its streamed tokens against decoding alone.
  static void run(int64_t max_rows) {
    auto server = make_server();
    serve::ContinuousBatch batch(*server, max_rows, 100000);
    const auto all = cases();
    std::map<size_t, std::vector<serve::Reply>> replies;
    std::map<size_t, std::vector<int64_t>> streamed;
    size_t next = 0;
    int64_t steps = 0;
    while (next < all.size() || !batch.idle()) {
      if (next < all.size()) {
        serve::Request r;
        r.adapter = all[next].adapter;
        r.text = all[next].text;
        r.generation = all[next].settings;
        const size_t k = next++;
        batch.add(serve::BatchJob{
            {r},
            [&streamed, k](size_t input, const serve::StreamToken& t) {
              EXPECT_EQ(input, 0u);
              streamed[k].push_back(t.id);
            },
            [&replies, k](std::vector<serve::Reply> rs) { replies[k] = std::move(rs); },
            [](std::exception_ptr e) { std::rethrow_exception(e); },
            nullptr});
      }
      batch.step();
      ASSERT_LE(batch.running_rows(), max_rows);
      ASSERT_LT(++steps, 200);
    }
    ASSERT_EQ(replies.size(), all.size());
    std::set<std::string> distinct;  // the cases' outputs differ, so a mix-up would show
    for (size_t k = 0; k < all.size(); ++k) {
      const std::string what = all[k].adapter + " case " + std::to_string(k);
      ASSERT_EQ(replies[k].size(), 1u);
      const serve::Reply& reply = replies[k][0];
      ASSERT_EQ(reply.error, "") << what;
      const auto want = alone(all[k].adapter, all[k].text, all[k].settings);
      ASSERT_EQ(reply.sequences.size(), want.size()) << what;
      for (size_t s = 0; s < want.size(); ++s) {
        const decoding::Sequence& got = reply.sequences[s].sequence;
        EXPECT_EQ(got.tokens, want[s].tokens) << what << " sequence " << s;
        EXPECT_NEAR(got.score, want[s].score, 1e-5) << what;
        EXPECT_EQ(got.finished, want[s].finished) << what;
        ASSERT_EQ(got.token_logprobs.size(), want[s].token_logprobs.size()) << what;
        for (size_t t = 0; t < got.token_logprobs.size(); ++t)
          EXPECT_NEAR(got.token_logprobs[t], want[s].token_logprobs[t], 1e-5) << what;
      }
      EXPECT_EQ(streamed[k], want[0].tokens) << what << ": the stream is the first sequence";
      distinct.insert(reply.output);
    }
    EXPECT_EQ(distinct.size(), all.size());
  }
};

TEST_F(Continuous, RequestsJoiningARunningBatchGetWhatTheyGetAlone) {
  run(64);
}

TEST_F(Continuous, ABatchLimitMakesJobsWaitWithTheSameResults) {
  run(2);
}

// A cancelled job leaves at the next step and is answered with an error; one past its deadline
// gets a timeout; the others finish as alone.
TEST_F(Continuous, ACancelledJobLeaves) {
  auto server = make_server();
  serve::ContinuousBatch batch(*server, 64, 100000);
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  std::vector<serve::Reply> a, b;
  serve::Request r;
  r.adapter = "lora";
  r.text = "hello world";
  decoding::GenerationConfig g = testing::t5_generation(12);
  g.min_new_tokens = 12;  // runs all 12 steps
  r.generation = g;
  batch.add({{r}, {}, [&](std::vector<serve::Reply> x) { a = std::move(x); }, {}, cancelled});
  batch.add({{r}, {}, [&](std::vector<serve::Reply> x) { b = std::move(x); }, {}, nullptr});
  batch.step();
  batch.step();
  EXPECT_EQ(batch.running_rows(), 2);
  *cancelled = true;
  batch.step();
  EXPECT_EQ(batch.running_rows(), 1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_NE(a[0].error.find("cancelled"), std::string::npos);
  // A job past its deadline is answered with a timeout, undecoded.
  std::vector<serve::Reply> late;
  serve::BatchJob expired{{r}, {},      [&](std::vector<serve::Reply> x) { late = std::move(x); },
                          {},  nullptr, std::chrono::steady_clock::now() - std::chrono::seconds(1)};
  batch.add(std::move(expired));
  batch.step();
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].error_kind, serve::ErrorKind::timeout);
  EXPECT_TRUE(late[0].sequences.empty());
  while (!batch.idle()) batch.step();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].sequences.at(0).sequence.tokens, alone("lora", r.text, g)[0].tokens);
}

// A request for the lora adapter decoded with beam search (2 beams), `min_new_tokens` of
// `max_new_tokens` forced.
serve::Request beam_request(int64_t max_new_tokens, int64_t min_new_tokens) {
  serve::Request r;
  r.adapter = "lora";
  r.text = "hello world";
  decoding::GenerationConfig g = testing::t5_generation(max_new_tokens);
  g.min_new_tokens = min_new_tokens;
  g.num_beams = 2;
  r.generation = g;
  return r;
}

// A job the continuous batch does not take (beam search) whose client went away before the
// worker reached it is answered with the cancellation, undecoded; the job beside it is decoded.
TEST_F(Continuous, ACancelledBeamJobIsNeverStarted) {
  auto server = make_server();
  serve::Scheduler scheduler(*server, 16);
  const serve::Request r = beam_request(4, 0);
  auto gone = std::make_shared<std::atomic<bool>>(true);
  auto cancelled = scheduler.submit({r}, {}, gone);
  auto kept = scheduler.submit({r}, {}, std::make_shared<std::atomic<bool>>(false));
  ASSERT_TRUE(cancelled && kept);
  const std::vector<serve::Reply> a = cancelled->get(), b = kept->get();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_NE(a[0].error.find("cancelled"), std::string::npos) << a[0].error;
  EXPECT_TRUE(a[0].sequences.empty());
  ASSERT_EQ(b.size(), 1u);
  EXPECT_TRUE(b[0].error.empty()) << b[0].error;
  EXPECT_EQ(b[0].sequences.at(0).sequence.tokens, alone("lora", r.text, *r.generation)[0].tokens);
}

// A beam-search job whose client goes away while it decodes stops at the next step.
TEST_F(Continuous, ABeamJobStopsWhenItsClientGoesAway) {
  auto server = make_server();
  serve::Scheduler scheduler(*server, 16);
  const serve::Request r = beam_request(20000, 20000);  // minutes of decoding unless stopped
  auto gone = std::make_shared<std::atomic<bool>>(false);
  auto job = scheduler.submit({r}, {}, gone);
  ASSERT_TRUE(job);
  // Once the worker has taken it (no input queued), it decodes; then its client leaves.
  for (int i = 0; i < 1000 && scheduler.queued_inputs() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(scheduler.queued_inputs(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  *gone = true;
  ASSERT_EQ(job->wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "the beam search went on after its client left";
  const std::vector<serve::Reply> a = job->get();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_NE(a[0].error.find("cancelled"), std::string::npos) << a[0].error;
  EXPECT_TRUE(a[0].sequences.empty());
}

}  // namespace
}  // namespace compacter
