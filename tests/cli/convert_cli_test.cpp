// `compacter convert` as a user runs it: the tiny T5 shipped as pytorch_model.bin becomes a
// model.safetensors folder whose `forward` logits equal Hugging Face's reference; bad input exits
// 1 with one line naming the file and leaves nothing behind.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>

#include "support/raw_safetensors.h"
#include "support/tensor_near.h"
#include "support/test_support.h"

namespace compacter::convert_cli_test {
namespace {

namespace fs = std::filesystem;

TEST(ConvertCli, BinFolderToSafetensorsThenForward) {
  REQUIRE_SHARED("data/tiny-t5-bin/pytorch_model.bin");
  REQUIRE_SHARED("data/tiny-t5/reference.safetensors");
  testing::TempDir dir;
  const std::string out = dir.file("tiny-st");
  auto r = testing::run_compacter("convert --model " + testing::shared_path("data/tiny-t5-bin") +
                                  " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("47 tensors"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  const std::string ref = testing::shared_path("data/tiny-t5/reference.safetensors");
  r = testing::run_compacter("forward --model " + out + " --inputs " + ref + " --out " +
                             dir.file("out.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TENSOR_NEAR(testing::raw_load_safetensors(dir.file("out.safetensors"))["logits"],
                     testing::raw_load_safetensors(ref)["logits"], 1e-5);
  // The .bin folder itself loads in every command, e.g. forward.
  r = testing::run_compacter("forward --model " + testing::shared_path("data/tiny-t5-bin") +
                             " --inputs " + ref + " --out " + dir.file("out2.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TENSOR_NEAR(testing::raw_load_safetensors(dir.file("out2.safetensors"))["logits"],
                     testing::raw_load_safetensors(ref)["logits"], 1e-5);
}

TEST(ConvertCli, BadInputExitsOneAndWritesNothing) {
  testing::TempDir dir;
  fs::create_directories(dir.file("in"));
  testing::write_file(dir.file("in/pytorch_model.bin"), "not a zip archive at all");
  auto r =
      testing::run_compacter("convert --model " + dir.file("in") + " --out " + dir.file("out"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(dir.file("in/pytorch_model.bin")), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not a PyTorch checkpoint"), std::string::npos) << r.err;
  EXPECT_EQ(testing::lines_of(r.err).size(), 1u) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("out")));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

}  // namespace
}  // namespace compacter::convert_cli_test
