// `compacter bench` (the paper's Table 3): options and one library call, train::run_table3
// (train/table3.h), each method measured in its own worker process (the hidden subcommand
// `bench-worker --job JSON`, which prints one JSON line). `compacter bench --inference`: the
// same for generation, train::run_inference_bench (train/inference_bench.h), one worker process
// per configuration (`bench-inference-worker --job JSON`). The two share the flags both option
// sets declare (--model-config, --source-len, --warmup, --device, --seed).
#include <filesystem>
#include <iostream>
#include <set>

#include "commands.h"
#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/subprocess.h"
#include "compacter/io/t5_config.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/plot/figures.h"
#include "compacter/train/inference_bench.h"
#include "compacter/train/table3.h"
#include "method_options.h"
#include "option_flags.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct BenchCli {
  train::Table3Settings settings;
  GivenFlags given;
  bool inference = false;
  train::InferenceBenchSettings inference_settings;  // flags of its own fields only
  GivenFlags inference_given;
  std::string profile_dir;  // non-empty: DIR/profile-METHOD.json per method
  std::string methods = "all";
  CLI::Option* methods_flag = nullptr;
  bool json_output = false;
  std::string plot_file;  // non-empty: the results as an SVG figure there
  std::string plot_from;  // non-empty: plot this saved --json document, run nothing
  MethodOptions method;
};

// bench --plot FILE: the figure of a bench document (plot/figures.h), or why there is none.
void write_bench_plot(const nlohmann::json& report, const std::string& file) {
  const plot::Figure f = plot::bench_figure(report);
  if (f.svg.empty()) {
    std::cerr << "[bench] --plot: no figure written (" << f.what << "): " << f.skipped << "\n";
    return;
  }
  write_text_atomically(file, f.svg);
  std::cerr << "[bench] wrote " << file << " (" << f.what << ")\n";
}

// The names of the fields of the training bench's settings that the inference bench has too.
std::set<std::string> shared_fields() {
  std::set<std::string> out;
  for (const std::string& name : options::names<train::InferenceBenchSettings>())
    for (const std::string& other : options::names<train::Table3Settings>())
      if (name == other) out.insert(name);
  return out;
}

// A flag given for the other kind of bench is an error.
void refuse_given(const GivenFlags& given, const std::set<std::string>& allowed,
                  const std::string& why) {
  for (const auto& [name, opt] : given)
    if (opt->count() > 0 && !allowed.count(name)) throw UsageError(cat(flag_name(name), " ", why));
}

void run_inference(BenchCli& o) {
  check_usage(o.method.method.empty(), "bench takes --methods LIST, not --method");
  refuse_given(o.given, shared_fields(),
               "is the training bench's; bench --inference takes the options of --help's "
               "\"Inference benchmark\" group");
  train::InferenceBenchSettings s = o.inference_settings;
  apply_given_flags(o.settings, o.given, s);  // the shared flags
  s.validate();
  resolve_t5_config(s.model.empty() ? s.model_config : s.model);
  const std::string methods = o.methods_flag->count() > 0 ? o.methods : "compacter++";
  const uint64_t init_seed = given_init_seed(o.method).value_or(s.seed);
  std::vector<std::string> names = train::parse_inference_methods(methods);
  std::vector<peft::PeftOptions> options;
  for (const std::string& name : names) {
    MethodOptions m = o.method;
    m.method = name;
    options.push_back(name == "none" ? peft::PeftOptions{} : resolve_peft_options(m));
  }
  auto jobs = train::inference_jobs(s, names, options, init_seed);
  if (!o.profile_dir.empty())
    for (train::InferenceJob& job : jobs)
      job.profile_path = cat(o.profile_dir, "/profile-", job.method, "-", job.dtype, "-",
                             job.search, "-b", job.batch, ".json");
  StderrProgress progress("[bench] ");
  const nlohmann::json report = train::run_inference_bench(jobs, current_executable(), progress);
  std::cout << (o.json_output ? report.dump(2) + "\n" : train::format_inference_bench(report));
  if (!o.plot_file.empty()) write_bench_plot(report, o.plot_file);
  const int64_t failed = report["failed"].get<int64_t>();
  if (failed > 0) throw Error(cat(failed, " of ", jobs.size(), " configurations failed"));
}

