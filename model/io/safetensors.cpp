// safetensors reader (mmap, full header validation) and atomic writer. See safetensors.h for the format.
#include "model/io/safetensors.h"

#include "model/io/input_file.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <fstream>
#include <random>
#include <stdexcept>

namespace rg::io {
namespace {

// The reference implementation refuses headers above 100 MB; a header that large is a corrupt length.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DtypeName {
  const char* name;
  at::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat},  {"BF16", at::kBFloat16}, {"F16", at::kHalf},
    {"I64", at::kLong},   {"I32", at::kInt},    {"I16", at::kShort},     {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

bool little_endian_host() {
  const uint16_t one = 1;
  uint8_t first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

// One header entry -> TensorInfo, every field checked; `data_size` bounds the offsets.
TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v,
                       uint64_t data_size) {
  const std::string where = path + ": tensor '" + name + "'";
  if (!v.is_object()) throw std::runtime_error(where + ": header entry is not a JSON object");
  TensorInfo t;
  t.name = name;
  const auto dtype = v.find("dtype");
  if (dtype == v.end() || !dtype->is_string()) throw std::runtime_error(where + ": missing string 'dtype'");
  t.dtype = dtype_from_safetensors(dtype->get<std::string>(), where);
  const auto shape = v.find("shape");
  if (shape == v.end() || !shape->is_array()) throw std::runtime_error(where + ": missing array 'shape'");
  uint64_t numel = 1;
  bool overflow = false;
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned()) throw std::runtime_error(where + ": shape entries must be integers >= 0");
    const uint64_t n = d.get<uint64_t>();
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) overflow = true;
    else if (n != 0 && numel > std::numeric_limits<uint64_t>::max() / n) overflow = true;
    else numel *= n;
    t.shape.push_back(static_cast<int64_t>(n));
  }
  const auto offsets = v.find("data_offsets");
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    throw std::runtime_error(where + ": 'data_offsets' must be [begin, end] with integers >= 0");
  }
  t.begin = (*offsets)[0].get<uint64_t>();
  t.end = (*offsets)[1].get<uint64_t>();
  if (t.end < t.begin) {
    throw std::runtime_error(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                             "] end before begin");
  }
  if (t.end > data_size) {
    throw std::runtime_error(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                             "] run past the data buffer of " + std::to_string(data_size) +
                             " bytes (truncated file?)");
  }
  const uint64_t elem = c10::elementSize(t.dtype);
  if (overflow || numel > std::numeric_limits<uint64_t>::max() / elem || numel * elem != t.end - t.begin) {
    throw std::runtime_error(where + ": shape " + shape_text(t.shape) + " of " + dtype->get<std::string>() +
                             " does not match its " + std::to_string(t.end - t.begin) + " bytes of data");
  }
  return t;
}

}  // namespace

std::string safetensors_dtype_name(at::ScalarType dtype) {
  for (const auto& d : kDtypes) {
    if (d.dtype == dtype) return d.name;
  }
  throw std::runtime_error(std::string("safetensors: unsupported tensor dtype ") + c10::toString(dtype));
}

at::ScalarType dtype_from_safetensors(const std::string& name, const std::string& where) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return d.dtype;
  }
  throw std::runtime_error(where + ": unsupported dtype '" + name +
                           "' (supported: F64 F32 BF16 F16 I64 I32 I16 I8 U8 BOOL)");
}

at::ScalarType parse_float_dtype(const std::string& name) {
  if (name == "float32" || name == "f32" || name == "F32" || name == "float") return at::kFloat;
  if (name == "bfloat16" || name == "bf16" || name == "BF16") return at::kBFloat16;
  if (name == "float16" || name == "f16" || name == "F16" || name == "half") return at::kHalf;
  throw std::invalid_argument("dtype: expected float32, bfloat16 or float16, got '" + name + "'");
}

