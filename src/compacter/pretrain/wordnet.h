// WordNet 3.0 (Debian's wordnet-base, /usr/share/wordnet) as real data for the offline demo:
//  - a reader of the data.noun / data.verb / data.adj / data.adv files (format: wndb(5WN));
//  - a labelled text-to-text task: a noun synset's definition -> its lexicographer category
//    ("animal", "food", "artifact", ...; lexnames(5WN)), restricted to the K most frequent noun
//    categories, with held-out validation and test splits;
//  - a pretraining corpus of glosses and example sentences that contains no text of the
//    held-out synsets.
//
// Splits. A synset's split is decided by a seeded 64-bit hash of its definition text, so synsets
// that share a definition always share a split. Noun synsets of the chosen categories with the
// same definition are merged into one example (the first in file order gives the id); when they
// disagree on the category the definition is ambiguous and left out of the task. Each split is
// ordered by a second seeded hash, so its first N examples are a random sample of it.
//
// Corpus. One line per synset, "word, word: definition" (the lemmas as a dictionary would show
// them; words_in_corpus = false leaves just the definition), then one line per example sentence,
// for every synset of the four parts of speech except the held-out ones: a synset whose
// definition is a validation or test definition contributes nothing, and no line equal to such a
// definition is written. Synsets are ordered by a seeded hash. The task's sources never show the
// words: a definition must be classified from its own text.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace compacter::pretrain {

// One line of a data.* file.
struct Synset {
  std::string offset;                 // synset_offset (8 digits), unique within one file
  int lex_filenum = 0;                // lexicographer file number (0..44)
  char ss_type = 'n';                 // n, v, a, s (adjective satellite) or r
  std::vector<std::string> words;     // '_' -> ' ', adjective markers (a) (p) (ip) removed
  std::string definition;             // the gloss without its example sentences
  std::vector<std::string> examples;  // the gloss's quoted example sentences, without quotes
};

// A gloss split at its top-level ';': quoted parts are examples (the text between the first and
// the last '"' of the part, so an attribution after the quote is dropped); the other parts,
// joined with "; ", are the definition. A quoted text that ends a definition part after a space
// (a gloss missing the ';' before its example) is an example too.
struct Gloss {
  std::string definition;
  std::vector<std::string> examples;
};
Gloss split_gloss(std::string_view gloss);

// Parses one non-comment line of a data.* file; throws Error naming `where` (file:line) and the
// field when the line does not follow wndb(5WN).
Synset parse_synset_line(std::string_view line, const std::string& where);

// All synsets of one data.* file (license lines, which start with two spaces, skipped).
std::vector<Synset> read_wordnet_data_file(const std::string& path);

// The 45 lexicographer file names of lexnames(5WN), "adj.all" (00) .. "adj.ppl" (44).
const std::vector<std::string>& standard_lexicographer_files();
// `wordnet_dir`/lexnames when present (tab-separated number, name, category), else the standard.
std::vector<std::string> read_lexicographer_files(const std::string& wordnet_dir);

struct WordNetTaskOptions {
  int64_t categories = 10;  // the K most frequent noun categories (by synset count); 0: all 26
  uint64_t seed = 0;        // split and order hashes
  double validation_fraction = 0.05;
  double test_fraction = 0.05;
  int64_t max_train = 0;       // keep at most N examples of a split (0: all); held-out text is
  int64_t max_validation = 0;  //   excluded from the corpus whether it is kept or not
  int64_t max_test = 0;
  bool words_in_corpus = true;
};

struct LabelledExample {
  std::string id;      // "n" + synset offset, e.g. "n02084071"
  std::string source;  // the definition
  std::string target;  // the category without "noun.", e.g. "animal"
};

struct WordNetDataset {
  std::vector<std::string> categories;  // the chosen ones, most frequent first
  std::vector<LabelledExample> train, validation, test;
  std::vector<std::string> corpus;  // pretraining text lines
  int64_t merged_duplicates = 0;    // synsets merged into another with the same definition
  int64_t ambiguous = 0;            // synsets left out: same definition, different categories
};

// Builds the task and the corpus from parsed synsets: `nouns` (data.noun) and `others` (the
// verb, adjective and adverb synsets, corpus only); `lexnames` maps lex_filenum to a name.
WordNetDataset build_wordnet_dataset(const std::vector<Synset>& nouns,
                                     const std::vector<Synset>& others,
                                     const std::vector<std::string>& lexnames,
                                     const WordNetTaskOptions& options);

// Reads data.noun, data.verb, data.adj, data.adv (and lexnames if present) from `wordnet_dir`.
WordNetDataset build_wordnet_dataset(const std::string& wordnet_dir,
                                     const WordNetTaskOptions& options);

// JSON Lines, one {"id", "source", "target"} object per example.
std::string to_jsonl(const std::vector<LabelledExample>& examples);

// Examples per target.
std::map<std::string, int64_t> class_counts(const std::vector<LabelledExample>& examples);

// 64-bit FNV-1a of `text` finished with SplitMix64 and mixed with `seed`: the same on every
// platform (std::hash is not).
uint64_t stable_hash(uint64_t seed, std::string_view text);

}  // namespace compacter::pretrain