void run_bench(BenchCli& o) {
  if (!o.plot_from.empty()) {
    check_usage(!o.plot_file.empty(), "--plot-from needs --plot FILE");
    const nlohmann::json doc = plot::read_bench_json(o.plot_from);
    try {
      return write_bench_plot(doc, o.plot_file);
    } catch (const Error& e) {
      throw Error(cat(o.plot_from, ": ", e.what()));
    }
  }
  if (!o.plot_file.empty()) {  // checked before a long bench, not after
    const std::filesystem::path folder = std::filesystem::path(o.plot_file).parent_path();
    check_usage(folder.empty() || std::filesystem::is_directory(folder), "--plot ", o.plot_file,
                ": the folder ", folder.string(), " does not exist");
  }
  if (o.inference) return run_inference(o);
  refuse_given(o.inference_given, {}, "needs --inference");
  // Everything that can be checked is checked before the first worker runs.
  check_usage(o.method.method.empty(), "bench takes --methods LIST (or all), not --method");
  o.settings.validate();
  resolve_t5_config(o.settings.model_config);
  const uint64_t init_seed = given_init_seed(o.method).value_or(o.settings.seed);
  std::vector<train::MethodJob> jobs;
  for (const std::string& name : train::parse_method_list(o.methods)) {
    MethodOptions m = o.method;
    m.method = name;
    train::MethodJob job{o.settings, name, resolve_peft_options(m), init_seed, ""};
    if (!o.profile_dir.empty()) job.profile_path = o.profile_dir + "/profile-" + name + ".json";
    jobs.push_back(std::move(job));
  }
  StderrProgress progress("[bench] ");
  const nlohmann::json report = train::run_table3(jobs, current_executable(), progress);
  std::cout << (o.json_output ? report.dump(2) + "\n" : train::format_table3(report));
  if (!o.plot_file.empty()) write_bench_plot(report, o.plot_file);
  const auto& failed = report["failed"];
  if (!failed.empty()) {
    std::string names;
    for (const auto& n : failed) names += (names.empty() ? "" : ", ") + n.get<std::string>();
    throw Error(cat(failed.size(), " of ", jobs.size(), " methods failed: ", names));
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
  add_option_flags(*cmd, o->settings, o->given, "Benchmark");
  cmd->get_option("--dtype")->check(CLI::IsMember({"fp32", "bf16", "autocast-bf16"}));
  cmd->add_flag("--inference", o->inference,
                "time greedy generation instead of training steps, one process per method x "
                "dtype x batch size: tokens/s, request latency p50/p99, time to the first token, "
                "peak memory, GFLOP/s and % of the GEMM rate (train/inference_bench.h)");
  add_option_flags(*cmd, o->inference_settings, o->inference_given,
                   "Inference benchmark (--inference; with --model-config, --source-len, "
                   "--warmup (untimed requests), --device, --seed)",
                   shared_fields());
  o->methods_flag = cmd->add_option("--methods", o->methods,
                                    "all, or a comma list of methods (--inference: also none, "
                                    "the base model alone; default compacter++)")
                        ->capture_default_str();
  cmd->add_flag("--json", o->json_output, "print one JSON document");
  cmd->add_option("--plot", o->plot_file,
                  "also write the results as a standalone SVG figure to FILE: time per step and "
                  "peak memory relative to full fine-tuning (bars; needs full among --methods), "
                  "or with --inference tokens/s against batch size (docs/plots.md)");
  cmd->add_option("--plot-from", o->plot_from,
                  "run nothing: draw --plot FILE from a saved `bench --json` document "
                  "(e.g. bench/results/*.json)");
  cmd->add_option("--profile", o->profile_dir,
                  "write a Chrome trace of each method's timed steps (libtorch's profiler) to "
                  "DIR/profile-METHOD.json (--inference: of each configuration's timed requests, "
                  "DIR/profile-METHOD-DTYPE-SEARCH-bBATCH.json), each step (request) marked; "
                  "bench/profile_summary.py gives each operator's and group's median per step. "
                  "Profiling slows the steps: time without it (DIR is created)");
  add_method_options(*cmd, o->method, false);
  cmd->get_option("--method")->group("");  // bench takes --methods; --method is an error
  cmd->callback([o] { run_bench(*o); });

  // The worker of `bench`: one method, one JSON line. Hidden from --help.
  auto job = std::make_shared<std::string>();
  CLI::App* worker = app.add_subcommand("bench-worker", "one method of `compacter bench`");
  worker->group("");
  worker->add_option("--job", *job, "the job as JSON (train/table3.h)")->required();
  worker->callback([job] {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(*job);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(cat("bench-worker --job: not JSON (", e.what(), ")"));
    }
    const train::MethodJob parsed = train::job_from_json(j);
    StderrProgress progress(cat(parsed.method, ": "));
    std::cout << train::benchmark_method(parsed, progress).dump() << "\n" << std::flush;
  });

  // The worker of `bench --inference`: one configuration, one JSON line. Hidden from --help.
  auto inference_job = std::make_shared<std::string>();
  CLI::App* inference_worker = app.add_subcommand(
      "bench-inference-worker", "one configuration of `compacter bench --inference`");
  inference_worker->group("");
  inference_worker->add_option("--job", *inference_job, "the job as JSON (train/inference_bench.h)")
      ->required();
  inference_worker->callback([inference_job] {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(*inference_job);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(cat("bench-inference-worker --job: not JSON (", e.what(), ")"));
    }
    const train::InferenceJob parsed = train::inference_job_from_json(j);
    StderrProgress progress(cat(parsed.method, " ", parsed.dtype, " batch ", parsed.batch, ": "));
    std::cout << train::benchmark_inference(parsed, progress).dump() << "\n" << std::flush;
  });
}

}  // namespace compacter::cli
