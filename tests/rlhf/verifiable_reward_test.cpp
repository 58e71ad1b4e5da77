// rlhf/verifiable_reward: the documented normalisation and word-boundary match, case by case.
#include "rlhf/verifiable_reward.h"

#include <gtest/gtest.h>

namespace {

using rg::rlhf::normalize_answer_text;
using rg::rlhf::verifiable_reward;

TEST(VerifiableReward, Normalisation) {
  EXPECT_EQ(normalize_answer_text("  The  Capital:\tPARIS!! "), "the capital paris");
  EXPECT_EQ(normalize_answer_text("New-York, (USA)."), "new york usa");
  EXPECT_EQ(normalize_answer_text("Zürich"), "z\xc3\xbcrich");  // UTF-8 bytes kept, ASCII lowercased
  EXPECT_EQ(normalize_answer_text("?!."), "");
}

TEST(VerifiableReward, MatchesOnWordBoundaries) {
  EXPECT_EQ(verifiable_reward("The capital of France is Paris.", "paris"), 1.0);
  EXPECT_EQ(verifiable_reward("paris", "Paris"), 1.0);
  EXPECT_EQ(verifiable_reward("A Parisian café", "Paris"), 0.0);
  EXPECT_EQ(verifiable_reward("It is New York.", "new-york"), 1.0);
  EXPECT_EQ(verifiable_reward("It is Lyon.", "Paris"), 0.0);
  EXPECT_EQ(verifiable_reward("anything", "..."), 0.0);  // an answer that normalises to nothing never matches
  EXPECT_EQ(verifiable_reward("", "Paris"), 0.0);
}

}  // namespace
