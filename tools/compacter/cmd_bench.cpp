// `compacter bench` (the paper's Table 3): options and one library call, train::run_table3
// (train/table3.h), each method measured in its own worker process (the hidden subcommand
// `bench-worker --job JSON`, which prints one JSON line).
#include <iostream>

#include "commands.h"
#include "compacter/core/error.h"
#include "compacter/core/subprocess.h"
#include "compacter/io/t5_config.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/train/table3.h"
#include "method_options.h"
#include "option_flags.h"
#include "stderr_progress.h"

namespace compacter::cli {

namespace {

struct BenchCli {
  train::Table3Settings settings;
  GivenFlags given;
  std::string profile_dir;  // non-empty: DIR/profile-METHOD.json per method
  std::string methods = "all";
  bool json_output = false;
  MethodOptions method;
};

void run_bench(BenchCli& o) {
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
  cmd->add_option("--methods", o->methods, "all, or a comma list of methods")
      ->capture_default_str();
  cmd->add_flag("--json", o->json_output, "print one JSON document");
  cmd->add_option("--profile", o->profile_dir,
                  "write a Chrome trace of each method's timed steps (libtorch's profiler) to "
                  "DIR/profile-METHOD.json; bench/profile_summary.py sums it by operator. "
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
}

}  // namespace compacter::cli