std::string torch_dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: throw std::invalid_argument(std::string("dtype: expected a floating type, got ") + c10::toString(dtype));
  }
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  if (!little_endian_host()) fail(path, "safetensors needs a little-endian host");
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, S_ISDIR(st.st_mode) ? "is a folder, not a safetensors file" : "is not a regular file (a FIFO, device or socket)");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail(path, "truncated: " + std::to_string(file_size) + " bytes, a safetensors file starts with an 8-byte "
               "header length");
  }
  map_size_ = static_cast<size_t>(file_size);
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(path, std::string("cannot mmap: ") + std::strerror(map_err));
  }
  try {
    const auto* bytes = static_cast<const uint8_t*>(map_);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];  // little-endian u64
    if (header_size > file_size - 8 || header_size > kMaxHeaderBytes) {
      fail(path, "bad header length " + std::to_string(header_size) + " for a file of " +
                     std::to_string(file_size) + " bytes (truncated or not a safetensors file)");
    }
    if (header_size == 0 || bytes[8] != '{') fail(path, "bad header: the JSON header must start with '{'");
    nlohmann::json header;
    try {
      // Bounded nesting: a header is 3 levels deep, and deeper values would be recursed over later.
      const char* text = reinterpret_cast<const char*>(bytes + 8);
      header = parse_json_bounded(text, text + header_size, "bad header JSON");
    } catch (const std::invalid_argument& e) {
      fail(path, e.what());
    }
    if (!header.is_object()) fail(path, "bad header: not a JSON object");
    data_ = bytes + 8 + header_size;
    const uint64_t data_size = file_size - 8 - header_size;
    for (const auto& [key, value] : header.items()) {
      if (key == "__metadata__") {
        if (!value.is_object()) fail(path, "bad header: __metadata__ must be an object of strings");
        for (const auto& [mk, mv] : value.items()) {
          if (!mv.is_string()) fail(path, "bad header: __metadata__['" + mk + "'] is not a string");
          metadata_[mk] = mv.get<std::string>();
        }
        continue;
      }
      tensors_.push_back(parse_entry(path, key, value, data_size));
    }
    // The buffer must be indexed exactly: sorted by offset, each tensor starts where the last ended.
    std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t expect = 0;
    const TensorInfo* prev = nullptr;
    for (const auto& t : tensors_) {
      if (t.begin < expect) {
        fail(path, "tensor '" + t.name + "' bytes [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                       ") overlap tensor '" + prev->name + "' [" + std::to_string(prev->begin) + ", " +
                       std::to_string(prev->end) + ")");
      }
      if (t.begin > expect) {
        fail(path, "tensor '" + t.name + "' starts at byte " + std::to_string(t.begin) + " but the previous "
                       "tensor ends at " + std::to_string(expect) + " (a hole in the data buffer)");
      }
      expect = t.end;
      prev = &t;
    }
    if (expect != data_size) {
      fail(path, "the tensors cover " + std::to_string(expect) + " bytes but the data buffer holds " +
                     std::to_string(data_size) + " (trailing bytes or a bad header)");
    }
    for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail(path_, "no tensor '" + name + "'");
  return tensors_[it->second];
}

at::Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorInfo& t = info(name);
  const auto options = at::TensorOptions().dtype(t.dtype).device(at::kCPU);
  const uint8_t* p = data_ + t.begin;
  if (t.end == t.begin) return at::empty(t.shape, options);
  if (reinterpret_cast<uintptr_t>(p) % c10::elementSize(t.dtype) != 0) {
    // Writers other than ours need not align tensors; a misaligned view would break vectorised kernels.
    at::Tensor out = at::empty(t.shape, options);
    std::memcpy(out.data_ptr(), p, t.end - t.begin);
    return out;
  }
  return at::from_blob(const_cast<uint8_t*>(p), t.shape, options);
}

at::Tensor SafetensorsFile::load(const std::string& name) const { return view(name).clone(); }

TensorMap SafetensorsFile::load_all() const {
  TensorMap out;
  for (const auto& t : tensors_) out[t.name] = load(t.name);
  return out;
}

TensorMap read_safetensors(const std::string& path, Metadata* metadata) {
  SafetensorsFile file(path);
  if (metadata) *metadata = file.metadata();
  return file.load_all();
}

void write_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  if (!little_endian_host()) fail(path, "safetensors needs a little-endian host");
  // Largest elements first keeps every tensor aligned without padding (sizes are powers of two).
  std::vector<std::pair<std::string, at::Tensor>> order;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(path, "'__metadata__' is reserved and cannot name a tensor");
    if (!t.defined()) fail(path, "tensor '" + name + "' is undefined");
    safetensors_dtype_name(t.scalar_type());  // throws early on an unsupported dtype
    order.emplace_back(name, t);
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.second.element_size() > b.second.element_size();
  });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

  std::random_device rd;
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, "cannot create temporary file " + tmp + ": " + std::strerror(errno));
  try {
    auto put = [&](const void* p, size_t n) {
      if (n && std::fwrite(p, 1, n, f) != n) fail(path, std::string("write failed: ") + std::strerror(errno));
    };
    put(length, 8);
    put(text.data(), text.size());
    for (const auto& [name, t] : order) {
      const at::Tensor c = t.detach().to(at::kCPU).contiguous();
      put(c.data_ptr(), static_cast<size_t>(c.numel()) * c.element_size());
    }
    if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) {
      fail(path, std::string("flush failed: ") + std::strerror(errno));
    }
    const int rc = std::fclose(f);
    f = nullptr;
    if (rc != 0) fail(path, std::string("close failed: ") + std::strerror(errno));
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      fail(path, "cannot rename " + tmp + " into place: " + std::strerror(errno));
    }
  } catch (...) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
}

}  // namespace rg::io
