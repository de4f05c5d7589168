// A file system that fails on cue, for the fault-injection tests (issue #13): loaded into
// `compacter` with LD_PRELOAD, it makes writes to the files whose path contains
// $COMPACTER_FAULT_PATH fail as a full disk or a read-only file system would, through the C
// library's public entry points that the program and libstdc++ call (open, fopen, mkstemp,
// write, writev, sendfile, copy_file_range, mkdir, ...).
//
//   COMPACTER_FAULT=enospc  files open, then each write fails with ENOSPC ("No space left on
//                           device") once COMPACTER_FAULT_AFTER_BYTES (default 0) were written
//   COMPACTER_FAULT=erofs   opening for writing, mkdir and mkdtemp fail with EROFS ("Read-only file
//                           system"), as after ext4's errors=remount-ro
//   COMPACTER_FAULT_PATH    substring of the paths that fail (required)
//   COMPACTER_FAULT_SKIP    how many matching opens / mkdirs to leave alone first (default 0):
//                           e.g. 1 lets the first checkpoint through and fails the second
//
// Every path it fails is appended to $COMPACTER_FAULT_LOG when set, so that a test can tell that
// the fault happened. Nothing else changes: other files, reads and every other call go straight
// to the C library.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

namespace {

constexpr int kMaxFd = 4096;

enum class Fault { none, enospc, erofs };

struct Settings {
  Fault fault = Fault::none;
  const char* path = nullptr;
  long skip = 0;
  long long after_bytes = 0;
  const char* log = nullptr;
};

const Settings& settings() {
  static const Settings s = [] {
    Settings out;
    const char* fault = getenv("COMPACTER_FAULT");
    const char* path = getenv("COMPACTER_FAULT_PATH");
    if (!fault || !path || !*path) return out;
    if (strcmp(fault, "enospc") == 0) out.fault = Fault::enospc;
    if (strcmp(fault, "erofs") == 0) out.fault = Fault::erofs;
    out.path = path;
    if (const char* v = getenv("COMPACTER_FAULT_SKIP")) out.skip = strtol(v, nullptr, 10);
    if (const char* v = getenv("COMPACTER_FAULT_AFTER_BYTES"))
      out.after_bytes = strtoll(v, nullptr, 10);
    out.log = getenv("COMPACTER_FAULT_LOG");
    return out;
  }();
  return s;
}

std::atomic<long> matches_seen{0};
// Per descriptor: 1 + the bytes a failing file may still take; 0 (as zero-initialised) for the
// descriptors left alone.
std::atomic<long long> budget[kMaxFd];

template <class F>
F real(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

void log_fault(const char* what, const char* path) {
  const Settings& s = settings();
  if (!s.log) return;
  static auto real_open = real<int (*)(const char*, int, ...)>("open");
  static auto real_write = real<ssize_t (*)(int, const void*, size_t)>("write");
  const int fd = real_open(s.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  char line[4200];
  const int n = snprintf(line, sizeof line, "%s %s\n", what, path ? path : "(descriptor)");
  if (n > 0)
    real_write(fd, line,
               static_cast<size_t>(n < static_cast<int>(sizeof line) ? n : sizeof line - 1));
  close(fd);
}

// Whether this open / mkdir of `path` is one that fails (counting the skipped ones).
bool hits(const char* path) {
  const Settings& s = settings();
  if (s.fault == Fault::none || !path || !strstr(path, s.path)) return false;
  return matches_seen.fetch_add(1) >= s.skip;
}

bool opens_for_writing(int flags) {
  return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC | O_APPEND)) != 0;
}

bool mode_writes(const char* mode) {
  return mode && (strchr(mode, 'w') || strchr(mode, 'a') || strchr(mode, '+'));
}

// Before the real open: -1 with errno set when it must fail (erofs), else whether the descriptor
// it returns is to be watched (enospc).
int before_open(const char* path, bool writing, bool& watch) {
  watch = false;
  if (!writing || !hits(path)) return 0;
  if (settings().fault == Fault::erofs) {
    log_fault("erofs", path);
    errno = EROFS;
    return -1;
  }
  log_fault("enospc", path);
  watch = true;
  return 0;
}

void after_open(int fd, bool watch) {
  if (fd >= 0 && fd < kMaxFd) budget[fd].store(watch ? settings().after_bytes + 1 : 0);
}

void forget(int fd) {
  if (fd >= 0 && fd < kMaxFd) budget[fd].store(0);
}

// How many of `count` bytes a write to `fd` may write: count, fewer, or -1 (fails: ENOSPC).
ssize_t allowed(int fd, size_t count) {
  if (fd < 0 || fd >= kMaxFd || budget[fd].load() == 0) return static_cast<ssize_t>(count);
  const long long left = budget[fd].load() - 1;
  if (left <= 0) {
    errno = ENOSPC;
    return -1;
  }
  const long long n = left < static_cast<long long>(count) ? left : static_cast<long long>(count);
  budget[fd].store(left - n + 1);
  return static_cast<ssize_t>(n);
}

int open_mode(int flags, va_list args) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(args, int) : 0;
}

