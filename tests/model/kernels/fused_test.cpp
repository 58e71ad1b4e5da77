// The fused RG-LRU kernel against the same equations written op by op with autograd (docs/architecture.md §5.2):
// values and every gradient, with resets, an initial state, channels whose decay is so close to 1 that
// sqrt's derivative is clipped, bfloat16, and float64 finite differences.
#include "model/kernels/rg_lru_fused.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg::kernels {
namespace {

// Op-by-op reference. sqrt's derivative is clipped at 1000 with a straight-through construction.
std::pair<torch::Tensor, torch::Tensor> composite(const torch::Tensor& x, const torch::Tensor& zx,
                                                  const torch::Tensor& za, const torch::Tensor& p,
                                                  const torch::Tensor& reset, const torch::Tensor& h0) {
  const torch::Tensor r = reset.unsqueeze(-1);  // (B, T, 1)
  const torch::Tensor log_a = -8.0 * torch::sigmoid(za) * torch::softplus(p);
  const torch::Tensor u = 1 - torch::exp(2 * log_a);
  const torch::Tensor m_raw = u.sqrt().detach() + (u - u.detach()) / (2 * u.clamp_min(1.0 / 4e6).sqrt()).detach();
  const torch::Tensor m = torch::where(r, torch::ones_like(m_raw), m_raw);
  const torch::Tensor a = torch::exp(log_a) * r.logical_not().to(x.scalar_type());
  const torch::Tensor xn = x * torch::sigmoid(zx) * m;
  torch::Tensor h = h0.to(x.scalar_type());
  std::vector<torch::Tensor> ys;
  for (int64_t t = 0; t < x.size(1); ++t) {
    h = a.select(1, t) * h + xn.select(1, t);
    ys.push_back(h);
  }
  return {torch::stack(ys, 1), h};
}

struct Case {
  torch::Tensor x, zx, za, p, reset, h0;
};

Case make_case(torch::Dtype dtype, uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t B = 2, T = 23, L = 70;
  Case c{torch::randn({B, T, L}, torch::kDouble), torch::randn({B, T, L}, torch::kDouble),
         torch::randn({B, T, L}, torch::kDouble), torch::randn({L}, torch::kDouble) * 2,
         torch::rand({B, T}, torch::kDouble) < 0.15, torch::randn({B, L}, torch::kDouble)};
  c.p.narrow(0, 0, 5).fill_(-20.0);  // softplus ~ 2e-9: a within 1e-7 of 1, sqrt's derivative clipped
  c.x = c.x.to(dtype), c.zx = c.zx.to(dtype), c.za = c.za.to(dtype), c.p = c.p.to(dtype);
  c.h0 = c.h0.to(dtype == torch::kDouble ? torch::kDouble : torch::kFloat);
  return c;
}

std::vector<torch::Tensor> grads_of(bool fused, const Case& c, const torch::Tensor& wy, const torch::Tensor& wh) {
  torch::Tensor x = c.x.clone().requires_grad_(), zx = c.zx.clone().requires_grad_(),
                za = c.za.clone().requires_grad_(), p = c.p.clone().requires_grad_(),
                h0 = c.h0.clone().requires_grad_();
  auto [y, h] = fused ? rg_lru_fused(x, zx, za, p, c.reset, h0) : composite(x, zx, za, p, c.reset, h0);
  ((y.to(torch::kDouble) * wy).sum() + (h.to(torch::kDouble) * wh).sum()).backward();
  return {y.detach(), h.detach(), x.grad(), zx.grad(), za.grad(), p.grad(), h0.grad()};
}

TEST(RgLruFused, MatchesOpByOpInValueAndGradient) {
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    const Case c = make_case(dtype, 1);
    const torch::Tensor wy = torch::randn(c.x.sizes(), torch::kDouble), wh = torch::randn(c.h0.sizes(), torch::kDouble);
    const auto f = grads_of(true, c, wy, wh), r = grads_of(false, c, wy, wh);
    const char* names[] = {"y", "h_last", "dx", "dzx", "dza", "da_param", "dh0"};
    // float32: each element passes ~6 transcendental ops (softplus, exp, sqrt, sigmoid x2, pow), each within
    // 4 ulp (4 x 2^-23) in the vectorised vs scalar libraries: ~3e-6 relative; da_param sums that over
    // B x T = 46 elements: 46 x 3e-6 = 1.4e-4, so 2e-4. float64: the same chain at 2^-52: 1e-10.
    const double tol = dtype == torch::kDouble ? 1e-10 : 2e-4;
    for (size_t i = 0; i < f.size(); ++i) {
      const double scale = std::max(1.0, r[i].abs().max().item<double>());
      EXPECT_LT((f[i].to(torch::kDouble) - r[i].to(torch::kDouble)).abs().max().item<double>() / scale, tol)
          << names[i] << " " << c10::toString(dtype);
    }
  }
}

