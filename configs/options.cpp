// Options: Boost.Program_options underneath, with our own bookkeeping of where each value came from so
// that every error names the file and line (or the command line) and the key.
#include "configs/options.h"

#include "model/io/atomic_write.h"

#include <boost/program_options.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>

namespace po = boost::program_options;

namespace rg::config {

struct Options::Entry {
  std::string key, help, type;
  bool required = false;
  std::function<std::string()> print;  // current value of the target, as INI text
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
  auto* value = po::value<T>(target)->default_value(*target, to_text(*target));
  if constexpr (std::is_same_v<T, bool>) value->implicit_value(true, "true");
  desc_->add_options()(key.c_str(), value, help.c_str());
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

template Options& Options::add<bool>(const std::string&, bool*, const std::string&);
template Options& Options::add<int>(const std::string&, int*, const std::string&);
template Options& Options::add<int64_t>(const std::string&, int64_t*, const std::string&);
template Options& Options::add<double>(const std::string&, double*, const std::string&);
template Options& Options::add<float>(const std::string&, float*, const std::string&);
template Options& Options::add<std::string>(const std::string&, std::string*, const std::string&);

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

bool Options::parse(int argc, const char* const* argv) {
  std::vector<std::string> known;
  for (const auto& e : entries_) known.push_back(e->key);
  auto hint = [&](const std::string& key) {
    const std::string c = closest_key(key, known);
    return c.empty() ? std::string() : " (did you mean '" + c + "'?)";
  };

  // 1. The command line (also yields the list of config files).
  po::parsed_options cmdline(desc_.get());
  try {
    cmdline = po::command_line_parser(argc, argv).options(*desc_).run();  // skips argv[0] itself
  } catch (const po::unknown_option& e) {
    std::string name = e.get_option_name();
    name.erase(0, name.find_first_not_of('-'));
    name = name.substr(0, name.find('='));  // Boost reports "--key=value" whole
    throw ConfigError("command line: unknown option '--" + name + "'" + hint(name) + "; see " + command_ +
                      " --help");
  } catch (const po::error& e) {
    throw ConfigError("command line: " + std::string(e.what()));
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
      throw ConfigError("command line: unexpected argument '" + o.value.front() + "'; see " + command_ +
                        " --help");
    }
  }
  po::variables_map vm;
  try {
    po::store(cmdline, vm);
  } catch (const po::error& e) {
    std::string key = "";
    if (auto* v = dynamic_cast<const po::error_with_option_name*>(&e)) key = v->get_option_name();
    key.erase(0, key.find_first_not_of('-'));
    auto it = by_key_.find(key);
    throw ConfigError("command line: " + key + ": " +
                      (it != by_key_.end() ? "expected " + it->second->type : std::string(e.what())));
  }
  if (vm.count("help")) {
    std::cout << help();
    return false;
  }
  for (const auto& o : cmdline.options) {
    if (o.string_key != "config" && !o.string_key.empty()) source_.emplace(o.string_key, "command line");
  }
  std::vector<std::string> files;
  if (vm.count("config")) files = vm["config"].as<std::vector<std::string>>();

  // 2. Config files: parse each to catch unknown keys with their line, then store from the last file to
  // the first so that later files win (Boost keeps the first value stored).
  std::vector<std::pair<std::string, po::parsed_options>> parsed;
  for (const auto& path : files) {
    std::ifstream in(path);
    if (!in) throw ConfigError(path + ": cannot open config file");
    try {
      parsed.emplace_back(path, po::parse_config_file(in, *desc_, /*allow_unregistered=*/true));
    } catch (const po::error& e) {
      throw ConfigError(path + ": " + e.what());
    }
    for (const auto& o : parsed.back().second.options) {
      if (o.unregistered || o.string_key == "config" || o.string_key == "help") {
        throw ConfigError(located(path, o.string_key) + ": unknown key '" + o.string_key + "'" +
                          hint(o.string_key));
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
                        (entry != by_key_.end() ? "expected " + entry->second->type + ", got '" + got + "'"
                                                : std::string(e.what())));
    }
    for (const auto& o : opts.options) source_.emplace(o.string_key, located(path, o.string_key));
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw ConfigError(std::string("configuration: ") + e.what());
  }

  // 3. Required keys, then the sections' own checks.
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
  return true;
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
    out << left << e->help << (e->required ? " (required)" : "") << "\n";
  }
  out << "\nPrecedence: command line > later config files > earlier config files > defaults.\n";
  return out.str();
}

}  // namespace rg::config
