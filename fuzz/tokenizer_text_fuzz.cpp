// Fuzz target for the tokenizers on a user's text and on token ids (data/tokenizer.h): encode as
// every command encodes sources and labels (special tokens split out as Hugging Face's trie does,
// truncation keeping </s>), and decode as predict and serve decode generated ids. The first input
// byte picks the tokenizer (bit 0: ByT5's bytes, else a SentencePiece model in T5's layout,
// fuzz/tokenizer_text.model: 300 pieces, pad 0, </s> 1, <unk> 2, identity normalization, and 100
// sentinels), whether
// decoding skips special tokens (bit 1), and max_length (bits 2-7: 0 for none); the rest is the
// text, then decoded back; it is also read as little-endian 16-bit ids (modulo the vocabulary),
// decoded, and decoded again after an id outside the vocabulary, which must be refused.
// Beyond "accepted or compacter::Error": every id is inside the vocabulary; a truncated encoding
// has at most max_length ids and ends with </s>; every decoded text is valid UTF-8 (the server
// writes it into JSON, whose dump throws otherwise); the byte tokenizer gives back any valid
// UTF-8 text without '<' exactly.
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include "compacter/data/tokenizer.h"
#include "fuzz_target.h"

namespace {

bool valid_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

const compacter::T5Tokenizer& tokenizer(bool byte_level) {
#ifdef COMPACTER_FUZZ_SPM_SHIM
  setenv("COMPACTER_SPM_SHIM", COMPACTER_FUZZ_SPM_SHIM, 0);  // the shim of this build
#endif
  static const compacter::T5Tokenizer bytes = compacter::T5Tokenizer::byte_level();
  static const compacter::T5Tokenizer pieces =
      compacter::T5Tokenizer::load(COMPACTER_FUZZ_TOKENIZER_MODEL);
  return byte_level ? bytes : pieces;
}

}  // namespace

bool compacter_fuzz_accepts(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const bool byte_level = (data[0] & 1) != 0, skip_special = (data[0] & 2) != 0;
  const int64_t max_length = data[0] >> 2;
  const compacter::T5Tokenizer& t = tokenizer(byte_level);
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  return compacter_fuzz_accepted_unless_error([&] {
    for (const bool add_eos : {true, false}) {
      const std::vector<int64_t> ids = t.encode(text, max_length > 0 ? max_length : -1, add_eos);
      for (const int64_t id : ids)
        if (id < 0 || id >= t.vocab_size()) __builtin_trap();
      if (max_length > 0 && static_cast<int64_t>(ids.size()) > max_length) __builtin_trap();
      if (add_eos && (ids.empty() || ids.back() != t.eos_id())) __builtin_trap();
      const std::string back = t.decode(ids, skip_special);
      if (!valid_utf8(back)) __builtin_trap();
      if (byte_level && !add_eos && max_length == 0 && skip_special && valid_utf8(text) &&
          text.find('<') == std::string::npos && back != text)
        __builtin_trap();
    }
    std::vector<int64_t> ids;
    for (size_t i = 1; i + 1 < size; i += 2)
      ids.push_back((data[i] | (data[i + 1] << 8)) % t.vocab_size());
    if (!valid_utf8(t.decode(ids, skip_special))) __builtin_trap();
    ids.push_back(size % 2 ? -1 : t.vocab_size());  // an id outside: refused by name
    try {
      t.decode(ids, skip_special);
      __builtin_trap();
    } catch (const compacter::Error&) {
    }
  });
}

COMPACTER_FUZZ_ENTRY_POINT
