// ModelConfig <-> HF config.json. Every key of an input file is either consumed, checked to hold a value
// rgemma implements, or on the list of keys known not to affect the forward pass; anything else is an
// error, so a config we do not understand can never load as a silently different model.
#include "model/io/hf_config.h"

#include "model/io/input_file.h"
#include "model/io/json_brief.h"
#include "model/io/safetensors.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>
#include <unistd.h>

namespace rg::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int64_t kMaxConfigInt = 2147483647;  // int32 max; see Reader::integer
constexpr uint64_t kMaxConfigBytes = 16ull << 20;  // HF config.json files are a few KB

// Keys of PretrainedConfig and of the two HF configs that describe training, generation or bookkeeping,
// not the forward pass of a causal LM.
const std::set<std::string> kIgnoredKeys = {
    "_name_or_path", "architectures", "transformers_version", "torch_dtype", "dtype", "use_cache",
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    "initializer_range", "w_init_variance_scale", "final_w_init_variance_scale", "attention_dropout",
    "max_position_embeddings", "return_dict", "output_hidden_states", "output_attentions", "torchscript",
    "use_bfloat16", "tf_legacy_loss", "pruned_heads", "chunk_size_feed_forward", "is_encoder_decoder",
    "is_decoder", "add_cross_attention", "cross_attention_hidden_size", "tie_encoder_decoder",
    "id2label", "label2id", "problem_type", "tokenizer_class", "prefix", "task_specific_params",
    "finetuning_task", "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
    "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p", "typical_p",
    "repetition_penalty", "length_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate",
    "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "output_router_logits",
};

// A value for a message: short strings as they are, anything else (a 100 KB string, an array) in brief.
std::string shown(const json& v) {
  return v.is_string() && v.get_ref<const std::string&>().size() <= 80 ? v.get<std::string>() : json_brief(v);
}

// Reads fields of one config.json, remembering which keys were used.
class Reader {
 public:
  Reader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    const std::string name = key.size() <= 80 ? key : key.substr(0, 80) + "...";  // keys are file content too
    throw std::invalid_argument(source_ + ": field '" + name + "': " + what);
  }
  const json* find(const std::string& key) {
    used_.insert(key);
    const auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  const json& need(const std::string& key) {
    const json* v = find(key);
    if (!v) fail(key, "missing (required for model_type " + model_type_ + ")");
    return *v;
  }
  int64_t integer(const json& v, const std::string& key) const {
    if (!v.is_number_integer()) fail(key, "expected an integer, got " + json_brief(v));
    // Sizes multiply (vocab x width, window x heads x head_dim): keeping each within int32 keeps every
    // product of two within int64, and no real model comes near it.
    if (v.is_number_unsigned() ? v.get<uint64_t>() > kMaxConfigInt : v.get<int64_t>() > kMaxConfigInt) {
      fail(key, "expected at most " + std::to_string(kMaxConfigInt) + ", got " + json_brief(v));
    }
    return v.get<int64_t>();
  }
  double number(const json& v, const std::string& key) const {
    if (!v.is_number()) fail(key, "expected a number, got " + json_brief(v));
    // JSON has no NaN, but 1e999 parses as infinity.
    if (!std::isfinite(v.get<double>())) fail(key, "expected a finite number, got " + json_brief(v));
    return v.get<double>();
  }
  bool boolean(const json& v, const std::string& key) const {
    if (!v.is_boolean()) fail(key, "expected true or false, got " + json_brief(v));
    return v.get<bool>();
  }
  int64_t req_int(const std::string& key) { return integer(need(key), key); }
  double req_number(const std::string& key) { return number(need(key), key); }
  template <class T, class F>
  T opt(const std::string& key, T fallback, F get) {
    const json* v = find(key);
    return v && !v->is_null() ? get(*v, key) : fallback;
  }
  int64_t opt_int(const std::string& key, int64_t fallback) {
    return opt<int64_t>(key, fallback, [&](const json& v, const std::string& k) { return integer(v, k); });
  }
  double opt_number(const std::string& key, double fallback) {
    return opt<double>(key, fallback, [&](const json& v, const std::string& k) { return number(v, k); });
  }
  bool opt_bool(const std::string& key, bool fallback) {
    return opt<bool>(key, fallback, [&](const json& v, const std::string& k) { return boolean(v, k); });
  }
  // A key that may be present only with the value rgemma implements.
  void expect_bool(const std::string& key, bool implemented, const std::string& why) {
    const json* v = find(key);
    if (v && !v->is_null() && boolean(*v, key) != implemented) fail(key, why);
  }
  void check_activation(const std::string& key) {
    const json* v = find(key);
    if (!v || v->is_null()) return;
    const std::string a = shown(*v);
    // Gemma and RecurrentGemma use the tanh GELU; early Gemma configs say "gelu" and HF maps it to tanh.
    if (a != "gelu_pytorch_tanh" && a != "gelu" && a != "gelu_new") {
      fail(key, "rgemma implements the tanh GELU only, got '" + a + "'");
    }
  }
  // transformers >= 5 moves rope_theta (and partial_rotary_factor) into "rope_parameters"; read either
  // form. Only the unscaled ("default") RoPE is implemented.
  void read_rope_parameters() {
    rope_ = find("rope_parameters");
    if (!rope_ || rope_->is_null()) {
      rope_ = nullptr;
      return;
    }
    if (!rope_->is_object()) fail("rope_parameters", "expected an object, got " + json_brief(*rope_));
    for (const auto& [key, value] : rope_->items()) {
      if (key == "rope_type" && value == "default") continue;
      if (key == "rope_theta" || key == "partial_rotary_factor") continue;
      fail("rope_parameters", "'" + key + "': " + json_brief(value) + " is not implemented (only default RoPE)");
    }
  }
  double rope_number(const std::string& key, const double* fallback) {
    const json* top = find(key);
    const bool has_top = top && !top->is_null();
    const bool has_nested = rope_ && rope_->contains(key);
    if (has_top && has_nested && number(*top, key) != number(rope_->at(key), "rope_parameters." + key)) {
      fail(key, "disagrees with rope_parameters." + key);
    }
    if (has_top) return number(*top, key);
    if (has_nested) return number(rope_->at(key), "rope_parameters." + key);
    if (!fallback) fail(key, "missing (required for model_type " + model_type_ + ")");
    return *fallback;
  }
  void set_model_type(const std::string& t) { model_type_ = t; }
  void reject_unknown() const {
    for (const auto& [key, value] : j_.items()) {
      // Underscored keys are transformers' private bookkeeping (_name_or_path, _attn_implementation_autoset).
      if (used_.count(key) || kIgnoredKeys.count(key) || key.rfind('_', 0) == 0) continue;
      fail(key, "unknown to rgemma for model_type " + model_type_ +
                    " (it might change the architecture, so it is refused rather than ignored)");
    }
  }

 private:
  const json& j_;
  std::string source_;
  std::string model_type_;
  std::set<std::string> used_;
  const json* rope_ = nullptr;
};

