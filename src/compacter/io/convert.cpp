// convert_to_safetensors (convert.h).
#include "compacter/io/convert.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
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

// A dtype's place in the safetensors crate's Dtype enum (BOOL, U8, I8, ..., I16, U16, F16, BF16,
// I32, U32, F32, F64, I64, U64), which orders the tensors of a file.
int safetensors_dtype_rank(torch::ScalarType t) {
  switch (t) {
    case torch::kBool:
      return 0;
    case torch::kByte:
      return 1;
    case torch::kChar:
      return 2;
    case torch::kShort:
      return 3;
    case torch::kHalf:
      return 4;
    case torch::kBFloat16:
      return 5;
    case torch::kInt:
      return 6;
    case torch::kFloat:
      return 7;
    case torch::kDouble:
      return 8;
    case torch::kLong:
      return 9;
    default:
      return -1;
  }
}

// config.json's "tie_word_embeddings" (transformers' default: true); errors name the file.
bool ties_word_embeddings(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path);
  if (!in) return true;
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  check(!j.is_discarded() && j.is_object(), path, ": not a JSON object");
  const auto it = j.find("tie_word_embeddings");
  if (it == j.end() || it->is_null()) return true;
  check(it->is_boolean(), path, ": field \"tie_word_embeddings\": expected true or false, got ",
        it->dump());
  return it->get<bool>();
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
  const bool tied_head = ties_word_embeddings(model_dir);
  auto tied_name = [&](const std::string& name) {
    return name == "encoder.embed_tokens.weight" || name == "decoder.embed_tokens.weight" ||
           (tied_head && name == "lm_head.weight");
  };
  ConvertReport report;
  // Group the names by the view they are (file, storage, offset, shape, stride), in file order.
  using ViewKey = std::tuple<size_t, size_t, uint64_t, std::vector<int64_t>, std::vector<int64_t>>;
  std::map<ViewKey, size_t> group_of;
  std::vector<std::pair<size_t, std::vector<std::string>>> groups;  // file, names
  for (size_t f = 0; f < ckpt.files().size(); ++f) {
    for (const auto& t : ckpt.files()[f].index().dict.tensors) {
      auto [it, inserted] =
          group_of.emplace(ViewKey{f, t.storage, t.offset, t.shape, t.stride}, groups.size());
      if (inserted) groups.push_back({f, {}});
      groups[it->second].second.push_back(t.name);
    }
  }
  // Each group is written once, under its first name that is not a tied copy (shared.weight),
  // as transformers' save_pretrained drops the _tied_weights_keys of an aliased group.
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  std::vector<std::string> lone_tied;  // tied copies stored on their own (another shard)
  for (const auto& [f, names] : groups) {
    std::string kept = names.front();
    for (const std::string& n : names)
      if (!tied_name(n)) {
        kept = n;
        break;
      }
    for (const std::string& n : names)
      if (n != kept) report.aliases.push_back(n + " = " + kept);
    if (names.size() == 1 && tied_name(kept)) {
      lone_tied.push_back(kept);
      continue;
    }
    tensors.emplace_back(kept, ckpt.files()[f].load(kept));
  }
  // A tied copy in its own storage (sharded files save lm_head.weight in another shard than
  // shared.weight) is dropped when it equals shared.weight bit for bit, as transformers ties it;
  // a different one is kept (written under its name).
  for (const std::string& name : lone_tied) {
    const torch::Tensor t = ckpt.load(name);
    bool same = false;
    if (ckpt.contains("shared.weight")) {
      const torch::Tensor shared = ckpt.load("shared.weight");
      same = shared.scalar_type() == t.scalar_type() && shared.sizes() == t.sizes() &&
             std::memcmp(shared.data_ptr(), t.data_ptr(), static_cast<size_t>(t.nbytes())) == 0;
    }
    if (same)
      report.aliases.push_back(name + " = shared.weight");
    else
      tensors.emplace_back(name, t);
  }
  for (const auto& [name, t] : tensors) report.bytes += static_cast<uint64_t>(t.nbytes());
  // The order the safetensors library writes (its prepare(): dtype descending in its Dtype
  // order, then name), so that the file is the one transformers writes.
  std::stable_sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) {
    const int ra = safetensors_dtype_rank(a.second.scalar_type());
    const int rb = safetensors_dtype_rank(b.second.scalar_type());
    return ra != rb ? ra > rb : a.first < b.first;
  });
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
  const bool made = ::mkdtemp(tmp.data()) != nullptr;  // before errno is read below
  check(made, out_dir, ": cannot create a temporary folder next to it: ", std::strerror(errno));
  try {
    // No checksum in the metadata: the file is byte for byte what transformers writes.
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
