// HF names, weights folders (single file or sharded + index), load_state / save_state. Loading checks
// every name, shape and dtype before touching the model, so a bad folder never leaves it half-loaded.
#include "model/io/hf_checkpoint.h"

#include "model/io/input_file.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace rg::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char kSingleFile[] = "model.safetensors";
const char kIndexFile[] = "model.safetensors.index.json";
const char kLmHead[] = "lm_head.weight";
constexpr uint64_t kMaxIndexBytes = 64ull << 20;

// Module component -> HF Gemma component. RecurrentGemma uses the module names unchanged.
const std::pair<const char*, const char*> kGemmaNames[] = {
    {"temporal_block", "self_attn"},
    {"mlp_block", "mlp"},
    {"temporal_pre_norm", "input_layernorm"},
    {"channel_pre_norm", "post_attention_layernorm"},
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::stringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "." : "") + parts[i];
  return out;
}

std::string shape_text(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

bool is_weight_file(const std::string& name) {
  if (name == kSingleFile || name == kIndexFile) return true;
  // model-00001-of-00003.safetensors
  return name.rfind("model-", 0) == 0 && name.find("-of-") != std::string::npos &&
         name.size() > 12 && name.compare(name.size() - 12, 12, ".safetensors") == 0;
}

std::string shard_name(size_t k, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", k, n);
  return buf;
}

std::string random_suffix() {
  std::random_device rd;
  return std::to_string(::getpid()) + "." + std::to_string(rd());
}

// One tensor offered for loading: its shape and dtype (known without reading data) and a way to get it.
struct Offered {
  std::vector<int64_t> shape;
  at::ScalarType dtype;
  std::string where;  // file (or source) holding it, for messages
  std::function<at::Tensor()> get;
};

void load_offered(torch::nn::Module& model, const std::map<std::string, Offered>& offered, HfArch arch,
                  const std::string& source) {
  std::vector<std::string> problems;
  std::vector<std::pair<at::Tensor, const Offered*>> copies;  // (destination, source)
  std::set<std::string> used;
  auto check = [&](const std::string& name, const at::Tensor& dest, bool required) {
    const std::string hf = to_hf_name(name, arch);
    const auto it = offered.find(hf);
    if (it == offered.end()) {
      if (required) {
        problems.push_back("missing tensor '" + hf + "' for parameter '" + name + "' " + shape_text(dest.sizes()));
      }
      return;
    }
    used.insert(hf);
    const Offered& o = it->second;
    if (o.shape != dest.sizes().vec()) {
      problems.push_back("wrong shape for '" + hf + "': file " + shape_text(o.shape) + " (" + o.where + "), model " +
                         shape_text(dest.sizes()));
      return;
    }
    if (c10::isFloatingType(dest.scalar_type()) != c10::isFloatingType(o.dtype)) {
      problems.push_back("wrong dtype for '" + hf + "': file " + c10::toString(o.dtype) + " (" + o.where +
                         "), model " + c10::toString(dest.scalar_type()));
      return;
    }
    copies.emplace_back(dest, &o);
  };
  for (const auto& item : model.named_parameters(/*recurse=*/true)) check(item.key(), item.value(), true);
  for (const auto& item : model.named_buffers(/*recurse=*/true)) check(item.key(), item.value(), false);

  for (const auto& [hf, o] : offered) {
    if (used.count(hf)) continue;
    if (hf == kLmHead) continue;  // checked below
    problems.push_back("unexpected tensor '" + hf + "' " + shape_text(o.shape) + " (" + o.where + ")");
  }
  const auto head = offered.find(kLmHead);
  if (head != offered.end()) {
    // Tied output layer: a checkpoint may carry a copy, which must be that copy (docs/architecture.md §12).
    const std::string embed = to_hf_name("embed_tokens.weight", arch);
    const auto e = offered.find(embed);
    if (e == offered.end()) {
      problems.push_back("'lm_head.weight' is present but '" + embed + "' is not; rgemma ties them");
    } else if (e->second.shape != head->second.shape) {
      problems.push_back("'lm_head.weight' " + shape_text(head->second.shape) + " (" + head->second.where +
                         ") differs in shape from '" + embed + "' " + shape_text(e->second.shape) +
                         "; rgemma ties them");
    } else {
      const at::Tensor a = e->second.get(), b = head->second.get();
      if (!at::equal(a, b.to(a.scalar_type()))) {
        problems.push_back("'lm_head.weight' (" + head->second.where + ") differs from '" + embed +
                           "'; rgemma ties them, so an untied checkpoint cannot be loaded");
      }
    }
  }
  if (!problems.empty()) {
    // One line (the command prints errors on one line) naming every problem of a real model (the 9B has
    // ~500 tensors, rarely all wrong); a hostile file with millions of names gets the first thousand.
    constexpr size_t kShown = 1000;
    std::string msg = source + ": cannot load weights into the model (" + std::to_string(problems.size()) +
                      (problems.size() == 1 ? " problem): " : " problems): ");
    for (size_t i = 0; i < std::min(kShown, problems.size()); ++i) msg += (i ? "; " : "") + problems[i];
    if (problems.size() > kShown) msg += "; and " + std::to_string(problems.size() - kShown) + " more";
    throw std::runtime_error(msg);
  }
  torch::NoGradGuard no_grad;
  for (auto& [dest, o] : copies) dest.copy_(o->get());
}

HfArch arch_from_names(const std::vector<std::string>& names) {
  for (const auto& n : names) {
    if (n.rfind("model.layers.", 0) == 0 && (n.find(".self_attn.") != std::string::npos ||
                                             n.find(".input_layernorm.") != std::string::npos)) {
      return HfArch::kGemma;
    }
  }
  return HfArch::kRecurrentGemma;
}

}  // namespace

