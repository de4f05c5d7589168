// The bounds on users' files read whole (core/atomic_file.h): kMaxJsonFileBytes, 64 MiB, for
// every JSON document (most through core/json_file.h), and kMaxMetricsFileBytes, 256 MiB, for
// metrics.jsonl. Every reader of such a file refuses one a byte over its bound with an Error
// naming the file, before parsing it, and a file at the bound is read. The big files are sparse
// (fs::resize_file: a valid document, then a hole of NUL bytes), so the tests write almost
// nothing; the message shows that the size refused them, before any parsing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"
#include "compacter/interop/source.h"
#include "compacter/io/t5_config.h"
#include "compacter/io/weight_map.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/plot/figures.h"
#include "compacter/train/decoding/generation_config.h"
#include "compacter/train/metrics_file.h"
#include "compacter/train/report.h"
#include "compacter/train/tokenizer_choice.h"
#include "support/test_support.h"

namespace compacter {
namespace {

using testing::error_of;

// Writes `text` to `path`, then pads it with NUL bytes to `size` bytes (sparse, a hole).
void write_padded(const std::string& path, const std::string& text, uint64_t size) {
  testing::write_file(path, text);
  std::filesystem::resize_file(path, size);
}

bool says_too_large(const std::string& error, const std::string& path, uint64_t bound) {
  return error.find(cat(path, ": larger than ", bound >> 20, " MiB")) != std::string::npos;
}

TEST(FileSizeLimits, ReadFileTakesTheBoundAndRefusesOneByteMore) {
  testing::TempDir dir;
  const std::string path = dir.file("f");
  testing::write_file(path, std::string(100, 'x'));
  EXPECT_EQ(read_file(path, 100), std::string(100, 'x'));
  EXPECT_NE(error_of([&] { read_file(path, 99); }).find(path + ": larger than 99 bytes"),
            std::string::npos);
  // A stream that cannot be measured (a pipe: no seeking): the same bound, counted while reading.
  struct Unseekable : std::streambuf {
    std::string bytes;
    explicit Unseekable(size_t n) : bytes(n, 'y') {
      setg(bytes.data(), bytes.data(), bytes.data() + bytes.size());
    }
  };
  Unseekable exact(70000), more(70001);
  std::istream exact_in(&exact), more_in(&more);
  EXPECT_EQ(read_stream(exact_in, "stdin", 70000).size(), 70000u);
  EXPECT_NE(error_of([&] { read_stream(more_in, "stdin", 70000); }).find("stdin: larger than"),
            std::string::npos);
}

TEST(FileSizeLimits, EveryJsonReaderRefusesAFileOverItsBound) {
  testing::TempDir dir;
  const uint64_t over = kMaxJsonFileBytes + 1;

  const std::string index = dir.file("model.safetensors.index.json");
  write_padded(index, R"({"weight_map": {"a": "b.safetensors"}})", over);
  EXPECT_TRUE(says_too_large(error_of([&] { read_weight_map(index); }), index, kMaxJsonFileBytes));

  const std::string config = testing::write_tiny_t5_config(dir, 100);
  const std::string valid_config = testing::read_file(config);
  std::filesystem::resize_file(config, over);
  EXPECT_TRUE(says_too_large(error_of([&] { load_t5_config(config); }), config, kMaxJsonFileBytes));
  // config.json's tokenizer_class is read when the folder has no tokenizer_config.json.
  testing::write_file(dir.file("spiece.model"), "");
  EXPECT_TRUE(says_too_large(error_of([&] { train::choose_tokenizer(dir.path(), ""); }), config,
                             kMaxJsonFileBytes));
  testing::write_file(config, valid_config);

  const std::string tokenizer_config = dir.file("tokenizer_config.json");
  write_padded(tokenizer_config, R"({"tokenizer_class": "T5Tokenizer"})", over);
  EXPECT_TRUE(says_too_large(error_of([&] { train::choose_tokenizer(dir.path(), ""); }),
                             tokenizer_config, kMaxJsonFileBytes));
  // At the bound it is read (nlohmann's parser ends the document at the first NUL byte).
  std::filesystem::resize_file(tokenizer_config, kMaxJsonFileBytes);
  EXPECT_EQ(error_of([&] { train::choose_tokenizer(dir.path(), ""); }), "");

  const std::string generation = dir.file("generation_config.json");
  write_padded(generation, "{}", over);
  const T5Config model = load_t5_config(config);
  EXPECT_TRUE(says_too_large(error_of([&] { decoding::load_generation_config(dir.path(), model); }),
                             generation, kMaxJsonFileBytes));

  const std::string run = dir.file("run");
  std::filesystem::create_directories(run);
  write_padded(run + "/results.json", "{}", over);
  EXPECT_TRUE(says_too_large(error_of([&] { train::report_rows({run}, ""); }),
                             run + "/results.json", kMaxJsonFileBytes));

  const std::string adapter = dir.file("adapter");
  std::filesystem::create_directories(adapter);
  write_padded(adapter + "/adapter_config.json", "{}", over);
  EXPECT_TRUE(says_too_large(error_of([&] { peft::read_adapter_config(adapter); }),
                             adapter + "/adapter_config.json", kMaxJsonFileBytes));
  EXPECT_TRUE(
      says_too_large(error_of([&] { interop::read_json_object(adapter + "/adapter_config.json"); }),
                     adapter + "/adapter_config.json", kMaxJsonFileBytes));

  const std::string bench = dir.file("bench.json");
  write_padded(bench, R"({"methods": []})", over);
  EXPECT_TRUE(
      says_too_large(error_of([&] { plot::read_bench_json(bench); }), bench, kMaxJsonFileBytes));
}

TEST(FileSizeLimits, MetricsJsonlIsRefusedOverItsBound) {
  testing::TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  write_padded(path, "{\"type\": \"train\", \"loss\": 1.0, \"step\": 1}\n",
               kMaxMetricsFileBytes + 1);
  EXPECT_TRUE(says_too_large(error_of([&] { train::read_metrics_file(path); }), path,
                             kMaxMetricsFileBytes));
}

}  // namespace
}  // namespace compacter
