// The files `compacter score` reads (spec §5.2): predictions as {"id", "prediction"} JSON Lines,
// matched to the references by id, and references as `compacter data` writes them
// ({"id", "target", "answers", "group"}). Every problem is an Error naming the file and line.
#pragma once
#include <string>
#include <vector>

#include "compacter/tasks/tasks.h"

namespace compacter::tasks {

// The predictions in `path`, one per reference in the references' order. Refuses a duplicate id,
// a reference without a prediction and a prediction for no reference.
std::vector<std::string> read_predictions_for(const std::string& path,
                                              const std::vector<Example>& references);

// References written by `compacter data` ("answers" defaults to [target]).
std::vector<Example> read_reference_file(const std::string& path);

}  // namespace compacter::tasks
