// h5: the few HDF5 C-API operations rg_data needs (RAII handles, scalar attributes, appendable 1-D
// datasets, range reads), each serialised by one process-wide lock because Debian's serial libhdf5 is not
// thread-safe and the loader reads on a background thread. Internal to rg_data; see dataset.h for the format.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace rg::data::h5 {

// Every HDF5 call in rg_data holds this (recursive: helpers call helpers).
std::recursive_mutex& lock();

// Turns off HDF5's automatic error-stack printing: failures become our own one-line exceptions.
void quiet();

// Owns one HDF5 id of any kind (file, group, dataset, space, type, plist); closes it via H5Idec_ref.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) reset(), id_ = o.id_, o.id_ = -1;
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = -1;
};

template <class T>
hid_t native_type();  // int32_t, int64_t, uint8_t, double
template <class T>
hid_t file_type();  // the little-endian type stored on disk

bool has_attr(hid_t obj, const std::string& name);
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, int64_t value);
void write_attr(hid_t obj, const std::string& name, double value);
// Readers throw BadDataFile("<where>: attribute 'name' ...") when absent, not a single value, or of the
// wrong class (an integer attribute of any integer size is read; the callers check ranges).
std::string read_string_attr(hid_t obj, const std::string& name, const std::string& where);
int64_t read_int_attr(hid_t obj, const std::string& name, const std::string& where);
double read_double_attr(hid_t obj, const std::string& name, const std::string& where);

bool has_link(hid_t group, const std::string& name);
// A new group without modification times (a file's bytes then depend only on what was written).
Handle create_group(hid_t parent, const std::string& name);
Handle open_group(hid_t parent, const std::string& name, const std::string& where);
Handle open_dataset(hid_t parent, const std::string& name, const std::string& where);
int64_t dataset_length(hid_t dataset, const std::string& where);  // 1-D datasets only (else BadDataFile)
// "int32", "uint8", "float64", "string", ...: a stored type as messages name it.
std::string type_name(hid_t type);
// Throws BadDataFile("<where>: stored as float64, expected int32 ...") unless the dataset's stored type is an
// integer of T's sign and size (a float of its size for double). HDF5 would otherwise convert on read:
// float64 tokens silently truncated, int64 offsets clipped to int32, a mask of 256 read as 0.
template <class T>
void expect_type(hid_t dataset, const std::string& where);
// Reads elements [begin, begin + count) of a 1-D dataset into out.
template <class T>
void read_range(hid_t dataset, int64_t begin, int64_t count, T* out, const std::string& where);
template <class T>
std::vector<T> read_all(hid_t dataset, const std::string& where);

// A 1-D chunked dataset grown by appends through a buffer, so a corpus streams to disk in constant memory.
template <class T>
class Appender {
 public:
  Appender(hid_t parent, const std::string& name, int64_t chunk);
  void append(const T* values, size_t n);
  void flush();
  int64_t size() const { return written_ + static_cast<int64_t>(buffer_.size()); }

 private:
  Handle dataset_;
  std::vector<T> buffer_;
  size_t capacity_;
  int64_t written_ = 0;
  std::string name_;
};

}  // namespace rg::data::h5
