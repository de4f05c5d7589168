// The installed package (issue 15, point 1): `cmake --install` of this build into a fresh prefix,
// examples/generate_with_adapter configured and built against that prefix alone (find_package),
// and its outputs for a batch of texts with a base T5 and a saved adapter, which must equal what
// the installed `compacter predict` prints for them (an independent path, through the CLI) and
// differ from the base model's (so the adapter was attached). Nothing may come from the build
// tree: checked on the package folder CMake used, the compile's include folders and every
// compacter library the example and the installed program load (LD_DEBUG=files names them).
// The same for the pkg-config file: the example compiled with `pkg-config --cflags --libs`.
// Run time: ~43 s each on 2 otherwise idle cores (~90-110 s beside the rest of the suite), ~25 s
// of it compiling the example (one libtorch source file); install, model and adapter ~5 s.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "compacter/nn/checkpoint.h"
#include "compacter/peft/adapter_file.h"
#include "compacter/peft/methods.h"
#include "support/test_support.h"

// A namespace of its own: in a unity build this file shares a translation unit with others.
namespace compacter::install_package_test {
namespace {

namespace fs = std::filesystem;

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command line with stdin from a file (or /dev/null); stdout and stderr captured.
testing::CommandResult run(const std::string& command, const std::string& stdin_file = "") {
  testing::TempDir tmp;
  const std::string line = "(" + command + ") <" +
                           quote(stdin_file.empty() ? "/dev/null" : stdin_file) + " >" +
                           tmp.file("out") + " 2>" + tmp.file("err");
  const int status = std::system(line.c_str());
  testing::CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = testing::read_file(tmp.file("out"));
  r.err = testing::read_file(tmp.file("err"));
  return r;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// NAME:TYPE=VALUE entries of a CMakeCache.txt.
std::map<std::string, std::string> read_cmake_cache(const std::string& path) {
  std::map<std::string, std::string> cache;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line[0] == '/') continue;
    const auto colon = line.find(':'), equals = line.find('=');
    if (colon == std::string::npos || equals == std::string::npos || colon > equals) continue;
    cache[line.substr(0, colon)] = line.substr(equals + 1);
  }
  return cache;
}

// The compacter libraries a run loaded, by path, from the dynamic linker's LD_DEBUG=files report:
// "calling init: /path/libcompacter.so.0.1" for every object it initialises (the lines that say
// "file=" name what was needed, by soname, not the file found).
std::vector<std::string> loaded_compacter_libraries(const std::string& ld_debug) {
  const std::string mark = "calling init: ";
  std::vector<std::string> files;
  for (const std::string& line : lines_of(ld_debug)) {
    const auto at = line.find(mark);
    if (at == std::string::npos || line.find("libcompacter") == std::string::npos) continue;
    const auto start = at + mark.size();
    files.push_back(line.substr(start, line.find_first_of(" \t", start) - start));
  }
  return files;
}

// Both libraries (libcompacter.so.* and the SentencePiece shim) loaded, each from `prefix`.
void expect_loaded_from(const std::string& ld_debug, const std::string& prefix,
                        const std::string& what) {
  const auto files = loaded_compacter_libraries(ld_debug);
  bool library = false, shim = false;
  for (const std::string& file : files) {
    EXPECT_EQ(file.rfind(prefix + "/", 0), 0u)
        << what << " loaded " << file << ", not from " << prefix;
    const std::string name = fs::path(file).filename().string();
    library = library || name.rfind("libcompacter.so", 0) == 0;
    shim = shim || name == "libcompacter_spm.so";
  }
  EXPECT_TRUE(library && shim) << what << " should load libcompacter.so and its shim; loaded:\n"
                               << ld_debug.substr(0, 4000);
}

// Installs this build into a fresh prefix and prepares a base T5 and an adapter, with the outputs
// the installed `compacter predict` gives for `texts` (with the adapter, and without).
class InstallPackage : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_SHARED("data/t5-tokenizer/spiece.model");
    build_ = fs::path(COMPACTER_BINARY).parent_path().string();
    cache_ = read_cmake_cache(build_ + "/CMakeCache.txt");
    if (cache_.empty()) GTEST_SKIP() << "no CMakeCache.txt in " << build_;
    cmake_ = cache_["CMAKE_COMMAND"];
    if (cmake_.empty() || run(quote(cmake_) + " --version").exit_code != 0)
      GTEST_SKIP() << "cmake not available (\"" << cmake_ << "\" from " << build_
                   << "/CMakeCache.txt)";
    libdir_ = cache_.count("CMAKE_INSTALL_LIBDIR") ? cache_["CMAKE_INSTALL_LIBDIR"] : "lib";
    cxx_ = cache_["CMAKE_CXX_COMPILER"];
    prefix_ = tmp_.path() + "/prefix";

