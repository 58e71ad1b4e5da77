// The sampler against a slow reference that re-runs the parallel pass over the whole sequence at every
// step: greedy ids and log-probabilities, batches of different lengths equal to each prompt alone, stop
// tokens, seeding, and the top-k / top-p / temperature rule on a known distribution.
#include "model/sampler.h"

#include "tests/float_tolerance.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <limits>

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
  EXPECT_THROW(generate(model, {{}}, o), std::invalid_argument);
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
