// Tests of src/compacter/io/safetensors*: bit-exact round trips of every dtype, metadata, the
// on-disk layout read back without our reader, atomic save, sharded checkpoints, one test per
// kind of broken file (bytes crafted by hand), the tiny-t5 checkpoint and `compacter inspect`.
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/core/fingerprint.h"
#include "compacter/io/safetensors.h"
#include "compacter/io/t5_config.h"
#include "support/test_support.h"

namespace compacter {
namespace {

namespace fs = std::filesystem;
namespace st = safetensors;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

// A safetensors file image: u64 little-endian header length, header text, data buffer.
std::string image(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>(static_cast<uint64_t>(header.size()) >> (8 * i));
  return out + header + data;
}

// Expects fn() to throw compacter::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "message lacks \"" << p << "\": " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected compacter::Error, got another exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "expected compacter::Error, nothing was thrown";
}

// Writes `bytes` as dir/name and expects File::open to fail naming the file and `parts`.
void expect_open_error(const std::string& bytes, const std::vector<std::string>& parts) {
  TempDir dir;
  const std::string path = dir.file("broken.safetensors");
  write_file(path, bytes);
  std::vector<std::string> all = parts;
  all.push_back(path);
  expect_error([&] { st::File::open(path); }, all);
  // The in-memory parser (the fuzz target's entry) agrees.
  expect_error(
      [&] {
        st::parse_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "mem");
      },
      parts);
}

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || !a.sizes().equals(b.sizes())) return false;
  if (a.numel() == 0) return true;
  const torch::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * ca.element_size()) == 0;
}

std::vector<std::pair<std::string, torch::Tensor>> every_dtype() {
  torch::manual_seed(0);
  const float inf = std::numeric_limits<float>::infinity();
  torch::Tensor special = torch::tensor({0.0f, -0.0f, inf, -inf, std::nanf(""), 1e-40f, 3.5f});
  return {
      {"f32", torch::cat({torch::randn({3, 5}).flatten(), special})},
      {"f64", torch::randn({2, 3}, torch::kDouble)},
      {"f16", torch::randn({4, 2}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
      {"i64", torch::tensor({std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{0},
                             std::numeric_limits<int64_t>::max()})},
      {"i32", torch::tensor({std::numeric_limits<int32_t>::min(), -7, 0, 123456789})},
      {"i16", torch::tensor({-32768, -1, 0, 32767}, torch::kShort)},
      {"i8", torch::tensor({-128, -1, 0, 127}, torch::kChar)},
      {"u8", torch::tensor({0, 1, 200, 255}, torch::kByte)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(2.5f)},
      {"empty", torch::zeros({0, 3})},
  };
}

// ---- round trips -------------------------------------------------------------------------------

TEST(SafetensorsRoundTrip, EveryDtypeIsBitExact) {
  TempDir dir;
  const std::string path = dir.file("all.safetensors");
  const auto tensors = every_dtype();
  st::save(path, tensors);
  const st::File f = st::File::open(path);
  ASSERT_EQ(f.header().tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    EXPECT_EQ(f.header().tensors[i].name, name) << "header keeps the given order";
    const torch::Tensor back = f.load(name);
    EXPECT_EQ(back.device().type(), torch::kCPU);
    EXPECT_TRUE(same_bytes(back, t)) << name;
  }
  EXPECT_EQ(st::dtype_name(f.info("bf16").dtype), "BF16");
  EXPECT_EQ(f.info("scalar").shape, std::vector<int64_t>{});
  EXPECT_EQ(f.info("empty").numel(), 0);
}

TEST(SafetensorsRoundTrip, MetadataAndNonContiguousTensors) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  const torch::Tensor base = torch::arange(12, torch::kFloat).reshape({3, 4});
  const torch::Tensor t = base.t();  // not contiguous
  st::save(path, {{"t", t}, {"slice", base.index({torch::indexing::Slice(), 1})}},
           {{"format", "pt"}, {"note", "ünïcode"}});
  const st::File f = st::File::open(path);
  EXPECT_EQ(f.header().metadata,
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "ünïcode"}}));
  EXPECT_TRUE(torch::equal(f.load("t"), t));
  EXPECT_TRUE(torch::equal(f.load("slice"), torch::tensor({1.0f, 5.0f, 9.0f})));
}

