// SentencePiece, reached through a small shim library (src/spm_shim) that is loaded privately
// so that sentencepiece's bundled protobuf cannot clash with libtorch's (see the shim's header).
// Encodes and decodes plain SentencePiece ids; T5's conventions live in tokenizer.h. Also trains
// new models with T5's special-token layout (train_sentencepiece).
#pragma once
#include <cstdint>
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

// Options of train_sentencepiece (SentencePiece's spm_train flags of the same names).
struct SentencePieceTrainOptions {
  int64_t vocab_size = 8000;           // pieces, <pad> </s> <unk> included; T5 adds 100 sentinels
  std::string model_type = "unigram";  // T5's; also "bpe", "char", "word"
  double character_coverage = 0.9995;  // SentencePiece's default for non-CJK text
  // The model is a function of the input lines and these options only. The thread count is one
  // of them (the EM sums per-thread expectations in thread order), so keep it fixed to reproduce
  // a model: a different count can give a (slightly) different vocabulary.
  int num_threads = 1;
  int64_t input_sentence_size = 0;     // 0: every line; N: a random sample of N lines, from `seed`
  int64_t max_sentence_length = 4192;  // bytes; longer lines are skipped (spm_train's default)
  unsigned seed = 1;  // SentencePiece's random generator (0.1.97 samples the same lines anyway)
  bool hard_vocab_limit = false;  // false: a small corpus gives fewer pieces, not an error
  bool verbose = false;           // SentencePiece's training log on stderr
};

// Trains a SentencePiece model on the lines of `text_files` with T5's layout: <pad> 0, </s> 1,
// <unk> 2, no <s>; T5Tokenizer then places <extra_id_0..99> at piece_count+99 .. piece_count.
// Writes `model_path` (an spiece.model) atomically: it appears complete or not at all. Returns
// the number of pieces of the new model. Throws Error naming the file when an input cannot be
// read, and with SentencePiece's message when training fails (e.g. an empty corpus).
int64_t train_sentencepiece(const std::vector<std::string>& text_files,
                            const std::string& model_path,
                            const SentencePieceTrainOptions& options = {});

}  // namespace compacter
