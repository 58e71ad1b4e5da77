// The sampler against a slow reference that re-runs the parallel pass over the whole sequence at every
// step: greedy ids and log-probabilities, batches of different lengths equal to each prompt alone, stop
// tokens, seeding (per row: prefill + repeat + generate equals each copy alone), the top-k / top-p /
// temperature rule on a known distribution, against the old per-row double-precision sort as a function of
// u, and its distribution (chi-square against the exact truncated distribution).
#include "model/sampler.h"

#include "tests/float_tolerance.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <set>

namespace rg {
namespace {

Griffin tiny_model() {
  torch::manual_seed(11);
  ModelConfig c = ModelConfig::preset("tiny");
  c.attention_window = 4;  // generations run past the window
  Griffin model(c);
  torch::NoGradGuard no_grad;
  model->final_norm->weight.add_(3.0);  // peaked distributions, so greedy choices are not near-ties
  return model;
}

// Greedy by recomputing the parallel pass from scratch each step; also returns each token's log-prob.
std::pair<std::vector<int64_t>, std::vector<double>> slow_greedy(Griffin& model, std::vector<int64_t> seq, int64_t n) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> out;
  std::vector<double> logps;
  for (int64_t s = 0; s < n; ++s) {
    const int64_t T = static_cast<int64_t>(seq.size());
    const torch::Tensor logits = model(torch::tensor(seq, torch::kLong).unsqueeze(0),
                                       torch::arange(T, torch::kLong).unsqueeze(0))[0][T - 1];
    const int64_t id = logits.argmax().item<int64_t>();
    logps.push_back(torch::log_softmax(logits.to(torch::kDouble), 0)[id].item<double>());
    out.push_back(id);
    seq.push_back(id);
  }
  return {out, logps};
}

TEST(Sampler, GreedyMatchesRecomputingTheFullSequence) {
  Griffin model = tiny_model();
  const std::vector<std::vector<int64_t>> prompts = {{2, 17, 33, 5, 90, 61, 7, 8, 200}, {2, 44}, {2, 9, 9, 9, 150}};
  SamplerOptions o;
  o.greedy = true, o.max_new_tokens = 12;
  const Generation g = generate(model, prompts, o);
  for (size_t b = 0; b < prompts.size(); ++b) {
    const auto [ids, logps] = slow_greedy(model, prompts[b], 12);
    EXPECT_EQ(g.ids[b], ids) << "prompt " << b;
    ASSERT_EQ(g.logprobs[b].size(), logps.size());
    // The sampler's logits (prefill + steps) and the recomputed parallel pass are two float32 evaluations of
    // the tiny model: |logits| <= 30 (soft cap), longest sum 192 (MLP), 3 blocks x 3 sums + the head. A
    // log-softmax moves by at most twice the largest logit error.
    const double bound = 2 * test::float32_vs_float32(30.0, 192, 10);
    for (size_t i = 0; i < logps.size(); ++i) EXPECT_NEAR(g.logprobs[b][i], logps[i], bound);
    // Alone in its own batch, the prompt gives the same generation: padding is invisible.
    EXPECT_EQ(generate(model, {prompts[b]}, o).ids[0], ids);
  }
}

TEST(Sampler, StopsOnStopTokenAndKeepsIt) {
  Griffin model = tiny_model();
  SamplerOptions o;
  o.greedy = true, o.max_new_tokens = 10;
  const std::vector<int64_t> free_run = generate(model, {{2, 5, 6}}, o).ids[0];
  o.stop_ids = {free_run[2]};
  const Generation g = generate(model, {{2, 5, 6}, {2, 5, 6}}, o);
  const auto first = std::find(free_run.begin(), free_run.end(), free_run[2]);
  const size_t expected = static_cast<size_t>(first - free_run.begin()) + 1;
  EXPECT_EQ(g.ids[0].size(), expected);
  EXPECT_TRUE(g.stopped[0]);
  EXPECT_EQ(g.ids[0].back(), free_run[2]);
}

TEST(Sampler, SeededSamplingIsReproducible) {
  Griffin model = tiny_model();
  SamplerOptions o;
  o.max_new_tokens = 20, o.temperature = 1.5, o.seed = 7;
  const Generation a = generate(model, {{2, 3}, {2, 4, 5}}, o), b = generate(model, {{2, 3}, {2, 4, 5}}, o);
  EXPECT_EQ(a.ids, b.ids);
  o.seed = 8;
  EXPECT_NE(generate(model, {{2, 3}, {2, 4, 5}}, o).ids, a.ids);
}

// The old sampler's rule for one row, kept as the slow reference: softmax in float64, a stable sort of the
// whole vocabulary, the top-k then top-p prefix, inverse CDF over it in sorted order.
int64_t sorted_reference_pick(const torch::Tensor& logits, const SamplerOptions& o, double u) {
  const torch::Tensor probs = torch::softmax(logits.to(torch::kDouble) / o.temperature, 0).contiguous();
  const double* p = probs.data_ptr<double>();
  const int64_t V = probs.numel();
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [p](int64_t a, int64_t b) { return p[a] > p[b]; });
  int64_t keep = o.top_k > 0 ? std::min(o.top_k, V) : V;
  if (o.top_p < 1.0) {
    double mass = 0;
    for (int64_t i = 0; i < keep; ++i) {
      if ((mass += p[order[i]]) >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[order[i]];
  double acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    if (u * total < (acc += p[order[i]])) return order[i];
  }
  return order[keep - 1];
}

// The exact distribution the options define (the reference's truncation, renormalised), float64.
std::vector<double> truncated_distribution(const torch::Tensor& logits, const SamplerOptions& o) {
  const int64_t V = logits.numel();
  std::vector<double> out(V, 0.0);
  // Each token's share of the mass is the width of its u interval in the reference's inverse CDF.
  const torch::Tensor probs = torch::softmax(logits.to(torch::kDouble) / o.temperature, 0).contiguous();
  const double* p = probs.data_ptr<double>();
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [p](int64_t a, int64_t b) { return p[a] > p[b]; });
  int64_t keep = o.top_k > 0 ? std::min(o.top_k, V) : V;
  double mass = 0;
  for (int64_t i = 0; i < keep && o.top_p < 1.0; ++i) {
    if ((mass += p[order[i]]) >= o.top_p) keep = i + 1;
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[order[i]];
  for (int64_t i = 0; i < keep; ++i) out[order[i]] = p[order[i]] / total;
  return out;
}

// Upper quantile of chi-square with df degrees of freedom at z standard deviations (Wilson-Hilferty). For
// small df it overestimates the far tail (df = 1, z = 6: 46.9 against the exact 37.2), so the bound is if
// anything looser than the nominal false-alarm rate Phi(-6) ~ 1e-9.
double chi_square_bound(int64_t df, double z = 6.0) {
  const double d = static_cast<double>(df), c = 2.0 / (9.0 * d);
  return d * std::pow(1.0 - c + z * std::sqrt(c), 3);
}

// Draws n samples of one logits row through the batched rule, `rows` rows per call, every row with its own
// seed (row_uniform of seed i at step 0): independent uniforms, so counts are multinomial.
std::vector<int64_t> batched_histogram(const torch::Tensor& logits, const SamplerOptions& o, int64_t n) {
  const int64_t V = logits.numel(), rows = 5000;
  std::vector<int64_t> counts(V, 0);
  for (int64_t start = 0; start < n; start += rows) {
    const int64_t b = std::min(rows, n - start);
    torch::Tensor u = torch::empty({b}, torch::kDouble);
    for (int64_t i = 0; i < b; ++i) u[i] = row_uniform(row_seed(1234, start + i), 0);
    const torch::Tensor ids = pick_tokens(logits.unsqueeze(0).expand({b, V}), o, u).ids;
    for (int64_t i = 0; i < b; ++i) counts[ids[i].item<int64_t>()]++;
  }
  return counts;
}

// Pearson's statistic over the tokens the exact distribution allows; tokens it forbids must never appear.
void expect_distribution(const torch::Tensor& logits, const SamplerOptions& o, const std::string& what) {
  const int64_t n = 100000;
  const std::vector<double> exact = truncated_distribution(logits, o);
  const std::vector<int64_t> counts = batched_histogram(logits, o, n);
  double chi2 = 0;
  int64_t support = 0;
  for (size_t t = 0; t < exact.size(); ++t) {
    if (exact[t] == 0) {
      EXPECT_EQ(counts[t], 0) << what << ": token " << t << " is outside the truncated support";
      continue;
    }
    ++support;
    const double expected = n * exact[t];
    chi2 += (counts[t] - expected) * (counts[t] - expected) / expected;
  }
  ASSERT_GT(support, 1) << what;
  EXPECT_LT(chi2, chi_square_bound(support - 1)) << what << ": " << support << " tokens in the support";
}

TEST(PickTokens, DistributionMatchesTheExactTruncatedDistribution) {
  // Eight tokens with distinct logits, ids not in probability order.
  const torch::Tensor logits = torch::tensor({0.3f, 2.0f, -1.0f, 1.2f, 0.9f, -0.4f, 1.7f, 0.0f});
  SamplerOptions o;
  expect_distribution(logits, o, "plain");  // inverse CDF over the vocabulary
  o.temperature = 0.6;
  expect_distribution(logits, o, "temperature 0.6");
  o.temperature = 1.8, o.top_k = 3;
  expect_distribution(logits, o, "top_k 3");
  o.top_k = 0, o.top_p = 0.7;
  expect_distribution(logits, o, "top_p 0.7");
  o.top_k = 5, o.top_p = 0.8, o.temperature = 0.9;
  expect_distribution(logits, o, "top_k 5 + top_p 0.8");
  // 300 tokens with similar logits: the nucleus needs more than the adaptive top-k's first 64 candidates.
  torch::manual_seed(5);
  const torch::Tensor wide = torch::randn({300}) * 0.3;
  SamplerOptions w;
  w.top_p = 0.6;
  expect_distribution(wide, w, "adaptive top-k, top_p 0.6");
}

// For the truncated rules the candidates are in the reference's order (most likely first), so each u
// picks the very token the old sorted loop picked; the plain rule walks the vocabulary in id order, a
// different but equally exact map from u (its distribution is tested above).
TEST(PickTokens, SameTokenAsTheSortedReferenceForEachU) {
  torch::manual_seed(3);
  const torch::Tensor logits = torch::randn({200}) * 2;  // continuous: no ties
  std::vector<SamplerOptions> rules(4);
  rules[0].top_k = 7, rules[1].top_p = 0.5, rules[2].top_k = 40, rules[2].top_p = 0.9, rules[2].temperature = 0.7;
  rules[3].top_p = 0.95, rules[3].temperature = 2.5;  // adaptive top-k beyond 64
  const int64_t n = 1000;
  torch::Tensor u = (torch::arange(n, torch::kDouble) + 0.5) / n;
  for (size_t r = 0; r < rules.size(); ++r) {
    const torch::Tensor ids = pick_tokens(logits.unsqueeze(0).expand({n, 200}), rules[r], u).ids;
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += ids[i].item<int64_t>() != sorted_reference_pick(logits, rules[r], u[i].item<double>());
    // A u within float32 rounding (~1e-7) of a cut point could go either way: with 1000 grid points 1e-3
    // apart, none is that close here.
    EXPECT_EQ(differ, 0) << "rule " << r;
  }
}

// The plain rule (no top-k / top-p) walks the vocabulary in id order: u picks the first token whose
// cumulative probability exceeds u, here from float64 softmax in a slow loop. Rows of 5 to 3,000 tokens (the
// CPU path splits rows over threads by size); a u within float32 rounding (~1e-7) of a cut could go either
// way, and the 1000-point grid is 1e-3 apart, so none is that close.
TEST(PickTokens, PlainRuleIsTheInverseCdfInIdOrder) {
  torch::manual_seed(4);
  for (const int64_t V : {5, 200, 3000}) {
    const torch::Tensor logits = torch::randn({V}) * 2;
    SamplerOptions o;
    o.temperature = 0.8;
    const int64_t n = 1000;
    const torch::Tensor u = (torch::arange(n, torch::kDouble) + 0.5) / n;
    const torch::Tensor ids = pick_tokens(logits.unsqueeze(0).expand({n, V}), o, u).ids;
    const torch::Tensor p = torch::softmax(logits.to(torch::kDouble) / o.temperature, 0).contiguous();
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) {
      double cumulative = 0;
      int64_t want = V - 1;
      for (int64_t t = 0; t < V; ++t) {
        if ((cumulative += p[t].item<double>()) > u[i].item<double>()) {
          want = t;
          break;
        }
      }
      differ += ids[i].item<int64_t>() != want;
    }
    EXPECT_EQ(differ, 0) << "V=" << V;
  }
}

// log_softmax(l / T)[id] over the whole vocabulary, truncation or not. The batched rule computes it in
// float32 as (l - max) / T - log sum exp: |z| <= (max - min) / T = 20 here, a sum of V = 50 terms each
// <= 1, two chained steps; the float64 reference is exact by comparison.
TEST(PickTokens, LogProbIsAtTheSamplingTemperatureBeforeTruncation) {
  torch::manual_seed(4);
  const torch::Tensor logits = torch::rand({50}) * 10.0 - 5.0;  // float32, in [-5, 5]
  const int64_t n = 64;
  const torch::Tensor u = (torch::arange(n, torch::kDouble) + 0.5) / n;
  for (double t : {0.5, 1.0, 1.7}) {
    for (int64_t k : {0, 3}) {
      SamplerOptions o;
      o.temperature = t, o.top_k = k;
      const Picked p = pick_tokens(logits.unsqueeze(0).expand({n, 50}), o, u);
      const torch::Tensor exact = torch::log_softmax(logits.to(torch::kDouble) / t, 0);
      const double bound = test::float32_vs_exact(10.0 / t + std::log(50.0), 50, 2);
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_NEAR(p.logprobs[i].item<double>(), exact[p.ids[i].item<int64_t>()].item<double>(), bound)
            << "T " << t << " top_k " << k;
      }
    }
  }
}