std::vector<BlockType> read_block_types(Reader& r) {
  // HF's save_pretrained writes the attribute "_block_types"; hand-written configs say "block_types".
  const json* a = r.find("block_types");
  const json* b = r.find("_block_types");
  if (!a && !b) r.fail("block_types", "missing (required for model_type recurrent_gemma)");
  const std::string key = a ? "block_types" : "_block_types";
  const json& v = a ? *a : *b;
  if (a && b && *a != *b) r.fail("_block_types", "disagrees with 'block_types'");
  if (!v.is_array() || v.empty()) r.fail(key, "expected a non-empty list of \"recurrent\"/\"attention\"");
  std::vector<BlockType> out;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string s = shown(v[i]);
    if (s == "recurrent") out.push_back(BlockType::kRecurrent);
    else if (s == "attention") out.push_back(BlockType::kAttention);
    else r.fail(key, "entry " + std::to_string(i) + " is '" + s + "', expected \"recurrent\" or \"attention\"");
  }
  return out;
}

}  // namespace

HfArch hf_arch(const ModelConfig& c) {
  return c.all_attention() && c.attention_window == 0 ? HfArch::kGemma : HfArch::kRecurrentGemma;
}

const char* hf_model_type(HfArch arch) { return arch == HfArch::kGemma ? "gemma" : "recurrent_gemma"; }

json to_hf_config(const ModelConfig& c, at::ScalarType dtype) {
  c.validate();
  json j;
  const HfArch arch = hf_arch(c);
  j["model_type"] = hf_model_type(arch);
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.width;
  j["num_hidden_layers"] = c.depth;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_base;
  j["attention_bias"] = false;  // q/k/v never have biases here (spec 14.5)
  j["hidden_activation"] = "gelu_pytorch_tanh";
  j["tie_word_embeddings"] = true;
  j["bos_token_id"] = 2;
  j["eos_token_id"] = 1;
  j["pad_token_id"] = 0;
  j["torch_dtype"] = torch_dtype_name(dtype);
  if (arch == HfArch::kRecurrentGemma) {
    j["architectures"] = {"RecurrentGemmaForCausalLM"};
    j["lru_width"] = c.lru_width;
    j["intermediate_size"] = 2 * c.mlp_hidden;  // HF's MLP uses intermediate_size // 2 (spec 14.8)
    j["conv1d_width"] = c.conv_width;
    j["attention_window_size"] = c.attention_window;
    json types = json::array();
    for (BlockType t : c.block_pattern) types.push_back(t == BlockType::kRecurrent ? "recurrent" : "attention");
    j["block_types"] = types;
    j["logits_soft_cap"] = c.logits_soft_cap;
    j["partial_rotary_factor"] = c.rope_fraction;
    j["embeddings_scale_by_sqrt_dim"] = true;
    j["final_w_init_variance_scale"] = 2.0 / static_cast<double>(c.depth);
    j["w_init_variance_scale"] = 0.01;
    // HF RecurrentGemma always has MLP and o_proj biases and a bf16-rounded embedding scale.
    if (!c.use_bias) j["use_bias"] = false;
    if (!c.embed_scale_bf16) j["embed_scale_bf16"] = false;
  } else {
    j["architectures"] = {"GemmaForCausalLM"};
    j["intermediate_size"] = c.mlp_hidden;
    j["hidden_act"] = "gelu_pytorch_tanh";
    j["max_position_embeddings"] = 8192;
    j["rope_scaling"] = nullptr;
    j["attention_dropout"] = 0.0;
    j["initializer_range"] = 0.02;
    // HF Gemma: no biases, no soft cap, full-head RoPE, sqrt(W) in the activation dtype (unrounded in fp32).
    if (c.use_bias) j["use_bias"] = true;
    if (c.embed_scale_bf16) j["embed_scale_bf16"] = true;
    if (c.logits_soft_cap != 0.0) j["logits_soft_cap"] = c.logits_soft_cap;
    if (c.rope_fraction != 1.0) j["partial_rotary_factor"] = c.rope_fraction;
  }
  return j;
}

