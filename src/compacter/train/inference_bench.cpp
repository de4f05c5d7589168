// The inference benchmark (`compacter bench --inference`): see inference_bench.h.
#include "compacter/train/inference_bench.h"

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/subprocess.h"
#include "compacter/io/t5_config.h"
#include "compacter/kernels/report.h"
#include "compacter/nn/autocast.h"
#include "compacter/nn/bf16_linear.h"
#include "compacter/nn/checkpoint.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/train/base_model.h"
#include "compacter/train/bench.h"
#include "compacter/train/decoding/decode.h"
#include "compacter/train/flops.h"
#include "compacter/train/generate.h"
#include "compacter/train/loop.h"
#include "compacter/train/table3.h"

// libtorch's (legacy) autograd profiler, which writes a Chrome trace of every operator.
#if __has_include(<torch/csrc/autograd/profiler_legacy.h>)
#include <torch/csrc/autograd/profiler_legacy.h>
#define COMPACTER_INFERENCE_PROFILER 1
#endif

namespace compacter::train {

using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

void sync_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// The comma list of `flag`, each entry once and not empty.
std::vector<std::string> split_comma_list(const std::string& text, const std::string& flag) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    check_usage(!item.empty(), flag, ": empty entry in \"", text, "\"");
    check_usage(seen.insert(item).second, flag, ": ", item, " is listed twice");
    out.push_back(item);
  }
  check_usage(!out.empty(), flag, ": nothing given");
  return out;
}

// The dtype the matrix products run in, as the "gemm" section names it.
std::string products_name(const std::string& dtype) {
  return nn::parse_precision(dtype).products() == torch::kBFloat16 ? "bf16" : "fp32";
}

std::string fixed_digits(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string value_or_dash(const json& v, int digits, const std::string& suffix = "") {
  return v.is_number() ? fixed_digits(v.get<double>(), digits) + suffix : "-";
}

// Resets this process's peak resident set (VmHWM) to the current one (Linux >= 4.0:
// /proc/PID/clear_refs, "5"); false when that is not possible.
bool reset_peak_resident() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

double sum_of(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x;
  return s;
}

}  // namespace

int64_t search_beams(const std::string& search) {
  if (search == "greedy") return 1;
  int64_t beams = 0;
  size_t used = 0;
  if (search.rfind("beam", 0) == 0) {
    try {
      beams = std::stoll(search.substr(4), &used);
    } catch (const std::exception&) {
      used = 0;
    }
  }
  check_usage(used > 0 && used == search.size() - 4 && beams >= 2,
              "--searches: unknown decoding \"", search,
              "\" (known: greedy, beamN with N >= 2 beams, e.g. beam4)");
  return beams;
}

void InferenceBenchSettings::validate() const {
  check_usage(source_len >= 1, "--source-len must be at least 1, got ", source_len);
  check_usage(max_new_tokens >= 1, "--max-new-tokens must be at least 1, got ", max_new_tokens);
  check_usage(repeats >= 1, "--repeats must be at least 1, got ", repeats);
  check_usage(warmup >= 0, "--warmup must not be negative, got ", warmup);
  check_usage(rounds >= 1, "--rounds must be at least 1, got ", rounds);
  batch_size_list();
  dtype_list();
  search_list();
  nn::int8_keep_for(int8_keep_fp32, runs_int8(), "--dtypes", dtypes);
}

bool InferenceBenchSettings::runs_int8() const {
  for (const std::string& d : dtype_list())
    if (nn::parse_precision(d).int8) return true;
  return false;
}

std::vector<int64_t> InferenceBenchSettings::batch_size_list() const {
  std::vector<int64_t> out;
  for (const std::string& item : split_comma_list(batch_sizes, "--batch-sizes")) {
    size_t used = 0;
    int64_t v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    check_usage(used == item.size() && v >= 1, "--batch-sizes: \"", item,
                "\" is not a positive whole number");
    out.push_back(v);
  }
  return out;
}

std::vector<std::string> InferenceBenchSettings::dtype_list() const {
  std::vector<std::string> out = split_comma_list(dtypes, "--dtypes");
  for (const std::string& d : out) {
    try {
      nn::parse_precision(d);
    } catch (const Error& e) {
      throw UsageError(cat("--dtypes: ", e.what()));
    }
  }
  return out;
}

