// Validation of a safetensors header: the u64 length, the JSON text and every tensor entry
// (dtype, shape, byte range, overlaps, duplicates, __metadata__). No torch here: the fuzz
// target compiles this file alone. Every failure is a compacter::Error naming the source file.
#include "compacter/io/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "compacter/core/error.h"
#include "compacter/io/json_keys.h"

namespace compacter::safetensors {

namespace {

// Plain (sorted, O(log n)) objects: ordered_json looks keys up linearly, which a header with
// many entries turns quadratic. Header order is recorded by the parse callback instead.
using Json = nlohmann::json;

// Nesting deeper than this is rejected before parsing (a valid header nests 3 deep).
constexpr int kMaxDepth = 32;

constexpr const char* kKnownDTypes = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

// A JSON value for an error message, cut short when long.
std::string shown(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

const char* kind(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a non-integer number";
    default:
      return "an unexpected value";
  }
}

// Rejects absurd nesting with a linear scan, so the JSON parser never recurses deeply.
void check_depth(const char* p, size_t n, const std::string& source) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      check(++depth <= kMaxDepth, source, ": header JSON nests deeper than ", kMaxDepth,
            " levels (a safetensors header nests 3)");
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

// A non-negative integer that fits `limit`, or an Error saying what was found instead; `label()`
// names the value (built only on failure: shapes may hold many dimensions).
template <typename Label>
uint64_t non_negative(const Json& v, uint64_t limit, const Label& label) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > limit)
      throw Error(cat(label(), ": expected an integer at most ", limit, ", found ", u));
    return u;
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) throw Error(cat(label(), ": expected a non-negative integer, found ", i));
    if (static_cast<uint64_t>(i) > limit)
      throw Error(cat(label(), ": expected an integer at most ", limit, ", found ", i));
    return static_cast<uint64_t>(i);
  }
  throw Error(cat(label(), ": expected a non-negative integer, found ", kind(v), " ", shown(v)));
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::map<std::string, std::string> parse_metadata(const Json& v, const std::string& source) {
  const std::string where = cat(source, ": \"__metadata__\"");
  if (!v.is_object())
    throw Error(cat(where, ": expected an object of strings, found ", kind(v), " ", shown(v)));
  std::map<std::string, std::string> out;
  for (const auto& item : v.items()) {
    if (!item.value().is_string())
      throw Error(cat(where, " entry \"", item.key(), "\": expected a string, found ",
                      kind(item.value()), " ", shown(item.value())));
    out[item.key()] = item.value().get<std::string>();
  }
  return out;
}

