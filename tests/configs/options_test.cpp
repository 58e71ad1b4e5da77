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

// Every [model] key of a config, as the INI text `rgemma` writes to config.ini.
std::string model_section_text(const ModelConfig& m) {
  Options o("rgemma preset", "one preset's [model] keys");
  ModelConfig copy = m;
  add_model_options(o, &copy);
  const char* argv[] = {"rgemma preset"};
  if (!o.parse(1, argv)) return "";
  return o.effective();
}

// The built-in presets (model/config.cpp) and configs/model/*.ini are two spellings of one table: every
// [model] key must agree, not a sample of them, and every preset must have its file.
TEST_F(OptionsTest, PresetFilesEqualBuiltInPresets) {
  for (const auto& name : ModelConfig::preset_names()) {
    const std::string file = std::string(RG_SOURCE_DIR) + "/configs/model/" + name + ".ini";
    ASSERT_EQ(parse({"--config", file, "--train.steps=1"}), "") << file;
    const ModelConfig p = ModelConfig::preset(name);
    EXPECT_EQ(model_section_text(model_), model_section_text(p)) << name << " differs from " << file;
    EXPECT_EQ(count_parameters(model_).total, count_parameters(p).total) << name;
  }
}

// The configs and CLI-values families of malformed input: every row must be refused with a ConfigError
// that names where the value came from and the key, whether it comes from the command line or a file.
class MalformedValueTest : public OptionsTest {
 protected:
  // Parses the model and train sections plus an `int` and a `float` option (to see wrapping and float
  // overflow), with args after the required data.train; returns the ConfigError text or "".
  std::string parse_all(std::vector<std::string> args) {
    args.insert(args.begin(), {"rgemma test", "--data.train=x.h5"});
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    options_ = std::make_unique<Options>("rgemma test", "test");
    model_ = ModelConfig{};
    train_ = trainer::TrainConfig{};
    count_ = 3, ratio_ = 0.5f;
    add_model_options(*options_, &model_);
    add_train_options(*options_, &train_);
    options_->add("test.count", &count_, "an int").add("test.ratio", &ratio_, "a float");
    try {
      options_->parse(static_cast<int>(argv.size()), argv.data());
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }
  trainer::TrainConfig train_;
  int count_ = 3;
  float ratio_ = 0.5f;
};

struct BadValue {
  const char* key;
  const char* value;
  const char* expected;  // a fragment of the message, which must start with "WHERE: KEY: "
};

// NaN, infinities, out of range, zero where positive is needed, huge, wrapping, partial numbers, wrong
// type, empty: each row was accepted (or misreported) before strict parsing and declared ranges.
const BadValue kBadValues[] = {
    {"optim.beta1", "1", "expected a finite number in [0, 1), got '1'"},  // 1 - beta1^t = 0: all-NaN weights
    {"optim.beta1", "-3", "expected a finite number in [0, 1), got '-3'"},
    {"optim.beta2", "nan", "expected a finite number in [0, 1), got 'nan'"},
    {"optim.beta2", "inf", "in [0, 1), got 'inf'"},
    {"optim.beta2", "-inf", "in [0, 1), got '-inf'"},
    {"optim.weight_decay", "nan", "expected a finite number in [0, 1], got 'nan'"},
    {"optim.min_lr_ratio", "nan", "expected a finite number in [0, 1], got 'nan'"},
    {"optim.min_lr_ratio", "NaN", "got 'NaN'"},
    {"optim.eps", "-1", "expected a finite number in (0, 1], got '-1'"},
    {"optim.eps", "0", "in (0, 1], got '0'"},
    {"optim.lr", "0", "in (0, 1], got '0'"},
    {"optim.lr", "1e999", "got '1e999'"},  // strtod overflows to infinity
    {"optim.lr", "0x1p-3", "got '0x1p-3'"},  // hexadecimal reals are a typo, not a config
    {"optim.lr", "3e-4x", "got '3e-4x'"},
    {"optim.zero_stage", "3", "expected an integer in [1, 2], got '3'"},
    {"train.max_grad_norm", "nan", "got 'nan'"},
    {"train.peak_flops", "-1", "got '-1'"},
    {"model.logits_soft_cap", "inf", "expected a finite number in [0, 1e+06], got 'inf'"},
    {"model.logits_soft_cap", "nan", "got 'nan'"},
    {"model.norm_eps", "inf", "expected a finite number in (0, 1], got 'inf'"},
    {"model.norm_eps", "0", "got '0'"},
    {"model.rope_base", "inf", "expected a finite number in (0, 1e+12], got 'inf'"},
    {"model.rope_fraction", "0", "in (0, 1], got '0'"},
    {"data.micro_batch", "288230376151711744", "expected an integer in [1, 1048576], got '288230376151711744'"},
    {"data.micro_batch", "0", "in [1, 1048576], got '0'"},
    {"data.micro_batch", "-1", "in [1, 1048576], got '-1'"},
    {"data.seq_len", "12abc", "expected an integer in [1, 1048576], got '12abc'"},
    {"data.seq_len", "1.5", "got '1.5'"},
    {"data.seq_len", "1e3", "got '1e3'"},
    {"data.seq_len", "", "got ''"},
    {"data.seq_len", "0x10", "got '0x10'"},
    {"data.seq_len", "99999999999999999999999", "got '99999999999999999999999'"},  // beyond int64
    {"model.vocab_size", "1000000000000000000", "expected an integer in [1, 16777216]"},
    {"model.attention_window", "1000000000", "expected an integer in [0, 1048576]"},
    {"model.width", "wide", "expected an integer in [1, 65536], got 'wide'"},
    {"train.steps", "-5", "got '-5'"},
    {"checkpoint.keep_last", "0", "got '0'"},
    {"test.count", "4294967296", "expected an integer in [-2147483648, 2147483647], got '4294967296'"},  // 2^32
    {"test.count", "2147483648", "got '2147483648'"},
    {"test.ratio", "1e39", "expected a finite number, got '1e39'"},  // beyond float's 3.4e38
    {"test.ratio", "nan", "expected a finite number, got 'nan'"},
    {"data.pack", "maybe", "expected true or false, got 'maybe'"},
    // Named choices: the message lists every accepted name; names are matched exactly.
    {"optim.decay", "step", "expected cosine, linear or constant, got 'step'"},
    {"optim.decay", "Cosine", "got 'Cosine'"},
    {"optim.decay", "", "expected cosine, linear or constant, got ''"},
    {"train.dtype", "float16", "expected float32, bfloat16 or auto, got 'float16'"},
    {"train.device", "gpu", "expected cpu, cuda or auto, got 'gpu'"},
};

TEST_F(MalformedValueTest, BadValuesAreRefusedFromTheCommandLineAndFromFiles) {
  for (const BadValue& b : kBadValues) {
    const std::string key = b.key, value = b.value;
    const std::string err = parse_all({"--" + key + "=" + value});
    EXPECT_EQ(err.find("command line: " + key + ": "), 0u) << key << "=" << value << " -> " << err;
    EXPECT_NE(err.find(b.expected), std::string::npos) << key << "=" << value << " -> " << err;
    const auto dot = key.find('.');
    const std::string file =
        write("bad.ini", "[" + key.substr(0, dot) + "]\n" + key.substr(dot + 1) + " = " + value + "\n");
    const std::string ferr = parse_all({"--config", file});
    EXPECT_EQ(ferr.find(file + ":2: " + key + ": "), 0u) << key << "=" << value << " in a file -> " << ferr;
    EXPECT_NE(ferr.find(b.expected), std::string::npos) << key << "=" << value << " in a file -> " << ferr;
  }
}

TEST_F(MalformedValueTest, WellFormedNumbersStillParse) {
  ASSERT_EQ(parse_all({"--optim.lr=3e-4", "--optim.eps=1e-8", "--optim.beta1=.5", "--optim.beta2=0.999",
                       "--data.seq_len=+64", "--data.micro_batch=007", "--test.count=-2147483648",
                       "--test.ratio=5.", "--model.logits_soft_cap=0"}), "");
  EXPECT_EQ(train_.optim.lr, 3e-4);
  EXPECT_EQ(train_.optim.eps, 1e-8);
  EXPECT_EQ(train_.optim.beta1, 0.5);
  EXPECT_EQ(train_.data.seq_len, 64);
  EXPECT_EQ(train_.data.micro_batch, 7);
  EXPECT_EQ(count_, -2147483647 - 1);
  EXPECT_EQ(ratio_, 5.0f);
  // The presets, which use every range's inside, still parse.
  for (const char* f : {"model/recurrentgemma-2b.ini", "train/recurrentgemma-2b-pretrain.ini",
                        "train/tiny-pretrain.ini", "train/tiny-sft.ini"}) {
    EXPECT_EQ(parse_all({"--config", std::string(RG_SOURCE_DIR) + "/configs/" + f}), "") << f;
  }
}

TEST_F(MalformedValueTest, BatchProductsAreCheckedBeforeAnyWork) {
  // Each factor is inside its range, the product is not: 2^20 rows of 2^20 tokens is 2^40 tokens per
  // micro-batch, over the 2^31 supported.
  const std::string err = parse_all({"--data.micro_batch=1048576", "--data.seq_len=1048576"});
  EXPECT_NE(err.find("command line: data.micro_batch: tokens per micro-batch"), std::string::npos) << err;
  // 2^15 x 2^16 = 2^31 tokens (allowed) x 2^20 accumulation = 2^51 > 2^40 per rank per update.
  const std::string err2 =
      parse_all({"--data.micro_batch=32768", "--data.seq_len=65536", "--train.grad_accum=1048576"});
  EXPECT_NE(err2.find("train.grad_accum: tokens per rank per update"), std::string::npos) << err2;
  // 2^31 tokens per update x 2^30 steps = 2^61 > 2^53 tokens in the run.
  const std::string err3 =
      parse_all({"--data.micro_batch=32768", "--data.seq_len=65536", "--train.steps=1073741824"});
  EXPECT_NE(err3.find("train.steps: tokens per rank in the run"), std::string::npos) << err3;
}

TEST_F(MalformedValueTest, HelpStatesEveryRealOptionsRange) {
  parse_all({});
  const std::string help = options_->help();
  EXPECT_NE(help.find("AdamW beta1, in [0, 1)"), std::string::npos) << help;
  EXPECT_NE(help.find("RMSNorm epsilon, in (0, 1]"), std::string::npos) << help;
  EXPECT_NE(help.find("rows per rank per micro-step, in [1, 1048576]"), std::string::npos) << help;
  // Every real-valued option of the [model], [train] and [optim] sections states its range.
  for (const char* key : {"model.logits_soft_cap", "model.rope_base", "model.rope_fraction", "model.norm_eps",
                          "train.max_grad_norm", "train.peak_flops", "optim.lr", "optim.min_lr_ratio",
                          "optim.beta1", "optim.beta2", "optim.eps", "optim.weight_decay"}) {
    const auto at = help.find(std::string("  --") + key + "=");
    ASSERT_NE(at, std::string::npos) << key;
    const std::string line = help.substr(at, help.find('\n', at) - at);
    EXPECT_NE(line.find(", in "), std::string::npos) << line;
  }
}

TEST_F(MalformedValueTest, NamedChoicesParseIntoTheirEnumsAndPrintTheirNames) {
  ASSERT_EQ(parse_all({}), "");
  // Defaults are the struct's values, printed by name.
  EXPECT_EQ(train_.optim.decay, trainer::LrDecay::kCosine);
  const std::string defaults = options_->effective();
  EXPECT_NE(defaults.find("\ndecay = cosine\n"), std::string::npos) << defaults;
  EXPECT_NE(defaults.find("\ndtype = auto\n"), std::string::npos) << defaults;
  EXPECT_NE(defaults.find("\ndevice = auto\n"), std::string::npos) << defaults;
  const auto f = write("e.ini", "[optim]\ndecay = constant\n[train]\ndtype = bfloat16\n");
  ASSERT_EQ(parse_all({"--config", f, "--train.device=cpu", "--optim.decay=linear"}), "");
  EXPECT_EQ(train_.optim.decay, trainer::LrDecay::kLinear);  // the command line wins over the file
  EXPECT_EQ(train_.train.dtype, trainer::TrainDtype::kBFloat16);
  EXPECT_EQ(train_.train.device, trainer::TrainDevice::kCpu);
  EXPECT_EQ(options_->where("train.dtype"), f + ":4");
  // The printed config reads back to the same enums.
  const auto path = (dir_ / "effective.ini").string();
  options_->write_effective(path);
  ASSERT_EQ(parse_all({"--config", path}), "");
  EXPECT_EQ(train_.optim.decay, trainer::LrDecay::kLinear);
  EXPECT_EQ(train_.train.dtype, trainer::TrainDtype::kBFloat16);
  EXPECT_EQ(train_.train.device, trainer::TrainDevice::kCpu);
  const std::string help = options_->help();
  EXPECT_NE(help.find("--optim.decay=linear"), std::string::npos) << help;  // the current value, by name
  EXPECT_NE(help.find("learning-rate decay after warmup (cosine, linear or constant)"), std::string::npos) << help;
}

// The mechanism itself, on an enum of its own (not the trainer's tables): every name in declaration order
// in help and messages, the default by name, a default outside the names refused at declaration.
enum class Fruit { kApple, kPear, kPlum };
TEST_F(OptionsTest, NamedChoiceOption) {
  const std::vector<std::pair<std::string, Fruit>> names{
      {"apple", Fruit::kApple}, {"pear", Fruit::kPear}, {"plum", Fruit::kPlum}};
  auto run = [&](Fruit* target, std::vector<std::string> args, Options** out) {
    args.insert(args.begin(), "rgemma fruit");
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    options_ = std::make_unique<Options>("rgemma fruit", "test");
    options_->add("shop.fruit", target, names, "what to buy");
    *out = options_.get();
    try {
      options_->parse(static_cast<int>(argv.size()), argv.data());
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  Options* o = nullptr;
  Fruit fruit = Fruit::kPear;
  EXPECT_EQ(run(&fruit, {}, &o), "");
  EXPECT_EQ(fruit, Fruit::kPear);
  EXPECT_EQ(o->effective(), "[shop]\nfruit = pear\n\n");
  EXPECT_NE(o->help().find("--shop.fruit=pear"), std::string::npos) << o->help();
  EXPECT_NE(o->help().find("what to buy (apple, pear or plum)"), std::string::npos) << o->help();
  EXPECT_EQ(run(&fruit, {"--shop.fruit=plum"}, &o), "");
  EXPECT_EQ(fruit, Fruit::kPlum);
  EXPECT_EQ(o->effective(), "[shop]\nfruit = plum\n\n");
  const auto f = write("f.ini", "# list\n[shop]\nfruit = banana\n");
  EXPECT_EQ(run(&fruit, {"--config", f}, &o), f + ":3: shop.fruit: expected apple, pear or plum, got 'banana'");
  EXPECT_EQ(run(&fruit, {"--shop.fruit=apple "}, &o),
            "command line: shop.fruit: expected apple, pear or plum, got 'apple '");
  Fruit stray = static_cast<Fruit>(7);  // not among the names: a programming error, not a user's
  EXPECT_THROW(run(&stray, {}, &o), std::logic_error);
}

TEST_F(OptionsTest, DuplicateKeyInOneFileNamesBothLines) {
  const auto a = write("dup.ini", "[train]\nsteps = 1\n[model]\nwidth = 64\ndepth = 2\nwidth = 128\n");
  const std::string err = parse({"--config", a});
  EXPECT_NE(err.find(a + ":6: duplicate key 'model.width', first set at " + a + ":4"), std::string::npos) << err;
  // A list key may repeat in a file: the values accumulate, as on the command line.
  const auto l = write("list.ini", "[data]\ninputs = a\ninputs = b\n[train]\nsteps = 1\n");
  EXPECT_EQ(parse({"--config", l}), "");
  EXPECT_EQ(inputs_, (std::vector<std::string>{"a", "b"}));
}

TEST_F(OptionsTest, MalformedLineNamesItsLine) {
  const auto a = write("syntax.ini", "[train]\nsteps = 1\n[model]\nwidth 64\n");
  const std::string err = parse({"--config", a});
  EXPECT_NE(err.find(a + ":4: expected 'key = value'"), std::string::npos) << err;
  const auto b = write("section.ini", "[train\nsteps = 1\n");
  EXPECT_NE(parse({"--config", b}).find(b + ":1: expected a [section] header"), std::string::npos);
}

TEST_F(OptionsTest, ConfigThatIsNotARegularFileIsRefused) {
  // Both were read as empty files before, so the command ran on defaults.
  const std::string err = parse({"--config", dir_.string(), "--train.steps=1"});
  EXPECT_NE(err.find(dir_.string() + ": cannot use as a config file: a directory"), std::string::npos) << err;
  const std::string zero = parse({"--config", "/dev/zero", "--train.steps=1"});
  EXPECT_NE(zero.find("/dev/zero: cannot use as a config file: a character device"), std::string::npos) << zero;
}

TEST_F(OptionsTest, UnreadableConfigIsRefused) {
  const auto a = write("secret.ini", "[train]\nsteps = 1\n");
  fs::permissions(a, fs::perms::none);
  if (std::ifstream(a).good()) GTEST_SKIP() << "running as root: permissions do not stop reading";
  const std::string err = parse({"--config", a});
  EXPECT_NE(err.find(a + ": cannot open config file (Permission denied)"), std::string::npos) << err;
}

TEST_F(OptionsTest, ControlCharactersStayOnOneLine) {
  const std::string err = parse({"--train.steps=1\n2"});
  EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  EXPECT_NE(err.find("got '1\\x0a2'"), std::string::npos) << err;
}

TEST(ClosestKey, SuggestsOnlyNearKeys) {
  EXPECT_EQ(closest_key("model.widht", {"model.width", "model.depth"}), "model.width");
  EXPECT_EQ(closest_key("zzzzzzzz", {"model.width"}), "");
}

}  // namespace
}  // namespace rg::config
