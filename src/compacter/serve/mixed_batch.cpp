// Mixed-adapter batches: per-row tables and hook dispatchers (see mixed_batch.h).
#include "compacter/serve/mixed_batch.h"

#include <torch/torch.h>

#include <set>

#include "compacter/core/error.h"
#include "compacter/nn/int8_linear.h"
#include "compacter/peft/methods.h"

namespace compacter::serve {

namespace {

// A sublayer output hook per variant (null: none), each run on its own rows.
class MixedOutputHook : public nn::OutputHook {
 public:
  MixedOutputHook(std::shared_ptr<const nn::RowVariants> rows,
                  std::vector<std::shared_ptr<nn::OutputHook>> hooks)
      : rows_(std::move(rows)), hooks_(std::move(hooks)) {}
  torch::Tensor forward(const torch::Tensor& y) override {
    check(rows_->rows() == y.size(0), "mixed batch: ", y.size(0), " rows, ", rows_->rows(),
          " row variants");
    const auto& groups = rows_->groups();
    if (groups.size() == 1) {
      const auto& hook = hooks_[static_cast<size_t>(groups[0].first)];
      return hook ? hook->forward(y) : y;
    }
    torch::Tensor out = y;
    for (const auto& [variant, index] : groups) {
      const auto& hook = hooks_[static_cast<size_t>(variant)];
      if (!hook) continue;
      const torch::Tensor i = index.to(y.device());
      out = out.index_copy(0, i, hook->forward(y.index_select(0, i)).to(y.scalar_type()));
    }
    return out;
  }

 private:
  std::shared_ptr<const nn::RowVariants> rows_;
  std::vector<std::shared_ptr<nn::OutputHook>> hooks_;
};

// A linear layer's additive hook per variant; rows without one add zeros.
class MixedLinearHook : public nn::LinearHook {
 public:
  MixedLinearHook(std::shared_ptr<const nn::RowVariants> rows,
                  std::vector<std::shared_ptr<nn::LinearHook>> hooks, int64_t out_features)
      : rows_(std::move(rows)), hooks_(std::move(hooks)), out_(out_features) {}
  torch::Tensor forward(const torch::Tensor& x) override {
    check(rows_->rows() == x.size(0), "mixed batch: ", x.size(0), " rows, ", rows_->rows(),
          " row variants");
    const auto& groups = rows_->groups();
    if (groups.size() == 1 && hooks_[static_cast<size_t>(groups[0].first)])
      return hooks_[static_cast<size_t>(groups[0].first)]->forward(x);
    std::vector<int64_t> shape = x.sizes().vec();
    shape.back() = out_;
    torch::Tensor out = torch::zeros(shape, x.options());
    for (const auto& [variant, index] : groups) {
      const auto& hook = hooks_[static_cast<size_t>(variant)];
      if (!hook) continue;
      const torch::Tensor i = index.to(x.device());
      out = out.index_copy(0, i, hook->forward(x.index_select(0, i)).to(x.scalar_type()));
    }
    return out;
  }

 private:
  std::shared_ptr<const nn::RowVariants> rows_;
  std::vector<std::shared_ptr<nn::LinearHook>> hooks_;
  int64_t out_;
};

// The encoder's input hook per variant; rows come back as long as the longest, the shorter
// padded in front with masked positions.
class MixedInputHook : public nn::InputHook {
 public:
  MixedInputHook(std::shared_ptr<const nn::RowVariants> rows,
                 std::vector<std::shared_ptr<nn::InputHook>> hooks)
      : rows_(std::move(rows)), hooks_(std::move(hooks)) {}
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& embeds,
                                                  const torch::Tensor& mask) override {
    check(rows_->rows() == embeds.size(0), "mixed batch: ", embeds.size(0), " rows, ",
          rows_->rows(), " row variants");
    const auto& groups = rows_->groups();
    if (groups.size() == 1) {
      const auto& hook = hooks_[static_cast<size_t>(groups[0].first)];
      return hook ? hook->forward(embeds, mask) : std::make_pair(embeds, mask);
    }
    std::vector<std::pair<torch::Tensor, torch::Tensor>> parts;
    int64_t width = 0;
    for (const auto& [variant, index] : groups) {
      const auto& hook = hooks_[static_cast<size_t>(variant)];
      const torch::Tensor i = index.to(embeds.device());
      torch::Tensor e = embeds.index_select(0, i), m = mask.index_select(0, i);
      if (hook) std::tie(e, m) = hook->forward(e, m);
      width = std::max(width, e.size(1));
      parts.emplace_back(e, m);
    }
    torch::Tensor out = torch::zeros({embeds.size(0), width, embeds.size(2)}, embeds.options());
    torch::Tensor out_mask = torch::zeros({embeds.size(0), width}, mask.options());
    for (size_t g = 0; g < groups.size(); ++g) {
      const torch::Tensor i = groups[g].second.to(embeds.device());
      auto [e, m] = parts[g];
      const int64_t lead = width - e.size(1);
      out.index_copy_(0, i, torch::constant_pad_nd(e, {0, 0, lead, 0}));
      out_mask.index_copy_(0, i, torch::constant_pad_nd(m, {lead, 0}));
    }
    return {out, out_mask};
  }

