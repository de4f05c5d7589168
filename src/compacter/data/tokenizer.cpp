// T5Tokenizer: Hugging Face's slow T5Tokenizer (transformers ~4.30, legacy=True) over a
// SentencePiece model: special tokens split out of the text (whitespace around them stripped),
// SentencePiece ids for the text between them, </s> appended, truncation keeping </s>; decoding
// as T5Tokenizer.convert_tokens_to_string does. The byte-level backend is ByT5Tokenizer of the
// same transformers (UTF-8 bytes offset by 3, sentinels from 259 up; see tokenizer.h).
#include "compacter/data/tokenizer.h"

#include <filesystem>
#include <string_view>
#include <utility>

#include "compacter/core/error.h"

namespace compacter {
namespace {

constexpr std::string_view kSentinelPrefix = "<extra_id_";
constexpr std::pair<std::string_view, int64_t> kNamedSpecials[] = {
    {"<pad>", 0}, {"</s>", 1}, {"<unk>", 2}};

// Python's str.isspace() code points: what HF's strip(), lstrip() and rstrip() remove.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Length of the UTF-8 sequence that starts with `lead`; 0 for a continuation or invalid byte.
size_t utf8_length(char lead) {
  const auto b = static_cast<unsigned char>(lead);
  if (b < 0x80) return 1;
  if ((b >> 5) == 0x6) return 2;
  if ((b >> 4) == 0xE) return 3;
  if ((b >> 3) == 0x1E) return 4;
  return 0;
}

// Code point of the `len`-byte UTF-8 sequence at s[pos].
char32_t code_point(std::string_view s, size_t pos, size_t len) {
  static constexpr unsigned char kLeadMask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t c = static_cast<unsigned char>(s[pos]) & kLeadMask[len];
  for (size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
  return c;
}

std::string_view lstrip(std::string_view s) {
  while (!s.empty()) {
    const size_t len = utf8_length(s[0]);
    if (len == 0 || len > s.size() || !is_python_space(code_point(s, 0, len))) break;
    s.remove_prefix(len);
  }
  return s;
}

std::string_view rstrip(std::string_view s) {
  while (!s.empty()) {
    size_t start = s.size() - 1;
    while (start > 0 && s.size() - start < 4 &&
           (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80)
      --start;
    const size_t len = utf8_length(s[start]);
    if (len != s.size() - start || !is_python_space(code_point(s, start, len))) break;
    s.remove_suffix(len);
  }
  return s;
}

std::string_view strip(std::string_view s) {
  return rstrip(lstrip(s));
}

// The special token written at the start of `text` (as HF's added-tokens trie matches it):
// its id (for a sentinel: k of <extra_id_k>) and length in bytes, or id -1. Sentinels are
// "<extra_id_k>" with k in canonical decimal and k < extra_ids, exactly the strings HF registers.
struct SpecialMatch {
  int64_t id = -1;
  size_t length = 0;
  bool sentinel = false;
};

SpecialMatch match_special(std::string_view text, int64_t extra_ids) {
  for (const auto& [token, id] : kNamedSpecials)
    if (text.substr(0, token.size()) == token) return {id, token.size(), false};
  if (text.substr(0, kSentinelPrefix.size()) != kSentinelPrefix) return {};
  const size_t first = kSentinelPrefix.size();
  size_t end = first;
  int64_t k = 0;
  while (end < text.size() && end - first < 18 && text[end] >= '0' && text[end] <= '9')
    k = k * 10 + (text[end++] - '0');
  const size_t digits = end - first;
  if (digits == 0 || end >= text.size() || text[end] != '>') return {};
  if (digits > 1 && text[first] == '0') return {};
  if (k >= extra_ids) return {};
  return {k, end + 1, true};
}

// Length of the well-formed UTF-8 sequence at s[pos] (Unicode Table 3-7, as Python's decoder
// reads it: no overlong forms, no surrogates, nothing above U+10FFFF), or 0 when it is not one.
size_t valid_utf8_length(std::string_view s, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (pos + len > s.size()) return 0;
  if (byte(pos + 1) < lo || byte(pos + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if ((byte(pos + k) & 0xC0) != 0x80) return 0;
  return len;
}

// bytes.decode("utf-8", errors="ignore"): well-formed sequences kept, every other byte dropped.
// (Dropping a bad lead byte alone and going on is the same as dropping Python's maximal invalid
// subpart: its remaining bytes are continuation bytes, which are never valid leads.)
std::string utf8_ignoring_errors(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    const size_t len = valid_utf8_length(bytes, pos);
    if (len == 0) {
      ++pos;
      continue;
    }
    out.append(bytes.substr(pos, len));
    pos += len;
  }
  return out;
}

constexpr int64_t kByteOffset = 3;  // pad, eos, unk before the 256 bytes

// A part of the input: text to give to SentencePiece, or one special token.
struct Segment {
  std::string_view text;
  int64_t special = -1;
  bool sentinel = false;
};

}  // namespace

T5Tokenizer::T5Tokenizer() = default;
T5Tokenizer::T5Tokenizer(T5Tokenizer&&) noexcept = default;
T5Tokenizer& T5Tokenizer::operator=(T5Tokenizer&&) noexcept = default;
T5Tokenizer::~T5Tokenizer() = default;

T5Tokenizer T5Tokenizer::load(const std::string& spiece_model, int64_t extra_ids) {
  check(extra_ids >= 0, "tokenizer: extra_ids must be >= 0, got ", extra_ids);
  std::error_code ec;
  check(std::filesystem::exists(spiece_model, ec), "tokenizer model ", spiece_model,
        ": no such file");
  check(std::filesystem::is_regular_file(spiece_model, ec), "tokenizer model ", spiece_model,
        ": not a regular file");
  T5Tokenizer tokenizer;
  tokenizer.sp_ = SentencePiece::load(spiece_model);  // its errors name the path
  const auto& sp = *tokenizer.sp_;
  for (const auto& [token, id] : kNamedSpecials)
    check(sp.piece_size() > id && sp.piece_to_id(std::string(token)) == id, "tokenizer model ",
          spiece_model, ": not a T5 vocabulary (expected piece ", token, " at id ", id, ")");
  tokenizer.extra_ids_ = extra_ids;
  tokenizer.source_ = spiece_model;
  return tokenizer;
}

T5Tokenizer T5Tokenizer::byte_level(int64_t extra_ids, const std::string& source) {
  check(extra_ids >= 0, "tokenizer: extra_ids must be >= 0, got ", extra_ids);
  T5Tokenizer tokenizer;
  tokenizer.extra_ids_ = extra_ids;
  tokenizer.source_ = source;
  return tokenizer;
}

std::vector<int64_t> T5Tokenizer::encode(const std::string& text, int64_t max_length,
                                         bool add_eos) const {
  // Split the special tokens out, leftmost first, as HF's trie does.
  const std::string_view all(text);
  std::vector<Segment> segments;
  size_t start = 0;
  for (size_t pos = all.find('<'); pos != std::string_view::npos; pos = all.find('<', pos)) {
    const SpecialMatch match = match_special(all.substr(pos), extra_ids_);
    if (match.id < 0) {
      ++pos;
      continue;
    }
    if (pos > start) segments.push_back({all.substr(start, pos - start)});
    segments.push_back({all.substr(pos, match.length),
                        match.sentinel ? sentinel_id(match.id) : match.id, match.sentinel});
    pos += match.length;
    start = pos;
  }
  if (start < all.size()) segments.push_back({all.substr(start)});

  // Plain-string special tokens strip the whitespace on both sides (PreTrainedTokenizer.tokenize);
  // ByT5's <pad>, </s> and <unk> are AddedTokens with lstrip = rstrip = false and strip nothing.
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].special < 0) continue;
    if (is_byte_level() && !segments[i].sentinel) continue;
    if (i > 0 && segments[i - 1].special < 0) segments[i - 1].text = rstrip(segments[i - 1].text);
    if (i + 1 < segments.size() && segments[i + 1].special < 0)
      segments[i + 1].text = lstrip(segments[i + 1].text);
  }