// Rows of the fused CPU rule's test (model/sampler.cpp: plain rule and greedy): random logits with -inf entries
// and exact ties, V = 1, V around and across the 1,024-id blocks and the 8-lane vectors.
torch::Tensor fused_test_row(int64_t V, int64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor l = torch::randn({V}) * 3;
  if (V >= 8) {
    l.index_put_({torch::randint(V, {V / 8})}, -std::numeric_limits<float>::infinity());
    l.narrow(0, V / 2, V / 4).copy_(l.narrow(0, 0, V / 4));  // ties, the maximum's included when it is early
  }
  return l;
}

// Against an independent float64 reference: z = (l - max) / T in float32 exactly as the ATen rule rounds it
// (the rule's definition for float32 logits), then exp, cumsum and searchsorted in float64. The fused rule's
// exp is within 3 * 2^-24 relative of exp(z) (model/kernels/vec_exp_tanh.h) and its sums are float64, so every
// running sum is within 4 * 2^-24 * total of the reference's: a u whose target u * total lies that close to
// the end of a token's interval (with a later token of mass > 0) may go either way and is counted, not
// compared; the rest must pick the very same id. Float64 logits: the same with 1e-12 (float64 sums of
// < 2^13 terms in another association, ~V * 2^-53). u = 0 and u -> 1 included: the first and the last id
// with mass > 0.
TEST(PickTokens, FusedPlainRuleMatchesFloat64InverseCdf) {
  std::vector<double> us = {0.0, 1e-12, 1e-6, 0.5, 1 - 1e-9, 1 - 1.0 / 9007199254740992.0};
  for (int64_t i = 0; i < 40; ++i) us.push_back((i + 0.37) / 40);
  const torch::Tensor u = torch::tensor(us, torch::kDouble);
  const int64_t n = u.numel();
  int64_t compared = 0, ambiguous = 0;
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    for (const int64_t V : {1, 7, 9, 1023, 1024, 1025, 3000, 5003}) {
      const torch::Tensor l = fused_test_row(V, V).to(dtype);
      for (const double T : {0.5, 1.0, 2.0}) {
        SamplerOptions o;
        o.temperature = T;
        const Picked got = pick_tokens(l.unsqueeze(0).expand({n, V}).contiguous(), o, u);
        const torch::Tensor z = (l - l.max()) / T;  // the ATen rule's z, in l's dtype
        const torch::Tensor p = z.to(torch::kDouble).exp();
        const torch::Tensor cdf = p.cumsum(0).contiguous();
        const double total = cdf[V - 1].item<double>();
        const double* c = cdf.data_ptr<double>();
        const double* pp = p.contiguous().data_ptr<double>();
        const double tol = (dtype == torch::kFloat ? 4 * test::kFloat32Roundoff : 1e-12) * total;
        int64_t last_positive = 0;
        for (int64_t t = 0; t < V; ++t) last_positive = pp[t] > 0 ? t : last_positive;
        for (int64_t i = 0; i < n; ++i) {
          const double target = std::min(us[i] * total, total * (1 - 1.0 / 9007199254740992.0));
          const int64_t want = std::min<int64_t>(std::upper_bound(c, c + V, target) - c, V - 1);
          bool near_cut = false;
          for (int64_t t = 0; t < last_positive && !near_cut; ++t) {
            near_cut = pp[t] > 0 && std::abs(c[t] - target) <= tol;
          }
          const int64_t id = got.ids[i].item<int64_t>();
          ASSERT_GT(pp[id], 0) << "V=" << V << " T=" << T << " u=" << us[i] << ": a token of probability 0";
          if (near_cut) {
            ++ambiguous;
            continue;
          }
          ++compared;
          EXPECT_EQ(id, want) << torch::toString(dtype) << " V=" << V << " T=" << T << " u=" << us[i];
        }
      }
    }
  }
  EXPECT_LT(ambiguous, compared / 20) << "the comparison must not be vacuous";
}

