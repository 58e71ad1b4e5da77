// RG-LRU scan: the fast CPU kernel against the reference loop (values and gradients, float32, bfloat16,
// with document resets and an initial state), and the hand-written backward against central finite
// differences in float64.
#include "model/kernels/rg_lru_scan.h"

#include "tests/float_tolerance.h"
#include "tests/model/kernels/scan_inputs.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg::kernels {
namespace {

using scan_test_inputs::Inputs;
using scan_test_inputs::make_inputs;

TEST(RgLruScan, FastEqualsReferenceForward) {
  for (bool with_h0 : {false, true}) {
    // L = 100 is not a multiple of the kernel's channel block, T = 37 is odd.
    const Inputs in = make_inputs(3, 37, 100, torch::kFloat, with_h0, 1);
    auto [y_ref, h_ref] = scan_forward(in.a, in.x, in.h0, ScanImpl::kReference);
    auto [y_fast, h_fast] = scan_forward(in.a, in.x, in.h0, ScanImpl::kFast);
    // Same float32 operations in the same order, up to FMA contraction: at most one rounding of difference
    // per step, carried through the 37 steps of the recurrence (|a| < 1 does not amplify it).
    const double bound = test::float32_vs_float32(y_ref.abs().max().item<double>(), 37);
    EXPECT_LT((y_fast - y_ref).abs().max().item<double>(), bound);
    EXPECT_LT((h_fast - h_ref).abs().max().item<double>(), bound);
    // h_last is the last step's output, the same float: equal in fact; allclose's defaults (1e-5) are slack.
    EXPECT_TRUE(torch::allclose(h_fast, y_fast.select(1, 36)));
  }
}

TEST(RgLruScan, ReferenceIsTheRecurrence) {
  const Inputs in = make_inputs(2, 9, 4, torch::kDouble, true, 2);
  auto [y, h] = scan_forward(in.a, in.x, in.h0, ScanImpl::kReference);
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t l = 0; l < 4; ++l) {
      double state = in.h0[b][l].item<double>();
      for (int64_t t = 0; t < 9; ++t) {
        state = in.a[b][t][l].item<double>() * state + in.x[b][t][l].item<double>();
        // float64 both ways, 9 steps of |values| ~ a few units: ~9 x 2^-53 x 10 ~ 1e-14; 1e-12 leaves room.
        EXPECT_NEAR(y[b][t][l].item<double>(), state, 1e-12);
      }
    }
  }
}

TEST(RgLruScan, FastEqualsReferenceGradients) {
  for (bool with_h0 : {false, true}) {
    const Inputs in = make_inputs(2, 29, 70, torch::kFloat, with_h0, 3);
    const torch::Tensor dy = torch::randn({2, 29, 70});
    const torch::Tensor dh = torch::randn({2, 70});
    const ScanGrads ref = scan_backward(in.a, in.x, in.h0, dy, dh, ScanImpl::kReference);
    const ScanGrads fast = scan_backward(in.a, in.x, in.h0, dy, dh, ScanImpl::kFast);
    // The reverse scan over 29 steps, then da = dh * h_prev (one more product): 2 chained recurrences of 29.
    for (const auto& [got, want] : {std::pair{fast.da, ref.da}, {fast.dx, ref.dx}, {fast.dh0, ref.dh0}}) {
      EXPECT_LT((got - want).abs().max().item<double>(), test::float32_vs_float32(want.abs().max().item<double>(), 29, 2));
    }
  }
}

