// h5: RAII handles, attributes, appendable datasets and range reads over the HDF5 C API (see h5.h).
#include "data/h5.h"

#include "data/data_error.h"

#include <stdexcept>
#include <type_traits>

namespace rg::data::h5 {

std::recursive_mutex& lock() {
  static std::recursive_mutex m;
  return m;
}

void quiet() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::lock_guard<std::recursive_mutex> g(lock());
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

void Handle::reset() {
  if (id_ >= 0) {
    std::lock_guard<std::recursive_mutex> g(lock());
    H5Idec_ref(id_);
  }
  id_ = -1;
}

template <>
hid_t native_type<int32_t>() { return H5T_NATIVE_INT32; }
template <>
hid_t native_type<int64_t>() { return H5T_NATIVE_INT64; }
template <>
hid_t native_type<uint8_t>() { return H5T_NATIVE_UINT8; }
template <>
hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }
template <>
hid_t file_type<int32_t>() { return H5T_STD_I32LE; }
template <>
hid_t file_type<int64_t>() { return H5T_STD_I64LE; }
template <>
hid_t file_type<uint8_t>() { return H5T_STD_U8LE; }
template <>
hid_t file_type<double>() { return H5T_IEEE_F64LE; }

namespace {

void check(herr_t status, const std::string& what) {
  if (status < 0) throw std::runtime_error("HDF5: " + what + " failed");
}

template <class T>
void write_scalar_attr(hid_t obj, const std::string& name, hid_t file_t, hid_t mem_t, const T& value) {
  std::lock_guard<std::recursive_mutex> g(lock());
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr(H5Acreate2(obj, name.c_str(), file_t, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid()) throw std::runtime_error("HDF5: cannot create attribute " + name);
  check(H5Awrite(attr.get(), mem_t, &value), "writing attribute " + name);
}

// Opens a single-valued attribute: H5Aread writes every element, so an array attribute read into one
// value would overrun it.
Handle open_attr(hid_t obj, const std::string& name, const std::string& where) {
  if (H5Aexists(obj, name.c_str()) <= 0) throw BadDataFile(where + ": missing attribute '" + name + "'");
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT));
  if (!attr.valid()) throw BadDataFile(where + ": cannot read attribute '" + name + "'");
  Handle space(H5Aget_space(attr.get()));
  if (H5Sget_simple_extent_npoints(space.get()) != 1) {
    throw BadDataFile(where + ": attribute '" + name + "' holds " +
                      std::to_string(H5Sget_simple_extent_npoints(space.get())) + " values, expected one");
  }
  return attr;
}

}  // namespace

bool has_attr(hid_t obj, const std::string& name) {
  std::lock_guard<std::recursive_mutex> g(lock());
  return H5Aexists(obj, name.c_str()) > 0;
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  std::lock_guard<std::recursive_mutex> g(lock());
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  // Fixed-length string of exactly the value's size (at least 1: HDF5 refuses size 0).
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), std::max<size_t>(1, value.size()));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  Handle space(H5Screate(H5S_SCALAR));
  Handle attr(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid()) throw std::runtime_error("HDF5: cannot create attribute " + name);
  std::string padded = value;
  padded.resize(std::max<size_t>(1, value.size()), '\0');
  check(H5Awrite(attr.get(), type.get(), padded.data()), "writing attribute " + name);
}

void write_attr(hid_t obj, const std::string& name, int64_t value) {
  write_scalar_attr(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, value);
}

void write_attr(hid_t obj, const std::string& name, double value) {
  write_scalar_attr(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, value);
}

std::string read_string_attr(hid_t obj, const std::string& name, const std::string& where) {
  std::lock_guard<std::recursive_mutex> g(lock());
  Handle attr = open_attr(obj, name, where);
  Handle type(H5Aget_type(attr.get()));
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0) {
    throw BadDataFile(where + ": attribute '" + name + "' is " + type_name(type.get()) +
                      ", expected a fixed-length string");
  }
  const size_t size = H5Tget_size(type.get());
  std::string out(size, '\0');
  check(H5Aread(attr.get(), type.get(), out.data()), "reading attribute " + name);
  out.resize(out.find('\0') == std::string::npos ? out.size() : out.find('\0'));
  return out;
}