    auto install =
        run(quote(cmake_) + " --install " + quote(build_) + " --prefix " + quote(prefix_));
    ASSERT_EQ(install.exit_code, 0) << install.out << install.err;
    for (const std::string& file : std::vector<std::string>{
             "bin/compacter", libdir_ + "/libcompacter.so", libdir_ + "/libcompacter_spm.so",
             "include/compacter/compacter.h", "include/compacter/nn/t5.h",
             "include/compacter/peft/adapter_file.h",
             libdir_ + "/cmake/compacter/compacterConfig.cmake",
             libdir_ + "/cmake/compacter/compacterConfigVersion.cmake",
             libdir_ + "/pkgconfig/compacter.pc"})
      ASSERT_TRUE(fs::exists(prefix_ + "/" + file)) << file << " not installed";
    EXPECT_FALSE(fs::exists(prefix_ + "/include/compacter/core/pch.h"));

    // A tiny T5 of T5's vocabulary with its tokenizer, and an adapter moved well away from its
    // init so that its outputs differ from the base model's.
    auto init = testing::init_tiny_t5_with_t5_vocabulary(model_dir());
    ASSERT_EQ(init.exit_code, 0) << init.err;
    fs::copy_file(testing::shared_path("data/t5-tokenizer/spiece.model"),
                  model_dir() + "/spiece.model");
    torch::manual_seed(11);
    testing::write_moved_adapter(model_dir(), "compacter++", adapter_dir());
    std::string stdin_text;
    for (const auto& t : texts_) stdin_text += t + "\n";
    testing::write_file(texts_file(), stdin_text);

    const std::string predict =
        quote(prefix_ + "/bin/compacter") + " predict --model " + quote(model_dir());
    auto predicted =
        run(clean_env_ + "LD_DEBUG=files " + predict + " --adapter " + quote(adapter_dir()),
            texts_file());
    ASSERT_EQ(predicted.exit_code, 0) << predicted.err;
    expect_loaded_from(predicted.err, prefix_, "the installed compacter");
    expected_ = lines_of(predicted.out);
    ASSERT_EQ(expected_.size(), texts_.size()) << predicted.out;
    auto base = run(clean_env_ + predict, texts_file());
    ASSERT_EQ(base.exit_code, 0) << base.err;
    ASSERT_NE(lines_of(base.out), expected_) << "the adapter should change the outputs";
  }

  std::string model_dir() const { return tmp_.path() + "/model"; }
  std::string adapter_dir() const { return tmp_.path() + "/adapter"; }
  std::string texts_file() const { return tmp_.file("texts.txt"); }
  std::string example_source() const {
    return std::string(COMPACTER_SOURCE_DIR) + "/examples/generate_with_adapter";
  }

  // Runs an example program on the texts: its outputs equal predict's, and it loaded compacter's
  // libraries from the prefix only.
  void expect_predict_outputs(const std::string& program, const std::string& what) {
    auto r = run(clean_env_ + "LD_DEBUG=files " + quote(program) + " " + quote(model_dir()) + " " +
                     quote(adapter_dir()),
                 texts_file());
    ASSERT_EQ(r.exit_code, 0) << r.err.substr(r.err.size() > 4000 ? r.err.size() - 4000 : 0);
    expect_loaded_from(r.err, prefix_, what);
    EXPECT_EQ(lines_of(r.out), expected_) << what;
  }

  // Nothing in the environment may lead CMake or the library elsewhere.
  const std::string clean_env_ =
      "env -u CMAKE_PREFIX_PATH -u compacter_DIR -u compacter_ROOT -u COMPACTER_SPM_SHIM ";
  const std::vector<std::string> texts_ = {
      "rte sentence1: A cat sat on the mat. sentence2: A cat is sitting.",
      "sst2 sentence: a gripping, beautifully made film", "cola sentence: The more books.",
      "translate English to German: hello world", "summarize: the quick brown fox"};
  testing::TempDir tmp_;
  std::string build_, cmake_, libdir_, cxx_, prefix_;
  std::map<std::string, std::string> cache_;
  std::vector<std::string> expected_;
};

