// pytorch_bin_format.h: the zip layout of torch.save (caffe2's PyTorchStreamReader: all
// records under the first entry's top folder; torch/serialization.py _load: data.pkl and
// data/<key>, with key and element count from each storage's persistent id).
#include "compacter/io/pytorch_bin_format.h"

#include <cstring>

#include "compacter/core/error.h"

namespace compacter::pytorch_bin {

namespace {

constexpr const char* kConvert =
    "; convert it with a newer PyTorch (>= 1.6): "
    "python3 -c \"import torch; torch.save(torch.load('OLD', weights_only=True), 'NEW')\"";

}  // namespace

void check_zip_checkpoint(const uint8_t* head, size_t n, const std::string& source) {
  if (zip::looks_like_zip(head, n)) return;
  // _legacy_save: pickles of a magic number, the protocol version and system info, then the
  // object, then the storages' raw bytes. Its first opcode is PROTO (0x80).
  if (n >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5)
    throw Error(cat(source,
                    ": written by PyTorch before 1.6 (the legacy pickle format; or saved with "
                    "_use_new_zipfile_serialization=False), which is not supported",
                    kConvert));
  if (n >= 262 && std::memcmp(head + 257, "ustar", 5) == 0)
    throw Error(cat(source,
                    ": a tar archive, the legacy torch.save format of PyTorch before 1.6 (before "
                    "0.4 in fact), which is not supported",
                    kConvert));
  throw Error(cat(source,
                  ": not a PyTorch checkpoint (torch.save since 1.6 writes a zip archive, which "
                  "starts with the bytes \"PK\\x03\\x04\")"));
}

Index read_index(const zip::Archive& archive) {
  const std::string& src = archive.name();
  check(!archive.entries().empty(), src, ": empty zip archive, not a PyTorch checkpoint");
  Index index;
  const std::string& first = archive.entries().front().name;
  const size_t slash = first.find('/');
  check(slash != std::string::npos && slash > 0, src, ": zip entry \"", first,
        "\" is not inside a folder; torch.save puts every entry under <archive>/");
  index.archive = first.substr(0, slash);
  const std::string prefix = index.archive + "/";

  const zip::Entry* pkl = archive.find(prefix + "data.pkl");
  if (pkl == nullptr) {
    check(archive.find(prefix + "constants.pkl") == nullptr, src,
          ": a TorchScript archive (torch.jit.save), not a state dict saved with torch.save");
    throw Error(cat(src, ": no ", prefix, "data.pkl in the zip archive: not a torch.save file"));
  }
  if (const zip::Entry* bo = archive.find(prefix + "byteorder")) {
    check(bo->size <= 16, src, ": ", bo->name, " is ", bo->size, " bytes, expected \"little\"");
    const std::string order = archive.read_string(*bo);
    check(order == "little", src, ": byte order \"", order,
          "\" (only little-endian checkpoints are supported)");
  }
  check(pkl->size <= torch_pickle::kMaxPickleBytes, src, ": ", pkl->name, " is ", pkl->size,
        " bytes, larger than the limit (", torch_pickle::kMaxPickleBytes, ")");
  const std::string pickle = archive.read_string(*pkl);
  index.dict = torch_pickle::parse_state_dict(reinterpret_cast<const uint8_t*>(pickle.data()),
                                              pickle.size(), src + " (" + pkl->name + ")");

  for (const torch_pickle::Storage& s : index.dict.storages) {
    const std::string name = prefix + "data/" + s.key;
    const zip::Entry* e = archive.find(name);
    check(e != nullptr, src, ": storage \"", s.key, "\" has no entry ", name, " in the archive");
    const uint64_t esize = safetensors::dtype_size(s.dtype);
    check(s.numel <= e->size / esize && s.numel * esize == e->size, src, ": entry ", name,
          " holds ", e->size, " bytes, but its storage is ",
          torch_pickle::storage_type_name(s.dtype), " x ", s.numel, " (", esize, " bytes each)");
    index.storage_entries.push_back(*e);
  }
  return index;
}

void read_storage(const zip::Archive& archive, const Index& index, size_t i, void* dst) {
  archive.read(index.storage_entries.at(i), dst);
}

}  // namespace compacter::pytorch_bin
