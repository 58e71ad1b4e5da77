// `rgemma report RUN... --output DIR`: PNG plots and an index.md summary table from run folders of
// pretrain, sft, reward, dpo, ppo and grpo. The plotting is tools/plot/report.py (matplotlib, run with
// Debian's /usr/bin/python3); this command checks the folders, reads what needs the C++ data readers (each
// run's dataset kind, and the unigram entropy of a pretraining run's training tokens, the loss a model
// that ignores context cannot beat) and runs the script with them.
#include "configs/options.h"
#include "data/dataset.h"
#include "tools/command.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;

#ifndef RG_SOURCE_DIR
#define RG_SOURCE_DIR ""
#endif

// Where the plotting script is: $RG_REPORT_SCRIPT, an installed copy next to the executable
// (PREFIX/bin/rgemma -> PREFIX/share/rgemma/plot/report.py), the source tree this binary was built from, or
// a tools/plot/report.py in a folder above the executable (a build folder inside a moved source tree).
fs::path find_report_script() {
  if (const char* env = std::getenv("RG_REPORT_SCRIPT"); env && *env) {
    if (!fs::is_regular_file(env)) throw std::runtime_error(std::string("RG_REPORT_SCRIPT: no file ") + env);
    return env;
  }
  const fs::path rel = fs::path("tools") / "plot" / "report.py";
  std::error_code ec;
  const fs::path exe = fs::canonical("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "share" / "rgemma" / "plot" / "report.py");
  if (*RG_SOURCE_DIR) candidates.push_back(fs::path(RG_SOURCE_DIR) / rel);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      candidates.push_back(dir / rel);
    }
  }
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c, ec)) return c;
  }
  std::string tried;
  for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c.string();
  throw std::runtime_error("cannot find the plotting script tools/plot/report.py (tried " + tried +
                           "); set RG_REPORT_SCRIPT=PATH");
}

// The value of `key` in `[section]` of an INI file (the run's effective config.ini); nullopt when absent.
std::optional<std::string> report_ini_value(const fs::path& file, const std::string& section, const std::string& key) {
  std::ifstream in(file);
  std::string line, current;
  while (std::getline(in, line)) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#' || line[first] == ';') continue;
    line = line.substr(first);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
    if (line.front() == '[' && line.back() == ']') {
      current = line.substr(1, line.size() - 2);
      continue;
    }
    const auto eq = line.find('=');
    if (current != section || eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
    k.erase(k.find_last_not_of(" \t") + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    if (k == key) return v;
  }
  return std::nullopt;
}

// -sum p log p (nats) of the token frequencies of a text dataset's training split.
double unigram_entropy(const std::string& path) {
  const rg::data::SequenceReader reader(path, "train");
  std::vector<int64_t> counts(static_cast<size_t>(std::max<int64_t>(1, reader.info().tokenizer.vocab_size)), 0);
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < reader.size(); ++i) {
    tokens.resize(static_cast<size_t>(reader.length(i)));
    reader.read(i, 0, reader.length(i), tokens.data());
    for (int32_t t : tokens) {
      if (static_cast<size_t>(t) >= counts.size()) counts.resize(static_cast<size_t>(t) + 1, 0);
      ++counts[static_cast<size_t>(t)];
    }
  }
  double total = 0, entropy = 0;
  for (int64_t c : counts) total += static_cast<double>(c);
  for (int64_t c : counts) {
    if (c > 0) entropy -= static_cast<double>(c) / total * std::log(static_cast<double>(c) / total);
  }
  return entropy;
}

struct RunFacts {
  std::string kind;                        // "pretrain" or "sft" from the dataset; empty: the script decides
  std::optional<double> unigram_entropy;   // text datasets
};

