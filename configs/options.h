// Options: the one mechanism by which every `rgemma` command reads its settings.
// INI files with sections ([model], [data], [train], ...) via `--config FILE` (repeatable, later wins) and
// `--section.key=value` overrides; precedence is command line > files > defaults. Unknown keys, bad values
// and missing required keys throw ConfigError naming the file, line and key before any work starts.
// Numbers are parsed strictly and range-checked here (range()), and named choices (an enum bound with its
// names) are parsed into the enum here, so no section repeats those checks.
//
//   rg::config::Options opts("rgemma info", "Print a model's parameter count.");
//   rg::ModelConfig model;
//   rg::config::add_model_options(opts, &model);
//   if (!opts.parse(argc, argv)) return 0;   // --help was printed
//   opts.print_effective(std::cout);
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace boost::program_options {
class options_description;
}

namespace rg::config {

// A configuration problem the user must fix; `rgemma` prints it on one line and exits with code 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Options {
 public:
  Options(std::string command, std::string summary);
  ~Options();
  Options(const Options&) = delete;
  Options& operator=(const Options&) = delete;

  // Binds `key` ("section.key", or a plain command option such as "batch") to *target. The current value
  // of *target is the default. Supported T: bool, int, int64_t, double, float, std::string,
  // std::vector<std::string> (a comma-separated list in files, repeatable on the command line).
  template <class T>
  Options& add(const std::string& key, T* target, const std::string& help);
  // Binds `key` to an enum *target chosen by name from `names` (each name once). The value must be one of
  // the names exactly; help() lists them, effective() prints the name, the default is *target's current
  // value (which must be in `names`). A bad value is the one-line "FILE:LINE: key: expected a, b or c,
  // got 'x'".
  //   opts.add("optim.decay", &decay, {{"cosine", LrDecay::kCosine}, {"linear", LrDecay::kLinear}}, "decay");
  template <class E>
  Options& add(const std::string& key, E* target, const std::vector<std::pair<std::string, E>>& names,
               const std::string& help) {
    static_assert(std::is_enum_v<E>, "named choices bind an enum");
    std::vector<std::string> labels;
    for (const auto& [name, value] : names) labels.push_back(name);
    return add_choice(
        key, std::move(labels),
        [target, names] {
          for (size_t i = 0; i < names.size(); ++i) {
            if (names[i].second == *target) return static_cast<int>(i);
          }
          return -1;
        },
        [target, names](int i) { *target = names[static_cast<size_t>(i)].second; }, help);
  }
  // Which ends of a range() are included: [lo, hi], (lo, hi], [lo, hi), (lo, hi).
  enum class Bounds { kClosed, kOpenLow, kOpenHigh, kOpen };
  // Restricts the numeric option added last to lo..hi; help() shows the interval. Every numeric value is
  // parsed strictly whatever its range: the whole text must be the number ("12abc", "1.5" for an
  // integer are refused), integers are read as 64-bit and refused when outside the target type
  // (4294967296 for an int) rather than wrapped, and NaN and infinities are refused for every
  // floating-point option. long double holds every int64 bound exactly on x86-64 and aarch64 Linux.
  //   opts.add("optim.beta1", &beta1, "AdamW beta1").range(0, 1, Options::Bounds::kOpenHigh);
  Options& range(long double lo, long double hi, Bounds bounds = Bounds::kClosed);
  // A key that must be given by a file or the command line.
  Options& required(const std::string& key);
  // Runs after all values are stored, in registration order; throw ConfigError (use fail()) or
  // std::invalid_argument whose message starts with "key:" and the key's location is added.
  Options& on_parsed(std::function<void()> hook);

  // Parses argv (argv[0] is the command name). Returns false when --help was printed.
  bool parse(int argc, const char* const* argv);

  // Where a key's value came from: "FILE:LINE", "command line" or "default".
  std::string where(const std::string& key) const;
  bool given(const std::string& key) const;  // set by a file or the command line
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  // Every option's effective value as INI text ([section] headers, key = value).
  std::string effective() const;
  void print_effective(std::ostream& out) const;
  // Writes effective() to `path` atomically (temporary file, then rename).
  void write_effective(const std::string& path) const;
  std::string help() const;
  const std::vector<std::string>& config_files() const { return config_files_; }

 private:
  struct Entry;
  struct ParseState;
  Entry& register_entry(const std::string& key, const std::string& help, const std::string& type);
  // The enum add() above without its type: `current` gives the index of the target's value in `names`
  // (-1: none), `store` sets the target to the value of index i.
  Options& add_choice(const std::string& key, std::vector<std::string> names, std::function<int()> current,
                      std::function<void(int)> store, const std::string& help);
  // parse()'s stages, in order.
  void read_command_line(int argc, const char* const* argv, ParseState& state) const;
  void read_config_files(const std::vector<std::string>& files, ParseState& state);
  void check_numbers(const ParseState& state);
  void check_choices(const ParseState& state);
  void check_required() const;
  void run_checks() const;
  std::string did_you_mean(const std::string& key) const;  // " (did you mean 'k'?)" or ""

  std::string command_, summary_;
  std::unique_ptr<boost::program_options::options_description> desc_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::map<std::string, Entry*> by_key_;
  std::map<std::string, std::string> source_;  // key -> "FILE:LINE" | "command line"
  std::vector<std::function<void()>> hooks_;
  std::vector<std::string> config_files_;
};

// Levenshtein-closest known key, for "did you mean" hints; empty when nothing is close.
std::string closest_key(const std::string& key, const std::vector<std::string>& known);

}  // namespace rg::config