TEST(SafetensorsRoundTrip, FloatDtypeConvertsOnlyFloatingTensors) {
  TempDir dir;
  const std::string path = dir.file("h.safetensors");
  const torch::Tensor w = torch::randn({3, 3});
  const torch::Tensor ids = torch::tensor({1, 2, 3}, torch::kLong);
  st::save(path, {{"w", w}, {"ids", ids}}, {}, torch::kHalf);
  const st::File f = st::File::open(path);
  EXPECT_EQ(f.info("w").dtype, st::DType::F16);
  EXPECT_EQ(f.info("ids").dtype, st::DType::I64);
  EXPECT_TRUE(same_bytes(f.load("w"), w.to(torch::kHalf)));
  EXPECT_TRUE(torch::equal(f.load("ids"), ids));
  expect_error([&] { st::save(path, {{"w", w}}, {}, torch::kLong); }, {"float_dtype"});
}

TEST(SafetensorsFormat, WrittenFileReadsWithoutOurReader) {
  TempDir dir;
  const std::string path = dir.file("raw.safetensors");
  const torch::Tensor a = torch::tensor({1.0f, -2.0f, 0.5f, 8.0f}).reshape({2, 2});
  const torch::Tensor b = torch::tensor({7, -9}, torch::kShort);
  st::save(path, {{"a", a}, {"b", b}}, {{"format", "pt"}});
  const std::string bytes = read_file(path);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u) << "header padded to a multiple of 8";
  ASSERT_LE(8 + n, bytes.size());
  const std::string text = bytes.substr(8, n);
  EXPECT_EQ(text.find_last_not_of(' ') + 1, text.rfind('}') + 1) << "padding is spaces";
  const nlohmann::json h = nlohmann::json::parse(text);
  EXPECT_EQ(h["__metadata__"], (nlohmann::json{{"format", "pt"}}));
  EXPECT_EQ(h["a"]["dtype"], "F32");
  EXPECT_EQ(h["a"]["shape"], (nlohmann::json{2, 2}));
  EXPECT_EQ(h["a"]["data_offsets"], (nlohmann::json{0, 16}));
  EXPECT_EQ(h["b"]["dtype"], "I16");
  EXPECT_EQ(h["b"]["shape"], (nlohmann::json{2}));
  EXPECT_EQ(h["b"]["data_offsets"], (nlohmann::json{16, 20}));
  ASSERT_EQ(bytes.size(), 8 + n + 20);
  const std::string data = bytes.substr(8 + n);
  float fa[4];
  int16_t fb[2];
  std::memcpy(fa, data.data(), 16);
  std::memcpy(fb, data.data() + 16, 4);
  EXPECT_EQ(fa[0], 1.0f);
  EXPECT_EQ(fa[1], -2.0f);
  EXPECT_EQ(fa[3], 8.0f);
  EXPECT_EQ(fb[0], 7);
  EXPECT_EQ(fb[1], -9);
  // No metadata given: no "__metadata__" key.
  st::save(path, {{"a", a}});
  const std::string again = read_file(path);
  EXPECT_EQ(again.find("__metadata__"), std::string::npos);
}

// ---- save --------------------------------------------------------------------------------------

TEST(SafetensorsSave, FailedSaveLeavesOldFileIntact) {
  TempDir dir;
  const std::string path = dir.file("keep.safetensors");
  st::save(path, {{"x", torch::ones({2})}});
  const std::string before = read_file(path);
  expect_error(
      [&] {
        st::save(path, {{"y", torch::ones({3})}, {"y", torch::zeros({1})}});
      },
      {"duplicate", "\"y\"", path});
  EXPECT_EQ(read_file(path), before);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename(), "keep.safetensors") << "no temporary file left behind";
  }
  EXPECT_EQ(files, 1u);
}