std::vector<std::string> InferenceBenchSettings::search_list() const {
  std::vector<std::string> out = split_comma_list(searches, "--searches");
  for (const std::string& s : out) search_beams(s);
  return out;
}

std::vector<std::string> parse_inference_methods(const std::string& text) {
  if (text == "all") {
    std::vector<std::string> out = {"none"};
    for (const auto& m : peft::all_methods()) out.push_back(m.name);
    return out;
  }
  std::vector<std::string> out = split_comma_list(text, "--methods");
  for (const std::string& name : out) {
    check_usage(name != "all", "--methods: \"all\" cannot be combined with other names");
    if (name == "none") continue;
    try {
      peft::find_method(name);
    } catch (const Error& e) {
      throw UsageError(cat("--methods: ", e.what(), " (or none: the base model alone)"));
    }
  }
  return out;
}

json inference_job_to_json(const InferenceJob& job) {
  return {{"settings", options::to_json(job.settings)},
          {"method", job.method},
          {"options", peft::options_to_json(job.options)},
          {"init_seed", job.init_seed},
          {"dtype", job.dtype},
          {"search", job.search},
          {"batch", job.batch},
          {"profile_path", job.profile_path}};
}

InferenceJob inference_job_from_json(const json& j) {
  InferenceJob job;
  try {
    options::from_json(j.at("settings"), "inference bench job", "bench setting", job.settings);
    job.method = j.at("method").get<std::string>();
    if (job.method != "none") job.options = peft::method_defaults(job.method);
    peft::options_from_json(j.at("options"), "inference bench job", job.options);
    job.init_seed = j.at("init_seed").get<uint64_t>();
    job.dtype = j.at("dtype").get<std::string>();
    job.search = j.at("search").get<std::string>();
    job.batch = j.at("batch").get<int64_t>();
    job.profile_path = j.at("profile_path").get<std::string>();
  } catch (const json::exception& e) {
    throw Error(cat("inference bench job: missing or mistyped field (", e.what(), ")"));
  }
  return job;
}

std::vector<InferenceJob> inference_jobs(const InferenceBenchSettings& settings,
                                         const std::vector<std::string>& methods,
                                         const std::vector<peft::PeftOptions>& options,
                                         uint64_t init_seed) {
  check(methods.size() == options.size(), "one options set per method");
  settings.validate();
  std::vector<InferenceJob> jobs;
  for (size_t m = 0; m < methods.size(); ++m)
    for (const std::string& dtype : settings.dtype_list())
      for (const std::string& search : settings.search_list())
        for (int64_t batch : settings.batch_size_list())
          jobs.push_back({settings, methods[m], options[m], init_seed, dtype, search, batch, ""});
  return jobs;
}

std::vector<InferenceRun> inference_run_order(const std::vector<InferenceJob>& jobs,
                                              int64_t rounds) {
  check(rounds >= 1, "at least one round");
  // The rank of a job's method, search and batch size: where each first appears in `jobs`.
  std::vector<std::string> firsts;
  auto rank = [&](const std::string& key) {
    const auto at = std::find(firsts.begin(), firsts.end(), key);
    if (at != firsts.end()) return static_cast<size_t>(at - firsts.begin());
    firsts.push_back(key);
    return firsts.size() - 1;
  };
  std::vector<std::pair<size_t, size_t>> keyed;  // (group rank, job index)
  for (size_t i = 0; i < jobs.size(); ++i)
    keyed.push_back({rank(cat(jobs[i].method, "\n", jobs[i].search, "\n", jobs[i].batch)), i});
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<InferenceRun> order;
  for (int64_t round = 0; round < rounds; ++round)
    for (size_t n = 0; n < keyed.size(); ++n) {
      const size_t at = round % 2 == 0 ? n : keyed.size() - 1 - n;
      order.push_back({keyed[at].second, round});
    }
  return order;
}

double median(std::vector<double> values) {
  check(!values.empty(), "median of nothing");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2.0;
}

