// Gemma chat format: normalisation of message lists into alternating turns, and their encoding with the
// SFT loss mask (see chat_format.h for the exact layout).
#include "data/chat_format.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace rg::data {

std::string json_brief(const nlohmann::json& value, size_t max_chars) {
  if (value.is_array()) return "an array of " + std::to_string(value.size()) + " values";
  if (value.is_object()) return "an object with " + std::to_string(value.size()) + " keys";
  if (value.is_binary()) return "binary data";
  std::string text = value.dump();  // a scalar: no recursion; control characters come out escaped
  if (text.size() > max_chars) {
    size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // whole characters only
    text = text.substr(0, cut) + "... (" + std::to_string(text.size()) + " chars)";
  }
  return text;
}

namespace {

// A role as messages quote it: itself when short and printable, else its bounded JSON form.
std::string role_brief(const std::string& role) {
  const bool plain = role.size() <= 40 && std::none_of(role.begin(), role.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7F;
  });
  return plain ? role : json_brief(nlohmann::json(role), 40);
}

}  // namespace

std::vector<Message> parse_messages(const nlohmann::json& array, const std::string& field) {
  if (!array.is_array()) {
    throw FormatError("'" + field + "' must be a list of {\"role\", \"content\"} objects, not " + json_brief(array));
  }
  std::vector<Message> out;
  for (size_t i = 0; i < array.size(); ++i) {
    const auto& m = array[i];
    const std::string where = field + "[" + std::to_string(i) + "]";
    if (!m.is_object()) {
      throw FormatError(where + ": expected an object with \"role\" and \"content\", got " + json_brief(m));
    }
    const auto role = m.find("role");
    const auto content = m.find("content");
    if (role == m.end()) throw FormatError(where + ": missing string field \"role\"");
    if (!role->is_string()) throw FormatError(where + ".role: expected a string, got " + json_brief(*role));
    if (content == m.end()) throw FormatError(where + ": missing string field \"content\"");
    if (!content->is_string()) {
      throw FormatError(where + ".content: expected a string, got " + json_brief(*content));
    }
    out.push_back({role->get<std::string>(), content->get<std::string>()});
  }
  return out;
}

std::vector<Turn> normalize(const std::vector<Message>& messages, Ending ending) {
  std::vector<Turn> turns;
  std::string system;
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const std::string where = "message " + std::to_string(i + 1) + " (" + role_brief(m.role) + ")";
    const bool is_model = m.role == "assistant" || m.role == "model";
    if (!is_model && m.role != "user" && m.role != "system") {
      throw FormatError("message " + std::to_string(i + 1) + ": unknown role '" + role_brief(m.role) +
                        "' (expected system, user, assistant or model)");
    }
    const std::string text = trim(m.content);
    if (text.empty()) throw FormatError(where + ": empty content");
    if (m.role == "system") {
      // Gemma has no system role: its text goes in front of the first user turn.
      if (!turns.empty()) throw FormatError(where + ": a system message after the conversation started");
      system += (system.empty() ? "" : "\n\n") + text;
      continue;
    }
    if (turns.empty() && is_model) throw FormatError(where + ": the conversation must start with a user turn");
    if (!turns.empty() && turns.back().model == is_model) {
      throw FormatError("messages " + std::to_string(i) + " and " + std::to_string(i + 1) + ": two " +
                        (is_model ? "model" : "user") + " turns in a row");
    }
    turns.push_back({is_model, turns.empty() && !system.empty() ? system + "\n\n" + text : text});
  }
  if (turns.empty()) throw FormatError("no user or model turns");
  if (ending == Ending::kModel && !turns.back().model) {
    throw FormatError("the conversation ends with a user turn (nothing for the model to learn)");
  }
  if (ending == Ending::kUser && turns.back().model) {
    throw FormatError("a prompt must end with a user turn, not a model turn");
  }
  return turns;
}

ChatFormatter::ChatFormatter(const Tokenizer& tokenizer) : tokenizer_(tokenizer), special_(special_ids(tokenizer)) {
  if (special_.start_of_turn < 0 || special_.end_of_turn < 0 || special_.bos < 0) {
    throw DataError(tokenizer.path() + ": the tokenizer lacks <bos>, <start_of_turn> or <end_of_turn> as single " +
                    "pieces; chat data needs them (train one with `rgemma tokenizer train`)");
  }
}

void ChatFormatter::append(std::vector<int32_t>* out, const std::string& text) const {
  const std::vector<int32_t> ids = tokenizer_.encode(text);
  out->insert(out->end(), ids.begin(), ids.end());
}

Encoded ChatFormatter::conversation(const std::vector<Turn>& turns) const {
  Encoded e;
  auto push = [&e](const std::vector<int32_t>& ids, uint8_t m) {
    e.tokens.insert(e.tokens.end(), ids.begin(), ids.end());
    e.mask.insert(e.mask.end(), ids.size(), m);
  };
  push({special_.bos}, 0);
  for (const Turn& t : turns) {
    push({special_.start_of_turn}, 0);
    if (t.model) {
      push(tokenizer_.encode("model\n"), 0);
      push(tokenizer_.encode(t.text), 1);
      push({special_.end_of_turn}, 1);  // the model must learn to end its turn
    } else {
      push(tokenizer_.encode("user\n" + t.text), 0);
      push({special_.end_of_turn}, 0);
    }
    push(tokenizer_.encode("\n"), 0);
  }
  return e;
}

std::vector<int32_t> ChatFormatter::prompt(const std::vector<Turn>& turns) const {
  std::vector<int32_t> out = {special_.bos};
  for (const Turn& t : turns) {
    out.push_back(special_.start_of_turn);
    if (t.model) {
      append(&out, "model\n");
      append(&out, t.text);
    } else {
      append(&out, "user\n" + t.text);
    }
    out.push_back(special_.end_of_turn);
    append(&out, "\n");
  }
  out.push_back(special_.start_of_turn);
  append(&out, "model\n");
  return out;
}

std::vector<int32_t> ChatFormatter::completion(const std::string& text) const {
  std::vector<int32_t> out = tokenizer_.encode(trim(text));
  out.push_back(special_.end_of_turn);
  return out;
}

}  // namespace rg::data
