// Tests of the pytorch_model.bin reader (io/zip_archive, io/state_dict_pickle,
// io/pytorch_bin_format, io/pytorch_bin), the format-neutral folder reader
// (io/checkpoint_files) and `convert` (io/convert):
// - ../shared/data/tiny-t5-bin (written by transformers + torch.save), single and sharded, against
//   ../shared/data/tiny-t5/model.safetensors read by the independent test reader, and the model's
//   logits against reference.json;
// - hand-built files (tests/io/torch_bin_bytes.h) for views, dtypes, zip64, and one test per kind
//   of bad or malicious input, each with one clear error.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/io/checkpoint_files.h"
#include "compacter/io/convert.h"
#include "compacter/io/inspect.h"
#include "compacter/io/pytorch_bin.h"
#include "compacter/io/safetensors.h"
#include "compacter/nn/checkpoint.h"
#include "io/torch_bin_bytes.h"
#include "support/raw_safetensors.h"
#include "support/tensor_near.h"
#include "support/test_support.h"

namespace compacter::pytorch_bin_test {
namespace {

namespace fs = std::filesystem;
using testing::f32_bytes;
using testing::PickleWriter;
using testing::state_dict_pickle;
using testing::TempDir;
using testing::TensorSpec;
using testing::torch_zip;
using testing::write_file;

const char* kBinDir = "data/tiny-t5-bin";

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

// Writes `bytes` as dir/name and expects opening it to fail naming the file and `parts`.
void expect_bin_error(const std::string& bytes, std::vector<std::string> parts) {
  TempDir dir;
  const std::string path = dir.file("pytorch_model.bin");
  write_file(path, bytes);
  parts.push_back(path);
  expect_error([&] { pytorch_bin::File::open(path); }, parts);
}

// One float storage "0" of 6 elements 0..5 and the tensors given.
std::string six_floats(const std::vector<TensorSpec>& tensors) {
  return torch_zip(state_dict_pickle(tensors), {{"0", f32_bytes({0, 1, 2, 3, 4, 5})}});
}

TensorSpec spec(const std::string& name, int64_t offset, std::vector<int64_t> size,
                std::vector<int64_t> stride) {
  return {name, "FloatStorage", "0", 6, offset, std::move(size), std::move(stride)};
}

// ---- the shared tiny T5, as transformers wrote it -------------------------------------------

void expect_matches_safetensors_reference(const pytorch_bin::Checkpoint& bin) {
  const auto ref =
      testing::raw_load_safetensors(testing::shared_path("data/tiny-t5/model.safetensors"));
  std::vector<std::string> expected;
  for (const auto& [name, t] : ref) expected.push_back(name);
  for (const char* alias :
       {"decoder.embed_tokens.weight", "encoder.embed_tokens.weight", "lm_head.weight"})
    expected.push_back(alias);
  std::sort(expected.begin(), expected.end());
  ASSERT_EQ(bin.names(), expected);
  for (const std::string& name : bin.names()) {
    const std::string source = ref.count(name) ? name : "shared.weight";  // tied embeddings
    const torch::Tensor t = bin.load(name);
    EXPECT_EQ(t.scalar_type(), torch::kFloat) << name;
    EXPECT_TRUE(t.is_contiguous()) << name;
    EXPECT_TENSOR_NEAR(t, ref.at(source), 0) << name;  // bit-exact
  }
}

TEST(PytorchBinShared, SingleFileEqualsSafetensorsReference) {
  REQUIRE_SHARED("data/tiny-t5-bin/pytorch_model.bin");
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  const auto bin = pytorch_bin::Checkpoint::open(testing::shared_path(kBinDir));
  ASSERT_EQ(bin.files().size(), 1u);
  // The four tied names are views of one storage, saved once.
  const auto& file = bin.files()[0];
  const auto& shared = file.tensor("shared.weight");
  for (const char* alias :
       {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"})
    EXPECT_EQ(file.tensor(alias).storage, shared.storage) << alias;
  expect_matches_safetensors_reference(bin);
  // Copies, not views of one buffer: changing one leaves the others alone.
  torch::Tensor a = bin.load("shared.weight");
  a.zero_();
  EXPECT_NE(bin.load("lm_head.weight").abs().sum().item<double>(), 0.0);
}

TEST(PytorchBinShared, ShardedEqualsSafetensorsReference) {
  REQUIRE_SHARED("data/tiny-t5-bin/sharded/pytorch_model.bin.index.json");
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  const auto bin = pytorch_bin::Checkpoint::open(testing::shared_path("data/tiny-t5-bin/sharded"));
  EXPECT_EQ(bin.files().size(), 2u);
  expect_matches_safetensors_reference(bin);
}

// load_t5 on the .bin folders gives Hugging Face's logits (the reference outputs of tiny-t5).
TEST(PytorchBinShared, LoadT5LogitsMatchReference) {
  REQUIRE_SHARED("data/tiny-t5-bin/pytorch_model.bin");
  REQUIRE_SHARED("data/tiny-t5/reference.json");
  const auto ref =
      testing::raw_load_reference_json(testing::shared_path("data/tiny-t5/reference.json"));
  for (const std::string dir : {"data/tiny-t5-bin", "data/tiny-t5-bin/sharded"}) {
    SCOPED_TRACE(dir);
    auto loaded = nn::load_t5(testing::shared_path(dir));
    EXPECT_TRUE(loaded.unexpected.empty());
    auto model = loaded.model;
    model->eval();
    torch::NoGradGuard no_grad;
    auto out = model->forward(ref.at("input_ids"), ref.at("attention_mask"),
                              ref.at("decoder_input_ids"), ref.at("labels"));
    EXPECT_TENSOR_NEAR(out.logits, ref.at("logits"), 1e-5);
    EXPECT_TENSOR_NEAR(out.encoder_last_hidden_state, ref.at("encoder_last_hidden_state"), 1e-5);
    EXPECT_NEAR(out.loss.item<double>(), ref.at("loss").item<double>(), 1e-5);
  }
}

// `inspect` reads a .bin folder as it reads a safetensors one: the same parameter count as the
// safetensors copy (197,632: README of tiny-t5), the three tied names not counted.
TEST(PytorchBinShared, InspectCountsLikeTheSafetensorsCopy) {
  REQUIRE_SHARED("data/tiny-t5-bin/sharded/pytorch_model.bin.index.json");
  for (const std::string dir : {"data/tiny-t5-bin", "data/tiny-t5-bin/sharded"}) {
    const auto r = inspect_checkpoint(testing::shared_path(dir));
    EXPECT_EQ(r["format"], "pytorch_model.bin");
    EXPECT_EQ(r["parameters"], 197632) << dir;
    EXPECT_EQ(r["num_tensors"], 50u);
    EXPECT_EQ(r["aliases_not_counted"].size(), 3u);
    EXPECT_EQ(r["config"]["d_model"], 64);
  }
}

TEST(PytorchBinShared, TruncatedAndCorruptedCopiesAreRefused) {
  REQUIRE_SHARED("data/tiny-t5-bin/pytorch_model.bin");
  const std::string bytes =
      testing::read_file(testing::shared_path("data/tiny-t5-bin/pytorch_model.bin"));
  TempDir dir;
  const std::string path = dir.file("pytorch_model.bin");
  // Cut anywhere: the end records are gone (or the central directory is cut).
  for (size_t len : {size_t{0}, size_t{21}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    write_file(path, bytes.substr(0, len));
    expect_error([&] { pytorch_bin::File::open(path); }, {path});
  }
  // One flipped byte inside the storage data of shared.weight: its CRC-32 no longer matches.
  std::string flipped = bytes;
  flipped[6000] = static_cast<char>(flipped[6000] ^ 0x40);
  write_file(path, flipped);
  const auto f = pytorch_bin::File::open(path);  // sizes and offsets are still right
  expect_error([&] { f.load("shared.weight"); }, {path, "CRC-32 mismatch", "data/0"});
}

// ---- hand-built files: views and dtypes ------------------------------------------------------

TEST(PytorchBinFile, ViewsOfOneStorage) {
  TempDir dir;
  const std::string path = dir.file("pytorch_model.bin");
  write_file(
      path, six_floats(
                {spec("whole", 0, {2, 3}, {3, 1}), spec("column", 1, {2}, {3}),     // elements 1, 4
                 spec("transposed", 0, {3, 2}, {1, 3}), spec("tail", 4, {2}, {1}),  // elements 4, 5
                 spec("broadcast", 2, {2, 2}, {0, 1}),                              // rows of 2, 3
                 spec("scalar", 5, {}, {}), spec("empty", 6, {0, 4}, {4, 1})}));
  const auto f = pytorch_bin::File::open(path);
  auto expect = [&](const std::string& name, torch::Tensor want) {
    const torch::Tensor got = f.load(name);
    EXPECT_TRUE(got.is_contiguous()) << name;
    EXPECT_TENSOR_NEAR(got, want, 0) << name;
  };
  expect("whole", torch::tensor({0.f, 1.f, 2.f, 3.f, 4.f, 5.f}).view({2, 3}));
  expect("column", torch::tensor({1.f, 4.f}));
  expect("transposed", torch::tensor({0.f, 3.f, 1.f, 4.f, 2.f, 5.f}).view({3, 2}));
  expect("tail", torch::tensor({4.f, 5.f}));
  expect("broadcast", torch::tensor({2.f, 3.f, 2.f, 3.f}).view({2, 2}));
  expect("scalar", torch::tensor(5.f));
  expect("empty", torch::zeros({0, 4}));
  EXPECT_EQ(f.index().dict.storages.size(), 1u);
}

TEST(PytorchBinFile, Dtypes) {
  TempDir dir;
  const std::string path = dir.file("pytorch_model.bin");
  // Storage bytes written by hand: half 1.0 = 0x3C00, -2.0 = 0xC000; bfloat16 1.0 = 0x3F80,
  // 0.5 = 0x3F00; int64 7, -1; bool 1, 0, 1; double 0.25.
  const std::string half("\x00\x3c\x00\xc0", 4), bf16("\x80\x3f\x00\x3f", 4);
  std::string i64(16, '\0');
  i64[0] = 7;
  for (int i = 8; i < 16; ++i) i64[i] = '\xff';
  const std::string boolean("\x01\x00\x01", 3), f64("\x00\x00\x00\x00\x00\x00\xd0\x3f", 8);
  const std::vector<TensorSpec> ts{{"h", "HalfStorage", "0", 2, 0, {2}, {1}},
                                   {"b", "BFloat16Storage", "1", 2, 0, {2}, {1}},
                                   {"l", "LongStorage", "2", 2, 0, {2}, {1}},
                                   {"q", "BoolStorage", "3", 3, 0, {3}, {1}},
                                   {"d", "DoubleStorage", "4", 1, 0, {1}, {1}}};
  write_file(path, torch_zip(state_dict_pickle(ts),
                             {{"0", half}, {"1", bf16}, {"2", i64}, {"3", boolean}, {"4", f64}}));
  const auto f = pytorch_bin::File::open(path);
  EXPECT_EQ(f.load("h").scalar_type(), torch::kHalf);
  EXPECT_TENSOR_NEAR(f.load("h").to(torch::kFloat), torch::tensor({1.f, -2.f}), 0);
  EXPECT_EQ(f.load("b").scalar_type(), torch::kBFloat16);
  EXPECT_TENSOR_NEAR(f.load("b").to(torch::kFloat), torch::tensor({1.f, 0.5f}), 0);
  EXPECT_TENSOR_NEAR(f.load("l"), torch::tensor({int64_t{7}, int64_t{-1}}), 0);
  EXPECT_TENSOR_NEAR(f.load("q"), torch::tensor({true, false, true}), 0);
  EXPECT_TENSOR_NEAR(f.load("d"), torch::tensor({0.25}, torch::kDouble), 0);
  EXPECT_EQ(f.dtype("b"), safetensors::DType::BF16);
}

TEST(PytorchBinFile, Zip64RecordsAndOtherArchiveNames) {
  TempDir dir;
  const std::string path = dir.file("w.bin");
  write_file(path, torch_zip(state_dict_pickle({spec("w", 0, {6}, {1})}),
                             {{"0", f32_bytes({0, 1, 2, 3, 4, 5})}}, /*zip64=*/true, "my_model"));
  const auto f = pytorch_bin::File::open(path);
  EXPECT_EQ(f.index().archive, "my_model");
  EXPECT_TENSOR_NEAR(f.load("w"), torch::arange(6, torch::kFloat), 0);
}

// Hugging Face's state dicts carry `_metadata` (BUILD on the OrderedDict); protocol 4 opcodes
// (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL) also read.
TEST(PytorchBinFile, MetadataBuildAndProtocol4) {
  PickleWriter p;
  p.raw("\x80\x04").op('\x95').raw(std::string(8, '\0'));
  p.op('\x8c').raw("\x0b").raw("collections").op('\x94');
  p.op('\x8c').raw("\x0b").raw("OrderedDict").op('\x94').op('\x93').op('\x94');
  p.op(')').op('R').op('(').str("w").global("torch._utils", "_rebuild_tensor_v2").op('(');
  p.op('(').str("storage").global("torch", "FloatStorage").str("0").str("cpu").integer(6);
  p.op('t').op('Q').integer(0).int_tuple({6}).int_tuple({1}).op('\x89');
  p.op('h').raw("\x02").op(')').op('R').op('t').op('R').op('u');
  // state = {"_metadata": OrderedDict({"": {"version": 1}})}; BUILD
  p.op('}').str("_metadata").op('h').raw("\x02").op(')').op('R').str("").op('}').str("version");
  p.integer(1).op('s').op('s').op('s').op('b').op('.');
  TempDir dir;
  const std::string path = dir.file("pytorch_model.bin");
  write_file(path, torch_zip(p.b, {{"0", f32_bytes({0, 1, 2, 3, 4, 5})}}));
  const auto f = pytorch_bin::File::open(path);
  EXPECT_TENSOR_NEAR(f.load("w"), torch::arange(6, torch::kFloat), 0);
}

// ---- files written by torch.save: nn.Parameter values and PyTorch 2.x's _rebuild_tensor_v3 ----
// The seeds of fuzz/corpus/pytorch_bin, written by fuzz/make_pytorch_bin_corpus.py with Debian's
// python3-torch (the v3 files as PyTorch 2.x pickles them, torch.float16 etc. over a
// torch.storage.UntypedStorage whose count is in bytes); the values are the script's inputs.

std::string corpus_file(const std::string& name) {
  return std::string(COMPACTER_SOURCE_DIR) + "/fuzz/corpus/pytorch_bin/" + name;
}

TEST(PytorchBinTorchSave, ParametersReadAsTheirTensors) {
  const auto f = pytorch_bin::File::open(corpus_file("ok-parameters.bin"));
  EXPECT_TENSOR_NEAR(f.load("weight"), torch::arange(6, torch::kFloat).view({2, 3}), 0);
  EXPECT_TENSOR_NEAR(f.load("bias"), torch::tensor({0.5f, -1.5f}), 0);  // requires_grad=False
  EXPECT_TENSOR_NEAR(f.load("tied"), torch::arange(6, torch::kFloat).view({2, 3}), 0);
  EXPECT_EQ(f.index().dict.storages.size(), 2u);  // "tied" is the same Parameter as "weight"
  EXPECT_EQ(f.tensor("tied").storage, f.tensor("weight").storage);
  // nn.Linear(3, 2).state_dict(keep_vars=True): two Parameters with Linear's shapes.
  const auto lin = pytorch_bin::File::open(corpus_file("ok-module-keep-vars.bin"));
  EXPECT_EQ(lin.load("weight").sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(lin.load("bias").sizes(), (std::vector<int64_t>{2}));
}

TEST(PytorchBinTorchSave, RebuildTensorV3OverUntypedStorage) {
  const auto f = pytorch_bin::File::open(corpus_file("ok-rebuild-v3.bin"));
  ASSERT_EQ(f.index().dict.storages.size(), 1u);
  EXPECT_EQ(f.index().dict.storages[0].dtype, safetensors::DType::F16);
  EXPECT_EQ(f.index().dict.storages[0].numel, 6u);  // 12 bytes as float16
  EXPECT_EQ(f.load("h").scalar_type(), torch::kHalf);
  EXPECT_TENSOR_NEAR(f.load("h").to(torch::kFloat), torch::arange(6, torch::kFloat).view({2, 3}),
                     0);
  EXPECT_TENSOR_NEAR(f.load("row").to(torch::kFloat), torch::tensor({3.f, 4.f, 5.f}), 0);
  // A Parameter of a v3 tensor: offset 1, stride 3 -> elements 1 and 4.
  EXPECT_TENSOR_NEAR(f.load("p").to(torch::kFloat), torch::tensor({1.f, 4.f}), 0);
  const auto n = pytorch_bin::File::open(corpus_file("ok-rebuild-v3-int64-metadata.bin"));
  EXPECT_TENSOR_NEAR(n.load("n"), torch::tensor({int64_t{7}, int64_t{-8}}), 0);
}

TEST(PytorchBinTorchSave, RefusesBadParametersAndV3Views) {
  auto refused = [](const std::string& name, std::vector<std::string> parts) {
    parts.push_back(corpus_file(name));
    expect_error([&] { pytorch_bin::File::open(corpus_file(name)); }, parts);
  };
  refused("bad-parameter-hooks.bin", {"_rebuild_parameter", "backward hooks are not supported"});
  refused("bad-parameter-of-int.bin", {"_rebuild_parameter: data is an int, expected a tensor"});
  refused("bad-rebuild-v3-uint16.bin", {"tensor dtype torch.uint16 is not supported"});
  refused("bad-rebuild-v3-two-dtypes.bin", {"viewed as both F16 and F32"});
  refused("bad-rebuild-v3-odd-bytes.bin", {"of 12 bytes is not a whole number of F64"});
  refused("bad-rebuild-v3-past-end.bin", {"past the storage's end"});
}

// ---- malicious and broken inputs: one clear error each ---------------------------------------

TEST(PytorchBinRefuses, ForbiddenGlobalsWithoutExecutingThem) {
  const std::string marker = testing::TempDir().path() + "-pwned";  // must never appear
  // os.system("touch marker") as a pickle would run it: GLOBAL, args tuple, REDUCE.
  PickleWriter os_system;
  os_system.proto2().global("os", "system").op('(').str("touch " + marker).op('t').op('R');
  os_system.op('.');
  expect_bin_error(torch_zip(os_system.b, {}), {"os.system", "refusing global", "not"});
  // builtins.eval through STACK_GLOBAL (protocol 4).
  PickleWriter eval;
  eval.raw("\x80\x04").str("builtins").str("eval").op('\x93').op('(').str("1+1").op('t');
  eval.op('R').op('.');
  expect_bin_error(torch_zip(eval.b, {}), {"builtins.eval", "refusing global"});
  // A forbidden global hidden after a valid tensor, inside the state dict.
  PickleWriter late;
  late.proto2().global("collections", "OrderedDict").op(')').op('R').op('(').str("x");
  late.global("subprocess", "check_output").op('(').str("id").op('t').op('R').op('u').op('.');
  expect_bin_error(torch_zip(late.b, {}), {"subprocess.check_output"});
  // Other torch functions are refused too, as are unsupported storage types.
  PickleWriter param;
  param.proto2().global("torch._utils", "_rebuild_parameter_with_state").op('.');
  expect_bin_error(torch_zip(param.b, {}),
                   {"torch._utils._rebuild_parameter_with_state", "refusing"});
  expect_bin_error(six_floats({{"c", "ComplexFloatStorage", "0", 3, 0, {3}, {1}}}),
                   {"torch.ComplexFloatStorage", "not supported"});
  EXPECT_FALSE(fs::exists(marker));
}

TEST(PytorchBinRefuses, OpcodesAStateDictDoesNotUse) {
  // INST ('i'), OBJ ('o') and NEWOBJ (0x81) build arbitrary objects; PERSID ('P') is text.
  for (const std::string& op : {std::string("i"), std::string("o"), std::string("\x81"),
                                std::string("P"), std::string("\x82")}) {
    PickleWriter p;
    p.proto2().raw(op).op('.');
    expect_bin_error(torch_zip(p.b, {}), {"pickle opcode", "not supported"});
  }
  PickleWriter persid;  // a persistent id that is not a storage
  persid.proto2().op('(').str("module").str("x").op('t').op('Q').op('.');
  expect_bin_error(torch_zip(persid.b, {}), {"persistent id"});
  PickleWriter not_dict;  // a bare list is not a state dict
  not_dict.proto2().op(']').op('.');
  expect_bin_error(torch_zip(not_dict.b, {}), {"a list", "not a state dict"});
  PickleWriter underflow;
  underflow.proto2().op('R').op('.');
  expect_bin_error(torch_zip(underflow.b, {}), {"stack underflow"});
  PickleWriter memo;
  memo.proto2().get(7).op('.');
  expect_bin_error(torch_zip(memo.b, {}), {"memo entry 7"});
}

TEST(PytorchBinRefuses, ViewsOutsideTheirStorage) {
  expect_bin_error(six_floats({spec("w", 5, {2}, {1})}),
                   {"storage \"0\" (6 elements)", "past the storage's end"});
  expect_bin_error(six_floats({spec("w", 0, {2, 3}, {4, 1})}), {"past the storage's end"});
  expect_bin_error(six_floats({spec("w", 7, {0}, {1})}), {"offset past the storage's end"});
  expect_bin_error(six_floats({spec("w", 0, {int64_t{1} << 40, int64_t{1} << 40}, {0, 0})}),
                   {"more than 2^62 elements"});
  expect_bin_error(six_floats({spec("w", -1, {1}, {1})}), {"negative storage offset"});
  expect_bin_error(six_floats({spec("w", 0, {2, 2}, {1})}), {"2 sizes but 1 strides"});
}

TEST(PytorchBinRefuses, WrongSizesAndMissingEntries) {
  // The pickle says 7 floats; the entry holds 6.
  TensorSpec seven = spec("w", 0, {7}, {1});
  seven.storage_numel = 7;
  expect_bin_error(six_floats({seven}), {"data/0", "holds 24 bytes", "torch.FloatStorage x 7"});
  // No entry for storage "1".
  TensorSpec other = spec("w", 0, {6}, {1});
  other.key = "1";
  expect_bin_error(six_floats({other}), {"storage \"1\"", "archive/data/1"});
  // One key named twice with different sizes.
  TensorSpec twice = spec("v", 0, {2}, {1});
  twice.storage_numel = 2;
  expect_bin_error(six_floats({spec("w", 0, {6}, {1}), twice}), {"named twice"});
  // The same tensor name twice.
  expect_bin_error(six_floats({spec("w", 0, {6}, {1}), spec("w", 0, {6}, {1})}),
                   {"\"w\" appears twice"});
  // No data.pkl.
  expect_bin_error(testing::make_zip({{"archive/version", "3\n"}}), {"no archive/data.pkl"});
}

TEST(PytorchBinRefuses, TruncatedAtEveryLength) {
  const std::string good = six_floats({spec("w", 0, {2, 3}, {3, 1})});
  TempDir dir;
  const std::string path = dir.file("pytorch_model.bin");
  for (size_t len = 0; len < good.size(); ++len) {
    write_file(path, good.substr(0, len));
    SCOPED_TRACE(len);
    expect_error([&] { pytorch_bin::File::open(path); }, {path});
  }
  // A truncated pickle inside an intact archive.
  const std::string pkl = state_dict_pickle({spec("w", 0, {2, 3}, {3, 1})});
  for (size_t len = 0; len < pkl.size(); ++len) {
    SCOPED_TRACE(len);
    expect_bin_error(torch_zip(pkl.substr(0, len), {{"0", f32_bytes({0, 1, 2, 3, 4, 5})}}), {});
  }
}

TEST(PytorchBinRefuses, ZipFeaturesTorchDoesNotWrite) {
  const std::string pkl = state_dict_pickle({spec("w", 0, {6}, {1})});
  expect_bin_error(testing::make_zip({{"archive/data.pkl", pkl, 8}}),
                   {"archive/data.pkl", "compressed (deflate)"});
  // Encrypted flag set in the central directory (bit 0 of the flags at offset 8 of the entry).
  std::string enc = six_floats({spec("w", 0, {6}, {1})});
  const size_t cd = enc.find(std::string("PK\x01\x02", 4));
  ASSERT_NE(cd, std::string::npos);
  enc[cd + 8] = 1;
  expect_bin_error(enc, {"encrypted"});
  // A central directory pointing past the file.
  std::string far = six_floats({spec("w", 0, {6}, {1})});
  far[far.size() - 3] = '\x7f';  // the high byte of the directory's offset
  expect_bin_error(far, {"central directory"});
  // Not a zip at all.
  expect_bin_error("hello, this is not a checkpoint", {"not a PyTorch checkpoint"});
}

TEST(PytorchBinRefuses, LegacyFormatsByName) {
  // _legacy_save's first pickle: PROTO 2, LONG1 of the magic number 0x1950a86a20f9469cfc6c.
  const std::string legacy("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15);
  expect_bin_error(legacy, {"written by PyTorch before 1.6", "convert it with a newer PyTorch"});
  std::string tar(1024, '\0');
  tar.replace(0, 8, "storages");
  tar.replace(257, 5, "ustar");
  expect_bin_error(tar, {"tar archive", "before 1.6"});
  // Through the folder loader too.
  TempDir dir;
  write_file(dir.file("pytorch_model.bin"), legacy);
  expect_error([&] { CheckpointFiles::open(dir.path()); }, {"before 1.6"});
}

// ---- picking the format of a folder ----------------------------------------------------------

TEST(CheckpointFiles, FolderFilesPickTheFormat) {
  const std::string bin = six_floats({spec("w", 0, {6}, {1})});
  TempDir only_bin;
  write_file(only_bin.file("pytorch_model.bin"), bin);
  const auto a = CheckpointFiles::open(only_bin.path());
  EXPECT_EQ(a.format(), WeightFormat::PytorchBin);
  EXPECT_EQ(a.names(), std::vector<std::string>{"w"});
  EXPECT_EQ(a.info("w").shape, std::vector<int64_t>{6});
  EXPECT_TENSOR_NEAR(a.load("w"), torch::arange(6, torch::kFloat), 0);

  TempDir both;  // safetensors preferred, as in transformers
  write_file(both.file("pytorch_model.bin"), bin);
  safetensors::save(both.file("model.safetensors"), {{"s", torch::ones({2})}});
  const auto b = CheckpointFiles::open(both.path());
  EXPECT_EQ(b.format(), WeightFormat::Safetensors);
  EXPECT_EQ(b.names(), std::vector<std::string>{"s"});

  // A single file is recognised by its bytes, whatever its name.
  write_file(both.file("weights.data"), bin);
  EXPECT_EQ(CheckpointFiles::open(both.file("weights.data")).format(), WeightFormat::PytorchBin);

  TempDir empty;
  expect_error([&] { CheckpointFiles::open(empty.path()); },
               {empty.path(), "model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json"});
  write_file(empty.file("tf_model.h5"), "x");
  expect_error([&] { CheckpointFiles::open(empty.path()); }, {"TensorFlow"});
}

TEST(CheckpointFiles, SafetensorsReaderNamesABinFile) {
  TempDir dir;
  write_file(dir.file("model.safetensors"), six_floats({spec("w", 0, {6}, {1})}));
  expect_error([&] { safetensors::File::open(dir.file("model.safetensors")); },
               {dir.file("model.safetensors"), "zip archive", "pytorch_model.bin"});
  expect_error([&] { CheckpointFiles::open(dir.path()); }, {"zip archive"});
}

TEST(CheckpointFiles, ShardedBinIndexIsChecked) {
  TempDir dir;
  write_file(dir.file("a.bin"), six_floats({spec("x", 0, {6}, {1})}));
  write_file(dir.file("b.bin"), six_floats({spec("y", 0, {3}, {2})}));
  write_file(dir.file("pytorch_model.bin.index.json"),
             R"({"metadata": {}, "weight_map": {"x": "a.bin", "y": "b.bin"}})");
  const auto c = CheckpointFiles::open(dir.path());
  EXPECT_EQ(c.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_TENSOR_NEAR(c.load("y"), torch::tensor({0.f, 2.f, 4.f}), 0);
  EXPECT_EQ(c.files().size(), 2u);
  write_file(dir.file("pytorch_model.bin.index.json"), R"({"weight_map": {"x": "b.bin"}})");
  expect_error([&] { CheckpointFiles::open(dir.path()); },
               {"pytorch_model.bin.index.json", "\"x\"", "missing from it"});
  write_file(dir.file("pytorch_model.bin.index.json"), R"({"weight_map": {"x": "../a.bin"}})");
  expect_error([&] { CheckpointFiles::open(dir.path()); }, {"escapes"});
}

// ---- convert ---------------------------------------------------------------------------------

TEST(Convert, TinyT5BinBecomesTheReferenceSafetensors) {
  REQUIRE_SHARED("data/tiny-t5-bin/pytorch_model.bin");
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  TempDir tmp;
  const std::string out = tmp.file("converted");
  const ConvertReport r = convert_to_safetensors(testing::shared_path(kBinDir), out);
  EXPECT_EQ(r.tensors, 47u);
  EXPECT_EQ(r.aliases.size(), 3u);
  // Written once, under the first name in the file (shared.weight), like the reference file.
  const auto got = testing::raw_load_safetensors(out + "/model.safetensors");
  const auto want =
      testing::raw_load_safetensors(testing::shared_path("data/tiny-t5/model.safetensors"));
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, t] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TENSOR_NEAR(got.at(name), t, 0) << name;
  }
  EXPECT_EQ(testing::read_file(out + "/config.json"),
            testing::read_file(testing::shared_path("data/tiny-t5-bin/config.json")));
  EXPECT_TRUE(fs::exists(out + "/generation_config.json"));
  EXPECT_FALSE(fs::exists(out + "/pytorch_model.bin"));
  // The output folder is a model folder like any other.
  EXPECT_NO_THROW(nn::load_t5(out));
  // Nothing else left next to it (no temporary folder).
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

// Single file and shards give the same model.safetensors, byte for byte equal to the one
// transformers wrote for tiny-t5 (safetensors can't alias: shared.weight only, lm_head.weight of
// the second shard dropped because the config ties it and it equals shared.weight).
TEST(Convert, SingleAndShardedGiveTheReferenceFileByteForByte) {
  REQUIRE_SHARED("data/tiny-t5-bin/sharded/pytorch_model.bin.index.json");
  REQUIRE_SHARED("data/tiny-t5/model.safetensors");
  const std::string want =
      testing::read_file(testing::shared_path("data/tiny-t5/model.safetensors"));
  for (const std::string& in : {std::string(kBinDir), std::string(kBinDir) + "/sharded"}) {
    TempDir tmp;
    const ConvertReport r = convert_to_safetensors(testing::shared_path(in), tmp.file("out"));
    EXPECT_EQ(r.tensors, 47u) << in;
    std::vector<std::string> aliases = r.aliases;
    std::sort(aliases.begin(), aliases.end());
    EXPECT_EQ(aliases, (std::vector<std::string>{"decoder.embed_tokens.weight = shared.weight",
                                                 "encoder.embed_tokens.weight = shared.weight",
                                                 "lm_head.weight = shared.weight"}))
        << in;
    EXPECT_TRUE(testing::read_file(tmp.file("out/model.safetensors")) == want) << in;
  }
}

// A lone lm_head.weight is kept when the config unties it, or when it differs from shared.weight.
TEST(Convert, LoneLmHeadKeptWhenUntiedOrDifferent) {
  for (const char* config : {"{\"tie_word_embeddings\": false}", "{}"}) {
    TempDir tmp;
    const std::string in = tmp.file("in");
    fs::create_directories(in);
    write_file(in + "/config.json", config);
    const bool tied = std::string(config) == "{}";
    // shared.weight = 0..5 in a.bin; lm_head.weight in b.bin: equal when untied, else 0,2,4,...
    write_file(in + "/a.bin", six_floats({spec("shared.weight", 0, {2, 3}, {3, 1})}));
    write_file(in + "/b.bin", six_floats({spec("lm_head.weight", 0, {2, 3}, {3, 1})}));
    if (tied) {
      // Different values: element 0 of b.bin's storage changed (CRC rewritten by torch_zip).
      write_file(in + "/b.bin",
                 torch_zip(state_dict_pickle({spec("lm_head.weight", 0, {2, 3}, {3, 1})}),
                           {{"0", f32_bytes({9, 1, 2, 3, 4, 5})}}));
    }
    write_file(in + "/pytorch_model.bin.index.json",
               R"({"weight_map": {"shared.weight": "a.bin", "lm_head.weight": "b.bin"}})");
    const ConvertReport r = convert_to_safetensors(in, tmp.file("out"));
    EXPECT_EQ(r.tensors, 2u) << config;
    EXPECT_TRUE(r.aliases.empty()) << config;
    const auto got = testing::raw_load_safetensors(tmp.file("out/model.safetensors"));
    ASSERT_TRUE(got.count("lm_head.weight")) << config;
    EXPECT_EQ(got.at("lm_head.weight").view(-1)[0].item<float>(), tied ? 9.f : 0.f) << config;
  }
}

TEST(Convert, RefusesAndWritesNothing) {
  TempDir tmp;
  const std::string in = tmp.file("in"), out = tmp.file("out");
  fs::create_directories(in);
  write_file(in + "/config.json", "{}");
  // A corrupt storage: fails while reading, before anything is written.
  std::string bad = six_floats({spec("w", 0, {6}, {1})});
  bad[bad.find("archive/data/0") + 14] ^= 1;  // first data byte of the storage
  write_file(in + "/pytorch_model.bin", bad);
  expect_error([&] { convert_to_safetensors(in, out); }, {"CRC-32"});
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
  // An existing non-empty output folder is left alone.
  write_file(in + "/pytorch_model.bin", six_floats({spec("w", 0, {6}, {1})}));
  fs::create_directories(out);
  write_file(out + "/keep.txt", "mine");
  expect_error([&] { convert_to_safetensors(in, out); }, {out, "not an empty folder"});
  EXPECT_EQ(testing::read_file(out + "/keep.txt"), "mine");
  EXPECT_FALSE(fs::exists(out + "/model.safetensors"));
  // An empty one is filled.
  fs::remove(out + "/keep.txt");
  convert_to_safetensors(in, out);
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  // A safetensors folder has nothing to convert.
  expect_error([&] { convert_to_safetensors(out, tmp.file("again")); }, {"nothing to convert"});
  // A config.json field of the wrong type: one error naming the file and the field.
  write_file(in + "/config.json", R"({"tie_word_embeddings": "yes"})");
  expect_error([&] { convert_to_safetensors(in, tmp.file("again")); },
               {in + "/config.json", "\"tie_word_embeddings\"", "expected true or false"});
  EXPECT_FALSE(fs::exists(tmp.file("again")));
}

}  // namespace
}  // namespace compacter::pytorch_bin_test