ModelConfig from_hf_config(const json& j, const std::string& source, HfArch* arch_out) {
  if (!j.is_object()) throw std::invalid_argument(source + ": expected a JSON object");
  Reader r(j, source);
  const json* type = r.find("model_type");
  if (!type) r.fail("model_type", "missing (expected \"recurrent_gemma\" or \"gemma\")");
  const std::string model_type = shown(*type);
  HfArch arch;
  if (model_type == "recurrent_gemma") arch = HfArch::kRecurrentGemma;
  else if (model_type == "gemma") arch = HfArch::kGemma;
  else r.fail("model_type", "'" + model_type + "' is not supported (expected \"recurrent_gemma\" or \"gemma\")");
  r.set_model_type(model_type);

  ModelConfig c;
  c.vocab_size = r.req_int("vocab_size");
  c.width = r.req_int("hidden_size");
  c.depth = r.req_int("num_hidden_layers");
  // Layers are built and counted one by one; no model has near this many.
  if (c.depth > 65536) r.fail("num_hidden_layers", "expected at most 65536, got " + std::to_string(c.depth));
  c.num_heads = r.req_int("num_attention_heads");
  c.num_kv_heads = r.req_int("num_key_value_heads");
  c.norm_eps = r.req_number("rms_norm_eps");
  const json* scaling = r.find("rope_scaling");
  if (scaling && !scaling->is_null()) r.fail("rope_scaling", "RoPE scaling is not implemented, got " + json_brief(*scaling));
  r.read_rope_parameters();
  c.rope_base = r.rope_number("rope_theta", nullptr);
  r.expect_bool("attention_bias", false, "rgemma's attention has no q/k/v biases");
  r.expect_bool("tie_word_embeddings", true, "rgemma ties lm_head to embed_tokens");
  r.check_activation("hidden_activation");
  r.check_activation("hidden_act");
  const int64_t intermediate = r.req_int("intermediate_size");
  if (arch == HfArch::kRecurrentGemma) {
    c.head_dim = r.opt_int("head_dim", c.num_heads > 0 ? c.width / c.num_heads : 0);  // HF derives it
    c.lru_width = r.opt_int("lru_width", c.width);  // null means hidden_size in HF
    if (intermediate <= 0 || intermediate % 2 != 0) {
      r.fail("intermediate_size", "expected a positive even number (RecurrentGemma stores 2x the MLP width), got " +
                                      std::to_string(intermediate));
    }
    c.mlp_hidden = intermediate / 2;
    c.conv_width = r.req_int("conv1d_width");
    c.attention_window = r.req_int("attention_window_size");
    c.block_pattern = read_block_types(r);
    c.logits_soft_cap = r.req_number("logits_soft_cap");
    c.rope_fraction = r.rope_number("partial_rotary_factor", nullptr);
    r.expect_bool("embeddings_scale_by_sqrt_dim", true, "rgemma always scales embeddings by sqrt(hidden_size)");
    c.use_bias = r.opt_bool("use_bias", true);
    c.embed_scale_bf16 = r.opt_bool("embed_scale_bf16", true);
  } else {
    c.head_dim = r.req_int("head_dim");
    c.lru_width = 0;
    c.mlp_hidden = intermediate;
    c.attention_window = 0;
    c.block_pattern = {BlockType::kAttention};
    c.logits_soft_cap = r.opt_number("logits_soft_cap", 0.0);
    const double full = 1.0;
    c.rope_fraction = r.rope_number("partial_rotary_factor", &full);
    c.use_bias = r.opt_bool("use_bias", false);
    c.embed_scale_bf16 = r.opt_bool("embed_scale_bf16", false);
  }
  r.reject_unknown();
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  if (arch_out) *arch_out = arch;
  return c;
}

ModelConfig read_hf_config(const std::string& path, HfArch* arch) {
  const std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  // Regular files only (a FIFO would block the read forever) and bounded nesting (see input_file.h).
  return from_hf_config(parse_json_bounded(read_regular_file(file, kMaxConfigBytes), file), file, arch);
}

void write_hf_config(const std::string& path, const ModelConfig& config, at::ScalarType dtype) {
  write_text_atomically(path, to_hf_config(config, dtype).dump(2) + "\n");
}

}  // namespace rg::io
