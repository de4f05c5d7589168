// The inference benchmark (`compacter bench --inference`, issue 16 point 3): greedy generation
// (train/generate.h, the decoder that eval, predict and serve run) or beam search
// (train/decoding, --searches beam4: tokens counted per input, not per beam) of random source
// tokens with a
// fine-tuning method attached, for every method x dtype x search x batch size. For each it
// reports tokens/s, the latency of a request batch (p50, p99 over the timed repeats), the time to
// the first token, peak memory, and the achieved matrix-multiply GFLOP/s (train/flops.h's
// generation count) as a share of the machine's measured GEMM rate in the same dtype. Every
// configuration runs in its own process (this program re-executed as
// `<program> bench-inference-worker --job JSON`, which prints one JSON line), so each peak
// memory is that configuration's: on the CPU the peak resident set during its requests (VmHWM,
// reset once the model is built, so a bf16 model's fp32 init does not count), next to the model's
// resident set before them.
//
// Every request generates exactly max_new_tokens tokens per row (</s> does not end it:
// GenerateOptions::stop_when_all_finished = false; beam search never declares an input done),
// so every configuration does the same work
// and tokens/s counts what was computed. Weights are random (T5's own init) unless a model folder
// is given: no kernel's time depends on the weights' values, only the generated tokens do, and
// those are never looked at.
//
// Percentiles are nearest-rank: p-th = the ceil(p/100 * n)-th smallest of n repeats (p99 of
// fewer than 100 repeats is the slowest).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "compacter/core/options.h"
#include "compacter/core/progress.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/peft/methods.h"

