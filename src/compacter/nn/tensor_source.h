// Which tensor, in which state, a derived copy was made from: the tensor itself (weakly, so the
// copy does not keep it alive, and its address cannot be reused while recorded), its version
// counter (bumped by every in-place change) and its data pointer. A copy is served again only
// while matches() holds, so an in-place change, a new tensor at a reused address or a tensor that
// is gone never gets stale bits. Used by nn::FrozenWeight (a frozen weight's transposed and bf16
// copies) and the bf16 roundings of activations kept per thread (nn/bf16_linear.cpp).
#pragma once
#include <torch/torch.h>

#include <optional>

namespace compacter::nn {

class TensorSource {
 public:
  void record(const torch::Tensor& t) {
    source_.emplace(t.getIntrusivePtr());
    version_ = t._version();
    data_ = t.data_ptr();
  }
  void reset() {
    source_.reset();
    data_ = nullptr;
  }
  // Whether a tensor is recorded and gone since.
  bool expired() const { return source_ && source_->expired(); }
  // Whether `t` is the recorded tensor, alive, unchanged since it was recorded.
  bool matches(const torch::Tensor& t) const {
    return source_ && !source_->expired() &&
           source_->_unsafe_get_target() == t.unsafeGetTensorImpl() && version_ == t._version() &&
           data_ == t.data_ptr();
  }

 private:
  std::optional<c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>> source_;
  int64_t version_ = 0;
  const void* data_ = nullptr;
};

}  // namespace compacter::nn
