// SentencePiece, reached through a small shim library (src/spm_shim) that is loaded privately
// so that sentencepiece's bundled protobuf cannot clash with libtorch's (see the shim's header).
// Encodes and decodes plain SentencePiece ids; T5's conventions live in tokenizer.h.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace compacter {

class SentencePiece {
 public:
  // Throws Error naming `model_path` when it is missing or not a SentencePiece model, and when
  // the shim library cannot be found (set COMPACTER_SPM_SHIM to its path).
  static std::unique_ptr<SentencePiece> load(const std::string& model_path);
  ~SentencePiece();
  SentencePiece(const SentencePiece&) = delete;
  SentencePiece& operator=(const SentencePiece&) = delete;

  int piece_size() const;
  std::vector<int> encode(const std::string& text) const;
  std::string decode(const std::vector<int>& ids) const;
  std::string id_to_piece(int id) const;
  int piece_to_id(const std::string& piece) const;  // the unk id when unknown

 private:
  SentencePiece() = default;
  void* handle_ = nullptr;
};

}  // namespace compacter
