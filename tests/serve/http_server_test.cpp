// `compacter serve --http 127.0.0.1:0` as a separate process, talked to with a real HTTP client
// (cpp-httplib's) over loopback: every endpoint and error status, auth on and off, a list
// request, per-request settings, streaming, and shutdown with a request in flight. Outputs are
// checked against decoding run directly in this process (nn::load_t5 + peft::load_adapter +
// decoding::generate: no server code), not against the server itself.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "compacter/data/tokenizer.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/nn/fingerprint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "compacter/train/decoding/decode.h"
#include "support/adapter_models.h"
#include "support/test_support.h"

extern char** environ;

namespace compacter {
namespace {

using Clock = std::chrono::steady_clock;

// The program started with `args`, its stderr collected; ready once it prints its address.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> all = {COMPACTER_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_strings(env);
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 2);
      close(fds[0]);
      close(fds[1]);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] {
      char buf[4096];
      for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
        std::lock_guard<std::mutex> lock(mutex_);
        err_.append(buf, static_cast<size_t>(n));
        changed_.notify_all();
      }
      close(fd);
      std::lock_guard<std::mutex> lock(mutex_);
      eof_ = true;
      changed_.notify_all();
    });
    // Up to 60 s for the model to load and the line "listening on http://127.0.0.1:PORT".
    std::unique_lock<std::mutex> lock(mutex_);
    const std::regex address("listening on http://127\\.0\\.0\\.1:([0-9]+)");
    changed_.wait_for(lock, std::chrono::seconds(60), [&] {
      std::smatch m;
      if (std::regex_search(err_, m, address)) port_ = std::stoi(m[1]);
      return port_ > 0 || eof_;
    });
  }
  ~ServerProcess() {
    if (pid_ > 0 && status_ < 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (reader_.joinable()) reader_.join();
  }
  int port() const { return port_; }
  std::string err() {
    std::lock_guard<std::mutex> lock(mutex_);
    return err_;
  }
  // Sends `sig` and waits up to `seconds` for the exit; the exit code (-1: still running, then
  // killed; 128 + n: killed by signal n).
  int stop(int sig, int seconds) {
    kill(pid_, sig);
    const auto until = Clock::now() + std::chrono::seconds(seconds);
    int status = 0;
    while (Clock::now() < until) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int status_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string err_;
  bool eof_ = false;
};

// Equal JSON, numbers other than integers within 1e-5.
void expect_same_reply(const nlohmann::json& got, const nlohmann::json& want,
                       const std::string& where) {
  if (got.is_number_float() && want.is_number()) {
    EXPECT_NEAR(got.get<double>(), want.get<double>(), 1e-5) << where;
    return;
  }
  ASSERT_EQ(got.type(), want.type()) << where;
  if (got.is_object()) {
    ASSERT_EQ(got.size(), want.size()) << where;
    for (const auto& item : want.items()) {
      ASSERT_TRUE(got.contains(item.key())) << where << "/" << item.key();
      expect_same_reply(got[item.key()], item.value(), where + "/" + item.key());
    }
  } else if (got.is_array()) {
    ASSERT_EQ(got.size(), want.size()) << where;
    for (size_t i = 0; i < got.size(); ++i)
      expect_same_reply(got[i], want[i], where + "/" + std::to_string(i));
  } else {
    EXPECT_EQ(got, want) << where;
  }
}

nlohmann::json body_of(const httplib::Result& r) {
  return r ? nlohmann::json::parse(r->body, nullptr, false) : nlohmann::json();
}

class HttpServe : public testing::AdapterModelsTest {
 protected:
  static void SetUpTestSuite() {
    if (!write_models(11, {"lora", "compacter++"}, 0.5)) return;
    // The folder runtime loads may read from: an adapter, a link out of it, a folder whose
    // config links out.
    std::filesystem::create_directories(root());
    testing::write_moved_adapter(model_dir(), "ia3", root() + "/ia3");
    std::filesystem::create_directory_symlink(adapter_dir("lora"), root() + "/escape");
    std::filesystem::create_directories(root() + "/sneaky");
    std::filesystem::create_symlink(adapter_dir("lora") + "/adapter_config.json",
                                    root() + "/sneaky/adapter_config.json");
    server_ = new ServerProcess({"serve",
                                 "--model",
                                 model_dir(),
                                 "--tokenizer",
                                 tokenizer(),
                                 "--max-new-tokens",
                                 "7",
                                 "--adapter",
                                 "lora=" + adapter_dir("lora"),
                                 "--adapter",
                                 "cpp=" + adapter_dir("compacter++"),
                                 "--http",
                                 "127.0.0.1:0",
                                 "--max-queue",
                                 "3",
                                 "--max-inputs-per-request",
                                 "4",
                                 "--max-request-new-tokens",
                                 "20",
                                 "--max-body-bytes",
                                 "20000",
                                 "--max-input-tokens",
                                 "64",
                                 "--admin-token",
                                 "4dmin",
                                 "--adapter-root",
                                 root()});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    AdapterModelsTest::TearDownTestSuite();
  }
  void SetUp() override {
    AdapterModelsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(server_->port(), 0) << server_->err();
  }
  static std::string root() { return models_dir().file("root"); }
  static httplib::Client client(int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(10);
    c.set_read_timeout(60);
    return c;
  }
  static httplib::Result post(const std::string& path, const std::string& body) {
    return client(server_->port()).Post(path.c_str(), body, "application/json");
  }
  // post(), again after a 503 (the suite's server queues 3 inputs at most), 100 tries at most.
  static httplib::Result post_retrying(const std::string& path, const std::string& body) {
    for (int i = 0;; ++i) {
      auto r = post(path, body);
      if (!r || r->status != 503 || i == 100) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // The adapter's sequences for `text`, decoded in this process without the server.
  static std::vector<decoding::Sequence> reference(const std::string& method,
                                                   const std::string& text,
                                                   const decoding::GenerationConfig& settings,
                                                   std::string* first_text = nullptr) {
    nn::T5Model model = testing::load_with_adapter(
        model_dir(), method.find('/') == std::string::npos ? adapter_dir(method) : method);
    const T5Tokenizer tok = T5Tokenizer::load(tokenizer());
    auto out = testing::decode_alone(*model, tok, text, settings);
    if (first_text) *first_text = tok.decode(out[0].tokens);
    return out;
  }
  static decoding::GenerationConfig settings() { return testing::t5_generation(7); }

  static ServerProcess* server_;
};
ServerProcess* HttpServe::server_ = nullptr;

TEST_F(HttpServe, HealthInfoAdaptersAndMetrics) {
  auto c = client(server_->port());
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(body_of(health)["status"], "ok");

  auto info = c.Get("/info");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->status, 200);
  const auto i = body_of(info);
  EXPECT_EQ(i["model_id"], model_dir());
  EXPECT_EQ(i["model_dtype"], "float32");
  EXPECT_EQ(i["model_device_type"], "cpu");
  EXPECT_EQ(i["version"], COMPACTER_VERSION);
  EXPECT_EQ(i["limits"]["max_queue"], 3);
  EXPECT_EQ(i["limits"]["max_request_new_tokens"], 20);
  EXPECT_EQ(i["default_parameters"]["max_new_tokens"], 7);

  auto adapters = c.Get("/adapters");
  ASSERT_TRUE(adapters);
  EXPECT_EQ(adapters->status, 200);
  const auto a = body_of(adapters);
  ASSERT_EQ(a.size(), 3u) << a.dump();
  EXPECT_EQ(a[0]["name"], "base");
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& x : a) by_name[x["name"]] = x;
  EXPECT_EQ(by_name["lora"]["method"], "lora");
  EXPECT_EQ(by_name["cpp"]["method"], "compacter++");
  EXPECT_EQ(by_name["lora"]["dir"], adapter_dir("lora"));
  // The adapter's own tensors, counted here from its file.
  for (const std::string name : {"lora", "cpp"}) {
    const std::string method = name == "cpp" ? "compacter++" : name;
    nn::T5Model model = nn::load_t5(model_dir()).model;
    model->resize_vocab(32100);
    peft::load_adapter(*model, adapter_dir(method));
    int64_t trained = 0;
    for (const auto& p : peft::trainable_parameters(*model)) trained += p.numel();
    EXPECT_GE(by_name[name]["own_parameters"].get<int64_t>(), trained) << name;
    EXPECT_EQ(by_name[name]["own_bytes"].get<int64_t>() % 4, 0);
    EXPECT_TRUE(by_name[name]["base_fingerprint"].is_null());  // saved without a base record
  }
  {
    nn::T5Model base = nn::load_t5(model_dir()).model;
    base->resize_vocab(32100);
    EXPECT_EQ(by_name["base"]["base_fingerprint"], nn::weights_fingerprint(*base));
  }
  ASSERT_TRUE(post("/generate", R"({"inputs": "metrics", "parameters": {"adapter": "lora"}})"));
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find(
                "compacter_requests_total{endpoint=\"generate\",status=\"200\",adapter=\"lora\"}"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("compacter_queue_inputs 0"), std::string::npos);
  EXPECT_NE(metrics->body.find("compacter_batch_inputs_bucket{le=\"+Inf\"}"), std::string::npos);
  EXPECT_NE(metrics->body.find("compacter_request_duration_seconds_count"), std::string::npos);
}

TEST_F(HttpServe, GreedyEqualsDecodingTheAdapterDirectly) {
  const std::vector<std::string> texts = {"rte sentence1: A cat sat. sentence2: A cat sits.",
                                          "hello world"};
  std::set<std::string> distinct;  // the adapters disagree, so a mix-up would show
  for (const std::string name : {"lora", "cpp"}) {
    const std::string method = name == "cpp" ? "compacter++" : name;
    for (const auto& text : texts) {
      std::string expected;
      const auto seqs = reference(method, text, settings(), &expected);
      distinct.insert(expected);
      auto r = post("/generate",
                    nlohmann::json{{"inputs", text}, {"parameters", {{"adapter", name}}}}.dump());
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
      const auto j = body_of(r);
      EXPECT_EQ(j["generated_text"], expected) << name << ": " << text;
      EXPECT_EQ(j["adapter"], name);
      EXPECT_FALSE(j.contains("details"));  // TGI's bare reply unless asked
    }
  }
  EXPECT_GE(distinct.size(), 3u);
  // A list: replies in order, each as alone; settings may differ between inputs.
  std::string e0, e1;
  reference("lora", texts[0], settings(), &e0);
  auto three = settings();
  three.max_new_tokens = 3;
  reference("compacter++", texts[1], three, &e1);
  auto r = post(
      "/generate",
      nlohmann::json::array(
          {{{"inputs", texts[0]}, {"parameters", {{"adapter", "lora"}}}},
           {{"inputs", texts[1]}, {"parameters", {{"adapter", "cpp"}, {"max_new_tokens", 3}}}}})
          .dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const auto list = body_of(r);
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["generated_text"], e0);
  EXPECT_EQ(list[1]["generated_text"], e1);

  // One adapter, three settings in one request: each input decoded with its own settings.
  auto beams = settings();
  beams.num_beams = 3;
  auto ngram = settings();
  ngram.no_repeat_ngram_size = 1;
  std::string g, b, n;
  reference("lora", texts[1], settings(), &g);
  reference("lora", texts[1], beams, &b);
  reference("lora", texts[1], ngram, &n);
  EXPECT_NE(g, n);  // the settings matter for this input
  auto mixed =
      post("/generate",
           nlohmann::json::array(
               {{{"inputs", texts[1]}, {"parameters", {{"adapter", "lora"}}}},
                {{"inputs", texts[1]}, {"parameters", {{"adapter", "lora"}, {"num_beams", 3}}}},
                {{"inputs", texts[1]},
                 {"parameters", {{"adapter", "lora"}, {"no_repeat_ngram_size", 1}}}}})
               .dump());
  ASSERT_TRUE(mixed);
  ASSERT_EQ(mixed->status, 200) << mixed->body;
  const auto m = body_of(mixed);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0]["generated_text"], g);
  EXPECT_EQ(m[1]["generated_text"], b);
  EXPECT_EQ(m[2]["generated_text"], n);
}

