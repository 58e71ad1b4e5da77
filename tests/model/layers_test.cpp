// model/layers.cpp against the float64 spec (spec_reference.h): MLP, RMSNorm, Conv1D across document starts.
#include "model/griffin.h"

#include "tests/float_tolerance.h"
#include "tests/model/griffin_test_util.h"
#include "tests/model/spec_reference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg {
namespace {

using namespace griffin_test;

TEST(Layers, MlpNormAndConvMatchSpec) {
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const spec::Params p = spec::params_of(*model);
  const torch::Tensor x = torch::randn({3, c.width});
  const torch::Tensor y = model->blocks[1]->mlp_block->forward(x);
  const torch::Tensor n = model->blocks[1]->channel_pre_norm->forward(x);
  for (int64_t t = 0; t < 3; ++t) {
    const torch::Tensor mlp_ref = spec::mlp(p, "layers.1.mlp_block", x[t].to(torch::kDouble), true);
    const torch::Tensor norm_ref = spec::rms_norm(x[t].to(torch::kDouble), p.at("layers.1.channel_pre_norm.weight"), 1e-6);
    EXPECT_LT(max_diff(y[t], mlp_ref), spec_bound(mlp_ref, 2));    // gate/up projection, down projection
    EXPECT_LT(max_diff(n[t], norm_ref), spec_bound(norm_ref, 1));  // the mean of squares
  }
  // Conv1D with two document starts inside the taps' reach.
  const std::vector<int64_t> pos = {0, 1, 2, 0, 1, 0, 1, 2, 3, 4};
  const torch::Tensor u = torch::randn({1, 10, c.lru_width});
  const torch::Tensor pos_t = torch::tensor(pos, torch::kLong).unsqueeze(0);
  const torch::Tensor conv = model->blocks[0]->recurrent->conv_1d->forward(u, document_ids(pos_t));
  const torch::Tensor conv_ref = spec::conv1d(p, "layers.0.temporal_block.conv_1d", u[0].to(torch::kDouble), pos);
  EXPECT_LT(max_diff(conv[0], conv_ref), spec_bound(conv_ref, 1));  // one sum of 4 taps (80 covers it)
}

}  // namespace
}  // namespace rg
