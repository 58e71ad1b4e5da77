// safetensors, written from the format description (huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {str: str}} padded with spaces to a multiple of 8, then the data buffer the offsets index into.
// Owns: the mmap'd reader (SafetensorsFile, zero-copy views), whole-file read, atomic write.
#pragma once

#include "model/io/atomic_write.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rg::io {

// Name -> tensor, ordered by name (the order safetensors headers and HF weight maps use).
using TensorMap = std::map<std::string, at::Tensor>;
using Metadata = std::map<std::string, std::string>;

// "F32" <-> at::kFloat etc. Supported: F64 F32 BF16 F16 I64 I32 I16 I8 U8 BOOL.
// dtype_from_safetensors throws std::runtime_error naming `where` for anything else.
std::string safetensors_dtype_name(at::ScalarType dtype);
at::ScalarType dtype_from_safetensors(const std::string& name, const std::string& where);
// Parses a user-facing dtype ("float32"/"f32"/"bfloat16"/"bf16"/"float16"/"f16"), as in HF's torch_dtype.
at::ScalarType parse_float_dtype(const std::string& name);
std::string torch_dtype_name(at::ScalarType dtype);  // "float32", "bfloat16", "float16"

struct TensorInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data buffer (after the header)
};

// A safetensors file mapped read-only. The constructor validates the whole header against the file
// size (every dtype, shape, offset; no overlaps, no holes, buffer fully covered) and throws
// std::runtime_error naming the file and the tensor on the first problem. Views stay valid while this
// object lives; load() returns an owned copy.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // header order of offsets
  const Metadata& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws naming file and tensor

  // Zero-copy CPU tensor over the mapping (a copy when the bytes are not aligned for the dtype).
  // Must not be written to and must not outlive this object.
  at::Tensor view(const std::string& name) const;
  at::Tensor load(const std::string& name) const;  // owned, contiguous CPU copy
  TensorMap load_all() const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* data_ = nullptr;  // start of the data buffer
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  Metadata metadata_;
};

// Every tensor of a file, as owned CPU tensors.
TensorMap read_safetensors(const std::string& path, Metadata* metadata = nullptr);

// Writes `tensors` (any device, any layout; converted to contiguous CPU) to `path` atomically: a
// temporary file in the same folder, flushed, then renamed over `path`. Tensors are laid out by
// decreasing element size, then name, so every tensor is aligned for its dtype. Throws naming the file.
void write_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

}  // namespace rg::io
