// Reading a run's metrics.jsonl (the training loop writes it: one JSON object a line, a record
// per logged step or evaluation; docs/training.md). One reader for every caller: `compacter
// report --plot` (plot/run_figures.cpp), `--resume` (train/loop.cpp, from the checkpoint's copy)
// and pretraining's final loss (train/pretraining.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace compacter::train {

// Every record of the metrics.jsonl at `path`, in file order; empty lines are skipped. Throws
// compacter::Error: "PATH: cannot be opened" when it cannot be read, and "PATH:LINE: not a JSON
// record (why)" / "PATH:LINE: not a JSON object" / "PATH:LINE: \"type\" must be a string" for a
// bad line, with `bad_line_advice` appended (e.g. "; start again with --overwrite").
std::vector<nlohmann::json> read_metrics_file(const std::string& path,
                                              const std::string& bad_line_advice = "");

}  // namespace compacter::train
