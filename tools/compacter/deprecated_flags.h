// Old flag spellings, kept working for now: each is rewritten to the one vocabulary of every
// command (--model-config, --batch-size, --max-steps, --max-new-tokens, --dtype) before parsing,
// with a one-line note on stderr.
#pragma once
#include <ostream>
#include <string>
#include <vector>

namespace compacter::cli {

// argv[1..] with the deprecated flags of the subcommand replaced (a note for each on `notes`).
std::vector<std::string> replace_deprecated_flags(int argc, char** argv, std::ostream& notes);

}  // namespace compacter::cli
