// Fuzz target for the choice of a model folder's tokenizer (train/tokenizer_choice.h), as every
// command that loads a model makes it: from the folder's tokenizer_config.json ("tokenizer_class",
// "extra_ids") and config.json ("tokenizer_class"). The input is tokenizer_config.json, up to a
// NUL byte, and after it config.json (no NUL: config.json is "{}"); the first byte says whether
// the folder has a tokenizer_config.json (bit 0) and a spiece.model (bit 1). They are written
// into one temporary model folder. Beyond "accepted or compacter::Error": an accepted choice is
// ByT5's bytes chosen by one of the two JSON files, or the folder's spiece.model when it exists;
// extra_ids is -1 (the default) or from 0 to 100000.
#include <string>

#include "compacter/train/tokenizer_choice.h"
#include "fuzz_target.h"
#include "temp_folder.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  static const TempFolder folder;
  const bool has_tokenizer_config = (data[0] & 1) != 0, has_spiece = (data[0] & 2) != 0;
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nul = rest.find('\0');
  folder.put("tokenizer_config.json", rest.substr(0, nul), has_tokenizer_config);
  folder.put("config.json", nul == std::string::npos ? "{}" : rest.substr(nul + 1));
  folder.put("spiece.model", "", has_spiece);
  return compacter_fuzz_accepted_unless_error([&] {
    const auto choice = compacter::train::choose_tokenizer(folder.path, "");
    if (choice.extra_ids < -1 || choice.extra_ids > 100000) __builtin_trap();
    if (choice.byte_level) {
      if (choice.file != folder.path + "/config.json" &&
          !(has_tokenizer_config && choice.file == folder.path + "/tokenizer_config.json"))
        __builtin_trap();
    } else if (!has_spiece || choice.file != folder.path + "/spiece.model") {
      __builtin_trap();
    }
    if (choice.extra_ids != -1 && !has_tokenizer_config) __builtin_trap();
  });
}

COMPACTER_FUZZ_ENTRY_POINT
