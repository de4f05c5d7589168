// safetensors files with torch: File (validated header, tensors read on demand by seeking),
// Checkpoint (one file, a model directory, or shards listed by model.safetensors.index.json) and
// save() (atomic write: temporary file in the same directory, fsync, rename).
#include "compacter/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "compacter/core/error.h"
#include "compacter/core/fingerprint.h"
#include "compacter/io/weight_map.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors I/O assumes a little-endian host"
#endif

namespace compacter::safetensors {

namespace fs = std::filesystem;

namespace {

std::optional<DType> from_torch(torch::ScalarType t) {
  switch (t) {
    case torch::kDouble:
      return DType::F64;
    case torch::kFloat:
      return DType::F32;
    case torch::kHalf:
      return DType::F16;
    case torch::kBFloat16:
      return DType::BF16;
    case torch::kLong:
      return DType::I64;
    case torch::kInt:
      return DType::I32;
    case torch::kShort:
      return DType::I16;
    case torch::kChar:
      return DType::I8;
    case torch::kByte:
      return DType::U8;
    case torch::kBool:
      return DType::BOOL;
    default:
      return std::nullopt;
  }
}

// Writes all of [p, p + n) to fd, or throws.
void write_all(int fd, const void* data, size_t n, const std::string& where) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t w = ::write(fd, p, chunk);
    if (w < 0 && errno == EINTR) continue;
    check(w > 0, where, ": write failed: ", std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

torch::ScalarType to_torch(DType d) {
  switch (d) {
    case DType::F64:
      return torch::kDouble;
    case DType::F32:
      return torch::kFloat;
    case DType::F16:
      return torch::kHalf;
    case DType::BF16:
      return torch::kBFloat16;
    case DType::I64:
      return torch::kLong;
    case DType::I32:
      return torch::kInt;
    case DType::I16:
      return torch::kShort;
    case DType::I8:
      return torch::kChar;
    case DType::U8:
      return torch::kByte;
    case DType::BOOL:
      return torch::kBool;
  }
  throw Error(cat("invalid safetensors dtype ", static_cast<int>(d)));
}

// ---- File ------------------------------------------------------------------------------------

File File::open(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  check(fs::exists(st), path, ": no such file");
  check(fs::is_regular_file(st), path, ": not a regular file");
  const uintmax_t size = fs::file_size(path, ec);
  check(!ec, path, ": cannot read the file size: ", ec.message());

  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), path, ": cannot open for reading");
  uint8_t first8[8] = {};
  in.read(reinterpret_cast<char*>(first8), size >= 8 ? 8 : 0);
  const uint64_t n = read_header_length(first8, size, path);
  std::string json(static_cast<size_t>(n), '\0');
  in.read(json.data(), static_cast<std::streamsize>(n));
  check(in && static_cast<uint64_t>(in.gcount()) == n, path, ": could not read the ", n,
        "-byte header");

  File f;
  f.path_ = path;
  f.file_size_ = size;
  f.header_ = parse_header_json(json.data(), json.size(), size, path);
  for (size_t i = 0; i < f.header_.tensors.size(); ++i)
    f.index_.emplace(f.header_.tensors[i].name, i);
  if (const auto it = f.header_.metadata.find(kDataChecksumKey); it != f.header_.metadata.end()) {
    WordChecksum sum;
    std::vector<char> buffer(size_t{1} << 20);
    uint64_t left = size - f.header_.data_start;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, buffer.size()));
      in.read(buffer.data(), static_cast<std::streamsize>(n));
      check(static_cast<uint64_t>(in.gcount()) == n, path, ": could not read its data section");
      sum.add(buffer.data(), n);
      left -= n;
    }
    const std::string computed = sum.hex();
    check(computed == it->second, path,
          ": its tensor bytes do not match the checksum in its header (", kDataChecksumKey, " ",
          it->second, ", computed ", computed,
          "): the file is damaged (a flipped bit or a partial copy)");
  }
  return f;
}

bool File::contains(const std::string& name) const {
  return index_.count(name) > 0;
}

const TensorInfo& File::info(const std::string& name) const {
  auto it = index_.find(name);
  check(it != index_.end(), path_, ": no tensor \"", name, "\" (the file has ",
        header_.tensors.size(), " tensors)");
  return header_.tensors[it->second];
}

torch::Tensor File::load(const std::string& name) const {
  const TensorInfo& t = info(name);
  torch::Tensor out = torch::empty(t.shape, torch::TensorOptions().dtype(to_torch(t.dtype)));
  const uint64_t nbytes = t.end - t.begin;
  if (nbytes == 0) return out;
  std::ifstream in(path_, std::ios::binary);
  check(static_cast<bool>(in), path_, ": cannot open for reading tensor \"", name, "\"");
  in.seekg(static_cast<std::streamoff>(header_.data_start + t.begin));
  char* dst = static_cast<char*>(out.data_ptr());
  in.read(dst, static_cast<std::streamsize>(nbytes));
  check(in && static_cast<uint64_t>(in.gcount()) == nbytes, path_, ": tensor \"", name,
        "\": could not read bytes [", t.begin, ", ", t.end,
        ") of the data buffer (file shorter than when it was opened?)");
  if (t.dtype == DType::BOOL) {
    for (uint64_t i = 0; i < nbytes; ++i) {
      const auto b = static_cast<unsigned char>(dst[i]);
      check(b <= 1, path_, ": tensor \"", name, "\" (BOOL): element ", i, " is byte ",
            static_cast<int>(b), ", expected 0 or 1");
    }
  }
  return out;
}

// ---- Checkpoint ------------------------------------------------------------------------------

