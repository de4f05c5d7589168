// oneDNN's C API found in the process, and the checks its callers share (see onednn_api.h).
#include "compacter/nn/onednn_api.h"

#include <dlfcn.h>

namespace compacter::nn {

void* onednn_symbol(const char* name) {
  if (void* f = dlsym(RTLD_DEFAULT, name)) return f;
  if (void* lib = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL)) return dlsym(lib, name);
  return nullptr;
}

bool linear_operands_fit(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  if (!x.defined() || !w.defined() || w.dim() != 2 || x.dim() < 1) return false;
  if (!x.device().is_cpu() || !w.device().is_cpu()) return false;
  if (x.layout() != torch::kStrided || w.layout() != torch::kStrided) return false;
  if (b.defined() && (!b.device().is_cpu() || b.layout() != torch::kStrided || b.dim() != 1 ||
                      b.size(0) != w.size(0)))
    return false;
  if (x.is_conj() || w.is_conj() || x.is_neg() || w.is_neg()) return false;
  return x.size(-1) == w.size(1) && x.numel() > 0 && w.numel() > 0;
}

std::vector<int64_t> sizes_with_last(const torch::Tensor& x, int64_t last) {
  std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
  sizes.back() = last;
  return sizes;
}

}  // namespace compacter::nn
