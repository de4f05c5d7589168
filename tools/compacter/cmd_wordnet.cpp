// `compacter wordnet`: real data from Debian's wordnet-base for the offline demo: a pretraining
// corpus (glosses and example sentences) and the definition -> noun category task in JSON Lines,
// with held-out splits whose text the corpus never contains (see pretrain/wordnet.h).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/pretrain/wordnet.h"

namespace compacter::cli {
namespace {

struct WordNetOptions {
  std::string wordnet_dir = "/usr/share/wordnet";
  std::string out;
  pretrain::WordNetTaskOptions task;
  bool no_words = false;
};

std::string percent(double share) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f%%", 100.0 * share);
  return buffer;
}

void run_wordnet(WordNetOptions o) {
  o.task.words_in_corpus = !o.no_words;
  const pretrain::WordNetDataset data = pretrain::build_wordnet_dataset(o.wordnet_dir, o.task);
  check(!data.train.empty() && !data.test.empty(), "wordnet: empty train or test split");
  std::filesystem::create_directories(o.out);

  std::string corpus;
  for (const std::string& line : data.corpus) corpus += line + "\n";
  write_text_atomically(o.out + "/corpus.txt", corpus);
  write_text_atomically(o.out + "/train.jsonl", pretrain::to_jsonl(data.train));
  write_text_atomically(o.out + "/validation.jsonl", pretrain::to_jsonl(data.validation));
  write_text_atomically(o.out + "/test.jsonl", pretrain::to_jsonl(data.test));

  const auto train = pretrain::class_counts(data.train);
  const auto validation = pretrain::class_counts(data.validation);
  const auto test = pretrain::class_counts(data.test);
  const auto majority = std::max_element(test.begin(), test.end(),
                                         [](auto& a, auto& b) { return a.second < b.second; });
  const double majority_share =
      static_cast<double>(majority->second) / static_cast<double>(data.test.size());

  nlohmann::ordered_json summary;
  summary["wordnet_dir"] = o.wordnet_dir;
  summary["seed"] = o.task.seed;
  summary["categories"] = data.categories;
  summary["examples"] = {{"train", data.train.size()},
                         {"validation", data.validation.size()},
                         {"test", data.test.size()}};
  summary["classes"] = {{"train", train}, {"validation", validation}, {"test", test}};
  summary["test_majority_class"] = majority->first;
  summary["test_majority_share"] = majority_share;
  summary["merged_duplicates"] = data.merged_duplicates;
  summary["ambiguous_left_out"] = data.ambiguous;
  summary["corpus_lines"] = data.corpus.size();
  summary["corpus_bytes"] = corpus.size();
  write_text_atomically(o.out + "/summary.json", summary.dump(2) + "\n");

  std::cout << "wordnet: " << data.categories.size() << " noun categories, "
            << data.merged_duplicates << " duplicate definitions merged, " << data.ambiguous
            << " ambiguous synsets left out\n"
            << "  train.jsonl       " << data.train.size() << " examples\n"
            << "  validation.jsonl  " << data.validation.size() << " examples\n"
            << "  test.jsonl        " << data.test.size() << " examples\n"
            << "  corpus.txt        " << data.corpus.size() << " lines, " << corpus.size()
            << " bytes (no validation or test text)\n"
            << "  category            train  validation   test\n";
  for (const std::string& c : data.categories) {
    auto count = [&](const std::map<std::string, int64_t>& m) {
      const auto it = m.find(c);
      return it == m.end() ? int64_t{0} : it->second;
    };
    char row[128];
    std::snprintf(row, sizeof row, "  %-16s %8lld %11lld %6lld\n", c.c_str(),
                  static_cast<long long>(count(train)), static_cast<long long>(count(validation)),
                  static_cast<long long>(count(test)));
    std::cout << row;
  }
  std::cout << "  majority-class baseline on test (best constant answer): " << majority->first
            << " " << percent(majority_share) << "\n"
            << "wrote " << o.out << "/{corpus.txt,train.jsonl,validation.jsonl,test.jsonl,"
            << "summary.json}\n";
}

}  // namespace

void add_wordnet_command(CLI::App& app) {
  auto o = std::make_shared<WordNetOptions>();
  CLI::App* cmd = app.add_subcommand(
      "wordnet",
      "Real offline data from WordNet (Debian's wordnet-base): corpus.txt (glosses and example "
      "sentences, for pretraining) and train/validation/test.jsonl "
      "({\"id\",\"source\",\"target\"}: "
      "a noun definition -> its lexicographer category, e.g. \"animal\"). Validation and test "
      "definitions never appear in the corpus. Also writes summary.json (class counts, "
      "majority-class baseline).");
  cmd->add_option("--wordnet-dir", o->wordnet_dir, "folder with data.noun, data.verb, ...")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "output folder (created)")->required();
  cmd->add_option("--categories", o->task.categories,
                  "keep the K most frequent noun categories (0: all 26)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->task.seed, "seed of the split and order hashes")
      ->capture_default_str();
  cmd->add_option("--validation-fraction", o->task.validation_fraction,
                  "share of definitions held out for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--test-fraction", o->task.test_fraction,
                  "share of definitions held out for test")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--max-train", o->task.max_train, "keep at most N train examples (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-validation", o->task.max_validation,
                  "keep at most N validation examples (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-test", o->task.max_test, "keep at most N test examples (0: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-words-in-corpus", o->no_words,
                "corpus lines hold just the definition, not \"word, word: definition\"");
  cmd->callback([o] { run_wordnet(*o); });
}

}  // namespace compacter::cli
