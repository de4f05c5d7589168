// The zip reader of zip_archive.h. Layout (PKWARE APPNOTE 6.3, sections 4.3.7-4.3.16):
//   [local header 30 B + name + extra][data] ... [central directory entries 46 B + name + extra
//   + comment] ... [zip64 end record 56 B][zip64 locator 20 B][end record 22 B + comment]
// torch.save (miniz) writes stored entries with data descriptors (the sizes and CRC are in the
// central directory, not the local header), pads each local header's extra field so the data
// is 64-byte aligned, and writes the zip64 end records even for small files.
#include "compacter/io/zip_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>

#include "compacter/core/error.h"

namespace compacter::zip {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50;
constexpr uint32_t kLocator64Sig = 0x07064b50;
constexpr size_t kEndBytes = 22, kLocatorBytes = 20, kEnd64Bytes = 56;
constexpr size_t kCentralBytes = 46, kLocalBytes = 30;

uint16_t u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t u64(const uint8_t* p) {
  return u32(p) | (static_cast<uint64_t>(u32(p + 4)) << 32);
}

// a + b <= limit, without overflow.
bool fits(uint64_t a, uint64_t b, uint64_t limit) {
  return a <= limit && b <= limit - a;
}

std::string method_name(uint16_t m) {
  switch (m) {
    case 8:
      return "deflate";
    case 9:
      return "deflate64";
    case 12:
      return "bzip2";
    case 14:
      return "lzma";
    case 93:
      return "zstd";
    case 95:
      return "xz";
    default:
      return "method " + std::to_string(m);
  }
}

// The slice-by-8 tables of the reflected CRC-32.
struct CrcTables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (size_t s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

// The zip64 extended information extra field (id 1) replaces the 32-bit fields that hold
// 0xFFFFFFFF, in this order: uncompressed size, compressed size, local header offset.
void apply_zip64_extra(const uint8_t* extra, size_t n, uint64_t& usize, uint64_t& csize,
                       uint64_t& offset, const std::string& where) {
  const bool need_u = usize == 0xFFFFFFFFu, need_c = csize == 0xFFFFFFFFu,
             need_o = offset == 0xFFFFFFFFu;
  if (!need_u && !need_c && !need_o) return;
  size_t pos = 0;
  while (pos + 4 <= n) {
    const uint16_t id = u16(extra + pos), len = u16(extra + pos + 2);
    check(pos + 4 + len <= n, where, ": extra field runs past its end");
    if (id == 1) {
      const uint8_t* p = extra + pos + 4;
      size_t left = len;
      auto take = [&](uint64_t& v) {
        check(left >= 8, where, ": zip64 extra field too short");
        v = u64(p);
        p += 8;
        left -= 8;
      };
      if (need_u) take(usize);
      if (need_c) take(csize);
      if (need_o) take(offset);
      return;
    }
    pos += 4 + len;
  }
  throw Error(cat(where, ": sizes or offset are 0xFFFFFFFF but there is no zip64 extra field"));
}

}  // namespace

uint32_t crc32(uint32_t crc, const void* data, size_t n) {
  static const CrcTables tables;
  const auto& t = tables.t;
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (n >= 8) {
    const uint32_t lo = c ^ u32(p), hi = u32(p + 4);
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
        t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

bool looks_like_zip(const uint8_t* data, size_t n) {
  return n >= 4 && (u32(data) == kLocalSig || u32(data) == kEndSig);
}

// ---- sources -------------------------------------------------------------------------------

void MemorySource::read(uint64_t offset, size_t n, void* dst) const {
  check(fits(offset, n, size_), name(), ": read of ", n, " bytes at offset ", offset,
        " goes past the end (", size_, " bytes)");
  if (n > 0) std::memcpy(dst, data_ + offset, n);
}

std::shared_ptr<FileSource> FileSource::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  check(fd >= 0, path, ": cannot open for reading: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(cat(path, ": not a regular file"));
  }
  return std::shared_ptr<FileSource>(new FileSource(path, fd, static_cast<uint64_t>(st.st_size)));
}

FileSource::~FileSource() {
  ::close(fd_);
}

void FileSource::read(uint64_t offset, size_t n, void* dst) const {
  check(fits(offset, n, size_), name(), ": read of ", n, " bytes at offset ", offset,
        " goes past the end (", size_, " bytes)");
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t got = ::pread(fd_, p, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    check(got >= 0, name(), ": read failed: ", std::strerror(errno));
    check(got > 0, name(), ": file ended at byte ", offset, " (shorter than when it was opened?)");
    p += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<size_t>(got);
  }
}

// ---- archive -------------------------------------------------------------------------------

Archive Archive::open(std::shared_ptr<const ByteSource> source) {
  const ByteSource& src = *source;
  const std::string& where = src.name();
  const uint64_t size = src.size();
  check(size >= kEndBytes, where, ": ", size, " bytes, too short for a zip archive");

  // The end record: the last signature in the final 22 + 65535 bytes whose comment fits.
  const size_t tail_len = static_cast<size_t>(std::min<uint64_t>(size, kEndBytes + 0xFFFF));
  std::vector<uint8_t> tail(tail_len);
  src.read(size - tail_len, tail_len, tail.data());
  size_t end_pos = tail_len;  // within tail
  for (size_t i = tail_len - kEndBytes + 1; i-- > 0;) {
    if (u32(&tail[i]) == kEndSig && i + kEndBytes + u16(&tail[i + 20]) <= tail_len) {
      end_pos = i;
      break;
    }
  }
  check(end_pos < tail_len, where,
        ": no zip end-of-central-directory record (not a zip archive, or truncated)");
  const uint8_t* e = &tail[end_pos];
  const uint64_t end_offset = size - tail_len + end_pos;
  uint64_t disk = u16(e + 4), cd_disk = u16(e + 6), n_disk = u16(e + 8), n_total = u16(e + 10);
  uint64_t cd_size = u32(e + 12), cd_offset = u32(e + 16);
  uint64_t cd_limit = end_offset;  // the central directory ends before the end records

  // zip64: a locator right before the end record points to the zip64 end record.
  if (end_offset >= kLocatorBytes) {
    uint8_t loc[kLocatorBytes];
    src.read(end_offset - kLocatorBytes, kLocatorBytes, loc);
    if (u32(loc) == kLocator64Sig) {
      const uint64_t end64 = u64(loc + 8);
      check(u32(loc + 4) == 0 && u32(loc + 16) <= 1, where,
            ": multi-disk (split) zip archives are not supported");
      check(fits(end64, kEnd64Bytes, end_offset - kLocatorBytes), where,
            ": zip64 end record offset ", end64, " is out of range");
      uint8_t r[kEnd64Bytes];
      src.read(end64, kEnd64Bytes, r);
      check(u32(r) == kEnd64Sig, where, ": no zip64 end record at offset ", end64);
      disk = u32(r + 16);
      cd_disk = u32(r + 20);
      n_disk = u64(r + 24);
      n_total = u64(r + 32);
      cd_size = u64(r + 40);
      cd_offset = u64(r + 48);
      cd_limit = end64;
    }
  }
  check(disk == 0 && cd_disk == 0 && n_disk == n_total, where,
        ": multi-disk (split) zip archives are not supported");
  check(fits(cd_offset, cd_size, cd_limit), where, ": central directory [", cd_offset, ", +",
        cd_size, ") is out of range (it must end by byte ", cd_limit, ")");
  check(cd_size <= kMaxCentralDirectoryBytes, where, ": central directory of ", cd_size,
        " bytes is larger than the limit (", kMaxCentralDirectoryBytes, ")");
  check(n_total <= cd_size / kCentralBytes, where, ": ", n_total,
        " entries cannot fit a central directory of ", cd_size, " bytes");

  std::vector<uint8_t> cd(static_cast<size_t>(cd_size));
  src.read(cd_offset, cd.size(), cd.data());
  Archive a;
  a.source_ = std::move(source);
  a.entries_.reserve(static_cast<size_t>(n_total));
  size_t pos = 0;
  for (uint64_t k = 0; k < n_total; ++k) {
    const std::string at = cat(where, ": zip entry ", k);
    check(pos + kCentralBytes <= cd.size(), at, ": central directory ends early");
    const uint8_t* c = &cd[pos];
    check(u32(c) == kCentralSig, at, ": bad central directory signature");
    const uint16_t flags = u16(c + 8), method = u16(c + 10);
    const size_t name_len = u16(c + 28), extra_len = u16(c + 30), comment_len = u16(c + 32);
    check(pos + kCentralBytes + name_len + extra_len + comment_len <= cd.size(), at,
          ": central directory ends early");
    Entry entry;
    entry.name.assign(reinterpret_cast<const char*>(c + kCentralBytes), name_len);
    const std::string at_name = cat(where, ": zip entry \"", entry.name, "\"");
    check(!entry.name.empty(), at, ": empty name");
    check((flags & 1) == 0 && (flags & 0x40) == 0, at_name,
          ": encrypted entries are not supported");
    check(method == 0, at_name, ": compressed (", method_name(method),
          "); PyTorch checkpoints store entries uncompressed and only those are supported "
          "(was the file re-zipped? load and save it again with torch.save)");
    uint64_t csize = u32(c + 20), usize = u32(c + 24), offset = u32(c + 42);
    apply_zip64_extra(c + kCentralBytes + name_len, extra_len, usize, csize, offset, at_name);
    check(csize == usize, at_name, ": stored entry with compressed size ", csize,
          " != uncompressed size ", usize);
    entry.size = usize;
    entry.crc32 = u32(c + 16);
    pos += kCentralBytes + name_len + extra_len + comment_len;

    // The local header: its name and extra field lengths decide where the data starts.
    check(fits(offset, kLocalBytes, cd_offset), at_name, ": local header offset ", offset,
          " is out of range");
    uint8_t lh[kLocalBytes];
    src.read(offset, kLocalBytes, lh);
    check(u32(lh) == kLocalSig, at_name, ": no local header at offset ", offset);
    check(u16(lh + 8) == 0, at_name, ": local header says compressed (", method_name(u16(lh + 8)),
          ")");
    const uint64_t lname = u16(lh + 26), lextra = u16(lh + 28);
    check(lname == name_len, at_name, ": local header names a different entry");
    std::string local_name(name_len, '\0');
    src.read(offset + kLocalBytes, name_len, local_name.data());
    check(local_name == entry.name, at_name, ": local header names a different entry (\"",
          local_name, "\")");
    entry.data_offset = offset + kLocalBytes + lname + lextra;
    check(fits(entry.data_offset, entry.size, cd_offset), at_name, ": data [", entry.data_offset,
          ", +", entry.size, ") runs into the central directory at ", cd_offset,
          " (truncated or corrupt file)");
    a.entries_.push_back(std::move(entry));
  }
  a.sorted_.resize(a.entries_.size());
  for (size_t i = 0; i < a.sorted_.size(); ++i) a.sorted_[i] = i;
  std::sort(a.sorted_.begin(), a.sorted_.end(),
            [&](size_t x, size_t y) { return a.entries_[x].name < a.entries_[y].name; });
  for (size_t i = 1; i < a.sorted_.size(); ++i) {
    const std::string& n = a.entries_[a.sorted_[i]].name;
    check(n != a.entries_[a.sorted_[i - 1]].name, where, ": zip entry \"", n, "\" appears twice");
  }
  return a;
}

const Entry* Archive::find(const std::string& name) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), name,
                             [&](size_t i, const std::string& n) { return entries_[i].name < n; });
  if (it == sorted_.end() || entries_[*it].name != name) return nullptr;
  return &entries_[*it];
}

void Archive::read(const Entry& e, void* dst) const {
  source_->read(e.data_offset, static_cast<size_t>(e.size), dst);
  const uint32_t crc = crc32(0, dst, static_cast<size_t>(e.size));
  check(crc == e.crc32, name(), ": zip entry \"", e.name, "\": CRC-32 mismatch (", crc,
        " != ", e.crc32, "): the file is corrupt");
}

std::string Archive::read_string(const Entry& e) const {
  std::string out(static_cast<size_t>(e.size), '\0');
  read(e, out.data());
  return out;
}

}  // namespace compacter::zip