 private:
  std::shared_ptr<const nn::RowVariants> rows_;
  std::vector<std::shared_ptr<nn::InputHook>> hooks_;
};

bool same_storage(const torch::Tensor& a, const torch::Tensor& b) {
  return a.defined() && b.defined() && a.storage().data() == b.storage().data();
}

}  // namespace

std::string mixed_batch_refusal(nn::T5ModelImpl& base, nn::T5ModelImpl& adapted,
                                const std::string& method) {
  const std::string why = cat("method ", method, " cannot be served in mixed-adapter batches: ");
  if (peft::find_method(method).rewrites_backbone || adapted.before_forward)
    return why + "it rewrites the base weights";
  if (adapted.decoder->input_hook()) return why + "it changes the decoder's input";
  std::set<const void*> norms;
  for (nn::RMSNormImpl* n : adapted.layer_norms()) norms.insert(n->weight.unsafeGetTensorImpl());
  const auto mine = base.named_parameters(true);
  for (const auto& item : adapted.named_parameters(true)) {
    const torch::Tensor* b = mine.find(item.key());
    if (!b || same_storage(*b, item.value())) continue;
    if (norms.count(item.value().unsafeGetTensorImpl())) continue;  // per-row norm scales
    return cat(why, "it retrains the base tensor ", item.key());
  }
  return "";
}

MixedBatchModel::MixedBatchModel(nn::T5ModelImpl& base)
    : model_(nn::share_weights(base)), rows_(std::make_shared<nn::RowVariants>()) {
  // An int8 base's quantised layers (nn/int8_linear.h): the mixed model runs them too.
  nn::share_int8(base, *model_);
  model_->eval();
  model_->rows = rows_;
}

void MixedBatchModel::set_rows(std::vector<int64_t> variant_of_row) {
  for (int64_t v : variant_of_row)
    check(v >= 0 && v < static_cast<int64_t>(variants_.size()), "mixed batch: variant ", v, " of ",
          variants_.size());
  rows_->set(std::move(variant_of_row));
}