TensorInfo parse_tensor(const std::string& name, const Json& v, uint64_t buffer_size,
                        const std::string& source) {
  const std::string where = cat(source, ": tensor \"", name, "\"");
  check(!name.empty(), source, ": a tensor has an empty name");
  if (!v.is_object())
    throw Error(cat(where, ": expected an object with dtype, shape and data_offsets, found ",
                    kind(v), " ", shown(v)));
  for (const auto& item : v.items()) {
    const std::string& k = item.key();
    check(k == "dtype" || k == "shape" || k == "data_offsets", where, ": unexpected field \"", k,
          "\" (expected only dtype, shape and data_offsets)");
  }
  auto field = [&](const char* f) -> const Json& {
    auto it = v.find(f);
    check(it != v.end(), where, ": missing field \"", f, "\"");
    return *it;
  };
  TensorInfo t;
  t.name = name;

  const Json& dtype = field("dtype");
  if (!dtype.is_string())
    throw Error(
        cat(where, ": field \"dtype\": expected a string, found ", kind(dtype), " ", shown(dtype)));
  const std::optional<DType> d = dtype_from_name(dtype.get_ref<const std::string&>());
  if (!d.has_value())
    throw Error(cat(where, ": field \"dtype\": unknown dtype ", shown(dtype), " (expected one of ",
                    kKnownDTypes, ")"));
  t.dtype = *d;

  const Json& shape = field("shape");
  if (!shape.is_array())
    throw Error(cat(where, ": field \"shape\": expected an array of integers, found ", kind(shape),
                    " ", shown(shape)));
  constexpr uint64_t kMaxI64 = std::numeric_limits<int64_t>::max();
  uint64_t numel = 1;
  uint64_t extent = 1;  // product of max(dim, 1): bounds torch's stride arithmetic too
  for (size_t i = 0; i < shape.size(); ++i) {
    const uint64_t dim = non_negative(
        shape[i], kMaxI64, [&] { return cat(where, ": field \"shape\" dimension ", i); });
    t.shape.push_back(static_cast<int64_t>(dim));
    const uint64_t e = std::max<uint64_t>(dim, 1);
    if (extent > kMaxI64 / e)
      throw Error(
          cat(where, ": field \"shape\" ", shown(shape), ": element count overflows 64 bits"));
    extent *= e;
    numel *= dim;
  }
  const uint64_t elem = dtype_size(t.dtype);
  if (numel > kMaxI64 / elem)
    throw Error(cat(where, ": shape ", shape_text(t.shape), " of ", dtype_name(t.dtype),
                    ": byte size overflows 64 bits"));
  const uint64_t nbytes = numel * elem;

  const Json& offsets = field("data_offsets");
  if (!(offsets.is_array() && offsets.size() == 2))
    throw Error(cat(
        where, ": field \"data_offsets\": expected an array of two integers [begin, end], found ",
        kind(offsets), " ", shown(offsets)));
  t.begin = non_negative(offsets[0], std::numeric_limits<uint64_t>::max(),
                         [&] { return cat(where, ": field \"data_offsets\" begin"); });
  t.end = non_negative(offsets[1], std::numeric_limits<uint64_t>::max(),
                       [&] { return cat(where, ": field \"data_offsets\" end"); });
  check(t.begin <= t.end, where, ": field \"data_offsets\": expected begin <= end, found [",
        t.begin, ", ", t.end, "]");
  check(t.end <= buffer_size, where, ": field \"data_offsets\" [", t.begin, ", ", t.end,
        "] goes beyond the data buffer of ", buffer_size, " bytes");
  if (t.end - t.begin != nbytes)
    throw Error(cat(where, ": field \"data_offsets\" [", t.begin, ", ", t.end, "] spans ",
                    t.end - t.begin, " bytes, but shape ", shape_text(t.shape), " of ",
                    dtype_name(t.dtype), " needs ", nbytes));
  return t;
}

// SAX handler recording the keys of the top-level object in order, and the first duplicate.
struct TopLevelKeys : JsonKeys {
  std::vector<std::string> order;
  std::set<std::string> seen;
  std::optional<std::string> duplicate;

  bool key(Json::string_t& k) {
    if (depth == 1 && !duplicate) {
      if (seen.insert(k).second) {
        order.push_back(k);
      } else {
        duplicate = k;
      }
    }
    return true;
  }
};

// Byte ranges may leave gaps but must not overlap (empty ranges occupy nothing).
void check_overlaps(const std::vector<TensorInfo>& tensors, const std::string& source) {
  std::vector<const TensorInfo*> sorted;
  for (const TensorInfo& t : tensors)
    if (t.end > t.begin) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const TensorInfo& a = *sorted[i - 1];
    const TensorInfo& b = *sorted[i];
    check(b.begin >= a.end, source, ": tensors \"", a.name, "\" [", a.begin, ", ", a.end,
          ") and \"", b.name, "\" [", b.begin, ", ", b.end, ") overlap in the data buffer");
  }
}

}  // namespace

std::string dtype_name(DType d) {
  switch (d) {
    case DType::F64:
      return "F64";
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
    case DType::I16:
      return "I16";
    case DType::I8:
      return "I8";
    case DType::U8:
      return "U8";
    case DType::BOOL:
      return "BOOL";
  }
  throw Error(cat("invalid safetensors dtype ", static_cast<int>(d)));
}

