// Options: Boost.Program_options underneath, with our own bookkeeping of where each value came from so
// that every error names the file and line (or the command line) and the key. Numbers reach Boost as text
// and are parsed here (strict syntax, 64-bit integers, finite reals, declared ranges), since Boost's
// lexical_cast accepts what a user did not mean and its errors cannot say which range was expected.
#include "configs/options.h"

#include "model/io/atomic_write.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <set>
#include <sstream>

namespace po = boost::program_options;

namespace rg::config {

struct Options::Entry {
  std::string key, help, type;
  bool required = false;
  std::function<std::string()> print;  // current value of the target, as INI text
  // Numeric options: Boost stores the given text, parse() converts and range-checks it into the target.
  // Named choices likewise: Boost stores the text, parse() looks it up in `names`.
  enum class Kind { kOther, kInteger, kReal, kChoice } kind = Kind::kOther;
  std::string text;
  long double lo = 0, hi = 0;  // the target type's limits until range() narrows them
  Bounds bounds = Bounds::kClosed;
  bool ranged = false;  // range() was called: help() and every message show the interval
  std::function<long double()> current;
  std::function<void(int64_t)> store_integer;
  std::function<void(double)> store_real;
  std::vector<std::string> names;  // kChoice: the accepted values, in declaration order
  std::function<int()> choice;     // kChoice: index of the target's value in names
  std::function<void(int)> store_choice;
};

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// The 1-based line of `key` ("section.key") in an INI file, or 0 when not found.
int find_line(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line, section;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string t = trim(line.substr(0, line.find('#')));
    if (t.size() >= 2 && t.front() == '[' && t.back() == ']') {
      section = trim(t.substr(1, t.size() - 2));
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = trim(t.substr(0, eq));
    if ((section.empty() ? name : section + "." + name) == key) return n;
  }
  return 0;
}

std::string located(const std::string& path, const std::string& key) {
  const int line = find_line(path, key);
  return line ? path + ":" + std::to_string(line) : path;
}

// Config files are small text files: this bound keeps a wrong path (a disk image, a log) from being read
// whole into memory before the first line is refused.
constexpr std::uintmax_t kMaxConfigFileBytes = 16u << 20;

// A text that came from the user, fit for a one-line message: control characters escaped, cut after about
// 100 characters (a binary file's first "line" can be kilobytes).
std::string printable(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= 100) return out + "...";
    const unsigned char ch = static_cast<unsigned char>(s[i]);
    if (ch >= 0x20 && ch != 0x7f) {
      out += static_cast<char>(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    }
  }
  return out;
}

// Refuses what cannot be a config file before it is read: missing, not a regular file (a directory,
// /dev/zero, a FIFO), unreadable, or too large. Then checks every line's syntax and that no key is set
// twice in the file (Boost would report the second as a bad value). Keys of `lists` may repeat (they
// accumulate).
void check_config_file(const std::string& path, const std::set<std::string>& lists) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    throw ConfigError(path + ": cannot open config file (" + (ec ? ec.message() : "no such file") + ")");
  }
  if (!fs::is_regular_file(st)) {
    const char* what = fs::is_directory(st)           ? "a directory"
                       : fs::is_character_file(st)    ? "a character device"
                       : fs::is_block_file(st)        ? "a block device"
                       : fs::is_fifo(st)              ? "a FIFO"
                       : fs::is_socket(st)            ? "a socket"
                                                      : "not a regular file";
    throw ConfigError(path + ": cannot use as a config file: " + what + ", expected an INI file");
  }
  const std::uintmax_t size = fs::file_size(path, ec);
  if (!ec && size > kMaxConfigFileBytes) {
    throw ConfigError(path + ": cannot use as a config file: " + std::to_string(size) +
                      " bytes, more than the 16 MiB a config file may have");
  }
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open config file (" + std::strerror(errno) + ")");
  std::string line, section;
  std::map<std::string, int> first_line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string t = trim(line.substr(0, line.find('#')));
    if (t.empty()) continue;
    if (t.front() == '[') {
      if (t.back() != ']' || t.size() < 3) {
        throw ConfigError(path + ":" + std::to_string(n) + ": expected a [section] header, got '" + printable(t) + "'");
      }
      section = trim(t.substr(1, t.size() - 2));
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos || trim(t.substr(0, eq)).empty()) {
      throw ConfigError(path + ":" + std::to_string(n) + ": expected 'key = value' or a [section] header, got '" +
                        printable(t) + "'");
    }
    const std::string name = trim(t.substr(0, eq));
    const std::string key = section.empty() ? name : section + "." + name;
    const auto [it, fresh] = first_line.emplace(key, n);
    if (!fresh && !lists.count(key)) {
      throw ConfigError(path + ":" + std::to_string(n) + ": duplicate key '" + printable(key) + "', first set at " +
                        path + ":" + std::to_string(it->second));
    }
  }
  if (in.bad()) throw ConfigError(path + ": cannot read config file (" + std::strerror(errno) + ")");
}

