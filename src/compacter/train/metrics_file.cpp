// Reading a run's metrics.jsonl (see metrics_file.h).
#include "compacter/train/metrics_file.h"

#include <fstream>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"

namespace compacter::train {

std::vector<nlohmann::json> read_metrics_file(const std::string& path,
                                              const std::string& bad_line_advice) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path, ": cannot be opened");
  std::istringstream lines(read_stream(in, path, kMaxMetricsFileBytes));
  std::vector<nlohmann::json> out;
  std::string line;
  for (int64_t number = 1; std::getline(lines, line); ++number) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat(path, ":", number, ": not a JSON record (", e.what(), ")", bad_line_advice));
    }
    check(j.is_object(), path, ":", number, ": not a JSON object", bad_line_advice);
    const auto type = j.find("type");  // the record's kind ("train", "eval"), when given
    if (type != j.end() && !type->is_string())
      throw Error(cat(path, ":", number, ": \"type\" must be a string, got a JSON ",
                      type->type_name(), bad_line_advice));
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace compacter::train
