// The reward model's forward (hidden state at each row's last real token -> linear head) and its folder
// format. Reading the backbone reuses model/io: config.json minus the head's keys is a causal LM config,
// and the weights minus score.weight are the backbone's HF names.
#include "rlhf/reward_model.h"

#include "model/io/atomic_write.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/hf_config.h"
#include "model/pretrained.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace rg::rlhf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kScoreName = "score.weight";

json read_config_json(const std::string& dir) {
  const fs::path path = fs::path(dir) / "config.json";
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path.string() + ": cannot read (not a model folder?)");
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    throw std::invalid_argument(path.string() + ": malformed JSON: " + e.what());
  }
}

}  // namespace

RewardModelImpl::RewardModelImpl(Griffin backbone) {
  const int64_t W = backbone->config().width;
  model = register_module("model", std::move(backbone));
  score = register_module("score", torch::nn::Linear(torch::nn::LinearOptions(W, 1).bias(false)));
  score->to(model->dtype());
  score->to(model->device());
}

torch::Tensor RewardModelImpl::score_hidden(const torch::Tensor& hidden, const torch::Tensor& last) {
  const int64_t W = hidden.size(2);
  const torch::Tensor at = hidden.gather(1, last.view({-1, 1, 1}).expand({-1, 1, W})).squeeze(1);  // (B, W)
  return score(at).squeeze(-1).to(torch::kFloat);                                                  // (B)
}

torch::Tensor RewardModelImpl::forward(const torch::Tensor& tokens, const torch::Tensor& segment_pos,
                                       const torch::Tensor& last) {
  return score_hidden(model->hidden(tokens, segment_pos), last);
}

bool is_reward_model_dir(const std::string& dir) {
  const fs::path path = fs::path(dir) / "config.json";
  if (!fs::exists(path)) return false;
  try {
    return read_config_json(dir).contains("num_labels");
  } catch (const std::exception&) {
    return false;  // the loader that follows reports the malformed file
  }
}

RewardModel init_reward_model(const std::string& sft_dir, int64_t seed) {
  if (is_reward_model_dir(sft_dir)) {
    throw std::invalid_argument(sft_dir + ": is a reward model (config.json has num_labels); start from the "
                                "SFT policy folder instead");
  }
  RewardModel rm(load_pretrained(sft_dir));
  torch::manual_seed(static_cast<uint64_t>(seed));
  torch::NoGradGuard no_grad;
  rm->score->weight.normal_(0.0, 1.0 / static_cast<double>(rm->model->config().width + 1));
  return rm;
}

RewardModel load_reward_model(const std::string& dir, torch::Dtype dtype) {
  json j = read_config_json(dir);
  const std::string source = (fs::path(dir) / "config.json").string();
  if (!j.contains("num_labels")) {
    throw std::invalid_argument(dir + ": not a reward model (" + source +
                                " has no num_labels; a policy folder? train one with rgemma reward)");
  }
  if (!j["num_labels"].is_number_integer() || j["num_labels"].get<int64_t>() != 1) {
    throw std::invalid_argument(source + ": field 'num_labels': expected 1 (a scalar reward), got " +
                                j["num_labels"].dump());
  }
  double mean = j.value("reward_mean", 0.0), stdev = j.value("reward_std", 1.0);
  for (const char* key : {"num_labels", "reward_mean", "reward_std"}) j.erase(key);
  io::HfArch arch;
  const ModelConfig config = io::from_hf_config(j, source, &arch);
  Griffin backbone(config, /*initialise=*/false);
  backbone->to(dtype);
  io::TensorMap tensors = io::read_weights(dir);
  const auto it = tensors.find(kScoreName);
  if (it == tensors.end()) throw std::invalid_argument(dir + ": reward model weights lack " + kScoreName);
  const torch::Tensor head = it->second;
  tensors.erase(it);
  if (head.dim() != 2 || head.size(0) != 1 || head.size(1) != config.width) {
    throw std::invalid_argument(dir + ": " + kScoreName + " has shape " + c10::str(head.sizes()) + ", expected [1, " +
                                std::to_string(config.width) + "]");
  }
  io::load_state(*backbone, tensors, arch, dir);
  RewardModel rm(backbone);
  torch::NoGradGuard no_grad;
  rm->score->weight.copy_(head.to(rm->score->weight.scalar_type()));
  rm->reward_mean = mean, rm->reward_std = stdev;
  return rm;
}

void save_reward_model(const RewardModel& rm, const std::string& dir, torch::Dtype dtype) {
  const ModelConfig& config = rm->model->config();
  const io::HfArch arch = io::hf_arch(config);
  json j = io::to_hf_config(config, dtype);
  j["architectures"] = {arch == io::HfArch::kGemma ? "GemmaForSequenceClassification"
                                                   : "RecurrentGemmaForSequenceClassification"};
  j["num_labels"] = 1;
  j["reward_mean"] = rm->reward_mean;
  j["reward_std"] = rm->reward_std;
  io::TensorMap tensors;
  for (const auto& p : rm->model->named_parameters()) tensors[io::to_hf_name(p.key(), arch)] = p.value().detach().cpu();
  tensors[kScoreName] = rm->score->weight.detach().cpu();
  const fs::path final_dir(dir), tmp = fs::path(dir + ".tmp-" + std::to_string(getpid()));
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  io::write_weights(tmp.string(), tensors, io::kDefaultMaxShardBytes, {}, dtype);
  io::write_text_atomically((tmp / "config.json").string(), j.dump(2) + "\n");
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
}

}  // namespace rg::rlhf