// find_package(compacter) with CMAKE_PREFIX_PATH = the prefix, nothing else.
TEST_F(InstallPackage, CMakeExampleBuiltAgainstThePrefixGeneratesAsPredictDoes) {
  std::string configure =
      clean_env_ + quote(cmake_) + " -S " + quote(example_source()) + " -B " +
      quote(tmp_.file("example")) + " -G " + quote(cache_["CMAKE_GENERATOR"]) +
      " -DCMAKE_EXPORT_COMPILE_COMMANDS=ON" + " -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF" +
      " -DCMAKE_CXX_COMPILER=" + quote(cxx_) + " -DCMAKE_PREFIX_PATH=" + quote(prefix_);
  if (!cache_["CMAKE_MAKE_PROGRAM"].empty())
    configure += " -DCMAKE_MAKE_PROGRAM=" + quote(cache_["CMAKE_MAKE_PROGRAM"]);
  auto configured = run(configure);
  ASSERT_EQ(configured.exit_code, 0) << configured.out << configured.err;
  const auto example_cache = read_cmake_cache(tmp_.file("example/CMakeCache.txt"));
  ASSERT_TRUE(example_cache.count("compacter_DIR"));
  EXPECT_EQ(fs::weakly_canonical(example_cache.at("compacter_DIR")),
            fs::weakly_canonical(prefix_ + "/" + libdir_ + "/cmake/compacter"));
  auto built = run(clean_env_ + quote(cmake_) + " --build " + quote(tmp_.file("example")));
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  const std::string commands = testing::read_file(tmp_.file("example/compile_commands.json"));
  EXPECT_NE(commands.find(prefix_ + "/include"), std::string::npos) << commands;
  EXPECT_EQ(commands.find(std::string(COMPACTER_SOURCE_DIR) + "/src"), std::string::npos)
      << commands;
  EXPECT_EQ(commands.find(build_ + "/include"), std::string::npos) << commands;
  expect_predict_outputs(tmp_.file("example/generate_with_adapter"), "the CMake example");
}

// The same program compiled and linked with `pkg-config --cflags --libs compacter` alone.
TEST_F(InstallPackage, PkgConfigBuildOfTheExampleGeneratesAsPredictDoes) {
  if (run("command -v pkg-config").exit_code != 0) GTEST_SKIP() << "pkg-config not found";
  if (run("pkg-config --exists nlohmann_json").exit_code != 0)
    GTEST_SKIP() << "pkg-config does not know nlohmann_json, which compacter.pc requires";
  // The prefix's folder first; the rest of PKG_CONFIG_PATH stays (it may be where
  // nlohmann_json.pc is), and the build tree is never on it.
  const std::string pc_path = "PKG_CONFIG_PATH=" + quote(prefix_ + "/" + libdir_ + "/pkgconfig") +
                              "${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}";
  auto flags = run(clean_env_ + pc_path + " pkg-config --cflags --libs compacter");
  ASSERT_EQ(flags.exit_code, 0) << flags.err;
  EXPECT_NE(flags.out.find(prefix_), std::string::npos) << flags.out;
  EXPECT_EQ(flags.out.find(std::string(COMPACTER_SOURCE_DIR) + "/src"), std::string::npos)
      << flags.out;
  auto built =
      run(clean_env_ + pc_path + " sh -c " +
          quote(quote(cxx_) + " " + quote(example_source() + "/main.cpp") + " -o " +
                quote(tmp_.file("example-pc")) + " $(pkg-config --cflags --libs compacter)"));
  ASSERT_EQ(built.exit_code, 0) << flags.out << "\n" << built.out << built.err;
  expect_predict_outputs(tmp_.file("example-pc"), "the example built with pkg-config");
}

}  // namespace
}  // namespace compacter::install_package_test
