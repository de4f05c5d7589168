// PyTorch `pytorch_model.bin` checkpoints (torch.save since PyTorch 1.6: a zip archive holding a
// pickled state dict and one raw file per storage; io/pytorch_bin_format.h) read into torch
// tensors without Python and without executing anything from the file: a single file, a model
// folder, or shards listed by pytorch_model.bin.index.json ({"weight_map": {name: shard}}).
// Tensors that share a storage (T5's tied embeddings: four names over one storage, saved once)
// are each returned as their own copy of their view.
#pragma once
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compacter/io/pytorch_bin_format.h"

namespace compacter::pytorch_bin {

class File {
 public:
  // Validates the archive, the pickle and every storage's size; reads no tensor data.
  static File open(const std::string& path);
  const std::string& path() const { return path_; }
  const Index& index() const { return *index_; }
  bool contains(const std::string& name) const { return by_name_.count(name) > 0; }
  const torch_pickle::Tensor& tensor(const std::string& name) const;  // throws naming the file
  safetensors::DType dtype(const std::string& name) const;
  // A contiguous CPU tensor in the stored dtype, sharing no memory with any other.
  torch::Tensor load(const std::string& name) const;

 private:
  std::string path_;
  std::shared_ptr<const zip::Archive> archive_;
  std::shared_ptr<const Index> index_;
  std::map<std::string, size_t> by_name_;  // -> index_->dict.tensors
};

class Checkpoint {
 public:
  // `dir_or_file`: a .bin file, or a folder with pytorch_model.bin or
  // pytorch_model.bin.index.json (the single file wins when both exist, as in transformers).
  static Checkpoint open(const std::string& dir_or_file);
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return owner_.count(name) > 0; }
  const File& file_of(const std::string& name) const;  // throws when absent
  torch::Tensor load(const std::string& name) const { return file_of(name).load(name); }
  const std::string& where() const { return where_; }
  const std::vector<File>& files() const { return files_; }

 private:
  std::string where_;
  std::vector<File> files_;
  std::map<std::string, size_t> owner_;  // tensor name -> index into files_
};

}  // namespace compacter::pytorch_bin
