// The layer ladder of the README's "Layout": core -> dist -> kernels -> io -> data -> nn -> peft
// -> tasks -> pretrain -> train -> interop -> serve -> plot -> tools. A file under
// src/compacter/<layer>/ may include "compacter/<same or lower layer>/..." only; nothing under src/
// includes tools/ (the command-line program). Checked on this source tree (COMPACTER_SOURCE_DIR),
// and the checker itself on fake trees, so that the check is known to fail when it should.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace compacter {
namespace {

namespace fs = std::filesystem;

// Lowest first. A layer folder that does not exist yet (serve) is fine; a folder under
// src/compacter that is not listed here is reported, so that the ladder stays complete.
const std::vector<std::string>& ladder() {
  static const std::vector<std::string> layers = {
      "core",  "dist",     "kernels", "io",      "data",  "nn",  "peft",
      "tasks", "pretrain", "train",   "interop", "serve", "plot"};
  return layers;
}

// Position of `layer` in the ladder, or -1.
int rank_of(const std::string& layer) {
  const auto& l = ladder();
  auto it = std::find(l.begin(), l.end(), layer);
  return it == l.end() ? -1 : static_cast<int>(it - l.begin());
}

bool is_source(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".h" || ext == ".hpp" || ext == ".cpp" || ext == ".cc" || ext == ".inc";
}

// The first path component of `path` ("compacter/nn/t5.h" -> "compacter").
std::string head_of(const fs::path& path) {
  return path.begin() == path.end() ? std::string() : path.begin()->string();
}

// Every violation of the ladder under root/src, one line each: "file:line: what".
std::vector<std::string> layering_violations(const fs::path& root) {
  std::vector<std::string> out;
  const fs::path src = root / "src";
  const fs::path lib = src / "compacter";
  if (!fs::is_directory(lib)) return {"no folder " + lib.string()};
  for (const auto& entry : fs::directory_iterator(lib))
    if (entry.is_directory() && rank_of(entry.path().filename().string()) < 0)
      out.push_back("src/compacter/" + entry.path().filename().string() +
                    ": a folder that is not in the layer ladder (add it to ladder() in "
                    "tests/meta/layering_test.cpp and to the README's Layout)");

  static const std::regex include_re(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"])");
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(src))
    if (entry.is_regular_file() && is_source(entry.path())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    const fs::path rel = file.lexically_relative(root);
    // The layer of the including file: src/compacter/<layer>/...; files elsewhere under src/
    // (src/compacter/*.h, src/spm_shim) are only held to "no tools/".
    const fs::path in_lib = file.lexically_relative(lib);
    const bool in_layer =
        head_of(in_lib) != ".." && std::distance(in_lib.begin(), in_lib.end()) > 1;
    const std::string layer = in_layer ? head_of(in_lib) : "";
    std::ifstream in(file);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      std::smatch m;
      if (!std::regex_search(line, m, include_re)) continue;
      const std::string included = m[1];
      const std::string where = rel.string() + ":" + std::to_string(number) + ": ";
      // A quoted include may be relative to the including file.
      const fs::path beside = (file.parent_path() / included).lexically_normal();
      const std::string beside_from_root = beside.lexically_relative(root).generic_string();
      if (included.rfind("tools/", 0) == 0 || beside_from_root.rfind("tools/", 0) == 0) {
        out.push_back(where + "includes \"" + included +
                      "\": src/ never includes tools/ (the command-line program)");
        continue;
      }
      const fs::path target =
          fs::exists(beside) ? beside.lexically_relative(src) : fs::path(included);
      const std::string first = head_of(target);
      // Files of a folder outside the ladder have no rank: the folder is reported above.
      if (!in_layer || rank_of(layer) < 0 || first != "compacter") continue;
      const fs::path inside = target.lexically_relative("compacter");
      if (std::distance(inside.begin(), inside.end()) < 2) continue;  // compacter/x.h
      const std::string to = head_of(inside);
      if (rank_of(to) < 0) {
        out.push_back(where + "includes \"" + included + "\" from \"" + to +
                      "\", which is not in the layer ladder");
      } else if (rank_of(to) > rank_of(layer)) {
        out.push_back(where + "includes \"" + included + "\": layer " + layer +
                      " may not include the higher layer " + to);
      }
    }
  }
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::ostringstream s;
  for (const auto& l : lines) s << l << "\n";
  return s.str();
}

TEST(Layering, SourceTreeIncludesOnlyDownTheLadder) {
  const fs::path root = COMPACTER_SOURCE_DIR;
  ASSERT_TRUE(fs::is_directory(root / "src" / "compacter")) << root;
  const auto violations = layering_violations(root);
  EXPECT_TRUE(violations.empty()) << joined(violations);
}

