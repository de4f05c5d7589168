// T5Tokenizer: Hugging Face T5Tokenizer's conventions over a SentencePiece model (spiece.model).
// ids: pad 0, eos </s> 1, unk 2; SentencePiece pieces 0..P-1; then `extra_ids` sentinels,
// <extra_id_0> = P + extra_ids - 1 down to <extra_id_{extra_ids-1}> = P (32099..32000 for T5).
// encode() appends </s>; sentinels written in the text are recognised as single tokens.
//
// Matches transformers ~4.30's slow T5Tokenizer (legacy=True): the special tokens <pad>, </s>,
// <unk> and <extra_id_k> found in the text are split out (whitespace next to them is stripped,
// the default for plain-string special tokens) and every text piece between them is encoded by
// SentencePiece on its own. decode() follows T5Tokenizer.convert_tokens_to_string without the
// clean_up_tokenization step (call clean_up_tokenization() for HF's default output).
//
// The byte-level backend (byte_level(): ByT5, no model file) is transformers ~4.30's
// ByT5Tokenizer (tokenization_byt5.py, the version before 4.34's rewrite): ids pad 0, eos 1,
// unk 2, then every UTF-8 byte b of the text as b + 3 (3..258), then the sentinels in ascending
// order, <extra_id_k> = 259 + k (extra_ids 125: vocabulary 384). <pad>, </s> and <unk> written in
// the text are single tokens that keep the whitespace around them (AddedToken lstrip/rstrip
// false); <extra_id_k> strips it, as above. decode() joins the bytes (and, when kept, the special
// tokens' text) and reads them as UTF-8, dropping invalid bytes (Python's errors="ignore"); it
// does not strip the result.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compacter/data/sentencepiece.h"

namespace compacter {

class T5Tokenizer {
 public:
  // Throws Error naming the file when it is missing or not a SentencePiece model.
  static T5Tokenizer load(const std::string& spiece_model, int64_t extra_ids = 100);
  // The ByT5 byte-level tokenizer (see above); `source` says where the choice came from, for
  // messages (e.g. "ByT5 bytes, ByT5Tokenizer in DIR/tokenizer_config.json").
  static T5Tokenizer byte_level(int64_t extra_ids = 125, const std::string& source = "ByT5 bytes");
  T5Tokenizer(T5Tokenizer&&) noexcept;
  T5Tokenizer& operator=(T5Tokenizer&&) noexcept;
  ~T5Tokenizer();

  // Token ids of `text` followed by </s> (not added twice when the text itself ends with the
  // token </s>, like HF). With max_length > 0 the result is truncated to max_length ids, keeping
  // </s> as the last one.
  std::vector<int64_t> encode(const std::string& text, int64_t max_length = -1,
                              bool add_eos = true) const;
  // Text of `ids`; special tokens (pad, eos, unk and sentinels) are skipped when asked.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;

  int64_t vocab_size() const;   // pieces + extra ids (32100 for T5, 384 for ByT5)
  int64_t piece_count() const;  // SentencePiece pieces, or 259 (3 specials + 256 bytes)
  int64_t pad_id() const { return 0; }
  int64_t eos_id() const { return 1; }
  int64_t unk_id() const { return 2; }
  int64_t sentinel_id(int64_t k) const;  // id of <extra_id_k>
  // The piece's text; for the byte-level tokenizer a byte's id gives that one (raw) byte.
  std::string id_to_piece(int64_t id) const;
  bool is_special(int64_t id) const;  // pad, eos, unk or a sentinel
  bool is_byte_level() const { return !sp_; }
  // The spiece.model path, or the byte-level tokenizer's `source` (for messages).
  const std::string& source() const { return source_; }

 private:
  T5Tokenizer();
  std::unique_ptr<SentencePiece> sp_;  // null: byte level
  int64_t extra_ids_ = 100;
  std::string source_;
};

// The --tokenizer value that selects the byte-level tokenizer instead of a spiece.model path.
inline constexpr const char* kByteLevelTokenizerName = "byte";

// HF's clean_up_tokenization: removes the space before . ? ! , and English contractions
// ("it 's" -> "it's"), as transformers ~4.30's decode() does by default.
std::string clean_up_tokenization(const std::string& text);

}  // namespace compacter