std::string format_bound(long double v, bool integer) {
  if (integer) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream s;
  s << std::setprecision(6) << static_cast<double>(v);
  return s.str();
}

bool open_low(Options::Bounds b) { return b == Options::Bounds::kOpenLow || b == Options::Bounds::kOpen; }
bool open_high(Options::Bounds b) { return b == Options::Bounds::kOpenHigh || b == Options::Bounds::kOpen; }

// "[1, 1048576]", "(0, 1]": how help() and the messages write a range.
std::string interval_text(long double lo, long double hi, Options::Bounds b, bool integer) {
  return std::string(open_low(b) ? "(" : "[") + format_bound(lo, integer) + ", " + format_bound(hi, integer) +
         (open_high(b) ? ")" : "]");
}

template <class T>
std::string to_text(const T& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
std::string to_text(const bool& v) { return v ? "true" : "false"; }
std::string to_text(const double& v) {
  std::ostringstream s;
  s << std::setprecision(17) << v;
  std::string out = s.str();
  // Shortest form that reads back exactly, for readability of the printed config.
  for (int p = 1; p <= 17; ++p) {
    std::ostringstream t;
    t << std::setprecision(p) << v;
    if (std::stod(t.str()) == v) return t.str();
  }
  return out;
}
std::string to_text(const float& v) { return to_text(static_cast<double>(v)); }
std::string to_text(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}

// "a, b or c": how help() and the messages list a choice's names.
std::string names_text(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  }
  return out;
}

template <class T> const char* type_name();
template <> const char* type_name<bool>() { return "true or false"; }
template <> const char* type_name<int>() { return "an integer"; }
template <> const char* type_name<int64_t>() { return "an integer"; }
template <> const char* type_name<double>() { return "a number"; }
template <> const char* type_name<float>() { return "a number"; }
template <> const char* type_name<std::string>() { return "a string"; }
template <> const char* type_name<std::vector<std::string>>() { return "a comma-separated list"; }

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Splits comma-separated list values given in files ("a,b") so both forms mean the same.
std::vector<std::string> split_commas(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& item : in) {
    std::stringstream s(item);
    std::string part;
    while (std::getline(s, part, ',')) {
      part = trim(part);
      if (!part.empty()) out.push_back(part);
    }
  }
  return out;
}

}  // namespace

std::string closest_key(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::max<size_t>(3, key.size() / 3) + 1;
  for (const auto& k : known) {
    const size_t d = edit_distance(key, k);
    if (d < best_d) best_d = d, best = k;
  }
  return best;
}

Options::Options(std::string command, std::string summary)
    : command_(std::move(command)), summary_(std::move(summary)),
      desc_(std::make_unique<po::options_description>()) {
  desc_->add_options()("help,h", "print this help and exit")(
      "config", po::value<std::vector<std::string>>(&config_files_)->composing(),
      "INI config file; repeatable, later files win");
}

Options::~Options() = default;

Options::Entry& Options::register_entry(const std::string& key, const std::string& help,
                                        const std::string& type) {
  if (by_key_.count(key)) throw std::logic_error("option registered twice: " + key);
  entries_.push_back(std::make_unique<Entry>());
  Entry& e = *entries_.back();
  e.key = key, e.help = help, e.type = type;
  by_key_[key] = &e;
  return e;
}

