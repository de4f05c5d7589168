// Table 3 (`compacter bench`): see table3.h.
#include "compacter/train/table3.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <set>
#include <sstream>

#include "compacter/core/error.h"
#include "compacter/core/subprocess.h"
#include "compacter/io/t5_config.h"
#include "compacter/kernels/report.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/train/bench.h"

namespace compacter::train {

using nlohmann::json;

namespace {

constexpr double kLearningRate = 3e-4;
constexpr double kMaxGradNorm = 1.0;
constexpr int kGemmRepeats = 5;

json optional_bytes(int64_t bytes) {
  return bytes >= 0 ? json(bytes) : json(nullptr);
}

json gemm_json(const GemmRate& g) {
  return {{"m", g.m},
          {"n", g.n},
          {"k", g.k},
          {"best_gflops", g.best_gflops},
          {"median_gflops", g.median_gflops}};
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string number_or_dash(const json& v, int digits) {
  return v.is_number() ? fixed(v.get<double>(), digits) : "-";
}

}  // namespace

json measure_gemm_rates(const T5Config& c, int64_t rows, torch::Device device,
                        torch::ScalarType dtype) {
  const int64_t square = device.is_cuda() ? 2048 : 1024;
  const auto shape = measure_gemm(rows, c.d_ff, c.d_model, device, dtype, 2, kGemmRepeats);
  const auto sq = measure_gemm(square, square, square, device, dtype, 2, kGemmRepeats);
  return {{"representative", gemm_json(shape)},
          {"square", gemm_json(sq)},
          {"best_gflops", std::max(shape.best_gflops, sq.best_gflops)}};
}

void add_cpu_kernel_rates(kernels::KernelsReport& kernels, json& gemm, const T5Config& c,
                          int64_t rows) {
  const torch::Device cpu = torch::kCPU;
  if (!gemm.contains("fp32")) gemm["fp32"] = measure_gemm_rates(c, rows, cpu, torch::kFloat32);
  if (!gemm.contains("bf16")) gemm["bf16"] = measure_gemm_rates(c, rows, cpu, torch::kBFloat16);
  kernels.fp32_gflops = gemm["fp32"]["best_gflops"].get<double>();
  kernels.bf16_gflops = gemm["bf16"]["best_gflops"].get<double>();
  struct Path {
    const char* dtype;
    torch::ScalarType type;
    const char* ours;  // what the program's layers use
    std::optional<double>* onednn;
    std::string* fastest;
  };
  for (const Path& p : {Path{"fp32", torch::kFloat32, "OpenBLAS", &kernels.onednn_fp32_gflops,
                             &kernels.fastest_fp32},
                        Path{"bf16", torch::kBFloat16, "libtorch", &kernels.onednn_bf16_gflops,
                             &kernels.fastest_bf16}}) {
    const OnednnRate r = measure_onednn_linear(rows, c.d_ff, c.d_model, p.type, 2, kGemmRepeats);
    const double ours = gemm[p.dtype]["representative"]["best_gflops"].get<double>();
    gemm[cat("onednn_", p.dtype)] = {{"available", r.available},
                                     {"correct", r.correct},
                                     {"worst_error_over_bound", r.worst_error_over_bound},
                                     {"best_gflops", r.best_gflops},
                                     {"median_gflops", r.median_gflops},
                                     {"m", rows},
                                     {"n", c.d_ff},
                                     {"k", c.d_model}};
    if (!r.available) continue;
    *p.onednn = r.best_gflops;
    *p.fastest = r.correct && r.best_gflops > ours ? "oneDNN" : p.ours;
  }
}

double gemm_reference(json& gemm, const std::string& key, const std::string& products) {
  json& rate = gemm[key];
  double best = rate["best_gflops"].get<double>();
  std::string product = "torch::mm";
  const std::string onednn = "onednn_" + products;
  if (gemm.contains(onednn) && gemm[onednn]["available"].get<bool>() &&
      gemm[onednn]["correct"].get<bool>() && gemm[onednn]["best_gflops"].get<double>() > best) {
    best = gemm[onednn]["best_gflops"].get<double>();
    product = "oneDNN linear";
  }
  rate["reference_gflops"] = best;
  rate["reference_product"] = product;
  return best;
}

int gemm_repeats() {
  return kGemmRepeats;
}

json machine_section(const kernels::KernelsReport& kernels) {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v ? nlohmann::json(v) : nlohmann::json();
  };
  return {{"cores", torch::get_num_threads()},
          {"environment",
           {{"GOMP_SPINCOUNT", env("GOMP_SPINCOUNT")},
            {"OMP_WAIT_POLICY", env("OMP_WAIT_POLICY")},
            {"OMP_NUM_THREADS", env("OMP_NUM_THREADS")},
            {"OPENBLAS_CORETYPE", env("OPENBLAS_CORETYPE")}}},
          {"cpu_model", cpu_model_name()},
          {"kernels", kernels::kernels_json(kernels)},
          {"libtorch", TORCH_VERSION},
          {"compacter", COMPACTER_VERSION}};
}

void Table3Settings::validate() const {
  check_usage(batch_size >= 1, "--batch-size must be at least 1, got ", batch_size);
  check_usage(source_len >= 1, "--source-len must be at least 1, got ", source_len);
  check_usage(target_len >= 1, "--target-len must be at least 1, got ", target_len);
  check_usage(max_steps >= 1, "--max-steps must be at least 1, got ", max_steps);
  check_usage(warmup >= 0, "--warmup must not be negative, got ", warmup);
  nn::parse_precision(dtype);
}

std::vector<std::string> parse_method_list(const std::string& text) {
  std::vector<std::string> out;
  if (text == "all") {
    for (const auto& m : peft::all_methods()) out.push_back(m.name);
    return out;
  }
  std::stringstream in(text);
  std::set<std::string> seen;
  for (std::string name; std::getline(in, name, ',');) {
    check_usage(!name.empty(), "--methods: empty name in \"", text, "\"");
    check_usage(name != "all", "--methods: \"all\" cannot be combined with other names");
    try {
      peft::find_method(name);
    } catch (const Error& e) {
      throw UsageError(cat("--methods: ", e.what()));
    }
    check_usage(seen.insert(name).second, "--methods: ", name, " is listed twice");
    out.push_back(name);
  }
  check_usage(!out.empty(), "--methods: no method given");
  return out;
}

json job_to_json(const MethodJob& job) {
  return {{"settings", options::to_json(job.settings)},
          {"method", job.method},
          {"options", peft::options_to_json(job.options)},
          {"init_seed", job.init_seed},
          {"profile_path", job.profile_path}};
}

MethodJob job_from_json(const json& j) {
  MethodJob job;
  try {
    options::from_json(j.at("settings"), "bench job", "bench setting", job.settings);
    job.method = j.at("method").get<std::string>();
    job.options = peft::method_defaults(job.method);
    peft::options_from_json(j.at("options"), "bench job", job.options);
    job.init_seed = j.at("init_seed").get<uint64_t>();
    job.profile_path = j.at("profile_path").get<std::string>();
  } catch (const json::exception& e) {
    throw Error(cat("bench job: missing or mistyped field (", e.what(), ")"));
  }
  return job;
}

json benchmark_method(const MethodJob& job, ProgressSink& progress) {
  const Table3Settings& r = job.settings;
  r.validate();
  StepBenchSettings s;
  s.config = resolve_t5_config(r.model_config);
  s.method = job.method;
  s.options = job.options;
  s.batch = r.batch_size;
  s.source_len = r.source_len;
  s.target_len = r.target_len;
  s.steps = r.max_steps;
  s.warmup = r.warmup;
  s.device = nn::parse_device(r.device);
  const nn::Precision precision = nn::parse_precision(r.dtype);
  s.dtype = precision.weights;
  s.bf16_autocast = precision.autocast;
  s.seed = r.seed;
  s.init_seed = job.init_seed;
  s.learning_rate = kLearningRate;
  s.max_grad_norm = kMaxGradNorm;
  s.profile_path = job.profile_path;
  const StepBenchResult b =
      benchmark_training_steps(s, [&](const std::string& line) { progress.status(line); });
  const double gflops = b.step_flops / b.mean_seconds / 1e9;
  json j = {{"method", job.method},
            {"seconds_per_step", b.mean_seconds},
            {"seconds_per_step_min", b.min_seconds},
            {"step_seconds", b.step_seconds},
            {"examples_per_second", b.examples_per_second},
            {"peak_memory_bytes", optional_bytes(b.peak_memory_bytes)},
            {"peak_memory_kind", b.peak_memory_kind},
            {"trainable_parameters", b.trainable_parameters},
            {"backbone_parameters", b.backbone_parameters},
            {"trainable_percent", b.trainable_percent},
            {"encoder_length", b.encoder_length},
            {"forward_gflop", b.forward.total() / 1e9},
            {"flop_multiplier", b.weight_gradients ? 3 : 2},
            {"step_gflop", b.step_flops / 1e9},
            {"gflops_per_second", gflops},
            {"threads", torch::get_num_threads()},
            {"last_loss", b.last_loss}};
  if (b.peak_memory_bytes < 0)
    j["peak_memory_note"] = "this build's libtorch has no CUDA caching-allocator statistics";
  return j;
}

WorkerOutcome run_bench_worker(const std::string& program, const std::vector<std::string>& args,
                               const std::string& what, const std::string& required_key,
                               ProgressSink& progress) {
  std::string pending;  // the child's stderr, passed on line by line
  const ChildResult child = run_child(program, args, [&](const std::string& chunk) {
    pending += chunk;
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      progress.status(pending.substr(0, nl));
      pending.erase(0, nl + 1);
    }
  });
  WorkerOutcome out;
  if (child.succeeded()) {
    try {
      out.result = json::parse(tail_lines(child.out, 1));
      if (out.result.is_object() && out.result.contains(required_key)) return out;
    } catch (const json::exception&) {
    }
  }
  const std::string why = cat(what, " failed (", child.describe_status(), ")");
  progress.warning(cat(why, "; the end of its stderr:\n",
                       child.err_tail.empty() ? "(empty)\n" : child.err_tail));
  std::string last = tail_lines(child.err_tail, 1);
  while (!last.empty() && last.back() == '\n') last.pop_back();
  out.result = json();
  out.error = cat(why, last.empty() ? "" : ": ", last);
  return out;
}

