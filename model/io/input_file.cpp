// Regular-file checks, bounded reads and depth-bounded JSON parsing: see input_file.h.
#include "model/io/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace rg::io {
namespace {

// "" for a regular file, else why it is refused.
std::string not_regular(const struct stat& st) {
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISDIR(st.st_mode)) return "is a folder, not a file";
  if (S_ISFIFO(st.st_mode)) return "is a FIFO (named pipe), not a regular file";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "is a device, not a regular file";
  if (S_ISSOCK(st.st_mode)) return "is a socket, not a regular file";
  return "is not a regular file";
}

// The depth limit is enforced from the parser callback: nlohmann's parser itself keeps its stack on the
// heap, so it is the values built afterwards that must stay shallow.
struct TooDeep {
  std::size_t depth;
};

}  // namespace

void require_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw std::invalid_argument(path + ": " + (errno == ENOENT ? std::string("no such file")
                                                               : std::string("cannot open: ") + std::strerror(errno)));
  }
  const std::string why = not_regular(st);
  if (!why.empty()) throw std::invalid_argument(path + ": " + why);
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw std::invalid_argument(path + ": " + (errno == ENOENT ? std::string("no such file")
                                                               : std::string("cannot open: ") + std::strerror(errno)));
  }
  struct stat st {};
  std::string why = ::fstat(fd, &st) != 0 ? std::string("cannot stat: ") + std::strerror(errno) : not_regular(st);
  if (why.empty() && static_cast<uint64_t>(st.st_size) > max_bytes) {
    why = "is " + std::to_string(st.st_size) + " bytes, more than the " + std::to_string(max_bytes) +
          " expected of this file";
  }
  if (!why.empty()) {
    ::close(fd);
    throw std::invalid_argument(path + ": " + why);
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(path + ": read failed" + (n < 0 ? std::string(": ") + std::strerror(err)
                                                               : std::string(" (file shrank while reading)")));
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return text;
}

nlohmann::json parse_json_bounded(const char* begin, const char* end, const std::string& source, int max_depth) {
  const auto limit = static_cast<std::size_t>(max_depth);
  auto guard = [limit](int depth, nlohmann::json::parse_event_t event, nlohmann::json&) {
    // `depth` counts the containers around this event; an opening bracket at depth d starts level d + 1.
    if ((event == nlohmann::json::parse_event_t::object_start || event == nlohmann::json::parse_event_t::array_start) &&
        static_cast<std::size_t>(depth) >= limit) {
      throw TooDeep{static_cast<std::size_t>(depth) + 1};
    }
    return true;
  };
  try {
    return nlohmann::json::parse(begin, end, guard);
  } catch (const TooDeep&) {
    throw std::invalid_argument(source + ": JSON nested deeper than " + std::to_string(max_depth) +
                                " levels (refused: no config, index or header needs that)");
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(source + ": not valid JSON: " + e.what());
  }
}

nlohmann::json parse_json_bounded(const std::string& text, const std::string& source, int max_depth) {
  return parse_json_bounded(text.data(), text.data() + text.size(), source, max_depth);
}

}  // namespace rg::io