TEST_F(HttpServe, BeamsGiveTheNBestWithTokenDetails) {
  const std::string text = "translate English to German: The house is wonderful.";
  auto beams = settings();
  beams.num_beams = 4;
  beams.num_return_sequences = 3;
  const auto expected = reference("lora", text, beams);
  ASSERT_EQ(expected.size(), 3u);
  const T5Tokenizer tok = T5Tokenizer::load(tokenizer());
  auto r = post(
      "/generate",
      nlohmann::json{
          {"inputs", text},
          {"parameters",
           {{"adapter", "lora"}, {"num_beams", 4}, {"num_return_sequences", 3}, {"details", true}}}}
          .dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const auto j = body_of(r);
  const auto& d = j["details"];
  ASSERT_EQ(d["best_of_sequences"].size(), 2u) << j.dump();
  std::vector<nlohmann::json> seqs = {d};
  for (const auto& o : d["best_of_sequences"]) seqs.push_back(o);
  seqs[0]["generated_text"] = j["generated_text"];
  for (size_t k = 0; k < 3; ++k) {
    const auto& s = seqs[k];
    EXPECT_EQ(s["generated_text"], tok.decode(expected[k].tokens)) << k;
    // fp32 sums over differently shaped products (the server's batch against the reference's
    // single request) round apart: 1.0e-5 on a log-probability of -6.7 was seen.
    constexpr double kScoreTolerance = 3e-5;
    EXPECT_NEAR(s["score"].get<double>(), expected[k].score, kScoreTolerance) << k;
    EXPECT_EQ(s["generated_tokens"], expected[k].tokens.size());
    EXPECT_EQ(s["finish_reason"], expected[k].finished ? "eos_token" : "length");
    ASSERT_EQ(s["tokens"].size(), expected[k].tokens.size());
    std::string joined;
    for (size_t t = 0; t < expected[k].tokens.size(); ++t) {
      EXPECT_EQ(s["tokens"][t]["id"], expected[k].tokens[t]);
      EXPECT_NEAR(s["tokens"][t]["logprob"].get<double>(), expected[k].token_logprobs[t],
                  kScoreTolerance);
      joined += s["tokens"][t]["text"].get<std::string>();
    }
    EXPECT_EQ(joined, s["generated_text"]) << "token texts add up to the text";
  }
}

TEST_F(HttpServe, SamplingWithASeedRepeatsAndStreamingSendsOneEventPerToken) {
  const std::string body = nlohmann::json{
      {"inputs", "sample me"},
      {"parameters",
       {{"adapter", "cpp"},
        {"do_sample", true},
        {"seed", 1234},
        {"top_k", 20},
        {"num_return_sequences",
         2}}}}.dump();
  auto a = post("/generate", body);
  auto b = post("/generate", body);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->status, 200) << a->body;
  EXPECT_EQ(body_of(a), body_of(b));
  EXPECT_EQ(body_of(a)["details"]["seed"], 1234);
  // In one list (decoded in one batch, each input with its own random stream) each sampled
  // input still gets what it gets alone: the same samples, scores equal up to the rounding of
  // products over another number of rows.
  auto twice = post("/generate", "[" + body + ", " + body + "]");
  ASSERT_TRUE(twice);
  ASSERT_EQ(twice->status, 200) << twice->body;
  const auto both = body_of(twice);
  ASSERT_EQ(both.size(), 2u);
  expect_same_reply(both[0], body_of(a), "");
  expect_same_reply(both[1], body_of(a), "");
  // The draws follow the seed: another seed gives other samples (7 tokens from 32,100).
  nlohmann::json other_body = nlohmann::json::parse(body);
  other_body["parameters"]["seed"] = 99;
  auto other = post("/generate", other_body.dump());
  ASSERT_TRUE(other);
  EXPECT_NE(body_of(other)["generated_text"], body_of(a)["generated_text"]);

  auto whole = post("/generate", R"({"inputs": "stream me", "parameters": {"adapter": "lora",
                                     "details": true}})");
  auto stream = post("/generate_stream", R"({"inputs": "stream me", "parameters":
                                              {"adapter": "lora"}})");
  ASSERT_TRUE(whole && stream);
  ASSERT_EQ(stream->status, 200) << stream->body;
  EXPECT_EQ(stream->get_header_value("Content-Type"), "text/event-stream");
  const auto w = body_of(whole);
  std::vector<nlohmann::json> events;
  std::istringstream lines(stream->body);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("data:", 0) == 0) events.push_back(nlohmann::json::parse(line.substr(5)));
  ASSERT_EQ(events.size(), w["details"]["tokens"].size()) << stream->body;
  for (size_t t = 0; t < events.size(); ++t) {
    EXPECT_EQ(events[t]["token"], w["details"]["tokens"][t]);
    if (t + 1 < events.size()) {
      EXPECT_TRUE(events[t]["generated_text"].is_null());
    }
  }
  EXPECT_EQ(events.back()["generated_text"], w["generated_text"]);
  EXPECT_EQ(events.back()["details"]["finish_reason"], w["details"]["finish_reason"]);
}

