// attend_one_token (model/kernels/decode_attention.h) against the definition computed in float64 slot by
// slot: caches longer than one chunk and not a multiple of it, empty slots (-1), whole chunks empty, the
// window's edge, multi-query and grouped heads, a batch of one, and an empty cache (the new key alone).
#include "model/kernels/decode_attention.h"
#include "model/kernels/vec_exp_tanh.h"

#include "tests/float_tolerance.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <string>

namespace rg::kernels {
namespace {

// softmax over the counted slots and the new key of q.k / sqrt(hd), times the values, in float64.
torch::Tensor attend_reference(const torch::Tensor& q, const torch::Tensor& k_new, const torch::Tensor& v_new,
                               const torch::Tensor& keys, const torch::Tensor& values, const torch::Tensor& positions,
                               int64_t S, const torch::Tensor& p, int64_t window) {
  const int64_t B = q.size(0), H = q.size(1), hd = q.size(2), G = keys.size(2), nq = H / G;
  const auto q64 = q.to(torch::kDouble), kn = k_new.to(torch::kDouble), vn = v_new.to(torch::kDouble);
  const auto k64 = keys.to(torch::kDouble), v64 = values.to(torch::kDouble);
  torch::Tensor out = torch::zeros({B, H, hd}, torch::kDouble);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / nq;
      std::vector<torch::Tensor> ks = {kn[b][g]}, vs = {vn[b][g]};
      for (int64_t s = 0; s < S; ++s) {
        const int64_t at = positions[b][s].item<int64_t>();
        if (at < 0 || (window > 0 && p[b].item<int64_t>() - at > window)) continue;
        ks.push_back(k64[b][s][g]), vs.push_back(v64[b][s][g]);
      }
      const torch::Tensor scores = torch::stack(ks).matmul(q64[b][h]) / std::sqrt(static_cast<double>(hd));
      out[b][h] = torch::softmax(scores, 0).matmul(torch::stack(vs));
    }
  }
  return out;
}

struct AttendCase {
  int64_t B, H, G, hd, C, S, window;
};

TEST(DecodeAttention, MatchesTheFloat64Definition) {
  torch::NoGradGuard no_grad;
  // C > S: the reserved capacity past S must not be read. 700 slots: three chunks of 256, the last partial.
  const std::vector<AttendCase> cases = {
      {3, 6, 1, 64, 760, 700, 0},    // global cache, multi-query, three chunks
      {3, 6, 2, 12, 760, 700, 300},  // grouped heads, a window cutting through the chunks
      {1, 12, 1, 64, 600, 600, 0},   // a batch of one (the chunks are the parallelism)
      {2, 4, 1, 32, 8, 8, 8},        // a ring of eight slots, the oldest at the window's edge
      {2, 4, 4, 16, 5, 0, 0},        // an empty cache: the new key alone
  };
  torch::manual_seed(5);
  for (const AttendCase& c : cases) {
    const torch::Tensor q = torch::randn({c.B, c.H, c.hd}) * 2, k_new = torch::randn({c.B, c.G, c.hd});
    const torch::Tensor v_new = torch::randn({c.B, c.G, c.hd});
    const torch::Tensor keys = torch::randn({c.B, c.C, c.G, c.hd}), values = torch::randn({c.B, c.C, c.G, c.hd});
    // Slot s holds position s, except: row 0 has empty slots scattered, and slots 256-511 all empty (a whole
    // chunk with nothing to count); the rows' current positions differ.
    torch::Tensor positions = torch::arange(c.C, torch::kLong).repeat({c.B, 1});
    positions[0].index_put_({torch::randperm(c.C).narrow(0, 0, c.C / 3)}, -1);
    if (c.C > 512) positions[0].narrow(0, 256, 256).fill_(-1);
    const torch::Tensor p = c.S + torch::arange(c.B, torch::kLong) * 7;
    const torch::Tensor got = attend_one_token(q, k_new, v_new, keys, values, positions, c.S, p, c.window);
    const torch::Tensor want = attend_reference(q, k_new, v_new, keys, values, positions, c.S, p, c.window);
    // Bound. A score q.k / sqrt(hd) sums hd float32 products: error delta <= hd u sum|q_j k_j| / sqrt(hd)
    // (float32_vs_exact with the largest |q| |k| for every product). The weights e^(s - m) / l then move by
    // at most 2 delta relative (each score's error and the normaliser's), plus the exponential's few ulp
    // (4 u) and the float32 sums of l and of the weighted values over at most S + 1 terms ((S + 1) u each,
    // merged in float64). The output, a convex mix of values, moves by that relative error times max|v|.
    const double u = test::kFloat32Roundoff;
    const double qk = q.abs().max().item<double>() * std::max(keys.abs().max().item<double>(),
                                                               k_new.abs().max().item<double>());
    const double delta = test::float32_vs_exact(qk * std::sqrt(static_cast<double>(c.hd)), c.hd);
    const double vmax = std::max(values.abs().max().item<double>(), v_new.abs().max().item<double>());
    const double bound = (2 * delta + 4 * u + 2 * static_cast<double>(c.S + 1) * u) * vmax;
    const double diff = (got.to(torch::kDouble) - want).abs().max().item<double>();
    EXPECT_LT(diff, bound) << "B " << c.B << " H " << c.H << " G " << c.G << " hd " << c.hd << " S " << c.S
                           << " window " << c.window;
  }
}