json combine_inference_rounds(const std::vector<json>& rounds) {
  check(!rounds.empty(), "no round to combine");
  json out = rounds.front();
  std::vector<double> latency, ttft, tps, gflops, decode;
  int64_t tokens = 0, peak = -1, resident = -1;
  bool decode_all = true;
  for (const json& r : rounds) {
    for (double v : r.at("latency_seconds").get<std::vector<double>>()) latency.push_back(v);
    for (double v : r.at("first_token_seconds").get<std::vector<double>>()) ttft.push_back(v);
    tokens += r.at("tokens_generated").get<int64_t>();
    tps.push_back(r.at("tokens_per_second").get<double>());
    gflops.push_back(r.at("gflops_per_second").get<double>());
    const json& d = r.at("decode_gflops_per_second");
    decode_all = decode_all && d.is_number();
    if (d.is_number()) decode.push_back(d.get<double>());
    if (r.at("peak_memory_bytes").is_number())
      peak = std::max(peak, r["peak_memory_bytes"].get<int64_t>());
    if (r.at("model_resident_bytes").is_number())
      resident = std::max(resident, r["model_resident_bytes"].get<int64_t>());
  }
  out["rounds"] = rounds.size();
  out["requests"] = latency.size();
  out["latency_seconds"] = latency;
  out["latency_p50"] = percentile(latency, 50);
  out["latency_p99"] = percentile(latency, 99);
  out["latency_mean"] = sum_of(latency) / static_cast<double>(latency.size());
  out["first_token_seconds"] = ttft;
  out["first_token_p50"] = percentile(ttft, 50);
  out["first_token_p99"] = percentile(ttft, 99);
  out["tokens_generated"] = tokens;
  out["round_tokens_per_second"] = tps;
  out["tokens_per_second"] = median(tps);
  out["gflops_per_second"] = median(gflops);
  out["decode_gflops_per_second"] = decode_all ? json(median(decode)) : json(nullptr);
  out["peak_memory_bytes"] = peak >= 0 ? json(peak) : json(nullptr);
  out["model_resident_bytes"] = resident >= 0 ? json(resident) : json(nullptr);
  return out;
}

double percentile(std::vector<double> values, double p) {
  check(!values.empty() && p > 0.0 && p <= 100.0, "percentile of nothing, or p outside (0, 100]");
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::max<size_t>(rank, 1) - 1];
}

