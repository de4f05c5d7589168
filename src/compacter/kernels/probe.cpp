// Trials in child processes: see probe.h.
#include "compacter/kernels/probe.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <sstream>
#include <thread>

#include "compacter/core/error.h"

namespace compacter::kernels {

namespace {

// sgemm_ as Fortran BLAS exports it; the two hidden lengths of the character arguments
// (gfortran's convention) are passed too.
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                       const float*, const int*, const float*, const int*, const float*, float*,
                       const int*, size_t, size_t);
using Name = const char* (*)();
using SetThreads = void (*)(int);

void say(int fd, const std::string& line) {
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

void call(Sgemm sgemm, char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a,
          int64_t lda, const float* b, int64_t ldb, float* c) {
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  const int ilda = static_cast<int>(lda), ildb = static_cast<int>(ldb), ildc = im;
  const float one = 1, zero = 0;
  sgemm(&ta, &tb, &im, &in, &ik, &one, a, &ilda, b, &ildb, &zero, c, &ildc, 1, 1);
}

// A child's set-up before it loads the BLAS: no standard streams (a library's messages must not
// reach the user), OPENBLAS_CORETYPE = core ("" unset: the default) and the threads.
void prepare_child(const std::string& core, int threads) {
  const int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
  }
  if (core.empty())
    unsetenv("OPENBLAS_CORETYPE");
  else
    setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  setenv("OPENBLAS_NUM_THREADS", cat(threads).c_str(), 1);
  setenv("OMP_NUM_THREADS", cat(threads).c_str(), 1);
}

// The child's side: reports on fd, never returns.
[[noreturn]] void child(int fd, const std::string& requested, const std::vector<GemmCase>& checks,
                        const ProbeSettings& s) {
  prepare_child(requested, 1);
  void* lib = dlopen(s.library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    say(fd, "failure cannot load " + s.library + ": " + one_line(why ? why : "?"));
    _exit(0);
  }
  say(fd, "loaded");
  auto file_of = [&](void* symbol) {
    Dl_info info;
    if (symbol && dladdr(symbol, &info) && info.dli_fname) say(fd, cat("file ", info.dli_fname));
  };
  link_map* map = nullptr;
  if (dlinfo(lib, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && map->l_name[0])
    say(fd, cat("file ", map->l_name));
  const auto corename = reinterpret_cast<Name>(dlsym(lib, "openblas_get_corename"));
  const auto config = reinterpret_cast<Name>(dlsym(lib, "openblas_get_config"));
  const auto sgemm = reinterpret_cast<Sgemm>(dlsym(lib, "sgemm_"));
  file_of(reinterpret_cast<void*>(sgemm));
  file_of(reinterpret_cast<void*>(corename));
  if (corename) {
    const char* ran = corename();
    say(fd, cat("ran ", one_line(ran ? ran : "")));
  }
  if (config) {
    const char* text = config();
    say(fd, cat("config ", one_line(text ? text : "")));
  }
  if (!corename || !sgemm) {
    say(fd, corename ? "failure no sgemm_" : "failure not OpenBLAS (no openblas_get_corename)");
    _exit(0);
  }
  if (auto set = reinterpret_cast<SetThreads>(dlsym(lib, "openblas_set_num_threads"))) set(1);
  const char* ran = corename();
  if (!requested.empty() && !same_core(requested, ran ? ran : "")) {
    say(fd, "done");
    _exit(0);
  }
  double worst = 0;
  for (const GemmCase& c : checks) {
    std::vector<float> out(static_cast<size_t>(c.m * c.n), NAN);
    call(sgemm, c.transa, c.transb, c.m, c.n, c.k, c.a.data(), c.lda(), c.b.data(), c.ldb(),
         out.data());
    const double r = gemm_error_ratio(c, out.data());
    if (!(r <= worst)) worst = r;
  }
  say(fd, cat("error ", std::isfinite(worst) ? cat(worst) : std::string("inf")));
  const int64_t n = s.timed_size;
  std::vector<float> a(static_cast<size_t>(n * n)), b(a.size()), c(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>(i % 7) * 0.25f - 0.75f;
    b[i] = static_cast<float>(i % 5) * 0.5f - 1.0f;
  }
  using Clock = std::chrono::steady_clock;
  call(sgemm, 'N', 'N', n, n, n, a.data(), n, b.data(), n, c.data());  // warm-up
  double best = INFINITY;
  const auto start = Clock::now();
  for (int calls = 0;; ++calls) {
    const auto t0 = Clock::now();
    if (calls >= s.min_timed_calls &&
        std::chrono::duration<double>(t0 - start).count() >= s.timed_seconds)
      break;
    call(sgemm, 'N', 'N', n, n, n, a.data(), n, b.data(), n, c.data());
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  say(fd, cat("gflops ", 2.0 * static_cast<double>(n * n * n) / best / 1e9));
  say(fd, "done");
  _exit(0);
}

// oneDNN's row-major sgemm (dnnl.h, oneDNN 2.x): dnnl_dim_t is int64_t, 0 is dnnl_success.
using DnnlSgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);

// Row-major C[m, n] = op(A) op(B) through the column-major sgemm_: C^T = op(B)^T op(A)^T.
void row_major(Sgemm sgemm, char ta, char tb, int64_t m, int64_t n, int64_t k, const float* a,
               int64_t lda, const float* b, int64_t ldb, float* c) {
  call(sgemm, tb, ta, n, m, k, b, ldb, a, lda, c);
}

// The linear comparison's side of a child: reports on fd, never returns.
[[noreturn]] void linear_child(int fd, const std::string& core, int threads,
                               const std::vector<GemmCase>& checks, const ProbeSettings& s) {
  prepare_child(core, threads);
  void* blas = dlopen(s.library.c_str(), RTLD_NOW | RTLD_LOCAL);
  const auto sgemm = blas ? reinterpret_cast<Sgemm>(dlsym(blas, "sgemm_")) : nullptr;
  if (!sgemm) {
    say(fd, "failure no sgemm_ in " + s.library);
    _exit(0);
  }
  if (auto set = reinterpret_cast<SetThreads>(dlsym(blas, "openblas_set_num_threads")))
    set(threads);
  Dl_info info;
  link_map* map = nullptr;  // the BLAS's files, for the cache (as the core trials report them)
  if (dlinfo(blas, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && map->l_name[0])
    say(fd, cat("file ", map->l_name));
  if (dladdr(reinterpret_cast<void*>(sgemm), &info) && info.dli_fname)
    say(fd, cat("file ", info.dli_fname));
  void* dnnl = dlopen(s.onednn_library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!dnnl) {
    const char* why = dlerror();
    say(fd, "failure cannot load " + s.onednn_library + ": " + one_line(why ? why : "?"));
    _exit(0);
  }
  const auto dnnl_sgemm = reinterpret_cast<DnnlSgemm>(dlsym(dnnl, "dnnl_sgemm"));
  if (!dnnl_sgemm) {
    say(fd, "failure no dnnl_sgemm in " + s.onednn_library);
    _exit(0);
  }
  if (dladdr(reinterpret_cast<void*>(dnnl_sgemm), &info) && info.dli_fname)
    say(fd, cat("file ", info.dli_fname));
  // The checks, column-major as gemm_check.h states them: C^T = op(B)^T op(A)^T row-major.
  double worst = 0;
  for (const GemmCase& c : checks) {
    std::vector<float> out(static_cast<size_t>(c.m * c.n), NAN);
    const int status = dnnl_sgemm(c.transb, c.transa, c.n, c.m, c.k, 1.0f, c.b.data(), c.ldb(),
                                  c.a.data(), c.lda(), 0.0f, out.data(), c.m);
    const double r = status == 0 ? gemm_error_ratio(c, out.data()) : INFINITY;
    if (!(r <= worst)) worst = r;
  }
  say(fd, cat("onednn_error ", std::isfinite(worst) ? cat(worst) : std::string("inf")));
  // A frozen T5 feed-forward layer's products, row-major, as each kernel's layers run them: x
  // W_i^T, h W_o^T (forward), G W_i and G W_o (the input gradients). OpenBLAS (torch::linear) reads
  // W transposed; oneDNN reads the W^T the layer keeps (nn/linear_kernel.h, FrozenWeight): 'N',
  // 'N' on the same buffer.
  const int64_t rows = s.linear_rows, d = s.linear_width, f = s.linear_inner;
  struct Product {
    char ta, tb;
    int64_t m, n, k;
  };
  const Product products[] = {{'N', 'T', rows, f, d},
                              {'N', 'T', rows, d, f},
                              {'N', 'N', rows, d, f},
                              {'N', 'N', rows, f, d}};
  std::vector<float> a(static_cast<size_t>(rows * f)), b(static_cast<size_t>(d * f)),
      c(static_cast<size_t>(rows * f));
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) * 0.25f - 0.75f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 5) * 0.5f - 1.0f;
  auto run = [&](int kernel, const Product& p) {
    const int64_t lda = p.k;
    if (kernel == 0) {
      row_major(sgemm, p.ta, p.tb, p.m, p.n, p.k, a.data(), lda, b.data(), p.tb == 'N' ? p.n : p.k,
                c.data());
    } else if (const int status = dnnl_sgemm(p.ta, 'N', p.m, p.n, p.k, 1.0f, a.data(), lda,
                                             b.data(), p.n, 0.0f, c.data(), p.n)) {
      say(fd, cat("failure dnnl_sgemm returned status ", status));
      _exit(0);
    }
  };
  using Clock = std::chrono::steady_clock;
  double best[2][4];
  for (int kernel = 0; kernel < 2; ++kernel)
    for (int i = 0; i < 4; ++i) {
      run(kernel, products[i]);  // warm-up
      best[kernel][i] = INFINITY;
    }
  const auto start = Clock::now();
  for (int round = 0; round < s.linear_rounds; ++round) {
    // A slow BLAS (the reference one) gets fewer rounds, not a timeout.
    if (round > 0 &&
        std::chrono::duration<double>(Clock::now() - start).count() > s.linear_budget_seconds)
      break;
    for (int j = 0; j < 2; ++j) {
      const int kernel = (round + j) % 2;  // alternate which kernel goes first
      for (int i = 0; i < 4; ++i) {
        const auto t0 = Clock::now();
        run(kernel, products[i]);
        best[kernel][i] =
            std::min(best[kernel][i], std::chrono::duration<double>(Clock::now() - t0).count());
      }
    }
  }
  double flop = 0, seconds[2] = {0, 0};
  for (int i = 0; i < 4; ++i) {
    flop += 2.0 * static_cast<double>(products[i].m * products[i].n * products[i].k);
    for (int kernel = 0; kernel < 2; ++kernel) seconds[kernel] += best[kernel][i];
  }
  say(fd, cat("blas_gflops ", flop / seconds[0] / 1e9));
  say(fd, cat("onednn_gflops ", flop / seconds[1] / 1e9));
  say(fd, "done");
  _exit(0);
}

// What a child said on its pipe, and how it ended.
struct ChildOutcome {
  std::string text;
  bool timed_out = false;
  int status = 0;
  std::string failure;  // the child could not be started
};

// Runs body(fd) in a forked child (which must _exit) and collects what it writes to fd until it
// exits or `timeout_seconds` pass (then it is killed).
ChildOutcome run_child(const std::function<void(int)>& body, double timeout_seconds) {
  ChildOutcome r;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    r.failure = cat("cannot create a pipe: ", std::strerror(errno));
    return r;
  }
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    r.failure = cat("cannot fork: ", std::strerror(errno));
    return r;
  }
  if (pid == 0) {
    close(fds[0]);
    body(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_seconds));
  auto left_ms = [&] {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return static_cast<int>(std::max<int64_t>(0, left));
  };
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, left_ms());
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      r.timed_out = true;
      break;
    }
    char buf[4096];
    const ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child closed the pipe: it exited
    r.text.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  for (;;) {
    const pid_t w = waitpid(pid, &r.status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (r.timed_out || left_ms() == 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      waitpid(pid, &r.status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return r;
}

// A child's lines, "KEY VALUE" (the value may be empty), in order.
std::vector<std::pair<std::string, std::string>> said(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    const size_t space = line.find(' ');
    out.emplace_back(line.substr(0, space),
                     space == std::string::npos ? "" : line.substr(space + 1));
  }
  return out;
}

void add_once(std::vector<std::string>& files, const std::string& file) {
  if (std::find(files.begin(), files.end(), file) == files.end()) files.push_back(file);
}

// Why a child that did not say "done" failed.
std::string unfinished(const ChildOutcome& o, double timeout_seconds) {
  if (o.timed_out) return cat("did not finish within ", timeout_seconds, " s");
  if (WIFSIGNALED(o.status))
    return cat("crashed (signal ", WTERMSIG(o.status), ", ", strsignal(WTERMSIG(o.status)), ")");
  return cat("exited early (code ", WIFEXITED(o.status) ? WEXITSTATUS(o.status) : -1, ")");
}

}  // namespace

ProbeReport run_trial(const std::string& requested, const std::vector<GemmCase>& checks,
                      const ProbeSettings& settings) {
  ProbeReport r;
  r.trial.requested = requested;
  const ChildOutcome o =
      run_child([&](int fd) { child(fd, requested, checks, settings); }, settings.timeout_seconds);
  if (!o.failure.empty()) {
    r.trial.failure = o.failure;
    return r;
  }
  bool done = false;
  for (const auto& [key, value] : said(o.text)) {
    if (key == "loaded") r.loaded = true;
    if (key == "file") add_once(r.files, value);
    if (key == "ran") {
      r.openblas = true;
      r.trial.ran = value;
    }
    if (key == "config") r.config = value;
    if (key == "failure") r.trial.failure = value;
    if (key == "error") r.trial.error_ratio = value == "inf" ? INFINITY : std::atof(value.c_str());
    if (key == "gflops") r.trial.gflops = std::atof(value.c_str());
    if (key == "done") done = true;
  }
  if (r.trial.failure.empty() && !done) r.trial.failure = unfinished(o, settings.timeout_seconds);
  return r;
}

LinearReport run_linear_trial(const std::string& core, int threads,
                              const std::vector<GemmCase>& checks, const ProbeSettings& settings) {
  LinearReport r;
  r.trial.threads = threads;
  const ChildOutcome o =
      run_child([&](int fd) { linear_child(fd, core, threads, checks, settings); },
                settings.linear_timeout_seconds);
  if (!o.failure.empty()) {
    r.trial.failure = o.failure;
    return r;
  }
  bool done = false;
  for (const auto& [key, value] : said(o.text)) {
    if (key == "file") add_once(r.files, value);
    if (key == "failure") r.trial.failure = value;
    if (key == "onednn_error")
      r.trial.onednn_error_ratio = value == "inf" ? INFINITY : std::atof(value.c_str());
    if (key == "blas_gflops") r.trial.blas_gflops = std::atof(value.c_str());
    if (key == "onednn_gflops") r.trial.onednn_gflops = std::atof(value.c_str());
    if (key == "done") done = true;
  }
  if (r.trial.failure.empty() && !done)
    r.trial.failure = unfinished(o, settings.linear_timeout_seconds);
  return r;
}

}  // namespace compacter::kernels