json run_table3(const std::vector<MethodJob>& jobs, const std::string& program,
                ProgressSink& progress) {
  check_usage(!jobs.empty(), "no method to benchmark");
  const Table3Settings& st = jobs.front().settings;
  st.validate();
  const T5Config config = resolve_t5_config(st.model_config);
  const torch::Device device = nn::parse_device(st.device);
  const torch::ScalarType dtype = nn::parse_precision(st.dtype).products();

  for (const MethodJob& job : jobs) {
    if (job.profile_path.empty()) continue;
    const std::filesystem::path folder = std::filesystem::path(job.profile_path).parent_path();
    std::error_code ec;
    if (!folder.empty()) std::filesystem::create_directories(folder, ec);
    check_usage(!ec && (folder.empty() || std::filesystem::is_directory(folder)), "--profile ",
                folder.string(), ": cannot create the folder (", ec.message(), ")");
  }

  progress.info("measuring the matrix-multiply rate ...");
  json gemm = {{"repeats", kGemmRepeats}, {"dtype", st.dtype}};
  const int64_t rows = st.batch_size * st.source_len;
  gemm["fp32"] = measure_gemm_rates(config, rows, device, torch::kFloat32);
  if (dtype != torch::kFloat32) gemm[st.dtype] = measure_gemm_rates(config, rows, device, dtype);
  // The kernels' report (README "Kernels at start-up") gives the CPU's fp32 and bf16 rates.
  kernels::KernelsReport kernels = kernels::current_kernels(
      torch::get_num_threads(), nn::onednn_bf16_gemm_available(), nn::bf16_onednn_products());
  if (!device.is_cuda()) add_cpu_kernel_rates(kernels, gemm, config, rows);
  const double gemm_best =
      gemm_reference(gemm, st.dtype, dtype == torch::kBFloat16 ? "bf16" : "fp32");

  std::vector<json> results;
  std::vector<std::string> failed, methods;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const std::string& name = jobs[i].method;
    methods.push_back(name);
    progress.info(cat("method ", i + 1, "/", jobs.size(), ": ", name));
    WorkerOutcome w =
        run_bench_worker(program, {"bench-worker", "--job", job_to_json(jobs[i]).dump()},
                         cat("method ", name), "seconds_per_step", progress);
    if (!w.error.empty()) {
      results.push_back({{"method", name}, {"error", w.error}});
      failed.push_back(name);
      continue;
    }
    json& r = w.result;
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

  return {{"machine", machine_section(kernels)},
          {"settings",
           {{"model_config", st.model_config},
            {"methods", methods},
            {"batch", st.batch_size},
            {"source_len", st.source_len},
            {"target_len", st.target_len},
            {"steps", st.max_steps},
            {"warmup", st.warmup},
            {"device", st.device},
            {"dtype", st.dtype},
            {"seed", st.seed},
            {"init_seed", jobs.front().init_seed},
            {"learning_rate", kLearningRate},
            {"max_grad_norm", kMaxGradNorm},
            {"flop_rule",
             "matrix-multiply FLOPs of T5 (2mnk per product); a step is 3 x forward when the "
             "backbone's weights need gradients (full, said), 2 x forward otherwise"}}},
          {"gemm", gemm},
          {"methods", results},
          {"failed", failed}};
}

