// Every configs/rlhf/*.ini preset parses with the option set of the command it is for (`reward`, `dpo`,
// `ppo` or `grpo`, from its name), so a renamed key or an out-of-range value in a preset fails here, not on a GPU cluster.
// Owned by the RLHF work (docs/rlhf.md); the [rlhf] keys are bound in configs/rlhf_options.cpp.
#include "configs/options.h"
#include "configs/rlhf_options.h"
#include "configs/sections.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace rg::config {
namespace {

namespace fs = std::filesystem;

// The ConfigError text, or "" when the file parses as tools/cmd_reward.cpp's (reward, dpo) or
// tools/cmd_grpo.cpp's (ppo, grpo) options would take it.
std::string parse_preset(const std::string& path, const std::string& command) {
  const std::string name = "rgemma " + command;
  Options options(name, "test");
  trainer::TrainConfig train;
  rlhf::RlhfConfig rlhf;
  add_train_options(options, &train);
  if (command == "ppo" || command == "grpo") add_online_rlhf_options(options, &rlhf, command == "ppo");
  else add_rlhf_options(options, &rlhf, command == "dpo");
  options.required("train.init_from");
  std::vector<const char*> argv = {name.c_str(), "--config", path.c_str()};
  try {
    options.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RlhfPresets, EveryPresetParsesForItsCommand) {
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(std::string(RG_SOURCE_DIR) + "/configs/rlhf")) {
    if (entry.path().extension() != ".ini") continue;
    const std::string name = entry.path().filename().string();
    std::string command;
    for (const char* c : {"reward", "dpo", "ppo", "grpo"}) {
      if (name.find(c) != std::string::npos) command = c;
    }
    ASSERT_FALSE(command.empty()) << name << ": name says none of reward, dpo, ppo, grpo";
    EXPECT_EQ(parse_preset(entry.path().string(), command), "") << name;
    ++seen;
  }
  // tiny-* and recurrentgemma-2b-* of reward, dpo, ppo and grpo: a preset left out of the folder walk fails here.
  EXPECT_GE(seen, 8);
}

TEST(RlhfPresets, AKeyOfTheOtherCommandIsRefused) {
  // A dpo preset given to reward must fail on its [rlhf] keys, so the walk above really checks the binding.
  const std::string err = parse_preset(std::string(RG_SOURCE_DIR) + "/configs/rlhf/tiny-dpo.ini", "reward");
  EXPECT_NE(err.find("rlhf."), std::string::npos) << err;
  // The same for the online commands: a grpo preset has keys ppo does not take (rlhf.group).
  const std::string online = parse_preset(std::string(RG_SOURCE_DIR) + "/configs/rlhf/tiny-grpo.ini", "ppo");
  EXPECT_NE(online.find("rlhf.group"), std::string::npos) << online;
}

}  // namespace
}  // namespace rg::config
