// pytorch_model.bin files and checkpoints with torch (pytorch_bin.h): a tensor is read as its
// whole storage entry (CRC-checked), viewed with the pickled offset, size and stride (checked to
// lie inside the storage when the file was opened) and copied out.
#include "compacter/io/pytorch_bin.h"

#include <torch/torch.h>

#include <filesystem>

#include "compacter/core/error.h"
#include "compacter/io/safetensors.h"
#include "compacter/io/weight_map.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pytorch_model.bin reading assumes a little-endian host"
#endif

namespace compacter::pytorch_bin {

namespace fs = std::filesystem;

// ---- File ------------------------------------------------------------------------------------

File File::open(const std::string& path) {
  std::error_code ec;
  check(fs::exists(path, ec), path, ": no such file");
  auto source = zip::FileSource::open(path);
  uint8_t head[512] = {};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(source->size(), sizeof head));
  source->read(0, n, head);
  check_zip_checkpoint(head, n, path);
  File f;
  f.path_ = path;
  f.archive_ = std::make_shared<const zip::Archive>(zip::Archive::open(source));
  f.index_ = std::make_shared<const Index>(read_index(*f.archive_));
  const auto& tensors = f.index_->dict.tensors;
  for (size_t i = 0; i < tensors.size(); ++i) f.by_name_.emplace(tensors[i].name, i);
  return f;
}

const torch_pickle::Tensor& File::tensor(const std::string& name) const {
  auto it = by_name_.find(name);
  check(it != by_name_.end(), path_, ": no tensor \"", name, "\" (the file has ", by_name_.size(),
        " tensors)");
  return index_->dict.tensors[it->second];
}

safetensors::DType File::dtype(const std::string& name) const {
  return index_->dict.storages[tensor(name).storage].dtype;
}

torch::Tensor File::load(const std::string& name) const {
  const torch_pickle::Tensor& t = tensor(name);
  const torch_pickle::Storage& s = index_->dict.storages[t.storage];
  const auto dtype = safetensors::to_torch(s.dtype);
  torch::Tensor storage =
      torch::empty({static_cast<int64_t>(s.numel)}, torch::TensorOptions().dtype(dtype));
  read_storage(*archive_, *index_, t.storage, storage.data_ptr());
  if (s.dtype == safetensors::DType::BOOL) {
    const auto* b = static_cast<const uint8_t*>(storage.data_ptr());
    for (uint64_t i = 0; i < s.numel; ++i)
      check(b[i] <= 1, path_, ": tensor \"", name, "\" (bool): storage element ", i, " is byte ",
            static_cast<int>(b[i]), ", expected 0 or 1");
  }
  // In bounds: the unpickler checked offset + sum((size - 1) * stride) < numel.
  return storage.as_strided(t.shape, t.stride, static_cast<int64_t>(t.offset))
      .clone(torch::MemoryFormat::Contiguous);
}

// ---- Checkpoint ------------------------------------------------------------------------------

Checkpoint Checkpoint::open(const std::string& dir_or_file) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir_or_file, ec);
  check(fs::exists(st), dir_or_file, ": no such file or directory");
  Checkpoint c;
  c.where_ = dir_or_file;
  const fs::path dir(dir_or_file);
  const fs::path single = dir / "pytorch_model.bin";
  const fs::path index = dir / "pytorch_model.bin.index.json";
  if (!fs::is_directory(st)) {
    c.files_.push_back(File::open(dir_or_file));
  } else if (fs::exists(single, ec)) {
    c.files_.push_back(File::open(single.string()));
  } else if (fs::exists(index, ec)) {
    const std::string ipath = index.string();
    const std::map<std::string, std::string> shard_of = read_weight_map(ipath);
    std::map<std::string, size_t> shard_index;  // shard name -> index into files_
    for (const auto& [name, shard] : shard_of) {
      const size_t next = shard_index.size();
      shard_index.emplace(shard, next);
    }
    c.files_.resize(shard_index.size());
    for (const auto& [shard, i] : shard_index) {
      const fs::path p = dir / shard;
      check(fs::is_regular_file(p, ec), ipath, ": shard \"", shard, "\" not found (", p.string(),
            ")");
      c.files_[i] = File::open(p.string());
    }
    for (const auto& [name, shard] : shard_of) {
      check(c.files_[shard_index.at(shard)].contains(name), ipath, ": tensor \"", name,
            "\" is listed in shard \"", shard, "\" but missing from it");
    }
  } else {
    throw Error(cat(dir_or_file,
                    ": directory has neither pytorch_model.bin nor pytorch_model.bin.index.json"));
  }
  for (size_t i = 0; i < c.files_.size(); ++i) {
    for (const auto& t : c.files_[i].index().dict.tensors) {
      auto [it, inserted] = c.owner_.emplace(t.name, i);
      check(inserted, c.where_, ": tensor \"", t.name,
            "\" appears in two shards: ", c.files_[it->second].path(), " and ", c.files_[i].path());
    }
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(owner_.size());
  for (const auto& kv : owner_) out.push_back(kv.first);
  return out;
}

const File& Checkpoint::file_of(const std::string& name) const {
  auto it = owner_.find(name);
  check(it != owner_.end(), where_, ": no tensor \"", name, "\" in the checkpoint");
  return files_[it->second];
}

}  // namespace compacter::pytorch_bin
