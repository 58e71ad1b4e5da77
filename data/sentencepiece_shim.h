// C ABI of librg_sentencepiece.so, the only code that links Debian's libsentencepiece. That library
// exports a bundled protobuf that clashes with LibTorch's: a process linking both segfaults before main.
// rg_data loads this shim with dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) instead (see tokenizer.cpp).
// Every function returning int reports failure as a negative value and writes a message into err.
// Training is not here: sentencepiece's trainer logs to std::cerr, and under RTLD_DEEPBIND that resolves
// to libstdc++'s never-constructed stream object and crashes. Tokenizer::train runs `spm_train` instead.
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {

typedef struct RgSentencePiece RgSentencePiece;

RgSentencePiece* rg_sp_load(const char* model_path, char* err, size_t err_len);
void rg_sp_free(RgSentencePiece* sp);
int rg_sp_vocab_size(const RgSentencePiece* sp);
// Special ids as the model file defines them (-1 when the model has none).
int rg_sp_special_id(const RgSentencePiece* sp, const char* which /* "bos" "eos" "pad" "unk" */);
// Id of `piece`, or -1 when the piece is not in the vocabulary.
int rg_sp_piece_to_id(const RgSentencePiece* sp, const char* piece);
// Writes the piece of `id` (NUL-terminated, truncated to out_len); returns its full length, or -1.
int rg_sp_id_to_piece(const RgSentencePiece* sp, int id, char* out, size_t out_len);
// 1 when `id` is a control or user-defined special piece (e.g. <start_of_turn>), else 0.
int rg_sp_is_special(const RgSentencePiece* sp, int id);
// Encodes text (no BOS/EOS). Writes at most cap ids; returns the full count (call again if > cap).
int rg_sp_encode(const RgSentencePiece* sp, const char* text, size_t text_len, int32_t* ids, size_t cap,
                 char* err, size_t err_len);
// Decodes ids. Writes at most cap bytes (not NUL-terminated); returns the full byte count.
int rg_sp_decode(const RgSentencePiece* sp, const int32_t* ids, size_t n, char* out, size_t cap,
                 char* err, size_t err_len);
}
