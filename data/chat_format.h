// Gemma's dialogue format (docs/architecture.md §13) with its SFT loss mask:
//   <bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n{text}<end_of_turn>\n...
// System text is folded into the first user turn, "assistant" is written "model", content is trimmed (trim()),
// and the mask is 1 exactly on model-turn content and its <end_of_turn>. Also the JSON shapes of chats,
// preference pairs and prompts (TRL's conventions), parsed with errors that say what is wrong.
#pragma once

#include "data/dataset.h"
#include "data/text.h"  // trim: content is trimmed as the HF template does
#include "data/tokenizer.h"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace rg::data {

// A malformed example; the caller prefixes "file:line: ".
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Message {
  std::string role;  // system, user, assistant or model
  std::string content;
};

// One Gemma turn after normalisation: alternating, starting with the user.
struct Turn {
  bool model = false;
  std::string text;  // trimmed, non-empty
};

// Validates and normalises a conversation: roles known, system only before the first user turn (folded
// into it, separated by a blank line), user and model alternating from the user, no empty content.
// `ending`: SFT examples must end with a model turn; prompts must end with a user turn.
enum class Ending { kModel, kUser, kAny };
std::vector<Turn> normalize(const std::vector<Message>& messages, Ending ending);

// Reads a JSON array of {"role": ..., "content": "..."} objects (the value of "messages", or a TRL
// conversational prompt/chosen/rejected); `field` names it in errors.
std::vector<Message> parse_messages(const nlohmann::json& array, const std::string& field);

struct Encoded {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;  // one per token
};

// Encodes turns with a tokenizer whose special ids it reads from the model (refusing one without
// <start_of_turn>/<end_of_turn> pieces). Each text segment between special pieces is encoded on its own,
// and the model content separately from its "model\n" header, so the mask boundary is a token boundary.
class ChatFormatter {
 public:
  explicit ChatFormatter(const Tokenizer& tokenizer);
  // <bos> + every turn; mask on model content and its <end_of_turn>.
  Encoded conversation(const std::vector<Turn>& turns) const;
  // <bos> + the turns (ending with a user turn) + "<start_of_turn>model\n": a generation prompt.
  std::vector<int32_t> prompt(const std::vector<Turn>& turns) const;
  // A model reply's content + <end_of_turn>: the completion after prompt().
  std::vector<int32_t> completion(const std::string& text) const;
  const SpecialIds& special() const { return special_; }

 private:
  void append(std::vector<int32_t>* out, const std::string& text) const;
  const Tokenizer& tokenizer_;
  SpecialIds special_;
};

// A bounded one-line description of a JSON value for error messages: scalars as JSON text cut to
// `max_chars`, containers as "an array of N values" / "an object with N keys". The local twin of
// rg::io::json_brief (data/ may not link model/): dump() recurses once per nesting level and copies
// unbounded text, so no message dumps a value from an input file.
std::string json_brief(const nlohmann::json& value, size_t max_chars = 60);

}  // namespace rg::data