std::string to_hf_name(const std::string& name, HfArch arch) {
  if (arch == HfArch::kRecurrentGemma) return "model." + name;
  std::vector<std::string> parts = split(name, '.');
  if (!parts.empty() && parts[0] == "final_norm") parts[0] = "norm";
  for (auto& p : parts) {
    for (const auto& [ours, theirs] : kGemmaNames) {
      if (p == ours) p = theirs;
    }
  }
  return "model." + join(parts);
}

std::string from_hf_name(const std::string& hf_name, HfArch arch) {
  if (hf_name.rfind("model.", 0) != 0) return "";
  const std::string rest = hf_name.substr(6);
  if (arch == HfArch::kRecurrentGemma) return rest;
  std::vector<std::string> parts = split(rest, '.');
  if (!parts.empty() && parts[0] == "norm") parts[0] = "final_norm";
  for (auto& p : parts) {
    for (const auto& [ours, theirs] : kGemmaNames) {
      if (p == theirs) p = ours;
    }
  }
  return join(parts);
}

WeightsFolder::WeightsFolder(const std::string& dir) : dir_(dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw std::runtime_error(dir + ": not a folder");
  if (fs::exists(root / kSingleFile)) {
    files_.push_back(std::make_unique<SafetensorsFile>((root / kSingleFile).string()));
    for (const auto& t : files_[0]->tensors()) where_[t.name] = 0;
    return;
  }
  const fs::path index_path = root / kIndexFile;
  if (!fs::exists(index_path)) {
    std::string msg = dir + ": no " + std::string(kSingleFile) + " and no " + kIndexFile;
    if (fs::exists(root / "pytorch_model.bin") || fs::exists(root / "pytorch_model.bin.index.json")) {
      msg += " (pytorch_model.bin found: only safetensors weights are supported; convert them first)";
    }
    throw std::runtime_error(msg);
  }
  json index;
  try {
    // Regular file, bounded size (a 9B index is ~40 KB) and nesting: see input_file.h.
    index = parse_json_bounded(read_regular_file(index_path.string(), kMaxIndexBytes), index_path.string());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }
  const auto map = index.find("weight_map");
  if (!index.is_object() || map == index.end() || !map->is_object()) {
    throw std::runtime_error(index_path.string() + ": field 'weight_map': missing or not an object");
  }
  std::map<std::string, size_t> file_number;
  std::map<std::string, std::string> listed;  // tensor -> shard file name
  for (const auto& [tensor, file] : map->items()) {
    if (!file.is_string()) {
      throw std::runtime_error(index_path.string() + ": weight_map['" + tensor + "'] is not a file name");
    }
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..") {
      throw std::runtime_error(index_path.string() + ": weight_map['" + tensor + "'] = '" + f +
                               "' is not a file name inside the folder");
    }
    listed[tensor] = f;
    if (!file_number.count(f) && !fs::exists(root / f)) {
      throw std::runtime_error(index_path.string() + ": weight_map['" + tensor + "'] names shard '" + f +
                               "', which is not in the folder");
    }
    if (!file_number.count(f)) {
      file_number[f] = files_.size();
      files_.push_back(std::make_unique<SafetensorsFile>((root / f).string()));
    }
  }
  for (const auto& [tensor, f] : listed) {
    const SafetensorsFile& shard = *files_[file_number[f]];
    if (!shard.contains(tensor)) {
      throw std::runtime_error(index_path.string() + ": tensor '" + tensor + "' is mapped to " + f +
                               ", which does not contain it");
    }
  }
  for (size_t i = 0; i < files_.size(); ++i) {
    for (const auto& t : files_[i]->tensors()) {
      const auto it = listed.find(t.name);
      if (it == listed.end() || file_number[it->second] != i) {
        throw std::runtime_error(files_[i]->path() + ": tensor '" + t.name + "' is not mapped to this file by " +
                                 index_path.string() + (it == listed.end() ? "" : " (mapped to " + it->second + ")"));
      }
      where_[t.name] = i;
    }
  }
}