// The softmax's exponential (vec::exp_nonpositive, shared with the sampler) against std::exp in double over
// its whole domain, every 2^-10 from -90 to 0 (the reduced argument's edges +-ln2/2 included) and -inf.
// Bound: 3u relative, u = 2^-24, as derived in vec_exp_tanh.h; a wrong coefficient of the series shows from
// 1e-5 relative up. Below -87 the result is 0 and exp itself is below 1.7e-38.
TEST(DecodeAttention, ExpMatchesStdExp) {
  using vec::f32x8;
  double worst = 0;
  for (int64_t i = -90 * 1024; i <= 0; i += 8) {
    f32x8 x;
    for (int lane = 0; lane < 8; ++lane) x[lane] = static_cast<float>(i + lane) / 1024.0f;
    if (i == -90 * 1024) x[0] = -std::numeric_limits<float>::infinity();
    const f32x8 y = vec::exp_nonpositive(x);
    for (int lane = 0; lane < 8; ++lane) {
      const double want = std::exp(static_cast<double>(x[lane]));
      if (x[lane] < -87.0f) {
        ASSERT_EQ(y[lane], 0.0f) << x[lane];
        ASSERT_LT(want, 1.7e-38);
        continue;
      }
      const double rel = std::abs(y[lane] - want) / want;
      worst = std::max(worst, rel);
      ASSERT_LT(rel, 3.0 * test::kFloat32Roundoff) << "x " << x[lane];
    }
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
}

TEST(DecodeAttention, RefusesWhatItDoesNotCompute) {
  torch::NoGradGuard no_grad;
  const torch::Tensor q = torch::randn({1, 2, 8}), k = torch::randn({1, 1, 8});
  const torch::Tensor keys = torch::randn({1, 4, 1, 8}), pos = torch::arange(4, torch::kLong).view({1, 4});
  const torch::Tensor p = torch::tensor({4}, torch::kLong);
  EXPECT_THROW(attend_one_token(q, k, k, keys, keys, pos, 5, p, 0), std::invalid_argument);  // S > capacity
  EXPECT_THROW(attend_one_token(torch::randn({1, 3, 8}), k, k, torch::randn({1, 4, 2, 8}), torch::randn({1, 4, 2, 8}),
                                pos, 4, p, 0),
               std::invalid_argument);  // 3 query heads over 2 key heads
  EXPECT_FALSE(attend_one_token_applies(q.to(torch::kDouble), keys));
}

}  // namespace
}  // namespace rg::kernels