int64_t read_int_attr(hid_t obj, const std::string& name, const std::string& where) {
  std::lock_guard<std::recursive_mutex> g(lock());
  Handle attr = open_attr(obj, name, where);
  Handle type(H5Aget_type(attr.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER) {
    throw BadDataFile(where + ": attribute '" + name + "' is " + type_name(type.get()) + ", expected an integer");
  }
  int64_t v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), "reading attribute " + name);
  return v;
}

double read_double_attr(hid_t obj, const std::string& name, const std::string& where) {
  std::lock_guard<std::recursive_mutex> g(lock());
  Handle attr = open_attr(obj, name, where);
  Handle type(H5Aget_type(attr.get()));
  if (H5Tget_class(type.get()) != H5T_FLOAT) {
    throw BadDataFile(where + ": attribute '" + name + "' is " + type_name(type.get()) + ", expected a float");
  }
  double v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v), "reading attribute " + name);
  return v;
}

bool has_link(hid_t group, const std::string& name) {
  std::lock_guard<std::recursive_mutex> g(lock());
  return H5Lexists(group, name.c_str(), H5P_DEFAULT) > 0;
}

Handle open_group(hid_t parent, const std::string& name, const std::string& where) {
  std::lock_guard<std::recursive_mutex> g(lock());
  if (H5Lexists(parent, name.c_str(), H5P_DEFAULT) <= 0) {
    throw BadDataFile(where + ": missing group '" + name + "'");
  }
  Handle group(H5Gopen2(parent, name.c_str(), H5P_DEFAULT));
  if (!group.valid()) throw BadDataFile(where + ": '" + name + "' is not a group (or is damaged)");
  return group;
}

Handle open_dataset(hid_t parent, const std::string& name, const std::string& where) {
  std::lock_guard<std::recursive_mutex> g(lock());
  if (H5Lexists(parent, name.c_str(), H5P_DEFAULT) <= 0) {
    throw BadDataFile(where + ": missing dataset '" + name + "'");
  }
  // A larger chunk cache than HDF5's 1 MB default: the loader reads documents in shuffled order.
  Handle dapl(H5Pcreate(H5P_DATASET_ACCESS));
  H5Pset_chunk_cache(dapl.get(), 1021, 16u << 20, 0.75);
  Handle dataset(H5Dopen2(parent, name.c_str(), dapl.get()));
  if (!dataset.valid()) throw BadDataFile(where + ": '" + name + "' is not a dataset (or is damaged)");
  return dataset;
}

int64_t dataset_length(hid_t dataset, const std::string& where) {
  std::lock_guard<std::recursive_mutex> g(lock());
  Handle space(H5Dget_space(dataset));
  const int ndims = H5Sget_simple_extent_ndims(space.get());
  if (ndims != 1) {
    throw BadDataFile(where + ": a " + std::to_string(ndims) + "-D dataset, expected 1-D");
  }
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  return static_cast<int64_t>(n);
}

std::string type_name(hid_t type) {
  std::lock_guard<std::recursive_mutex> g(lock());
  const size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT: return "float" + std::to_string(bits);
    case H5T_STRING: return H5Tis_variable_str(type) > 0 ? "a variable-length string" : "a fixed-length string";
    case H5T_BITFIELD: return "a bitfield";
    case H5T_OPAQUE: return "opaque data";
    case H5T_COMPOUND: return "a compound type";
    case H5T_REFERENCE: return "a reference";
    case H5T_ENUM: return "an enum";
    case H5T_VLEN: return "a variable-length sequence";
    case H5T_ARRAY: return "an array type";
    default: return "an unknown type";
  }
}

template <class T>
void expect_type(hid_t dataset, const std::string& where) {
  std::lock_guard<std::recursive_mutex> g(lock());
  Handle type(H5Dget_type(dataset));
  bool ok = H5Tget_size(type.get()) == sizeof(T);
  if constexpr (std::is_floating_point_v<T>) {
    ok = ok && H5Tget_class(type.get()) == H5T_FLOAT;
  } else {
    ok = ok && H5Tget_class(type.get()) == H5T_INTEGER &&
         (H5Tget_sign(type.get()) == H5T_SGN_NONE) == std::is_unsigned_v<T>;
  }
  if (!ok) {
    Handle want(H5Tcopy(native_type<T>()));
    throw BadDataFile(where + ": stored as " + type_name(type.get()) + ", expected " + type_name(want.get()) +
                      " (the type rgemma prepare writes; HDF5 would convert it on read)");
  }
}

