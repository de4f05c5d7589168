// Hand-built PyTorch checkpoint bytes for the tests of the pytorch_model.bin reader, written
// without the reader's code: a zip writer (stored entries, optional zip64 records, a bitwise
// CRC-32) and a pickle writer that emits opcodes one by one, as torch.save (protocol 2) does for
// an OrderedDict state dict: GLOBAL collections.OrderedDict, REDUCE, then per tensor the name and
// _rebuild_tensor_v2((storage persistent id), offset, size, stride, False, OrderedDict()).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace compacter::testing {

uint32_t bitwise_crc32(const std::string& bytes);

struct ZipItem {
  std::string name, data;
  uint16_t method = 0;  // 0 stored; 8 claims deflate (data left as is)
};

// A zip archive of `items`; with zip64, the central directory uses 0xFFFFFFFF placeholders and
// zip64 extra fields, and the zip64 end record and locator are written.
std::string make_zip(const std::vector<ZipItem>& items, bool zip64 = false);

// Pickle opcodes, appended one call at a time.
struct PickleWriter {
  std::string b;
  PickleWriter& proto2() { return raw("\x80\x02"); }
  PickleWriter& raw(const std::string& s) {
    b += s;
    return *this;
  }
  PickleWriter& op(char c) {
    b += c;
    return *this;
  }
  PickleWriter& global(const std::string& module, const std::string& name) {
    b += 'c' + module + '\n' + name + '\n';
    return *this;
  }
  PickleWriter& str(const std::string& s);  // BINUNICODE
  PickleWriter& integer(int64_t v);         // BININT1 / BININT2 / BININT / LONG1
  PickleWriter& int_tuple(const std::vector<int64_t>& v);
  PickleWriter& put(uint8_t i) { return op('q').raw(std::string(1, static_cast<char>(i))); }
  PickleWriter& get(uint8_t i) { return op('h').raw(std::string(1, static_cast<char>(i))); }
};

struct TensorSpec {
  std::string name;
  std::string storage_type = "FloatStorage";  // torch.<this>
  std::string key = "0";
  int64_t storage_numel = 0;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

// The data.pkl of an OrderedDict state dict of `tensors`.
std::string state_dict_pickle(const std::vector<TensorSpec>& tensors);

// A torch.save zip: archive/data.pkl, archive/data/<key> for each storage, archive/version.
std::string torch_zip(const std::string& pickle,
                      const std::vector<std::pair<std::string, std::string>>& storages,
                      bool zip64 = false, const std::string& archive = "archive");

// Little-endian bytes of floats.
std::string f32_bytes(const std::vector<float>& v);

}  // namespace compacter::testing
