// Metrics file, console formatting and MFU.
#include "trainer/metrics.h"

#include "model/io/atomic_write.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace rg::trainer {

nlohmann::json to_json(const StepMetrics& m) {
  return {{"step", m.step},         {"loss", m.loss},   {"lr", m.lr},
          {"grad_norm", m.grad_norm}, {"tokens", m.tokens}, {"tokens_per_s", m.tokens_per_s},
          {"mfu", m.mfu},           {"skipped_steps", m.skipped_steps}};
}

MetricsWriter::MetricsWriter(const std::string& path, int64_t resume_step) : path_(path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  if (resume_step >= 0 && std::filesystem::exists(p)) {
    // Keep the lines up to the resumed step; rewrite through a temporary file so a crash here cannot
    // lose the history.
    std::ifstream in(path);
    std::vector<std::string> keep;
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) continue;  // a torn last line from a killed run
      if (j.value("step", int64_t{0}) <= resume_step) keep.push_back(line);
    }
    std::string text;
    for (const auto& line : keep) text += line + '\n';
    io::write_text_atomically(path, text);
  }
  out_.open(path, resume_step >= 0 ? std::ios::app : std::ios::trunc);
  if (!out_) throw std::runtime_error("metrics: cannot open " + path + " for writing");
}

void MetricsWriter::write_json(const nlohmann::json& line) {
  out_ << line.dump() << '\n';
  out_.flush();
  if (!out_) throw std::runtime_error("metrics: write to " + path_ + " failed");
}

void MetricsWriter::write(const StepMetrics& m) { write_json(to_json(m)); }

void MetricsWriter::write_eval(int64_t step, int64_t tokens, double val_loss) {
  write_json({{"step", step}, {"tokens", tokens}, {"val_loss", val_loss}, {"val_ppl", std::exp(val_loss)}});
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

std::string format_count(double v) {
  char buf[32];
  const char* units[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (std::abs(v) >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, v < 10 ? "%.2f%s" : v < 100 ? "%.1f%s" : "%.0f%s", v, units[u]);
  }
  return buf;
}

std::string format_step_line(const StepMetrics& m, int64_t total_steps, double elapsed_s, int64_t start_step) {
  const int64_t done = m.step - start_step;
  const double eta = done > 0 ? elapsed_s / static_cast<double>(done) * static_cast<double>(total_steps - m.step) : NAN;
  const int width = static_cast<int>(std::to_string(total_steps).size());
  char buf[256];
  std::snprintf(buf, sizeof buf, "step %*lld/%lld | loss %.4f | lr %.2e | gnorm %.3f | %s tok/s | mfu %.1f%% | eta %s",
                width, static_cast<long long>(m.step), static_cast<long long>(total_steps), m.loss, m.lr, m.grad_norm,
                format_count(m.tokens_per_s).c_str(), 100.0 * m.mfu, format_duration(eta).c_str());
  std::string line = buf;
  if (m.skipped_steps > 0) line += " | skipped " + std::to_string(m.skipped_steps);
  return line;
}

std::string format_progress_bar(int64_t done, int64_t total, int width) {
  const double frac = total > 0 ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total)) : 1.0;
  const int filled = static_cast<int>(frac * width);
  return "eval [" + std::string(filled, '#') + std::string(width - filled, '.') + "] " + std::to_string(done) + "/" +
         std::to_string(total);
}

double training_flops_per_token(double n_params, int64_t attention_layers, int64_t attention_width, int64_t context) {
  return 6.0 * n_params + 12.0 * static_cast<double>(attention_layers) * static_cast<double>(attention_width) *
                              static_cast<double>(context);
}

double mfu(double flops_per_token, double tokens, double seconds, double peak_flops) {
  if (!(seconds > 0) || !(peak_flops > 0)) return 0.0;
  return flops_per_token * tokens / (seconds * peak_flops);
}

}  // namespace rg::trainer
