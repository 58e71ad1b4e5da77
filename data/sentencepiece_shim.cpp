// librg_sentencepiece.so: wraps sentencepiece's C++ API in the C ABI of sentencepiece_shim.h.
// Built without LibTorch; never linked directly into a process, only dlopen'd by tokenizer.cpp.
#include "data/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <string>
#include <vector>

struct RgSentencePiece {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {
void set_error(char* err, size_t err_len, const std::string& message) {
  if (!err || err_len == 0) return;
  std::strncpy(err, message.c_str(), err_len - 1);
  err[err_len - 1] = '\0';
}
}  // namespace

extern "C" {

RgSentencePiece* rg_sp_load(const char* model_path, char* err, size_t err_len) {
  auto* sp = new RgSentencePiece;
  const auto status = sp->processor.Load(model_path);
  if (!status.ok()) {
    set_error(err, err_len, status.ToString());
    delete sp;
    return nullptr;
  }
  return sp;
}

void rg_sp_free(RgSentencePiece* sp) { delete sp; }

int rg_sp_vocab_size(const RgSentencePiece* sp) { return sp->processor.GetPieceSize(); }

int rg_sp_special_id(const RgSentencePiece* sp, const char* which) {
  const std::string w = which;
  if (w == "bos") return sp->processor.bos_id();
  if (w == "eos") return sp->processor.eos_id();
  if (w == "pad") return sp->processor.pad_id();
  if (w == "unk") return sp->processor.unk_id();
  return -1;
}

int rg_sp_piece_to_id(const RgSentencePiece* sp, const char* piece) {
  const int id = sp->processor.PieceToId(piece);
  // PieceToId answers unk for unknown pieces; only the unk piece itself maps to unk legitimately.
  if (sp->processor.IsUnknown(id) && sp->processor.IdToPiece(id) != piece) return -1;
  return id;
}

int rg_sp_id_to_piece(const RgSentencePiece* sp, int id, char* out, size_t out_len) {
  if (id < 0 || id >= sp->processor.GetPieceSize()) return -1;
  const std::string& piece = sp->processor.IdToPiece(id);
  if (out && out_len) {
    const size_t n = std::min(piece.size(), out_len - 1);
    std::memcpy(out, piece.data(), n);
    out[n] = '\0';
  }
  return static_cast<int>(piece.size());
}

int rg_sp_is_special(const RgSentencePiece* sp, int id) {
  const auto& p = sp->processor;
  if (id < 0 || id >= p.GetPieceSize()) return 0;
  if (p.IsControl(id) || p.IsUnknown(id)) return 1;
  // This sentencepiece has no IsUserDefined(): a user-defined symbol is a "<...>" piece (not a byte
  // piece such as <0x41>) that the encoder keeps whole (after a dummy-prefix piece, if the model adds one).
  const std::string& piece = p.IdToPiece(id);
  if (p.IsByte(id) || piece.size() < 3 || piece.front() != '<' || piece.back() != '>') return 0;
  std::vector<int> ids;
  return p.Encode(piece, &ids).ok() && !ids.empty() && ids.size() <= 2 && ids.back() == id ? 1 : 0;
}

int rg_sp_encode(const RgSentencePiece* sp, const char* text, size_t text_len, int32_t* ids, size_t cap,
                 char* err, size_t err_len) {
  std::vector<int> out;
  const auto status = sp->processor.Encode(std::string(text, text_len), &out);
  if (!status.ok()) {
    set_error(err, err_len, status.ToString());
    return -1;
  }
  for (size_t i = 0; i < out.size() && i < cap; ++i) ids[i] = out[i];
  return static_cast<int>(out.size());
}

int rg_sp_decode(const RgSentencePiece* sp, const int32_t* ids, size_t n, char* out, size_t cap,
                 char* err, size_t err_len) {
  std::vector<int> in(ids, ids + n);
  std::string text;
  const auto status = sp->processor.Decode(in, &text);
  if (!status.ok()) {
    set_error(err, err_len, status.ToString());
    return -1;
  }
  std::memcpy(out, text.data(), std::min(text.size(), cap));
  return static_cast<int>(text.size());
}

}  // extern "C"
