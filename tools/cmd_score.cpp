// `rgemma score`: scores prompt + completion pairs from a JSONL file with a reward model folder (the
// reward at the completion's <end_of_turn>) or a policy folder (the completion's summed log-probability),
// writing each input object back with the scores added. Lines: {"prompt": P, "completion": C} or
// {"prompt": P, "chosen": C, "rejected": R}; P a string (one user turn) or a message list, as prepare takes.
#include "configs/options.h"
#include "data/chat_format.h"
#include "data/tokenizer.h"
#include "model/io/safetensors.h"
#include "model/pretrained.h"
#include "rlhf/pair_batch.h"
#include "rlhf/reward_model.h"
#include "tools/command.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <memory>

namespace {

using nlohmann::json;

struct Row {
  json object;
  std::vector<int32_t> prompt;
  std::vector<std::pair<std::string, std::vector<int32_t>>> completions;  // field -> tokens
};

std::vector<rg::data::Turn> prompt_turns(const json& j) {
  const auto it = j.find("prompt");
  if (it == j.end()) throw std::runtime_error("missing field \"prompt\"");
  if (it->is_string()) return {{false, rg::data::trim(it->get<std::string>())}};
  if (!it->is_array()) throw std::runtime_error("prompt: expected a string or a list of messages");
  return rg::data::normalize(rg::data::parse_messages(*it, "prompt"), rg::data::Ending::kUser);
}

int run_score(int argc, char** argv) {
  rg::config::Options options(argv[0],
                              "Score JSONL lines {prompt, completion} or {prompt, chosen, rejected} with a reward model\n"
                              "(adds reward[_chosen|_rejected]) or a policy folder (adds logp[_chosen|_rejected]).");
  std::string model_dir, input, output, tokenizer_path, dtype_name = "float32";
  int64_t batch = 8;
  options.add("model", &model_dir, "reward model folder (rgemma reward) or policy folder (sft, dpo)")
      .add("input", &input, "JSONL file of prompts and completions")
      .add("output", &output, "JSONL file to write (default: standard output)")
      .add("tokenizer", &tokenizer_path, "sentencepiece model the folder was trained with")
      .add("batch", &batch, "completions per forward pass")
      .add("dtype", &dtype_name, "float32 | bfloat16 | float16");
  options.required("model").required("input").required("tokenizer");
  if (!options.parse(argc, argv)) return 0;
  if (batch <= 0) options.fail("batch", "expected a positive integer, got " + std::to_string(batch));
  torch::Dtype dtype;
  try {
    dtype = rg::io::parse_float_dtype(dtype_name);
  } catch (const std::exception& e) {
    options.fail("dtype", e.what());
  }

  const rg::Tokenizer tok = rg::Tokenizer::load(tokenizer_path);
  const rg::data::ChatFormatter format(tok);
  const bool is_rm = rg::rlhf::is_reward_model_dir(model_dir);
  rg::rlhf::RewardModel rm{nullptr};
  rg::Griffin policy{nullptr};
  if (is_rm) rm = rg::rlhf::load_reward_model(model_dir, dtype), policy = rm->model;
  else policy = rg::load_pretrained(model_dir, dtype);
  if (tok.vocab_size() > policy->config().vocab_size) {
    throw rg::config::ConfigError("tokenizer: " + tokenizer_path + " has " + std::to_string(tok.vocab_size()) +
                                  " pieces but " + model_dir + " has vocab_size " +
                                  std::to_string(policy->config().vocab_size));
  }
  policy->eval();
  torch::NoGradGuard no_grad;

  std::ifstream in(input);
  if (!in) throw rg::config::ConfigError("input: cannot read " + input);
  std::vector<Row> rows;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      Row r;
      r.object = json::parse(line);
      if (!r.object.is_object()) throw std::runtime_error("expected a JSON object");
      r.prompt = format.prompt(prompt_turns(r.object));
      for (const char* field : {"completion", "chosen", "rejected"}) {
        if (!r.object.contains(field)) continue;
        if (!r.object[field].is_string()) throw std::runtime_error(std::string(field) + ": expected a string");
        r.completions.emplace_back(field, format.completion(rg::data::trim(r.object[field].get<std::string>())));
      }
      if (r.completions.empty()) throw std::runtime_error("expected a \"completion\" or \"chosen\"/\"rejected\" field");
      rows.push_back(std::move(r));
    } catch (const std::exception& e) {
      throw std::runtime_error(input + ":" + std::to_string(n) + ": " + e.what());
    }
  }

  // Every (row, completion) in order, scored `batch` at a time.
  std::vector<std::pair<size_t, size_t>> items;
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t k = 0; k < rows[i].completions.size(); ++k) items.emplace_back(i, k);
  const int32_t pad = std::max(0, tok.pad_id());
  for (size_t s = 0; s < items.size(); s += static_cast<size_t>(batch)) {
    std::vector<std::pair<const std::vector<int32_t>*, const std::vector<int32_t>*>> seqs;
    const size_t e = std::min(items.size(), s + static_cast<size_t>(batch));
    for (size_t i = s; i < e; ++i) seqs.emplace_back(&rows[items[i].first].prompt, &rows[items[i].first].completions[items[i].second].second);
    const rg::rlhf::PairBatch b = rg::rlhf::make_completion_batch(seqs, pad, policy->device());
    const torch::Tensor hidden = policy->hidden(b.tokens, b.segment_pos);  // (B, T, W)
    const torch::Tensor v = (is_rm ? rm->score_hidden(hidden, b.last)
                                   : rg::rlhf::chunked_sequence_logps(policy, hidden, b.targets, b.completion_mask)).cpu();
    for (size_t i = s; i < e; ++i) {
      Row& r = rows[items[i].first];
      const std::string& field = r.completions[items[i].second].first;
      const std::string key = std::string(is_rm ? "reward" : "logp") + (field == "completion" ? "" : "_" + field);
      r.object[key] = v[static_cast<int64_t>(i - s)].item<double>();
    }
  }

  std::ofstream file;
  if (!output.empty()) {
    file.open(output);
    if (!file) throw rg::config::ConfigError("output: cannot write " + output);
  }
  std::ostream& out = output.empty() ? std::cout : file;
  int64_t pairs = 0, agree = 0;
  const std::string kc = is_rm ? "reward_chosen" : "logp_chosen", kr = is_rm ? "reward_rejected" : "logp_rejected";
  for (const Row& r : rows) {
    out << r.object.dump() << "\n";
    if (r.object.contains(kc) && r.object.contains(kr)) ++pairs, agree += r.object[kc].get<double>() > r.object[kr].get<double>();
  }
  std::cerr << "score: " << rows.size() << " lines with " << (is_rm ? "reward model " : "policy ") << model_dir;
  if (pairs > 0) std::cerr << "; chosen scored higher in " << agree << " of " << pairs << " pairs";
  std::cerr << std::endl;
  return 0;
}

}  // namespace

RG_COMMAND("score", "score completions with a reward model (reward) or a policy (log-probability)", run_score);
