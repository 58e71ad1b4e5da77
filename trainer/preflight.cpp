// Pre-flight checks of a training run (batch arithmetic, dataset vs model, split sizes), the per-rank
// memory estimate, and the one-line form of allocation and LibTorch errors.
#include "trainer/preflight.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdio>
#include <new>
#include <stdexcept>
#include <typeinfo>
#include <utility>

namespace rg::trainer {
namespace {

std::string as_text(int64_t v) { return std::to_string(v); }

std::string grouped(int64_t n) {  // 2682862080 -> "2,682,862,080"
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && digits[i - 1] != '-' && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

BatchShape global_batch_shape(int64_t micro_batch, int64_t grad_accum, int64_t world, int64_t seq_len,
                              int64_t requested_rows) {
  const std::string product = "data.micro_batch (" + as_text(micro_batch) + ") x train.grad_accum (" +
                              as_text(grad_accum) + ") x ranks (" + as_text(world) + ")";
  BatchShape b;
  int64_t per_rank = 0;
  if (__builtin_mul_overflow(micro_batch, grad_accum, &per_rank) || __builtin_mul_overflow(per_rank, world, &b.rows)) {
    throw TrainSetupError("train.global_batch: " + product +
                          " overflows a 64-bit count of rows; lower data.micro_batch or train.grad_accum");
  }
  if (__builtin_mul_overflow(b.rows, seq_len, &b.tokens)) {
    throw TrainSetupError("train.global_batch: " + product + " = " + as_text(b.rows) + " rows of data.seq_len (" +
                          as_text(seq_len) + ") tokens overflows a 64-bit count of tokens per step; lower data.micro_batch, "
                          "train.grad_accum or data.seq_len");
  }
  if (requested_rows > 0 && requested_rows != b.rows) {
    throw TrainSetupError("train.global_batch: " + as_text(requested_rows) + " rows requested, but " + product + " = " +
                          as_text(b.rows) + "; change train.grad_accum or data.micro_batch so the product matches");
  }
  return b;
}

void check_dataset_fits_model(const data::DatasetInfo& info, int64_t model_vocab_size, const std::string& tokenizer_id) {
  try {
    data::check_compatible(info, model_vocab_size, tokenizer_id);
  } catch (const data::DataError& e) {
    throw TrainSetupError(std::string("data.train: ") + e.what());
  }
  const data::SpecialIds& s = info.tokenizer.special;
  const std::pair<const char*, int32_t> ids[] = {{"pad_id", s.pad}, {"eos_id", s.eos}, {"bos_id", s.bos},
                                                 {"unk_id", s.unk}, {"start_of_turn_id", s.start_of_turn},
                                                 {"end_of_turn_id", s.end_of_turn}};
  for (const auto& [name, id] : ids) {
    if (id < -1 || id >= model_vocab_size) {
      throw TrainSetupError("data.train: " + info.path + ": attribute " + name + " = " + as_text(id) +
                            " is outside the model's vocabulary [0, " + as_text(model_vocab_size) +
                            ") (-1 = none); the file is damaged or was written for another tokenizer");
    }
  }
}

void check_split_fits_row(const data::DatasetInfo& info, bool validation, int64_t seq_len, bool pack) {
  const data::SplitCounts& split = validation ? info.validation : info.train;
  if (validation && split.sequences == 0) return;  // no validation split: nothing is evaluated
  const bool fits = pack ? split.tokens >= seq_len : split.sequences > 0;
  if (fits) return;
  const std::string name = validation ? "validation" : "train";
  std::string fix = pack ? "lower data.seq_len" : "add examples";
  fix += validation ? " or prepare the dataset with a larger --validation fraction" : " or prepare more data";
  throw TrainSetupError("data.train: " + info.path + ": the " + name + " split has " + as_text(split.sequences) +
                        " sequences and " + as_text(split.tokens) + " tokens, less than one row of data.seq_len = " +
                        as_text(seq_len) + " tokens" + (pack ? "" : " (data.pack = false: one sequence per row)") +
                        "; " + fix);
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (bytes >= 1024 && u < 6) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : bytes < 100 ? "%.3g %s" : "%.0f %s", bytes, units[u]);
  return buf;
}

MemoryEstimate estimate_memory(int64_t parameters, bool bf16, int64_t world, int64_t zero_stage, int64_t micro_batch,
                               int64_t grad_accum, int64_t seq_len, int64_t vocab_size, int64_t chunk_tokens) {
  // Doubles throughout: the point is to name sizes that do not fit, which may not fit in int64 either.
  MemoryEstimate m;
  m.parameters = parameters;
  const double n = static_cast<double>(parameters), shard = n / static_cast<double>(world);
  const double bucket = 4.0 * (1 << 23) * static_cast<double>(world);  // ZeroConfig::bucket_numel per rank, fp32
  // As ZeroOptimizer allocates them: the flat parameters; the fp32 gradient slice plus, at stage 1, the flat
  // gradient buffer in the parameter dtype (stage 2: one reduce-scatter bucket instead); master, m and v slices.
  m.weights = n * (bf16 ? 2 : 4);
  m.gradients = 4 * shard + (zero_stage >= 2 ? bucket : n * (bf16 ? 2 : 4));
  m.optimizer = 3 * 4 * shard;
  const double rows_tokens = static_cast<double>(micro_batch) * static_cast<double>(seq_len);
  const double chunk = std::min(static_cast<double>(chunk_tokens), rows_tokens);
  // tokens, targets, segment_pos int64 and the float mask per micro-batch; logits and their gradient.
  m.batch = rows_tokens * static_cast<double>(grad_accum) * (3 * 8 + 4) + 2 * chunk * static_cast<double>(vocab_size) * 4;
  return m;
}

std::string MemoryEstimate::describe() const {
  return "about " + format_bytes(total()) + " per rank before activations for " + grouped(parameters) +
         " parameters: weights " + format_bytes(weights) + " + gradients " + format_bytes(gradients) +
         " + optimizer state " + format_bytes(optimizer) + " + batch and logits " + format_bytes(batch);
}

bool is_out_of_memory(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e) || dynamic_cast<const c10::OutOfMemoryError*>(&e)) return true;
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  const std::string what = c10_error ? c10_error->what_without_backtrace() : e.what();
  // Some LibTorch builds (Debian's) throw TORCH_CHECK failures as plain std::runtime_error: there only the
  // allocators' own wording counts, so that no other error that mentions memory is taken for one.
  if (!c10_error && typeid(e) != typeid(std::runtime_error)) return false;
  for (const char* sign : {"DefaultCPUAllocator", "CUDA out of memory", "not enough memory", "can't allocate memory",
                           "out of memory"}) {
    if (what.find(sign) != std::string::npos) return true;
  }
  return false;
}

void rethrow_one_line(const std::string& doing, const std::string& memory) {
  try {
    throw;
  } catch (const std::exception& e) {
    const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
    const std::string cause = first_line(c10_error ? c10_error->what_without_backtrace() : e.what());
    if (is_out_of_memory(e)) {
      throw std::runtime_error("out of memory while " + doing + " (the run needs " + memory + "): " +
                               (cause.empty() || cause == "std::bad_alloc" ? "allocation failed" : cause));
    }
    // A LibTorch error: c10::Error, or a plain std::runtime_error from builds that throw TORCH_CHECK as one.
    const bool multi_line = std::string(e.what()).find('\n') != std::string::npos;
    if (c10_error || (typeid(e) == typeid(std::runtime_error) && multi_line)) {
      throw std::runtime_error(doing + ": " + cause);
    }
    throw;
  }
}

}  // namespace rg::trainer
