// A C interface to Debian's libsentencepiece, built as its own shared object and loaded with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) by src/compacter/data/sentencepiece.cpp.
//
// Why: libsentencepiece.so.0 carries its own copy of protobuf-lite 3.14 and exports it, while
// libtorch loads the system libprotobuf 3.21. Linked into one program, either copy's symbols
// interpose on the other's and the process dies at start-up (segfault in libprotobuf's static
// initialisers, or protobuf's version check). Loaded this way, sentencepiece binds to its own
// copy and none of its symbols reach the global scope.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

char* copy_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out) std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

// The lines of a list of text files, in order ("\r\n" or "\n" line ends), for the trainer.
class FileLines : public sentencepiece::SentenceIterator {
 public:
  explicit FileLines(std::vector<std::string> paths) : paths_(std::move(paths)) { Next(); }
  bool done() const override { return done_; }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return status_; }
  void Next() override {
    while (!done_) {
      if (in_.is_open() && std::getline(in_, line_)) {
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        return;
      }
      if (in_.is_open() && !in_.eof()) return fail("read error in " + paths_[next_ - 1]);
      in_.close();
      if (next_ == paths_.size()) {
        done_ = true;
        return;
      }
      in_.clear();
      in_.open(paths_[next_++], std::ios::binary);
      if (!in_.is_open()) return fail("cannot open " + paths_[next_ - 1]);
    }
  }

 private:
  void fail(const std::string& message) {
    status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound, message);
    done_ = true;
  }
  std::vector<std::string> paths_;
  size_t next_ = 0;
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

}  // namespace

extern "C" {

// Returns a processor, or nullptr with *error set (release it with cspm_release).
// libsentencepiece also throws on some malformed models (found by fuzz_sentencepiece: a piece
// with a NUL byte makes its trie builder throw Darts::Details::Exception); no exception crosses
// this C interface.
void* cspm_load(const char* path, char** error) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  try {
    const auto status = sp->Load(path);
    if (!status.ok()) {
      *error = copy_string(status.ToString());
      return nullptr;
    }
  } catch (const std::exception& e) {
    *error = copy_string(std::string("the model is malformed: ") + e.what());
    return nullptr;
  } catch (...) {
    *error = copy_string("the model is malformed (libsentencepiece threw an unknown exception)");
    return nullptr;
  }
  return sp.release();
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
  try {
    const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Encode(
        std::string(text, len), &out);
    if (!status.ok()) {
      *error = copy_string(status.ToString());
      return -1;
    }
  } catch (const std::exception& e) {
    *error = copy_string(e.what());
    return -1;
  }
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (out.empty() ? 1 : out.size())));
  if (!out.empty()) std::memcpy(*ids, out.data(), sizeof(int) * out.size());
  return static_cast<int>(out.size());
}

// Decodes ids into a malloc'ed NUL-terminated string; nullptr with *error set on failure.
char* cspm_decode(void* sp, const int* ids, int n, char** error) {
  std::string text;
  try {
    const auto status = static_cast<sentencepiece::SentencePieceProcessor*>(sp)->Decode(
        std::vector<int>(ids, ids + n), &text);
    if (!status.ok()) {
      *error = copy_string(status.ToString());
      return nullptr;
    }
  } catch (const std::exception& e) {
    *error = copy_string(e.what());
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

// Trains a model with SentencePieceTrainer::Train(kwargs): `n_flags` trainer flags given as
// keys[i]=values[i] (the names of spm_train's options, without "--"; no `input` needed), on the
// lines of `files`. The random generator is seeded with `seed` first. On success returns 0 and
// sets *model (malloc'ed, *model_size bytes) to the serialized ModelProto, i.e. the .model file;
// no file is written. On failure returns -1 with *error set.
int cspm_train(const char* const* keys, const char* const* values, int n_flags,
               const char* const* files, int n_files, unsigned seed, char** model,
               size_t* model_size, char** error) {
  std::unordered_map<std::string, std::string> kwargs;
  for (int i = 0; i < n_flags; ++i) kwargs[keys[i]] = values[i];
  FileLines lines(std::vector<std::string>(files, files + n_files));
  sentencepiece::SetRandomGeneratorSeed(seed);
  // SentencePiece's random generator is a thread_local seeded on its first use in a thread: a
  // fresh thread per training makes every training start from `seed`, however many ran before.
  // (Debian's 0.1.97 samples input_sentence_size lines identically whatever the seed; checked.)
  std::string proto;
  sentencepiece::util::Status status;
  std::thread([&] {
    status = sentencepiece::SentencePieceTrainer::Train(kwargs, &lines, &proto);
  }).join();
  if (!status.ok()) {
    *error = copy_string(status.ToString());
    return -1;
  }
  if (!lines.status().ok()) {
    *error = copy_string(lines.status().ToString());
    return -1;
  }
  *model = static_cast<char*>(std::malloc(proto.empty() ? 1 : proto.size()));
  if (!proto.empty()) std::memcpy(*model, proto.data(), proto.size());
  *model_size = proto.size();
  return 0;
}

}  // extern "C"
