// Prediction and reference files of `compacter score`: see prediction_files.h.
#include "compacter/tasks/prediction_files.h"

#include <map>

#include "compacter/core/error.h"
#include "compacter/tasks/readers.h"

namespace compacter::tasks {

using nlohmann::json;

std::vector<std::string> read_predictions_for(const std::string& path,
                                              const std::vector<Example>& refs) {
  std::map<std::string, std::string> by_id;
  std::map<std::string, Where> where;
  read_jsonl(path, false, nullptr, [&](const json& row, const Where& w) {
    const std::string id = string_field(row, "id", w);
    const std::string pred = string_field(row, "prediction", w);
    check(by_id.emplace(id, pred).second, w.str(), ": duplicate prediction for id \"", id,
          "\" (first at line ", where[id].line, ")");
    where[id] = w;
  });
  std::map<std::string, bool> known;
  std::vector<std::string> preds;
  for (const Example& r : refs) {
    check(known.emplace(r.id, true).second, "references: duplicate id \"", r.id, "\"");
    const auto it = by_id.find(r.id);
    check(it != by_id.end(), path, ": no prediction for id \"", r.id, "\" (", refs.size(),
          " references)");
    preds.push_back(it->second);
  }
  for (const auto& [id, w] : where)
    check(known.count(id) > 0, w.str(), ": prediction for id \"", id,
          "\", which is not among the references");
  return preds;
}

std::vector<Example> read_reference_file(const std::string& path) {
  std::vector<Example> refs;
  read_jsonl(path, false, nullptr, [&](const json& row, const Where& w) {
    Example e;
    e.id = string_field(row, "id", w);
    e.target = string_field(row, "target", w);
    if (row.contains("answers")) {
      const json& a = row["answers"];
      check(a.is_array(), w.str(), ": field \"answers\": expected an array of strings");
      for (const json& s : a) {
        check(s.is_string(), w.str(), ": field \"answers\": expected strings, found ",
              json_kind(s));
        e.answers.push_back(s.get<std::string>());
      }
    } else {
      e.answers = {e.target};
    }
    if (row.contains("group")) e.group = string_field(row, "group", w);
    refs.push_back(std::move(e));
  });
  return refs;
}

}  // namespace compacter::tasks
