// The training loop (spec §6.1, §6.4): see loop.h.
#include "compacter/train/loop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <dlfcn.h>
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/core/fingerprint.h"
#include "compacter/core/json_file.h"
#include "compacter/dist/gradient_sync.h"
#include "compacter/io/safetensors.h"
#include "compacter/tasks/batching.h"
#include "compacter/train/adamw.h"
#include "compacter/train/bench.h"
#include "compacter/train/metrics_file.h"
#include "compacter/train/run_directory.h"
#include "compacter/train/step.h"

namespace compacter::train {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

std::string hms(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

// Everything needed to continue a run exactly where it stopped.
struct RunState : CheckpointState {
  std::vector<nlohmann::json> records;  // metrics.jsonl

  // The 1-based epoch of the last step taken (the epoch just completed at an epoch's end).
  int64_t epoch_of_last_step() const {
    return batch_in_epoch == 0 && epoch > 0 ? epoch : epoch + 1;
  }
};

void write_records(const std::string& path, const std::vector<nlohmann::json>& records) {
  std::string text;
  for (const auto& r : records) text += r.dump() + "\n";
  write_text_atomically(path, text);
}

void save_checkpoint(const std::string& run_dir, const RunState& s, const AdamW& opt,
                     const std::vector<torch::Tensor>& rank_rng) {
  write_directory(run_dir + "/checkpoint", [&](const std::string& fresh) {
    fs::create_directories(fresh);
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& [name, p] : opt.params()) tensors.emplace_back("param." + name, p.detach());
    for (const auto& [name, t] : opt.state()) tensors.emplace_back("optim." + name, t);
    tensors.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
    for (size_t r = 1; r < rank_rng.size(); ++r)
      tensors.emplace_back(cat("rng.cpu.rank", r), rank_rng[r]);
    safetensors::save(fresh + "/state.safetensors", tensors);
    nlohmann::json j = checkpoint_state_to_json(s);
    j["optimizer_steps"] = opt.steps();
    // A checksum of the tensors' file, which has none of its own: a damaged checkpoint is refused
    // on --resume instead of resuming from other values.
    j["state_fnv1a64"] = file_fingerprint(fresh + "/state.safetensors");
    write_text_atomically(fresh + "/state.json", j.dump(2) + "\n");
    write_records(fresh + "/metrics.jsonl", s.records);
  });
}

RunState load_checkpoint(const std::string& run_dir, AdamW& opt, int64_t rank) {
  std::string dir = run_dir + "/checkpoint";
  if (!fs::exists(dir + "/state.json") && fs::exists(run_dir + "/checkpoint.old/state.json"))
    dir = run_dir + "/checkpoint.old";
  check(fs::exists(dir + "/state.json"), "--resume: no checkpoint in ", run_dir, " (expected ",
        run_dir, "/checkpoint/state.json)");
  const nlohmann::json j = read_json_document(dir + "/state.json");
  RunState s;
  static_cast<CheckpointState&>(s) = checkpoint_state_from_json(j, dir + "/state.json");
  const int64_t optimizer_steps = s.optimizer_steps;
  if (j.contains("state_fnv1a64"))  // checkpoints written before it have none
    check(j["state_fnv1a64"] == file_fingerprint(dir + "/state.safetensors"), dir,
          "/state.safetensors: its bytes do not match the checksum in state.json (the file is "
          "damaged: a partial copy or a flipped bit); start again with --overwrite");
  const auto file = safetensors::File::open(dir + "/state.safetensors");
  torch::NoGradGuard no_grad;
  std::vector<std::pair<std::string, torch::Tensor>> optim;
  for (const auto& [name, p] : opt.params()) {
    check(file.contains("param." + name), dir, "/state.safetensors: missing \"param.", name,
          "\": the checkpoint belongs to another method or model");
    torch::Tensor v = file.load("param." + name);
    check(v.sizes() == p.sizes(), dir, "/state.safetensors: \"param.", name,
          "\" has the wrong shape");
    const_cast<torch::Tensor&>(p).copy_(v);
  }
  for (const auto& info : file.header().tensors)
    if (info.name.rfind("optim.", 0) == 0)
      optim.emplace_back(info.name.substr(6), file.load(info.name));
  opt.load_state(optim, optimizer_steps);
  at::Generator dropout_rng = at::detail::getDefaultCPUGenerator();  // shares the global state
  const std::string rng = rank == 0 ? "rng.cpu" : cat("rng.cpu.rank", rank);
  check(file.contains(rng), dir, "/state.safetensors: no \"", rng,
        "\": the checkpoint was written by a run with fewer ranks");
  dropout_rng.set_state(file.load(rng));
  if (fs::exists(dir + "/metrics.jsonl"))
    s.records = read_metrics_file(dir + "/metrics.jsonl",
                                  "; the checkpoint is damaged: start again with --overwrite");
  return s;
}

}  // namespace

