// A reader for the zip container that PyTorch's torch.save (since 1.6) writes: the central
// directory (with zip64 records where the writer used them), entries stored uncompressed and
// read by offset, each checked against its CRC-32. Compressed, encrypted or multi-disk archives
// are refused by name: torch.save never writes them. Every offset and size is checked against
// the file's size before anything is allocated or read. No torch here (the fuzz target compiles
// this file on its own).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace compacter::zip {

// Random access to the bytes of a file on disk or of a buffer in memory.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at `offset` into dst; throws Error when they are not all inside.
  virtual void read(uint64_t offset, size_t n, void* dst) const = 0;
  const std::string& name() const { return name_; }  // for messages

 protected:
  explicit ByteSource(std::string name) : name_(std::move(name)) {}

 private:
  std::string name_;
};

// A buffer owned by the caller, which must outlive the source.
class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size, std::string name)
      : ByteSource(std::move(name)), data_(data), size_(size) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, size_t n, void* dst) const override;

 private:
  const uint8_t* data_;
  size_t size_;
};

// A regular file, read with pread (its size is taken once, at open).
class FileSource : public ByteSource {
 public:
  static std::shared_ptr<FileSource> open(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, size_t n, void* dst) const override;

 private:
  FileSource(std::string path, int fd, uint64_t size)
      : ByteSource(std::move(path)), fd_(fd), size_(size) {}
  int fd_;
  uint64_t size_;
};

struct Entry {
  std::string name;
  uint64_t size = 0;         // bytes (stored: as many in the file as in the entry)
  uint64_t data_offset = 0;  // where the entry's bytes start in the archive
  uint32_t crc32 = 0;        // from the central directory
};

// Largest central directory accepted (torch's for a model with thousands of tensors is < 1 MB).
constexpr uint64_t kMaxCentralDirectoryBytes = uint64_t{256} << 20;

class Archive {
 public:
  // Reads and validates the central directory and every entry's local header.
  static Archive open(std::shared_ptr<const ByteSource> source);

  const std::string& name() const { return source_->name(); }
  const std::vector<Entry>& entries() const { return entries_; }  // in central-directory order
  const Entry* find(const std::string& name) const;               // nullptr when absent
  // Copies the entry's e.size bytes into dst and checks them against the entry's CRC-32.
  void read(const Entry& e, void* dst) const;
  std::string read_string(const Entry& e) const;  // the same, into a string

 private:
  std::shared_ptr<const ByteSource> source_;
  std::vector<Entry> entries_;
  std::vector<size_t> sorted_;  // indices into entries_, by name
};

// True when the first bytes are a zip local file header or an empty archive's end record.
bool looks_like_zip(const uint8_t* data, size_t n);

// The CRC-32 of zip (ISO 3309, reflected polynomial 0xEDB88320), continued from `crc`.
uint32_t crc32(uint32_t crc, const void* data, size_t n);

}  // namespace compacter::zip