TEST_F(HttpServe, EveryErrorStatusNamesWhatIsWrong) {
  struct Case {
    std::string path, body;
    int status;
    std::string type, message;
  };
  const std::vector<Case> cases = {
      {"/generate", "{\"inputs\": ", 400, "bad_request", "not JSON"},
      {"/generate", R"({"inputs": "x", "parameters": {"adapter": "lora", "nope": 1}})", 400,
       "bad_request", "unknown field \"nope\""},
      {"/generate", R"({"inputs": "x", "parameters": {"adapter": "lora", "top_k": "5"}})", 400,
       "bad_request", "parameters.top_k must be an integer"},
      {"/generate", R"({"inputs": "x"})", 400, "bad_request", "parameters.adapter is required"},
      {"/generate", R"({"sentence1": "x", "parameters": {"adapter": "lora"}})", 400, "bad_request",
       "records no task format"},
      {"/generate", R"({"inputs": "x", "parameters": {"adapter": "nope"}})", 404, "not_found",
       "unknown adapter \"nope\" (serving: base, cpp, lora)"},
      {"/nowhere", "{}", 404, "not_found", "no endpoint POST /nowhere"},
      {"/generate", "{\"inputs\": \"" + std::string(30000, 'x') + "\"}", 413, "payload_too_large",
       "max_body_bytes = 20000"},
      {"/generate", R"({"inputs": "x", "parameters": {"adapter": "lora", "max_new_tokens": 21}})",
       422, "validation", "above the server's limit max_request_new_tokens = 20"},
      {"/generate", R"({"inputs": "x", "parameters": {"adapter": "lora", "num_beams": 9}})", 422,
       "validation", "max_request_beams = 8"},
      {"/generate",
       R"({"inputs": "x", "parameters": {"adapter": "lora", "num_beams": 2,
           "num_return_sequences": 9}})",
       422, "validation", "max_request_sequences = 8"},
      {"/generate", R"([{"inputs": "a"}, {"inputs": "b"}, {"inputs": "c"}, {"inputs": "d"},
                        {"inputs": "e"}])",
       422, "validation", "max_inputs_per_request = 4"},
      {"/generate_stream",
       R"({"inputs": "x", "parameters": {"adapter": "lora", "num_beams": 2,
           "num_return_sequences": 2}})",
       422, "validation", "not streamed"},
  };
  for (const Case& c : cases) {
    auto r = post(c.path, c.body);
    ASSERT_TRUE(r) << c.body.substr(0, 100);
    EXPECT_EQ(r->status, c.status) << c.body.substr(0, 100) << "\n" << r->body;
    const auto j = body_of(r);
    EXPECT_EQ(j["error_type"], c.type) << r->body;
    EXPECT_NE(j["error"].get<std::string>().find(c.message), std::string::npos) << r->body;
  }
  // Many words: more input tokens than max_input_tokens (64), named.
  std::string words;
  for (int i = 0; i < 100; ++i) words += "word ";
  auto r = post("/generate",
                nlohmann::json{{"inputs", words}, {"parameters", {{"adapter", "lora"}}}}.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422);
  EXPECT_NE(r->body.find("above the server's limit max_input_tokens = 64"), std::string::npos)
      << r->body;
  // 503 with Retry-After: more inputs than the queue holds (max_queue 3) cannot be queued.
  auto full = post("/generate", R"([{"inputs": "a", "parameters": {"adapter": "lora"}},
                                     {"inputs": "b", "parameters": {"adapter": "lora"}},
                                     {"inputs": "c", "parameters": {"adapter": "lora"}},
                                     {"inputs": "d", "parameters": {"adapter": "lora"}}])");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->status, 503) << full->body;
  EXPECT_EQ(full->get_header_value("Retry-After"), "1");
  EXPECT_EQ(body_of(full)["error_type"], "overloaded");
  // A GET where only POST is served.
  auto get = client(server_->port()).Get("/generate");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 404);
}