double eta_seconds(double seconds_since_first_step, double evaluation_seconds_since_first_step,
                   int64_t steps_since_first_step, int64_t steps_left) {
  if (steps_since_first_step <= 0) return 0.0;
  const double training = seconds_since_first_step - evaluation_seconds_since_first_step;
  return training / static_cast<double>(steps_since_first_step) * static_cast<double>(steps_left);
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

nlohmann::json distributed_results(const LoopResult& r, const std::string& backend) {
  nlohmann::json d = {{"world_size", r.world_size},
                      {"backend", backend},
                      {"gradient_bytes_per_step", r.gradient_bytes_per_step},
                      {"rank0_communicated_bytes", r.communicated_bytes},
                      {"rank0_communication_seconds", r.communication_seconds}};
  if (r.world_size > 1) {
    d["gradient_buckets"] = r.gradient_buckets;
    d["gradient_bucket_cap_mb"] = r.gradient_bucket_cap_mb;
    d["gradient_overlap"] = r.gradient_overlap;
    d["rank0_gradient_bytes_overlapped"] = r.gradient_overlapped_bytes;
    d["rank0_gradient_buckets_held_back"] = r.gradient_buckets_held_back;
    d["gradient_buckets_replanned"] = r.gradient_buckets_replanned;
    d["gradient_buckets_from_checkpoint"] = r.gradient_buckets_from_checkpoint;
    d["rank0_gradient_wait_seconds"] = r.gradient_wait_seconds;
    d["note"] =
        "rank0_communication_seconds: the time rank 0 was blocked in collectives; of it, "
        "rank0_gradient_wait_seconds waiting for the gradients' all-reduce after the backward "
        "(with gradient_overlap, the buckets started during the backward, "
        "rank0_gradient_bytes_overlapped of the gradient bytes, ran alongside it; "
        "rank0_gradient_buckets_held_back: how often a complete bucket waited for an earlier one; "
        "gradient_buckets_replanned: whether this run planned the buckets again, after its first "
        "step, in the order the backward completed the gradients; "
        "gradient_buckets_from_checkpoint: whether a resumed run planned them in the order "
        "its checkpoint recorded; gradient_buckets counts them as they ended)";
  }
  return d;
}

namespace {

// A "Name:   N kB" field of /proc/self/status in bytes (0 when absent).
int64_t status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  const std::string prefix = field + ":";
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size())) * 1024;
  return 0;
}

}  // namespace

int64_t peak_rss_bytes() {
  return status_bytes("VmHWM");
}

int64_t resident_bytes() {
  return status_bytes("VmRSS");
}