TEST(SafetensorsSave, RejectsBadNamesDtypesAndDirectories) {
  TempDir dir;
  expect_error(
      [&] {
        st::save(dir.file("a.safetensors"), {{"__metadata__", torch::ones({1})}});
      },
      {"__metadata__"});
  expect_error(
      [&] {
        st::save(dir.file("c.safetensors"),
                 {{"z", torch::ones({2}, torch::TensorOptions().dtype(torch::kComplexFloat))}});
      },
      {"\"z\"", "cannot be stored"});
  expect_error(
      [&] {
        st::save(dir.file("missing/d.safetensors"), {{"x", torch::ones({1})}});
      },
      {"missing/d.safetensors", "temporary"});
  // Renaming onto a directory fails: the temporary file is removed.
  fs::create_directory(dir.file("adir"));
  fs::create_directory(dir.file("adir/inner"));
  expect_error([&] { st::save(dir.file("adir"), {{"x", torch::ones({1})}}); }, {"adir"});
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u) << "only adir is left";
}

// ---- broken files: one test per kind ---------------------------------------------------------

const std::string kOne = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST(SafetensorsBroken, TruncatedFile) {
  expect_open_error(std::string("\x10\x00\x00", 3), {"3 bytes", "8-byte header length"});
  expect_open_error("", {"0 bytes"});
}

TEST(SafetensorsBroken, HeaderLengthBeyondFile) {
  std::string bytes = image(kOne, std::string(8, '\0'));
  bytes[0] = static_cast<char>(200);  // claims 200 bytes of header
  expect_open_error(bytes, {"header length 200", "beyond the end of the file"});
}

TEST(SafetensorsBroken, AbsurdHeaderLength) {
  expect_open_error(std::string(8, '\xff') + "{}", {"header length", "absurdly large"});
}

TEST(SafetensorsBroken, HeaderNotJson) {
  expect_open_error(image(R"({"t": {"dtype": "F32",)"), {"not valid JSON"});
  expect_open_error(image(std::string("{\"t\":\0}", 7)), {"not valid JSON"});
  expect_open_error(image(std::string(100, '[') + std::string(100, ']')), {"nests deeper"});
}

TEST(SafetensorsBroken, HeaderNotObject) {
  expect_open_error(image("[1, 2]"), {"header", "expected a JSON object", "array"});
}

TEST(SafetensorsBroken, EntryNotObject) {
  expect_open_error(image(R"({"t": [1, 2]})"), {"tensor \"t\"", "expected an object"});
}

TEST(SafetensorsBroken, UnknownDtype) {
  expect_open_error(image(R"({"t":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "x"),
                    {"tensor \"t\"", "dtype", "F8_E4M3", "expected one of"});
}

TEST(SafetensorsBroken, NegativeDim) {
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":[2,-1],"data_offsets":[0,0]}})"),
                    {"tensor \"t\"", "shape", "dimension 1", "non-negative", "-1"});
}

TEST(SafetensorsBroken, NonIntegerDim) {
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", "x"),
                    {"tensor \"t\"", "shape", "non-integer", "1.5"});
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}})", "x"),
                    {"tensor \"t\"", "shape", "a string"});
}

TEST(SafetensorsBroken, MissingFields) {
  expect_open_error(image(R"({"t":{"shape":[1],"data_offsets":[0,1]}})", "x"),
                    {"tensor \"t\"", "missing field \"dtype\""});
  expect_open_error(image(R"({"t":{"dtype":"U8","data_offsets":[0,1]}})", "x"),
                    {"tensor \"t\"", "missing field \"shape\""});
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":[1]}})", "x"),
                    {"tensor \"t\"", "missing field \"data_offsets\""});
}

