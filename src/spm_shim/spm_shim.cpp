// A C interface to Debian's libsentencepiece, built as its own shared object and loaded with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) by src/compacter/data/sentencepiece.cpp.
//
// Why: libsentencepiece.so.0 carries its own copy of protobuf-lite 3.14 and exports it, while
// libtorch loads the system libprotobuf 3.21. Linked into one program, either copy's symbols
// interpose on the other's and the process dies at start-up (segfault in libprotobuf's static
// initialisers, or protobuf's version check). Loaded this way, sentencepiece binds to its own
// copy and none of its symbols reach the global scope.
#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

char* copy_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

}  // namespace

extern "C" {

// Returns a processor, or nullptr with *error set (release it with cspm_release).
void* cspm_load(const char* path, char** error) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  const auto status = sp->Load(path);
  if (!status.ok()) {
    *error = copy_string(status.ToString());
    delete sp;
    return nullptr;
  }
  return sp;
}

void cspm_free(void* sp) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(sp);
}

void cspm_release(void* p) {
  std::free(p);
}

int cspm_piece_size(void* sp) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(sp)->GetPieceSize();
}

// Encodes text[0:len] into *ids (malloc'ed); returns the count, or -1 with *error set.
int cspm_encode(void* sp, const char* text, size_t len, int** ids, char** error) {
  std::vector<int> out;
  const auto status =
      static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Encode(std::string(text, len), &out);
  if (!status.ok()) {
    *error = copy_string(status.ToString());
    return -1;
  }
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (out.empty() ? 1 : out.size())));
  if (!out.empty()) std::memcpy(*ids, out.data(), sizeof(int) * out.size());
  return static_cast<int>(out.size());
}

// Decodes ids into a malloc'ed NUL-terminated string; nullptr with *error set on failure.
char* cspm_decode(void* sp, const int* ids, int n, char** error) {
  std::string text;
  const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Decode(
      std::vector<int>(ids, ids + n), &text);
  if (!status.ok()) {
    *error = copy_string(status.ToString());
    return nullptr;
  }
  return copy_string(text);
}

char* cspm_id_to_piece(void* sp, int id) {
  return copy_string(static_cast<sentencepiece::SentencePieceProcessor*>(sp)->IdToPiece(id));
}

int cspm_piece_to_id(void* sp, const char* piece) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(sp)->PieceToId(piece);
}

}  // extern "C"
