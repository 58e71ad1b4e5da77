// The checks run_training makes before any work, so a run that cannot work stops in seconds with one line
// naming the keys and values (TrainSetupError, exit 2) instead of after hours of training: the batch
// arithmetic (overflow-safe), the dataset against the model (vocabulary, tokenizer, special ids, split sizes),
// and the memory a rank needs, named again (as a one-line std::runtime_error) when an allocation fails.
#pragma once

#include "data/dataset.h"
#include "trainer/trainer.h"

#include <cstdint>
#include <exception>
#include <string>

namespace rg::trainer {

struct BatchShape {
  int64_t rows = 0;    // rows per update over all ranks
  int64_t tokens = 0;  // rows x seq_len
};

// micro_batch x grad_accum x world rows of seq_len tokens. Throws TrainSetupError when a product overflows
// int64, or when requested_rows (train.global_batch; 0 = not set) differs from the product.
BatchShape global_batch_shape(int64_t micro_batch, int64_t grad_accum, int64_t world, int64_t seq_len,
                              int64_t requested_rows);

// data.train against the model: the dataset's vocab_size must equal the model's, its tokenizer must be
// `tokenizer_id` (when not empty), and every special id it records must lie in [0, model vocab) (-1 means
// absent). Throws TrainSetupError naming the file and both values.
void check_dataset_fits_model(const data::DatasetInfo& info, int64_t model_vocab_size, const std::string& tokenizer_id);

// A split must give at least one row: packed, seq_len tokens; unpacked, one document. Throws TrainSetupError
// naming the file, the split and its sizes. The validation split may be empty (no evaluation then).
void check_split_fits_row(const data::DatasetInfo& info, bool validation, int64_t seq_len, bool pack);

// What one rank holds besides activations, in bytes.
struct MemoryEstimate {
  int64_t parameters = 0;
  double weights = 0;    // the model's parameters (bf16 or fp32)
  double gradients = 0;  // this rank's fp32 slice + ZeRO-1: the full flat buffer; ZeRO-2: one bucket
  double optimizer = 0;  // this rank's fp32 slices of the master weights, m and v
  double batch = 0;      // the step's micro-batches on the device and one chunk of fp32 logits (+ gradient)
  double total() const { return weights + gradients + optimizer + batch; }
  // "about 19.2 MiB per rank before activations for 1,234,567 parameters: weights 4.71 MiB + gradients ..."
  std::string describe() const;
};
MemoryEstimate estimate_memory(int64_t parameters, bool bf16, int64_t world, int64_t zero_stage, int64_t micro_batch,
                               int64_t grad_accum, int64_t seq_len, int64_t vocab_size, int64_t chunk_tokens = 2048);

std::string format_bytes(double bytes);  // "512 B", "4.71 MiB", "10.0 GiB"

// std::bad_alloc, or a LibTorch allocator failure (c10::OutOfMemoryError, "not enough memory", "can't
// allocate memory", "out of memory").
bool is_out_of_memory(const std::exception& e);

// Call inside a catch block. Rethrows the exception being handled as one line: an out-of-memory as
// std::runtime_error "out of memory while <doing> (the run needs <memory>): <cause>", any other LibTorch error as
// std::runtime_error "<doing>: <first line, no C++ backtrace>"; every other exception unchanged.
[[noreturn]] void rethrow_one_line(const std::string& doing, const std::string& memory);

}  // namespace rg::trainer
