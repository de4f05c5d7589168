// The metrics of spec §5.2 (see metrics.h), written from the definitions of scikit-learn 0.24
// (f1_score, matthews_corrcoef, fbeta_score with average="macro") and SciPy (pearsonr, spearmanr
// with rankdata's average ranks), as the reference code calls them.
#include "compacter/tasks/metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "compacter/core/error.h"
#include "compacter/tasks/text.h"

namespace compacter::tasks::metrics {

namespace {

using Strings = std::vector<std::string>;

void check_sizes(const Strings& gold, const Strings& pred, const char* metric) {
  check(gold.size() == pred.size(), metric, ": ", gold.size(), " gold values but ", pred.size(),
        " predictions");
  check(!gold.empty(), metric, ": nothing to score (no predictions)");
}

// F1 of one class from its counts: 2TP / (2TP + FP + FN), 0 when TP = 0.
double f1_from_counts(double tp, double fp, double fn) {
  return tp > 0 ? 2 * tp / (2 * tp + fp + fn) : 0.0;
}

double nan_to_zero(double v) {
  return std::isnan(v) ? 0.0 : v;
}

// scipy.stats.pearsonr's r (NaN for constant input, fewer than 2 values or NaN/inf values).
double pearson_r(const std::vector<double>& x, const std::vector<double>& y) {
  const size_t n = x.size();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (n < 2) return nan;
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) return nan;
  if (std::all_of(x.begin(), x.end(), [&](double v) { return v == x[0]; }) ||
      std::all_of(y.begin(), y.end(), [&](double v) { return v == y[0]; }))
    return nan;
  if (n == 2) {
    auto sign = [](double v) { return static_cast<double>((v > 0) - (v < 0)); };
    return sign(x[1] - x[0]) * sign(y[1] - y[0]);
  }
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(n);
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n);
  double sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  const double nx = std::sqrt(sxx), ny = std::sqrt(syy);
  double r = 0;
  for (size_t i = 0; i < n; ++i) r += ((x[i] - mx) / nx) * ((y[i] - my) / ny);
  return std::max(-1.0, std::min(1.0, r));
}

// scipy.stats.rankdata(method="average"): 1-based ranks, ties share their mean rank.
std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double rank = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

std::vector<double> to_floats(const Strings& s) {
  std::vector<double> out;
  out.reserve(s.size());
  for (const std::string& v : s) out.push_back(text::parse_python_float(v).value_or(-1.0));
  return out;
}

// Python str.lower() for the scripts covered (see metrics.h).
char32_t lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
  if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
    return (c % 2 == 0) ? c + 1 : c;
  if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 1) ? c + 1 : c;
  if (c == 0x178) return 0xFF;
  if (c == 0x386) return 0x3AC;
  if (c >= 0x388 && c <= 0x38A) return c + 37;
  if (c == 0x38C) return 0x3CC;
  if (c == 0x38E || c == 0x38F) return c + 63;
  if ((c >= 0x391 && c <= 0x3A1) || (c >= 0x3A3 && c <= 0x3AB)) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF)) return (c % 2 == 0) ? c + 1 : c;
  return c;
}

// Python's \w for str patterns, approximately: ASCII letters, digits, '_' and non-ASCII
// characters outside the common punctuation and space blocks.
bool is_word(char32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  if (text::is_space(c)) return false;
  if (c >= 0xA0 && c <= 0xBF)
    return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
           (c >= 0xBC && c <= 0xBE);
  if (c == 0xD7 || c == 0xF7) return false;
  if ((c >= 0x2000 && c <= 0x206F) || (c >= 0x3000 && c <= 0x303F)) return false;
  return true;
}

double token_f1(const Strings& pred_tokens, const Strings& gold_tokens) {
  std::unordered_map<std::string, int64_t> counts;
  for (const std::string& t : gold_tokens) ++counts[t];
  int64_t same = 0;
  for (const std::string& t : pred_tokens) {
    auto it = counts.find(t);
    if (it != counts.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / static_cast<double>(pred_tokens.size());
  const double recall = static_cast<double>(same) / static_cast<double>(gold_tokens.size());
  return 2 * precision * recall / (precision + recall);
}

}  // namespace

double accuracy(const Strings& gold, const Strings& pred) {
  check_sizes(gold, pred, "accuracy");
  size_t right = 0;
  for (size_t i = 0; i < gold.size(); ++i) right += gold[i] == pred[i];
  return 100.0 * static_cast<double>(right) / static_cast<double>(gold.size());
}

double binary_f1(const Strings& gold, const Strings& pred) {
  check_sizes(gold, pred, "f1");
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    check(gold[i] == "0" || gold[i] == "1", "f1: gold value ", i + 1, " is \"", gold[i],
          "\" (binary F1 expects gold labels 0 or 1)");
    std::string p = pred[i];
    if (p != "0" && p != "1") p = gold[i] == "1" ? "0" : "1";  // always wrong (§5.2)
    tp += gold[i] == "1" && p == "1";
    fp += gold[i] == "0" && p == "1";
    fn += gold[i] == "1" && p == "0";
  }
  return 100.0 * f1_from_counts(tp, fp, fn);
}

