// CheckpointFiles (checkpoint_files.h): one reader per format behind one interface.
#include "compacter/io/checkpoint_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>

#include "compacter/core/error.h"
#include "compacter/io/pytorch_bin.h"
#include "compacter/io/safetensors.h"

namespace compacter {

namespace fs = std::filesystem;

struct CheckpointFiles::Impl {
  std::optional<safetensors::Checkpoint> st;
  std::optional<pytorch_bin::Checkpoint> bin;
};

std::string weight_format_name(WeightFormat f) {
  return f == WeightFormat::Safetensors ? "safetensors" : "pytorch_model.bin";
}

WeightFormat detect_weight_format(const std::string& dir_or_file) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir_or_file, ec);
  check(fs::exists(st), dir_or_file, ": no such file or directory");
  if (!fs::is_directory(st)) {
    // A zip archive or torch.save's legacy pickle (magic number first) is PyTorch's, as is a
    // file named like one; the readers name what they refuse.
    std::ifstream in(dir_or_file, std::ios::binary);
    unsigned char head[8] = {};
    in.read(reinterpret_cast<char*>(head), 8);
    static const unsigned char kLegacy[8] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46};
    const std::string ext = fs::path(dir_or_file).extension().string();
    if ((in.gcount() >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4) ||
        (in.gcount() == 8 && std::equal(head, head + 8, kLegacy)) || ext == ".bin" ||
        ext == ".pt" || ext == ".pth")
      return WeightFormat::PytorchBin;
    return WeightFormat::Safetensors;
  }
  const fs::path dir(dir_or_file);
  const auto has = [&](const char* name) { return fs::exists(dir / name, ec); };
  if (has("model.safetensors") || has("model.safetensors.index.json"))
    return WeightFormat::Safetensors;
  if (has("pytorch_model.bin") || has("pytorch_model.bin.index.json"))
    return WeightFormat::PytorchBin;
  std::string other;
  if (has("tf_model.h5") || has("tf_model.h5.index.json"))
    other = " (it has tf_model.h5: TensorFlow weights, not supported)";
  else if (has("flax_model.msgpack") || has("flax_model.msgpack.index.json"))
    other = " (it has flax_model.msgpack: Flax weights, not supported)";
  throw Error(cat(dir_or_file,
                  ": no model weights: expected model.safetensors, model.safetensors.index.json, "
                  "pytorch_model.bin or pytorch_model.bin.index.json",
                  other));
}

CheckpointFiles CheckpointFiles::open(const std::string& dir_or_file) {
  CheckpointFiles c;
  c.format_ = detect_weight_format(dir_or_file);
  auto impl = std::make_shared<Impl>();
  if (c.format_ == WeightFormat::Safetensors)
    impl->st = safetensors::Checkpoint::open(dir_or_file);
  else
    impl->bin = pytorch_bin::Checkpoint::open(dir_or_file);
  c.impl_ = std::move(impl);
  return c;
}

const std::string& CheckpointFiles::where() const {
  return impl_->st ? impl_->st->where() : impl_->bin->where();
}

std::vector<std::string> CheckpointFiles::names() const {
  return impl_->st ? impl_->st->names() : impl_->bin->names();
}

std::vector<WeightFile> CheckpointFiles::files() const {
  std::vector<WeightFile> out;
  if (impl_->st) {
    for (const auto& f : impl_->st->files())
      out.push_back({f.path(), f.header().tensors.size(), f.header().metadata});
  } else {
    for (const auto& f : impl_->bin->files())
      out.push_back({f.path(), f.index().dict.tensors.size(), {}});
  }
  return out;
}

bool CheckpointFiles::contains(const std::string& name) const {
  return impl_->st ? impl_->st->contains(name) : impl_->bin->contains(name);
}

WeightInfo CheckpointFiles::info(const std::string& name) const {
  if (impl_->st) {
    const safetensors::TensorInfo& t = impl_->st->info(name);
    return {t.dtype, t.shape};
  }
  const pytorch_bin::File& f = impl_->bin->file_of(name);
  return {f.dtype(name), f.tensor(name).shape};
}

torch::Tensor CheckpointFiles::load(const std::string& name) const {
  return impl_->st ? impl_->st->load(name) : impl_->bin->load(name);
}

}  // namespace compacter