// Log-probs of the fused rule against log_softmax(l / T) in float64, sampled and greedy. float32: z = (l - m) / T
// rounds twice (2 * 2^-24 |z|); each exp(z_i) is off by that times e_i plus 3 * 2^-24 e_i, and |z| e^z <= 1/e,
// so the float64 total is within 2^-24 (2V/e + 3) total, which log(total) turns into an absolute error
// (total >= 1). Float64 logits: 1e-12 (float64 rounding of V <= 2^13 terms, ~V * 2^-53, with room).
TEST(PickTokens, FusedLogProbMatchesFloat64LogSoftmax) {
  const torch::Tensor u = (torch::arange(16, torch::kDouble) + 0.5) / 16;
  for (const auto dtype : {torch::kFloat, torch::kDouble}) {
    for (const int64_t V : {1, 9, 1025, 5003}) {
      const torch::Tensor l = fused_test_row(V, 100 + V).to(dtype);
      const torch::Tensor finite = l.masked_select(l.isfinite()).to(torch::kDouble);
      const double spread = (finite.max() - finite.min()).item<double>();
      for (const double T : {0.5, 1.0, 2.0}) {
        for (const bool greedy : {false, true}) {
          SamplerOptions o;
          o.temperature = T, o.greedy = greedy;
          const double t = greedy ? 1.0 : T;
          const Picked got = pick_tokens(l.unsqueeze(0).expand({16, V}).contiguous(), o, u);
          const torch::Tensor exact = torch::log_softmax(l.to(torch::kDouble) / t, 0);
          const double bound = dtype == torch::kFloat
                                   ? test::float32_vs_exact(spread / t, 2) + test::float32_vs_exact(2.0 / M_E, V) +
                                         test::float32_vs_exact(1.0, 3)
                                   : 1e-12;
          for (int64_t i = 0; i < 16; ++i) {
            const int64_t id = got.ids[i].item<int64_t>();
            if (greedy) EXPECT_EQ(id, l.argmax().item<int64_t>()) << "greedy: the first maximum";
            EXPECT_NEAR(got.logprobs[i].item<double>(), exact[id].item<double>(), bound)
                << torch::toString(dtype) << " V=" << V << " T=" << T << " greedy=" << greedy;
          }
        }
      }
    }
  }
}