  std::vector<int64_t> ids;
  std::vector<int> piece_ids;
  for (const Segment& segment : segments) {
    if (segment.special >= 0) {
      ids.push_back(segment.special);
      continue;
    }
    if (segment.text.empty()) continue;
    if (is_byte_level()) {
      for (char c : segment.text) ids.push_back(static_cast<unsigned char>(c) + kByteOffset);
      continue;
    }
    piece_ids = sp_->encode(std::string(segment.text));
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }

  // HF truncates the text ids to leave room for </s>, then adds </s> unless already last.
  const auto limit = static_cast<size_t>(max_length > 0 ? max_length : 0);
  if (add_eos) {
    if (limit > 0 && ids.size() + 1 > limit) ids.resize(limit - 1);
    if (ids.empty() || ids.back() != eos_id()) ids.push_back(eos_id());
  } else if (limit > 0 && ids.size() > limit) {
    ids.resize(limit);
  }
  return ids;
}

std::string T5Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  if (is_byte_level()) {  // ByT5Tokenizer.convert_tokens_to_string, then errors="ignore"
    std::string bytes;
    for (size_t i = 0; i < ids.size(); ++i) {
      const int64_t id = ids[i];
      check(id >= 0 && id < vocab_size(), "tokenizer: token id ", id, " at position ", i,
            " is outside the vocabulary [0, ", vocab_size(), ")");
      if (!is_special(id))
        bytes += static_cast<char>(id - kByteOffset);
      else if (!skip_special_tokens)
        bytes += id_to_piece(id);
    }
    return utf8_ignoring_errors(bytes);
  }
  std::string out;
  std::vector<int> run;  // consecutive normal pieces, decoded together by SentencePiece
  auto flush = [&] {
    std::string piece_text;
    if (!run.empty()) {
      piece_text = sp_->decode(run);
      run.clear();
    }
    return piece_text;
  };
  bool prev_special = false;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    check(id >= 0 && id < vocab_size(), "tokenizer: token id ", id, " at position ", i,
          " is outside the vocabulary [0, ", vocab_size(), ")");
    if (!is_special(id)) {
      run.push_back(static_cast<int>(id));
      prev_special = false;
      continue;
    }
    if (skip_special_tokens) continue;
    // T5Tokenizer.convert_tokens_to_string: a space before the first of adjacent special tokens.
    if (!prev_special) out += ' ';
    out += flush();
    out += id_to_piece(id);
    prev_special = true;
  }
  out += flush();
  return std::string(strip(out));
}