// POST /adapters and DELETE /adapters/NAME while another adapter's requests keep coming: every
// one of those is answered (as alone), the loaded adapter answers as decoding it directly does,
// and paths that leave --adapter-root are refused.
TEST_F(HttpServe, AdaptersLoadAndUnloadUnderTraffic) {
  std::string expected;
  reference("lora", "hello world", settings(), &expected);
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, good{0};
  std::thread traffic([&] {
    auto c = client(server_->port());
    for (int i = 0; i < 200 && !stop; ++i) {
      auto r =
          c.Post("/generate", R"({"inputs": "hello world", "parameters": {"adapter": "lora"}})",
                 "application/json");
      ++sent;
      if (r && r->status == 200 && body_of(r)["generated_text"] == expected) ++good;
    }
  });
  auto c = client(server_->port());
  const httplib::Headers admin = {{"Authorization", "Bearer 4dmin"}};
  auto load = [&](const nlohmann::json& body, const httplib::Headers& h) {
    return c.Post("/adapters", h, body.dump(), "application/json");
  };
  struct Refusal {
    nlohmann::json body;
    httplib::Headers headers;
    int status;
    std::string message;
  };
  const std::vector<Refusal> refusals = {
      {{{"name", "x"}, {"path", "ia3"}}, {}, 401, "admin token"},
      {{{"name", "x"}, {"path", "ia3"}}, {{"Authorization", "Bearer 4dmiN"}}, 401, "admin token"},
      {{{"name", "x"}, {"path", "../adapter-lora"}}, admin, 403, "\"..\" is not allowed"},
      {{{"name", "x"}, {"path", adapter_dir("lora")}}, admin, 403, "outside --adapter-root"},
      {{{"name", "x"}, {"path", "escape"}}, admin, 403, "outside --adapter-root"},
      {{{"name", "x"}, {"path", "sneaky"}}, admin, 403, "adapter_config.json resolves outside"},
      {{{"name", "x"}, {"path", "missing"}}, admin, 404, "no such folder"},
      {{{"name", "lora"}, {"path", "ia3"}}, admin, 409, "served already"},
      {{{"name", "base"}, {"path", "ia3"}}, admin, 409, "reserved"},
      {{{"name", "a/b"}, {"path", "ia3"}}, admin, 400, "\"name\""},
      {{{"name", "x"}, {"path", "ia3"}, {"extra", 1}}, admin, 400, "unknown field \"extra\""},
  };
  for (const auto& r : refusals) {
    auto res = load(r.body, r.headers);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, r.status) << r.body.dump() << ": " << res->body;
    EXPECT_NE(body_of(res)["error"].get<std::string>().find(r.message), std::string::npos)
        << r.body.dump() << ": " << res->body;
  }
  auto loaded = load({{"name", "late"}, {"path", "ia3"}}, admin);
  ASSERT_TRUE(loaded);
  ASSERT_EQ(loaded->status, 201) << loaded->body;
  EXPECT_EQ(body_of(loaded)["method"], "ia3");
  EXPECT_EQ(body_of(loaded)["mixed_batches"], true);
  std::string late;
  reference(root() + "/ia3", "hello world", settings(), &late);
  auto gen = post("/generate", R"({"inputs": "hello world", "parameters": {"adapter": "late"}})");
  ASSERT_TRUE(gen);
  ASSERT_EQ(gen->status, 200) << gen->body;
  EXPECT_EQ(body_of(gen)["generated_text"], late);
  EXPECT_NE(late, expected);
  auto listed = c.Get("/adapters");
  ASSERT_TRUE(listed);
  EXPECT_NE(listed->body.find("\"late\""), std::string::npos);
  auto no_token = c.Delete("/adapters/late");
  ASSERT_TRUE(no_token);
  EXPECT_EQ(no_token->status, 401);
  auto removed = c.Delete("/adapters/late", admin);
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->status, 200) << removed->body;
  auto gone = post("/generate", R"({"inputs": "hello world", "parameters": {"adapter": "late"}})");
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->status, 404) << gone->body;
  auto again = c.Delete("/adapters/late", admin);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 404);
  auto base = c.Delete("/adapters/base", admin);
  ASSERT_TRUE(base);
  EXPECT_EQ(base->status, 422);
  stop = true;
  traffic.join();
  EXPECT_GT(sent.load(), 0);
  EXPECT_EQ(good.load(), sent.load()) << "every request of the traffic answered as alone";
}

