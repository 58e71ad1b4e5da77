// The largest ModelConfig accepted: ModelConfig::validate() enforces these and configs/model_options.cpp
// declares them as the [model] options' ranges, so `rgemma CMD --help` documents them. A separate header
// from config.h so that changing a limit rebuilds two files, not the tree.
#pragma once

#include <cstdint>

namespace rg::limits {

// Each bound is far above any published model (RecurrentGemma-9B: V 256000, W 4096, depth 38, window
// 2048) and low enough that no product the code forms from them overflows int64 (see kMaxParameters).
constexpr int64_t kMaxVocabSize = int64_t{1} << 24;        // 16,777,216: token ids stay exact in float32
constexpr int64_t kMaxWidth = int64_t{1} << 16;            // W, and L (lru_width)
constexpr int64_t kMaxDepth = 1024;
constexpr int64_t kMaxHeads = 1024;                        // num_heads and num_kv_heads
constexpr int64_t kMaxHeadDim = 4096;
constexpr int64_t kMaxMlpHidden = int64_t{1} << 20;
constexpr int64_t kMaxConvWidth = 1024;
// The sampling state keeps `window` keys and values per attention block: 2^20 of them at head_dim 256 is
// already 2 GiB per block in float32, so a larger window is a typo, not a model.
constexpr int64_t kMaxAttentionWindow = int64_t{1} << 20;
// 2^42 = 4.4e12 parameters: 8 TiB of bfloat16 weights, beyond any single training run this code targets;
// with the limits above, per-block counts stay below 2^50, so count_parameters() cannot overflow before
// this check sees the total (it also checks each product, for configs built outside the options).
constexpr int64_t kMaxParameters = int64_t{1} << 42;

constexpr double kMaxLogitsSoftCap = 1e6;  // Gemma uses 30; above ~1e6 the cap is a no-op in float32
constexpr double kMaxRopeBase = 1e12;      // long-context models use up to ~1e7
constexpr double kMaxNormEps = 1.0;        // an epsilon comparable to the mean square swamps the norm

}  // namespace rg::limits