TEST(RgLruScan, Bfloat16AccumulatesInFloat32) {
  const Inputs in = make_inputs(2, 300, 64, torch::kBFloat16, false, 4);
  auto [y_fast, h_fast] = scan_forward(in.a, in.x, in.h0, ScanImpl::kFast);
  auto [y_ref, h_ref] = scan_forward(in.a, in.x, in.h0, ScanImpl::kReference);
  EXPECT_EQ(y_fast.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(h_fast.scalar_type(), torch::kFloat);
  // Both hold a float32 state (300 steps: see FastEqualsReferenceForward) and round each output once; FMA
  // contraction in the fast kernel may move a rounding boundary, so allow one bfloat16 ulp (2^-8 relative).
  EXPECT_LT((h_fast - h_ref).abs().max().item<double>(), test::float32_vs_float32(h_ref.abs().max().item<double>(), 300));
  EXPECT_TRUE(torch::allclose(y_fast.to(torch::kFloat), y_ref.to(torch::kFloat), 8e-3, 1e-6));
  // Against a float64 scan of the same (bf16-valued) inputs: the float32 state's 300 steps, then the final
  // rounding of y to bf16 (2^-8 relative, plus 1e-2 absolute for outputs near zero).
  auto [y64, h64] = scan_forward(in.a.to(torch::kDouble), in.x.to(torch::kDouble), {}, ScanImpl::kReference);
  EXPECT_LT((h_fast.to(torch::kDouble) - h64).abs().max().item<double>(),
            test::float32_vs_exact(h64.abs().max().item<double>(), 300));
  EXPECT_TRUE(torch::allclose(y_fast.to(torch::kDouble), y64, 1e-2, 1e-2));
}

// Central differences of L = sum(w_y * y) + sum(w_h * h_last) in float64, for every input element.
TEST(RgLruScan, GradientsMatchFiniteDifferences) {
  for (ScanImpl impl : {ScanImpl::kReference, ScanImpl::kFast}) {
    const Inputs in = make_inputs(2, 6, 3, torch::kDouble, true, 5);
    const torch::Tensor wy = torch::randn({2, 6, 3}, torch::kDouble), wh = torch::randn({2, 3}, torch::kDouble);
    auto loss = [&](const torch::Tensor& a, const torch::Tensor& x, const torch::Tensor& h0) {
      auto [y, h] = scan_forward(a, x, h0, impl);
      return ((y * wy).sum() + (h * wh).sum()).item<double>();
    };
    torch::Tensor a = in.a.clone().requires_grad_(), x = in.x.clone().requires_grad_(),
                  h0 = in.h0.clone().requires_grad_();
    auto [y, h] = rg_lru_scan(a, x, h0, impl);
    ((y * wy).sum() + (h * wh).sum()).backward();
    const double eps = 1e-6;
    for (int which = 0; which < 3; ++which) {
      torch::Tensor base = which == 0 ? in.a : which == 1 ? in.x : in.h0;
      torch::Tensor grad = which == 0 ? a.grad() : which == 1 ? x.grad() : h0.grad();
      torch::Tensor flat = base.flatten();
      for (int64_t i = 0; i < flat.numel(); ++i) {
        torch::Tensor plus = base.clone(), minus = base.clone();
        plus.view(-1)[i] += eps;
        minus.view(-1)[i] -= eps;
        const double fd = which == 0   ? (loss(plus, in.x, in.h0) - loss(minus, in.x, in.h0)) / (2 * eps)
                          : which == 1 ? (loss(in.a, plus, in.h0) - loss(in.a, minus, in.h0)) / (2 * eps)
                                       : (loss(in.a, in.x, plus) - loss(in.a, in.x, minus)) / (2 * eps);
        // The loss is polynomial of low degree in each input: central differences are exact to ~1e-9.
        EXPECT_NEAR(grad.view(-1)[i].item<double>(), fd, 1e-7) << scan_impl_name(impl) << " input " << which << " @" << i;
      }
    }
  }
}

TEST(RgLruScan, ResetCutsTheGradientFlow) {
  // a_t = 0 at t = 3: nothing before t = 3 influences outputs from t = 3 on.
  torch::Tensor a = torch::full({1, 6, 2}, 0.9, torch::kDouble);
  a.select(1, 3).zero_();
  torch::Tensor x = torch::randn({1, 6, 2}, torch::kDouble).requires_grad_();
  auto [y, h] = rg_lru_scan(a, x, {}, ScanImpl::kFast);
  y.narrow(1, 3, 3).sum().backward();
  EXPECT_EQ(x.grad().narrow(1, 0, 3).abs().sum().item<double>(), 0.0);
  EXPECT_GT(x.grad().narrow(1, 3, 3).abs().min().item<double>(), 0.0);
}

TEST(RgLruScan, RejectsMismatchedShapes) {
  EXPECT_THROW(scan_forward(torch::zeros({2, 3, 4}), torch::zeros({2, 3, 5}), {}, ScanImpl::kFast),
               std::invalid_argument);
  EXPECT_THROW(scan_forward(torch::zeros({2, 3, 4}), torch::zeros({2, 3, 4}), torch::zeros({3, 4}), ScanImpl::kFast),
               std::invalid_argument);
}

}  // namespace
}  // namespace rg::kernels
