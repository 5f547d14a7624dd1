// Byte-level BPE tokenizers from a HuggingFace tokenizer.json (GPT-2 / GPT-NeoX style, the tokenizer of the
// HF Mamba checkpoints): the added tokens split out first (leftmost-longest), then the pre-tokenizer's split
// regex (PCRE2, Unicode properties; the ByteLevel pre-tokenizer's built-in GPT-2 pattern, or a Split
// pre-tokenizer's own), each piece's bytes mapped to the byte-level alphabet, then the merges by rank
// (lowest first, leftmost among equals). Decoding maps the byte-level characters back to bytes, so
// decode(encode(x)) = x for any valid UTF-8 text.
//
// Refused with a message naming the key: models other than BPE, byte fallback, word prefixes / suffixes,
// normalizers other than none and NFC (NFC is taken as the identity: text that is not already NFC can
// tokenize differently from HF's), added tokens with lstrip / rstrip / single_word.
#ifndef QTK_BPE_H
#define QTK_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qtk_bpe qtk_bpe;

qtk_status qtk_bpe_load(qtk_bpe **out, const char *path);
void qtk_bpe_free(qtk_bpe *t);
// The largest id + 1 (vocabulary and added tokens)
int qtk_bpe_vocab_size(const qtk_bpe *t);
// The ids of n bytes of UTF-8 text (*ids malloc'd; invalid UTF-8 is an error naming the byte offset)
qtk_status qtk_bpe_encode(const qtk_bpe *t, const char *text, size_t n, int32_t **ids, size_t *n_ids);
// The text of n ids (*text malloc'd and NUL-terminated, *len bytes); an unknown id is an error
qtk_status qtk_bpe_decode(const qtk_bpe *t, const int32_t *ids, size_t n, char **text, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
