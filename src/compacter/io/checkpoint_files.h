// The named tensors of a Hugging Face model folder, whatever the format: the folder's files pick
// it, in transformers' order of preference: model.safetensors, model.safetensors.index.json
// (shards), pytorch_model.bin, pytorch_model.bin.index.json (shards). A single weights file is
// recognised by its first bytes. Formats that are not read (TensorFlow, Flax) are named.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compacter/io/safetensors_header.h"

namespace compacter {

enum class WeightFormat { Safetensors, PytorchBin };
std::string weight_format_name(WeightFormat f);  // "safetensors", "pytorch_model.bin"

struct WeightFile {
  std::string path;
  size_t tensors = 0;
  std::map<std::string, std::string> metadata;  // safetensors' __metadata__ (none in a .bin)
};

struct WeightInfo {
  safetensors::DType dtype = safetensors::DType::F32;
  std::vector<int64_t> shape;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class CheckpointFiles {
 public:
  static CheckpointFiles open(const std::string& dir_or_file);
  WeightFormat format() const { return format_; }
  const std::string& where() const;        // for messages
  std::vector<std::string> names() const;  // sorted
  std::vector<WeightFile> files() const;   // each weights file opened
  bool contains(const std::string& name) const;
  WeightInfo info(const std::string& name) const;     // throws naming the checkpoint and tensor
  torch::Tensor load(const std::string& name) const;  // CPU, stored dtype, own memory

  struct Impl;  // one reader per format (checkpoint_files.cpp)

 private:
  WeightFormat format_ = WeightFormat::Safetensors;
  std::shared_ptr<const Impl> impl_;
};

// The format of a folder's weights (by its files) or of one file (by its first bytes); throws
// naming what the folder holds instead when it has neither format.
WeightFormat detect_weight_format(const std::string& dir_or_file);

}  // namespace compacter