json benchmark_inference(const InferenceJob& job, ProgressSink& progress) {
  const InferenceBenchSettings& s = job.settings;
  s.validate();
  check_usage(job.batch >= 1, "batch must be at least 1, got ", job.batch);
  const int64_t beams = search_beams(job.search);
  const nn::Precision precision = nn::parse_precision(job.dtype);
  const torch::Device device = nn::parse_device(s.device);

  // The model: a folder's weights, or random ones from T5's own init.
  nn::T5Model model{nullptr};
  if (!s.model.empty()) {
    ModelSpec spec;
    spec.dir = s.model;
    spec.device = s.device;
    spec.dtype = job.dtype;
    model = load_base_weights(spec, "", progress).model;
  } else {
    model = nn::T5Model(resolve_t5_config(s.model_config));
    model->init_weights(s.seed);
    model->to(device, precision.weights);
  }
  if (job.method != "none") peft::attach(job.method, job.options, *model, job.init_seed);
  // Counted before int8 frees the quantised layers' fp32 weights.
  const peft::ParameterBreakdown counts = job.method == "none"
                                              ? peft::parameter_breakdown(*model)
                                              : peft::parameter_breakdown(*model, job.method);
  if (precision.int8)
    nn::quantize_linears_int8(*model, nn::Fp32Weights::kFree,
                              nn::parse_int8_keep(job.settings.int8_keep_fp32));
  model->eval();
  const T5Config& c = model->config();
  check(c.vocab_size > 3, "the vocabulary needs more than 3 rows for random tokens");

  torch::manual_seed(s.seed);
  const torch::Tensor ids =
      torch::randint(3, c.vocab_size, {job.batch, s.source_len}, torch::kLong).to(device);
  const torch::Tensor mask = torch::ones({job.batch, s.source_len}, torch::kLong).to(device);

  // Memory: the model's resident set now, and the peak from here on, so that building the model
  // (fp32 before a bf16 cast, the checkpoint's buffers) does not count. The allocator hands the
  // pages it freed back first: TCMalloc keeps them resident (t5-small in bf16: 466 MiB resident
  // after the cast without this, 288 with it; fp32 464 against 401).
  if (!device.is_cuda()) release_free_memory();
  const bool peak_reset = !device.is_cuda() && reset_peak_resident();
  const int64_t model_resident = device.is_cuda() ? -1 : resident_bytes();

  GenerateOptions go;
  go.max_new_tokens = s.max_new_tokens;
  go.stop_when_all_finished = false;
  Clock::time_point start;
  double first_token = 0.0;
  go.on_step = [&](int64_t step, const torch::Tensor&) {
    if (step != 0) return;
    sync_device(device);
    first_token = seconds_since(start);
  };

#ifdef COMPACTER_INFERENCE_PROFILER
  std::ostringstream trace;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
#else
  check(job.profile_path.empty(), "profiling needs libtorch's legacy autograd profiler, which ",
        "this libtorch lacks");
#endif
  std::vector<double> latency, ttft;
  int64_t tokens = 0;
  const int64_t total = s.warmup + s.repeats;
  for (int64_t i = 0; i < total; ++i) {
    const bool timed = i >= s.warmup;
#ifdef COMPACTER_INFERENCE_PROFILER
    if (timed && !profile && !job.profile_path.empty())
      profile = std::make_unique<torch::autograd::profiler::RecordProfile>(trace);
#endif
    torch::Tensor out;
    {
      RECORD_FUNCTION(kProfileRequestEvent, c10::ArrayRef<const c10::IValue>{});
      nn::AutocastScope scope(device, precision.autocast);
      start = Clock::now();
      if (beams == 1) {
        out = greedy_generate(*model, ids, mask, go);
      } else {
        decoding::GenerationConfig beam = decoding::from_model_config(model->config());
        beam.max_new_tokens = s.max_new_tokens;
        beam.num_beams = beams;
        decoding::DecodeOptions d;
        d.stop_when_all_finished = false;
        d.on_step = go.on_step;
        out = decoding::padded_tokens(decoding::generate(*model, ids, mask, beam, d), 0,
                                      s.max_new_tokens);
      }
      sync_device(device);
    }
    const double seconds = seconds_since(start);
    if (!timed) {
      progress.status(cat("warm-up ", i + 1, "/", s.warmup));
      continue;
    }
    latency.push_back(seconds);
    ttft.push_back(first_token);
    tokens += job.batch * s.max_new_tokens;  // per input (not per beam); every step runs
    progress.status(cat("request ", latency.size(), "/", s.repeats, ": ", std::fixed,
                        std::setprecision(3), seconds, " s"));
  }

#ifdef COMPACTER_INFERENCE_PROFILER
  if (profile) {
    profile.reset();  // writes the trace
    write_text_atomically(job.profile_path, trace.str());
  }
#endif
  // Beam search decodes batch x beams rows (cross-attention keys and values included) after one
  // encoder pass per input.
  GenerationFlops flops = t5_generation_flops(c, job.batch * beams, s.source_len, s.max_new_tokens);
  flops.encoder /= static_cast<double>(beams);
  const double seconds = sum_of(latency), first = sum_of(ttft);
  const double requests = static_cast<double>(latency.size());
  const int64_t peak = device.is_cuda() ? cuda_peak_allocated_bytes(device) : peak_rss_bytes();
  json j = {{"method", job.method},
            {"dtype", job.dtype},
            {"products_dtype", products_name(job.dtype)},
            {"search", job.search},
            {"batch", job.batch},
            {"source_len", s.source_len},
            {"new_tokens", s.max_new_tokens},
            {"requests", latency.size()},
            {"latency_seconds", latency},
            {"latency_p50", percentile(latency, 50)},
            {"latency_p99", percentile(latency, 99)},
            {"latency_mean", seconds / requests},
            {"first_token_seconds", ttft},
            {"first_token_p50", percentile(ttft, 50)},
            {"first_token_p99", percentile(ttft, 99)},
            {"tokens_generated", tokens},
            {"tokens_per_second", static_cast<double>(tokens) / seconds},
            {"gflop_per_request", flops.total() / 1e9},
            {"gflops_per_second", flops.total() * requests / seconds / 1e9},
            {"decode_gflops_per_second", nullptr},
            {"peak_memory_bytes", peak >= 0 ? json(peak) : json(nullptr)},
            {"peak_memory_kind", device.is_cuda() ? "cuda_peak_allocated"
                                 : peak_reset     ? "cpu_peak_rss_requests"
                                                  : "cpu_peak_rss"},
            {"model_resident_bytes", model_resident >= 0 ? json(model_resident) : json(nullptr)},
            {"added_parameters", counts.added},
            {"trainable_parameters", counts.trainable},
            {"backbone_parameters", counts.backbone},
            {"vocab_size", c.vocab_size},
            {"threads", torch::get_num_threads()},
            {"profiled", !job.profile_path.empty()}};
  // The decoding steps after the first token: their FLOPs over their time.
  if (flops.later_steps > 0.0 && seconds > first)
    j["decode_gflops_per_second"] = flops.later_steps * requests / (seconds - first) / 1e9;
  return j;
}

