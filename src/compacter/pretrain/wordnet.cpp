// WordNet data files (wndb(5WN)) -> synsets; the definition -> noun category task with hashed
// splits; the leakage-free gloss corpus. See wordnet.h for the rules.
#include "compacter/pretrain/wordnet.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "compacter/core/error.h"

namespace compacter::pretrain {
namespace {

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_spaces(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < s.size()) {
    while (pos < s.size() && s[pos] == ' ') ++pos;
    if (pos == s.size()) break;
    size_t end = s.find(' ', pos);
    if (end == std::string_view::npos) end = s.size();
    out.push_back(s.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

// Parses field `text` as an unsigned number in `base` with exactly `digits` digits (0: any).
int64_t parse_number(std::string_view text, int base, size_t digits, const std::string& where,
                     const char* field) {
  int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  check(ec == std::errc() && ptr == text.data() + text.size() && value >= 0 &&
            (digits == 0 || text.size() == digits),
        where, ": bad ", field, " '", text, "'");
  return value;
}

// A lemma as written in the file -> as a reader would write it.
std::string clean_word(std::string_view word) {
  for (std::string_view marker : {"(a)", "(p)", "(ip)"}) {
    if (word.size() > marker.size() && word.substr(word.size() - marker.size()) == marker) {
      word.remove_suffix(marker.size());
      break;
    }
  }
  std::string out(word);
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// A uniform number in [0, 1) from a hash.
double unit_interval(uint64_t h) {
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0);  // 53 bits / 2^53
}

// Keeps the first `max` examples (all when max is 0).
void cap(std::vector<LabelledExample>& examples, int64_t max) {
  if (max > 0 && static_cast<int64_t>(examples.size()) > max)
    examples.resize(static_cast<size_t>(max));
}

std::string corpus_head(const Synset& s, bool with_words) {
  if (!with_words || s.words.empty()) return s.definition;
  std::string line;
  for (size_t i = 0; i < s.words.size(); ++i) line += (i ? ", " : "") + s.words[i];
  return line + ": " + s.definition;
}

}  // namespace

uint64_t stable_hash(uint64_t seed, std::string_view text) {
  uint64_t h = 0xCBF29CE484222325ULL;  // FNV-1a 64
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ULL;
  }
  return splitmix64(h ^ splitmix64(seed));
}

Gloss split_gloss(std::string_view gloss) {
  std::vector<std::string_view> parts;
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i <= gloss.size(); ++i) {
    if (i < gloss.size() && gloss[i] == '"') quoted = !quoted;
    if (i == gloss.size() || (gloss[i] == ';' && !quoted)) {
      parts.push_back(trim(gloss.substr(start, i - start)));
      start = i + 1;
    }
  }
  Gloss out;
  for (std::string_view part : parts) {
    if (part.empty()) continue;
    if (part.front() == '"') {
      const size_t last = part.rfind('"');
      std::string_view text = last > 0 ? part.substr(1, last - 1) : part.substr(1);
      text = trim(text);
      if (!text.empty()) out.examples.emplace_back(text);
    } else {
      // A few glosses lack the ';' before an example: `... worsted yarns "he wore a worsted
      // suit"`. A part that ends with a quoted text after a space gives that text as an example.
      if (part.size() > 2 && part.back() == '"') {
        const size_t open = part.rfind('"', part.size() - 2);
        if (open != std::string_view::npos && open > 0 && part[open - 1] == ' ') {
          const std::string_view text = trim(part.substr(open + 1, part.size() - open - 2));
          if (!text.empty()) out.examples.emplace_back(text);
          part = trim(part.substr(0, open));
        }
      }
      if (part.empty()) continue;
      if (!out.definition.empty()) out.definition += "; ";
      out.definition += part;
    }
  }
  return out;
}

Synset parse_synset_line(std::string_view line, const std::string& where) {
  const size_t bar = line.find(" | ");
  const std::string_view head = bar == std::string_view::npos ? line : line.substr(0, bar);
  const std::vector<std::string_view> f = split_spaces(head);
  check(f.size() >= 6, where, ": too few fields for a synset (", f.size(), ")");
  Synset s;
  parse_number(f[0], 10, 8, where, "synset_offset");
  s.offset = std::string(f[0]);
  s.lex_filenum = static_cast<int>(parse_number(f[1], 10, 2, where, "lex_filenum"));
  check(f[2].size() == 1 && std::string_view("nvasr").find(f[2][0]) != std::string_view::npos,
        where, ": bad ss_type '", f[2], "'");
  s.ss_type = f[2][0];
  const int64_t w_cnt = parse_number(f[3], 16, 2, where, "w_cnt");
  check(w_cnt >= 1, where, ": w_cnt is 0");
  size_t i = 4;
  for (int64_t w = 0; w < w_cnt; ++w, i += 2) {
    check(i + 1 < f.size(), where, ": the line ends inside its ", w_cnt, " words");
    parse_number(f[i + 1], 16, 0, where, "lex_id");
    s.words.push_back(clean_word(f[i]));
  }
  check(i < f.size(), where, ": missing p_cnt");
  const int64_t p_cnt = parse_number(f[i], 10, 3, where, "p_cnt");
  i += 1 + 4 * static_cast<size_t>(p_cnt);
  check(i <= f.size(), where, ": the line ends inside its ", p_cnt, " pointers");
  if (s.ss_type == 'v') {  // f_cnt, then "+ f_num w_num" per frame
    check(i < f.size(), where, ": missing f_cnt of a verb synset");
    const int64_t f_cnt = parse_number(f[i], 10, 2, where, "f_cnt");
    i += 1 + 3 * static_cast<size_t>(f_cnt);
  }
  check(i == f.size(), where, ": ", f.size() - std::min(i, f.size()),
        " unexpected fields before the gloss");
  if (bar != std::string_view::npos) {
    Gloss g = split_gloss(line.substr(bar + 3));
    s.definition = std::move(g.definition);
    s.examples = std::move(g.examples);
  }
  return s;
}

std::vector<Synset> read_wordnet_data_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "WordNet data file ", path, ": cannot be read");
  std::vector<Synset> out;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("  ", 0) == 0 || trim(line).empty()) continue;  // license header
    out.push_back(parse_synset_line(line, path + ":" + std::to_string(number)));
  }
  check(!in.bad(), "WordNet data file ", path, ": read error");
  check(!out.empty(), "WordNet data file ", path, ": no synsets");
  return out;
}