// Requests for different adapters sent at once (each its own HTTP request, so they meet in the
// continuous batch) each get what decoding alone gives, streamed ones too.
TEST_F(HttpServe, ConcurrentRequestsForDifferentAdaptersMatchDecodingAlone) {
  const std::vector<std::pair<std::string, std::string>> jobs = {{"lora", "one two three"},
                                                                 {"cpp", "four five"},
                                                                 {"base", "six"},
                                                                 {"lora", "seven eight"},
                                                                 {"cpp", "nine ten eleven twelve"},
                                                                 {"base", "thirteen"}};
  std::vector<std::string> expected, got(jobs.size()), streamed(jobs.size());
  for (const auto& [name, text] : jobs) {
    std::string e;
    if (name == "base") {
      torch::NoGradGuard no_grad;
      nn::T5Model model = nn::load_t5(model_dir()).model;
      model->resize_vocab(32100);
      model->eval();
      const T5Tokenizer tok = T5Tokenizer::load(tokenizer());
      const torch::Tensor input = torch::tensor(tok.encode(text, 512), torch::kLong).unsqueeze(0);
      e = tok.decode(
          decoding::generate(*model, input, torch::ones_like(input), settings())[0][0].tokens);
    } else {
      reference(name == "cpp" ? "compacter++" : name, text, settings(), &e);
    }
    expected.push_back(e);
  }
  std::vector<std::thread> threads;
  for (size_t i = 0; i < jobs.size(); ++i)
    threads.emplace_back([&, i] {
      const std::string body =
          nlohmann::json{{"inputs", jobs[i].second}, {"parameters", {{"adapter", jobs[i].first}}}}
              .dump();
      auto r = post_retrying("/generate", body);
      if (r && r->status == 200) got[i] = body_of(r)["generated_text"];
      auto s = post_retrying("/generate_stream", body);
      if (!s || s->status != 200) return;
      std::istringstream lines(s->body);
      for (std::string line; std::getline(lines, line);)
        if (line.rfind("data:", 0) == 0) {
          const auto e = nlohmann::json::parse(line.substr(5));
          if (e["generated_text"].is_string()) streamed[i] = e["generated_text"];
        }
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(got[i], expected[i]) << jobs[i].first << ": " << jobs[i].second;
    EXPECT_EQ(streamed[i], expected[i]) << jobs[i].first << ": " << jobs[i].second;
  }
  auto metrics = client(server_->port()).Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("compacter_time_to_first_token_seconds_count"), std::string::npos);
  EXPECT_NE(metrics->body.find("compacter_adapter_bytes{adapter=\"lora\"}"), std::string::npos);
  EXPECT_NE(metrics->body.find("compacter_running_rows"), std::string::npos);
}

