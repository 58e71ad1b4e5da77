// The built-in verifiable reward for prompt sets that carry a reference answer (`rgemma prepare prompts`'
// optional `answer` field): 1 when the completion contains the answer after both are normalised, else 0.
//
// Normalisation, exactly: ASCII letters lowercased; every ASCII punctuation character (C ispunct:
// !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) replaced by a space; runs of whitespace collapsed to one space; leading
// and trailing space removed. Bytes >= 0x80 (UTF-8 letters) are kept as they are.
// Match: the normalised answer is non-empty and occurs in the normalised completion on word boundaries,
// i.e. " " + answer + " " is a substring of " " + completion + " " ("paris" matches "It is Paris." but not
// "Parisian"). The completion is the decoded text of its tokens without the stop token.
#pragma once

#include <string>

namespace rg::rlhf {

std::string normalize_answer_text(const std::string& text);
double verifiable_reward(const std::string& completion, const std::string& answer);

}  // namespace rg::rlhf