void release_free_memory() {
  using Release = void (*)();
  static const auto tcmalloc =
      reinterpret_cast<Release>(dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"));
  if (tcmalloc != nullptr)
    tcmalloc();
  else
    malloc_trim(0);
}

int64_t run_peak_memory_bytes(const torch::Device& device) {
  const int64_t cuda = device.is_cuda() ? cuda_peak_allocated_bytes(device) : -1;
  return cuda >= 0 ? cuda : peak_rss_bytes();
}

LoopResult run_training(nn::T5ModelImpl& model, const std::vector<tasks::EncodedExample>& train,
                        const TrainOptions& o, const std::string& run_dir, bool resume,
                        const LoopCallbacks& cb, ProgressSink& progress,
                        dist::ProcessGroup* group) {
  check(!train.empty(), "the train split is empty");
  const int64_t rank = group ? group->rank() : 0;
  const int64_t world = group ? group->world_size() : 1;
  const bool writer = rank == 0;  // writes run_dir and evaluates
  o.validate();
  StepOptions so;
  so.gradient_accumulation = o.gradient_accumulation;
  so.max_grad_norm = o.max_grad_norm;
  so.weight_decay = o.weight_decay;
  so.bf16_autocast = o.bf16_autocast;
  TrainStep step(model, so);
  AdamW& opt = step.optimizer();

  const int64_t n = static_cast<int64_t>(train.size());
  const int64_t batches_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  const int64_t steps_per_epoch =
      (batches_per_epoch + o.gradient_accumulation - 1) / o.gradient_accumulation;
  const int64_t total = o.max_steps > 0 ? o.max_steps : steps_per_epoch * o.epochs;
  const int64_t total_epochs = (total + steps_per_epoch - 1) / steps_per_epoch;
  const torch::Device device = model.shared->weight.device();

  if (writer) fs::create_directories(run_dir);
  RunState s;
  if (resume) {
    s = load_checkpoint(run_dir, opt, rank);
    progress.info(cat("resuming at step ", s.step, " of ", total, " (epoch ", s.epoch + 1, ")"));
  } else {
    // Dropout; rank r > 0 draws its own stream, reproducible from the seed.
    torch::manual_seed(o.seed + static_cast<uint64_t>(rank) * 1000003u);
  }
  // The gradients' all-reduce: buckets, started during the last micro-batch's backward with
  // overlap (dist/gradient_sync.h).
  std::unique_ptr<dist::GradientSync> sync;
  if (group) {
    group->broadcast(step.tensors());  // rank 0's tensors on every rank
    // A resumed run plans its buckets in the order the run it continues re-planned them in.
    try {
      sync = std::make_unique<dist::GradientSync>(*group, step.tensors(), group->gradient_sync(),
                                                  s.gradient_bucket_order);
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      if (s.gradient_bucket_order.empty()) throw;
      throw Error(cat(run_dir,
                      "/checkpoint/state.json: gradient_bucket_order does not fit this "
                      "run (",
                      e.what(),
                      "); the checkpoint is damaged: start again with "
                      "--overwrite"));
    }
    progress.info(cat("data-parallel: world size ", world, ", backend ", group->backend(),
                      ", global batch ", o.batch_size, " (", o.batch_size / world, "-",
                      (o.batch_size + world - 1) / world, " examples per rank), timeout ",
                      group->timeout_seconds(), " s, gradients in ", sync->bucket_count(),
                      " bucket(s) of at most ", group->gradient_sync().bucket_cap_mb,
                      " MiB, overlap ", group->gradient_sync().overlap ? "on" : "off"));
  }
  // This rank's contiguous share of a global batch.
  auto share_of = [&](const std::vector<size_t>& global) {
    const int64_t n = static_cast<int64_t>(global.size());
    return std::vector<size_t>(global.begin() + n * rank / world,
                               global.begin() + n * (rank + 1) / world);
  };
  auto target_tokens = [&](const std::vector<size_t>& indices) {
    int64_t count = 0;
    for (size_t i : indices)
      for (int64_t id : train[i].target_ids) count += id != -100;
    return count;
  };

  InterruptScope interrupts;
  model.train();
  auto run_start = Clock::now();
  const double seconds_before = s.train_seconds;
  double& loss_sum = s.loss_sum;
  int64_t& loss_count = s.loss_count;
  int64_t examples_since_log = 0;
  auto log_start = Clock::now();
  // The rate and ETA count from the first step of this process (not from start-up work).
  auto first_step_start = Clock::now();
  int64_t first_step = s.step;
  double evaluation_at_first_step = s.evaluation_seconds;

  auto elapsed = [&] { return seconds_before + seconds_since(run_start); };
  auto evaluate = [&] {
    if (!cb.evaluate) return;
    if (!writer) {  // rank 0 keeps the records; the others take their share or wait
      if (cb.evaluate_on_every_rank) cb.evaluate();
      model.train();
      s.evaluations.push_back({{"step", s.step}});
      group->wait_for_all("rank 0 evaluates", std::chrono::hours(24 * 7));
      return;
    }
    progress.info(cat("evaluating at step ", s.step, " ..."));
    const auto t0 = Clock::now();
    const Evaluation e = cb.evaluate();
    model.train();
    nlohmann::json record = {{"type", "eval"},
                             {"step", s.step},
                             {"epoch", s.epoch_of_last_step()},
                             {"metrics", e.metrics},
                             {"selection", e.selection}};
    const bool better = e.selection > s.best;
    if (better) {
      s.best = e.selection;
      s.best_step = s.step;
      write_directory(run_dir + "/best_adapter", cb.save_adapter);
    }
    record["best"] = better;
    s.evaluations.push_back(record);
    s.records.push_back(record);
    const double seconds = seconds_since(t0);
    s.evaluation_seconds += seconds;
    log_start +=
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    progress.info(cat("eval step ", s.step, ": ", nlohmann::json(e.metrics).dump(), " selection ",
                      e.selection, better ? " (best so far)" : "", " [", std::fixed,
                      std::setprecision(1), seconds, " s]"));
    if (group) group->wait_for_all("rank 0 evaluates", std::chrono::hours(24 * 7));
  };
  auto checkpoint = [&] {
    s.train_seconds = elapsed();
    std::vector<torch::Tensor> rank_rng;  // every rank's dropout generator, for rank 0 to save
    if (group) rank_rng = group->all_gather(at::detail::getDefaultCPUGenerator().get_state());
    if (sync) s.gradient_bucket_order = sync->order();  // rank 0's, the same on every rank
    if (!writer) return;
    write_records(run_dir + "/metrics.jsonl", s.records);
    save_checkpoint(run_dir, s, opt, rank_rng);
  };
  bool stop_requested = false;  // with a process group: Ctrl-C on any rank

  while (s.step < total) {
    auto batches = tasks::make_batches(train, o.batch_size, true, o.group_by_length,
                                       o.seed + static_cast<uint64_t>(s.epoch));
    auto epoch_start = Clock::now();
    const double epoch_before = s.epoch_seconds_so_far;
    int64_t b = s.batch_in_epoch;
    while (b < static_cast<int64_t>(batches.size()) && s.step < total) {
      if (s.step == first_step) {
        first_step_start = Clock::now();
        evaluation_at_first_step = s.evaluation_seconds;
      }
      double share_loss = 0.0;  // this rank's part of the micro-batches' mean losses
      for (int64_t a = 0; a < o.gradient_accumulation && b < static_cast<int64_t>(batches.size());
           ++a, ++b) {
        const std::vector<size_t>& global = batches[static_cast<size_t>(b)];
        const bool last_micro_batch =
            a + 1 == o.gradient_accumulation || b + 1 == static_cast<int64_t>(batches.size());
        if (group && last_micro_batch) sync->arm();  // its backward may start the all-reduce
        if (!group) {
          tasks::Batch batch = tasks::collate(train, global);
          loss_sum += step.accumulate(batch.input_ids, batch.attention_mask, batch.labels);
        } else {
          // Weighted by tokens: sum over ranks of (share's mean x share tokens / all tokens)
          // = the micro-batch's mean, in the loss and in its gradient.
          const std::vector<size_t> mine = share_of(global);
          const int64_t tokens = target_tokens(global), my_tokens = target_tokens(mine);
          if (my_tokens > 0) {  // an empty share adds zeros to the all-reduce
            tasks::Batch batch = tasks::collate(train, mine);
            const double fraction = static_cast<double>(my_tokens) / static_cast<double>(tokens);
            const double mean =
                step.accumulate_weighted(batch.input_ids, batch.attention_mask, batch.labels,
                                         fraction / static_cast<double>(o.gradient_accumulation));
            share_loss += mean * fraction;
          }
        }
        ++loss_count;
        examples_since_log += static_cast<int64_t>(global.size());
        s.examples += static_cast<int64_t>(global.size());
      }
      if (group) {
        // The trainable tensors' gradients summed over ranks (the buckets the backward did not
        // start, then the wait for all), then the loss and any rank's Ctrl-C.
        sync->finish();
        torch::NoGradGuard no_grad;
        torch::Tensor stats =
            torch::tensor({share_loss, interrupt_requested() ? 1.0 : 0.0}, torch::kFloat64);
        group->all_reduce_sum({stats});
        loss_sum += stats[0].item<double>();
        stop_requested = stats[1].item<double>() > 0;
      }
      const double lr = linear_schedule(s.step, o.warmup_steps, total, o.learning_rate);
      step.finish(lr);
      ++s.step;
      s.batch_in_epoch = b;
      s.epoch_seconds_so_far = epoch_before + seconds_since(epoch_start);
      if (s.step % o.log_steps == 0 || s.step == total) {
        const double dt = seconds_since(log_start);
        const double rate = dt > 0 ? examples_since_log / dt : 0.0;
        const double done = elapsed();
        const double eta = eta_seconds(seconds_since(first_step_start),
                                       s.evaluation_seconds - evaluation_at_first_step,
                                       s.step - first_step, total - s.step);
        const double loss = loss_count ? loss_sum / loss_count : 0.0;
        nlohmann::json record = {{"type", "train"},        {"step", s.step},
                                 {"epoch", s.epoch + 1},   {"loss", loss},
                                 {"learning_rate", lr},    {"examples_per_second", rate},
                                 {"elapsed_seconds", done}};
        s.records.push_back(record);
        std::ostringstream line;
        line << "[train] step " << std::setw(6) << s.step << "/" << total << " | epoch "
             << std::setw(3) << s.epoch + 1 << "/" << total_epochs << " | loss " << std::fixed
             << std::setprecision(4) << loss << " | lr " << std::scientific << std::setprecision(2)
             << lr << " | " << std::fixed << std::setprecision(1) << std::setw(7) << rate
             << " ex/s | " << hms(done) << " < " << hms(eta) << " | mem " << std::setprecision(2)
             << run_peak_memory_bytes(device) / 1e9 << " GB";
        progress.status(line.str());
        loss_sum = 0.0;
        loss_count = 0;
        examples_since_log = 0;
        log_start = Clock::now();
      }
      const bool eval_now = o.eval_steps > 0 && s.step % o.eval_steps == 0;
      if (eval_now) evaluate();
      if (eval_now || (o.save_steps > 0 && s.step % o.save_steps == 0)) checkpoint();
      if (group ? stop_requested : interrupt_requested()) {
        checkpoint();
        throw Interrupted(cat("interrupted at step ", s.step, "; checkpoint saved in ", run_dir,
                              "/checkpoint (continue with --resume)"));
      }
    }
    if (b >= static_cast<int64_t>(batches.size())) {  // the epoch is complete
      s.epoch_seconds.push_back(s.epoch_seconds_so_far);
      ++s.epoch;
      s.batch_in_epoch = 0;
      s.epoch_seconds_so_far = 0.0;
      if (o.eval_steps == 0) evaluate();
      checkpoint();
    } else {  // the step budget ran out inside the epoch
      s.epoch_seconds.push_back(s.epoch_seconds_so_far);
    }
  }
  const bool evaluated_last =
      !s.evaluations.empty() && s.evaluations.back()["step"].get<int64_t>() == s.step;
  if (cb.evaluate && !evaluated_last) evaluate();
  if (!cb.evaluate && writer) {  // no selection: the final tensors are the result
    write_directory(run_dir + "/best_adapter", cb.save_adapter);
  }
  if (!cb.evaluate) s.best_step = s.step;
  s.train_seconds = elapsed();
  if (writer) write_records(run_dir + "/metrics.jsonl", s.records);

  LoopResult r;
  r.steps = s.step;
  r.epochs_done = s.epoch;
  r.best_selection = s.best;
  r.best_step = s.best_step;
  r.epoch_seconds = s.epoch_seconds;
  r.total_seconds = s.train_seconds;
  r.evaluation_seconds = s.evaluation_seconds;
  r.train_seconds = s.train_seconds - s.evaluation_seconds;
  r.examples = s.examples;
  r.examples_per_second = r.train_seconds > 0 ? s.examples / r.train_seconds : 0.0;
  r.peak_memory_bytes = run_peak_memory_bytes(device);
  r.evaluations = s.evaluations;
  if (group) {
    r.world_size = world;
    r.gradient_bytes_per_step = sync->bytes_per_step();
    r.gradient_buckets = static_cast<int64_t>(sync->bucket_count());
    r.gradient_overlap = group->gradient_sync().overlap;
    r.gradient_bucket_cap_mb = group->gradient_sync().bucket_cap_mb;
    r.gradient_overlapped_bytes = sync->overlapped_bytes();
    r.gradient_wait_seconds = sync->exposed_seconds();
    r.gradient_buckets_held_back = sync->held_back_buckets();
    r.gradient_buckets_replanned = sync->replanned();
    r.gradient_buckets_from_checkpoint = !s.gradient_bucket_order.empty() && !sync->replanned();
    r.communicated_bytes = group->bytes_communicated();
    r.communication_seconds = group->seconds_communicating();
  }
  return r;
}

}  // namespace compacter::train