// An open-like call through the real function `f`, with the fault decided before and the
// descriptor watched after.
template <class F, class... Args>
int opened(F f, const char* path, bool writing, Args... args) {
  bool watch = false;
  if (before_open(path, writing, watch) < 0) return -1;
  const int fd = f(args...);
  after_open(fd, watch);
  return fd;
}

}  // namespace

extern "C" {

int open(const char* path, int flags, ...) {
  static auto f = real<int (*)(const char*, int, ...)>("open");
  va_list args;
  va_start(args, flags);
  const int mode = open_mode(flags, args);
  va_end(args);
  return opened(f, path, opens_for_writing(flags), path, flags, mode);
}

int open64(const char* path, int flags, ...) {
  static auto f = real<int (*)(const char*, int, ...)>("open64");
  va_list args;
  va_start(args, flags);
  const int mode = open_mode(flags, args);
  va_end(args);
  return opened(f, path, opens_for_writing(flags), path, flags, mode);
}

int openat(int dirfd, const char* path, int flags, ...) {
  static auto f = real<int (*)(int, const char*, int, ...)>("openat");
  va_list args;
  va_start(args, flags);
  const int mode = open_mode(flags, args);
  va_end(args);
  return opened(f, path, opens_for_writing(flags), dirfd, path, flags, mode);
}

int openat64(int dirfd, const char* path, int flags, ...) {
  static auto f = real<int (*)(int, const char*, int, ...)>("openat64");
  va_list args;
  va_start(args, flags);
  const int mode = open_mode(flags, args);
  va_end(args);
  return opened(f, path, opens_for_writing(flags), dirfd, path, flags, mode);
}

int creat(const char* path, mode_t mode) {
  return open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

int creat64(const char* path, mode_t mode) {
  return open64(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

FILE* fopen(const char* path, const char* mode) {
  static auto f = real<FILE* (*)(const char*, const char*)>("fopen");
  bool watch = false;
  if (before_open(path, mode_writes(mode), watch) < 0) return nullptr;
  FILE* file = f(path, mode);
  if (file) after_open(fileno(file), watch);
  return file;
}

FILE* fopen64(const char* path, const char* mode) {
  static auto f = real<FILE* (*)(const char*, const char*)>("fopen64");
  bool watch = false;
  if (before_open(path, mode_writes(mode), watch) < 0) return nullptr;
  FILE* file = f(path, mode);
  if (file) after_open(fileno(file), watch);
  return file;
}

int mkstemp(char* name) {
  static auto f = real<int (*)(char*)>("mkstemp");
  return opened(f, name, true, name);
}

int mkstemp64(char* name) {
  static auto f = real<int (*)(char*)>("mkstemp64");
  return opened(f, name, true, name);
}

int mkostemp(char* name, int flags) {
  static auto f = real<int (*)(char*, int)>("mkostemp");
  return opened(f, name, true, name, flags);
}

char* mkdtemp(char* name) {
  static auto f = real<char* (*)(char*)>("mkdtemp");
  if (settings().fault == Fault::erofs && hits(name)) {
    log_fault("erofs", name);
    errno = EROFS;
    return nullptr;
  }
  return f(name);
}

int mkdir(const char* path, mode_t mode) {
  static auto f = real<int (*)(const char*, mode_t)>("mkdir");
  if (settings().fault == Fault::erofs && hits(path)) {
    log_fault("erofs", path);
    errno = EROFS;
    return -1;
  }
  return f(path, mode);
}

int close(int fd) {
  static auto f = real<int (*)(int)>("close");
  forget(fd);
  return f(fd);
}

int fclose(FILE* file) {
  static auto f = real<int (*)(FILE*)>("fclose");
  const int fd = file ? fileno(file) : -1;
  const int r = f(file);  // flushes first: a pending write may still fail
  forget(fd);
  return r;
}

ssize_t write(int fd, const void* data, size_t count) {
  static auto f = real<ssize_t (*)(int, const void*, size_t)>("write");
  const ssize_t n = allowed(fd, count);
  return n < 0 ? -1 : f(fd, data, static_cast<size_t>(n));
}

ssize_t pwrite(int fd, const void* data, size_t count, off_t offset) {
  static auto f = real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  const ssize_t n = allowed(fd, count);
  return n < 0 ? -1 : f(fd, data, static_cast<size_t>(n), offset);
}

ssize_t pwrite64(int fd, const void* data, size_t count, off64_t offset) {
  static auto f = real<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
  const ssize_t n = allowed(fd, count);
  return n < 0 ? -1 : f(fd, data, static_cast<size_t>(n), offset);
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  static auto f = real<ssize_t (*)(int, const struct iovec*, int)>("writev");
  size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
  const ssize_t n = allowed(fd, total);
  if (n < 0) return -1;
  if (static_cast<size_t>(n) == total) return f(fd, iov, iovcnt);
  // Part of it fits: write that part as one buffer (a short write, which callers handle).
  size_t left = static_cast<size_t>(n), done = 0;
  static auto w = real<ssize_t (*)(int, const void*, size_t)>("write");
  for (int i = 0; i < iovcnt && left > 0; ++i) {
    const size_t part = iov[i].iov_len < left ? iov[i].iov_len : left;
    const ssize_t r = w(fd, iov[i].iov_base, part);
    if (r < 0) return done > 0 ? static_cast<ssize_t>(done) : -1;
    done += static_cast<size_t>(r);
    left -= static_cast<size_t>(r);
    if (static_cast<size_t>(r) < part) break;
  }
  return static_cast<ssize_t>(done);
}

ssize_t sendfile(int out_fd, int in_fd, off_t* offset, size_t count) {
  static auto f = real<ssize_t (*)(int, int, off_t*, size_t)>("sendfile");
  const ssize_t n = allowed(out_fd, count);
  return n < 0 ? -1 : f(out_fd, in_fd, offset, static_cast<size_t>(n));
}

ssize_t sendfile64(int out_fd, int in_fd, off64_t* offset, size_t count) {
  static auto f = real<ssize_t (*)(int, int, off64_t*, size_t)>("sendfile64");
  const ssize_t n = allowed(out_fd, count);
  return n < 0 ? -1 : f(out_fd, in_fd, offset, static_cast<size_t>(n));
}

ssize_t copy_file_range(int in_fd, off64_t* in_offset, int out_fd, off64_t* out_offset,
                        size_t count, unsigned int flags) {
  static auto f =
      real<ssize_t (*)(int, off64_t*, int, off64_t*, size_t, unsigned int)>("copy_file_range");
  const ssize_t n = allowed(out_fd, count);
  return n < 0 ? -1 : f(in_fd, in_offset, out_fd, out_offset, static_cast<size_t>(n), flags);
}

}  // extern "C"
