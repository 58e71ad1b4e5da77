// The sampling state ("cache", docs/architecture.md §9): a fixed-size record per block, so memory does not grow with
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

  // Every tensor with each row copied g times: row i -> rows i*g .. i*g+g-1 (all tensors are batch-first).
  SamplingState repeat_rows(int64_t g) const {
    auto rep = [g](const torch::Tensor& t) { return t.defined() ? t.repeat_interleave(g, 0) : t; };
    SamplingState out;
    for (const auto& b : blocks) {
      BlockState r;
      r.recurrent = {rep(b.recurrent.conv), rep(b.recurrent.lru)};
      r.attention = {rep(b.attention.keys), rep(b.attention.values), rep(b.attention.positions), b.attention.ring};
      out.blocks.push_back(std::move(r));
    }
    return out;
  }
};

}  // namespace rg