int64_t T5Tokenizer::vocab_size() const {
  return piece_count() + extra_ids_;
}

int64_t T5Tokenizer::piece_count() const {
  return sp_ ? sp_->piece_size() : kByteOffset + 256;
}

int64_t T5Tokenizer::sentinel_id(int64_t k) const {
  check(k >= 0 && k < extra_ids_, "tokenizer: sentinel <extra_id_", k, "> does not exist (",
        extra_ids_, " extra ids)");
  // T5: from the end of the vocabulary down; ByT5Tokenizer: after the bytes, up.
  return sp_ ? piece_count() + extra_ids_ - 1 - k : piece_count() + k;
}

std::string T5Tokenizer::id_to_piece(int64_t id) const {
  check(id >= 0 && id < vocab_size(), "tokenizer: token id ", id, " is outside the vocabulary [0, ",
        vocab_size(), ")");
  if (sp_ && id < piece_count()) return sp_->id_to_piece(static_cast<int>(id));
  if (!sp_ && id < kByteOffset) return std::string(kNamedSpecials[id].first);
  if (!sp_ && id < piece_count()) return std::string(1, static_cast<char>(id - kByteOffset));
  return cat(kSentinelPrefix, sp_ ? vocab_size() - 1 - id : id - piece_count(), ">");
}

bool T5Tokenizer::is_special(int64_t id) const {
  return (id >= 0 && id <= 2) || (id >= piece_count() && id < vocab_size());
}

std::string clean_up_tokenization(const std::string& text) {
  static constexpr std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string out = text;
  for (const auto& [from, to] : kRules) {
    std::string next;
    size_t pos = 0;
    for (size_t hit = out.find(from); hit != std::string::npos; hit = out.find(from, pos)) {
      next.append(out, pos, hit - pos);
      next.append(to);
      pos = hit + from.size();
    }
    next.append(out, pos, std::string::npos);
    out = std::move(next);
  }
  return out;
}

}  // namespace compacter