TEST(SafetensorsBroken, WronglyTypedOrExtraFields) {
  expect_open_error(image(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,1]}})", "x"),
                    {"tensor \"t\"", "dtype", "expected a string"});
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":1,"data_offsets":[0,1]}})", "x"),
                    {"tensor \"t\"", "shape", "expected an array"});
  expect_open_error(
      image(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"offset":3}})", "x"),
      {"tensor \"t\"", "unexpected field \"offset\""});
}

TEST(SafetensorsBroken, ByteSizeOverflow) {
  expect_open_error(
      image(R"({"t":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"),
      {"tensor \"t\"", "overflows"});
  expect_open_error(
      image(R"({"t":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})"),
      {"tensor \"t\"", "overflows"});
}

TEST(SafetensorsBroken, OffsetsNotTwoAscendingIntegers) {
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "x"),
                    {"tensor \"t\"", "data_offsets", "two integers"});
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})", "x"),
                    {"tensor \"t\"", "data_offsets", "begin <= end", "[1, 0]"});
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", "x"),
                    {"tensor \"t\"", "data_offsets", "non-negative"});
}

TEST(SafetensorsBroken, OffsetsOutOfRange) {
  expect_open_error(image(kOne, std::string(7, '\0')),
                    {"tensor \"t\"", "data_offsets", "[0, 8]", "data buffer of 7 bytes"});
}

TEST(SafetensorsBroken, OverlappingOffsets) {
  expect_open_error(image(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                          R"("b":{"dtype":"U8","shape":[4],"data_offsets":[3,7]}})",
                          std::string(8, '\0')),
                    {"\"a\"", "\"b\"", "overlap"});
}

TEST(SafetensorsBroken, ByteLengthDisagreesWithShapeAndDtype) {
  expect_open_error(
      image(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
      {"tensor \"t\"", "8 bytes", "shape [3] of F32 needs 12"});
}

TEST(SafetensorsBroken, DuplicateNamesInHeader) {
  expect_open_error(image(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                          R"("t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                          "xy"),
                    {"tensor \"t\"", "more than once"});
}

TEST(SafetensorsBroken, MetadataNotAnObjectOfStrings) {
  expect_open_error(image(R"({"__metadata__":{"epoch":3}})"),
                    {"__metadata__", "\"epoch\"", "expected a string"});
  expect_open_error(image(R"({"__metadata__":"pt"})"), {"__metadata__", "expected an object"});
}

TEST(SafetensorsBroken, BoolBytesOtherThanZeroOrOne) {
  TempDir dir;
  const std::string path = dir.file("b.safetensors");
  write_file(path, image(R"({"t":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x02"));
  const st::File f = st::File::open(path);
  expect_error([&] { f.load("t"); }, {path, "tensor \"t\"", "expected 0 or 1"});
}

TEST(SafetensorsBroken, GapsBetweenTensorsAreAllowed) {
  TempDir dir;
  const std::string path = dir.file("gap.safetensors");
  write_file(path, image(R"({"t":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}})", "abcdefg"));
  const st::File f = st::File::open(path);
  EXPECT_TRUE(torch::equal(f.load("t"), torch::tensor({100, 101}, torch::kByte)));
  expect_error([&] { f.load("nope"); }, {path, "\"nope\""});
}

// ---- the data checksum of the models we write ----------------------------------------------

// WordChecksum as fingerprint.h defines it, written plainly: bytes to little-endian words (the
// last zero-padded), word i into lane i % 4 by FNV-1a 64, then FNV-1a 64 byte by byte over the
// lanes and the byte count, each as 8 little-endian bytes.
std::string naive_word_checksum(const std::string& bytes) {
  const uint64_t basis = 14695981039346656037ULL, prime = 1099511628211ULL;
  uint64_t lanes[4] = {basis, basis, basis, basis};
  for (size_t i = 0, k = 0; i < bytes.size(); i += 8, ++k) {
    uint64_t w = 0;
    for (size_t b = 0; b < 8 && i + b < bytes.size(); ++b)
      w |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i + b])) << (8 * b);
    lanes[k % 4] = (lanes[k % 4] ^ w) * prime;
  }
  uint64_t h = basis;
  auto add64 = [&](uint64_t v) {
    for (int b = 0; b < 8; ++b) h = (h ^ ((v >> (8 * b)) & 0xff)) * prime;
  };
  for (uint64_t lane : lanes) add64(lane);
  add64(bytes.size());
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("w4fnv1a64:") + hex;
}

