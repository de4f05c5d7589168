// Fuzz target for the WordNet reader of the offline demo's pretraining (pretrain/wordnet.h): a
// data.* file (wndb(5WN)) or a lexnames file, as `compacter pretrain --wordnet DIR` reads them.
// The first input byte picks: bit 0 clear, a data file (the rest, handed over as an in-memory
// file), read by read_wordnet_data_file and then made into the task and the corpus by
// build_wordnet_dataset (its synsets as data.noun and again as the other parts of speech; the
// standard lexnames; bit 1: all categories or the 2 most frequent, bit 2: words in the corpus);
// bit 0 set, a lexnames file in a temporary folder, read by read_lexicographer_files. Beyond
// "accepted or compacter::Error": every accepted synset has an 8-digit offset, a lexicographer
// file from 0 to 99, a known type and at least one word; every example's label is a chosen
// category; no definition is in two splits; no corpus line is a validation or test definition
// (the corpus is leakage-free, as wordnet.h promises); a lexnames table has at most 100 names.
#include <set>
#include <string>

#include "compacter/pretrain/wordnet.h"
#include "fuzz_target.h"
#include "memory_file.h"
#include "temp_folder.h"

namespace {

using namespace compacter::pretrain;

void check_dataset(const std::vector<Synset>& synsets, const WordNetDataset& d) {
  for (const Synset& s : synsets)
    if (s.offset.size() != 8 || s.lex_filenum < 0 || s.lex_filenum > 99 || s.words.empty() ||
        std::string("nvasr").find(s.ss_type) == std::string::npos)
      __builtin_trap();
  const std::set<std::string> categories(d.categories.begin(), d.categories.end());
  std::set<std::string> held_out, train;
  for (const auto* split : {&d.validation, &d.test})
    for (const LabelledExample& e : *split) held_out.insert(e.source);
  for (const LabelledExample& e : d.train) train.insert(e.source);
  for (const auto* split : {&d.train, &d.validation, &d.test})
    for (const LabelledExample& e : *split)
      if (!categories.count(e.target)) __builtin_trap();
  for (const std::string& definition : held_out)
    if (train.count(definition)) __builtin_trap();
  for (const std::string& line : d.corpus)
    if (held_out.count(line)) __builtin_trap();
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const uint8_t mode = data[0];
  if (mode & 1) {
    static const TempFolder folder;
    folder.put("lexnames", std::string(reinterpret_cast<const char*>(data + 1), size - 1));
    return compacter_fuzz_accepted_unless_error([&] {
      if (read_lexicographer_files(folder.path).size() > 100) __builtin_trap();
    });
  }
  MemoryFile file(data + 1, size - 1);
  return compacter_fuzz_accepted_unless_error([&] {
    const std::vector<Synset> synsets = read_wordnet_data_file(file.path());
    WordNetTaskOptions o;
    o.categories = (mode & 2) ? 0 : 2;
    o.words_in_corpus = (mode & 4) != 0;
    o.validation_fraction = 0.3;
    o.test_fraction = 0.3;
    check_dataset(synsets,
                  build_wordnet_dataset(synsets, synsets, standard_lexicographer_files(), o));
  });
}

COMPACTER_FUZZ_ENTRY_POINT
