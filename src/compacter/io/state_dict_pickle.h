// A restricted unpickler for the data.pkl of a torch.save'd state dict: it interprets only the
// pickle opcodes such a file uses and allows only the globals a state dict needs:
//   collections.OrderedDict           the dict itself (and the empty backward-hooks dicts)
//   torch._utils._rebuild_tensor_v2   a tensor: a view (offset, size, stride) of a storage
//   torch._utils._rebuild_tensor_v3   the same with an explicit dtype (PyTorch >= 2.1 writes it
//                                     over a torch.UntypedStorage, whose count is in bytes)
//   torch._utils._rebuild_parameter   an nn.Parameter: (data, requires_grad, backward_hooks),
//                                     read as its tensor; the hooks must be an empty dict
//   torch.FloatStorage, torch.HalfStorage, torch.BFloat16Storage, ... the storage types, and
//   torch.UntypedStorage; torch.float32, torch.float16, ... the dtypes (v3's argument)
// with persistent ids ('storage', type, key, location, numel) naming the storages. These are in
// PyTorch's weights_only allowlist (torch/_weights_only_unpickler.py: _rebuild_parameter since
// 1.13, _rebuild_tensor_v3 in 2.x). Other dtypes (uint16, float8_*, ...) are refused by name.
// Any other global (os.system, builtins.eval, ...) is refused by name and nothing is called: the
// result is a description of the tensors, not Python objects. Semantics follow PyTorch's
// torch/_weights_only_unpickler.py and torch/serialization.py (_load, persistent_load).
// No torch here (the fuzz target compiles this file on its own).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "compacter/io/safetensors_header.h"

namespace compacter::torch_pickle {

using safetensors::DType;

// One storage named by a persistent id: its bytes are the archive's entry data/<key>.
struct Storage {
  std::string key;
  DType dtype = DType::F32;
  uint64_t numel = 0;    // elements of dtype
  std::string location;  // "cpu", "cuda:0", ... (informational: everything loads on the CPU)
};

// One state-dict entry: a strided view into storages[storage].
struct Tensor {
  std::string name;
  size_t storage = 0;
  uint64_t offset = 0;  // in elements
  std::vector<int64_t> shape, stride;
};

struct StateDict {
  std::vector<Storage> storages;  // in order of first use
  std::vector<Tensor> tensors;    // in the dict's order
};

// Largest data.pkl accepted: a state dict's pickle holds only names and small tuples (~100
// bytes per tensor), so this allows millions of tensors.
constexpr uint64_t kMaxPickleBytes = uint64_t{512} << 20;

// Interprets the pickle `data[0, size)`; `source` names it in errors. Throws compacter::Error
// for any opcode or global outside the allowed set, malformed input, or a result that is not a
// dict of string -> tensor. Never reads outside the buffer; memory is linear in `size`.
StateDict parse_state_dict(const uint8_t* data, size_t size, const std::string& source);

// The storage type's torch name for a dtype ("torch.FloatStorage").
std::string storage_type_name(DType d);

}  // namespace compacter::torch_pickle