double matthews(const Strings& gold, const Strings& pred) {
  check_sizes(gold, pred, "mcc");
  Strings labels = gold;
  labels.insert(labels.end(), pred.begin(), pred.end());
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  auto id = [&](const std::string& s) {
    return static_cast<size_t>(std::lower_bound(labels.begin(), labels.end(), s) - labels.begin());
  };
  std::vector<double> t_sum(labels.size()), p_sum(labels.size());
  double correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    t_sum[id(gold[i])] += 1;
    p_sum[id(pred[i])] += 1;
    correct += gold[i] == pred[i];
  }
  const double n = static_cast<double>(gold.size());
  double tp_dot = 0, pp_dot = 0, tt_dot = 0;
  for (size_t k = 0; k < labels.size(); ++k) {
    tp_dot += t_sum[k] * p_sum[k];
    pp_dot += p_sum[k] * p_sum[k];
    tt_dot += t_sum[k] * t_sum[k];
  }
  const double cov_tp = correct * n - tp_dot;
  const double cov_pp = n * n - pp_dot;
  const double cov_tt = n * n - tt_dot;
  return 100.0 * nan_to_zero(cov_tp / std::sqrt(cov_tt * cov_pp));
}

double pearson(const Strings& gold, const Strings& pred) {
  check_sizes(gold, pred, "pearson");
  return 100.0 * nan_to_zero(pearson_r(to_floats(gold), to_floats(pred)));
}

double spearman(const Strings& gold, const Strings& pred) {
  check_sizes(gold, pred, "spearman");
  const std::vector<double> g = to_floats(gold), p = to_floats(pred);
  for (size_t i = 0; i < g.size(); ++i)
    if (std::isnan(g[i]) || std::isnan(p[i])) return 0.0;  // SciPy propagates NaN
  // spearmanr is Pearson's r of the ranks (np.corrcoef of them; NaN when constant).
  const std::vector<double> rg = average_ranks(g), rp = average_ranks(p);
  return 100.0 * nan_to_zero(pearson_r(rg, rp));
}

double macro_f1(const Strings& gold, const Strings& pred, const Strings& classes) {
  check_sizes(gold, pred, "macro_f1");
  check(!classes.empty(), "macro_f1: no classes");
  double sum = 0;
  for (const std::string& c : classes) {
    double tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < gold.size(); ++i) {
      tp += gold[i] == c && pred[i] == c;
      fp += gold[i] != c && pred[i] == c;
      fn += gold[i] == c && pred[i] != c;
    }
    sum += f1_from_counts(tp, fp, fn);
  }
  return 100.0 * sum / static_cast<double>(classes.size());
}

double group_exact_match(const Strings& gold, const Strings& pred, const Strings& group) {
  check_sizes(gold, pred, "em");
  check(group.size() == gold.size(), "em: ", group.size(), " group keys for ", gold.size(),
        " rows");
  std::vector<std::string> order;
  std::unordered_map<std::string, bool> equal;
  for (size_t i = 0; i < gold.size(); ++i) {
    auto [it, fresh] = equal.emplace(group[i], true);
    if (fresh) order.push_back(group[i]);
    if (gold[i] != pred[i]) it->second = false;
  }
  double right = 0;
  for (const std::string& g : order) right += equal[g];
  return 100.0 * right / static_cast<double>(order.size());
}

std::string normalize_squad(const std::string& s) {
  std::vector<char32_t> cps = text::decode_utf8(s);
  static const std::string punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
  std::vector<char32_t> kept;
  for (char32_t c : cps) {
    c = lower(c);
    if (c < 0x80 && punct.find(static_cast<char>(c)) != std::string::npos) continue;
    kept.push_back(c);
  }
  // \b(a|an|the)\b -> " ": whole words only.
  std::vector<char32_t> out;
  for (size_t i = 0; i < kept.size();) {
    if (!is_word(kept[i])) {
      out.push_back(kept[i++]);
      continue;
    }
    size_t j = i;
    while (j < kept.size() && is_word(kept[j])) ++j;
    const std::string word = text::encode_utf8({kept.begin() + i, kept.begin() + j});
    if (word == "a" || word == "an" || word == "the") {
      out.push_back(' ');
    } else {
      out.insert(out.end(), kept.begin() + i, kept.begin() + j);
    }
    i = j;
  }
  const Strings words = text::split_whitespace(text::encode_utf8(out));
  std::string joined;
  for (size_t i = 0; i < words.size(); ++i) joined += (i ? " " : "") + words[i];
  return joined;
}

std::map<std::string, double> squad(const std::vector<Strings>& answers, const Strings& pred) {
  check(answers.size() == pred.size(), "squad: ", answers.size(), " answer lists but ", pred.size(),
        " predictions");
  check(!pred.empty(), "squad: nothing to score (no predictions)");
  double em = 0, f1 = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    const std::string p = normalize_squad(pred[i]);
    const Strings p_tokens = text::split_whitespace(p);
    double best_em = 0, best_f1 = 0;
    for (const std::string& a : answers[i]) {
      const std::string g = normalize_squad(a);
      best_em = std::max(best_em, g == p ? 1.0 : 0.0);
      best_f1 = std::max(best_f1, token_f1(p_tokens, text::split_whitespace(g)));
    }
    em += best_em;
    f1 += best_f1;
  }
  const double n = static_cast<double>(pred.size());
  return {{"em", 100.0 * em / n}, {"f1", 100.0 * f1 / n}};
}

const std::vector<std::string>& metric_names() {
  static const Strings names = {"accuracy", "f1",       "mcc",  "pearson",
                                "spearman", "macro_f1", "squad"};
  return names;
}

}  // namespace compacter::tasks::metrics