json run_inference_bench(const std::vector<InferenceJob>& jobs, const std::string& program,
                         ProgressSink& progress) {
  check_usage(!jobs.empty(), "no configuration to benchmark");
  const InferenceBenchSettings& st = jobs.front().settings;
  st.validate();
  const torch::Device device = nn::parse_device(st.device);
  // The shape for the GEMM's representative rows: the model's (config.json of a folder).
  const T5Config config = resolve_t5_config(st.model.empty() ? st.model_config : st.model);
  const std::vector<int64_t> batches = st.batch_size_list();
  for (const InferenceJob& job : jobs) {
    if (job.profile_path.empty()) continue;
    check_usage(st.rounds == 1, "--profile takes one round (--rounds 1): a profiled request is ",
                "slower, and a trace is one run's");
    const std::filesystem::path folder = std::filesystem::path(job.profile_path).parent_path();
    std::error_code ec;
    if (!folder.empty()) std::filesystem::create_directories(folder, ec);
    check_usage(!ec && (folder.empty() || std::filesystem::is_directory(folder)), "--profile ",
                folder.string(), ": cannot create the folder (", ec.message(), ")");
  }
  const int64_t rows = *std::max_element(batches.begin(), batches.end()) * st.source_len;

  progress.info("measuring the matrix-multiply rate ...");
  json gemm = {{"repeats", gemm_repeats()}};
  gemm["fp32"] = measure_gemm_rates(config, rows, device, torch::kFloat32);
  bool any_bf16 = false;
  for (const std::string& d : st.dtype_list()) any_bf16 = any_bf16 || products_name(d) == "bf16";
  if (any_bf16 || !device.is_cuda())
    gemm["bf16"] = measure_gemm_rates(config, rows, device, torch::kBFloat16);
  kernels::KernelsReport kernels = kernels::current_kernels(
      torch::get_num_threads(), nn::onednn_bf16_gemm_available(), nn::bf16_onednn_products());
  if (!device.is_cuda()) add_cpu_kernel_rates(kernels, gemm, config, rows);
  if (st.runs_int8())
    kernels.int8_linear =
        cat(nn::int8_engine_description(),
            ", fp32 kept: ", nn::int8_keep_list(nn::parse_int8_keep(st.int8_keep_fp32)));

  std::vector<std::string> methods;
  for (const InferenceJob& job : jobs)
    if (std::find(methods.begin(), methods.end(), job.method) == methods.end())
      methods.push_back(job.method);
  // Every job's rows, one per round run, and its error once a run failed.
  std::vector<std::vector<json>> runs(jobs.size());
  std::vector<std::string> errors(jobs.size());
  const std::vector<InferenceRun> order = inference_run_order(jobs, st.rounds);
  for (size_t n = 0; n < order.size(); ++n) {
    const size_t j = order[n].job;
    const InferenceJob& job = jobs[j];
    if (!errors[j].empty()) continue;
    const std::string name = cat(job.method, " ", job.dtype, " ", job.search, " batch ", job.batch);
    progress.info(cat(st.rounds > 1 ? cat("round ", order[n].round + 1, "/", st.rounds, ", ") : "",
                      "configuration ", n % jobs.size() + 1, "/", jobs.size(), ": ", name));
    WorkerOutcome w = run_bench_worker(
        program, {"bench-inference-worker", "--job", inference_job_to_json(job).dump()}, name,
        "tokens_per_second", progress);
    if (w.error.empty())
      runs[j].push_back(std::move(w.result));
    else
      errors[j] = w.error;
  }

  std::vector<json> rows_out;
  int64_t failed = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const InferenceJob& job = jobs[i];
    if (!errors[i].empty()) {
      rows_out.push_back({{"method", job.method},
                          {"dtype", job.dtype},
                          {"search", job.search},
                          {"batch", job.batch},
                          {"error", errors[i]}});
      ++failed;
      continue;
    }
    json r = combine_inference_rounds(runs[i]);
    const std::string products = r["products_dtype"].get<std::string>();
    const double best = gemm_reference(gemm, products, products);
    r["percent_of_gemm"] = 100.0 * r["gflops_per_second"].get<double>() / best;
    r["decode_percent_of_gemm"] =
        r["decode_gflops_per_second"].is_number()
            ? json(100.0 * r["decode_gflops_per_second"].get<double>() / best)
            : json(nullptr);
    rows_out.push_back(std::move(r));
  }

  // Ratios of tokens/s: to the fp32 row and to the smallest batch of the same configuration, the
  // median over the rounds of each round's ratio (runs of one round are close in time).
  auto find = [&](const json& like, const std::string& dtype, int64_t batch) -> const json* {
    for (const json& r : rows_out)
      if (!r.contains("error") && r["method"] == like["method"] && r["search"] == like["search"] &&
          r["dtype"] == dtype && r["batch"].get<int64_t>() == batch)
        return &r;
    return nullptr;
  };
  auto ratio = [](const json& r, const json* to) -> json {
    if (to == nullptr) return nullptr;
    const auto a = r["round_tokens_per_second"].get<std::vector<double>>();
    const auto b = (*to)["round_tokens_per_second"].get<std::vector<double>>();
    std::vector<double> each;
    for (size_t k = 0; k < a.size(); ++k) each.push_back(a[k] / b[k]);
    return median(each);
  };
  const int64_t smallest = *std::min_element(batches.begin(), batches.end());
  for (json& r : rows_out) {
    if (r.contains("error")) continue;
    r["tokens_per_second_vs_fp32"] = ratio(r, find(r, "fp32", r["batch"].get<int64_t>()));
    r["tokens_per_second_vs_smallest_batch"] =
        ratio(r, find(r, r["dtype"].get<std::string>(), smallest));
  }

  return {{"kind", "inference"},
          {"machine", machine_section(kernels)},
          {"settings",
           {{"model_config", st.model.empty() ? st.model_config : ""},
            {"model", st.model},
            {"weights", st.model.empty() ? "random (T5's init; speed does not depend on values)"
                                         : "from the model folder"},
            {"methods", methods},
            {"batch_sizes", batches},
            {"source_len", st.source_len},
            {"max_new_tokens", st.max_new_tokens},
            {"dtypes", st.dtype_list()},
            {"searches", st.search_list()},
            {"repeats", st.repeats},
            {"warmup", st.warmup},
            {"rounds", st.rounds},
            {"round_rule",
             "each round runs every configuration once, each in a fresh process, the dtypes of "
             "one method, search and batch size one after another, every other round in the "
             "reverse order; tokens/s is the median of the rounds', a ratio the median of the "
             "rounds' ratios; latencies pool every round's requests"},
            {"device", st.device},
            {"seed", st.seed},
            {"init_seed", jobs.front().init_seed},
            {"stops_at_eos", false},
            {"percentile_rule", "nearest rank: the ceil(p/100 * n)-th smallest of n requests"},
            {"flop_rule",
             "matrix-multiply FLOPs of T5 (2mnk per product) in greedy generation with cached "
             "keys and values: the encoder, every block's cross keys and values once, one "
             "decoder position per step (train/flops.h); adapters not counted"}}},
          {"gemm", gemm},
          {"configurations", rows_out},
          {"failed", failed}};
}