// A NaN, a +inf or a row of only -inf is refused (the fused CPU rule's flag, as the ATen rule's), in any row.
TEST(PickTokens, FusedRuleRefusesNonFiniteRows) {
  const float inf = std::numeric_limits<float>::infinity();
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), inf}) {
    for (const int64_t at : {0, 13, 1030}) {
      torch::Tensor l = torch::randn({3, 2000});
      l[1][at] = bad;
      for (const bool greedy : {false, true}) {
        SamplerOptions o;
        o.greedy = greedy;
        EXPECT_THROW(pick_tokens(l, o, torch::full({3}, 0.5, torch::kDouble)), std::runtime_error)
            << bad << " at " << at;
      }
    }
  }
  SamplerOptions o;
  EXPECT_THROW(pick_tokens(torch::full({2, 1500}, -inf), o, torch::full({2}, 0.5, torch::kDouble)),
               std::runtime_error);
  // One finite entry among -inf is a certain pick, log-prob 0.
  torch::Tensor l = torch::full({1, 1500}, -inf);
  l[0][1234] = -3.0f;
  const Picked p = pick_tokens(l, o, torch::full({1}, 0.99, torch::kDouble));
  EXPECT_EQ(p.ids[0].item<int64_t>(), 1234);
  EXPECT_EQ(p.logprobs[0].item<double>(), 0.0);
}

