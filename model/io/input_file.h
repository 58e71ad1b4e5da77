// Reading files that users hand us, which may be anything: only regular files are opened (a FIFO would
// block forever, /dev/zero never ends, a folder is not a file), sizes are bounded, and JSON nesting is
// bounded at parse time, because nlohmann::json's copy, compare and dump() recurse once per level.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace rg::io {

// Deeper than any config.json, safetensors header or index file needs (they nest 3-4 levels) and far
// below what recursion on the stack survives.
constexpr int kMaxJsonDepth = 64;

// Throws std::invalid_argument "<path>: ..." unless `path` names an existing regular file (after
// symlinks): "no such file", "is a folder, not a file", "is a FIFO/device/socket, not a regular file".
void require_regular_file(const std::string& path);

// The whole file, refused as above and above `max_bytes` (std::invalid_argument naming the file).
// Opens without blocking, so a FIFO swapped in after a check still cannot hang the reader.
std::string read_regular_file(const std::string& path, uint64_t max_bytes);

// Parses JSON text, refusing nesting deeper than `max_depth`. Throws std::invalid_argument
// "<source>: not valid JSON: ..." / "<source>: JSON nested deeper than N levels".
nlohmann::json parse_json_bounded(const char* begin, const char* end, const std::string& source,
                                  int max_depth = kMaxJsonDepth);
nlohmann::json parse_json_bounded(const std::string& text, const std::string& source, int max_depth = kMaxJsonDepth);

}  // namespace rg::io