std::vector<std::string> WeightsFolder::names() const {
  std::vector<std::string> out;
  for (const auto& [name, i] : where_) out.push_back(name);
  return out;
}

const TensorInfo& WeightsFolder::info(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) throw std::runtime_error(dir_ + ": no tensor '" + name + "'");
  return files_[it->second]->info(name);
}

const std::string& WeightsFolder::file_of(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) throw std::runtime_error(dir_ + ": no tensor '" + name + "'");
  return files_[it->second]->path();
}

at::Tensor WeightsFolder::view(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) throw std::runtime_error(dir_ + ": no tensor '" + name + "'");
  return files_[it->second]->view(name);
}

void check_config_fits_weights(const ModelConfig& c, HfArch arch, const std::string& dir,
                               const std::string& config_source) {
  const WeightsFolder folder(dir);
  // Parameters the config describes, in floating point so that no field combination overflows; exact
  // (count_parameters' formula) while below 2^53. A loadable folder holds every parameter at its shape.
  const double W = c.width, L = c.lru_width, E = c.mlp_hidden, K = c.conv_width, H = c.num_heads;
  const double hd = c.head_dim, kv = c.num_kv_heads, bias = c.use_bias ? 1 : 0;
  const double P = static_cast<double>(c.block_pattern.size());
  double recurrent_blocks = 0;
  for (size_t i = 0; i < c.block_pattern.size(); ++i) {
    if (c.block_pattern[i] != BlockType::kRecurrent) continue;
    // Blocks i, i + P, i + 2P, ... below depth.
    recurrent_blocks += static_cast<double>(c.depth) > static_cast<double>(i)
                            ? std::floor((static_cast<double>(c.depth) - 1 - static_cast<double>(i)) / P) + 1 : 0;
  }
  const double attention_blocks = static_cast<double>(c.depth) - recurrent_blocks;
  const double recurrent = 3 * W * L + 2 * L + W + K * L + L + L + 2 * (std::floor(L * L / H) + L);
  const double attention = W * H * hd + 2 * W * kv * hd + H * hd * W + bias * W;
  const double mlp = 3 * W * E + bias * (2 * E + W);
  const double described = static_cast<double>(c.vocab_size) * W + W + static_cast<double>(c.depth) * (2 * W + mlp) +
                           recurrent_blocks * recurrent + attention_blocks * attention;
  double stored = 0;
  for (const auto& name : folder.names()) {
    if (name == kLmHead) continue;
    double n = 1;
    for (int64_t d : folder.info(name).shape) n *= static_cast<double>(d);
    stored += n;
  }
  // Below 2^26 parameters (256 MB of float32) building the model first costs little, and load_state's
  // tensor-by-tensor report says more than a count; above, a mismatch is refused before allocating.
  constexpr double kCheapParameters = 67108864.0;
  if (described <= stored || described <= kCheapParameters) return;
  const std::string embed = to_hf_name("embed_tokens.weight", arch);
  if (folder.contains(embed) && folder.info(embed).shape != std::vector<int64_t>{c.vocab_size, c.width}) {
    throw std::invalid_argument(config_source + ": vocab_size x hidden_size = [" + std::to_string(c.vocab_size) +
                                "," + std::to_string(c.width) + "] but '" + embed + "' in " +
                                fs::path(folder.file_of(embed)).filename().string() + " is " +
                                shape_text(folder.info(embed).shape) + " (refused before allocating the model)");
  }
  auto g = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", x);
    return std::string(buf);
  };
  throw std::invalid_argument(config_source + ": describes " + g(described) + " parameters but the weights in " + dir +
                              " hold " + g(stored) + " values (vocab_size " + std::to_string(c.vocab_size) +
                              ", hidden_size " + std::to_string(c.width) + ", num_hidden_layers " +
                              std::to_string(c.depth) + "): a config.json that does not belong to these weights?");
}

