// convert_to_safetensors (convert.h).
#include "compacter/io/convert.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <tuple>

#include "compacter/core/error.h"
#include "compacter/io/checkpoint_files.h"
#include "compacter/io/pytorch_bin.h"
#include "compacter/io/safetensors.h"

namespace compacter {

namespace {

namespace fs = std::filesystem;

// The small files of a Hugging Face folder worth keeping: configuration, tokenizer, card.
bool copied_along(const fs::path& p) {
  const std::string name = p.filename().string(), ext = p.extension().string();
  if (name == "pytorch_model.bin.index.json" || name == "model.safetensors.index.json")
    return false;
  return ext == ".json" || ext == ".model" || ext == ".txt" || ext == ".md";
}

}  // namespace

ConvertReport convert_to_safetensors(const std::string& model_dir, const std::string& out_dir) {
  std::error_code ec;
  check(fs::is_directory(model_dir, ec), model_dir, ": not a folder");
  const WeightFormat format = detect_weight_format(model_dir);
  check(format == WeightFormat::PytorchBin, model_dir,
        ": already holds safetensors weights; nothing to convert");
  if (fs::exists(out_dir, ec)) {
    check(fs::is_directory(out_dir, ec) && fs::is_empty(out_dir, ec), out_dir,
          ": already exists and is not an empty folder; choose a new --out");
    check(!fs::equivalent(model_dir, out_dir, ec), out_dir, ": is the input folder");
  }

  // Read everything first: a bad file fails before anything is written.
  const pytorch_bin::Checkpoint ckpt = pytorch_bin::Checkpoint::open(model_dir);
  ConvertReport report;
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  using ViewKey = std::tuple<size_t, size_t, uint64_t, std::vector<int64_t>, std::vector<int64_t>>;
  std::map<ViewKey, std::string> first_name;
  for (size_t f = 0; f < ckpt.files().size(); ++f) {
    const pytorch_bin::File& file = ckpt.files()[f];
    for (const auto& t : file.index().dict.tensors) {
      auto [it, inserted] =
          first_name.emplace(ViewKey{f, t.storage, t.offset, t.shape, t.stride}, t.name);
      if (!inserted) {
        report.aliases.push_back(t.name + " = " + it->second);
        continue;
      }
      tensors.emplace_back(t.name, file.load(t.name));
      report.bytes += static_cast<uint64_t>(tensors.back().second.nbytes());
    }
  }
  report.tensors = tensors.size();
  std::vector<fs::path> extra;
  for (const auto& e : fs::directory_iterator(model_dir))
    if (e.is_regular_file() && copied_along(e.path())) extra.push_back(e.path());
  std::sort(extra.begin(), extra.end());

  // Write into a temporary sibling folder, then rename it into place.
  fs::path out = fs::absolute(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  const fs::path parent = out.parent_path();
  check(fs::is_directory(parent, ec), out_dir, ": its parent folder ", parent.string(),
        " does not exist");
  std::string tmp = (parent / ("." + out.filename().string() + ".tmp-XXXXXX")).string();
  check(::mkdtemp(tmp.data()) != nullptr, out_dir,
        ": cannot create a temporary folder next to it: ", std::strerror(errno));
  try {
    safetensors::save(tmp + "/model.safetensors", tensors, {{"format", "pt"}});
    for (const fs::path& p : extra) {
      const fs::path dst = fs::path(tmp) / p.filename();
      fs::copy_file(p, dst, ec);
      check(!ec, p.string(), ": cannot copy: ", ec.message());
      fs::permissions(dst,
                      fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                          fs::perms::others_read,
                      ec);
      report.copied.push_back(p.filename().string());
    }
    // Read back what was written (its header and tensor count) before it is put in place.
    const auto written = safetensors::Checkpoint::open(tmp);
    check(written.names().size() == tensors.size(), tmp,
          ": model.safetensors reads back with a different tensor count");
    fs::permissions(tmp, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
    fs::rename(tmp, out, ec);  // replaces an empty folder
    check(!ec, out_dir, ": cannot move the written folder into place: ", ec.message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return report;
}

}  // namespace compacter