const std::vector<std::string>& standard_lexicographer_files() {
  static const std::vector<std::string> names = {
      "adj.all",          "adj.pert",           "adv.all",
      "noun.Tops",        "noun.act",           "noun.animal",
      "noun.artifact",    "noun.attribute",     "noun.body",
      "noun.cognition",   "noun.communication", "noun.event",
      "noun.feeling",     "noun.food",          "noun.group",
      "noun.location",    "noun.motive",        "noun.object",
      "noun.person",      "noun.phenomenon",    "noun.plant",
      "noun.possession",  "noun.process",       "noun.quantity",
      "noun.relation",    "noun.shape",         "noun.state",
      "noun.substance",   "noun.time",          "verb.body",
      "verb.change",      "verb.cognition",     "verb.communication",
      "verb.competition", "verb.consumption",   "verb.contact",
      "verb.creation",    "verb.emotion",       "verb.motion",
      "verb.perception",  "verb.possession",    "verb.social",
      "verb.stative",     "verb.weather",       "adj.ppl"};
  return names;
}

std::vector<std::string> read_lexicographer_files(const std::string& wordnet_dir) {
  const std::string path = wordnet_dir + "/lexnames";
  if (!std::filesystem::exists(path)) return standard_lexicographer_files();
  std::ifstream in(path);
  check(in.good(), path, ": cannot be read");
  std::vector<std::string> names;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    std::string row(trim(line));
    if (row.empty()) continue;
    std::replace(row.begin(), row.end(), '\t', ' ');
    const std::vector<std::string_view> fields = split_spaces(row);
    check(fields.size() >= 2, path, ":", number, ": expected 'number name category'");
    // Two digits, as lexnames(5WN) writes them (00..44): a bound on the table's size too.
    const int64_t index = parse_number(fields[0], 10, 2, cat(path, ":", number), "file number");
    if (static_cast<int64_t>(names.size()) <= index) names.resize(static_cast<size_t>(index) + 1);
    names[static_cast<size_t>(index)] = std::string(fields[1]);
  }
  return names;
}