TEST(SafetensorsChecksum, WordChecksumMatchesTheDefinitionForAnySplit) {
  std::mt19937 rng(7);
  for (size_t size : {0, 1, 7, 8, 9, 31, 32, 33, 64, 100, 257}) {
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
    const std::string expected = naive_word_checksum(bytes);
    for (int trial = 0; trial < 5; ++trial) {  // random cuts into add() calls
      WordChecksum sum;
      size_t at = 0;
      while (at < size) {
        const size_t n = std::min<size_t>(size - at, rng() % 13);
        sum.add(bytes.data() + at, n);
        at += n;
      }
      EXPECT_EQ(sum.hex(), expected) << size << " bytes, trial " << trial;
    }
  }
  EXPECT_NE(naive_word_checksum(std::string(8, '\0')), naive_word_checksum(std::string(9, '\0')));
}

// A model file written with its checksum reads back; one flipped bit anywhere in its tensors'
// bytes is refused by name; a file without the checksum (as transformers writes them) loads as
// it is, flipped bit and all: safetensors itself has nothing to catch it with.
TEST(SafetensorsChecksum, AFlippedBitInTheDataIsRefused) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"a", torch::randn({5, 3})}, {"b", torch::arange(7, torch::kLong)}};
  st::save(path, tensors, {{"format", "pt"}}, std::nullopt, /*checksum=*/true);
  const st::File f = st::File::open(path);
  EXPECT_EQ(f.header().metadata.at("format"), "pt");
  const std::string original = read_file(path);
  const uint64_t start = f.header().data_start;
  EXPECT_EQ(f.header().metadata.at(st::kDataChecksumKey),
            naive_word_checksum(original.substr(start)));
  for (uint64_t at : {start, start + 17, static_cast<uint64_t>(original.size() - 1)}) {
    std::string flipped = original;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x04);
    write_file(path, flipped);
    expect_error([&] { st::File::open(path); }, {path, "do not match the checksum", "damaged"});
  }
  const std::string plain = dir.file("plain.safetensors");
  st::save(plain, tensors, {{"format", "pt"}});
  std::string flipped = read_file(plain);
  flipped.back() = static_cast<char>(flipped.back() ^ 0x04);
  write_file(plain, flipped);
  EXPECT_EQ(st::File::open(plain).header().metadata.count(st::kDataChecksumKey), 0u);
  EXPECT_THROW(st::save(path, tensors, {{st::kDataChecksumKey, "x"}}, std::nullopt, true), Error);
}

TEST(SafetensorsChecksum, InitModelWritesItAndAFlippedBitStopsTheProgram) {
  TempDir dir;
  const std::string config = testing::write_tiny_t5_config(dir, 500);
  const std::string model = dir.path() + "/model";
  auto r = testing::run_compacter("init-model --model-config " + config + " --out " + model);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string path = model + "/model.safetensors";
  std::string bytes = read_file(path);
  const st::File f = st::File::open(path);
  ASSERT_EQ(f.header().metadata.count(st::kDataChecksumKey), 1u);
  const size_t at = f.header().data_start + (bytes.size() - f.header().data_start) / 2;
  bytes[at] = static_cast<char>(bytes[at] ^ 0x01);
  write_file(path, bytes);
  r = testing::run_compacter("inspect '" + model + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(path + ": its tensor bytes do not match the checksum"), std::string::npos)
      << r.err;
}

