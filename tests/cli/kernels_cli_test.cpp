// `--kernels auto|default` (README "Kernels at start-up"): the launcher acts on it before the
// program loads OpenBLAS, and compacter-core accepts the same option in the same place (before
// the command), with one usage error for another value.
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace compacter {
namespace {

using testing::run_compacter;

TEST(KernelsCli, TheOptionIsAcceptedBeforeTheCommand) {
  for (const char* args :
       {"--kernels default --version", "--kernels auto --version", "--kernels=default --version"}) {
    const auto r = run_compacter(args);
    EXPECT_EQ(r.exit_code, 0) << args << ": " << r.err;
    EXPECT_NE(r.out.find("compacter "), std::string::npos) << args;
  }
}

TEST(KernelsCli, AnotherValueIsAUsageError) {
  const auto r = run_compacter("--kernels fast methods");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--kernels"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("fast"), std::string::npos) << r.err;
}

TEST(KernelsCli, HelpDescribesIt) {
  const auto r = run_compacter("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--kernels"), std::string::npos);
  EXPECT_NE(r.out.find("OPENBLAS_CORETYPE"), std::string::npos);
}

}  // namespace
}  // namespace compacter