template <class T>
Options& Options::add(const std::string& key, T* target, const std::string& help) {
  Entry& e = register_entry(key, help, type_name<T>());
  e.print = [target] { return to_text(*target); };
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    // Boost only keeps the text (no default: an option absent from vm was not given); parse() converts it.
    if constexpr (std::is_integral_v<T>) {
      e.kind = Entry::Kind::kInteger;
      e.lo = std::numeric_limits<T>::min();
      e.store_integer = [target](int64_t v) { *target = static_cast<T>(v); };
    } else {
      e.kind = Entry::Kind::kReal;
      e.lo = -std::numeric_limits<T>::max();
      e.store_real = [target](double v) { *target = static_cast<T>(v); };
    }
    e.hi = std::numeric_limits<T>::max();
    e.current = [target] { return static_cast<long double>(*target); };
    desc_->add_options()(key.c_str(), po::value<std::string>(&e.text), help.c_str());
  } else {
    auto* value = po::value<T>(target)->default_value(*target, to_text(*target));
    if constexpr (std::is_same_v<T, bool>) value->implicit_value(true, "true");
    desc_->add_options()(key.c_str(), value, help.c_str());
  }
  return *this;
}

template <>
Options& Options::add(const std::string& key, std::vector<std::string>* target, const std::string& help) {
  Entry& e = register_entry(key, help, type_name<std::vector<std::string>>());
  e.print = [target] { return to_text(*target); };
  auto* value = po::value<std::vector<std::string>>(target)
                    ->default_value(*target, to_text(*target))
                    // Not composing: Boost would then merge a file's list into the command line's;
                    // repeats within one source still accumulate.
                    ->multitoken()
                    ->notifier([target](const std::vector<std::string>&) { *target = split_commas(*target); });
  desc_->add_options()(key.c_str(), value, help.c_str());
  return *this;
}

Options& Options::add_choice(const std::string& key, std::vector<std::string> names, std::function<int()> current,
                             std::function<void(int)> store, const std::string& help) {
  if (names.empty()) throw std::logic_error("no names for option " + key);
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::find(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(i), names[i]) !=
        names.begin() + static_cast<std::ptrdiff_t>(i)) {
      throw std::logic_error("name '" + names[i] + "' given twice for option " + key);
    }
  }
  const int now = current();
  if (now < 0 || now >= static_cast<int>(names.size())) throw std::logic_error("default of " + key + " not among its names");
  Entry& e = register_entry(key, help, names_text(names));
  e.kind = Entry::Kind::kChoice;
  e.names = std::move(names);
  e.choice = std::move(current);
  e.store_choice = std::move(store);
  e.print = [&e] {
    const int i = e.choice();
    return i < 0 ? std::string("?") : e.names[static_cast<size_t>(i)];
  };
  desc_->add_options()(key.c_str(), po::value<std::string>(&e.text), e.help.c_str());
  return *this;
}

template Options& Options::add<bool>(const std::string&, bool*, const std::string&);
template Options& Options::add<int>(const std::string&, int*, const std::string&);
template Options& Options::add<int64_t>(const std::string&, int64_t*, const std::string&);
template Options& Options::add<double>(const std::string&, double*, const std::string&);
template Options& Options::add<float>(const std::string&, float*, const std::string&);
template Options& Options::add<std::string>(const std::string&, std::string*, const std::string&);

Options& Options::range(long double lo, long double hi, Bounds bounds) {
  if (entries_.empty()) throw std::logic_error("range() before any add()");
  Entry& e = *entries_.back();
  if (e.kind == Entry::Kind::kOther || e.kind == Entry::Kind::kChoice) {
    throw std::logic_error("range() of non-numeric option " + e.key);
  }
  if (!(lo <= hi) || lo < e.lo || hi > e.hi) throw std::logic_error("range() outside the type of " + e.key);
  e.lo = lo, e.hi = hi, e.bounds = bounds, e.ranged = true;
  const long double v = e.current();
  const bool lo_ok = open_low(bounds) ? v > lo : v >= lo;
  const bool hi_ok = open_high(bounds) ? v < hi : v <= hi;
  if (!lo_ok || !hi_ok) throw std::logic_error("default of " + e.key + " outside its range()");
  return *this;
}

Options& Options::required(const std::string& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) throw std::logic_error("required() of unknown option " + key);
  it->second->required = true;
  return *this;
}

Options& Options::on_parsed(std::function<void()> hook) {
  hooks_.push_back(std::move(hook));
  return *this;
}

std::string Options::where(const std::string& key) const {
  auto it = source_.find(key);
  return it == source_.end() ? "default" : it->second;
}

bool Options::given(const std::string& key) const { return source_.count(key) > 0; }

void Options::fail(const std::string& key, const std::string& message) const {
  const std::string loc = where(key);
  throw ConfigError((loc == "default" ? std::string("default value") : loc) + ": " + key + ": " + message);
}

