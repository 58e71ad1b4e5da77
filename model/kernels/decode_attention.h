// One-token attention over a sampling cache (docs/architecture.md §5 and 9): each row's query heads attend to
// the keys in its cache (a local-attention ring of `window` slots, or the Gemma baseline's growing global
// cache) and to the row's own new key, in one pass that reads every cached key and value once.
//
// Why a kernel: op by op, a step builds the (B, H, S) scores, a mask, a float copy, the softmax and a second
// batched matmul, ~10 ATen calls each allocating and re-reading (B, H, S) values. With this kernel the Gemma
// baseline's whole decode step over the 2k-8k stretch of Figure 1 (batch 8, 2-core AMD EPYC) ran 2.6x+
// faster (under 54 tokens/s op by op, 138-152 with it), so that transformer's speed had been measuring
// ATen's overhead more than attention.
//
// How: the slots are cut into chunks; one task per (row, key head, chunk) computes the scores of that
// chunk for the key head's query heads, their maximum, sum of exponentials and exponential-weighted sum of
// values (the partial softmax of "flash decoding", Dao et al. 2023); the partials and the new key are then
// merged exactly: out = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c. Chunks give a batch of one row work
// for every core.
//
//   at::Tensor out = rg::kernels::attend_one_token(q, k, v, s.keys, s.values, s.positions, S, p, window);
#pragma once

#include <ATen/ATen.h>

namespace rg::kernels {

// q (B, H, hd), k_new and v_new (B, G, hd) with H a multiple of G, all float32 contiguous; the cache keys
// and values (B, C, G, hd) float32 contiguous, of which the first S slots are read, and positions (B, C)
// int64, the segment position each slot holds (-1: empty); p (B) int64, the new token's position. Slot s of
// row b counts when positions[b, s] >= 0 and, for window > 0, p[b] - positions[b, s] <= window; the new key
// always counts. Scores are q.k / sqrt(hd), the softmax is over the counted slots and the new key, computed
// in float32. Returns (B, H, hd). Grad mode must be off (inference only).
at::Tensor attend_one_token(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new,
                            const at::Tensor& keys, const at::Tensor& values, const at::Tensor& positions,
                            int64_t S, const at::Tensor& p, int64_t window);

// Whether attend_one_token takes these tensors: CPU, float32, a contiguous cache, grad mode off.
bool attend_one_token_applies(const at::Tensor& q, const at::Tensor& keys);

}  // namespace rg::kernels
