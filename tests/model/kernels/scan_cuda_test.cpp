// RG-LRU scan on CUDA against the CPU reference loop (ScanImpl::kReference on CPU copies): forward and
// backward in float32, float64, bfloat16 and half, with and without h0, with document resets (zeros in a),
// odd T and L not a multiple of the kernel's block; and the autograd op's gradients on CUDA against CPU.
// Label gpu: every test skips itself when no CUDA device is present.
#include "model/kernels/rg_lru_scan.h"

#include "tests/model/kernels/scan_inputs.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace rg::kernels {
namespace {

#define RG_REQUIRE_CUDA()                                                       \
  do {                                                                          \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device present"; \
  } while (0)

using scan_test_inputs::Inputs;
using scan_test_inputs::make_inputs;

torch::Tensor to_cuda(const torch::Tensor& t) { return t.defined() ? t.to(torch::kCUDA) : t; }

// Same dtype, same shape, close elementwise; compared in float64 on the CPU.
void expect_close(const torch::Tensor& got, const torch::Tensor& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_TRUE(got.is_cuda()) << what;
  ASSERT_EQ(got.scalar_type(), want.scalar_type()) << what;
  ASSERT_TRUE(got.sizes().equals(want.sizes())) << what << ": " << got.sizes() << " vs " << want.sizes();
  const torch::Tensor g = got.cpu().to(torch::kDouble), w = want.cpu().to(torch::kDouble);
  EXPECT_TRUE(torch::allclose(g, w, rtol, atol))
      << what << ": max |diff| " << (g - w).abs().max().item<double>() << " (rtol " << rtol << ", atol " << atol << ")";
}

// Tolerances on values stored in the input dtype. The kernel performs the reference's operations in the
// same order with separately rounded multiply and add (no FMA) and rounds to nearest even on store, so the
// results are expected to be identical; the slack allows one unit in the last place of the stored dtype
// (float32 ~1.2e-7 relative, half ~1e-3, bfloat16 ~7.8e-3) should a compiler ever contract or reorder.
struct Tol {
  double rtol, atol;
};
Tol stored_tol(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kDouble: return {1e-12, 1e-12};
    case torch::kFloat: return {1e-6, 1e-6};
    case torch::kHalf: return {2e-3, 2e-3};
    default: return {1e-2, 1e-2};  // bfloat16
  }
}
// The state and dh0 stay in the float32 (float64) accumulator whatever the input dtype.
Tol acc_tol(torch::Dtype dtype) { return dtype == torch::kDouble ? Tol{1e-12, 1e-12} : Tol{1e-6, 1e-6}; }

// (B, T, L): T odd and not a multiple of the kernel's 8-step unroll, shorter than one unroll, and an exact
// multiple; L below, not a multiple of, and exactly the 64-thread block (a warp then straddles two batches).
const std::vector<std::tuple<int64_t, int64_t, int64_t>> kShapes = {{3, 37, 100}, {2, 5, 67}, {4, 16, 64}, {1, 1, 3}};
const std::vector<torch::Dtype> kDtypes = {torch::kFloat, torch::kDouble, torch::kBFloat16, torch::kHalf};

TEST(RgLruScanCuda, AvailableWhereverCudaIs) {
  // A CUDA device must never silently fall back to a build without the kernel.
  RG_REQUIRE_CUDA();
  EXPECT_TRUE(cuda_scan_available());
}

TEST(RgLruScanCuda, ForwardEqualsReference) {
  RG_REQUIRE_CUDA();
  uint64_t seed = 10;
  for (const auto& [B, T, L] : kShapes) {
    for (const auto dtype : kDtypes) {
      for (bool with_h0 : {false, true}) {
        const std::string what = "forward " + std::string(c10::toString(dtype)) + " B" + std::to_string(B) + " T" +
                                 std::to_string(T) + " L" + std::to_string(L) + (with_h0 ? " h0" : "");
        const Inputs in = make_inputs(B, T, L, dtype, with_h0, ++seed);
        auto [y_ref, h_ref] = scan_forward(in.a, in.x, in.h0, ScanImpl::kReference);
        auto [y, h] = scan_forward(to_cuda(in.a), to_cuda(in.x), to_cuda(in.h0), ScanImpl::kCuda);
        const Tol ts = stored_tol(dtype), ta = acc_tol(dtype);
        expect_close(y, y_ref, ts.rtol, ts.atol, what + " y");
        expect_close(h, h_ref, ta.rtol, ta.atol, what + " h_last");
      }
    }
  }
}

TEST(RgLruScanCuda, BackwardEqualsReference) {
  RG_REQUIRE_CUDA();
  uint64_t seed = 100;
  for (const auto& [B, T, L] : kShapes) {
    for (const auto dtype : kDtypes) {
      for (bool with_h0 : {false, true}) {
        // Both cotangents, only dy (h_last unused), only dh_last (y unused): the kernel takes null for either.
        for (int which = 0; which < 3; ++which) {
          const std::string what = "backward " + std::string(c10::toString(dtype)) + " B" + std::to_string(B) +
                                   " T" + std::to_string(T) + " L" + std::to_string(L) + (with_h0 ? " h0" : "") +
                                   " cotangents " + std::to_string(which);
          const Inputs in = make_inputs(B, T, L, dtype, with_h0, ++seed);
          const auto acc = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
          const torch::Tensor dy = which != 2 ? torch::randn({B, T, L}, torch::kDouble).to(dtype) : torch::Tensor();
          const torch::Tensor dh = which != 1 ? torch::randn({B, L}, torch::kDouble).to(acc) : torch::Tensor();
          const ScanGrads ref = scan_backward(in.a, in.x, in.h0, dy, dh, ScanImpl::kReference);
          const ScanGrads got = scan_backward(to_cuda(in.a), to_cuda(in.x), to_cuda(in.h0), to_cuda(dy), to_cuda(dh),
                                              ScanImpl::kCuda);
          const Tol ts = stored_tol(dtype), ta = acc_tol(dtype);
          expect_close(got.da, ref.da, ts.rtol, ts.atol, what + " da");
          expect_close(got.dx, ref.dx, ts.rtol, ts.atol, what + " dx");
          expect_close(got.dh0, ref.dh0, ta.rtol, ta.atol, what + " dh0");
        }
      }
    }
  }
}

TEST(RgLruScanCuda, ResetsCutTheState) {
  RG_REQUIRE_CUDA();
  // A document starts at t = 4 in every row: from there on y ignores h0, and dh0 sees no dy from t >= 4.
  const int64_t B = 2, T = 11, L = 70, t0 = 4;
  Inputs in = make_inputs(B, T, L, torch::kFloat, true, 7);
  in.a.select(1, t0).zero_();
  const torch::Tensor a = to_cuda(in.a), x = to_cuda(in.x);  // (B, T, L)
  auto [y1, h1] = scan_forward(a, x, to_cuda(in.h0), ScanImpl::kCuda);
  auto [y2, h2] = scan_forward(a, x, to_cuda(in.h0 * 3 + 1), ScanImpl::kCuda);
  EXPECT_TRUE(torch::equal(y1.slice(1, t0), y2.slice(1, t0)));
  EXPECT_TRUE(torch::equal(h1, h2));
  EXPECT_FALSE(torch::equal(y1.slice(1, 0, t0), y2.slice(1, 0, t0)));
  // 0 * h + x is exactly x wherever a is zero.
  const torch::Tensor zero = a == 0;
  EXPECT_TRUE(torch::equal(y1.masked_select(zero), x.masked_select(zero)));

  torch::Tensor dy = torch::randn({B, T, L}).to(torch::kCUDA);  // (B, T, L)
  dy.slice(1, 0, t0).zero_();
  const ScanGrads g = scan_backward(a, x, to_cuda(in.h0), dy, torch::randn({B, L}).to(torch::kCUDA), ScanImpl::kCuda);
  EXPECT_EQ(g.dh0.abs().max().item<float>(), 0.0f);
}

TEST(RgLruScanCuda, NonContiguousAndAuto) {
  RG_REQUIRE_CUDA();
  // Views with time innermost, as a transposed projection would hand over: the op makes them contiguous.
  const Inputs in = make_inputs(2, 13, 90, torch::kFloat, true, 8);
  const torch::Tensor a = to_cuda(in.a).transpose(1, 2).contiguous().transpose(1, 2);  // (B, T, L), strided
  const torch::Tensor x = to_cuda(in.x).transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(a.is_contiguous());
  auto [y_ref, h_ref] = scan_forward(in.a, in.x, in.h0, ScanImpl::kReference);
  auto [y, h] = scan_forward(a, x, to_cuda(in.h0), ScanImpl::kAuto);  // kAuto picks kCuda for CUDA tensors
  // float32 values: stored_tol(torch::kFloat), one ulp of slack on an expected-identical result.
  expect_close(y, y_ref, 1e-6, 1e-6, "strided y");
  expect_close(h, h_ref, 1e-6, 1e-6, "strided h_last");
  EXPECT_THROW(scan_forward(in.a, in.x, in.h0, ScanImpl::kCuda), std::invalid_argument);
}

TEST(RgLruScanCuda, EmptyTime) {
  RG_REQUIRE_CUDA();
  // T = 0: y is empty, h_last is h0, dh0 is dh_last; no kernel indexes anything.
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const Inputs in = make_inputs(2, 0, 5, dtype, true, 9);
    auto [y, h] = scan_forward(to_cuda(in.a), to_cuda(in.x), to_cuda(in.h0), ScanImpl::kCuda);
    EXPECT_EQ(y.numel(), 0);
    expect_close(h, in.h0, 0, 0, "T=0 h_last");
    const torch::Tensor dh = torch::randn({2, 5});
    const ScanGrads g = scan_backward(to_cuda(in.a), to_cuda(in.x), to_cuda(in.h0), to_cuda(torch::zeros({2, 0, 5}, dtype)),
                                      to_cuda(dh), ScanImpl::kCuda);
    expect_close(g.dh0, dh, 0, 0, "T=0 dh0");
  }
}