template <class T>
void read_range(hid_t dataset, int64_t begin, int64_t count, T* out, const std::string& where) {
  if (count == 0) return;
  std::lock_guard<std::recursive_mutex> g(lock());
  Handle file_space(H5Dget_space(dataset));
  const hsize_t start = static_cast<hsize_t>(begin), n = static_cast<hsize_t>(count);
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr) < 0) {
    throw std::runtime_error(where + ": cannot select elements " + std::to_string(begin) + ".." +
                             std::to_string(begin + count));
  }
  Handle mem_space(H5Screate_simple(1, &n, nullptr));
  if (H5Dread(dataset, native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
    throw std::runtime_error(where + ": read of elements " + std::to_string(begin) + ".." +
                             std::to_string(begin + count) + " failed (truncated or damaged file?)");
  }
}

template <class T>
std::vector<T> read_all(hid_t dataset, const std::string& where) {
  std::vector<T> out(dataset_length(dataset, where));
  read_range<T>(dataset, 0, static_cast<int64_t>(out.size()), out.data(), where);
  return out;
}

Handle create_group(hid_t parent, const std::string& name) {
  std::lock_guard<std::recursive_mutex> g(lock());
  Handle gcpl(H5Pcreate(H5P_GROUP_CREATE));
  H5Pset_obj_track_times(gcpl.get(), 0);  // no timestamps: the same input gives the same bytes
  Handle group(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT));
  if (!group.valid()) throw std::runtime_error("HDF5: cannot create group " + name);
  return group;
}

template <class T>
Appender<T>::Appender(hid_t parent, const std::string& name, int64_t chunk)
    : capacity_(static_cast<size_t>(chunk) * 16), name_(name) {
  std::lock_guard<std::recursive_mutex> g(lock());
  const hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk_dims = static_cast<hsize_t>(chunk);
  Handle space(H5Screate_simple(1, &zero, &unlimited));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  H5Pset_chunk(dcpl.get(), 1, &chunk_dims);
  H5Pset_obj_track_times(dcpl.get(), 0);  // no timestamps: the same input gives the same bytes
  dataset_ = Handle(H5Dcreate2(parent, name.c_str(), file_type<T>(), space.get(), H5P_DEFAULT, dcpl.get(),
                               H5P_DEFAULT));
  if (!dataset_.valid()) throw std::runtime_error("HDF5: cannot create dataset " + name);
  buffer_.reserve(capacity_);
}

template <class T>
void Appender<T>::append(const T* values, size_t n) {
  for (size_t i = 0; i < n;) {
    const size_t take = std::min(n - i, capacity_ - buffer_.size());
    buffer_.insert(buffer_.end(), values + i, values + i + take);
    i += take;
    if (buffer_.size() == capacity_) flush();
  }
}

template <class T>
void Appender<T>::flush() {
  if (buffer_.empty()) return;
  std::lock_guard<std::recursive_mutex> g(lock());
  const hsize_t start = static_cast<hsize_t>(written_), n = buffer_.size(), total = start + n;
  check(H5Dset_extent(dataset_.get(), &total), "extending " + name_);
  Handle file_space(H5Dget_space(dataset_.get()));
  H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr);
  Handle mem_space(H5Screate_simple(1, &n, nullptr));
  check(H5Dwrite(dataset_.get(), native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT,
                 buffer_.data()),
        "writing " + name_);
  written_ += static_cast<int64_t>(n);
  buffer_.clear();
}

template class Appender<int32_t>;
template class Appender<int64_t>;
template class Appender<uint8_t>;
template class Appender<double>;
template void expect_type<int32_t>(hid_t, const std::string&);
template void expect_type<int64_t>(hid_t, const std::string&);
template void expect_type<uint8_t>(hid_t, const std::string&);
template void expect_type<double>(hid_t, const std::string&);
template void read_range<int32_t>(hid_t, int64_t, int64_t, int32_t*, const std::string&);
template void read_range<int64_t>(hid_t, int64_t, int64_t, int64_t*, const std::string&);
template void read_range<uint8_t>(hid_t, int64_t, int64_t, uint8_t*, const std::string&);
template void read_range<double>(hid_t, int64_t, int64_t, double*, const std::string&);
template std::vector<int32_t> read_all<int32_t>(hid_t, const std::string&);
template std::vector<int64_t> read_all<int64_t>(hid_t, const std::string&);
template std::vector<uint8_t> read_all<uint8_t>(hid_t, const std::string&);
template std::vector<double> read_all<double>(hid_t, const std::string&);

}  // namespace rg::data::h5
