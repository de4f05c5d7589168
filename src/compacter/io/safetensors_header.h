// safetensors header parsing without torch: dtypes, the tensor table, and the validation of the
// u64 header length and JSON header against the file size. Kept free of torch so the fuzz target
// (fuzz/safetensors_fuzz.cpp) can compile safetensors_header.cpp on its own.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace compacter::safetensors {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

std::string dtype_name(DType d);                                // "F32", ...
size_t dtype_size(DType d);                                     // bytes per element
std::optional<DType> dtype_from_name(const std::string& name);  // nullopt when unknown

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data buffer, [begin, end)
  uint64_t end = 0;
  int64_t numel() const;
};

struct Header {
  std::vector<TensorInfo> tensors;  // in header order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + header length
};

// Largest JSON header accepted (the reference implementation's limit, 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Parses and validates a whole file image held in memory; `source` names it in errors.
// This is the fuzz target's entry point: it must throw compacter::Error on any bad input and
// never read outside [data, data + size).
Header parse_header(const uint8_t* data, size_t size, const std::string& source);

// The header length N stored in the first 8 bytes (`first8`, ignored when file_size < 8) of a
// file of `file_size` bytes; throws Error when the file is too short or N does not fit.
uint64_t read_header_length(const uint8_t* first8, uint64_t file_size, const std::string& source);

// Validates the `length` bytes of JSON header text of a file of `file_size` bytes (the JSON
// starts at byte 8): what File::open uses so that it reads only the header, not the data.
Header parse_header_json(const char* json, size_t length, uint64_t file_size,
                         const std::string& source);

}  // namespace compacter::safetensors