// The autograd op end to end: the same loss on CPU (reference) and CUDA gives the same gradients for a,
// x and h0, with h0 given and with the op's zero stand-in for none.
TEST(RgLruScanCuda, AutogradMatchesCpu) {
  RG_REQUIRE_CUDA();
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (bool with_h0 : {false, true}) {
      const std::string what = std::string(c10::toString(dtype)) + (with_h0 ? " h0" : "");
      const int64_t B = 3, T = 29, L = 70;
      const Inputs in = make_inputs(B, T, L, dtype, with_h0, 20 + with_h0);
      const torch::Tensor w = torch::randn({B, T, L});  // (B, T, L) weights of y in the loss
      const torch::Tensor v = torch::randn({B, L});     // (B, L) weights of h_last

      auto run = [&](const torch::Device& device, ScanImpl impl) {
        torch::Tensor a = in.a.to(device).detach().requires_grad_(true);
        torch::Tensor x = in.x.to(device).detach().requires_grad_(true);
        torch::Tensor h0 = with_h0 ? in.h0.to(device).detach().requires_grad_(true) : torch::Tensor();
        auto [y, h_last] = rg_lru_scan(a, x, h0, impl);
        const torch::Tensor loss = (y.to(torch::kFloat) * w.to(device)).sum() + (h_last * v.to(device)).sum();
        loss.backward();
        return std::make_tuple(a.grad(), x.grad(), with_h0 ? h0.grad() : torch::Tensor());
      };
      const auto [da_ref, dx_ref, dh0_ref] = run(torch::kCPU, ScanImpl::kReference);
      const auto [da, dx, dh0] = run(torch::kCUDA, ScanImpl::kCuda);
      const Tol ts = stored_tol(dtype), ta = acc_tol(dtype);
      expect_close(da, da_ref, ts.rtol, ts.atol, what + " grad a");
      expect_close(dx, dx_ref, ts.rtol, ts.atol, what + " grad x");
      if (with_h0) expect_close(dh0, dh0_ref, ta.rtol, ta.atol, what + " grad h0");
    }
  }
}

}  // namespace
}  // namespace rg::kernels