Checkpoint Checkpoint::open(const std::string& dir_or_file) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir_or_file, ec);
  check(fs::exists(st), dir_or_file, ": no such file or directory");
  Checkpoint c;
  c.where_ = dir_or_file;
  if (!fs::is_directory(st)) {
    c.files_.push_back(File::open(dir_or_file));
  } else {
    const fs::path dir(dir_or_file);
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(single, ec)) {  // Hugging Face prefers the single file when both exist
      c.files_.push_back(File::open(single.string()));
    } else if (fs::exists(index, ec)) {
      const std::string ipath = index.string();
      const std::map<std::string, std::string> shard_of = read_weight_map(ipath);
      std::map<std::string, size_t> shard_index;  // shard name -> index into files_
      for (const auto& [name, shard] : shard_of) {
        const size_t next = shard_index.size();
        shard_index.emplace(shard, next);  // no-op when the shard is already known
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
      const bool bin = fs::exists(dir / "pytorch_model.bin", ec) ||
                       fs::exists(dir / "pytorch_model.bin.index.json", ec);
      throw Error(cat(dir_or_file,
                      ": directory has neither model.safetensors nor model.safetensors.index.json",
                      bin ? " (it holds PyTorch weights, pytorch_model.bin: `compacter convert` "
                            "writes model.safetensors from them)"
                          : ""));
    }
  }
  for (size_t i = 0; i < c.files_.size(); ++i) {
    for (const TensorInfo& t : c.files_[i].header().tensors) {
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

bool Checkpoint::contains(const std::string& name) const {
  return owner_.count(name) > 0;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = owner_.find(name);
  check(it != owner_.end(), where_, ": no tensor \"", name, "\" in the checkpoint");
  return files_[it->second].info(name);
}

torch::Tensor Checkpoint::load(const std::string& name) const {
  auto it = owner_.find(name);
  check(it != owner_.end(), where_, ": no tensor \"", name, "\" in the checkpoint");
  return files_[it->second].load(name);
}

// ---- save ------------------------------------------------------------------------------------

void save(const std::string& path,
          const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata,
          std::optional<torch::ScalarType> float_dtype, bool checksum) {
  if (float_dtype) {
    check(torch::isFloatingType(*float_dtype) && from_torch(*float_dtype).has_value(), path,
          ": float_dtype must be one of F64, F32, F16, BF16");
  }
  // Everything that can fail is checked before the temporary file exists.
  std::set<std::string> names;
  std::vector<torch::Tensor> data;
  std::vector<DType> dtypes;
  for (const auto& [name, tensor] : tensors) {
    check(!name.empty(), path, ": a tensor has an empty name");
    check(name != "__metadata__", path, ": \"__metadata__\" is reserved, not a tensor name");
    check(names.insert(name).second, path, ": duplicate tensor name \"", name, "\"");
    check(tensor.defined(), path, ": tensor \"", name, "\" is undefined");
    torch::Tensor t = tensor.detach();
    if (float_dtype && t.is_floating_point()) t = t.to(*float_dtype);
    const std::optional<DType> d = from_torch(t.scalar_type());
    check(d.has_value(), path, ": tensor \"", name, "\": dtype ", t.scalar_type(),
          " cannot be stored (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    data.push_back(t.to(torch::kCPU).contiguous());
    dtypes.push_back(*d);
  }
  std::string header;
  try {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    std::map<std::string, std::string> meta = metadata;
    if (checksum) {
      check(!metadata.count(kDataChecksumKey), path, ": metadata key \"", kDataChecksumKey,
            "\" is reserved");
      WordChecksum sum;
      for (const torch::Tensor& t : data)
        sum.add(t.data_ptr(), static_cast<size_t>(t.numel() * t.element_size()));
      meta[kDataChecksumKey] = sum.hex();
    }
    if (!meta.empty()) {
      nlohmann::ordered_json m = nlohmann::ordered_json::object();
      for (const auto& [k, v] : meta) m[k] = v;
      h["__metadata__"] = m;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < data.size(); ++i) {
      const uint64_t nbytes = data[i].numel() * dtype_size(dtypes[i]);
      h[tensors[i].first] = {{"dtype", dtype_name(dtypes[i])},
                             {"shape", data[i].sizes().vec()},
                             {"data_offsets", {offset, offset + nbytes}}};
      offset += nbytes;
    }
    header = h.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(
        cat(path, ": cannot build the header (names and metadata must be UTF-8): ", e.what()));
  }
  header.append((8 - header.size() % 8) % 8, ' ');
  uint8_t len8[8];
  for (int i = 0; i < 8; ++i)
    len8[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));

  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  check(fd >= 0, path, ": cannot create a temporary file next to it: ", std::strerror(errno));
  try {
    write_all(fd, len8, 8, tmp);
    write_all(fd, header.data(), header.size(), tmp);
    for (const torch::Tensor& t : data) {
      write_all(fd, t.data_ptr(), t.numel() * t.element_size(), tmp);
    }
    // Each call before the check: its arguments (errno among them) are evaluated in any order.
    const bool chmod_ok = ::fchmod(fd, 0644) == 0;
    check(chmod_ok, tmp, ": chmod failed: ", std::strerror(errno));
    const bool fsync_ok = ::fsync(fd) == 0;
    check(fsync_ok, tmp, ": fsync failed: ", std::strerror(errno));
    const int rc = ::close(fd);
    fd = -1;
    check(rc == 0, tmp, ": close failed: ", std::strerror(errno));
    std::error_code ec;
    fs::rename(tmp, path, ec);
    check(!ec, path, ": cannot move the written file into place: ", ec.message());
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
}

}  // namespace compacter::safetensors
