// `compacter bench` (the paper's Table 3): seconds per training step, examples per second, peak
// memory, their difference to full fine-tuning, trainable parameters and the step's achieved
// GFLOP/s as a share of the machine's measured matrix-multiply rate, for each method on random
// tokens. Every method runs in its own child process (this program re-executed with the hidden
// subcommand `bench-worker`, which prints one JSON line), so each peak memory is that method's.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "commands.h"
#include "compacter/core/error.h"
#include "compacter/io/t5_config.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "compacter/train/bench.h"
#include "method_options.h"

extern char** environ;

namespace compacter::cli {

namespace {

using nlohmann::json;

// Settings shared by `bench` and `bench-worker`.
struct RunSettings {
  std::string model_config = "t5-small";
  int64_t batch = 16;
  int64_t source_len = 128;
  int64_t target_len = 3;
  int64_t steps = 5;
  int64_t warmup = 1;
  std::string device = "cpu";
  std::string dtype = "fp32";
  uint64_t seed = 0;
};

struct BenchCli {
  RunSettings run;
  std::string profile_dir;  // non-empty: DIR/profile-METHOD.json per method
  std::string methods = "all";
  bool json_output = false;
  MethodOptions method;
  CLI::Option* init_seed = nullptr;
};

struct WorkerCli {
  RunSettings run;
  std::string profile_file;
  std::string method;
  std::string options_json = "{}";
  uint64_t init_seed = 0;
};

constexpr double kLearningRate = 3e-4;

void add_run_options(CLI::App& cmd, RunSettings& r) {
  cmd.add_option("--model-config", r.model_config,
                 builtin_t5_config_names() + ", or a folder / config.json (random weights)")
      ->capture_default_str();
  cmd.add_option("--batch", r.batch, "examples per step")->capture_default_str();
  cmd.add_option("--source-len", r.source_len, "source tokens per example")->capture_default_str();
  cmd.add_option("--target-len", r.target_len, "target tokens per example (the last is eos)")
      ->capture_default_str();
  cmd.add_option("--steps", r.steps, "timed training steps per method")->capture_default_str();
  cmd.add_option("--warmup", r.warmup, "untimed training steps before them")->capture_default_str();
  cmd.add_option("--device", r.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd.add_option("--dtype", r.dtype,
                 "fp32, bf16 (every tensor bf16) or autocast-bf16 (fp32 weights and optimizer, "
                 "bf16 matrix products)")
      ->capture_default_str();
  cmd.add_option("--seed", r.seed, "seed of the tokens, the methods' init and dropout")
      ->capture_default_str();
}

// What --dtype asks for: the weights' dtype, bf16 autocast or not, and the matrix products' dtype.
struct Precision {
  torch::ScalarType weights = torch::kFloat32;
  bool autocast = false;
  torch::ScalarType products = torch::kFloat32;
};

Precision parse_precision(const std::string& text) {
  Precision p;
  if (text == "autocast-bf16") {
    p.autocast = true;
    p.products = torch::kBFloat16;
    return p;
  }
  p.weights = p.products = nn::parse_dtype(text);
  return p;
}

void check_run_settings(const RunSettings& r) {
  check(r.batch >= 1, "--batch must be at least 1, got ", r.batch);
  check(r.source_len >= 1, "--source-len must be at least 1, got ", r.source_len);
  check(r.target_len >= 1, "--target-len must be at least 1, got ", r.target_len);
  check(r.steps >= 1, "--steps must be at least 1, got ", r.steps);
  check(r.warmup >= 0, "--warmup must not be negative, got ", r.warmup);
}

// "all" or a comma list of known methods, each once.
std::vector<std::string> parse_methods(const std::string& text) {
  std::vector<std::string> out;
  if (text == "all") {
    for (const auto& m : peft::all_methods()) out.push_back(m.name);
    return out;
  }
  std::stringstream in(text);
  std::set<std::string> seen;
  for (std::string name; std::getline(in, name, ',');) {
    check(!name.empty(), "--methods: empty name in \"", text, "\"");
    check(name != "all", "--methods: \"all\" cannot be combined with other names");
    peft::find_method(name);  // throws, listing the known methods
    check(seen.insert(name).second, "--methods: ", name, " is listed twice");
    out.push_back(name);
  }
  check(!out.empty(), "--methods: no method given");
  return out;
}

// ---- the worker: one method, one JSON line on stdout ----

json optional_bytes(int64_t bytes) {
  return bytes >= 0 ? json(bytes) : json(nullptr);
}

void run_worker(const WorkerCli& w) {
  check_run_settings(w.run);
  train::StepBenchSettings s;
  s.config = resolve_t5_config(w.run.model_config);
  s.method = w.method;
  s.options = peft::method_defaults(w.method);
  peft::options_from_json(json::parse(w.options_json), "bench-worker --options", s.options);
  s.batch = w.run.batch;
  s.source_len = w.run.source_len;
  s.target_len = w.run.target_len;
  s.steps = w.run.steps;
  s.warmup = w.run.warmup;
  s.device = nn::parse_device(w.run.device);
  const Precision precision = parse_precision(w.run.dtype);
  s.dtype = precision.weights;
  s.bf16_autocast = precision.autocast;
  s.seed = w.run.seed;
  s.init_seed = w.init_seed;
  s.learning_rate = kLearningRate;
  s.profile_path = w.profile_file;
  const train::StepBenchResult r = train::benchmark_training_steps(s, [&](const std::string& line) {
    std::cerr << "[bench] " << w.method << ": " << line << "\n" << std::flush;
  });
  const double gflops = r.step_flops / r.mean_seconds / 1e9;
  json j = {{"method", w.method},
            {"seconds_per_step", r.mean_seconds},
            {"seconds_per_step_min", r.min_seconds},
            {"step_seconds", r.step_seconds},
            {"examples_per_second", r.examples_per_second},
            {"peak_memory_bytes", optional_bytes(r.peak_memory_bytes)},
            {"peak_memory_kind", r.peak_memory_kind},
            {"trainable_parameters", r.trainable_parameters},
            {"backbone_parameters", r.backbone_parameters},
            {"trainable_percent", r.trainable_percent},
            {"encoder_length", r.encoder_length},
            {"forward_gflop", r.forward.total() / 1e9},
            {"flop_multiplier", r.weight_gradients ? 3 : 2},
            {"step_gflop", r.step_flops / 1e9},
            {"gflops_per_second", gflops},
            {"threads", torch::get_num_threads()},
            {"last_loss", r.last_loss}};
  if (r.peak_memory_bytes < 0)
    j["peak_memory_note"] = "this build's libtorch has no CUDA caching-allocator statistics";
  std::cout << j.dump() << "\n" << std::flush;
}

// ---- the parent ----

struct ChildResult {
  int status = 0;
  std::string out;
  std::string err_tail;
};

// The last `count` non-empty lines of `text`, each ending in a newline.
std::string tail_lines(const std::string& text, size_t count) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  std::string out;
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    out += lines[i] + "\n";
  return out;
}

// Runs `exe args`, echoing its stderr to ours as it comes and keeping its stdout and the end of
// its stderr.
ChildResult run_child(const std::string& exe, const std::vector<std::string>& args) {
  int out_pipe[2], err_pipe[2];
  check(pipe2(out_pipe, O_CLOEXEC) == 0 && pipe2(err_pipe, O_CLOEXEC) == 0,
        "bench: cannot create pipes: ", std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<std::string> all{exe};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawned != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw Error(cat("bench: cannot start ", exe, ": ", std::strerror(spawned)));
  }
  ChildResult r;
  std::string err;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      if (i == 0) {
        r.out.append(buf, static_cast<size_t>(n));
      } else {
        std::cerr.write(buf, n);
        std::cerr.flush();
        err.append(buf, static_cast<size_t>(n));
        if (err.size() > 64 * 1024) err.erase(0, err.size() - 16 * 1024);
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  r.err_tail = tail_lines(err, 12);
  return r;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return cat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return cat("killed by signal ", WTERMSIG(status));
  return "ended abnormally";
}

std::vector<std::string> worker_args(const RunSettings& r, const std::string& method,
                                     const json& options, uint64_t init_seed) {
  const std::pair<const char*, std::string> flags[] = {
      {"--model-config", r.model_config},
      {"--method", method},
      {"--options", options.dump()},
      {"--init-seed", std::to_string(init_seed)},
      {"--batch", std::to_string(r.batch)},
      {"--source-len", std::to_string(r.source_len)},
      {"--target-len", std::to_string(r.target_len)},
      {"--steps", std::to_string(r.steps)},
      {"--warmup", std::to_string(r.warmup)},
      {"--device", r.device},
      {"--dtype", r.dtype},
      {"--seed", std::to_string(r.seed)}};
  std::vector<std::string> args{"bench-worker"};
  for (const auto& [flag, value] : flags) {
    args.push_back(flag);
    args.push_back(value);
  }
  return args;
}

json gemm_json(const train::GemmRate& g) {
  return {{"m", g.m},
          {"n", g.n},
          {"k", g.k},
          {"best_gflops", g.best_gflops},
          {"median_gflops", g.median_gflops}};
}

// The representative shape (B*S) x d_model x d_ff and a square one, in `dtype`.
json measure_gemms(const T5Config& c, const RunSettings& r, torch::Device device,
                   torch::ScalarType dtype) {
  const int64_t square = device.is_cuda() ? 2048 : 1024;
  const auto shape = train::measure_gemm(r.batch * r.source_len, c.d_ff, c.d_model, device, dtype);
  const auto sq = train::measure_gemm(square, square, square, device, dtype);
  return {{"representative", gemm_json(shape)},
          {"square", gemm_json(sq)},
          {"best_gflops", std::max(shape.best_gflops, sq.best_gflops)}};
}

std::string bench_fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string number_or_dash(const json& v, int digits) {
  return v.is_number() ? bench_fixed(v.get<double>(), digits) : "-";
}

void print_table(const json& doc) {
  const json& st = doc["settings"];
  const json& m = doc["machine"];
  std::cout << "model " << st["model_config"].get<std::string>() << ", batch " << st["batch"]
            << ", source " << st["source_len"] << ", target " << st["target_len"] << ", "
            << st["steps"] << " timed steps (+" << st["warmup"] << " warm-up), "
            << st["device"].get<std::string>() << " " << st["dtype"].get<std::string>() << ", "
            << m["cores"] << " threads, " << m["cpu_model"].get<std::string>() << ", libtorch "
            << m["libtorch"].get<std::string>() << "\n";
  std::cout << std::left << std::setw(12) << "method" << std::right << std::setw(12) << "trainable"
            << std::setw(9) << "%" << std::setw(10) << "s/step" << std::setw(10) << "min s"
            << std::setw(9) << "ex/s" << std::setw(9) << "time%" << std::setw(11) << "peak MB"
            << std::setw(9) << "mem%" << std::setw(10) << "GFLOP/s" << std::setw(8) << "%GEMM"
            << "\n";
  for (const json& r : doc["methods"]) {
    std::cout << std::left << std::setw(12) << r["method"].get<std::string>() << std::right;
    if (r.contains("error")) {
      std::cout << " failed: " << r["error"].get<std::string>() << "\n";
      continue;
    }
    const json& peak = r["peak_memory_bytes"];
    std::cout << std::setw(12) << r["trainable_parameters"].get<int64_t>() << std::setw(9)
              << bench_fixed(r["trainable_percent"].get<double>(), 3) << std::setw(10)
              << bench_fixed(r["seconds_per_step"].get<double>(), 3) << std::setw(10)
              << bench_fixed(r["seconds_per_step_min"].get<double>(), 3) << std::setw(9)
              << bench_fixed(r["examples_per_second"].get<double>(), 1) << std::setw(9)
              << number_or_dash(r["time_diff_percent"], 1) << std::setw(11)
              << (peak.is_number() ? bench_fixed(peak.get<double>() / 1e6, 1) : "-") << std::setw(9)
              << number_or_dash(r["memory_diff_percent"], 1) << std::setw(10)
              << bench_fixed(r["gflops_per_second"].get<double>(), 1) << std::setw(8)
              << bench_fixed(r["percent_of_gemm"].get<double>(), 1) << "\n";
  }
  const json& g = doc["gemm"];
  const std::string dtype = g["dtype"].get<std::string>();
  const json& rate = g[dtype];
  const json& rep = rate["representative"];
  const json& sq = rate["square"];
  std::cout << "GEMM " << dtype << " (torch::mm, best of " << g["repeats"] << "): " << rep["m"]
            << "x" << rep["k"] << " by " << rep["k"] << "x" << rep["n"]
            << " (B*S x d_model x d_ff) " << bench_fixed(rep["best_gflops"].get<double>(), 1)
            << " GFLOP/s, " << sq["m"] << "^3 " << bench_fixed(sq["best_gflops"].get<double>(), 1)
            << " GFLOP/s; %GEMM is of the higher, "
            << bench_fixed(rate["best_gflops"].get<double>(), 1) << " GFLOP/s\n";
  std::cout << "time% / mem%: difference to full fine-tuning; peak memory: "
            << (st["device"].get<std::string>().rfind("cuda", 0) == 0
                    ? "CUDA peak allocated bytes"
                    : "peak resident set (VmHWM) of the method's process")
            << "; model FLOPs per step: 3 x forward (full, said), 2 x forward (frozen backbone)\n";
}

void run_bench(BenchCli& o) {
  // Everything that can be checked is checked before the first child runs.
  check(o.method.method.empty(), "bench takes --methods LIST (or all), not --method");
  check_run_settings(o.run);
  const std::vector<std::string> methods = parse_methods(o.methods);
  const T5Config config = resolve_t5_config(o.run.model_config);
  const torch::Device device = nn::parse_device(o.run.device);
  const torch::ScalarType dtype = parse_precision(o.run.dtype).products;
  const uint64_t init_seed =
      o.init_seed && o.init_seed->count() > 0 ? o.method.init_seed : o.run.seed;
  std::vector<json> options;
  for (const auto& name : methods) {
    MethodOptions m = o.method;
    m.method = name;
    options.push_back(peft::options_to_json(resolve_peft_options(m)));
  }
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();

  std::cerr << "[bench] measuring the matrix-multiply rate ...\n";
  json gemm = {{"repeats", 5}, {"dtype", o.run.dtype}};
  gemm["fp32"] = measure_gemms(config, o.run, device, torch::kFloat32);
  if (dtype != torch::kFloat32) gemm[o.run.dtype] = measure_gemms(config, o.run, device, dtype);
  const double gemm_best = gemm[o.run.dtype]["best_gflops"].get<double>();

  if (!o.profile_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.profile_dir, ec);
    check(!ec && std::filesystem::is_directory(o.profile_dir), "--profile ", o.profile_dir,
          ": cannot create the folder (", ec.message(), ")");
  }
  std::vector<json> results;
  std::vector<std::string> failed;
  for (size_t i = 0; i < methods.size(); ++i) {
    const std::string& name = methods[i];
    std::cerr << "[bench] method " << i + 1 << "/" << methods.size() << ": " << name << "\n";
    std::vector<std::string> args = worker_args(o.run, name, options[i], init_seed);
    if (!o.profile_dir.empty()) {
      args.push_back("--profile");
      args.push_back(o.profile_dir + "/profile-" + name + ".json");
    }
    const ChildResult child = run_child(exe, args);
    json r;
    bool ok = WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0;
    if (ok) {
      try {
        r = json::parse(tail_lines(child.out, 1));
        ok = r.is_object() && r.contains("seconds_per_step");
      } catch (const json::exception&) {
        ok = false;
      }
    }
    if (!ok) {
      const std::string why = cat("method ", name, " failed (", describe_status(child.status), ")");
      std::cerr << "compacter: error: " << why << "; the end of its stderr:\n"
                << (child.err_tail.empty() ? "(empty)\n" : child.err_tail);
      if (!child.err_tail.empty() && child.err_tail.back() != '\n') std::cerr << "\n";
      std::string last = tail_lines(child.err_tail, 1);
      while (!last.empty() && last.back() == '\n') last.pop_back();
      results.push_back({{"method", name}, {"error", cat(why, last.empty() ? "" : ": ", last)}});
      failed.push_back(name);
      continue;
    }
    r["percent_of_gemm"] = 100.0 * r["gflops_per_second"].get<double>() / gemm_best;
    results.push_back(r);
  }

  // Differences to full fine-tuning, as in Table 3.
  const json* full = nullptr;
  for (const json& r : results)
    if (r["method"] == "full" && !r.contains("error")) full = &r;
  for (json& r : results) {
    if (r.contains("error")) continue;
    r["time_diff_percent"] = nullptr;
    r["memory_diff_percent"] = nullptr;
    if (!full) continue;
    const double t0 = (*full)["seconds_per_step"].get<double>();
    r["time_diff_percent"] = 100.0 * (r["seconds_per_step"].get<double>() - t0) / t0;
    const json& m0 = (*full)["peak_memory_bytes"];
    const json& m = r["peak_memory_bytes"];
    if (m0.is_number() && m.is_number() && m0.get<double>() > 0)
      r["memory_diff_percent"] = 100.0 * (m.get<double>() - m0.get<double>()) / m0.get<double>();
  }

  json doc = {{"machine",
               {{"cores", torch::get_num_threads()},
                {"cpu_model", train::cpu_model_name()},
                {"libtorch", TORCH_VERSION},
                {"compacter", COMPACTER_VERSION}}},
              {"settings",
               {{"model_config", o.run.model_config},
                {"methods", methods},
                {"batch", o.run.batch},
                {"source_len", o.run.source_len},
                {"target_len", o.run.target_len},
                {"steps", o.run.steps},
                {"warmup", o.run.warmup},
                {"device", o.run.device},
                {"dtype", o.run.dtype},
                {"seed", o.run.seed},
                {"init_seed", init_seed},
                {"learning_rate", kLearningRate},
                {"max_grad_norm", 1.0},
                {"flop_rule",
                 "matrix-multiply FLOPs of T5 (2mnk per product); a step is 3 x forward when the "
                 "backbone's weights need gradients (full, said), 2 x forward otherwise"}}},
              {"gemm", gemm},
              {"methods", results}};
  if (o.json_output)
    std::cout << doc.dump(2) << "\n";
  else
    print_table(doc);
  if (!failed.empty()) {
    std::string names;
    for (const auto& n : failed) names += (names.empty() ? "" : ", ") + n;
    throw Error(cat(failed.size(), " of ", methods.size(), " methods failed: ", names));
  }
}

}  // namespace

void add_bench_commands(CLI::App& app) {
  auto o = std::make_shared<BenchCli>();
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Time training steps of each method on random tokens, one process per method (the "
      "paper's Table 3): s/step, examples/s, peak memory, difference to full fine-tuning, "
      "trainable parameters, achieved GFLOP/s and % of the measured GEMM rate. Model FLOPs: "
      "T5's matrix multiplies (2mnk); a step is 3 x forward for full and said (backbone weight "
      "gradients), 2 x forward for frozen-backbone methods");
  add_run_options(*cmd, o->run);
  cmd->add_option("--methods", o->methods, "all, or a comma list of methods")
      ->capture_default_str();
  cmd->add_flag("--json", o->json_output, "print one JSON document");
  cmd->add_option("--profile", o->profile_dir,
                  "write a Chrome trace of each method's timed steps (libtorch's profiler) to "
                  "DIR/profile-METHOD.json; bench/profile_summary.py sums it by operator. "
                  "Profiling slows the steps: time without it (DIR is created)");
  add_method_options(*cmd, o->method, false);
  o->init_seed = cmd->get_option("--init-seed");
  cmd->get_option("--method")->group("");  // bench takes --methods; --method is an error
  cmd->callback([o] { run_bench(*o); });

  // The child of `bench`: one method, one JSON line. Hidden from --help.
  auto w = std::make_shared<WorkerCli>();
  CLI::App* worker = app.add_subcommand("bench-worker", "one method of `compacter bench`");
  worker->group("");
  add_run_options(*worker, w->run);
  worker->add_option("--method", w->method)->required();
  worker->add_option("--options", w->options_json, "the method's options as JSON");
  worker->add_option("--init-seed", w->init_seed);
  worker->add_option("--profile", w->profile_file);
  worker->callback([w] { run_worker(*w); });
}

}  // namespace compacter::cli