// "X-Deadline-Ms": a request that cannot finish in time gets 504 (its rows leave the batch);
// a bad value is 400; a generous one changes nothing.
// A second server on a port in use fails with a message and a non-zero exit (httplib's default
// SO_REUSEPORT would let it start and share the first one's traffic).
TEST_F(HttpServe, APortInUseIsRefused) {
  ServerProcess second({"serve", "--model", model_dir(), "--tokenizer", tokenizer(), "--http",
                        "127.0.0.1:" + std::to_string(server_->port())});
  EXPECT_EQ(second.port(), 0) << second.err();
  EXPECT_NE(second.stop(0, 30), 0) << second.err();
  EXPECT_NE(second.err().find("cannot listen there"), std::string::npos) << second.err();
  auto r = client(server_->port()).Get("/health");  // the first one still answers
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServe, ADeadlineEndsARequestWith504) {
  auto c = client(server_->port());
  const std::string body =
      R"({"inputs": "x", "parameters": {"adapter": "lora", "max_new_tokens": 20}})";
  auto late = c.Post("/generate", {{"X-Deadline-Ms", "1"}}, body, "application/json");
  ASSERT_TRUE(late);
  EXPECT_EQ(late->status, 504) << late->body;
  EXPECT_EQ(body_of(late)["error_type"], "timeout");
  auto bad = c.Post("/generate", {{"X-Deadline-Ms", "soon"}}, body, "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("X-Deadline-Ms"), std::string::npos);
  auto fine = c.Post("/generate", {{"X-Deadline-Ms", "60000"}}, body, "application/json");
  ASSERT_TRUE(fine);
  EXPECT_EQ(fine->status, 200) << fine->body;
}

TEST_F(HttpServe, AnApiKeyGuardsEveryEndpoint) {
  ServerProcess keyed({"serve", "--model", model_dir(), "--tokenizer", tokenizer(),
                       "--max-new-tokens", "3", "--http", "127.0.0.1:0"},
                      {"COMPACTER_API_KEY=s3cret"});
  ASSERT_GT(keyed.port(), 0) << keyed.err();
  EXPECT_NE(keyed.err().find("(API key required)"), std::string::npos) << keyed.err();
  auto c = client(keyed.port());
  for (const std::string path : {"/health", "/info", "/adapters", "/metrics"}) {
    auto none = c.Get(path.c_str());
    ASSERT_TRUE(none);
    EXPECT_EQ(none->status, 401) << path;
    EXPECT_EQ(body_of(none)["error_type"], "unauthorized");
    auto wrong = c.Get(path.c_str(), {{"Authorization", "Bearer s3creT"}});
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401) << path;
    auto right = c.Get(path.c_str(), {{"Authorization", "Bearer s3cret"}});
    ASSERT_TRUE(right);
    EXPECT_EQ(right->status, 200) << path;
  }
  auto off = c.Post("/adapters", {{"Authorization", "Bearer s3cret"}}, "{}", "application/json");
  ASSERT_TRUE(off);
  EXPECT_EQ(off->status, 403) << "no admin token: runtime loading is off";
  EXPECT_NE(off->body.find("--admin-token"), std::string::npos) << off->body;
  auto denied = c.Post("/generate", R"({"inputs": "x"})", "application/json");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);
  auto ok = c.Post("/generate", {{"Authorization", "Bearer s3cret"}}, R"({"inputs": "x"})",
                   "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(body_of(ok)["adapter"], "base");  // the only model: requests need not name it
  EXPECT_EQ(keyed.stop(SIGINT, 30), 0) << keyed.err();

  // The key from a file (its first line), which wins over nothing else: both at once are refused.
  const std::string key_file = models_dir().file("key.txt");
  testing::write_file(key_file, "fr0m-file\n");
  ServerProcess from_file({"serve", "--model", model_dir(), "--tokenizer", tokenizer(), "--http",
                           "127.0.0.1:0", "--api-key-file", key_file});
  ASSERT_GT(from_file.port(), 0) << from_file.err();
  auto f = client(from_file.port());
  auto no = f.Get("/health");
  ASSERT_TRUE(no);
  EXPECT_EQ(no->status, 401);
  auto yes = f.Get("/health", {{"Authorization", "Bearer fr0m-file"}});
  ASSERT_TRUE(yes);
  EXPECT_EQ(yes->status, 200);
  EXPECT_EQ(from_file.stop(SIGTERM, 30), 0) << from_file.err();
  auto both = testing::run_compacter("serve --model " + model_dir() + " --http 0 --api-key a " +
                                     "--api-key-file " + key_file);
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("give --api-key or --api-key-file, not both"), std::string::npos)
      << both.err;
  auto jsonl = testing::run_compacter("serve --model " + model_dir() + " --api-key a", "");
  EXPECT_NE(jsonl.exit_code, 0);
  EXPECT_NE(jsonl.err.find("--api-key is for --http"), std::string::npos) << jsonl.err;
}

