// Fuzz target for loading a tokenizer's spiece.model. We do not parse the file ourselves: it goes
// whole to libsentencepiece's SentencePieceProcessor::Load (its protobuf reader), reached through
// our shim (src/spm_shim) and data/sentencepiece.h's wrapper. So this target fuzzes the wrapper
// around it: the input is written to a file, loaded (SentencePiece::load), and a model that loads
// must encode a fixed sentence, decode the ids back, and map every id it gave to a piece and back.
// libsentencepiece is not instrumented (no coverage guidance inside it; a crash there still shows).
// Beyond "accepted or compacter::Error": an accepted model has at least one piece and only gives
// ids inside its vocabulary.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "compacter/core/error.h"
#include "compacter/data/sentencepiece.h"
#include "fuzz_target.h"

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
#ifdef COMPACTER_FUZZ_SPM_SHIM
  setenv("COMPACTER_SPM_SHIM", COMPACTER_FUZZ_SPM_SHIM, 0);  // the shim of this build
#endif
  // One file per process, removed at exit.
  static const struct TempFile {
    std::string path = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                       "/fuzz-spiece-" + std::to_string(::getpid()) + ".model";
    ~TempFile() { std::remove(path.c_str()); }
  } file;
  const std::string& path = file.path;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    const auto sp = compacter::SentencePiece::load(path);
    const int pieces = sp->piece_size();
    if (pieces < 1) __builtin_trap();
    const std::vector<int> ids = sp->encode("The cat sat on the mat, 3 times; naïve café.");
    for (int id : ids) {
      if (id < 0 || id >= pieces) __builtin_trap();
      sp->piece_to_id(sp->id_to_piece(id));
    }
    sp->decode(ids);
    return true;
  } catch (const compacter::Error&) {
    return false;
  }
}

COMPACTER_FUZZ_ENTRY_POINT