// RLHF's use: one prefill, each prompt repeated G times, a seed per row. Every row must be what generating
// that prompt alone with that seed gives: its sample depends on its own seed, not on its neighbours.
TEST(Sampler, RepeatedPromptStateWithRowSeedsEqualsEachCopyAlone) {
  Griffin model = tiny_model();
  const std::vector<std::vector<int64_t>> prompts = {{2, 17, 33, 5, 90, 61}, {2, 44}};
  const int64_t G = 3;
  SamplerOptions o;
  o.max_new_tokens = 14, o.temperature = 4.0, o.top_p = 0.95;  // hot: the tiny model is peaked
  for (int64_t i = 0; i < 2 * G; ++i) o.row_seeds.push_back(1000 + 7 * i);
  const PromptState p = prefill(model, prompts, o);
  EXPECT_EQ(p.batch(), 2);
  const PromptState rep = p.repeat(G);
  ASSERT_EQ(rep.batch(), 2 * G);
  EXPECT_EQ(rep.state.bytes(), G * p.state.bytes());
  const Generation g = generate(model, rep, o);
  ASSERT_EQ(g.ids.size(), static_cast<size_t>(2 * G));
  std::set<std::vector<int64_t>> distinct;
  for (int64_t i = 0; i < 2 * G; ++i) {
    SamplerOptions alone = o;
    alone.row_seeds = {o.row_seeds[i]};
    const Generation a = generate(model, {prompts[i / G]}, alone);
    EXPECT_EQ(g.ids[i], a.ids[0]) << "row " << i;
    ASSERT_EQ(g.logprobs[i].size(), a.logprobs[0].size());
    // The greedy test's bound (two float32 evaluations of the tiny model's logits), divided by T = 4.
    const double bound = 2 * test::float32_vs_float32(30.0, 192, 10) / 4.0;
    for (size_t t = 0; t < a.logprobs[0].size(); ++t) EXPECT_NEAR(g.logprobs[i][t], a.logprobs[0][t], bound);
    distinct.insert(g.ids[i]);
  }
  EXPECT_GT(distinct.size(), 2u);  // different seeds do give different samples
  o.row_seeds.pop_back();
  EXPECT_THROW(generate(model, p.repeat(G), o), std::invalid_argument);  // one seed short
  EXPECT_THROW(p.repeat(0), std::invalid_argument);
}