TEST_F(HttpServe, SigtermAnswersTheRequestInFlightAndExitsZero) {
  // Every request decodes 300 tokens (min_new_tokens forbids </s> before), 4 inputs x 4 beams.
  ServerProcess slow({"serve", "--model", model_dir(), "--tokenizer", tokenizer(),
                      "--max-new-tokens", "300", "--min-new-tokens", "300", "--http",
                      "127.0.0.1:0"});
  ASSERT_GT(slow.port(), 0) << slow.err();
  std::atomic<bool> answered{false};
  int status = 0;
  nlohmann::json reply;
  std::thread request([&] {
    auto c = client(slow.port());
    auto r = c.Post("/generate", R"([{"inputs": "one", "parameters": {"num_beams": 4}},
                                     {"inputs": "two", "parameters": {"num_beams": 4}},
                                     {"inputs": "three", "parameters": {"num_beams": 4}},
                                     {"inputs": "four", "parameters": {"num_beams": 4}}])",
                    "application/json");
    if (r) {
      status = r->status;
      reply = body_of(r);
    }
    answered = true;
  });
  std::this_thread::sleep_for(
      std::chrono::milliseconds(static_cast<int>(300 * testing::time_scale())));
  const bool in_flight = !answered;
  const int code = slow.stop(SIGTERM, static_cast<int>(60 * testing::time_scale()));
  request.join();
  EXPECT_TRUE(in_flight) << "the request ended before the signal: make it longer";
  EXPECT_EQ(code, 0) << slow.err();
  EXPECT_EQ(status, 200);
  ASSERT_TRUE(reply.is_array()) << reply.dump();
  ASSERT_EQ(reply.size(), 4u);
  for (const auto& x : reply) {
    EXPECT_TRUE(x["generated_text"].is_string());
  }
  EXPECT_NE(slow.err().find("every request in flight was answered"), std::string::npos)
      << slow.err();
  // Nothing listens any more.
  auto after = client(slow.port()).Get("/health");
  EXPECT_FALSE(after);
}

