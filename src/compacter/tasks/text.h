// Text helpers for the task readers and metrics: UTF-8 checks and code-point slicing, Python-like
// whitespace splitting and float parsing (the reference code is Python, spec §4 and §5), and the
// STS-B label rounding of spec §4.4.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace compacter::tasks::text {

// Byte offset of the first invalid UTF-8 sequence in `s`, or npos when `s` is valid UTF-8
// (overlong forms, surrogates and code points above U+10FFFF are invalid).
size_t invalid_utf8_offset(const std::string& s);

// Code points of a valid UTF-8 string.
std::vector<char32_t> decode_utf8(const std::string& s);
std::string encode_utf8(const std::vector<char32_t>& cps);
// Python's s[begin:end] on code points (what ReCoRD's character offsets index).
std::string substr_code_points(const std::string& s, int64_t begin, int64_t end);

// Python str.isspace() for one code point (ASCII and Unicode white space).
bool is_space(char32_t c);
// Python str.split() with no argument: runs of white space separate, no empty pieces.
std::vector<std::string> split_whitespace(const std::string& s);
// Python str.strip() with no argument.
std::string strip(const std::string& s);

// Python float(s): optional surrounding white space, sign, digits with an optional fraction and
// exponent, or inf / infinity / nan (any case). Nothing when Python would raise ValueError.
// (Python also accepts '_' between digits; this does not.)
std::optional<double> parse_python_float(const std::string& s);

// Python str(float): the shortest repr that round-trips ("3.8", "5.0", "0.1", "1e-05").
std::string python_float_str(double v);

// STS-B target (spec §4.4, §9 #1): the reference computes np.round((x * 5) / 5, decimals=1),
// i.e. rounds to 0.1 with NumPy's round-half-even at the scaled value; `intended` rounds to the
// nearest 0.2 (np.round(x * 5) / 5) instead. Returns Python's str() of the result.
std::string stsb_target(double score, bool intended);

}  // namespace compacter::tasks::text
