// Options: precedence (command line > later files > earlier files > defaults), error messages that name
// file, line and key, and the effective config reading back to the same values.
#include "configs/options.h"
#include "configs/sections.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace rg::config {
namespace {

namespace fs = std::filesystem;

class OptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rg_options_test_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  // Parses args with a model section plus a few plain keys; returns the ConfigError text or "".
  std::string parse(std::vector<std::string> args) {
    args.insert(args.begin(), "rgemma test");
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    options_ = std::make_unique<Options>("rgemma test", "test");
    model_ = ModelConfig{};
    name_ = "default";
    inputs_.clear();
    add_model_options(*options_, &model_);
    options_->add("data.name", &name_, "a string").add("data.inputs", &inputs_, "a list");
    options_->add("train.steps", &steps_, "an int").required("train.steps");
    try {
      options_->parse(static_cast<int>(argv.size()), argv.data());
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
  std::unique_ptr<Options> options_;
  ModelConfig model_;
  std::string name_;
  std::vector<std::string> inputs_;
  int64_t steps_ = 0;
};

TEST_F(OptionsTest, PrecedenceCommandLineOverLaterFileOverEarlierFileOverDefault) {
  const auto a = write("a.ini", "[model]\nwidth = 128\ndepth = 6\nnum_heads = 4\n[train]\nsteps = 5\n");
  const auto b = write("b.ini", "[model]\nwidth = 256\n");
  EXPECT_EQ(parse({"--config", a, "--config", b, "--model.depth=9"}), "");
  EXPECT_EQ(model_.width, 256);     // later file wins
  EXPECT_EQ(model_.num_heads, 4);   // earlier file still applies where the later is silent
  EXPECT_EQ(model_.depth, 9);       // command line wins over both
  EXPECT_EQ(model_.conv_width, 4);  // default
  EXPECT_EQ(options_->where("model.width"), b + ":2");
  EXPECT_EQ(options_->where("model.depth"), "command line");
  EXPECT_EQ(options_->where("model.conv_width"), "default");
}

TEST_F(OptionsTest, RepeatedCommandLineKeyLaterWins) {
  // A launch script's default followed by the user's override; lists still accumulate.
  EXPECT_EQ(parse({"--train.steps=5", "--model.depth=4", "--train.steps=7", "--data.inputs=a", "--data.inputs=b"}), "");
  EXPECT_EQ(steps_, 7);
  EXPECT_EQ(model_.depth, 4);
  EXPECT_EQ(inputs_, (std::vector<std::string>{"a", "b"}));
}

TEST_F(OptionsTest, UnknownKeyNamesFileLineAndSuggestion) {
  const auto a = write("bad.ini", "# comment\n[model]\nwidth = 64\nwidht = 128\n");
  const std::string err = parse({"--config", a, "--train.steps=1"});
  EXPECT_NE(err.find(a + ":4"), std::string::npos) << err;
  EXPECT_NE(err.find("unknown key 'model.widht'"), std::string::npos) << err;
  EXPECT_NE(err.find("model.width"), std::string::npos) << err;
}

TEST_F(OptionsTest, UnknownCommandLineOption) {
  const std::string err = parse({"--model.depht=3", "--train.steps=1"});
  EXPECT_NE(err.find("unknown option '--model.depht'"), std::string::npos) << err;
}

TEST_F(OptionsTest, BadValueNamesFileLineKeyAndExpectedType) {
  const auto a = write("v.ini", "[train]\nsteps = 1\n[model]\n\ndepth = three\n");
  const std::string err = parse({"--config", a});
  EXPECT_NE(err.find(a + ":5"), std::string::npos) << err;
  EXPECT_NE(err.find("model.depth"), std::string::npos) << err;
  EXPECT_NE(err.find("an integer"), std::string::npos) << err;
  EXPECT_NE(err.find("'three'"), std::string::npos) << err;
}

TEST_F(OptionsTest, SemanticErrorIsLocatedAtItsKey) {
  const auto a = write("p.ini", "[train]\nsteps = 1\n[model]\nblock_pattern = recurrent,mamba\n");
  const std::string err = parse({"--config", a});
  EXPECT_NE(err.find(a + ":4: model.block_pattern"), std::string::npos) << err;
  const std::string err2 = parse({"--train.steps=1", "--model.lru_width=63"});
  EXPECT_NE(err2.find("command line: model.lru_width"), std::string::npos) << err2;
}

TEST_F(OptionsTest, MissingRequiredKey) {
  const std::string err = parse({});
  EXPECT_NE(err.find("missing required key 'train.steps'"), std::string::npos) << err;
}

TEST_F(OptionsTest, MissingFile) {
  const std::string err = parse({"--config", (dir_ / "nope.ini").string()});
  EXPECT_NE(err.find("nope.ini: cannot open"), std::string::npos) << err;
}

TEST_F(OptionsTest, ListsFromFilesAndCommandLine) {
  const auto a = write("l.ini", "[data]\ninputs = x.txt, y.txt\n[train]\nsteps = 1\n");
  EXPECT_EQ(parse({"--config", a}), "");
  EXPECT_EQ(inputs_, (std::vector<std::string>{"x.txt", "y.txt"}));
  EXPECT_EQ(parse({"--config", a, "--data.inputs", "z.txt"}), "");
  EXPECT_EQ(inputs_, (std::vector<std::string>{"z.txt"}));  // command line replaces, does not merge
}

TEST_F(OptionsTest, EffectiveConfigReadsBackToTheSameValues) {
  EXPECT_EQ(parse({"--train.steps=7", "--model.rope_fraction=0.25", "--model.use_bias=false",
                   "--data.name=hello world"}), "");
  const auto path = (dir_ / "effective.ini").string();
  options_->write_effective(path);
  const ModelConfig first = model_;
  EXPECT_EQ(parse({"--config", path}), "");
  EXPECT_EQ(steps_, 7);
  EXPECT_EQ(model_.rope_fraction, first.rope_fraction);
  EXPECT_EQ(model_.use_bias, false);
  EXPECT_EQ(name_, "hello world");
  EXPECT_EQ(options_->effective().find("[model]") < options_->effective().find("[train]"), true);
}

TEST_F(OptionsTest, PresetFilesEqualBuiltInPresets) {
  for (const auto& name : ModelConfig::preset_names()) {
    const std::string file = std::string(RG_SOURCE_DIR) + "/configs/model/" + name + ".ini";
    ASSERT_EQ(parse({"--config", file, "--train.steps=1"}), "") << file;
    const ModelConfig p = ModelConfig::preset(name);
    EXPECT_EQ(count_parameters(model_).total, count_parameters(p).total) << name;
    EXPECT_EQ(format_block_pattern(model_.block_pattern), format_block_pattern(p.block_pattern)) << name;
    EXPECT_EQ(model_.attention_window, p.attention_window) << name;
    EXPECT_EQ(model_.logits_soft_cap, p.logits_soft_cap) << name;
    EXPECT_EQ(model_.rope_fraction, p.rope_fraction) << name;
    EXPECT_EQ(model_.use_bias, p.use_bias) << name;
  }
}

TEST(ClosestKey, SuggestsOnlyNearKeys) {
  EXPECT_EQ(closest_key("model.widht", {"model.width", "model.depth"}), "model.width");
  EXPECT_EQ(closest_key("zzzzzzzz", {"model.width"}), "");
}

}  // namespace
}  // namespace rg::config
