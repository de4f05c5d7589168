// The data-parallel options and launch shared by `train` and `pretrain` (README "Data-parallel
// training"): --nproc N starts N local ranks as copies of this program (dist/launch.h) and waits
// for them; with the torchrun environment set (WORLD_SIZE > 1) this process is one rank.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "compacter/core/progress.h"
#include "compacter/dist/environment.h"
#include "compacter/dist/gradient_sync.h"

namespace compacter::cli {

struct DataParallelCli {
  int64_t nproc = 1;
  double dist_timeout = 300.0;
  double dist_bucket_mb = dist::GradientSyncOptions{}.bucket_cap_mb;
  std::string dist_overlap = dist::GradientSyncOptions{}.overlap ? "on" : "off";
  dist::GradientSyncOptions gradient_sync() const { return {dist_bucket_mb, dist_overlap == "on"}; }
};

// --nproc, --dist-timeout, --dist-bucket-mb and --dist-overlap on `cmd`.
void add_data_parallel_options(CLI::App& cmd, DataParallelCli& o);

// This process's rank environment, after checking --nproc against it; nullopt when --nproc N > 1
// without torchrun's environment: then the N ranks were started here, ran and succeeded (a
// failed rank throws Error naming it; Ctrl-C throws Interrupted). `command`: for messages.
std::optional<dist::DistEnv> rank_environment(const DataParallelCli& o, const std::string& command);

// A rank's progress: rank 0's lines as one process's; the others' warnings only, marked.
class RankProgress : public ProgressSink {
 public:
  RankProgress(ProgressSink& inner, int64_t rank) : inner_(inner), rank_(rank) {}
  void info(const std::string& line) override;
  void warning(const std::string& line) override;
  void status(const std::string& line) override;

 private:
  ProgressSink& inner_;
  int64_t rank_;
};

}  // namespace compacter::cli