TensorMap read_weights(const std::string& dir) {
  WeightsFolder folder(dir);
  TensorMap out;
  for (const auto& name : folder.names()) out[name] = folder.view(name).clone();
  return out;
}

void write_weights(const std::string& dir, const TensorMap& tensors, uint64_t max_shard_bytes,
                   const std::vector<std::string>& order, at::ScalarType dtype) {
  fs::create_directories(dir);
  std::vector<std::string> names = order;
  if (names.empty()) {
    for (const auto& [name, t] : tensors) names.push_back(name);
  }
  if (names.size() != tensors.size() || std::set<std::string>(names.begin(), names.end()).size() != names.size()) {
    throw std::invalid_argument(dir + ": write_weights: `order` must list each tensor exactly once");
  }
  for (const auto& name : names) {
    if (!tensors.count(name)) {
      throw std::invalid_argument(dir + ": write_weights: `order` names '" + name + "', which is not given");
    }
  }
  // The stored form of one tensor: floating tensors in `dtype` when one is given.
  auto stored = [&](const std::string& name) {
    at::Tensor t = tensors.at(name).detach();
    if (dtype != at::ScalarType::Undefined && c10::isFloatingType(t.scalar_type())) t = t.to(dtype);
    return t;
  };
  auto stored_bytes = [&](const std::string& name) {
    const at::Tensor& t = tensors.at(name);
    const size_t elem = dtype != at::ScalarType::Undefined && c10::isFloatingType(t.scalar_type())
                            ? c10::elementSize(dtype) : t.element_size();
    return static_cast<uint64_t>(t.numel()) * elem;
  };
  std::vector<std::vector<std::string>> shards(1);
  uint64_t shard_bytes = 0, total = 0;
  for (const auto& name : names) {
    const uint64_t b = stored_bytes(name);
    if (!shards.back().empty() && shard_bytes + b > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(name);
    shard_bytes += b;
    total += b;
  }
  const Metadata metadata = {{"format", "pt"}};  // transformers refuses safetensors without it
  std::set<std::string> written;
  if (shards.size() == 1) {
    TensorMap part;
    for (const auto& name : shards[0]) part[name] = stored(name);
    write_safetensors((fs::path(dir) / kSingleFile).string(), part, metadata);
    written.insert(kSingleFile);
  } else {
    json weight_map = json::object();
    for (size_t k = 0; k < shards.size(); ++k) {
      const std::string file = shard_name(k + 1, shards.size());
      TensorMap part;  // one shard in memory at a time
      for (const auto& name : shards[k]) {
        part[name] = stored(name);
        weight_map[name] = file;
      }
      write_safetensors((fs::path(dir) / file).string(), part, metadata);
      written.insert(file);
    }
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_text_atomically((fs::path(dir) / kIndexFile).string(), index.dump(2) + "\n");
    written.insert(kIndexFile);
  }
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && is_weight_file(name) && !written.count(name)) fs::remove(entry.path());
  }
}

