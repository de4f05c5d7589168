// safetensors: reading and writing the format Hugging Face uses for weights.
// Layout: u64 little-endian N, then N bytes of JSON header
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// then the data buffer; offsets are relative to the buffer start. The reader validates every
// header field, dtype, shape, offset range and overlap before touching any data.
#pragma once
#include <torch/types.h>

#include "compacter/io/safetensors_header.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace compacter::safetensors {

// DType, dtype_name, dtype_size, TensorInfo, Header and parse_header are declared in
// safetensors_header.h (torch-free, shared with the fuzz target).
torch::ScalarType to_torch(DType d);

// One safetensors file, validated at open (and its data checked against kDataChecksumKey when
// its metadata has one); tensors are read on demand.
class File {
 public:
  static File open(const std::string& path);
  const std::string& path() const { return path_; }
  const Header& header() const { return header_; }
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws Error naming file and tensor
  torch::Tensor load(const std::string& name) const;      // CPU tensor in the stored dtype

 private:
  std::string path_;
  Header header_;
  std::map<std::string, size_t> index_;
  uint64_t file_size_ = 0;
};

// A model's weights: one `model.safetensors`, or shards listed by
// `model.safetensors.index.json` ({"weight_map": {name: shard file}}), or a single file path.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir_or_file);
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  torch::Tensor load(const std::string& name) const;
  const std::string& where() const { return where_; }        // for messages
  const std::vector<File>& files() const { return files_; }  // each file opened, once

 private:
  std::string where_;
  std::vector<File> files_;
  std::map<std::string, size_t> owner_;  // tensor name -> index into files_
};

// The metadata key of the checksum of the data section (core/fingerprint.h, WordChecksum) that
// the models we write carry: safetensors has none, so a flipped bit in the weights would
// otherwise load as a different model. File::open verifies it when present; files without it
// (Hugging Face's own) load as they are.
inline constexpr const char* kDataChecksumKey = "compacter_data_checksum";

// Writes tensors (contiguous CPU copies are made as needed) atomically: to `path.tmp-XXXX`, then
// rename. Floating tensors are converted to `float_dtype` when given (default: as they are).
// With `checksum`, the metadata also gets kDataChecksumKey.
void save(const std::string& path,
          const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata = {},
          std::optional<torch::ScalarType> float_dtype = std::nullopt, bool checksum = false);

}  // namespace compacter::safetensors
