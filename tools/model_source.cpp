// ModelSource: --model DIR (load_pretrained) or [model] keys with a seeded random init; the input checks
// and memory estimates the model commands share.
#include "tools/model_source.h"

#include "configs/sections.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/hf_config.h"
#include "model/io/input_file.h"
#include "model/io/safetensors.h"
#include "model/pretrained.h"
#include "rlhf/reward_model.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <new>
#include <sstream>

namespace rg::tools {
namespace {

namespace fs = std::filesystem;

// The folder must exist, and the files load_pretrained opens must be regular files: a FIFO named
// config.json or model.safetensors would otherwise block the read, /dev/zero never end.
void check_model_folder(const std::string& dir) {
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (!fs::exists(status)) throw config::ConfigError("command line: model: " + dir + ": no such folder");
  if (!fs::is_directory(status)) {
    throw config::ConfigError("command line: model: " + dir + ": not a folder (expected a Hugging Face model "
                              "folder with config.json and model.safetensors)");
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool weights = name.rfind("model", 0) == 0 && (name.size() > 12 &&
                         (name.compare(name.size() - 12, 12, ".safetensors") == 0 ||
                          name == "model.safetensors.index.json"));
    if (name != "config.json" && !weights) continue;
    try {
      io::require_regular_file(entry.path().string());
    } catch (const std::invalid_argument& e) {
      throw config::ConfigError(std::string("command line: model: ") + e.what());
    }
  }
}

}  // namespace

void add_model_source_options(config::Options& o, ModelSource* s) {
  o.add("model", &s->dir, "Hugging Face model folder (config.json + safetensors); else [model] keys, random weights")
      .add("dtype", &s->dtype, "float32 | bfloat16 | float16 (float16 only for init: the CPU does not compute in it)")
      .add("init-seed", &s->init_seed, "seed of the random weights when no --model is given");
  config::add_model_options(o, &s->config);
}

Griffin make_model(const ModelSource& s, const config::Options& o, bool compute) {
  torch::Dtype dtype;
  try {
    dtype = io::parse_float_dtype(s.dtype);
  } catch (const std::exception& e) {
    o.fail("dtype", e.what());
  }
  if (compute && dtype == torch::kHalf) {
    // LibTorch 1.13's CPU kernels have no float16 matmul (the forward would fail mid-way with a C++
    // backtrace), and the tools run on the CPU.
    o.fail("dtype", "float16 is not supported for computing on the CPU; use float32 or bfloat16");
  }
  const std::string dtype_name = io::torch_dtype_name(dtype);
  const double elem = static_cast<double>(c10::elementSize(dtype));
  Griffin model(nullptr);
  if (!s.dir.empty()) {
    for (const char* key : {"model.vocab_size", "model.width", "model.depth", "model.block_pattern"}) {
      if (o.given(key)) o.fail(key, "conflicts with --model (the folder's config.json defines the model)");
    }
    check_model_folder(s.dir);
    if (rlhf::is_reward_model_dir(s.dir)) {  // a backbone plus a score head, not a language model
      throw config::ConfigError("command line: model: " + s.dir + " is a reward model (config.json has num_labels, "
                                "a score head), not a causal LM; rgemma score --model takes it");
    }
    io::HfArch arch;
    ModelConfig config;
    try {
      config = io::read_hf_config(s.dir, &arch);
      io::check_config_fits_weights(config, arch, s.dir, (fs::path(s.dir) / "config.json").string());
    } catch (const std::invalid_argument& e) {
      throw config::ConfigError(e.what());  // the folder's config.json is configuration: exit 2
    }
    const int64_t n = count_parameters(config).total;
    const std::string what = "loading " + s.dir + ": " + std::to_string(n) + " parameters as " + dtype_name + " (" +
                             bytes_text(n * elem) + ")";
    require_memory(n * elem, what);
    with_memory_context(what, [&] { model = load_pretrained(s.dir, dtype); });
    return model;
  }
  const int64_t n = count_parameters(s.config).total;
  const std::string what = "building the model: " + std::to_string(n) + " parameters as " + dtype_name + " (" +
                           bytes_text(n * elem) + (dtype == torch::kFloat ? ")" : ", initialised in float32)");
  // Initialised in float32, then converted: both copies exist for a moment.
  require_memory(n * (4 + (dtype == torch::kFloat ? 0 : elem)), what);
  with_memory_context(what, [&] {
    torch::manual_seed(static_cast<uint64_t>(s.init_seed));
    model = Griffin(s.config);
    model->to(dtype);
  });
  return model;
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key, int64_t min, int64_t max) {
  auto fail = [&](const std::string& why) -> void {
    throw config::ConfigError("command line: " + key + ": expected comma-separated integers" +
                              (min == 0 && max == std::numeric_limits<int64_t>::max() ? std::string(" >= 0")
                               : " in [" + std::to_string(min) + ", " + std::to_string(max) + "]") +
                              ", " + why);
  };
  std::vector<int64_t> out;
  if (text.find_first_not_of(" \t") == std::string::npos) fail("got an empty list");
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b == std::string::npos) fail("got an empty item in '" + text + "'");
    const std::string digits = item.substr(b, e - b + 1);
    int64_t v = 0;
    const char* first = digits.data();
    const char* last = digits.data() + digits.size();
    // from_chars reads a whole decimal integer or nothing; `ptr != last` catches "2 3", "1-2", "3x".
    const auto [ptr, ec] = std::from_chars(first, last, v);
    if (ec == std::errc::result_out_of_range) fail("got '" + digits + "' (out of range)");
    if (ec != std::errc() || ptr != last) fail("got '" + digits + "'");
    if (v < min || v > max) fail("got " + digits);
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<int64_t> parse_ids(const std::string& text, const std::string& key) {
  return parse_int_list(text, key, 0, std::numeric_limits<int64_t>::max());
}

void check_ids(const std::vector<int64_t>& ids, int64_t vocab_size, const std::string& key) {
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size) {
      throw config::ConfigError("command line: " + key + ": token id " + std::to_string(id) +
                                " is outside the model's vocabulary [0, " + std::to_string(vocab_size) + ")");
    }
  }
}

void require_input_file(const std::string& path, const std::string& key) {
  try {
    io::require_regular_file(path);
  } catch (const std::invalid_argument& e) {
    throw config::ConfigError("command line: " + key + ": " + e.what());
  }
}

uint64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

std::string bytes_text(double bytes) {
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB", "PB", "EB"};
  int u = 0;
  while (bytes >= 1000 && u < 6) bytes /= 1000, ++u;
  char buf[48];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

void require_memory(double bytes, const std::string& what) {
  const uint64_t have = physical_memory_bytes();
  if (have > 0 && bytes > static_cast<double>(have)) {
    throw std::runtime_error(what + ": out of memory: needs about " + bytes_text(bytes) + ", more than this "
                             "machine's " + bytes_text(static_cast<double>(have)));
  }
}

void with_memory_context(const std::string& what, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::bad_alloc&) {
    throw std::runtime_error(what + ": out of memory");
  } catch (const c10::Error& e) {
    // LibTorch reports a failed allocation as c10::Error ("DefaultCPUAllocator: can't allocate memory",
    // "CUDA out of memory"); anything else passes through unchanged.
    const std::string msg = e.what_without_backtrace();
    if (msg.find("allocate") == std::string::npos && msg.find("out of memory") == std::string::npos) throw;
    throw std::runtime_error(what + ": out of memory (" + msg.substr(0, msg.find('\n')) + ")");
  }
}

}  // namespace rg::tools
