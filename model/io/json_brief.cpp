// json_brief: see json_brief.h.
#include "model/io/json_brief.h"

namespace rg::io {

std::string json_brief(const nlohmann::json& value, size_t max_chars) {
  if (value.is_array()) return "an array of " + std::to_string(value.size()) + " values";
  if (value.is_object()) return "an object with " + std::to_string(value.size()) + " keys";
  if (value.is_binary()) return "binary data";
  std::string text = value.dump();  // a scalar: no recursion
  if (text.size() > max_chars) text = text.substr(0, max_chars) + "...\" (" + std::to_string(text.size()) + " chars)";
  return text;
}

}  // namespace rg::io
