// A short, bounded description of a JSON value for error messages. nlohmann::json::dump() recurses once
// per nesting level, so dumping a hostile value (an array nested 100,000 deep in a config.json or a
// checkpoint file) overflows the stack: messages describe values with json_brief() instead.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace rg::io {

// Scalars as JSON text (strings cut to `max_chars`); arrays and objects as "an array of N values" /
// "an object with N keys". Never recurses, so any value is safe to describe.
std::string json_brief(const nlohmann::json& value, size_t max_chars = 80);

}  // namespace rg::io