void MixedBatchModel::set_variants(const std::vector<nn::T5ModelImpl*>& variants) {
  if (variants == variants_) return;
  check(!variants.empty(), "mixed batch: no variants");
  variants_ = variants;
  torch::NoGradGuard no_grad;
  nn::T5ModelImpl& m = *model_;
  const size_t V = variants.size();
  auto table = [&](const std::vector<torch::Tensor>& values) {
    return std::make_shared<nn::RowTable>(rows_, torch::stack(values));
  };
  // A table from each variant's tensor, `fill` (1 or 0) for variants without one; null when no
  // variant has one, or all share `own` (the mixed model's own tensor, the base's).
  auto row_table = [&](const std::vector<torch::Tensor>& values, const torch::Tensor& own,
                       int64_t features, double fill) -> std::shared_ptr<nn::RowTable> {
    bool any = false, all_own = true;
    torch::Tensor like;
    for (const torch::Tensor& v : values) {
      any = any || v.defined();
      all_own = all_own && same_storage(v, own);
      if (v.defined()) like = v;
    }
    if (!any || all_own) return nullptr;
    std::vector<torch::Tensor> rows;
    for (const torch::Tensor& v : values)
      rows.push_back(v.defined() ? v.detach().reshape({-1})
                                 : torch::full({features}, fill, like.options()));
    return table(rows);
  };
  // Layer norms.
  std::vector<std::vector<nn::RMSNormImpl*>> norms;
  for (auto* v : variants) norms.push_back(v->layer_norms());
  const auto my_norms = m.layer_norms();
  for (size_t i = 0; i < my_norms.size(); ++i) {
    std::vector<torch::Tensor> w, b;
    for (size_t v = 0; v < V; ++v) {
      w.push_back(norms[v][i]->weight);
      b.push_back(norms[v][i]->bias);
    }
    const int64_t d = my_norms[i]->weight.size(0);
    my_norms[i]->row_weight = row_table(w, my_norms[i]->weight, d, 1.0);
    my_norms[i]->row_bias = row_table(b, torch::Tensor(), d, 0.0);
  }
  // Linear layers: biases and hooks.
  std::vector<std::vector<nn::LinearImpl*>> linears;
  for (auto* v : variants) linears.push_back(v->linears());
  const auto my_linears = m.linears();
  for (size_t i = 0; i < my_linears.size(); ++i) {
    std::vector<torch::Tensor> b;
    std::vector<std::shared_ptr<nn::LinearHook>> hooks;
    bool any_hook = false;
    for (size_t v = 0; v < V; ++v) {
      b.push_back(linears[v][i]->bias);
      hooks.push_back(linears[v][i]->hook());
      any_hook = any_hook || hooks.back() != nullptr;
    }
    nn::LinearImpl& lin = *my_linears[i];
    lin.row_bias = row_table(b, torch::Tensor(), lin.out_features(), 0.0);
    lin.remove_hook();
    if (any_hook)
      lin.set_hook("mixed", std::make_shared<MixedLinearHook>(rows_, hooks, lin.out_features()));
  }
  // Scale points.
  std::vector<std::vector<nn::T5AttentionImpl*>> attentions(V + 1);
  std::vector<std::vector<nn::T5DenseImpl*>> dense(V + 1);
  for (size_t v = 0; v <= V; ++v) {
    nn::T5ModelImpl& model = v < V ? *variants[v] : m;
    model.for_each_attention(
        [&](const std::string&, nn::T5AttentionImpl& a) { attentions[v].push_back(&a); });
    model.for_each_feed_forward(
        [&](const std::string&, nn::T5DenseImpl& f) { dense[v].push_back(&f); });
  }
  for (size_t i = 0; i < attentions[V].size(); ++i) {
    std::vector<torch::Tensor> k, val;
    for (size_t v = 0; v < V; ++v) {
      k.push_back(attentions[v][i]->key_scale);
      val.push_back(attentions[v][i]->value_scale);
    }
    nn::T5AttentionImpl& a = *attentions[V][i];
    a.row_key_scale = row_table(k, torch::Tensor(), a.k->out_features(), 1.0);
    a.row_value_scale = row_table(val, torch::Tensor(), a.v->out_features(), 1.0);
  }
  for (size_t i = 0; i < dense[V].size(); ++i) {
    std::vector<torch::Tensor> s;
    for (size_t v = 0; v < V; ++v) s.push_back(dense[v][i]->hidden_scale);
    nn::T5DenseImpl& f = *dense[V][i];
    f.row_hidden_scale = row_table(s, torch::Tensor(), f.wo->in_features(), 1.0);
  }
  // The output layer's bias.
  {
    std::vector<torch::Tensor> b;
    for (auto* v : variants) b.push_back(v->lm_head->bias);
    m.lm_head->row_bias = row_table(b, torch::Tensor(), m.config().vocab_size, 0.0);
  }
  // Sublayer output hooks.
  std::vector<std::vector<nn::SublayerImpl*>> sublayers(V + 1);
  for (size_t v = 0; v <= V; ++v) {
    nn::T5ModelImpl& model = v < V ? *variants[v] : m;
    model.for_each_sublayer([&](const std::string&, int64_t, nn::HookSite, nn::SublayerImpl& s) {
      sublayers[v].push_back(&s);
    });
  }
  for (size_t i = 0; i < sublayers[V].size(); ++i) {
    std::vector<std::shared_ptr<nn::OutputHook>> hooks;
    bool any = false;
    for (size_t v = 0; v < V; ++v) {
      hooks.push_back(sublayers[v][i]->output_hook());
      any = any || hooks.back() != nullptr;
    }
    sublayers[V][i]->remove_output_hook();
    if (any)
      sublayers[V][i]->set_output_hook("mixed", std::make_shared<MixedOutputHook>(rows_, hooks));
  }
  // The encoder's input hook.
  {
    std::vector<std::shared_ptr<nn::InputHook>> hooks;
    bool any = false;
    for (auto* v : variants) {
      hooks.push_back(v->encoder->input_hook());
      any = any || hooks.back() != nullptr;
    }
    m.encoder->remove_input_hook();
    if (any) m.encoder->set_input_hook("mixed", std::make_shared<MixedInputHook>(rows_, hooks));
  }
}

}  // namespace compacter::serve