// A fake source tree for the checker: files with the given contents under a temporary root.
class FakeTree {
 public:
  void add(const std::string& relative, const std::string& content) {
    const fs::path p = fs::path(dir_.path()) / relative;
    fs::create_directories(p.parent_path());
    testing::write_file(p.string(), content);
  }
  std::vector<std::string> violations() const { return layering_violations(dir_.path()); }

 private:
  testing::TempDir dir_;
};

bool mentions(const std::vector<std::string>& lines, const std::string& text) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(text) != std::string::npos; });
}

TEST(Layering, CheckerAcceptsIncludesDownTheLadder) {
  FakeTree t;
  t.add("src/compacter/core/error.h", "#pragma once\n#include <string>\n");
  t.add("src/compacter/nn/t5.h",
        "#include \"compacter/core/error.h\"\n#include <compacter/io/x.h>\n#include \"t5.h\"\n");
  t.add("src/compacter/train/loop.cpp",
        "#include \"compacter/train/loop.h\"\n#include \"compacter/pretrain/corpus.h\"\n"
        "// #include \"compacter/serve/server.h\" in a comment\n");
  t.add("src/compacter/compacter.h", "#include \"compacter/train/loop.h\"\n");
  t.add("src/spm_shim/shim.cpp", "#include <sentencepiece_processor.h>\n");
  EXPECT_TRUE(t.violations().empty()) << joined(t.violations());
}

TEST(Layering, CheckerReportsAnIncludeUpTheLadder) {
  FakeTree t;
  t.add("src/compacter/core/ok.h", "#include <vector>\n");
  t.add("src/compacter/nn/t5.cpp",
        "#include \"compacter/nn/t5.h\"\n\n#include \"compacter/peft/methods.h\"\n");
  t.add("src/compacter/io/a.h", "  #  include <compacter/train/loop.h>\n");
  t.add("src/compacter/tasks/b.cpp", "#include \"compacter/serve/server.h\"\n");
  const auto v = t.violations();
  EXPECT_EQ(v.size(), 3u) << joined(v);
  EXPECT_TRUE(mentions(v,
                       "src/compacter/nn/t5.cpp:3: includes \"compacter/peft/methods.h\": "
                       "layer nn may not include the higher layer peft"))
      << joined(v);
  EXPECT_TRUE(mentions(v, "src/compacter/io/a.h:1:")) << joined(v);
  EXPECT_TRUE(mentions(v, "layer tasks may not include the higher layer serve")) << joined(v);
}

TEST(Layering, CheckerReportsToolsIncludedFromSrc) {
  FakeTree t;
  t.add("tools/compacter/common.h", "#pragma once\n");
  t.add("src/compacter/train/a.cpp", "#include \"tools/compacter/common.h\"\n");
  t.add("src/compacter/core/b.cpp", "#include \"../../../tools/compacter/common.h\"\n");
  t.add("src/spm_shim/c.cpp", "#include \"../../tools/compacter/common.h\"\n");
  const auto v = t.violations();
  EXPECT_EQ(v.size(), 3u) << joined(v);
  EXPECT_TRUE(mentions(v,
                       "src/compacter/train/a.cpp:1: includes \"tools/compacter/common.h\": "
                       "src/ never includes tools/"))
      << joined(v);
  EXPECT_TRUE(mentions(v, "src/compacter/core/b.cpp:1:")) << joined(v);
  EXPECT_TRUE(mentions(v, "src/spm_shim/c.cpp:1:")) << joined(v);
}

TEST(Layering, CheckerReportsAFolderOutsideTheLadder) {
  FakeTree t;
  t.add("src/compacter/core/a.h", "#pragma once\n");
  t.add("src/compacter/extras/b.h", "#include \"compacter/core/a.h\"\n");
  t.add("src/compacter/nn/c.h", "#include \"compacter/extras/b.h\"\n");
  const auto v = t.violations();
  EXPECT_EQ(v.size(), 2u) << joined(v);
  EXPECT_TRUE(mentions(v, "src/compacter/extras: a folder that is not in the layer ladder"))
      << joined(v);
  EXPECT_TRUE(mentions(v,
                       "src/compacter/nn/c.h:1: includes \"compacter/extras/b.h\" from "
                       "\"extras\", which is not in the layer ladder"))
      << joined(v);
}

TEST(Layering, CheckerReportsARelativeIncludeUpTheLadder) {
  FakeTree t;
  t.add("src/compacter/train/loop.h", "#pragma once\n");
  t.add("src/compacter/nn/t5.cpp", "#include \"../train/loop.h\"\n");
  const auto v = t.violations();
  EXPECT_EQ(v.size(), 1u) << joined(v);
  EXPECT_TRUE(mentions(v, "layer nn may not include the higher layer train")) << joined(v);
}

}  // namespace
}  // namespace compacter
