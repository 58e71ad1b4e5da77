// Answer normalisation and matching for the verifiable reward (rules in rlhf/verifiable_reward.h).
#include "rlhf/verifiable_reward.h"

#include <cctype>

namespace rg::rlhf {

std::string normalize_answer_text(const std::string& text) {
  std::string out;
  bool pending_space = false;
  for (unsigned char ch : text) {
    const bool ascii = ch < 0x80;
    if (ascii && (std::isspace(ch) || std::ispunct(ch))) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' '), pending_space = false;
    out.push_back(ascii ? static_cast<char>(std::tolower(ch)) : static_cast<char>(ch));
  }
  return out;
}

double verifiable_reward(const std::string& completion, const std::string& answer) {
  const std::string a = normalize_answer_text(answer);
  if (a.empty()) return 0.0;
  const std::string c = " " + normalize_answer_text(completion) + " ";
  return c.find(" " + a + " ") != std::string::npos ? 1.0 : 0.0;
}

}  // namespace rg::rlhf
