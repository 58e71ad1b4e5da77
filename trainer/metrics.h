// Training metrics: the JSONL file (one object per step, eval lines add val_loss), the console line
// (step, loss, lr, grad norm, tokens/s, MFU, ETA), an eval progress bar, and the MFU arithmetic.
// Only rank 0 writes; nothing here is collective.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <string>

namespace rg::trainer {

struct StepMetrics {
  int64_t step = 0;          // number of updates done, counting this one
  double loss = 0;           // mean training loss over the global batch
  double lr = 0;
  double grad_norm = 0;      // before clipping
  int64_t tokens = 0;        // tokens consumed since the start of training (all ranks)
  double tokens_per_s = 0;   // all ranks, over the last log interval
  double mfu = 0;            // model FLOPs utilisation in [0, 1]
  int64_t skipped_steps = 0; // non-finite steps skipped so far
};

nlohmann::json to_json(const StepMetrics& m);

// Appends one JSON object per line and flushes each line, so a killed run leaves a readable file.
// Opening with resume_step >= 0 first drops lines whose "step" is greater (written after the checkpoint
// being resumed), so the file reads as one uninterrupted run.
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path, int64_t resume_step = -1);
  void write(const StepMetrics& m);
  // {"step", "tokens", "val_loss", "val_ppl"}
  void write_eval(int64_t step, int64_t tokens, double val_loss);
  void write_json(const nlohmann::json& line);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// "step    120/1000 | loss 3.4512 | lr 3.00e-04 | gnorm 0.874 | 12.3k tok/s | mfu 41.2% | eta 1h02m"
// ETA from the mean time per step since start_step (the step the run started or resumed at).
std::string format_step_line(const StepMetrics& m, int64_t total_steps, double elapsed_s, int64_t start_step);
std::string format_duration(double seconds);  // "45s", "12m05s", "3h07m", "2d04h"
std::string format_count(double value);       // 950, 12.3k, 4.56M, 1.20G
// "eval [########............] 10/25"
std::string format_progress_bar(int64_t done, int64_t total, int width = 24);

// Training FLOPs per token, PaLM's convention: 6 per weight (forward 2, backward 4) for the n_params that
// take part in matmuls, plus attention's score and value products, 12 * width * context per attention layer
// (width = heads * head_dim, context = the positions one token attends to: min(seq, window) for local
// attention).
double training_flops_per_token(double n_params, int64_t attention_layers, int64_t attention_width, int64_t context);
// Achieved / peak: flops_per_token * tokens / (seconds * peak_flops). 0 when time or peak is not positive.
double mfu(double flops_per_token, double tokens, double seconds, double peak_flops);

}  // namespace rg::trainer
