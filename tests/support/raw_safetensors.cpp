// See raw_safetensors.h. Format: https://github.com/huggingface/safetensors (README, "Format").
#include "support/raw_safetensors.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <vector>

namespace compacter::testing {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("raw_load: " + path + ": " + what);
}

std::vector<char> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<int64_t> read_shape(const nlohmann::json& j, const std::string& path) {
  std::vector<int64_t> shape;
  for (const auto& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(path, "bad shape " + j.dump());
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

}  // namespace

std::map<std::string, torch::Tensor> raw_load_safetensors(const std::string& path) {
  const std::vector<char> bytes = slurp(path);
  if (bytes.size() < 8) fail(path, "shorter than the 8-byte header length");
  uint64_t header_len = 0;  // little-endian u64, assembled byte by byte (host-independent)
  for (int i = 7; i >= 0; --i)
    header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
  if (header_len > bytes.size() - 8) fail(path, "header length past the end of the file");
  const nlohmann::json header =
      nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_len);
  const char* data = bytes.data() + 8 + header_len;
  const uint64_t data_len = bytes.size() - 8 - header_len;

  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string dtype = info.at("dtype").get<std::string>();
    torch::ScalarType type;
    size_t elem = 0;
    if (dtype == "F32") {
      type = torch::kFloat;
      elem = 4;
    } else if (dtype == "I64") {
      type = torch::kLong;
      elem = 8;
    } else {
      fail(path, "tensor " + name + ": unsupported dtype " + dtype);
    }
    const std::vector<int64_t> shape = read_shape(info.at("shape"), path);
    const uint64_t begin = info.at("data_offsets").at(0).get<uint64_t>();
    const uint64_t end = info.at("data_offsets").at(1).get<uint64_t>();
    uint64_t numel = 1;
    for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
    if (begin > end || end > data_len || end - begin != numel * elem)
      fail(path, "tensor " + name + ": data_offsets do not fit its shape or the file");
    torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type));
    // The data is little-endian; so is every platform libtorch supports.
    if (numel > 0) std::memcpy(t.data_ptr(), data + begin, end - begin);
    out.emplace(name, t);
  }
  return out;
}

std::map<std::string, torch::Tensor> raw_load_reference_json(const std::string& path) {
  const std::vector<char> bytes = slurp(path);
  const nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end());
  const std::set<std::string> int_names = {"input_ids", "attention_mask", "decoder_input_ids",
                                           "labels"};
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : j.at("tensors").items()) {
    const std::vector<int64_t> shape = read_shape(info.at("shape"), path);
    const nlohmann::json& values = info.at("values");
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (!values.is_array() || static_cast<int64_t>(values.size()) != numel)
      fail(path, "tensor " + name + ": number of values does not match its shape");
    torch::Tensor t;
    if (int_names.count(name)) {
      t = torch::empty(shape, torch::kLong);
      int64_t* p = t.data_ptr<int64_t>();
      for (int64_t i = 0; i < numel; ++i) p[i] = values[i].get<int64_t>();
    } else {
      t = torch::empty(shape, torch::kFloat);
      float* p = t.data_ptr<float>();
      for (int64_t i = 0; i < numel; ++i) p[i] = static_cast<float>(values[i].get<double>());
    }
    out.emplace(name, t);
  }
  return out;
}

}  // namespace compacter::testing