void load_state(torch::nn::Module& model, const TensorMap& hf_tensors, HfArch arch, const std::string& source) {
  std::map<std::string, Offered> offered;
  for (const auto& [name, t] : hf_tensors) {
    offered[name] = Offered{t.sizes().vec(), t.scalar_type(), source, [t] { return t; }};
  }
  load_offered(model, offered, arch, source);
}

void load_state(torch::nn::Module& model, const std::string& dir, HfArch arch) {
  WeightsFolder folder(dir);
  std::map<std::string, Offered> offered;
  for (const auto& name : folder.names()) {
    const TensorInfo& info = folder.info(name);
    offered[name] = Offered{info.shape, info.dtype, fs::path(folder.file_of(name)).filename().string(),
                            [&folder, name] { return folder.view(name); }};
  }
  load_offered(model, offered, arch, dir);
}

void load_state(torch::nn::Module& model, const std::string& dir) {
  HfArch arch;
  if (fs::exists(fs::path(dir) / "config.json")) {
    read_hf_config(dir, &arch);
  } else {
    arch = arch_from_names(WeightsFolder(dir).names());
  }
  load_state(model, dir, arch);
}

void save_state(const torch::nn::Module& model, const ModelConfig& config, const std::string& dir,
                at::ScalarType dtype, const SaveOptions& options) {
  torch_dtype_name(dtype);  // throws for a non-floating dtype
  const HfArch arch = hf_arch(config);
  TensorMap tensors;
  std::vector<std::string> order;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const std::string hf = to_hf_name(item.key(), arch);
    tensors[hf] = item.value();
    order.push_back(hf);
  }
  const auto embed = tensors.find(to_hf_name("embed_tokens.weight", arch));
  if (embed != tensors.end() && embed->second.sizes().vec() != std::vector<int64_t>{config.vocab_size, config.width}) {
    throw std::invalid_argument(dir + ": the model's embed_tokens.weight is " + shape_text(embed->second.sizes()) +
                                " but the config says [vocab_size, width] = [" + std::to_string(config.vocab_size) +
                                "," + std::to_string(config.width) + "]");
  }

  fs::path target = fs::absolute(fs::path(dir));
  if (target.filename().empty()) target = target.parent_path();  // "out/" -> "out"
  fs::create_directories(target.parent_path());
  const fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp." + random_suffix());
  const fs::path old = target.parent_path() / ("." + target.filename().string() + ".old." + random_suffix());
  try {
    fs::create_directory(tmp);
    write_hf_config((tmp / "config.json").string(), config, dtype);
    write_weights(tmp.string(), tensors, options.max_shard_bytes, order, dtype);
    if (fs::exists(target)) {
      // Keep what else lives in the folder (tokenizer, README); hard links cost nothing.
      for (const auto& entry : fs::directory_iterator(target)) {
        const std::string name = entry.path().filename().string();
        if (name == "config.json" || is_weight_file(name)) continue;
        fs::copy(entry.path(), tmp / name, fs::copy_options::recursive | fs::copy_options::create_hard_links);
      }
      fs::rename(target, old);
      fs::rename(tmp, target);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, target);
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    if (fs::exists(old, ec) && !fs::exists(target, ec)) fs::rename(old, target, ec);  // put the old one back
    throw;
  }
}

}  // namespace rg::io
