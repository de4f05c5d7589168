// Hand-built PyTorch checkpoint bytes (torch_bin_bytes.h). Zip layout: PKWARE APPNOTE 4.3;
// pickle opcodes: CPython's Lib/pickle.py.
#include "io/torch_bin_bytes.h"

#include <cstring>

namespace compacter::testing {

namespace {

void le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

uint32_t bitwise_crc32(const std::string& bytes) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char ch : bytes) {
    c ^= ch;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
  }
  return ~c;
}

std::string make_zip(const std::vector<ZipItem>& items, bool zip64) {
  std::string out, central;
  for (const ZipItem& it : items) {
    const uint64_t offset = out.size();
    const uint32_t crc = bitwise_crc32(it.data);
    le(out, 0x04034b50, 4);
    le(out, 20, 2);
    le(out, 0, 2);  // flags
    le(out, it.method, 2);
    le(out, 0, 4);  // time, date
    le(out, crc, 4);
    le(out, it.data.size(), 4);
    le(out, it.data.size(), 4);
    le(out, it.name.size(), 2);
    le(out, 0, 2);
    out += it.name + it.data;

    le(central, 0x02014b50, 4);
    le(central, 45, 2);
    le(central, 45, 2);
    le(central, 0, 2);
    le(central, it.method, 2);
    le(central, 0, 4);
    le(central, crc, 4);
    le(central, zip64 ? 0xFFFFFFFFu : it.data.size(), 4);
    le(central, zip64 ? 0xFFFFFFFFu : it.data.size(), 4);
    le(central, it.name.size(), 2);
    le(central, zip64 ? 28 : 0, 2);  // extra
    le(central, 0, 2);               // comment
    le(central, 0, 2);               // disk
    le(central, 0, 2);
    le(central, 0, 4);
    le(central, zip64 ? 0xFFFFFFFFu : offset, 4);
    central += it.name;
    if (zip64) {
      le(central, 1, 2);
      le(central, 24, 2);
      le(central, it.data.size(), 8);  // uncompressed
      le(central, it.data.size(), 8);  // compressed
      le(central, offset, 8);
    }
  }
  const uint64_t cd_offset = out.size();
  out += central;
  if (zip64) {
    const uint64_t end64 = out.size();
    le(out, 0x06064b50, 4);
    le(out, 44, 8);
    le(out, 45, 2);
    le(out, 45, 2);
    le(out, 0, 4);
    le(out, 0, 4);
    le(out, items.size(), 8);
    le(out, items.size(), 8);
    le(out, central.size(), 8);
    le(out, cd_offset, 8);
    le(out, 0x07064b50, 4);
    le(out, 0, 4);
    le(out, end64, 8);
    le(out, 1, 4);
  }
  le(out, 0x06054b50, 4);
  le(out, 0, 4);
  le(out, zip64 ? 0xFFFF : items.size(), 2);
  le(out, zip64 ? 0xFFFF : items.size(), 2);
  le(out, zip64 ? 0xFFFFFFFFu : central.size(), 4);
  le(out, zip64 ? 0xFFFFFFFFu : cd_offset, 4);
  le(out, 0, 2);
  return out;
}

PickleWriter& PickleWriter::str(const std::string& s) {
  b += 'X';
  le(b, s.size(), 4);
  b += s;
  return *this;
}

PickleWriter& PickleWriter::integer(int64_t v) {
  if (v >= 0 && v < 256) {
    b += 'K';
    le(b, static_cast<uint64_t>(v), 1);
  } else if (v >= 0 && v < 65536) {
    b += 'M';
    le(b, static_cast<uint64_t>(v), 2);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    b += 'J';
    le(b, static_cast<uint64_t>(v), 4);
  } else {
    b += '\x8a';
    b += '\x08';
    le(b, static_cast<uint64_t>(v), 8);
  }
  return *this;
}

PickleWriter& PickleWriter::int_tuple(const std::vector<int64_t>& v) {
  if (v.empty()) return op(')');
  op('(');
  for (int64_t x : v) integer(x);
  return op('t');
}

std::string state_dict_pickle(const std::vector<TensorSpec>& tensors) {
  PickleWriter p;
  p.proto2().global("collections", "OrderedDict").put(0).op(')').op('R').put(1).op('(');
  for (const TensorSpec& t : tensors) {
    p.str(t.name).global("torch._utils", "_rebuild_tensor_v2").op('(');
    p.op('(').str("storage").global("torch", t.storage_type).str(t.key).str("cpu");
    p.integer(t.storage_numel).op('t').op('Q');  // the persistent id, then BINPERSID
    p.integer(t.offset).int_tuple(t.size).int_tuple(t.stride).op('\x89');
    p.get(0).op(')').op('R');  // OrderedDict(): no backward hooks
    p.op('t').op('R');
  }
  p.op('u').op('.');
  return p.b;
}

std::string torch_zip(const std::string& pickle,
                      const std::vector<std::pair<std::string, std::string>>& storages, bool zip64,
                      const std::string& archive) {
  std::vector<ZipItem> items{{archive + "/data.pkl", pickle}};
  for (const auto& [key, bytes] : storages) items.push_back({archive + "/data/" + key, bytes});
  items.push_back({archive + "/version", "3\n"});
  return make_zip(items, zip64);
}

std::string f32_bytes(const std::vector<float>& v) {
  std::string out(v.size() * 4, '\0');
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

}  // namespace compacter::testing