// What the run's training dataset (config.ini data.train, relative to the current folder as when it ran)
// says about the run. A dataset that is gone or unreadable only costs the hint, never the report.
RunFacts read_run_facts(const fs::path& run, std::map<std::string, RunFacts>& cache) {
  const auto train = report_ini_value(run / "config.ini", "data", "train");
  if (!train || train->empty()) return {};
  if (const auto it = cache.find(*train); it != cache.end()) return it->second;
  RunFacts facts;
  try {
    const auto info = rg::data::read_dataset_info(*train);
    if (info.kind == rg::data::DatasetKind::kText) facts.kind = "pretrain", facts.unigram_entropy = unigram_entropy(*train);
    if (info.kind == rg::data::DatasetKind::kChat) facts.kind = "sft";
  } catch (const std::exception& e) {
    std::cerr << "rgemma report: " << run.string() << ": dataset " << *train << " not read (" << e.what()
              << "); the kind comes from the metrics\n";
  }
  return cache[*train] = facts;
}

int run_child(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (const int err = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ); err != 0) {
    throw std::runtime_error("cannot run " + args[0] + ": " + std::strerror(err));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(std::string("waiting for the plotting script: ") + std::strerror(errno));
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::cerr << "rgemma report: the plotting script ended by signal " << WTERMSIG(status) << "\n";
  return 1;
}

int run_report(int argc, char** argv) {
  // Run folders are the positional arguments; everything from a "-" on goes to the option parser (an
  // option without "=" takes the next argument as its value).
  std::vector<std::string> runs;
  std::vector<char*> option_args{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.empty() || a[0] != '-') {
      runs.push_back(a);
      continue;
    }
    option_args.push_back(argv[i]);
    if (a != "--help" && a != "-h" && a.find('=') == std::string::npos && i + 1 < argc) option_args.push_back(argv[++i]);
  }
  rg::config::Options options(argv[0],
                              "Plots (PNG) and an index.md summary table from run folders: rgemma report RUN... --output DIR.\n"
                              "RUN: a folder of pretrain, sft, reward, dpo, ppo or grpo (config.ini, metrics.jsonl).\n"
                              "Runs of one kind share each plot. Needs python3 with matplotlib (Debian: python3-matplotlib).");
  std::string output, python = "/usr/bin/python3";
  if (const char* env = std::getenv("RG_PYTHON"); env && *env) python = env;
  options.add("output", &output, "folder for index.md and the PNG files (created)")
      .add("python", &python, "Python interpreter with matplotlib (default /usr/bin/python3, or $RG_PYTHON)");
  options.required("output");
  if (!options.parse(static_cast<int>(option_args.size()), option_args.data())) return 0;
  if (runs.empty()) throw rg::config::ConfigError("no run folders given (usage: rgemma report RUN... --output DIR)");
  for (const auto& r : runs) {
    if (!fs::is_regular_file(fs::path(r) / "metrics.jsonl")) {
      throw rg::config::ConfigError(r + ": no metrics.jsonl (not a run folder of pretrain, sft, reward, dpo, ppo or grpo)");
    }
  }
  if (access(python.c_str(), X_OK) != 0) {
    throw std::runtime_error("no Python interpreter at " + python +
                             " (the plots need python3 with matplotlib: apt-get install python3-matplotlib, or --python PATH)");
  }
  std::vector<std::string> args{python, find_report_script().string(), "--output", output};
  std::map<std::string, RunFacts> cache;
  for (const auto& r : runs) {
    const RunFacts facts = read_run_facts(r, cache);
    if (!facts.kind.empty()) args.push_back("--kind=" + r + "=" + facts.kind);
    if (facts.unigram_entropy) {
      std::ostringstream v;
      v.precision(17);
      v << *facts.unigram_entropy;
      args.push_back("--unigram-entropy=" + r + "=" + v.str());
    }
  }
  args.insert(args.end(), runs.begin(), runs.end());
  return run_child(args);
}

}  // namespace

RG_COMMAND("report", "plots and a summary table (index.md) from run folders", run_report);