namespace compacter::train {

// X(type, name, default, help). source_len 128: the paper's maximum source length (spec §5.1),
// as in the training bench; max_new_tokens 16: decoding steps outweigh the encoder at small
// batches, as in real generation, while a t5-small run stays a few minutes on two cores.
#define COMPACTER_INFERENCE_BENCH_OPTIONS(X)                                                   \
  X(std::string, model_config, "t5-small",                                                     \
    "T5 shape: a built-in name or a folder / config.json (random weights: the speed does not " \
    "depend on their values)")                                                                 \
  X(std::string, model, "",                                                                    \
    "a Hugging Face T5 folder whose weights to use instead of random ones (--model-config is " \
    "then not used)")                                                                          \
  X(std::string, batch_sizes, "1,8,32", "rows per request, a comma list")                      \
  X(int64_t, source_len, 128, "source tokens per row (no padding)")                            \
  X(int64_t, max_new_tokens, 16,                                                               \
    "tokens generated per row, always this many (</s> does not end a request early)")          \
  X(std::string, dtypes, "fp32,bf16",                                                          \
    "a comma list of fp32, bf16 (every tensor bf16), autocast-bf16 (fp32 weights, bf16 "       \
    "matrix products) and int8 (the backbone's linear layers quantised to int8, CPU)")         \
  X(std::string, int8_keep_fp32, nn::kInt8KeepFp32Default, nn::kInt8KeepFp32Help)              \
  X(std::string, searches, "greedy",                                                           \
    "decoding, a comma list: greedy, beamN (beam search with N beams, e.g. beam4)")            \
  X(int64_t, repeats, 10, "timed requests per configuration")                                  \
  X(int64_t, warmup, 1, "untimed requests before them")                                        \
  X(int64_t, rounds, 1,                                                                        \
    "run every configuration this many times, in rounds that alternate their order; tok/s is " \
    "the median of the rounds, xfp32 and xbatch the medians of each round's ratios")           \
  X(std::string, device, "cpu", "cpu, cuda or cuda:N")                                         \
  X(uint64_t, seed, 0, "seed of the tokens and of the weights (and the methods' init)")

struct InferenceBenchSettings {
  COMPACTER_OPTIONS_BODY(COMPACTER_INFERENCE_BENCH_OPTIONS)
  void validate() const;                         // UsageError naming the first bad setting
  std::vector<int64_t> batch_size_list() const;  // in the order given, each once
  std::vector<std::string> dtype_list() const;   // nn::parse_precision names, each once
  bool runs_int8() const;                        // int8 among dtype_list()
  std::vector<std::string> search_list() const;  // "greedy", "beamN" (each checked)
};

// The beams of a --searches entry: 1 for "greedy", N for "beamN" (N >= 2); UsageError otherwise.
int64_t search_beams(const std::string& search);

// "none" (the base model alone), "all" (none and every method), or a comma list of known
// methods and "none", each once (UsageError otherwise).
std::vector<std::string> parse_inference_methods(const std::string& text);

// One configuration: what a worker measures.
struct InferenceJob {
  InferenceBenchSettings settings;
  std::string method;         // "none": no method attached
  peft::PeftOptions options;  // the method's resolved options (unused for "none")
  uint64_t init_seed = 0;
  std::string dtype;   // one of settings.dtype_list()
  std::string search;  // one of settings.search_list()
  int64_t batch = 1;   // one of settings.batch_size_list()
  // Non-empty: a Chrome trace of the timed requests (libtorch's profiler), which slows them; each
  // request one kProfileRequestEvent (bench.h) around its operators.
  std::string profile_path;
};
nlohmann::json inference_job_to_json(const InferenceJob& job);
InferenceJob inference_job_from_json(const nlohmann::json& j);

// Every configuration of the settings for these methods (method, then dtype, search, batch).
std::vector<InferenceJob> inference_jobs(const InferenceBenchSettings& settings,
                                         const std::vector<std::string>& methods,
                                         const std::vector<peft::PeftOptions>& options,
                                         uint64_t init_seed);

// Runs one configuration's requests in this process and returns its row (what a worker prints).
nlohmann::json benchmark_inference(const InferenceJob& job, ProgressSink& progress = no_progress());

// The nearest-rank percentile p (0 < p <= 100) of `values` (not empty).
double percentile(std::vector<double> values, double p);

// One worker run: a job in a round (0-based).
struct InferenceRun {
  size_t job = 0;
  int64_t round = 0;
};

// The order in which run_inference_bench runs its workers: round after round, each running every
// job once. Within a round the jobs that differ only in dtype run one after another (the job
// order regrouped by method, search and batch size, stable otherwise), so that a ratio to fp32
// compares runs seconds apart, not minutes; and every other round runs in the reverse order, so
// that a drift of the machine's speed within a round favours neither side of a pair overall.
std::vector<InferenceRun> inference_run_order(const std::vector<InferenceJob>& jobs,
                                              int64_t rounds);

// The median of `values` (not empty): the middle one, or the mean of the middle two.
double median(std::vector<double> values);

// One configuration's row from its rounds' rows (what benchmark_inference returned, in round
// order, at least one): the requests of every round pooled for the latencies (percentiles, mean,
// time to the first token) and the token count; tokens/s, GFLOP/s and the decoding steps'
// GFLOP/s the medians of the rounds' (each round's own tokens/s kept in
// "round_tokens_per_second"); peak memory and the model's resident set the largest of the rounds'.
nlohmann::json combine_inference_rounds(const std::vector<nlohmann::json>& rounds);

// The whole report: the machine and its GEMM rates, then every job in its own worker process of
// `program` (which must understand `bench-inference-worker --job JSON`), settings.rounds times in
// inference_run_order, then the ratios (to fp32, to the smallest batch: the median over the
// rounds of each round's ratio; to the GEMM rate). A configuration that fails gets a row with
// "error" (its later rounds are not run); the document's "failed" counts them. Profiling
// (a job's profile_path) takes one round: a profiled request is slower, and the trace is one
// run's.
nlohmann::json run_inference_bench(const std::vector<InferenceJob>& jobs,
                                   const std::string& program,
                                   ProgressSink& progress = no_progress());

// The report as the table `compacter bench --inference` prints.
std::string format_inference_bench(const nlohmann::json& report);

}  // namespace compacter::train
