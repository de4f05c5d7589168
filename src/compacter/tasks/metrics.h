// The metrics of spec §5.2 as the reference code computes them (its seq2seq/metrics, which follow
// T5's metrics on top of scikit-learn 0.24 and SciPy). Every value is x100. Inputs are strings:
// gold[i] and pred[i] belong together; sizes must match (Error otherwise).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace compacter::tasks::metrics {

// Mean of pred == gold.
double accuracy(const std::vector<std::string>& gold, const std::vector<std::string>& pred);
// Binary F1 with positive class "1". A prediction other than "0"/"1" is first replaced by the
// opposite of its gold ("1" -> "0", anything else -> "1"), so it always counts as wrong.
// F1 = 2TP / (2TP + FP + FN), 0 when TP = 0 (sklearn's zero_division behaviour).
double binary_f1(const std::vector<std::string>& gold, const std::vector<std::string>& pred);
// sklearn matthews_corrcoef on the raw strings (multiclass formula over the union of the labels
// seen; an invalid prediction is one more class); 0 where undefined.
double matthews(const std::vector<std::string>& gold, const std::vector<std::string>& pred);
// scipy pearsonr / spearmanr (average ranks for ties) on floats parsed like Python's float();
// an unparsable string becomes -1.0; a NaN result (e.g. constant predictions) becomes 0.
double pearson(const std::vector<std::string>& gold, const std::vector<std::string>& pred);
double spearman(const std::vector<std::string>& gold, const std::vector<std::string>& pred);
// Unweighted mean of the per-class F1 of `classes` (an undefined F1 is 0) (CB: "0","1","2").
double macro_f1(const std::vector<std::string>& gold, const std::vector<std::string>& pred,
                const std::vector<std::string>& classes);
// MultiRC EM: rows grouped by group[i] (first-seen order); a group scores 1 when its predicted
// list equals its gold list in row order; mean over groups.
double group_exact_match(const std::vector<std::string>& gold, const std::vector<std::string>& pred,
                         const std::vector<std::string>& group);

// SQuAD normalisation: lower case, drop ASCII punctuation, drop the words a / an / the,
// collapse white space. (Lower-casing covers ASCII, Latin-1, Latin Extended-A, Greek and
// Cyrillic; Python's str.lower() covers all of Unicode.)
std::string normalize_squad(const std::string& s);
// ReCoRD: EM and token-bag F1 of each prediction, maximised over its gold answers (0 for an
// empty answer list), averaged over the rows. Returns {"em": .., "f1": ..}.
std::map<std::string, double> squad(const std::vector<std::vector<std::string>>& answers,
                                    const std::vector<std::string>& pred);

// Names accepted for a user task's --metric: accuracy, f1, mcc, pearson, spearman, macro_f1,
// squad (gives f1 and em).
const std::vector<std::string>& metric_names();

}  // namespace compacter::tasks::metrics
