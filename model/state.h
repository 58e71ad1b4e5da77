// The sampling state ("cache", docs/architecture.md §9): a fixed-size record per block, so memory does not grow with
// the number of generated tokens. Recurrent blocks keep the last K-1 conv inputs and the float32 LRU state;
// local-attention blocks keep a ring buffer of `window` keys and values (slot = position mod window).
// A global-attention block (the Gemma baseline, window 0) has no bound and keeps a growing cache instead,
// with reserved capacity so that a step appends in place. Steps update the state in place.
#pragma once

#include <torch/types.h>

#include <algorithm>
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
  int64_t length = -1;         // global attention: slots in use, the rest is reserved capacity (-1: all)

  int64_t used() const { return ring || length < 0 ? keys.size(1) : length; }
  // Global attention: room for `more` tokens beyond the slots in use, so that steps append in place
  // (reserved slots hold position -1, so they are never attended to). A no-op for a ring.
  void reserve(int64_t more) {
    if (ring || !keys.defined()) return;
    const int64_t n = used();
    if (keys.size(1) >= n + more) return;
    auto grown = [n, more](const torch::Tensor& t, double fill) {
      std::vector<int64_t> sizes = t.sizes().vec();
      sizes[1] = n + more;
      torch::Tensor out = torch::full(sizes, fill, t.options());
      out.narrow(1, 0, n).copy_(t.narrow(1, 0, n));
      return out;
    };
    keys = grown(keys, 0), values = grown(values, 0), positions = grown(positions, -1);
    length = n;
  }
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
  // Bytes of the slots in use: bytes() less the global attention caches' reserved capacity.
  int64_t used_bytes() const {
    int64_t n = bytes();
    for (const auto& b : blocks) {
      const AttentionState& a = b.attention;
      if (a.ring || !a.keys.defined()) continue;
      const int64_t spare = a.keys.size(1) - a.used();
      n -= spare * (a.keys.numel() / std::max<int64_t>(1, a.keys.size(1))) * static_cast<int64_t>(a.keys.element_size()) * 2;
      n -= spare * a.positions.size(0) * static_cast<int64_t>(a.positions.element_size());
    }
    return n;
  }
  bool empty() const { return blocks.empty(); }

  // A copy that shares no storage with this one (steps update the state in place).
  SamplingState clone() const { return repeat_rows(1); }

  // Every tensor with each row copied g times: row i -> rows i*g .. i*g+g-1 (all tensors are batch-first).
  SamplingState repeat_rows(int64_t g) const {
    auto rep = [g](const torch::Tensor& t) { return t.defined() ? t.repeat_interleave(g, 0) : t; };
    SamplingState out;
    for (const auto& b : blocks) {
      BlockState r;
      r.recurrent = {rep(b.recurrent.conv), rep(b.recurrent.lru)};
      r.attention = {rep(b.attention.keys), rep(b.attention.values), rep(b.attention.positions), b.attention.ring,
                     b.attention.length};
      out.blocks.push_back(std::move(r));
    }
    return out;
  }
};

}  // namespace rg