// ---- checkpoints ------------------------------------------------------------------------------

// Two shards: s1 holds a, b; s2 holds c.
void write_shards(const TempDir& dir) {
  st::save(dir.file("s1.safetensors"), {{"a", torch::ones({2})}, {"b", torch::zeros({3})}});
  st::save(dir.file("s2.safetensors"), {{"c", torch::full({1}, 7.0f)}});
}

void write_index(const TempDir& dir, const std::string& weight_map) {
  write_file(dir.file("model.safetensors.index.json"),
             R"({"metadata": {"total_size": 24}, "weight_map": )" + weight_map + "}");
}

TEST(SafetensorsCheckpoint, ShardedViaIndex) {
  TempDir dir;
  write_shards(dir);
  write_index(dir, R"({"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"})");
  const st::Checkpoint c = st::Checkpoint::open(dir.path());
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(c.files().size(), 2u) << "each shard opened once";
  EXPECT_TRUE(torch::equal(c.load("c"), torch::full({1}, 7.0f)));
  EXPECT_TRUE(torch::equal(c.load("a"), torch::ones({2})));
  EXPECT_EQ(c.info("b").shape, std::vector<int64_t>{3});
  expect_error([&] { c.load("zz"); }, {"\"zz\""});
}

TEST(SafetensorsCheckpoint, SingleFileDirectoryAndPlainPath) {
  TempDir dir;
  st::save(dir.file("model.safetensors"), {{"w", torch::ones({2, 2})}});
  EXPECT_EQ(st::Checkpoint::open(dir.path()).names(), std::vector<std::string>{"w"});
  EXPECT_EQ(st::Checkpoint::open(dir.file("model.safetensors")).names(),
            std::vector<std::string>{"w"});
}

TEST(SafetensorsCheckpoint, DirectoryWithNeitherFile) {
  TempDir dir;
  expect_error([&] { st::Checkpoint::open(dir.path()); },
               {dir.path(), "model.safetensors", "model.safetensors.index.json"});
  expect_error([&] { st::Checkpoint::open(dir.file("nothing")); }, {"nothing", "no such"});
}

TEST(SafetensorsCheckpoint, TensorListedButMissingFromShard) {
  TempDir dir;
  write_shards(dir);
  write_index(dir, R"({"a": "s1.safetensors", "c": "s1.safetensors"})");
  expect_error([&] { st::Checkpoint::open(dir.path()); },
               {"tensor \"c\"", "s1.safetensors", "missing"});
}

TEST(SafetensorsCheckpoint, ShardFileMissing) {
  TempDir dir;
  write_shards(dir);
  write_index(dir, R"({"a": "s1.safetensors", "c": "s9.safetensors"})");
  expect_error([&] { st::Checkpoint::open(dir.path()); },
               {"shard \"s9.safetensors\"", "not found"});
}

TEST(SafetensorsCheckpoint, ShardPathEscapingDirectory) {
  TempDir dir;
  write_shards(dir);
  write_index(dir, R"({"a": "../s1.safetensors"})");
  expect_error([&] { st::Checkpoint::open(dir.path()); },
               {"\"a\"", "../s1.safetensors", "escapes"});
  write_index(dir, R"({"a": "/etc/passwd"})");
  expect_error([&] { st::Checkpoint::open(dir.path()); }, {"\"a\"", "/etc/passwd", "escapes"});
}

TEST(SafetensorsCheckpoint, TensorInTwoShards) {
  TempDir dir;
  write_shards(dir);
  st::save(dir.file("s3.safetensors"), {{"a", torch::ones({2})}});
  // s1 also holds "a" (unlisted there): a second copy is ambiguous.
  write_index(dir, R"({"a": "s3.safetensors", "b": "s1.safetensors"})");
  expect_error([&] { st::Checkpoint::open(dir.path()); },
               {"tensor \"a\"", "two shards", "s1.safetensors", "s3.safetensors"});
}