TEST(Sampler, StateSizeDoesNotGrowWithLength) {
  Griffin model = tiny_model();
  SamplerOptions o;
  o.max_new_tokens = 8;
  const int64_t short_run = generate(model, {{2, 3}}, o).state_bytes;
  o.max_new_tokens = 300;
  EXPECT_EQ(generate(model, {{2, 3}}, o).state_bytes, short_run);
}

TEST(PickToken, RulesOnAKnownDistribution) {
  // probabilities 0.5, 0.25, 0.15, 0.1 for ids 3, 0, 2, 1
  const torch::Tensor logits = torch::tensor({0.25, 0.1, 0.15, 0.5}, torch::kDouble).log();
  SamplerOptions o;
  auto histogram = [&](const SamplerOptions& opts) {
    std::vector<int> counts(4, 0);
    for (int i = 0; i < 1000; ++i) counts[pick_token(logits, opts, (i + 0.5) / 1000)]++;
    return counts;
  };
  EXPECT_EQ(histogram(o), (std::vector<int>{250, 100, 150, 500}));  // exact inverse-CDF on a uniform grid
  o.top_k = 2;  // renormalised over ids 3 and 0: 2/3, 1/3
  EXPECT_EQ(histogram(o), (std::vector<int>{333, 0, 0, 667}));
  o.top_k = 0, o.top_p = 0.8;  // 0.5 + 0.25 < 0.8, so id 2 is needed too: 0.5/0.9, 0.25/0.9, 0.15/0.9
  EXPECT_EQ(histogram(o), (std::vector<int>{277, 0, 167, 556}));  // cut points 0.5556, 0.8333
  o.top_p = 1.0, o.greedy = true;
  EXPECT_EQ(histogram(o), (std::vector<int>{0, 0, 0, 1000}));
  o.greedy = false, o.temperature = 1e-3;  // temperature -> 0 approaches greedy
  EXPECT_EQ(histogram(o)[3], 1000);
}

