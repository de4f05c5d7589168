// Loads the sentencepiece shim (found beside libcompacter.so: shim_candidates) with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) and calls its C API. In builds with AddressSanitizer or
// ThreadSanitizer, whose runtimes refuse RTLD_DEEPBIND (google/sanitizers#611), the shim is
// opened with dlmopen into a link namespace of its own instead: the same isolation from libtorch's
// protobuf, the shim itself uninstrumented (CMakeLists.txt). Every byte the shim allocates is freed
// by the shim (cspm_release, cspm_free), so the two allocators never meet.
#include "compacter/data/sentencepiece.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "compacter/core/atomic_file.h"
#include "compacter/core/error.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COMPACTER_SPM_OWN_NAMESPACE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define COMPACTER_SPM_OWN_NAMESPACE 1
#endif
#endif

namespace compacter {

namespace {

void* open_shim(const std::string& path) {
#ifdef COMPACTER_SPM_OWN_NAMESPACE
  return dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
#else
  return dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
#endif
}

struct ShimApi {
  void* (*load)(const char*, char**) = nullptr;
  void (*free_processor)(void*) = nullptr;
  void (*release)(void*) = nullptr;
  int (*piece_size)(void*) = nullptr;
  int (*encode)(void*, const char*, size_t, int**, char**) = nullptr;
  char* (*decode)(void*, const int*, int, char**) = nullptr;
  char* (*id_to_piece)(void*, int) = nullptr;
  int (*piece_to_id)(void*, const char*) = nullptr;
  // Optional: a shim built before the trainer existed still loads; train_sentencepiece says so.
  int (*train)(const char* const*, const char* const*, int, const char* const*, int, unsigned,
               char**, size_t*, char**) = nullptr;
};

std::string executable_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

// The folders of the shared object that holds this code (libcompacter.so), as the dynamic linker
// opened it and with symbolic links resolved; empty when dladdr cannot tell.
std::vector<std::string> library_dirs() {
  static const char anchor = 0;
  Dl_info info{};
  if (dladdr(&anchor, &info) == 0 || !info.dli_fname || !*info.dli_fname) return {};
  const std::filesystem::path path(info.dli_fname);
  std::vector<std::string> dirs = {path.parent_path().string()};
  std::error_code ec;
  const auto real = std::filesystem::canonical(path, ec).parent_path().string();
  if (!ec && real != dirs[0]) dirs.push_back(real);
  return dirs;
}

// Where the shim is looked for. The library is shared and the shim lies beside it: in the build
// folder (CMake builds both there) and in <prefix>/lib after `cmake --install`, whatever the
// prefix, so asking dladdr where this library was loaded from finds the shim of the same build
// in both, with no path compiled in. Before that, $COMPACTER_SPM_SHIM, which when set is the
// only candidate (an explicit choice must not fall back silently to another shim). After it,
// beside the running program and in ../lib from it, for a program that has the library's code
// linked in statically (then dladdr names the program).
std::vector<std::string> shim_candidates() {
  if (const char* env = std::getenv("COMPACTER_SPM_SHIM"); env && *env) return {env};
  std::vector<std::string> candidates;
  for (const std::string& dir : library_dirs()) candidates.push_back(dir + "/libcompacter_spm.so");
  if (const std::string dir = executable_dir(); !dir.empty()) {
    candidates.push_back(dir + "/libcompacter_spm.so");
    candidates.push_back(dir + "/../lib/libcompacter_spm.so");
  }
  return candidates;
}

const ShimApi& shim() {
  static ShimApi api;
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    const std::vector<std::string> candidates = shim_candidates();
    void* lib = nullptr;
    std::string tried;
    for (const auto& path : candidates) {
      if (!std::filesystem::exists(path)) {
        tried += "\n  " + path + " (not found)";
        continue;
      }
      lib = open_shim(path);
      if (lib) break;
      tried += "\n  " + path + " (" + dlerror() + ")";
    }
    if (!lib) {
      failure = "cannot load the SentencePiece shim libcompacter_spm.so; tried:" + tried +
                "\n(set COMPACTER_SPM_SHIM to its path)";
      return;
    }
    auto sym = [&](const char* name) {
      void* p = dlsym(lib, name);
      if (!p && failure.empty()) failure = cat("SentencePiece shim lacks symbol ", name);
      return p;
    };
    api.load = reinterpret_cast<decltype(api.load)>(sym("cspm_load"));
    api.free_processor = reinterpret_cast<decltype(api.free_processor)>(sym("cspm_free"));
    api.release = reinterpret_cast<decltype(api.release)>(sym("cspm_release"));
    api.piece_size = reinterpret_cast<decltype(api.piece_size)>(sym("cspm_piece_size"));
    api.encode = reinterpret_cast<decltype(api.encode)>(sym("cspm_encode"));
    api.decode = reinterpret_cast<decltype(api.decode)>(sym("cspm_decode"));
    api.id_to_piece = reinterpret_cast<decltype(api.id_to_piece)>(sym("cspm_id_to_piece"));
    api.piece_to_id = reinterpret_cast<decltype(api.piece_to_id)>(sym("cspm_piece_to_id"));
    api.train = reinterpret_cast<decltype(api.train)>(dlsym(lib, "cspm_train"));
  });
  check(failure.empty(), failure);
  return api;
}

