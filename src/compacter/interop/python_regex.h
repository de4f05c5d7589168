// A regular expression in the syntax of Python's `re` module, matched as `re.fullmatch(pattern,
// text)` matches it: how PEFT's IA3Model._check_target_module_feedforward decides that a module
// path is in a string `feedforward_modules`. Written here, rather than handed to std::regex,
// because std::regex's syntax is ECMAScript's (Python's `(?P<name>...)`, `{,n}`, `\Z` differ)
// and because a file decides the pattern: the pattern becomes a Thompson automaton of a bounded
// number of states, and matching follows all of its states at once, so the time is at most the
// text's length times the states, whatever the pattern (no backtracking, no recursion on the
// text).
//
// The syntax is Python's (the `re` module's parser, sre_parse, without flags): literals and
// escapes, `.`, classes `[...]` with ranges and `\d \w \s \D \W \S`, groups `(...)`,
// `(?:...)`, `(?P<name>...)`, comments `(?#...)`, alternatives `|`, the repetitions `* + ?
// {m} {m,} {,n} {m,n}` greedy or lazy (`?` after them; for a whole match they are the same), and
// the anchors `^ $ \A \Z \b \B`. A pattern Python refuses is refused with Python's reason ("nothing
// to repeat", "multiple repeat", "bad escape \q", "unterminated character set", ...). Valid Python
// that has no automaton, or changes how text matches, is refused by name: back-references,
// lookarounds, conditionals, atomic groups, possessive repetitions, inline flags, named
// characters (\N{...}) and groups nested more than 64 deep. So are characters beyond ASCII
// (module paths are ASCII; text is matched byte by byte). Messages and positions are Python's,
// but for some refusals of the constructs above (e.g. "\1" with no group 1 is refused as a
// back-reference, Python says "invalid group reference 1") and for a pattern ending in a lone
// backslash after an earlier error (Python reports the backslash first).
#pragma once
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace compacter::interop {

class PythonRegex {
 public:
  // Compiles `pattern`. Throws compacter::Error: "<reason> at character N" for a pattern Python
  // refuses or that is refused here, or "makes more than `max_states` states" when its
  // repetitions, written out ({3} as three copies), need more states than that.
  PythonRegex(const std::string& pattern, size_t max_states);

  // re.fullmatch(pattern, text) is not None.
  bool full_match(const std::string& text) const;

  size_t states() const { return states_.size(); }

  // One state of the automaton: a character set to step over, a fork, an anchor to pass, or the
  // end. `next` (and a fork's `alt`) are indices into states_.
  struct State {
    enum Kind : uint8_t { kChars, kFork, kAnchor, kMatch } kind = kMatch;
    uint8_t anchor = 0;  // kAnchor: which one (python_regex.cpp's Anchor)
    int32_t chars = -1;  // kChars: index into sets_
    int32_t next = -1, alt = -1;
  };

 private:
  std::vector<State> states_;
  std::vector<std::bitset<256>> sets_;
  int32_t start_ = -1;
};

}  // namespace compacter::interop
