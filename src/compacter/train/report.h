// The comparison of finished fine-tuning runs that `compacter report` prints (one row per run
// directory, read from its results.json): method, base model, trainable parameters and their
// share of the backbone, the adapter file's size, test and validation scores, training time and
// throughput (training steps only) and the time spent in evaluations during training; also the
// task's name and the low-resource subset's size (max_train_samples, null: the whole set).
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace compacter::train {

// One row per run; `metric` chooses the score (empty: each run's first test metric). Throws Error
// naming a run whose results.json is missing or malformed.
nlohmann::json report_rows(const std::vector<std::string>& runs, const std::string& metric);

// The rows as a table with a legend.
std::string format_report(const nlohmann::json& rows);

}  // namespace compacter::train
