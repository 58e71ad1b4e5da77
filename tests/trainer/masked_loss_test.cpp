// masked_token_loss (trainer.h), the chunked loss every training step uses, against plain cross entropy on
// the full (B, T, V) logits: the summed value and the gradients it sends into the hidden states and the tied
// embedding, for chunk sizes from one token to more than the batch, a last chunk that is partial, and the
// default 2048-token chunk reached a second time. Masked-out targets get exactly zero gradient.
// Bounds come from float32 rounding (tests/float_tolerance.h); a lost chunk, a shifted mask or a missing
// backward moves the results by O(1).
#include "model/griffin.h"
#include "trainer/trainer.h"

#include "tests/float_tolerance.h"

#include <gtest/gtest.h>
#include <torch/nn/functional/loss.h>
#include <torch/torch.h>

#include <vector>

namespace rg::trainer {
namespace {

using rg::test::float32_vs_float32;

// The reference: cross entropy of every position from the full logits, times the mask, summed in float64.
double mtl_reference_loss(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& mask) {
  namespace F = torch::nn::functional;
  const int64_t V = logits.size(-1);
  const torch::Tensor ce = F::cross_entropy(logits.reshape({-1, V}).to(torch::kFloat), targets.reshape(-1),
                                            F::CrossEntropyFuncOptions().reduction(torch::kNone));  // (N)
  return (ce.to(torch::kDouble) * mask.reshape(-1).to(torch::kDouble)).sum().item<double>();
}

// A tiny model, its batch, and a loss mask with zeros inside rows and one row all zero.
struct MtlCase {
  Griffin model{nullptr};
  torch::Tensor tokens, segment_pos, targets, mask;  // (B, T) int64 x3, float
};

MtlCase mtl_make_case(int64_t B, int64_t T) {
  torch::manual_seed(11);
  MtlCase c;
  c.model = Griffin(ModelConfig{});
  const int64_t V = c.model->config().vocab_size;
  c.tokens = torch::randint(V, {B, T}, torch::kLong);
  c.targets = torch::randint(V, {B, T}, torch::kLong);
  c.segment_pos = torch::arange(T, torch::kLong).repeat({B, 1});
  c.segment_pos[0].narrow(0, T / 2, T - T / 2) = torch::arange(T - T / 2, torch::kLong);  // a second document
  c.mask = (torch::rand({B, T}) > 0.3).to(torch::kFloat);
  c.mask[B - 1].zero_();
  c.mask[0][0] = 1;
  return c;
}

// How far two float32 evaluations of one logit can differ (the chunked and full matmuls block the W-term
// dot product differently; the soft cap's slope is at most 1): sum |h_i e_i| over the largest logit.
double mtl_logit_bound(const torch::Tensor& hidden, const torch::Tensor& table) {
  const int64_t W = hidden.size(-1);
  const double magnitude =
      torch::matmul(hidden.reshape({-1, W}).abs().to(torch::kDouble), table.abs().to(torch::kDouble).t()).max().item<double>();
  return float32_vs_float32(magnitude, W);
}

TEST(MaskedTokenLoss, ValueEqualsCrossEntropyOnFullLogits) {
  MtlCase c = mtl_make_case(3, 7);  // N = 21 tokens
  torch::NoGradGuard no_grad;
  const torch::Tensor hidden = c.model->hidden(c.tokens, c.segment_pos);  // (B, T, W)
  const double want = mtl_reference_loss(c.model->forward(c.tokens, c.segment_pos), c.targets, c.mask);
  const int64_t N = c.tokens.numel(), V = c.model->config().vocab_size;
  // Each cross entropy moves by at most twice the logit error (log-sum-exp and the target logit), plus its
  // own V-term sum of exponentials (terms <= 1 after the max is subtracted); then the N-term sum of
  // per-token losses, |sum| = want (all terms >= 0).
  const double per_token = 2 * mtl_logit_bound(hidden, c.model->embed_tokens->weight) + float32_vs_float32(1.0, V);
  const double tol = N * per_token + float32_vs_float32(want, N);
  for (int64_t chunk : {1, 4, 7, 20, 21, 2048}) {  // 4 and 20 leave a partial last chunk
    const double got = masked_token_loss(c.model, hidden, c.targets, c.mask, 0.0, chunk);
    EXPECT_NEAR(got, want, tol) << "chunk_tokens " << chunk;
  }
  EXPECT_GT(want, 1.0);  // the bound is small against the value: a lost chunk would show
  EXPECT_LT(tol, 1e-2 * want);
}

// Gradients w.r.t. a leaf hidden tensor and the tied embedding, chunked vs one backward of the full loss.
// chunk_tokens 0 stands for the default argument.
void mtl_expect_gradients_match(int64_t B, int64_t T, const std::vector<int64_t>& chunks) {
  MtlCase c = mtl_make_case(1, 1);  // the model only; the batch is made here
  const int64_t W = c.model->config().width, V = c.model->config().vocab_size, N = B * T;
  torch::manual_seed(12);
  const torch::Tensor h0 = torch::randn({B, T, W});  // RMS-normed hidden states are of this size
  const torch::Tensor targets = torch::randint(V, {B, T}, torch::kLong);
  torch::Tensor mask = (torch::rand({B, T}) > 0.3).to(torch::kFloat);
  mask.view(-1)[0] = 1;
  const double scale = 1.0 / mask.sum().item<double>();
  torch::Tensor& table = c.model->embed_tokens->weight;

  torch::Tensor h_ref = h0.clone().requires_grad_(true);
  c.model->zero_grad();
  const torch::Tensor logits = c.model->logits(h_ref);  // (B, T, V)
  namespace F = torch::nn::functional;
  const torch::Tensor ce = F::cross_entropy(logits.reshape({N, V}), targets.reshape(-1),
                                            F::CrossEntropyFuncOptions().reduction(torch::kNone));
  const torch::Tensor loss_ref = (ce * mask.reshape(-1)).sum();
  (loss_ref * scale).backward();
  const torch::Tensor dh_ref = h_ref.grad().clone(), dtable_ref = table.grad().clone();

  // d(loss)/d(logit) = scale * mask * (softmax - onehot), and a logit error e moves the softmax by at most
  // about p * 2e. So each entry of d(hidden) (a V-term sum over the table) and of d(table) (an N-term sum
  // over the tokens, grouped by chunk in the chunked path) differs by its own float32 rounding plus the
  // carried logit error, both bounded by the sum of |terms| with |p - onehot| + onehot (>= p) as the weight.
  const double dz = mtl_logit_bound(h0, table.detach());
  const torch::Tensor p = torch::softmax(logits.detach().reshape({N, V}).to(torch::kDouble), -1);
  const torch::Tensor onehot = torch::one_hot(targets.reshape(-1), V).to(torch::kDouble);
  const torch::Tensor weight = scale * mask.reshape({N, 1}).to(torch::kDouble) * ((p - onehot).abs() + onehot);
  const double sum_dh = torch::matmul(weight, table.detach().abs().to(torch::kDouble)).max().item<double>();
  const double sum_dtable =
      torch::matmul(weight.t(), h0.reshape({N, W}).abs().to(torch::kDouble)).max().item<double>();
  const double tol_dh = float32_vs_float32(sum_dh, V) + 2 * dz * sum_dh;
  const double tol_dtable = float32_vs_float32(sum_dtable, N) + 2 * dz * sum_dtable;
  const torch::Tensor unmasked = mask.reshape({B, T, 1}) == 0;

  for (int64_t chunk : chunks) {
    torch::Tensor h = h0.clone().requires_grad_(true);
    c.model->zero_grad();
    const double got = chunk > 0 ? masked_token_loss(c.model, h, targets, mask, scale, chunk)
                                 : masked_token_loss(c.model, h, targets, mask, scale);  // the default chunk
    EXPECT_NEAR(got, loss_ref.item<double>(), N * 2 * dz + float32_vs_float32(loss_ref.item<double>(), N))
        << "chunk_tokens " << chunk;
    ASSERT_TRUE(h.grad().defined()) << "chunk_tokens " << chunk << ": no gradient reached the hidden states";
    EXPECT_LE((h.grad() - dh_ref).abs().max().item<double>(), tol_dh) << "chunk_tokens " << chunk;
    EXPECT_LE((table.grad() - dtable_ref).abs().max().item<double>(), tol_dtable) << "chunk_tokens " << chunk;
    // A target outside the mask contributes nothing, exactly.
    EXPECT_EQ(h.grad().masked_select(unmasked).abs().max().item<float>(), 0.0f) << "chunk_tokens " << chunk;
  }
  // The bounds are far below the gradients themselves.
  EXPECT_LT(tol_dh, 1e-2 * dh_ref.abs().max().item<double>());
  EXPECT_LT(tol_dtable, 1e-2 * dtable_ref.abs().max().item<double>());
}

TEST(MaskedTokenLoss, GradientsEqualCrossEntropyOnFullLogits) {
  mtl_expect_gradients_match(3, 7, {1, 4, 7, 21, 2048});
}

// With the default chunk of 2048 tokens, a batch of 2 x 1100 = 2200 tokens is two chunks, the second partial.
TEST(MaskedTokenLoss, DefaultChunkReachesASecondChunk) {
  mtl_expect_gradients_match(2, 1100, {0});
}

}  // namespace
}  // namespace rg::trainer
