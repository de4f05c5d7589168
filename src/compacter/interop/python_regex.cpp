// Python's `re` syntax parsed as sre_parse.py parses it (flags off), into a tree; the tree's size
// written out bounded; the tree compiled into a Thompson automaton; the automaton run on a text by
// following every live state at once (python_regex.h).
#include "compacter/interop/python_regex.h"

#include <algorithm>
#include <limits>
#include <map>

#include "compacter/core/error.h"

namespace compacter::interop {

namespace {

// The anchors (sre's AT codes without MULTILINE).
enum Anchor : uint8_t {
  kBeginning,    // ^: the text's start
  kEnd,          // $: the text's end, or before a newline that ends it
  kStartOfText,  // \A
  kEndOfText,    // \Z
  kBoundary,     // \b: between a word character and another (or an edge)
  kNonBoundary,  // \B
};

constexpr uint64_t kUnbounded = std::numeric_limits<uint64_t>::max();
constexpr uint64_t kMaxRepeat = 4294967295u;  // sre's MAXREPEAT on 64-bit builds
constexpr int kMaxNesting = 64;               // groups within groups

using Chars = std::bitset<256>;

bool is_word(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// \d \s \w and their complements, on ASCII (str patterns use Unicode's classes, which agree with
// these on ASCII; \s includes \x1c-\x1f as str.isspace does).
Chars category(char c) {
  Chars s;
  const char lower = static_cast<char>(c | 0x20);
  for (int b = 0; b < 128; ++b) {
    const bool in = lower == 'd'   ? (b >= '0' && b <= '9')
                    : lower == 's' ? ((b >= 9 && b <= 13) || (b >= 0x1c && b <= 0x20))
                                   : is_word(static_cast<unsigned char>(b));
    s[b] = in;
  }
  return c == lower ? s : ~s;
}

bool is_category(char c) {
  return std::string("dDsSwW").find(c) != std::string::npos;
}
bool is_octal(char c) {
  return c >= '0' && c <= '7';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_ascii_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// The character of \a \f \n \r \t \v \\ (sre's ESCAPES but \b, which is a boundary outside a
// class and a backspace inside one), or -1.
int simple_escape(char c) {
  const std::string names = "afnrtv\\";
  const int values[] = {7, 12, 10, 13, 9, 11, '\\'};
  const size_t k = names.find(c);
  return k == std::string::npos ? -1 : values[k];
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct Node {
  enum Kind { kSet, kAnchor, kSequence, kAlternatives, kRepeat } kind = kSequence;
  int32_t set = -1;
  Anchor anchor = kBeginning;
  std::vector<Node> children;  // a sequence's items, the alternatives, or the repeated item
  uint64_t min = 0, max = 0;   // a repeat's counts (max kUnbounded for * + {m,})
  bool group = false;          // a sequence that is a group's body (then never a bare repeat)
};

// sre_parse._parse and its helpers; positions are 0-based, as in Python's re.error.
class Parser {
 public:
  Parser(const std::string& p, std::vector<Chars>& sets) : p_(p), sets_(sets) {}

  Node pattern() {
    Node n = alternatives(0);
    if (i_ < p_.size()) fail("unbalanced parenthesis", i_);  // a ')' with no '('
    return n;
  }

 private:
  const std::string& p_;
  std::vector<Chars>& sets_;
  size_t i_ = 0;
  std::map<std::string, int> names_;  // a named group's number
  int groups_ = 0;                    // capturing groups opened so far

  [[noreturn]] void fail(const std::string& why, size_t at) const {
    throw Error(cat(why, " at position ", at));
  }
  [[noreturn]] void unsupported(const std::string& what, size_t at) const {
    throw Error(cat(what, " at position ", at, ", which is not supported"));
  }
  bool more() const { return i_ < p_.size(); }
  // The item at `k` as sre's tokenizer reads it: a character, or a backslash and the next one.
  std::string item_at(size_t k) const { return p_.substr(k, p_[k] == '\\' ? 2 : 1); }
  bool next_is(char c) const { return more() && p_[i_] == c; }

  Node set_node(const Chars& s) {
    sets_.push_back(s);
    Node n;
    n.kind = Node::kSet;
    n.set = static_cast<int32_t>(sets_.size() - 1);
    return n;
  }
  Node literal(unsigned char c) {
    Chars s;
    s[c] = true;
    return set_node(s);
  }
  static Node anchor(Anchor a) {
    Node n;
    n.kind = Node::kAnchor;
    n.anchor = a;
    return n;
  }
  unsigned char ascii(uint64_t value, size_t at) const {
    if (value > 0x7f) unsupported("a character beyond ASCII (module paths are ASCII)", at);
    return static_cast<unsigned char>(value);
  }

  // `count` hex digits after \x, \u or \U at `at` (sre: "incomplete escape").
  uint64_t hex_escape(size_t count, size_t at) {
    uint64_t v = 0;
    size_t k = 0;
    for (; k < count && more() && hex_value(p_[i_]) >= 0; ++k) v = v * 16 + hex_value(p_[i_++]);
    if (k != count) fail(cat("incomplete escape ", p_.substr(at, i_ - at)), at);
    return v;
  }

  // The character a \x \u \U \N or octal escape names, or -1 when `c` starts none.
  int64_t numeric_escape(char c, size_t at) {
    if (c == 'x') return hex_escape(2, at);
    if (c == 'u') return hex_escape(4, at);
    if (c == 'U') {
      const uint64_t v = hex_escape(8, at);
      if (v > 0x10ffff) fail(cat("bad escape ", p_.substr(at, i_ - at)), at);
      return static_cast<int64_t>(v);
    }
    if (c == 'N') unsupported("a named character (\\N{...})", at);
    return -1;
  }

  // An escape outside a class, its backslash at `at` (sre_parse._escape).
  Node escape(size_t at) {
    if (!more()) fail("bad escape (end of pattern)", at);
    const char c = p_[i_++];
    switch (c) {
      case 'A':
        return anchor(kStartOfText);
      case 'Z':
        return anchor(kEndOfText);
      case 'b':
        return anchor(kBoundary);
      case 'B':
        return anchor(kNonBoundary);
      default:
        break;
    }
    if (const int v = simple_escape(c); v >= 0) return literal(static_cast<unsigned char>(v));
    if (is_category(c)) return set_node(category(c));
    const int64_t v = numeric_escape(c, at);
    if (v >= 0) return literal(ascii(static_cast<uint64_t>(v), at));
    if (c == '0') {  // \0, \0o, \0oo
      uint64_t v8 = 0;
      for (int k = 0; k < 2 && more() && is_octal(p_[i_]); ++k) v8 = v8 * 8 + (p_[i_++] - '0');
      return literal(ascii(v8, at));
    }
    if (is_digit(c)) {
      // Three octal digits are a character; anything else is a group reference.
      if (more() && is_digit(p_[i_]) && is_octal(c) && is_octal(p_[i_]) && i_ + 1 < p_.size() &&
          is_octal(p_[i_ + 1])) {
        const uint64_t v8 = (c - '0') * 64 + (p_[i_] - '0') * 8 + (p_[i_ + 1] - '0');
        i_ += 2;
        if (v8 > 0377)
          fail(cat("octal escape value ", p_.substr(at, 4), " outside of range 0-0o377"), at);
        return literal(ascii(v8, at));
      }
      size_t k = i_;
      while (k < p_.size() && is_digit(p_[k])) ++k;
      unsupported(cat("a back-reference (", p_.substr(at, k - at), ")"), at);
    }
    if (is_ascii_letter(c)) fail(cat("bad escape \\", c), at);
    return literal(ascii(static_cast<unsigned char>(c), at));
  }

  // An escape inside a class (sre_parse._class_escape): the set it adds, `single` telling
  // whether it is one character (a range's end may only be one).
  Chars class_escape(size_t at, bool& single, unsigned char& value) {
    if (!more()) fail("bad escape (end of pattern)", at);
    const char c = p_[i_++];
    single = true;
    if (c == 'b') {  // a backspace inside a class
      value = 8;
    } else if (const int v = simple_escape(c); v >= 0) {
      value = static_cast<unsigned char>(v);
    } else if (is_category(c)) {
      single = false;
      return category(c);
    } else if (const int64_t v = numeric_escape(c, at); v >= 0) {
      value = ascii(static_cast<uint64_t>(v), at);
    } else if (is_octal(c)) {
      uint64_t v8 = c - '0';
      for (int k = 0; k < 2 && more() && is_octal(p_[i_]); ++k) v8 = v8 * 8 + (p_[i_++] - '0');
      if (v8 > 0377)
        fail(cat("octal escape value ", p_.substr(at, i_ - at), " outside of range 0-0o377"), at);
      value = ascii(v8, at);
    } else if (is_digit(c) || is_ascii_letter(c)) {
      fail(cat("bad escape \\", c), at);
    } else {
      value = ascii(static_cast<unsigned char>(c), at);
    }
    Chars one;
    one[value] = true;
    return one;
  }

  // A class; its '[' at `at` (sre_parse._parse's "[" branch).
  Node char_class(size_t at) {
    Chars set;
    bool empty = true;
    const bool negate = next_is('^');
    if (negate) ++i_;
    for (;;) {
      if (!more()) fail("unterminated character set", at);
      const size_t here = i_;
      const char c = p_[i_++];
      if (c == ']' && !empty) break;
      bool single = true;
      unsigned char lo = 0;
      Chars item;
      if (c == '\\') {
        item = class_escape(here, single, lo);
      } else {
        lo = ascii(static_cast<unsigned char>(c), here);
        item[lo] = true;
      }
      if (next_is('-')) {
        ++i_;
        if (!more()) fail("unterminated character set", at);
        const size_t there = i_;
        const char d = p_[i_++];
        if (d == ']') {  // "a-]": the item and a '-'
          set |= item;
          set['-'] = true;
          break;
        }
        bool single_hi = true;
        unsigned char hi = 0;
        if (d == '\\') {
          class_escape(there, single_hi, hi);
        } else {
          hi = ascii(static_cast<unsigned char>(d), there);
        }
        if (!single || !single_hi || hi < lo)
          fail(cat("bad character range ", p_.substr(here, i_ - here)), here);
        for (int b = lo; b <= hi; ++b) set[b] = true;
      } else {
        set |= item;
      }
      empty = false;
    }
    return set_node(negate ? ~set : set);
  }

  // A group; its '(' at `at`. Returns false for a comment (nothing to add).
  bool group(size_t at, int depth, Node& out) {
    if (!next_is('?')) ++groups_;
    if (next_is('?')) {
      ++i_;
      if (!more()) fail("unexpected end of pattern", i_);
      const char c = p_[i_++];
      if (c == 'P') {
        if (next_is('<')) {
          ++i_;
          // sre's getuntil: a backslash and the character after it are one item.
          size_t close = i_;
          while (close < p_.size() && p_[close] != '>') close += p_[close] == '\\' ? 2 : 1;
          if (close >= p_.size()) {
            if (close == i_) fail("missing group name", i_);
            fail("missing >, unterminated name", i_);
          }
          const std::string name = p_.substr(i_, close - i_);
          if (name.empty()) fail("missing group name", i_);
          bool ok = !is_digit(name[0]);
          for (char ch : name) ok = ok && (is_word(static_cast<unsigned char>(ch)));
          if (!ok) fail(cat("bad character in group name '", name, "'"), i_);
          const auto [it, fresh] = names_.emplace(name, groups_ + 1);
          if (!fresh)
            fail(cat("redefinition of group name '", name, "' as group ", groups_ + 1,
                     "; was group ", it->second),
                 i_);
          i_ = close + 1;
          ++groups_;
        } else if (next_is('=')) {
          unsupported("a back-reference ((?P=name))", at);
        } else {
          if (!more()) fail("unexpected end of pattern", i_);
          fail(cat("unknown extension ?P", item_at(i_)), at + 1);
        }
      } else if (c == ':') {
        // A group that captures nothing: the same to a whole match.
      } else if (c == '#') {
        for (;;) {
          if (!more()) fail("missing ), unterminated comment", at);
          const char d = p_[i_++];
          if (d == ')') return false;
          if (d == '\\') {
            if (!more()) fail("bad escape (end of pattern)", i_ - 1);
            ++i_;
          }
        }
      } else if (c == '<' && !(next_is('=') || next_is('!'))) {
        if (!more()) fail("unexpected end of pattern", i_);
        fail(cat("unknown extension ?<", item_at(i_)), at + 1);
      } else if (c == '=' || c == '!' || c == '<') {
        unsupported("a lookaround ((?=, (?!, (?<= or (?<!)", at);
      } else if (c == '(') {
        unsupported("a conditional group ((?(...)...))", at);
      } else if (c == '>') {
        unsupported("an atomic group ((?>...))", at);
      } else if (std::string("aiLmsux-").find(c) != std::string::npos) {
        unsupported("an inline flag ((?aiLmsux))", at);
      } else {
        fail(cat("unknown extension ?", item_at(i_ - 1)), at + 1);
      }
    }
    if (depth >= kMaxNesting)
      unsupported(cat("a group nested more than ", kMaxNesting, " deep"), at);
    Node body = alternatives(depth + 1);
    if (!next_is(')')) fail("missing ), unterminated subpattern", at);
    ++i_;
    out.kind = Node::kSequence;
    out.group = true;
    out.children.push_back(std::move(body));
    return true;
  }

  // Digits at i_ as a count (saturating above kMaxRepeat); false when there are none.
  bool count(uint64_t& value) {
    const size_t start = i_;
    value = 0;
    for (; more() && is_digit(p_[i_]); ++i_)
      value = std::min(value * 10 + (p_[i_] - '0'), kMaxRepeat);
    return i_ > start;
  }

  // A repetition at `at` ("?", "*", "+" or "{"), applied to the sequence's last item. False when
  // a "{" turns out to be a literal.
  bool repeat(Node& sequence, size_t at) {
    const char c = p_[at];
    uint64_t min = 0, max = kUnbounded;
    if (c == '?') {
      max = 1;
    } else if (c == '+') {
      min = 1;
    } else if (c == '{') {
      if (next_is('}')) return false;
      uint64_t lo = 0, hi = 0;
      const bool has_lo = count(lo);
      bool has_hi = false;
      if (next_is(',')) {
        ++i_;
        has_hi = count(hi);
      } else {
        hi = lo;
        has_hi = has_lo;
      }
      if (!next_is('}')) {
        i_ = at + 1;
        return false;
      }
      ++i_;
      if (has_lo) {
        if (lo >= kMaxRepeat) fail("the repetition number is too large", at);
        min = lo;
      }
      if (has_hi) {
        if (hi >= kMaxRepeat) fail("the repetition number is too large", at);
        max = hi;
        if (max < min) fail("min repeat greater than max repeat", at + 1);
      }
    }
    if (sequence.children.empty() || sequence.children.back().kind == Node::kAnchor)
      fail("nothing to repeat", at);
    if (sequence.children.back().kind == Node::kRepeat) fail("multiple repeat", at);
    if (next_is('?')) {
      ++i_;  // lazy: the same whole matches
    } else if (next_is('+')) {
      unsupported("a possessive repetition", at);
    }
    Node r;
    r.kind = Node::kRepeat;
    r.min = min;
    r.max = max;
    r.children.push_back(std::move(sequence.children.back()));
    sequence.children.back() = std::move(r);
    return true;
  }

  Node sequence(int depth) {
    Node seq;
    while (more() && p_[i_] != '|' && p_[i_] != ')') {
      const size_t at = i_;
      const char c = p_[i_++];
      if (c == '[') {
        seq.children.push_back(char_class(at));
      } else if (c == '(') {
        Node g;
        if (group(at, depth, g)) seq.children.push_back(std::move(g));
      } else if (c == '.') {
        Chars any;
        any.set();
        any['\n'] = false;
        seq.children.push_back(set_node(any));
      } else if (c == '^') {
        seq.children.push_back(anchor(kBeginning));
      } else if (c == '$') {
        seq.children.push_back(anchor(kEnd));
      } else if (c == '\\') {
        seq.children.push_back(escape(at));
      } else if (c == '?' || c == '*' || c == '+' || c == '{') {
        if (!repeat(seq, at)) seq.children.push_back(literal('{'));
      } else {
        seq.children.push_back(literal(ascii(static_cast<unsigned char>(c), at)));
      }
    }
    return seq;
  }

  Node alternatives(int depth) {
    Node alt;
    alt.kind = Node::kAlternatives;
    alt.children.push_back(sequence(depth));
    while (next_is('|')) {
      ++i_;
      alt.children.push_back(sequence(depth));
    }
    if (alt.children.size() == 1) return std::move(alt.children[0]);
    return alt;
  }
};

// The states compile() makes for `n`, or more (an empty sequence counts one), saturating at
// `cap`: the bound is checked before anything is built.
uint64_t states_for(const Node& n, uint64_t cap) {
  const auto sat = [cap](uint64_t a) { return std::min(a, cap); };
  const auto mul = [cap](uint64_t a, uint64_t b) { return a != 0 && b > cap / a ? cap : a * b; };
  switch (n.kind) {
    case Node::kSet:
    case Node::kAnchor:
      return 1;
    case Node::kSequence: {
      uint64_t total = n.children.empty() ? 1 : 0;
      for (const Node& c : n.children) total = sat(total + states_for(c, cap));
      return total;
    }
    case Node::kAlternatives: {
      uint64_t total = n.children.size() - 1;  // the forks between them
      for (const Node& c : n.children) total = sat(total + states_for(c, cap));
      return total;
    }
    case Node::kRepeat: {
      const uint64_t s = states_for(n.children[0], cap);
      if (n.max == kUnbounded) return sat(mul(std::max<uint64_t>(n.min, 1), s) + 1);
      return sat(mul(n.min, s) + mul(n.max - n.min, s + 1));
    }
  }
  return cap;
}

// Builds the automaton from the end: build(n, next) makes the states of `n` that continue to
// `next` and returns the one to enter (a Thompson construction).
struct Builder {
  std::vector<PythonRegex::State>& states;

  // A new state of `kind` going on to `next` (and, for a fork, to `alt`).
  int32_t add(PythonRegex::State::Kind kind, int32_t next, int32_t alt = -1) {
    PythonRegex::State s;
    s.kind = kind;
    s.next = next;
    s.alt = alt;
    states.push_back(s);
    return static_cast<int32_t>(states.size() - 1);
  }
  int32_t fork(int32_t next, int32_t alt) { return add(PythonRegex::State::kFork, next, alt); }

  int32_t build(const Node& n, int32_t next) {
    switch (n.kind) {
      case Node::kSet: {
        const int32_t s = add(PythonRegex::State::kChars, next);
        states[static_cast<size_t>(s)].chars = n.set;
        return s;
      }
      case Node::kAnchor: {
        const int32_t s = add(PythonRegex::State::kAnchor, next);
        states[static_cast<size_t>(s)].anchor = n.anchor;
        return s;
      }
      case Node::kSequence:
        for (auto it = n.children.rbegin(); it != n.children.rend(); ++it) next = build(*it, next);
        return next;
      case Node::kAlternatives: {
        int32_t entry = build(n.children.back(), next);
        for (size_t k = n.children.size() - 1; k-- > 0;)
          entry = fork(build(n.children[k], next), entry);
        return entry;
      }
      case Node::kRepeat: {
        const Node& item = n.children[0];
        int32_t entry = next;
        uint64_t mandatory = n.min;
        if (n.max == kUnbounded) {
          // item* is a fork back into the item; item+ (min >= 1) enters the item first.
          const int32_t loop = fork(-1, next);
          const int32_t body = build(item, loop);
          states[loop].next = body;
          entry = loop;
          if (mandatory > 0) {
            entry = body;
            --mandatory;
          }
        } else {
          for (uint64_t k = n.min; k < n.max; ++k) entry = fork(build(item, entry), next);
        }
        for (uint64_t k = 0; k < mandatory; ++k) entry = build(item, entry);
        return entry;
      }
    }
    return next;
  }
};

bool anchor_holds(uint8_t a, const std::string& t, size_t pos) {
  const size_t n = t.size();
  switch (a) {
    case kBeginning:
    case kStartOfText:
      return pos == 0;
    case kEnd:
      return pos == n || (pos + 1 == n && t[pos] == '\n');
    case kEndOfText:
      return pos == n;
    default:
      break;
  }
  if (n == 0) return false;  // sre: neither \b nor \B holds in an empty text
  const bool before = pos > 0 && is_word(static_cast<unsigned char>(t[pos - 1]));
  const bool after = pos < n && is_word(static_cast<unsigned char>(t[pos]));
  return a == kBoundary ? before != after : before == after;
}
}  // namespace

PythonRegex::PythonRegex(const std::string& pattern, size_t max_states) {
  const Node tree = Parser(pattern, sets_).pattern();
  const uint64_t cap = static_cast<uint64_t>(max_states) + 1;
  const uint64_t needed = states_for(tree, cap) + 1;  // + the match state
  check(needed <= max_states, "makes more than ", max_states,
        " states once its repetitions are written out ({3} as three copies)");
  State match;
  states_.push_back(match);
  start_ = Builder{states_}.build(tree, 0);
}

bool PythonRegex::full_match(const std::string& text) const {
  std::vector<uint32_t> seen(states_.size(), 0);
  uint32_t stamp = 0;
  std::vector<int32_t> live, next, stack;
  bool matched = false;
  // Every state reachable from `s` without reading a character at `pos`: character states go to
  // `into`; the match state counts only at the text's end (a whole match).
  const auto close = [&](int32_t s, size_t pos, std::vector<int32_t>& into) {
    stack.push_back(s);
    while (!stack.empty()) {
      const int32_t k = stack.back();
      stack.pop_back();
      if (seen[k] == stamp) continue;
      seen[k] = stamp;
      const State& st = states_[k];
      switch (st.kind) {
        case State::kChars:
          into.push_back(k);
          break;
        case State::kFork:
          stack.push_back(st.alt);
          stack.push_back(st.next);
          break;
        case State::kAnchor:
          if (anchor_holds(st.anchor, text, pos)) stack.push_back(st.next);
          break;
        case State::kMatch:
          if (pos == text.size()) matched = true;
          break;
      }
    }
  };
  ++stamp;
  close(start_, 0, live);
  for (size_t pos = 0; pos < text.size() && !live.empty(); ++pos) {
    ++stamp;
    next.clear();
    const auto c = static_cast<unsigned char>(text[pos]);
    for (int32_t k : live)
      if (sets_[states_[k].chars][c]) close(states_[k].next, pos + 1, next);
    live.swap(next);
  }
  return matched;
}

}  // namespace compacter::interop