std::string format_inference_bench(const json& doc) {
  std::ostringstream out;
  const json& st = doc["settings"];
  const json& m = doc["machine"];
  const std::string model = st["model"].get<std::string>().empty()
                                ? st["model_config"].get<std::string>() + " (random weights)"
                                : st["model"].get<std::string>();
  out << "inference: model " << model << ", source " << st["source_len"] << ", "
      << st["max_new_tokens"] << " new tokens per row, " << st["repeats"] << " timed requests (+"
      << st["warmup"] << " warm-up)"
      << (st.value("rounds", 1) > 1 ? cat(" in each of ", st["rounds"], " rounds") : "") << ", "
      << st["device"].get<std::string>() << ", " << m["cores"] << " threads, "
      << m["cpu_model"].get<std::string>() << ", libtorch " << m["libtorch"].get<std::string>()
      << "\n";
  if (m.contains("kernels")) out << m["kernels"]["line"].get<std::string>() << "\n";
  out << std::left << std::setw(12) << "method" << std::setw(14) << "dtype" << std::setw(7)
      << "search" << std::right << std::setw(6) << "batch" << std::setw(10) << "tok/s"
      << std::setw(9) << "p50 s" << std::setw(9) << "p99 s" << std::setw(10) << "1st tok s"
      << std::setw(10) << "peak MB" << std::setw(9) << "GFLOP/s" << std::setw(7) << "%GEMM"
      << std::setw(9) << "dec%GEMM" << std::setw(8) << "xfp32" << std::setw(8) << "xbatch"
      << "\n";
  for (const json& r : doc["configurations"]) {
    out << std::left << std::setw(12) << r["method"].get<std::string>() << std::setw(14)
        << r["dtype"].get<std::string>() << std::setw(7) << r["search"].get<std::string>()
        << std::right << std::setw(6) << r["batch"].get<int64_t>();
    if (r.contains("error")) {
      out << "  failed: " << r["error"].get<std::string>() << "\n";
      continue;
    }
    const json& peak = r["peak_memory_bytes"];
    out << std::setw(10) << fixed_digits(r["tokens_per_second"].get<double>(), 1) << std::setw(9)
        << fixed_digits(r["latency_p50"].get<double>(), 3) << std::setw(9)
        << fixed_digits(r["latency_p99"].get<double>(), 3) << std::setw(10)
        << fixed_digits(r["first_token_p50"].get<double>(), 3) << std::setw(10)
        << (peak.is_number() && peak.get<double>() >= 0 ? fixed_digits(peak.get<double>() / 1e6, 1)
                                                        : "-")
        << std::setw(9) << fixed_digits(r["gflops_per_second"].get<double>(), 1) << std::setw(7)
        << fixed_digits(r["percent_of_gemm"].get<double>(), 1) << std::setw(9)
        << value_or_dash(r["decode_percent_of_gemm"], 1) << std::setw(8)
        << value_or_dash(r["tokens_per_second_vs_fp32"], 2) << std::setw(8)
        << value_or_dash(r["tokens_per_second_vs_smallest_batch"], 2) << "\n";
  }
  const json& g = doc["gemm"];
  out << "GEMM (torch::mm, best of " << g["repeats"] << "), GFLOP/s:";
  for (const char* d : {"fp32", "bf16"}) {
    if (!g.contains(d)) continue;
    const json& rep = g[d]["representative"];
    out << " " << d << " " << fixed_digits(g[d]["best_gflops"].get<double>(), 1) << " (" << rep["m"]
        << "x" << rep["k"] << "x" << rep["n"] << " "
        << fixed_digits(rep["best_gflops"].get<double>(), 1) << ", " << g[d]["square"]["m"] << "^3 "
        << fixed_digits(g[d]["square"]["best_gflops"].get<double>(), 1) << ")";
  }
  out << "\n";
  out << "tok/s: rows x new tokens per second of requests (every row generates all its tokens); "
         "p50 / p99: latency of one request (nearest rank); 1st tok: p50 time to the first "
         "token; peak: "
      << (st["device"].get<std::string>().rfind("cuda", 0) == 0
              ? "CUDA peak allocated bytes"
              : "peak resident set (VmHWM) of the configuration's process during its requests "
                "(reset after the model was built)")
      << "; GFLOP/s: T5's matrix multiplies per second of requests, %GEMM of the highest GEMM "
         "rate in the products' dtype (torch::mm's two shapes, the layers' oneDNN product); "
         "dec%GEMM: the steps after the first token alone; xfp32: "
         "tok/s over the fp32 row; xbatch: tok/s over the smallest batch's"
      << (st.value("rounds", 1) > 1
              ? "; with rounds: tok/s, GFLOP/s and the ratios are medians over the rounds (the "
                "ratios of each round's tok/s), latencies over every round's requests"
              : "")
      << "\n";
  return out.str();
}

}  // namespace compacter::train
