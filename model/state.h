// The sampling state ("cache", spec section 9): a fixed-size record per block, so memory does not grow with
// the number of generated tokens. Recurrent blocks keep the last K-1 conv inputs and the float32 LRU state;
// local-attention blocks keep a ring buffer of `window` keys and values (slot = position mod window).
// A global-attention block (the Gemma baseline, window 0) has no bound and keeps a growing cache instead.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace rg {

struct RecurrentState {
  torch::Tensor conv;  // (B, K-1, L) last conv inputs u, oldest first, activation dtype
  torch::Tensor lru;   // (B, L) float32 h_T
};

struct AttentionState {
  torch::Tensor keys, values;  // (B, S, G, hd) post-RoPE keys; S = w ring slots, or growing if global
  torch::Tensor positions;     // (B, S) int64 segment position held by each slot, -1 when empty. A ring slot
                               // holds position p at p mod w; this also marks which slots belong to the
                               // current document, so left padding and document starts stay exact.
  bool ring = true;            // false: global attention, one slot appended per step
};

struct BlockState {
  RecurrentState recurrent;  // set for recurrent blocks
  AttentionState attention;  // set for attention blocks
};

struct SamplingState {
  std::vector<BlockState> blocks;  // one per residual block

  // Bytes held by every tensor of the state.
  int64_t bytes() const {
    int64_t n = 0;
    auto add = [&n](const torch::Tensor& t) {
      if (t.defined()) n += t.numel() * static_cast<int64_t>(t.element_size());
    };
    for (const auto& b : blocks) {
      add(b.recurrent.conv), add(b.recurrent.lru);
      add(b.attention.keys), add(b.attention.values), add(b.attention.positions);
    }
    return n;
  }
  bool empty() const { return blocks.empty(); }
};

}  // namespace rg
