// Whole-file text writes that a crash cannot tear: a uniquely named temporary file beside the target,
// then rename, so a reader sees the old file or the new one. No LibTorch, so light files can use it.
#pragma once

#include <string>

namespace rg::io {

// Throws std::runtime_error naming the path when the file cannot be written or renamed into place.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace rg::io
