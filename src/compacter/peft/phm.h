// The PHM / LPHM layer (paper eq. (3)-(5); spec §3.6): the weight H = sum_i A_i (x) B_i
// (Kronecker products) is materialised on every forward pass and y = x H + b, with H of shape
// (in x out) in the row-vector convention. Without gradients (evaluation, generation, serving) H is
// kept between calls until one of its factors changes (see WeightCache), so a decoding step does
// not rebuild it. B_i is a full (in/n x out/n) matrix (PHM-Adapter) or the
// product W_left[i] W_right[i] of rank r (LPHM, Compacter; a matrix product, so r > 1 works, spec
// §9 #10). A (the "rule", n x n x n) is the layer's own or one shared tensor owned elsewhere.
#pragma once
#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <c10/core/Storage.h>

#include <mutex>
#include <string>
#include <vector>

#include "compacter/peft/projection.h"

namespace compacter::peft {

// Initialisation of W / W_left / W_right (the reference's `hypercomplex_nonlinearity` and
// `low_rank_w_init`): Xavier with gain sqrt(2) per 2-D slice, or N(0, init_range).
enum class WeightInit { kGlorotUniform, kGlorotNormal, kNormal };
// Initialisation of A (`phm_c_init`).
enum class RuleInit { kNormal, kUniform };

WeightInit parse_weight_init(const std::string& name);  // glorot-uniform|glorot-normal|normal
RuleInit parse_rule_init(const std::string& name);      // normal|uniform
const char* weight_init_name(WeightInit init);
const char* rule_init_name(RuleInit init);

// Kronecker product of the last two dimensions, batched over the leading ones:
// a [..., p, q], b [..., r, s] -> [..., p*r, q*s] with out[.., i*r + k, j*s + l] = a[i,j] b[k,l].
torch::Tensor kronecker(const torch::Tensor& a, const torch::Tensor& b);

// H = sum_i kron(rule[i], B[i]); rule [n, n, n], B [n, P, Q] -> H [n*P, n*Q].
torch::Tensor phm_weight(const torch::Tensor& rule, const torch::Tensor& B);

// Fills a 2-D tensor, or each 2-D slice t[i] of a 3-D one, per `init`: Xavier-uniform/normal with
// gain sqrt(2) using the slice's fan_in = size(-1), fan_out = size(-2), or N(0, init_range).
void init_slices(torch::Tensor& t, WeightInit init, double init_range, at::Generator& gen);

// A shared rule A [n, n, n] (model level, Compacter): N(0, init_range) or U(-1, 1) (spec §3.6).
torch::Tensor make_shared_rule(int64_t n, RuleInit init, double init_range, at::Generator& gen);

struct PhmOptions {
  int64_t n = 4;           // number of Kronecker terms; in and out must be divisible by n
  bool factorized = true;  // B_i = W_left[i] W_right[i] (LPHM) instead of a full B_i
  int64_t rank = 1;        // r of the factorisation
  bool learn_rule = true;  // own A only: whether it is trained
  RuleInit rule_init = RuleInit::kNormal;  // own A only: N(0, 0.01) or U(-0.01, 0.01) (§9 #9)
  WeightInit weight_init = WeightInit::kGlorotUniform;
  double init_range = 1e-4;  // sigma of W / W_left / W_right under WeightInit::kNormal
};

// Parameters (reference names): "phm_rule" [n, n, n] (own A only), "W" [n, in/n, out/n] or
// "W_left" [n, in/n, r] + "W_right" [n, r, out/n], and "b" [out] (zero-initialised).
class PhmLinearImpl : public Projection {
 public:
  // `shared_rule` [n, n, n]: when defined, the layer uses it without registering it (its owner
  // registers it once); otherwise the layer creates its own A.
  PhmLinearImpl(int64_t in_features, int64_t out_features, const PhmOptions& options,
                at::Generator& gen, torch::Tensor shared_rule = {});
  torch::Tensor forward(const torch::Tensor& x) override;
  torch::Tensor weight() const;  // the materialised H [in, out] (always computed afresh)
  torch::Tensor B() const;       // [n, in/n, out/n]
  const torch::Tensor& rule() const { return phm_rule.defined() ? phm_rule : shared_rule_; }
  bool shares_rule() const { return shared_rule_.defined(); }
  int64_t n() const { return n_; }

  torch::Tensor phm_rule;            // own A; undefined when shared
  torch::Tensor W, W_left, W_right;  // W (full) or W_left / W_right (factorised)
  torch::Tensor b;

 private:
  // H as last computed without gradients, and what it was computed from: for each factor, its
  // storage (held, so its memory cannot be reused by another tensor while cached), offset and
  // version counter (bumped by every in-place write, e.g. an optimizer step). A factor given new
  // storage (set_data, as adapter loading and .to() do) or written in place misses the cache.
  struct Source {
    c10::Storage storage;
    int64_t offset = 0;
    uint32_t version = 0;
    bool operator==(const Source& o) const {
      return storage.unsafeGetStorageImpl() == o.storage.unsafeGetStorageImpl() &&
             offset == o.offset && version == o.version;
    }
  };
  std::vector<Source> weight_sources() const;
  torch::Tensor cached_weight();

  torch::Tensor shared_rule_;
  int64_t n_;
  std::mutex cache_mutex_;
  std::vector<Source> cache_sources_;
  torch::Tensor cache_;
};
TORCH_MODULE(PhmLinear);

}  // namespace compacter::peft