TEST(RgLruFused, ClippedSqrtDerivativeKeepsGradientsFinite) {
  const Case c = make_case(torch::kFloat, 2);
  const auto f = grads_of(true, c, torch::ones(c.x.sizes(), torch::kDouble), torch::ones(c.h0.sizes(), torch::kDouble));
  for (const auto& g : f) EXPECT_TRUE(torch::isfinite(g).all().item<bool>());
  EXPECT_GT(f[5].narrow(0, 0, 5).abs().max().item<double>(), 0.0);  // the clipped channels still learn
}

TEST(RgLruFused, Bfloat16StaysCloseToFloat32) {
  const Case c = make_case(torch::kFloat, 3);
  auto [y32, h32] = rg_lru_fused(c.x, c.zx, c.za, c.p, c.reset, c.h0);
  auto [y16, h16] = rg_lru_fused(c.x.to(torch::kBFloat16), c.zx.to(torch::kBFloat16), c.za.to(torch::kBFloat16),
                                 c.p.to(torch::kBFloat16), c.reset, c.h0);
  EXPECT_EQ(y16.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(h16.scalar_type(), torch::kFloat);
  // bf16 inputs carry 8 bits of mantissa; the state accumulates in float32. Not derived: inputs and y each
  // round at 2^-9 relative, the gates amplify input errors a few times; 0.05 on the mean is an O(1) margin
  // against a wrong dtype path (garbage or zeros move the mean by O(|y|)).
  EXPECT_LT((y16.to(torch::kFloat) - y32).abs().mean().item<double>(), 0.05);
}

TEST(RgLruFused, GradientsMatchFiniteDifferences) {
  torch::manual_seed(4);
  const int64_t B = 1, T = 5, L = 3;
  Case c{torch::randn({B, T, L}, torch::kDouble), torch::randn({B, T, L}, torch::kDouble),
         torch::randn({B, T, L}, torch::kDouble), torch::randn({L}, torch::kDouble),
         torch::tensor({{false, false, true, false, false}}), torch::randn({B, L}, torch::kDouble)};
  const torch::Tensor wy = torch::randn({B, T, L}, torch::kDouble), wh = torch::randn({B, L}, torch::kDouble);
  const auto g = grads_of(true, c, wy, wh);
  auto loss = [&](const Case& k) {
    auto [y, h] = rg_lru_fused(k.x, k.zx, k.za, k.p, k.reset, k.h0);
    return ((y * wy).sum() + (h * wh).sum()).item<double>();
  };
  torch::Tensor Case::*fields[] = {&Case::x, &Case::zx, &Case::za, &Case::p, &Case::h0};
  const int grad_index[] = {2, 3, 4, 5, 6};
  for (int f = 0; f < 5; ++f) {
    for (int64_t i = 0; i < (c.*fields[f]).numel(); ++i) {
      Case plus = c, minus = c;
      plus.*fields[f] = (c.*fields[f]).clone(), minus.*fields[f] = (c.*fields[f]).clone();
      (plus.*fields[f]).view(-1)[i] += 1e-6;
      (minus.*fields[f]).view(-1)[i] -= 1e-6;
      const double fd = (loss(plus) - loss(minus)) / 2e-6;
      // Smooth in every input away from the clip; central differences are accurate to ~1e-8 here.
      EXPECT_NEAR(g[grad_index[f]].view(-1)[i].item<double>(), fd, 1e-6) << "input " << f << " @" << i;
    }
  }
}

}  // namespace
}  // namespace rg::kernels
