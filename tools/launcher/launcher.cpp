// `compacter`, the command users run: it sets the environment that the numerical libraries read
// only once, while they load (libgomp, OpenBLAS), and then replaces itself with the program
// proper, `compacter-core` beside it (or in libexec/compacter/ once installed). Setting these
// from inside a program that links libtorch is too late (they were read before main), and
// re-executing that program would pay its ~0.7 s start-up twice; this launcher links nothing but
// the C library and takes about a millisecond.
//
// GOMP_SPINCOUNT=10000: libgomp's threads wait at the end of every parallel region by spinning,
// by default 300,000 iterations before they sleep. When another process competes for the cores, a
// spinning thread burns the time slice its descheduled partner needs: a batch of greedy decoding
// (thousands of small operators) ran 10x slower than on a quiet machine (500 inputs, a
// t5-small-sized decoder, 2 threads on 2 cores beside two busy processes: 49.5 s against 4.9 s
// quiet; with a spin count of 10,000: 9.5 s; README "Threads and a busy machine").
//
// A variable the user set is never overridden; COMPACTER_LAUNCHER_KEEP_ENV=1 changes nothing.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::string directory_of_this_program() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool executable(const std::string& path) {
  return access(path.c_str(), X_OK) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  (void)argc;
  if (!std::getenv("COMPACTER_LAUNCHER_KEEP_ENV")) {
    if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT"))
      setenv("GOMP_SPINCOUNT", "10000", 0);
  }
  const std::string dir = directory_of_this_program();
  // Beside the launcher in a build tree; where cmake --install put it otherwise.
  const std::string candidates[] = {dir + "/compacter-core",
                                    dir + "/" COMPACTER_CORE_FROM_BIN "/compacter-core"};
  for (const std::string& core : candidates) {
    if (!executable(core)) continue;
    execv(core.c_str(), argv);
    std::fprintf(stderr, "compacter: error: cannot run %s: %s\n", core.c_str(),
                 std::strerror(errno));
    return 127;
  }
  std::fprintf(stderr,
               "compacter: error: the program compacter-core is not beside %s/compacter nor in "
               "%s/" COMPACTER_CORE_FROM_BIN " (an incomplete build or installation)\n",
               dir.c_str(), dir.c_str());
  return 127;
}