// A raw connection to 127.0.0.1:`port` that has sent `path` with `body` and reads nothing; -1
// when it could not connect.
int send_and_leave_open(int port, const std::string& path, const std::string& body) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  const std::string request = "POST " + path +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

// A client that closes its connection while its request decodes cancels it: the rows leave the
// batch and the metrics count a 499 (nginx's "client closed request"), for a plain request
// (noticed on its socket while it waits) and for a stream (noticed when a token is sent).
TEST_F(HttpServe, AClientThatGoesAwayCancelsItsRequest) {
  // Every request would decode 20000 tokens (min_new_tokens forbids </s> before): minutes.
  ServerProcess slow({"serve", "--model", model_dir(), "--tokenizer", tokenizer(),
                      "--max-new-tokens", "20000", "--min-new-tokens", "20000",
                      "--max-request-new-tokens", "20000", "--http", "127.0.0.1:0"});
  ASSERT_GT(slow.port(), 0) << slow.err();
  auto c = client(slow.port());
  // Waits up to `seconds` for the metrics to contain every line of `want`.
  auto metrics_reach = [&](const std::vector<std::string>& want, int seconds) {
    std::string body;
    for (const auto until = Clock::now() + std::chrono::seconds(seconds); Clock::now() < until;) {
      auto r = c.Get("/metrics");
      body = r ? r->body : std::string();
      bool all = true;
      for (const auto& line : want) all = all && body.find(line + "\n") != std::string::npos;
      if (all) return std::string();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return body;
  };
  // Beam search (answered in one piece, not in the continuous batch): the worker's single answer
  // returns (one batch in the metrics) instead of decoding for minutes.
  const int beam = send_and_leave_open(slow.port(), "/generate",
                                       R"({"inputs": "stay", "parameters": {"num_beams": 2}})");
  ASSERT_GE(beam, 0) << std::strerror(errno);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  close(beam);
  EXPECT_EQ(metrics_reach({"compacter_requests_total{endpoint=\"generate\",status=\"499\","
                           "adapter=\"base\"} 1",
                           "compacter_batch_inputs_count 1"},
                          10),
            "")
      << "the beam search went on after its client left";
  for (const std::string endpoint : {"generate", "generate_stream"}) {
    const int fd = send_and_leave_open(slow.port(), "/" + endpoint, R"({"inputs": "stay"})");
    ASSERT_GE(fd, 0) << std::strerror(errno);
    EXPECT_EQ(metrics_reach({"compacter_running_rows 1"}, 30), "") << "never decoding";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    close(fd);
    const std::string counted = "compacter_requests_total{endpoint=\"" + endpoint +
                                "\",status=\"499\",adapter=\"base\"} " +
                                (endpoint == "generate" ? "2" : "1");
    EXPECT_EQ(metrics_reach({counted, "compacter_running_rows 0"}, 10), "")
        << endpoint << ": the request went on decoding after its client left";
  }
  auto r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body.find("status=\"200\",adapter=\"base\""), std::string::npos)
      << "a request ended on its own before its client left: make it longer\n"
      << r->body;
  EXPECT_EQ(slow.stop(SIGTERM, 30), 0) << slow.err();
}

}  // namespace
}  // namespace compacter