// What parse() carries from one stage to the next: the values stored so far (command line first, then the
// files from the last to the first; Boost keeps the first value stored for a key).
struct Options::ParseState {
  po::parsed_options cmdline{nullptr};
  po::variables_map vm;
};

bool Options::parse(int argc, const char* const* argv) {
  ParseState state;
  read_command_line(argc, argv, state);
  if (state.vm.count("help")) {
    std::cout << help();
    return false;
  }
  for (const auto& o : state.cmdline.options) {
    if (o.string_key != "config" && !o.string_key.empty()) source_.emplace(o.string_key, "command line");
  }
  std::vector<std::string> files;
  if (state.vm.count("config")) files = state.vm["config"].as<std::vector<std::string>>();
  read_config_files(files, state);
  try {
    po::notify(state.vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string("configuration: ") + printable(e.what()));
  }
  check_numbers(state);
  check_choices(state);
  check_required();
  run_checks();
  return true;
}

std::string Options::did_you_mean(const std::string& key) const {
  std::vector<std::string> known;
  for (const auto& e : entries_) known.push_back(e->key);
  const std::string c = closest_key(key, known);
  return c.empty() ? std::string() : " (did you mean '" + c + "'?)";
}

// 1. The command line: parsed (unknown options and empty values refused), a key given twice keeping the
// later value, no positional arguments, then stored (a bad value names its key).
void Options::read_command_line(int argc, const char* const* argv, ParseState& state) const {
  po::parsed_options& cmdline = state.cmdline;
  try {
    cmdline = po::command_line_parser(argc, argv).options(*desc_).run();  // skips argv[0] itself
  } catch (const po::unknown_option& e) {
    std::string name = e.get_option_name();
    name.erase(0, name.find_first_not_of('-'));
    name = name.substr(0, name.find('='));  // Boost reports "--key=value" whole
    throw ConfigError("command line: unknown option '--" + printable(name) + "'" + did_you_mean(name) + "; see " +
                      command_ + " --help");
  } catch (const po::invalid_command_line_syntax& e) {
    // "--key=" or a trailing "--key": say which key and what it expects, like any other bad value.
    std::string key = e.get_option_name();
    key.erase(0, key.find_first_not_of('-'));
    const auto it = by_key_.find(key);
    const bool empty = e.kind() == po::invalid_command_line_syntax::empty_adjacent_parameter ||
                       e.kind() == po::invalid_command_line_syntax::missing_parameter;
    if (it == by_key_.end() || !empty) throw ConfigError("command line: " + printable(e.what()));
    throw ConfigError("command line: " + key + ": expected " + it->second->type + ", got ''");
  } catch (const po::error& e) {
    throw ConfigError("command line: " + printable(e.what()));
  }
  // A key given twice on the command line: the later one wins (e.g. a wrapper script's default, then the
  // user's override). List options and --config accumulate instead.
  {
    std::vector<po::option> kept;
    std::set<std::string> seen;
    for (auto it = cmdline.options.rbegin(); it != cmdline.options.rend(); ++it) {
      const auto entry = by_key_.find(it->string_key);
      const bool accumulates = it->string_key == "config" ||
                               (entry != by_key_.end() && entry->second->type == type_name<std::vector<std::string>>());
      if (accumulates || it->string_key.empty() || seen.insert(it->string_key).second) kept.push_back(*it);
    }
    cmdline.options.assign(kept.rbegin(), kept.rend());
  }
  for (const auto& o : cmdline.options) {
    if (o.position_key >= 0) {
      throw ConfigError("command line: unexpected argument '" + printable(o.value.front()) + "'; see " + command_ +
                        " --help");
    }
  }
  try {
    po::store(cmdline, state.vm);
  } catch (const po::error& e) {
    std::string key = "";
    if (auto* v = dynamic_cast<const po::error_with_option_name*>(&e)) key = v->get_option_name();
    key.erase(0, key.find_first_not_of('-'));
    auto it = by_key_.find(key);
    std::string got;
    for (const auto& o : cmdline.options) {
      if (o.string_key == key && !o.value.empty()) got = o.value.front();
    }
    throw ConfigError("command line: " + key + ": " +
                      (it != by_key_.end() ? "expected " + it->second->type + ", got '" + printable(got) + "'"
                                           : printable(e.what())));
  }
}