std::string format_table3(const json& doc) {
  std::ostringstream out;
  const json& st = doc["settings"];
  const json& m = doc["machine"];
  out << "model " << st["model_config"].get<std::string>() << ", batch " << st["batch"]
      << ", source " << st["source_len"] << ", target " << st["target_len"] << ", " << st["steps"]
      << " timed steps (+" << st["warmup"] << " warm-up), " << st["device"].get<std::string>()
      << " " << st["dtype"].get<std::string>() << ", " << m["cores"] << " threads, "
      << m["cpu_model"].get<std::string>() << ", libtorch " << m["libtorch"].get<std::string>()
      << "\n";
  if (m.contains("kernels")) out << m["kernels"]["line"].get<std::string>() << "\n";
  out << std::left << std::setw(12) << "method" << std::right << std::setw(12) << "trainable"
      << std::setw(9) << "%" << std::setw(10) << "s/step" << std::setw(10) << "min s"
      << std::setw(9) << "ex/s" << std::setw(9) << "time%" << std::setw(11) << "peak MB"
      << std::setw(9) << "mem%" << std::setw(10) << "GFLOP/s" << std::setw(8) << "%GEMM"
      << "\n";
  for (const json& r : doc["methods"]) {
    out << std::left << std::setw(12) << r["method"].get<std::string>() << std::right;
    if (r.contains("error")) {
      out << " failed: " << r["error"].get<std::string>() << "\n";
      continue;
    }
    const json& peak = r["peak_memory_bytes"];
    out << std::setw(12) << r["trainable_parameters"].get<int64_t>() << std::setw(9)
        << fixed(r["trainable_percent"].get<double>(), 3) << std::setw(10)
        << fixed(r["seconds_per_step"].get<double>(), 3) << std::setw(10)
        << fixed(r["seconds_per_step_min"].get<double>(), 3) << std::setw(9)
        << fixed(r["examples_per_second"].get<double>(), 1) << std::setw(9)
        << number_or_dash(r["time_diff_percent"], 1) << std::setw(11)
        << (peak.is_number() ? fixed(peak.get<double>() / 1e6, 1) : "-") << std::setw(9)
        << number_or_dash(r["memory_diff_percent"], 1) << std::setw(10)
        << fixed(r["gflops_per_second"].get<double>(), 1) << std::setw(8)
        << fixed(r["percent_of_gemm"].get<double>(), 1) << "\n";
  }
  const json& g = doc["gemm"];
  const std::string dtype = g["dtype"].get<std::string>();
  const json& rate = g[dtype];
  const json& rep = rate["representative"];
  const json& sq = rate["square"];
  out << "GEMM " << dtype << " (torch::mm, best of " << g["repeats"] << "): " << rep["m"] << "x"
      << rep["k"] << " by " << rep["k"] << "x" << rep["n"] << " (B*S x d_model x d_ff) "
      << fixed(rep["best_gflops"].get<double>(), 1) << " GFLOP/s, " << sq["m"] << "^3 "
      << fixed(sq["best_gflops"].get<double>(), 1) << " GFLOP/s; %GEMM is of the highest, "
      << fixed(rate.value("reference_gflops", rate["best_gflops"].get<double>()), 1) << " GFLOP/s ("
      << rate.value("reference_product", std::string("torch::mm"))
      << "; the layers' oneDNN product counts where measured and correct)\n";
  out << "time% / mem%: difference to full fine-tuning; peak memory: "
      << (st["device"].get<std::string>().rfind("cuda", 0) == 0
              ? "CUDA peak allocated bytes"
              : "peak resident set (VmHWM) of the method's process")
      << "; model FLOPs per step: 3 x forward (full, said), 2 x forward (frozen backbone)\n";
  return out.str();
}

}  // namespace compacter::train
