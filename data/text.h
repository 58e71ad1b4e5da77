// Text handling shared by every input path of prepare: the one whitespace trim (the same set as the Hugging
// Face chat template's Jinja `trim`, i.e. Python's str.strip()) and UTF-8 validation with the offending offset.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rg::data {

// Python's str.isspace(): U+0009-000D, U+001C-0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029,
// U+202F, U+205F, U+3000 (Unicode White_Space plus the four information separators; not U+200B or U+FEFF).
bool is_space(char32_t c);

// `s` without leading and trailing is_space() characters, as Jinja's `trim` (str.strip()) does, so chat content
// and documents are tokenized exactly as the HF template renders them: a no-break or ideographic space at an
// edge is not kept as a token. Only well-formed UTF-8 sequences are recognised; other bytes stop the trim.
std::string trim(std::string_view s);
// The two halves of trim(), as views into `s`: without the leading / without the trailing is_space() characters.
std::string_view ltrim_view(std::string_view s);
std::string_view rtrim_view(std::string_view s);

// The byte offset of the first ill-formed UTF-8 sequence in `s` (overlong forms, surrogates and code points
// above U+10FFFF included), or std::string::npos when all of it is well-formed.
size_t invalid_utf8_at(std::string_view s);

}  // namespace rg::data
