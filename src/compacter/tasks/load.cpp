// Loading a split: finding the files (official GLUE TSV / SuperGLUE JSONL or Hugging Face JSON
// Lines), reading them into rows in Hugging Face's field layout (glue/*, super_glue/*: field names
// and integer label ids), the split algorithm of spec §4.1 with the low-resource subsample of
// §4.6, and the text-to-text formats of §4.2 / §4.4 with the quirks of §9 #1-#6.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/randperm.h>

#include "compacter/core/error.h"
#include "compacter/tasks/readers.h"
#include "compacter/tasks/tasks.h"
#include "compacter/tasks/text.h"

namespace compacter::tasks {

namespace fs = std::filesystem;
using nlohmann::json;
using Strings = std::vector<std::string>;

Layout parse_layout(const std::string& name) {
  if (name == "auto") return Layout::kAuto;
  if (name == "official") return Layout::kOfficial;
  if (name == "hf") return Layout::kHf;
  throw Error(cat("unknown data layout '", name, "' (expected auto, official or hf)"));
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  // A fresh generator, as the reference's torch.Generator().manual_seed(seed) (spec §4.1).
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const at::Tensor perm = at::randperm(n, generator, at::kLong);
  const int64_t* p = perm.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + n);
}

namespace {

// One row of an original split, in Hugging Face's layout.
struct RawRow {
  json f;
  Where where;
  std::string split;  // original split name (train, validation, validation_matched, ...)
  int64_t index = 0;  // position in the original split
};

bool is_glue(const TaskInfo& t) {
  return t.benchmark == "glue";
}

// A group key from an id value: strings as they are, numbers as written.
std::string key_str(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// ---------------------------------------------------------------------------------------------
// Files

Strings official_names(const TaskInfo& t, const std::string& split) {
  if (is_glue(t)) {
    if (split == "train") return {"train.tsv"};
    if (split == "validation") return {t.name == "mnli" ? "dev_matched.tsv" : "dev.tsv"};
    if (split == "test") return {t.name == "mnli" ? "test_matched.tsv" : "test.tsv"};
    if (split == "validation_matched") return {"dev_matched.tsv"};
    if (split == "validation_mismatched") return {"dev_mismatched.tsv"};
    return {split + ".tsv"};  // test_matched, test_mismatched
  }
  if (split == "validation") return {"val.jsonl"};
  return {split + ".jsonl"};
}

Strings hf_names(const TaskInfo& t, const std::string& split) {
  std::string s = split;
  if (t.name == "mnli" && (s == "validation" || s == "test")) s += "_matched";
  return {s + ".jsonl", s + ".json"};
}

// The folders a task's files may be in: --data-dir, or its sub-folder with the official name, the
// task name or the code name.
Strings task_dirs(const TaskInfo& t, const DataOptions& o) {
  Strings dirs = {o.data_dir};
  for (const std::string& sub : {t.folder, t.name, t.code_name})
    if (!sub.empty() && fs::is_directory(fs::path(o.data_dir) / sub))
      dirs.push_back((fs::path(o.data_dir) / sub).string());
  return dirs;
}

std::string find_file(const TaskInfo& t, const std::string& split, const DataOptions& o) {
  check(!o.data_dir.empty(), "no data folder given (expected the folder with the ", t.name,
        " files)");
  check(fs::is_directory(o.data_dir), o.data_dir, ": data folder not found");
  Strings names;
  if (o.layout != Layout::kHf) names = official_names(t, split);
  if (o.layout != Layout::kOfficial)
    for (const std::string& n : hf_names(t, split)) names.push_back(n);
  std::string tried;
  for (const std::string& dir : task_dirs(t, o)) {
    for (const std::string& n : names) {
      const fs::path p = fs::path(dir) / n;
      if (fs::is_regular_file(p)) return p.string();
      tried += (tried.empty() ? "" : ", ") + p.string();
    }
  }
  throw Error(cat(t.name, " ", split, ": no data file found (looked for ", tried, ")"));
}

// ---------------------------------------------------------------------------------------------
// Labels

// A label given as a bool, an integer id or a label name, in official or HF form; -1 when absent.
int64_t label_id(const json& row, const TaskInfo& t, const Where& w) {
  const auto it = row.find("label");
  if (it == row.end() || it->is_null()) return -1;
  const int64_t n = static_cast<int64_t>(t.label_names.size());
  std::string expected = "0.." + std::to_string(n - 1) + " or -1";
  for (const std::string& name : t.label_names) expected += ", \"" + name + "\"";
  if (it->is_boolean()) {
    check(n == 2, w.str(), ": field \"label\": unexpected boolean (expected ", expected, ")");
    return it->get<bool>() ? 1 : 0;
  }
  if (it->is_number_integer()) {
    const int64_t v = it->get<int64_t>();
    check(v == -1 || (v >= 0 && v < n), w.str(), ": field \"label\": unknown label ", v,
          " (expected ", expected, ")");
    return v;
  }
  if (it->is_string()) {
    const std::string s = it->get<std::string>();
    for (int64_t k = 0; k < n; ++k)
      if (t.label_names[k] == s) return k;
    throw Error(
        cat(w.str(), ": field \"label\": unknown label \"", s, "\" (expected ", expected, ")"));
  }
  throw Error(
      cat(w.str(), ": field \"label\": expected a label (", expected, "), found ", json_kind(*it)));
}

// ---------------------------------------------------------------------------------------------
// GLUE TSV -> HF rows

struct TsvSpec {
  std::vector<std::pair<std::string, std::string>> fields;  // HF field <- TSV column
  std::string label_column;
  char label_kind = 'i';  // i: "0"/"1"; n: label names; f: float score
};

TsvSpec tsv_spec(const TaskInfo& t) {
  const std::string& n = t.name;
  if (n == "cola") return {{{"sentence", "sentence"}}, "label", 'i'};
  if (n == "sst2") return {{{"sentence", "sentence"}}, "label", 'i'};
  if (n == "mrpc")
    return {{{"sentence1", "#1 String"}, {"sentence2", "#2 String"}}, "Quality", 'i'};
  if (n == "qqp")
    return {{{"question1", "question1"}, {"question2", "question2"}}, "is_duplicate", 'i'};
  if (n == "stsb") return {{{"sentence1", "sentence1"}, {"sentence2", "sentence2"}}, "score", 'f'};
  if (n == "mnli")
    return {{{"premise", "sentence1"}, {"hypothesis", "sentence2"}}, "gold_label", 'n'};
  if (n == "qnli") return {{{"question", "question"}, {"sentence", "sentence"}}, "label", 'n'};
  if (n == "wnli") return {{{"sentence1", "sentence1"}, {"sentence2", "sentence2"}}, "label", 'i'};
  return {{{"sentence1", "sentence1"}, {"sentence2", "sentence2"}}, "label", 'n'};  // rte
}

// keep(header, row): whether a row of the file belongs to the split (all rows when empty).
using RowFilter = std::function<bool(const Strings&, const TableRow&)>;

std::vector<RawRow> read_glue_tsv(const TaskInfo& t, const std::string& path,
                                  const std::string& split, const DataOptions& o, int64_t* skipped,
                                  const RowFilter& keep = {}) {
  const TsvSpec spec = tsv_spec(t);
  TableOptions to;
  to.skip_invalid = o.skip_invalid;
  // CoLA's train and dev files are the only GLUE TSVs without a header (as HF glue decides).
  const bool cola_headerless = t.name == "cola" && split.rfind("test", 0) != 0;
  if (cola_headerless) {
    to.has_header = false;
    to.columns = 4;
    to.column_names = {"source", "label", "original_label", "sentence"};
  }
  const Table table = read_table(path, to, skipped);
  const Strings& header = cola_headerless ? to.column_names : table.header;
  auto column = [&](const std::string& name) -> int64_t {
    const auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int64_t>(it - header.begin());
  };
  std::vector<std::pair<std::string, int64_t>> fields;
  for (const auto& [hf, col] : spec.fields) {
    const int64_t c = column(col);
    std::string names;
    for (const std::string& h : header) names += (names.empty() ? "" : ", ") + h;
    check(c >= 0, path, ":1: missing column \"", col, "\" (the header has: ", names, ")");
    fields.emplace_back(hf, c);
  }
  const int64_t label_col = column(spec.label_column);
  std::vector<RawRow> rows;
  for (const TableRow& tr : table.rows) {
    if (keep && !keep(header, tr)) continue;
    const Where w{path, tr.line};
    try {
      RawRow r;
      r.where = w;
      r.split = split;
      r.f = json::object();
      for (const auto& [hf, c] : fields) r.f[hf] = tr.cells[static_cast<size_t>(c)];
      if (label_col < 0) {
        r.f["label"] = spec.label_kind == 'f' ? json(-1.0) : json(-1);
      } else {
        const std::string& cell = tr.cells[static_cast<size_t>(label_col)];
        const std::string where_label = cat(w.str(), ": column \"", spec.label_column, "\": ");
        if (spec.label_kind == 'f') {
          const auto v = text::parse_python_float(cell);
          check(v && std::isfinite(*v), where_label, "expected a similarity score, found \"", cell,
                "\"");
          r.f["label"] = *v;
        } else if (spec.label_kind == 'i') {
          check(cell == "0" || cell == "1", where_label, "unknown label \"", cell,
                "\" (expected 0 or 1)");
          r.f["label"] = cell == "1" ? 1 : 0;
        } else {
          const auto it = std::find(t.label_names.begin(), t.label_names.end(), cell);
          std::string names;
          for (const std::string& n : t.label_names)
            names += (names.empty() ? "\"" : ", \"") + n + "\"";
          check(it != t.label_names.end(), where_label, "unknown label \"", cell, "\" (expected ",
                names, ")");
          r.f["label"] = static_cast<int64_t>(it - t.label_names.begin());
        }
      }
      rows.push_back(std::move(r));
    } catch (const Error&) {
      if (!o.skip_invalid) throw;
      if (skipped) ++*skipped;
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// JSON Lines (SuperGLUE official or HF layout; GLUE in HF layout) -> HF rows

// ReCoRD's official passage entities (character spans, end inclusive) -> HF's sorted unique texts.
Strings record_entities(const json& passage, const Where& w) {
  const std::string text = string_field(passage, "text", w);
  const json& ents = field(passage, "entities", w);
  check(ents.is_array(), w.str(), ": field \"passage.entities\": expected an array");
  std::set<std::string> unique;
  for (const json& e : ents) {
    check(e.is_object(), w.str(), ": field \"passage.entities\": expected objects with start/end");
    unique.insert(
        text::substr_code_points(text, int_field(e, "start", w), int_field(e, "end", w) + 1));
  }
  return Strings(unique.begin(), unique.end());
}

// One line of the file -> the HF rows it stands for (several for MultiRC and ReCoRD).
std::vector<json> to_hf_rows(const TaskInfo& t, const json& row, const Where& w) {
  if (t.name == "multirc" && row.contains("passage") && row["passage"].is_object()) {
    std::vector<json> out;
    const json& passage = row["passage"];
    const std::string paragraph = string_field(passage, "text", w);
    const json& questions = field(passage, "questions", w);
    check(questions.is_array(), w.str(), ": field \"passage.questions\": expected an array");
    for (const json& q : questions) {
      const json& answers = field(q, "answers", w);
      check(answers.is_array(), w.str(), ": field \"answers\": expected an array");
      for (const json& a : answers) {
        json r = {{"paragraph", paragraph},
                  {"question", string_field(q, "question", w)},
                  {"answer", string_field(a, "text", w)},
                  {"idx",
                   {{"paragraph", int_field(row, "idx", w)},
                    {"question", int_field(q, "idx", w)},
                    {"answer", int_field(a, "idx", w)}}}};
        r["label"] = label_id(a, t, w);
        out.push_back(std::move(r));
      }
    }
    return out;
  }
  if (t.name == "record" && row.contains("passage") && row["passage"].is_object()) {
    std::vector<json> out;
    const json& passage = row["passage"];
    const std::string text = string_field(passage, "text", w);
    const Strings entities = record_entities(passage, w);
    const json& qas = field(row, "qas", w);
    check(qas.is_array(), w.str(), ": field \"qas\": expected an array");
    for (const json& qa : qas) {
      std::set<std::string> answers;
      if (qa.contains("answers")) {
        check(qa["answers"].is_array(), w.str(), ": field \"answers\": expected an array");
        for (const json& a : qa["answers"]) answers.insert(string_field(a, "text", w));
      }
      out.push_back(
          {{"passage", text},
           {"query", string_field(qa, "query", w)},
           {"entities", entities},
           {"answers", Strings(answers.begin(), answers.end())},
           {"idx", {{"passage", int_field(row, "idx", w)}, {"query", int_field(qa, "idx", w)}}}});
    }
    return out;
  }
  json r = row;
  if (t.name == "wsc" && row.contains("target") && row["target"].is_object())
    for (const auto& [k, v] : row["target"].items()) r[k] = v;
  if (!t.label_names.empty()) r["label"] = label_id(row, t, w);
  return {r};
}

std::vector<RawRow> read_jsonl_rows(const TaskInfo& t, const std::string& path,
                                    const std::string& split, const DataOptions& o,
                                    int64_t* skipped) {
  std::vector<RawRow> rows;
  read_jsonl(path, o.skip_invalid, skipped, [&](const json& row, const Where& w) {
    for (json& r : to_hf_rows(t, row, w)) rows.push_back({std::move(r), w, split, 0});
  });
  return rows;
}

// MRPC as Microsoft distributes it, for users without GLUE's train.tsv / dev.tsv: GLUE's
// format_mrpc splits msr_paraphrase_train.txt by the (#1 ID, #2 ID) pairs of dev_ids.tsv into dev
// (those pairs) and train (the rest), in file order; msr_paraphrase_test.txt is the labelled test.
std::vector<RawRow> read_mrpc_raw(const TaskInfo& t, const std::string& split, const DataOptions& o,
                                  int64_t* skipped) {
  if (o.layout == Layout::kHf || t.name != "mrpc") return {};
  for (const std::string& dir : task_dirs(t, o)) {
    const fs::path train = fs::path(dir) / "msr_paraphrase_train.txt";
    const fs::path test = fs::path(dir) / "msr_paraphrase_test.txt";
    const fs::path ids = fs::path(dir) / "dev_ids.tsv";
    if (split == "test" && fs::is_regular_file(test))
      return read_glue_tsv(t, test.string(), split, o, skipped);
    if ((split != "train" && split != "validation") || !fs::is_regular_file(train) ||
        !fs::is_regular_file(ids))
      continue;
    TableOptions io;
    io.has_header = false;
    io.columns = 2;
    io.column_names = {"#1 ID", "#2 ID"};
    std::set<std::pair<std::string, std::string>> dev;
    for (const TableRow& r : read_table(ids.string(), io, nullptr).rows)
      dev.emplace(r.cells[0], r.cells[1]);
    const bool want_dev = split == "validation";
    return read_glue_tsv(t, train.string(), split, o, skipped,
                         [&](const Strings& header, const TableRow& r) {
                           const auto c1 = std::find(header.begin(), header.end(), "#1 ID");
                           const auto c2 = std::find(header.begin(), header.end(), "#2 ID");
                           check(c1 != header.end() && c2 != header.end(), train.string(),
                                 ":1: missing column \"#1 ID\" or \"#2 ID\"");
                           const std::pair<std::string, std::string> key{
                               r.cells[static_cast<size_t>(c1 - header.begin())],
                               r.cells[static_cast<size_t>(c2 - header.begin())]};
                           return (dev.count(key) > 0) == want_dev;
                         });
  }
  return {};
}

std::vector<RawRow> load_original(const TaskInfo& t, const std::string& split, const DataOptions& o,
                                  int64_t* skipped) {
  std::vector<RawRow> rows;
  std::string path;
  try {
    path = find_file(t, split, o);
  } catch (const Error&) {
    rows = read_mrpc_raw(t, split, o, skipped);  // MRPC without GLUE's files
    if (rows.empty()) throw;
  }
  if (!path.empty())
    rows = path.size() > 4 && path.substr(path.size() - 4) == ".tsv"
               ? read_glue_tsv(t, path, split, o, skipped)
               : read_jsonl_rows(t, path, split, o, skipped);
  for (size_t i = 0; i < rows.size(); ++i) rows[i].index = static_cast<int64_t>(i);
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Formats (§4.2, §4.4)

std::string join(const Strings& pieces) {
  std::string s;
  for (size_t i = 0; i < pieces.size(); ++i) s += (i ? " " : "") + pieces[i];
  return s;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
  return s;
}

// MultiRC: "<br>" -> " ", "<b>" and "</b>" removed.
std::string remove_markup(std::string s) {
  s = replace_all(s, "<br>", " ");
  s = replace_all(s, "<b>", "");
  return replace_all(s, "</b>", "");
}

// ReCoRD: a sentence-final . ? ! " ' followed by "\n@highlight\n" keeps the character and gets a
// space; every other "\n@highlight\n" becomes ". " (§4.4).
std::string clean_record_passage(const std::string& p) {
  static const std::string marker = "\n@highlight\n";
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t m = p.find(marker, pos);
    if (m == std::string::npos) break;
    if (m > pos && std::string(".?!\"'").find(p[m - 1]) != std::string::npos) {
      out.append(p, pos, m - pos);
      out += ' ';
    } else {
      out.append(p, pos, m - pos + marker.size());
    }
    pos = m + marker.size();
  }
  out.append(p, pos, std::string::npos);
  return replace_all(out, marker, ". ");
}

bool is_py_space(char c) {
  return text::is_space(static_cast<unsigned char>(c));
}

// T5's WSC span marking: re.sub(r'^((?:\S+\s){N})(W)', r'\1{mark} \2 {mark}', text).
std::string mark_span(const std::string& s, const std::string& span, int64_t index,
                      const std::string& mark) {
  size_t p = 0;
  for (int64_t k = 0; k < index; ++k) {
    const size_t start = p;
    while (p < s.size() && !is_py_space(s[p])) ++p;
    if (p == start || p >= s.size()) return s;
    ++p;  // the one white-space character
  }
  if (s.compare(p, span.size(), span) != 0) return s;
  return s.substr(0, p) + mark + " " + span + " " + mark + s.substr(p + span.size());
}

// HF's super_glue wsc.fixed correction of span texts that are not substrings of the text.
void fix_wsc_spans(json& ex, const Where& w) {
  for (const std::string k : {"span1", "span2"}) {
    std::string span = string_field(ex, k + "_text", w);
    const std::string txt = string_field(ex, "text", w);
    const int64_t index = int_field(ex, k + "_index", w);
    if (txt.find(span) != std::string::npos || span.empty()) continue;
    if (span == "Kamenev and Zinoviev" || span == "Kamenev, Zinoviev, and Stalin") continue;
    if (span.find("theyscold") != std::string::npos) ex["span2_index"] = 10;
    const Strings words = text::split_whitespace(txt);
    if (index >= 0 && index < static_cast<int64_t>(words.size())) {
      const char first = words[static_cast<size_t>(index)][0];
      span[0] = std::islower(static_cast<unsigned char>(first))
                    ? static_cast<char>(std::tolower(static_cast<unsigned char>(span[0])))
                    : static_cast<char>(std::toupper(static_cast<unsigned char>(span[0])));
    }
    while (!span.empty() && span.back() == '.') span.pop_back();
    span = replace_all(span, "\n", " ");
    ex[k + "_text"] = span;
  }
}

std::string target_of(const TaskInfo& t, const RawRow& r, const DataOptions& o) {
  if (t.name == "stsb") {
    const double score = number_field(r.f, "label", r.where);
    if (score < 0) return "";  // HF marks unlabeled test rows with -1
    return text::stsb_target(score, o.fix_quirks);
  }
  const int64_t id = label_id(r.f, t, r.where);
  if (id < 0) return "";
  return o.fix_quirks ? t.label_names[static_cast<size_t>(id)] : std::to_string(id);
}

std::vector<Example> format_row(const TaskInfo& t, const RawRow& r, const DataOptions& o) {
  const json& f = r.f;
  const Where& w = r.where;
  auto s = [&](const std::string& name) { return string_field(f, name, w); };
  Strings pieces;
  if (o.add_prefix) pieces.push_back(t.code_name);
  const std::string& n = t.name;
  Example ex;
  ex.id = cat(t.name, "/", r.split, "/", r.index);
  if (n == "record") {
    const json& ents = field(f, "entities", w);
    const json& ans = field(f, "answers", w);
    check(ents.is_array(), w.str(), ": field \"entities\": expected an array of strings");
    check(ans.is_array(), w.str(), ": field \"answers\": expected an array of strings");
    Strings entities, answers;
    for (const json& e : ents) {
      check(e.is_string(), w.str(), ": field \"entities\": expected strings, found ", json_kind(e));
      entities.push_back(e.get<std::string>());
    }
    for (const json& a : ans) {
      check(a.is_string(), w.str(), ": field \"answers\": expected strings, found ", json_kind(a));
      answers.push_back(a.get<std::string>());
    }
    std::string joined;
    for (size_t i = 0; i < entities.size(); ++i) joined += (i ? ", " : "") + entities[i];
    pieces.push_back("record query: " + s("query") + " entities: " + joined +
                     " passage: " + clean_record_passage(s("passage")));
    const std::string source = join(pieces);
    std::string group;
    if (f.contains("idx") && f["idx"].is_object() && f["idx"].contains("query"))
      group = key_str(f["idx"]["query"]);
    std::vector<Example> out;
    const Strings targets = answers.empty() ? Strings{"<unk>"} : answers;
    for (size_t k = 0; k < targets.size(); ++k)
      out.push_back({cat(ex.id, "#", k), source, targets[k], answers, group});
    return out;
  }
  if (n == "cola" || n == "sst2") {
    pieces.insert(pieces.end(), {"sentence:", s("sentence")});
  } else if (n == "mrpc" || n == "stsb" || n == "rte" || n == "wnli") {
    pieces.insert(pieces.end(), {"sentence1:", s("sentence1"), "sentence2:", s("sentence2")});
  } else if (n == "qqp") {
    pieces.insert(pieces.end(), {"question1:", s("question1"), "question2:", s("question2")});
  } else if (n == "mnli") {  // §9 #3: no colon after "hypothesis" in the reference
    pieces.insert(pieces.end(), {"premise:", s("premise"),
                                 o.fix_quirks ? "hypothesis:" : "hypothesis", s("hypothesis")});
  } else if (n == "qnli") {
    pieces.insert(pieces.end(), {"question:", s("question"), "sentence:", s("sentence")});
  } else if (n == "boolq") {
    pieces.insert(pieces.end(), {"question:", s("question"), "passage:", s("passage")});
  } else if (n == "cb" || n == "superglue-rte") {
    pieces.insert(pieces.end(), {"premise:", s("premise"), "hypothesis:", s("hypothesis")});
  } else if (n == "copa") {  // §9 #4: the reference drops the cause/effect question
    pieces.insert(pieces.end(), {"premise:", s("premise")});
    if (o.fix_quirks) pieces.insert(pieces.end(), {"question:", s("question")});
    pieces.insert(pieces.end(), {"choice1:", s("choice1"), "choice2:", s("choice2")});
  } else if (n == "multirc") {
    pieces.insert(pieces.end(),
                  {"question:", remove_markup(s("question")), "answer:", remove_markup(s("answer")),
                   "paragraph:", remove_markup(s("paragraph"))});
    // The question's index groups the answers for the exact-match score; a row typed for
    // `predict` has none, and scoring such rows is refused (score.cpp) rather than misgrouped.
    if (f.contains("idx")) {
      const json& idx = f["idx"];
      check(idx.is_object() && idx.contains("question"), w.str(),
            ": field \"idx\": expected an object with \"question\"");
      ex.group = key_str(idx["question"]);
    }
  } else if (n == "wic") {
    pieces.insert(pieces.end(),
                  {"sentence1:", s("sentence1"), "sentence2:", s("sentence2"), "word:", s("word")});
  } else if (n == "wsc") {
    json g = f;
    fix_wsc_spans(g, w);
    const int64_t i1 = int_field(g, "span1_index", w), i2 = int_field(g, "span2_index", w);
    std::string txt = mark_span(s("text"), string_field(g, "span1_text", w), i1, "*");
    txt = mark_span(txt, string_field(g, "span2_text", w), i2 + 2 * (i1 < i2 ? 1 : 0), "#");
    pieces.insert(pieces.end(), {"text:", txt});
  } else {
    throw Error(cat("task ", n, " has no format"));
  }
  ex.source = join(pieces);
  ex.target = target_of(t, r, o);
  if (!ex.target.empty()) ex.answers = {ex.target};
  return {ex};
}

// ---------------------------------------------------------------------------------------------
// Splits (§4.1) and subsampling (§4.6)

template <typename T>
std::vector<T> take(const std::vector<T>& rows, const std::vector<int64_t>& perm, size_t begin,
                    size_t end) {
  std::vector<T> out;
  end = std::min(end, perm.size());
  for (size_t i = begin; i < end; ++i) out.push_back(rows[static_cast<size_t>(perm[i])]);
  return out;
}

template <typename T>
std::vector<T> subsample(std::vector<T> rows, int64_t n, uint64_t seed) {
  if (n < 0 || n >= static_cast<int64_t>(rows.size())) {
    if (n >= 0) {  // the reference's check_n_obs caps n at the size: the whole set, shuffled
      const auto perm = permutation(static_cast<int64_t>(rows.size()), seed);
      return take(rows, perm, 0, rows.size());
    }
    return rows;
  }
  const auto perm = permutation(static_cast<int64_t>(rows.size()), seed);
  return take(rows, perm, 0, static_cast<size_t>(n));
}

template <typename T>
std::vector<T> split_rows(const std::string& split, SplitRule rule, uint64_t seed,
                          int64_t max_train,
                          const std::function<std::vector<T>(const std::string&)>& load) {
  if (rule == SplitRule::kSmall) {
    if (split == "train") return subsample(load("train"), max_train, seed);
    const std::vector<T> val = load("validation");
    const auto perm = permutation(static_cast<int64_t>(val.size()), seed);
    const size_t half = val.size() / 2;
    return split == "validation" ? take(val, perm, 0, half) : take(val, perm, half, val.size());
  }
  if (rule == SplitRule::kLarge || rule == SplitRule::kMnli) {
    const std::string test_split = rule == SplitRule::kMnli ? "validation_matched" : "validation";
    if (split == "test") return load(test_split);
    const std::vector<T> train = load("train");
    const auto perm = permutation(static_cast<int64_t>(train.size()), seed);
    if (split == "validation") return take(train, perm, 0, 1000);
    std::vector<T> rest = take(train, perm, 1000, train.size());
    if (max_train >= 0 && max_train < static_cast<int64_t>(rest.size()))
      rest.resize(static_cast<size_t>(max_train));
    return rest;
  }
  throw Error("unsupported split rule");
}

void check_split(const TaskInfo& t, const std::string& split, bool paper) {
  Strings allowed = {"train", "validation", "test"};
  if (t.name == "mnli" && !paper)
    for (const char* s :
         {"validation_matched", "validation_mismatched", "test_matched", "test_mismatched"})
      allowed.push_back(s);
  if (std::find(allowed.begin(), allowed.end(), split) != allowed.end()) return;
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
  throw Error(cat("unknown split '", split, "' for ", t.name, " (expected ", list, ")"));
}

}  // namespace

std::vector<Example> load_user_split(const std::string& split, const DataOptions& o,
                                     int64_t* skipped);

std::vector<Example> load_split(const std::string& task, const std::string& split,
                                const DataOptions& o, int64_t* skipped) {
  if (task == "user") return load_user_split(split, o, skipped);
  const TaskInfo& t = find_task(task);
  check_split(t, split, o.paper_splits);
  auto load = [&](const std::string& s) { return load_original(t, s, o, skipped); };
  std::vector<RawRow> rows;
  if (!o.paper_splits) {
    std::string s = split;
    if (t.name == "mnli" && (s == "validation" || s == "test")) s += "_matched";
    rows = load(s);
    if (split == "train") rows = subsample(std::move(rows), o.max_train_samples, o.data_seed);
  } else if (t.split_rule == SplitRule::kMnli && !o.fix_quirks) {
    // §4.1 / §9 #2: validation = all of validation_mismatched, test = validation_matched.
    if (split == "train")
      rows = subsample(load("train"), o.max_train_samples, o.data_seed);
    else
      rows = load(split == "validation" ? "validation_mismatched" : "validation_matched");
  } else {
    rows = split_rows<RawRow>(split, t.split_rule, o.data_seed, o.max_train_samples, load);
  }
  std::vector<Example> out;
  out.reserve(rows.size());
  for (const RawRow& r : rows) {
    try {
      for (Example& e : format_row(t, r, o)) out.push_back(std::move(e));
    } catch (const Error&) {
      if (!o.skip_invalid) throw;
      if (skipped) ++*skipped;
    }
  }
  return out;
}

// One row of fields as load_split formats it (tasks/inputs.cpp).
std::vector<Example> format_hf_row(const std::string& task, const json& row, const DataOptions& o,
                                   const Where& w) {
  const TaskInfo& t = find_task(task);
  std::vector<Example> out;
  for (json& r : to_hf_rows(t, row, w))
    for (Example& e : format_row(t, {std::move(r), w, "input", 0}, o)) out.push_back(std::move(e));
  return out;
}

// Shared with user_task.cpp.
std::vector<Example> split_user_rows(
    const std::string& split, uint64_t seed, int64_t max_train,
    const std::function<std::vector<Example>(const std::string&)>& load) {
  return split_rows<Example>(split, SplitRule::kSmall, seed, max_train, load);
}

std::vector<Example> subsample_examples(std::vector<Example> rows, int64_t n, uint64_t seed) {
  return subsample(std::move(rows), n, seed);
}

}  // namespace compacter::tasks
