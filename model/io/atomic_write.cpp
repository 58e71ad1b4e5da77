// write_text_atomically: temporary file named by pid and a random number, flushed, then renamed.
#include "model/io/atomic_write.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <stdexcept>

namespace rg::io {

void write_text_atomically(const std::string& path, const std::string& text) {
  std::random_device rd;
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw std::runtime_error(path + ": cannot write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(path + ": cannot rename " + tmp + " into place");
  }
}

}  // namespace rg::io
