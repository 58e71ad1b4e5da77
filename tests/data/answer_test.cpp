// prepare prompts' optional per-prompt `answer` (verifiable rewards): stored as UTF-8 under /SPLIT/answer,
// read back beside its own prompt by read_prompt_set in both splits, absent where not given; bad answers
// refused naming file:line; damaged answer datasets refused naming the element.
#include "data/chat_format.h"
#include "data/prepare.h"
#include "tests/data/data_test_support.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <string>
#include <vector>

namespace rg::data {
namespace {

using test::fs::path;

// The prompt's question back from its tokens: "<start_of_turn>user\nQ<end_of_turn>\n<start_of_turn>model\n" -> Q.
std::string answer_test_question(const std::vector<int32_t>& prompt) {
  const std::string text = test::tokenizer().decode(prompt);
  const std::string head = "<start_of_turn>user\n";
  const size_t end = text.find("<end_of_turn>");
  return text.substr(head.size(), end - head.size());
}

TEST(PromptAnswers, StoredBesideTheirPromptInBothSplits) {
  const path dir = test::scratch_dir("answers");
  // Answers keyed by the question, so pairing is checked independently of the order prepare uses.
  std::string jsonl;
  std::vector<std::pair<std::string, std::string>> expected;  // question -> answer ("" = none)
  for (int i = 0; i < 40; ++i) {
    const std::string q = "the sea " + std::to_string(i) + "?";
    if (i % 3 == 0) {
      jsonl += R"({"prompt": ")" + q + R"("})" "\n", expected.emplace_back(q, "");
    } else if (i % 3 == 1) {
      jsonl += R"({"prompt": ")" + q + R"(", "answer": null})" "\n", expected.emplace_back(q, "");
    } else {
      // Trimmed as prompts are; non-ASCII kept byte for byte.
      const std::string a = "Reykjav\u00edk " + std::to_string(i);
      jsonl += R"({"prompt": ")" + q + R"(", "answer": "  )" + a + R"( \n"})" "\n", expected.emplace_back(q, a);
    }
  }
  test::write_file(dir / "p.jsonl", jsonl);
  PrepareOptions o = test::prepare_options(dir / "p.h5");
  o.validation_fraction = 0.25;
  const PrepareSummary s = prepare_prompts({(dir / "p.jsonl").string()}, o);
  EXPECT_EQ(s.answers, 13);  // i = 2, 5, ..., 38
  EXPECT_NE(describe(s).find("13 with an answer"), std::string::npos) << describe(s);

  int64_t seen = 0, answered = 0;
  for (const std::string split : {"train", "validation"}) {
    const PromptSet set = read_prompt_set((dir / "p.h5").string(), split);
    ASSERT_EQ(set.answers.size(), set.prompts.size());
    for (size_t i = 0; i < set.prompts.size(); ++i) {
      const std::string q = answer_test_question(set.prompts[i]);
      const auto it = std::find_if(expected.begin(), expected.end(), [&](const auto& e) { return e.first == q; });
      ASSERT_NE(it, expected.end()) << q;
      if (it->second.empty()) {
        EXPECT_FALSE(set.answers[i].has_value()) << q;
      } else {
        ASSERT_TRUE(set.answers[i].has_value()) << q;
        EXPECT_EQ(*set.answers[i], it->second);
      }
      answered += set.answers[i].has_value();
    }
    EXPECT_EQ(set.has_answers(), set.answered > 0);
    seen += static_cast<int64_t>(set.prompts.size());
  }
  EXPECT_EQ(seen, 40);
  EXPECT_EQ(answered, 13);
}

TEST(PromptAnswers, DroppedPromptsTakeTheirAnswerAlong) {
  const path dir = test::scratch_dir("answers_drop");
  test::write_file(dir / "p.jsonl",
                   R"({"prompt": "the sea?", "answer": "deep"})" "\n"
                   R"({"prompt": "the whale the ship the sea the captain the harpoon the white deep sailor?", "answer": "long"})" "\n"
                   R"({"prompt": "the wind?", "answer": "storm"})" "\n");
  PrepareOptions o = test::prepare_options(dir / "p.h5");
  const ChatFormatter format(test::tokenizer());
  const auto length = [&](const char* q) { return static_cast<int64_t>(format.prompt({{false, q}}).size()); };
  o.max_tokens = std::max(length("the sea?"), length("the wind?"));
  ASSERT_GT(length("the whale the ship the sea the captain the harpoon the white deep sailor?"), o.max_tokens);
  const PrepareSummary s = prepare_prompts({(dir / "p.jsonl").string()}, o);
  ASSERT_EQ(s.dropped, 1);
  const PromptSet set = read_prompt_set((dir / "p.h5").string());
  ASSERT_EQ(set.prompts.size(), 2u);
  EXPECT_EQ(answer_test_question(set.prompts[1]), "the wind?");
  EXPECT_EQ(set.answers[1].value_or(""), "storm");
}

TEST(PromptAnswers, ASetWithoutAnswersSaysSo) {
  const path dir = test::scratch_dir("answers_none");
  test::write_file(dir / "p.jsonl", R"({"prompt": "the sea?"})" "\n");
  prepare_prompts({(dir / "p.jsonl").string()}, test::prepare_options(dir / "p.h5"));
  PromptSet set = read_prompt_set((dir / "p.h5").string());
  EXPECT_FALSE(set.has_answers());
  ASSERT_EQ(set.answers.size(), 1u);
  EXPECT_FALSE(set.answers[0].has_value());
  // A file written before answers existed has no /train/answer group: read as "no answers".
  const std::string file = (dir / "p.h5").string();
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  ASSERT_GE(H5Ldelete(f, "train/answer", H5P_DEFAULT), 0);
  H5Fclose(f);
  set = read_prompt_set(file);
  EXPECT_FALSE(set.has_answers());
  EXPECT_EQ(set.answers.size(), 1u);
}

TEST(PromptAnswers, BadAnswersAreRefusedWithFileAndLine) {
  const path dir = test::scratch_dir("answers_bad");
  for (const auto& [line, want] : std::vector<std::pair<std::string, std::string>>{
           {R"({"prompt": "a", "answer": 42})", "answer: expected a string, got "},
           {R"({"prompt": "a", "answer": ["x"]})", "answer: expected a string, got "},
           {R"({"prompt": "a", "answer": "  "})", "answer: empty content"}}) {
    test::write_file(dir / "p.jsonl", R"({"prompt": "the sea?", "answer": "deep"})" "\n" + line + "\n");
    try {
      prepare_prompts({(dir / "p.jsonl").string()}, test::prepare_options(dir / "p.h5"));
      ADD_FAILURE() << "accepted: " << line;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find((dir / "p.jsonl").string() + ":2: " + want), std::string::npos) << e.what();
    }
    EXPECT_FALSE(test::fs::exists(dir / "p.h5"));
  }
}

TEST(PromptAnswers, DamagedAnswerDatasetsAreRefusedNamingTheElement) {
  const path dir = test::scratch_dir("answers_damaged");
  test::write_file(dir / "p.jsonl", R"({"prompt": "the sea?", "answer": "deep"})" "\n" R"({"prompt": "the wind?"})" "\n");
  const std::string file = (dir / "p.h5").string();
  auto damage = [&](const char* dataset, const std::vector<uint8_t>& values) {
    prepare_prompts({(dir / "p.jsonl").string()}, test::prepare_options(dir / "p.h5"));
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    ASSERT_GE(H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    H5Dclose(d), H5Fclose(f);
  };
  auto expect_refused = [&](const std::string& want) {
    try {
      read_prompt_set(file);
      ADD_FAILURE() << "read a damaged answer set; expected " << want;
    } catch (const BadDataFile& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  damage("train/answer/present", {1, 2});
  expect_refused(file + ":/train/answer/present[1]: value 2");
  damage("train/answer/present", {0, 0});
  expect_refused(file + ":/train/answer[0]: text for a prompt marked without an answer");
  damage("train/answer/text", {0xff, 'e', 'e', 'p'});
  expect_refused(file + ":/train/answer[0]: answer is not UTF-8");
  damage("train/answer/present", {1, 1});  // counts no longer match the attribute
  expect_refused(file + ":/train/answer: attribute 'answers' disagrees");
}

}  // namespace
}  // namespace rg::data
