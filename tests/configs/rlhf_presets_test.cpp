// Every configs/rlhf/*.ini preset parses with the option set of the command it is for (`reward` or `dpo`,
// from its name), so a renamed key or an out-of-range value in a preset fails here, not on a GPU cluster.
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

// The ConfigError text, or "" when the file parses as tools/cmd_reward.cpp's options would take it.
std::string parse_preset(const std::string& path, bool dpo) {
  Options options(dpo ? "rgemma dpo" : "rgemma reward", "test");
  trainer::TrainConfig train;
  rlhf::RlhfConfig rlhf;
  add_train_options(options, &train);
  add_rlhf_options(options, &rlhf, dpo);
  options.required("train.init_from");
  std::vector<const char*> argv = {dpo ? "rgemma dpo" : "rgemma reward", "--config", path.c_str()};
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
    const bool dpo = name.find("dpo") != std::string::npos;
    ASSERT_TRUE(dpo || name.find("reward") != std::string::npos) << name << ": name says neither reward nor dpo";
    EXPECT_EQ(parse_preset(entry.path().string(), dpo), "") << name;
    ++seen;
  }
  // tiny-{reward,dpo} and recurrentgemma-2b-{reward,dpo}: a preset left out of the folder walk fails here.
  EXPECT_GE(seen, 4);
}

TEST(RlhfPresets, AKeyOfTheOtherCommandIsRefused) {
  // A dpo preset given to reward must fail on its [rlhf] keys, so the walk above really checks the binding.
  const std::string err = parse_preset(std::string(RG_SOURCE_DIR) + "/configs/rlhf/tiny-dpo.ini", /*dpo=*/false);
  EXPECT_NE(err.find("rlhf."), std::string::npos) << err;
}

}  // namespace
}  // namespace rg::config