TEST(Sampler, RejectsBadPrompts) {
  Griffin model = tiny_model();
  SamplerOptions o;
  EXPECT_THROW(generate(model, {{2, 300}}, o), std::invalid_argument);  // vocab is 256
  EXPECT_THROW(generate(model, std::vector<std::vector<int64_t>>{{}}, o), std::invalid_argument);
  o.temperature = 0;
  EXPECT_THROW(generate(model, {{2}}, o), std::invalid_argument);
}

// NaN logits used to come out as token V-1 (every comparison with NaN is false, so the inverse-CDF walk ran
// off the end): they are refused, in both rules, as is +inf (softmax of it is NaN).
TEST(PickToken, RefusesNonFiniteLogits) {
  SamplerOptions o;
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const auto& values : {std::vector<double>{0.1, nan, 0.3}, std::vector<double>{nan, nan, nan},
                             std::vector<double>{0.0, inf, 1.0}, std::vector<double>{-inf, -inf, -inf}}) {
    const torch::Tensor logits = torch::tensor(values, torch::kDouble);
    for (bool greedy : {false, true}) {
      o.greedy = greedy;
      EXPECT_THROW(pick_token(logits, o, 0.5), std::runtime_error) << logits << " greedy " << greedy;
    }
  }
  // -inf alone is a token that cannot be chosen, not an error.
  o.greedy = false;
  EXPECT_EQ(pick_token(torch::tensor({-inf, 0.0, -inf}, torch::kDouble), o, 0.99), 1);
}

TEST(Sampler, NanWeightsAreAnErrorNotATokenStream) {
  Griffin model = tiny_model();
  {
    torch::NoGradGuard no_grad;
    model->final_norm->weight.fill_(std::numeric_limits<float>::quiet_NaN());
  }
  SamplerOptions o;
  o.max_new_tokens = 3;
  try {
    generate(model, {{2, 5}}, o);
    FAIL() << "NaN weights produced tokens";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

TEST(Sampler, OptionsOutOfRangeAreRefused) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  auto refused = [](const std::function<void(SamplerOptions&)>& edit) {
    SamplerOptions o;
    edit(o);
    try {
      check_sampler_options(o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  // 1e-320 is a subnormal > 0 that the old "temperature > 0" check let through: logits / 1e-320 overflow.
  for (double t : {1e-320, 0.0, -1.0, nan, inf, kMinTemperature / 2}) {
    EXPECT_EQ(refused([&](SamplerOptions& o) { o.temperature = t; }).rfind("temperature:", 0), 0u) << t;
  }
  for (double p : {nan, 0.0, -0.5, 1.5, inf}) {
    EXPECT_EQ(refused([&](SamplerOptions& o) { o.top_p = p; }).rfind("top_p:", 0), 0u) << p;
  }
  EXPECT_EQ(refused([](SamplerOptions& o) { o.top_k = -1; }).rfind("top_k:", 0), 0u);
  EXPECT_EQ(refused([](SamplerOptions& o) { o.max_new_tokens = -1; }).rfind("max_new_tokens:", 0), 0u);
  EXPECT_EQ(refused([](SamplerOptions& o) { o.temperature = kMinTemperature; }), "(accepted)");
  EXPECT_EQ(refused([nan](SamplerOptions& o) { o.greedy = true, o.temperature = nan; }), "(accepted)");  // unused
  Griffin model = tiny_model();
  SamplerOptions o;
  o.temperature = 1e-320;
  EXPECT_THROW(generate(model, {{2}}, o), std::invalid_argument);
}

// At the smallest temperature the largest float32 logits still divide to finite values (3.4e38 / 1e-6 =
// 3.4e44, far below double's 1.8e308), so the choice is the argmax, not NaN.
TEST(PickToken, SmallestTemperatureStaysFinite) {
  const float big = std::numeric_limits<float>::max();
  const torch::Tensor logits = torch::tensor({-big, big, 0.0f, big / 2});
  SamplerOptions o;
  o.temperature = kMinTemperature;
  for (double u : {0.0, 0.5, 0.999}) EXPECT_EQ(pick_token(logits, o, u), 1) << u;
}

}  // namespace
}  // namespace rg
