// DataError: a problem with a data file the user must fix (the message names the file and the line or
// dataset), with the exit code the command should end with; and the regular-file check every input path
// passes before it is opened. Header-only so that all of rg_data, the tokenizer included, and main() can use it.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

namespace rg::data {

// exit_code() 1: a bad example met while processing an input (a JSONL line, a text file that is not
// UTF-8) or a read failing mid-run, as for any runtime failure.
class DataError : public std::runtime_error {
 public:
  explicit DataError(const std::string& what, int exit_code = 1) : std::runtime_error(what), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// exit_code() 2, like a configuration error: the path given cannot be used for what it was given for. It
// is missing or not a regular file (a FIFO must never be opened: the read would block), not an rgemma
// dataset, or a dataset whose stored types, shapes, attributes, offsets or values are not the format's.
class BadDataFile : public DataError {
 public:
  explicit BadDataFile(const std::string& what) : DataError(what, 2) {}
};

// Throws BadDataFile naming `path` unless it is a regular file (after symlinks): never open a FIFO (blocks
// until a writer comes), a device (/dev/zero never ends) or a directory. `what` says what the path was
// given as, e.g. "a tokenizer model".
inline void require_regular_file(const std::string& path, const std::string& what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status s = fs::status(path, ec);
  if (fs::is_regular_file(s)) return;
  // The wording of rg::io::require_regular_file (model/io/input_file.h), which data/ may not link.
  std::string is;
  switch (s.type()) {
    case fs::file_type::not_found: is = "no such file"; break;
    case fs::file_type::directory: is = "is a folder, not a file"; break;
    case fs::file_type::fifo: is = "is a FIFO (named pipe), not a regular file"; break;
    case fs::file_type::character:
    case fs::file_type::block: is = "is a device, not a regular file"; break;
    case fs::file_type::socket: is = "is a socket, not a regular file"; break;
    default: is = ec ? "cannot open: " + ec.message() : "is not a regular file"; break;
  }
  throw BadDataFile(path + ": " + is + "; expected " + what);
}

}  // namespace rg::data