size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64:
    case DType::I64:
      return 8;
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
    case DType::I16:
      return 2;
    case DType::I8:
    case DType::U8:
    case DType::BOOL:
      return 1;
  }
  throw Error(cat("invalid safetensors dtype ", static_cast<int>(d)));
}

std::optional<DType> dtype_from_name(const std::string& name) {
  for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32,
                  DType::I16, DType::I8, DType::U8, DType::BOOL}) {
    if (dtype_name(d) == name) return d;
  }
  return std::nullopt;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // cannot overflow: checked when parsed
  return n;
}

uint64_t read_header_length(const uint8_t* first8, uint64_t file_size, const std::string& source) {
  check(file_size >= 8, source, ": file is ", file_size,
        " bytes, too short for the 8-byte header length of a safetensors file");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | first8[i];
  if (n > kMaxHeaderBytes || n > file_size - 8) {
    // Name the other weight formats (whose first bytes never make a valid length): a zip
    // archive (torch.save since PyTorch 1.6: pytorch_model.bin) or torch.save's legacy pickle.
    check(!(first8[0] == 'P' && first8[1] == 'K' && first8[2] == 3 && first8[3] == 4), source,
          ": a zip archive, as PyTorch's torch.save writes (pytorch_model.bin), not a safetensors "
          "file; model folders with pytorch_model.bin load as they are, and `compacter convert` "
          "writes model.safetensors from them");
    static const uint8_t kLegacy[8] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46};
    check(std::memcmp(first8, kLegacy, 8) != 0, source,
          ": a PyTorch checkpoint in the legacy format of PyTorch before 1.6 (a pickle), not a "
          "safetensors file");
  }
  check(n <= kMaxHeaderBytes, source, ": header length ", n, " is absurdly large (limit ",
        kMaxHeaderBytes, " bytes): not a safetensors file?");
  check(n <= file_size - 8, source, ": header length ", n, " goes beyond the end of the file (",
        file_size, " bytes, so at most ", file_size - 8, ")");
  return n;
}

Header parse_header_json(const char* json, size_t length, uint64_t file_size,
                         const std::string& source) {
  check(length <= kMaxHeaderBytes && length + 8 <= file_size, source, ": header length ", length,
        " does not fit a file of ", file_size, " bytes");
  check_depth(json, length, source);

  // Pass 1 lists the top-level keys in header order (the parsed object is sorted) and finds
  // duplicates (which would silently overwrite each other). Pass 2 builds the DOM. Both are
  // linear; nlohmann's callback parser is not (it rescans the parent after every object).
  TopLevelKeys keys;
  Json j;
  try {
    Json::sax_parse(json, json + length, &keys);
    j = Json::parse(json, json + length);
  } catch (const Json::exception& e) {
    throw Error(cat(source, ": header is not valid JSON: ", e.what()));
  }
  if (!j.is_object())
    throw Error(cat(source, ": header: expected a JSON object, found ", kind(j), " ", shown(j)));
  check(!keys.duplicate, source, ": tensor \"", keys.duplicate.value_or(""),
        "\" appears more than once in the header");

  Header h;
  h.data_start = 8 + length;
  const uint64_t buffer_size = file_size - h.data_start;
  check(keys.order.size() == j.size(), source, ": header keys could not be listed");
  for (const std::string& key : keys.order) {
    const Json& value = j.at(key);
    if (key == "__metadata__") {
      h.metadata = parse_metadata(value, source);
    } else {
      h.tensors.push_back(parse_tensor(key, value, buffer_size, source));
    }
  }
  check_overlaps(h.tensors, source);
  return h;
}

Header parse_header(const uint8_t* data, size_t size, const std::string& source) {
  const uint64_t n = read_header_length(data, size, source);
  return parse_header_json(reinterpret_cast<const char*>(data) + 8, static_cast<size_t>(n), size,
                           source);
}

}  // namespace compacter::safetensors
