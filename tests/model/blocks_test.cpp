// model/blocks.cpp: the recurrent and attention blocks against the float64 spec, chunked local attention vs naive.
#include "model/griffin.h"

#include "tests/float_tolerance.h"
#include "tests/model/griffin_test_util.h"
#include "tests/model/spec_reference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg {
namespace {

using namespace griffin_test;

TEST(Layers, RecurrentBlockMatchesSpec) {
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const spec::Params p = spec::params_of(*model);
  const Inputs in = make_inputs(2, 30, c.vocab_size);
  const torch::Tensor x = torch::randn({2, 30, c.width});
  const torch::Tensor y = model->blocks[0]->recurrent->forward(x, in.pos);
  for (int64_t b = 0; b < 2; ++b) {
    const torch::Tensor ref = spec::recurrent(p, "layers.0.temporal_block", x[b].to(torch::kDouble), row(in.pos, b));
    // Input projections, conv (4 taps), block-diagonal gates, the scan over 30 steps, output projection.
    EXPECT_LT(max_diff(y[b], ref), spec_bound(ref, 5)) << "row " << b;
  }
}

TEST(Layers, AttentionBlockMatchesSpec) {
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const spec::Params p = spec::params_of(*model);
  const Inputs in = make_inputs(2, 30, c.vocab_size);
  const torch::Tensor x = torch::randn({2, 30, c.width});
  const torch::Tensor y = model->blocks[2]->attention->forward(x, in.pos);
  for (int64_t b = 0; b < 2; ++b) {
    const torch::Tensor ref = spec::attention(p, "layers.2.temporal_block", c, x[b].to(torch::kDouble), row(in.pos, b));
    // q/k/v projections, scores, softmax-weighted values, output projection.
    EXPECT_LT(max_diff(y[b], ref), spec_bound(ref, 4)) << "row " << b;
  }
}

TEST(LocalAttention, ChunkedEqualsNaiveMaskedAttention) {
  torch::manual_seed(3);
  for (int64_t window : {0, 5, 64, 100}) {
    for (int64_t T : {1, 7, 130, 300}) {
      const torch::Tensor q = torch::randn({2, T, 4, 8}), k = torch::randn({2, T, 2, 8}), v = torch::randn({2, T, 2, 8});
      torch::Tensor pos = torch::arange(T, torch::kLong).repeat({2, 1});
      if (T > 50) pos[1].narrow(0, 50, T - 50).copy_(torch::arange(T - 50, torch::kLong));
      const torch::Tensor doc = document_ids(pos);
      const torch::Tensor naive = naive_local_attention(q, k, v, doc, window);
      // Scores (8 terms) then the softmax-weighted sum over up to T keys, in two float32 orders.
      EXPECT_LT(max_diff(local_attention(q, k, v, doc, window), naive), test::float32_vs_float32(max_abs(naive), T, 2))
          << "window " << window << " T " << T;
    }
  }
}

TEST(LocalAttention, GradientsEqualNaive) {
  torch::manual_seed(4);
  const torch::Tensor q0 = torch::randn({1, 150, 2, 8}), k0 = torch::randn({1, 150, 1, 8}), v0 = torch::randn({1, 150, 1, 8});
  const torch::Tensor doc = document_ids(torch::arange(150, torch::kLong).unsqueeze(0));
  std::vector<torch::Tensor> grads[2];
  for (int naive = 0; naive < 2; ++naive) {
    torch::Tensor q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
    const torch::Tensor out = naive ? naive_local_attention(q, k, v, doc, 20) : local_attention(q, k, v, doc, 20);
    (out * torch::linspace(-1, 1, out.numel()).view(out.sizes())).sum().backward();
    grads[naive] = {q.grad(), k.grad(), v.grad()};
  }
  // Forward (2 sums over up to 150 keys) and backward (2 more), relative to each gradient's largest entry.
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_diff(grads[0][i], grads[1][i]), test::float32_vs_float32(max_abs(grads[1][i]), 150, 4));
}

}  // namespace
}  // namespace rg