// 2. Config files: each parsed to catch unknown keys with their line, then stored from the last file to the
// first so that later files win (Boost keeps the first value stored); the command line, stored first,
// wins over all of them.
void Options::read_config_files(const std::vector<std::string>& files, ParseState& state) {
  po::variables_map& vm = state.vm;
  std::vector<std::pair<std::string, po::parsed_options>> parsed;
  std::set<std::string> lists;
  for (const auto& e : entries_) {
    if (e->type == type_name<std::vector<std::string>>()) lists.insert(e->key);
  }
  for (const auto& path : files) {
    check_config_file(path, lists);
    std::ifstream in(path);
    if (!in) throw ConfigError(path + ": cannot open config file (" + std::strerror(errno) + ")");
    try {
      parsed.emplace_back(path, po::parse_config_file(in, *desc_, /*allow_unregistered=*/true));
    } catch (const po::error& e) {
      throw ConfigError(path + ": " + printable(e.what()));
    }
    for (const auto& o : parsed.back().second.options) {
      if (o.unregistered || o.string_key == "config" || o.string_key == "help") {
        throw ConfigError(located(path, o.string_key) + ": unknown key '" + printable(o.string_key) + "'" +
                          did_you_mean(o.string_key));
      }
    }
  }
  for (auto it = parsed.rbegin(); it != parsed.rend(); ++it) {
    const auto& [path, opts] = *it;
    try {
      po::store(opts, vm);
    } catch (const po::error& e) {
      std::string key;
      if (auto* v = dynamic_cast<const po::error_with_option_name*>(&e)) key = v->get_option_name();
      key.erase(0, key.find_first_not_of('-'));
      auto entry = by_key_.find(key);
      std::string got;
      for (const auto& o : opts.options) {
        if (o.string_key == key && !o.value.empty()) got = o.value.front();
      }
      throw ConfigError(located(path, key) + ": " + key + ": " +
                        (entry != by_key_.end() ? "expected " + entry->second->type + ", got '" + printable(got) + "'"
                                                : printable(e.what())));
    }
    for (const auto& o : opts.options) source_.emplace(o.string_key, located(path, o.string_key));
  }
}

// 3. Numbers: the whole text must be one number of the option's kind, inside its range. The message quotes
// the text as given (not a wrapped or rounded value) and where it came from.
void Options::check_numbers(const ParseState& state) {
  const po::variables_map& vm = state.vm;
  for (const auto& e : entries_) {
    if ((e->kind != Entry::Kind::kInteger && e->kind != Entry::Kind::kReal) || !vm.count(e->key)) continue;
    const bool integer = e->kind == Entry::Kind::kInteger;
    const bool open_lo = open_low(e->bounds), open_hi = open_high(e->bounds);
    const std::string& text = e->text;
    // The range is shown when declared, and for an integer out of its type's range (which says why
    // 4294967296 is refused); a real's type range would only be noise.
    auto refuse = [&](bool out_of_range) {
      const bool show = e->ranged || (integer && out_of_range);
      fail(e->key, std::string(integer ? "expected an integer" : "expected a finite number") +
                       (show ? " in " + interval_text(e->lo, e->hi, e->bounds, integer) : "") + ", got '" +
                       printable(text) + "'");
    };
    // One optional sign, then the number itself with nothing after it; no leading space or hex.
    const size_t start = !text.empty() && (text[0] == '+' || text[0] == '-') ? 1 : 0;
    if (text.size() == start || !(std::isdigit(static_cast<unsigned char>(text[start])) ||
                                  (!integer && text[start] == '.'))) {
      if (!integer && text.size() > start && std::isalpha(static_cast<unsigned char>(text[start]))) {
        refuse(true);  // nan, inf: a number, just not a usable one
      }
      refuse(false);
    }
    if (integer) {
      int64_t v = 0;
      const char* first = text.data() + (text[0] == '+' ? 1 : 0);
      const char* last = text.data() + text.size();
      const auto [end, ec] = std::from_chars(first, last, v);
      if (ec == std::errc::result_out_of_range) refuse(true);
      if (ec != std::errc() || end != last) refuse(false);
      const long double x = v;
      if ((open_lo ? x <= e->lo : x < e->lo) || (open_hi ? x >= e->hi : x > e->hi)) refuse(true);
      e->store_integer(v);
    } else {
      if (text.size() > start + 1 && text[start] == '0' && (text[start + 1] == 'x' || text[start + 1] == 'X')) {
        refuse(false);  // strtod reads hexadecimal; a config value in hex is a mistake
      }
      char* end = nullptr;
      errno = 0;
      const double v = std::strtod(text.c_str(), &end);
      if (end != text.c_str() + text.size()) refuse(false);
      // Overflow gives HUGE_VAL (refused as not finite); underflow gives 0 or a subnormal, which the range
      // judges like any other value.
      if (!std::isfinite(v)) refuse(true);
      const long double x = v;
      if ((open_lo ? x <= e->lo : x < e->lo) || (open_hi ? x >= e->hi : x > e->hi)) refuse(true);
      e->store_real(v);
    }
  }

}