WordNetDataset build_wordnet_dataset(const std::vector<Synset>& nouns,
                                     const std::vector<Synset>& others,
                                     const std::vector<std::string>& lexnames,
                                     const WordNetTaskOptions& options) {
  check(options.validation_fraction >= 0 && options.test_fraction >= 0 &&
            options.validation_fraction + options.test_fraction < 1,
        "wordnet: validation and test fractions must be >= 0 and sum to less than 1");
  check(options.categories >= 0, "wordnet: categories must be >= 0");
  auto category_of = [&](const Synset& s) -> std::string {
    check(s.lex_filenum >= 0 && s.lex_filenum < static_cast<int>(lexnames.size()) &&
              !lexnames[static_cast<size_t>(s.lex_filenum)].empty(),
          "wordnet: synset ", s.offset, " has unknown lexicographer file ", s.lex_filenum);
    const std::string& name = lexnames[static_cast<size_t>(s.lex_filenum)];
    check(name.rfind("noun.", 0) == 0, "wordnet: noun synset ", s.offset, " is in ", name);
    return name.substr(5);
  };

  // The K most frequent categories (ties: alphabetical).
  std::map<std::string, int64_t> frequency;
  for (const Synset& s : nouns)
    if (!s.definition.empty()) ++frequency[category_of(s)];
  std::vector<std::pair<std::string, int64_t>> ranked(frequency.begin(), frequency.end());
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (options.categories > 0 && static_cast<int64_t>(ranked.size()) > options.categories)
    ranked.resize(static_cast<size_t>(options.categories));
  WordNetDataset data;
  std::set<std::string> chosen;
  for (const auto& [name, count] : ranked) {
    data.categories.push_back(name);
    chosen.insert(name);
  }

  // One example per distinct definition; ambiguous definitions dropped.
  struct Group {
    const Synset* first = nullptr;
    std::set<std::string> labels;
    int64_t members = 0;
  };
  std::unordered_map<std::string, Group> groups;
  std::vector<std::string> order;  // definitions in file order
  for (const Synset& s : nouns) {
    if (s.definition.empty()) continue;
    const std::string category = category_of(s);
    if (!chosen.count(category)) continue;
    Group& g = groups[s.definition];
    if (!g.first) {
      g.first = &s;
      order.push_back(s.definition);
    }
    g.labels.insert(category);
    ++g.members;
  }
  const uint64_t split_seed = options.seed;
  const uint64_t order_seed = splitmix64(options.seed ^ 0x6F72646572ULL);  // "order"
  auto held_out_value = [&](const std::string& definition) {
    return unit_interval(stable_hash(split_seed, definition));
  };
  const double test_bound = options.validation_fraction + options.test_fraction;
  for (const std::string& definition : order) {
    const Group& g = groups[definition];
    if (g.labels.size() > 1) {
      data.ambiguous += g.members;
      continue;
    }
    data.merged_duplicates += g.members - 1;
    LabelledExample ex{"n" + g.first->offset, definition, *g.labels.begin()};
    const double u = held_out_value(definition);
    if (u < options.validation_fraction)
      data.validation.push_back(std::move(ex));
    else if (u < test_bound)
      data.test.push_back(std::move(ex));
    else
      data.train.push_back(std::move(ex));
  }
  for (auto* split : {&data.train, &data.validation, &data.test}) {
    std::vector<std::pair<uint64_t, LabelledExample>> keyed;
    for (LabelledExample& ex : *split)
      keyed.emplace_back(stable_hash(order_seed, ex.id), std::move(ex));
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    split->clear();
    for (auto& [hash, ex] : keyed) split->push_back(std::move(ex));
  }

  // Held-out text: every validation and test definition, also of ambiguous groups' hashes (they
  // are not in the task, but they are harmless to exclude and keep the rule simple).
  std::unordered_set<std::string> held_out;
  for (const auto& [definition, g] : groups) {
    const double u = held_out_value(definition);
    if (u < test_bound) held_out.insert(definition);
  }
  cap(data.train, options.max_train);
  cap(data.validation, options.max_validation);
  cap(data.test, options.max_test);

  std::vector<std::pair<uint64_t, const Synset*>> corpus_synsets;  // (order hash, synset)
  for (const auto* list : {&nouns, &others})
    for (const Synset& s : *list)
      if (!held_out.count(s.definition))
        corpus_synsets.emplace_back(stable_hash(order_seed, s.ss_type + s.offset), &s);
  std::stable_sort(corpus_synsets.begin(), corpus_synsets.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [hash, s] : corpus_synsets) {
    // No line equal to a held-out definition, whatever made it (a head "word: text" included).
    std::string head = s->definition.empty() ? "" : corpus_head(*s, options.words_in_corpus);
    if (!head.empty() && !held_out.count(head)) data.corpus.push_back(std::move(head));
    for (const std::string& example : s->examples)
      if (!held_out.count(example)) data.corpus.push_back(example);
  }
  return data;
}

WordNetDataset build_wordnet_dataset(const std::string& wordnet_dir,
                                     const WordNetTaskOptions& options) {
  check(std::filesystem::is_directory(wordnet_dir), "WordNet folder ", wordnet_dir,
        ": not found (install Debian's wordnet-base: apt-get install wordnet-base)");
  const std::vector<Synset> nouns = read_wordnet_data_file(wordnet_dir + "/data.noun");
  std::vector<Synset> others;
  for (const char* pos : {"verb", "adj", "adv"}) {
    std::vector<Synset> part = read_wordnet_data_file(cat(wordnet_dir, "/data.", pos));
    others.insert(others.end(), std::make_move_iterator(part.begin()),
                  std::make_move_iterator(part.end()));
  }
  return build_wordnet_dataset(nouns, others, read_lexicographer_files(wordnet_dir), options);
}

std::string to_jsonl(const std::vector<LabelledExample>& examples) {
  std::string out;
  for (const LabelledExample& ex : examples) {
    nlohmann::ordered_json row;
    row["id"] = ex.id;
    row["source"] = ex.source;
    row["target"] = ex.target;
    out += row.dump() + "\n";
  }
  return out;
}

std::map<std::string, int64_t> class_counts(const std::vector<LabelledExample>& examples) {
  std::map<std::string, int64_t> counts;
  for (const LabelledExample& ex : examples) ++counts[ex.target];
  return counts;
}

}  // namespace compacter::pretrain
