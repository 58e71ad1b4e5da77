// The whitespace trim and UTF-8 checks of data/text.h: a small strict UTF-8 decoder (RFC 3629) and
// Python's whitespace set.
#include "data/text.h"

namespace rg::data {
namespace {

// Decodes the well-formed sequence starting at s[i]: its length in bytes (1-4) and code point, or 0 when
// the bytes there are not one (a stray continuation byte, an overlong form, a surrogate, > U+10FFFF, cut off).
size_t decode(std::string_view s, size_t i, char32_t* cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return *cp = b0, 1;
  size_t n;
  char32_t c, min;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, c = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, c = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    c = (c << 6) | (byte(i + k) & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  return *cp = c, n;
}

}  // namespace

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string_view ltrim_view(std::string_view s) {
  size_t begin = 0;
  char32_t c = 0;
  for (size_t n; begin < s.size() && (n = decode(s, begin, &c)) > 0 && is_space(c);) begin += n;
  return s.substr(begin);
}

std::string_view rtrim_view(std::string_view s) {
  size_t end = s.size();
  char32_t c = 0;
  while (end > 0) {
    size_t start = end - 1;  // back over up to three continuation bytes to the sequence's lead byte
    while (start > 0 && end - start < 4 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    if (decode(s, start, &c) != end - start || !is_space(c)) break;
    end = start;
  }
  return s.substr(0, end);
}

std::string trim(std::string_view s) { return std::string(rtrim_view(ltrim_view(s))); }

size_t invalid_utf8_at(std::string_view s) {
  char32_t c = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = decode(s, i, &c);
    if (n == 0) return i;
    i += n;
  }
  return std::string::npos;
}

}  // namespace rg::data