// 3b. Named choices: the text must be one of the names exactly (no case folding, no trimming beyond the INI
// reader's), and the message lists them all.
void Options::check_choices(const ParseState& state) {
  for (const auto& e : entries_) {
    if (e->kind != Entry::Kind::kChoice || !state.vm.count(e->key)) continue;
    const auto it = std::find(e->names.begin(), e->names.end(), e->text);
    if (it == e->names.end()) fail(e->key, "expected " + e->type + ", got '" + printable(e->text) + "'");
    e->store_choice(static_cast<int>(it - e->names.begin()));
  }
}

// 4. Required keys.
void Options::check_required() const {
  for (const auto& e : entries_) {
    if (e->required && !given(e->key)) {
      const auto dot = e->key.find('.');
      const std::string in_file = dot == std::string::npos
                                      ? ""
                                      : " (a config file's [" + e->key.substr(0, dot) + "] section: " +
                                            e->key.substr(dot + 1) + " = ..., or";
      throw ConfigError("missing required key '" + e->key + "': expected " + e->type + in_file +
                        (in_file.empty() ? " (" : " ") + "--" + e->key + "=...)");
    }
  }
}

// 5. The sections' own checks (on_parsed hooks), in registration order.
void Options::run_checks() const {
  for (const auto& hook : hooks_) {
    try {
      hook();
    } catch (const std::invalid_argument& e) {
      // Messages of the form "section.key: what is wrong" get the key's location in front.
      const std::string msg = e.what();
      const std::string key = msg.substr(0, msg.find(':'));
      if (by_key_.count(key)) fail(key, trim(msg.substr(key.size() + 1)));
      throw ConfigError(msg);
    }
  }
}

std::string Options::effective() const {
  std::ostringstream out;
  std::map<std::string, std::vector<const Entry*>> sections;
  std::vector<std::string> order;
  for (const auto& e : entries_) {
    const auto dot = e->key.find('.');
    const std::string section = dot == std::string::npos ? "" : e->key.substr(0, dot);
    if (!sections.count(section)) order.push_back(section);
    sections[section].push_back(e.get());
  }
  std::stable_partition(order.begin(), order.end(), [](const std::string& s) { return s.empty(); });
  for (const auto& section : order) {
    if (!section.empty()) out << "[" << section << "]\n";
    for (const Entry* e : sections[section]) {
      const auto dot = e->key.find('.');
      out << (dot == std::string::npos ? e->key : e->key.substr(dot + 1)) << " = " << e->print() << "\n";
    }
    out << "\n";
  }
  return out.str();
}

void Options::print_effective(std::ostream& out) const {
  out << "# effective configuration of " << command_ << "\n" << effective();
}

void Options::write_effective(const std::string& path) const {
  std::ostringstream text;
  print_effective(text);
  io::write_text_atomically(path, text.str());
}

std::string Options::help() const {
  std::ostringstream out;
  out << "usage: " << command_ << " [--config FILE]... [--section.key=VALUE]...\n" << summary_ << "\n\n";
  out << "  --config FILE            INI config file; repeatable, later files win\n";
  out << "  -h, --help               print this help and exit\n";
  for (const auto& e : entries_) {
    std::string left = "  --" + e->key + "=" + (e->print().empty() ? "\"\"" : e->print());
    if (left.size() < 34) left.resize(34, ' ');
    else left += "  ";
    const std::string range =
        e->ranged ? ", in " + interval_text(e->lo, e->hi, e->bounds, e->kind == Entry::Kind::kInteger) : "";
    const std::string choices = e->kind == Entry::Kind::kChoice ? " (" + e->type + ")" : "";
    out << left << e->help << choices << range << (e->required ? " (required)" : "") << "\n";
  }
  out << "\nPrecedence: command line > later config files > earlier config files > defaults.\n";
  return out.str();
}

}  // namespace rg::config