// Takes ownership of a malloc'ed C string from the shim.
std::string take(char* s) {
  std::string out = s ? s : "";
  if (s) shim().release(s);
  return out;
}

}  // namespace

std::unique_ptr<SentencePiece> SentencePiece::load(const std::string& model_path) {
  check(std::filesystem::is_regular_file(model_path),
        "SentencePiece model not found: ", model_path);
  char* error = nullptr;
  void* handle = shim().load(model_path.c_str(), &error);
  if (!handle)
    throw Error(cat(model_path, ": not a valid SentencePiece model (", take(error), ")"));
  std::unique_ptr<SentencePiece> sp(new SentencePiece());
  sp->handle_ = handle;
  return sp;
}

SentencePiece::~SentencePiece() {
  if (handle_) shim().free_processor(handle_);
}

int SentencePiece::piece_size() const {
  return shim().piece_size(handle_);
}

std::vector<int> SentencePiece::encode(const std::string& text) const {
  int* ids = nullptr;
  char* error = nullptr;
  const int n = shim().encode(handle_, text.data(), text.size(), &ids, &error);
  if (n < 0) throw Error(cat("SentencePiece could not encode text: ", take(error)));
  std::vector<int> out(ids, ids + n);
  shim().release(ids);
  return out;
}

std::string SentencePiece::decode(const std::vector<int>& ids) const {
  char* error = nullptr;
  char* text = shim().decode(handle_, ids.data(), static_cast<int>(ids.size()), &error);
  if (!text) throw Error(cat("SentencePiece could not decode ids: ", take(error)));
  return take(text);
}

std::string SentencePiece::id_to_piece(int id) const {
  return take(shim().id_to_piece(handle_, id));
}

int SentencePiece::piece_to_id(const std::string& piece) const {
  return shim().piece_to_id(handle_, piece.c_str());
}

int64_t train_sentencepiece(const std::vector<std::string>& text_files,
                            const std::string& model_path,
                            const SentencePieceTrainOptions& options) {
  check(!text_files.empty(), "SentencePiece training: no input text files");
  for (const std::string& file : text_files) {
    std::ifstream in(file);
    check(std::filesystem::is_regular_file(file) && in.good(), "SentencePiece training input ",
          file, ": cannot be read");
  }
  check(options.vocab_size >= 4, "SentencePiece training: vocab size must be >= 4, got ",
        options.vocab_size);
  check(options.num_threads >= 1 && options.num_threads <= 128,
        "SentencePiece training: threads must be in [1, 128], got ", options.num_threads);
  auto number = [](auto value) {
    std::ostringstream out;
    out.precision(17);
    out << value;
    return out.str();
  };
  const std::vector<std::pair<std::string, std::string>> flags = {
      {"model_type", options.model_type},
      {"vocab_size", number(options.vocab_size)},
      {"character_coverage", number(options.character_coverage)},
      {"num_threads", number(options.num_threads)},
      {"input_sentence_size", number(options.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", number(options.max_sentence_length)},
      {"hard_vocab_limit", options.hard_vocab_limit ? "true" : "false"},
      {"pad_id", "0"},
      {"eos_id", "1"},
      {"unk_id", "2"},
      {"bos_id", "-1"},
      {"pad_piece", "<pad>"},
      {"eos_piece", "</s>"},
      {"unk_piece", "<unk>"},
      {"minloglevel", options.verbose ? "0" : "1"},
  };
  std::vector<const char*> keys, values, files;
  for (const auto& [key, value] : flags) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  for (const std::string& file : text_files) files.push_back(file.c_str());

  const ShimApi& api = shim();
  check(api.train != nullptr,
        "the SentencePiece shim libcompacter_spm.so is too old to train models (lacks "
        "cspm_train); rebuild it");
  char* model = nullptr;
  size_t model_size = 0;
  char* error = nullptr;
  if (api.train(keys.data(), values.data(), static_cast<int>(keys.size()), files.data(),
                static_cast<int>(files.size()), options.seed, &model, &model_size, &error) != 0)
    throw Error(cat("SentencePiece training failed: ", take(error)));
  const std::string bytes(model, model_size);
  api.release(model);
  write_text_atomically(model_path, bytes);  // binary-safe
  return SentencePiece::load(model_path)->piece_size();
}

}  // namespace compacter