TEST(SafetensorsCheckpoint, DuplicateNameInIndex) {
  TempDir dir;
  write_shards(dir);
  write_index(dir, R"({"a": "s1.safetensors", "a": "s2.safetensors"})");
  expect_error([&] { st::Checkpoint::open(dir.path()); },
               {"model.safetensors.index.json", "\"a\"", "more than once"});
}

TEST(SafetensorsCheckpoint, BrokenIndex) {
  TempDir dir;
  write_shards(dir);
  write_file(dir.file("model.safetensors.index.json"), "{\"weight_map\": ");
  expect_error([&] { st::Checkpoint::open(dir.path()); },
               {"model.safetensors.index.json", "not valid JSON"});
  write_file(dir.file("model.safetensors.index.json"), R"({"metadata": {}})");
  expect_error([&] { st::Checkpoint::open(dir.path()); }, {"weight_map"});
  write_index(dir, R"({"a": 3})");
  expect_error([&] { st::Checkpoint::open(dir.path()); }, {"\"a\"", "shard file name"});
}

// ---- shared data and the CLI --------------------------------------------------------------------

TEST(SafetensorsTinyT5, OpensSharedCheckpoint) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  const std::string dir = testing::shared_path("data/tiny-t5");
  const st::Checkpoint c = st::Checkpoint::open(dir);
  EXPECT_EQ(c.names().size(), 47u);
  const st::TensorInfo& shared = c.info("shared.weight");
  EXPECT_EQ(shared.dtype, st::DType::F32);
  EXPECT_EQ(shared.shape, (std::vector<int64_t>{512, 64}));
  const torch::Tensor w = c.load("shared.weight");
  EXPECT_EQ(w.sizes(), (torch::IntArrayRef{512, 64}));
  EXPECT_TRUE(torch::isfinite(w).all().item<bool>());
}

TEST(SafetensorsCli, InspectTinyT5) {
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  const std::string dir = testing::shared_path("data/tiny-t5");
  const auto r = testing::run_compacter("inspect '" + dir + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("197632 parameters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("shared.weight"), std::string::npos);
  EXPECT_NE(r.out.find("[512, 64]"), std::string::npos);
  EXPECT_NE(r.out.find("\"d_model\": 64"), std::string::npos) << "prints config.json";

  const auto j = testing::run_compacter("inspect --json '" + dir + "/model.safetensors'");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const nlohmann::json out = nlohmann::json::parse(j.out);
  EXPECT_EQ(out["parameters"], 197632);
  EXPECT_EQ(out["num_tensors"], 47);
  EXPECT_EQ(out["config"]["d_model"], 64);
}

TEST(SafetensorsCli, InspectTruncatedFileFails) {
  TempDir dir;
  write_file(dir.file("cut.safetensors"), "\x05\x00");
  const auto r = testing::run_compacter("inspect '" + dir.file("cut.safetensors") + "'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cut.safetensors"), std::string::npos) << r.err;
}

TEST(SafetensorsCli, InspectCountsTiedEmbeddingsOnce) {
  TempDir dir;
  const torch::Tensor emb = torch::ones({8, 4});
  st::save(dir.file("model.safetensors"), {{"shared.weight", emb},
                                           {"encoder.embed_tokens.weight", emb},
                                           {"lm_head.weight", emb},
                                           {"x", torch::ones({3})}});
  auto r = testing::run_compacter("inspect --json '" + dir.path() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["parameters"], 32 + 3) << "no config: tied by default";

  T5Config cfg;
  cfg.tie_word_embeddings = false;  // T5 v1.1: lm_head is its own matrix
  write_file(dir.file("config.json"), t5_config_to_json(cfg).dump());
  r = testing::run_compacter("inspect --json '" + dir.path() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["parameters"], 32 + 32 + 3);
}

}  // namespace
}  // namespace compacter
