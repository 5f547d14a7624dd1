#!/usr/bin/env python3
"""The byte-level BPE fixture of tests/test_bpe.c, from HuggingFace `tokenizers` (run where it is installed: the
GPU machine).

    python3 tools/make_bpe_fixtures.py --corpus kjv.txt fortunes.txt [--vocab 4096] [--sample 400]
        [--out tests/fixtures/bpe] [--full DIR]

Trains a byte-level BPE the way GPT-2 / GPT-NeoX tokenizers are built (NFC normalizer, the ByteLevel
pre-tokenizer with its GPT-2 split regex, the ByteLevel decoder, one special token <|endoftext|>) on the corpora,
saves tokenizer.json, and writes HF's ids of lines of each corpus: the first --sample lines of each into
OUT/bpe_ref.safetensors (committed: tests/test_bpe.c compares qtk's ids line by line), and with --full, every
line of every corpus into DIR/bpe_full.safetensors (the same test runs on it with QTK_BPE_FULL=DIR/...).
Lines are the corpus split at '\\n' (each tokenized without its newline), plus a few made-up lines that exercise
the regex (contractions, digits, runs of spaces, tabs, non-ASCII letters, the special token inside text).
"""
import argparse
import os

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

EXTRA = ["Don't we'll they're I'm you've he'd it's", "  leading spaces and trailing   ", "tabs\tand\t\tmore",
         "numbers 12345 and 3.14159, 1,000,000", "caf\u00e9 na\u00efve \u00fcber \u00c5ngstr\u00f6m \u4e2d\u6587 \u0416\u0443\u043a",
         "end<|endoftext|>start <|endoftext|> spaced", "    ", "a", "!!!???...", "emoji \U0001F600 and \u00e9\u0301"]


def lines_of(path):
    return open(path, encoding="utf-8").read().split("\n")


def pack(tok, lines, prefix, out):
    enc = tok.encode_batch(lines)
    text = "\n".join(lines).encode("utf-8")
    starts, ids, id_starts = [], [], []
    pos = 0
    for line, e in zip(lines, enc):
        starts.append(pos)
        pos += len(line.encode("utf-8")) + 1
        id_starts.append(len(ids))
        ids.extend(e.ids)
        assert tok.decode(e.ids, skip_special_tokens=False) == line, line
    starts.append(pos)
    id_starts.append(len(ids))
    out[f"{prefix}.text"] = torch.from_numpy(np.frombuffer(text, dtype=np.uint8).copy())
    out[f"{prefix}.line_start"] = torch.tensor(starts, dtype=torch.int64)
    out[f"{prefix}.ids"] = torch.tensor(ids, dtype=torch.int32)
    out[f"{prefix}.id_start"] = torch.tensor(id_starts, dtype=torch.int64)
    return len(lines), len(ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", nargs="+", required=True)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--sample", type=int, default=400)
    ap.add_argument("--out", default="tests/fixtures/bpe")
    ap.add_argument("--full", default=None)
    args = ap.parse_args()
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train(args.corpus, trainer)
    os.makedirs(args.out, exist_ok=True)
    tok.save(f"{args.out}/tokenizer.json")
    sample, full = {}, {}
    for i, path in enumerate(args.corpus):
        lines = lines_of(path)
        n, k = pack(tok, lines[:args.sample] + (EXTRA if i == 0 else []), f"c{i}", sample)
        print(f"{path}: sample of {n} lines, {k} ids")
        if args.full:
            n, k = pack(tok, lines, f"c{i}", full)
            print(f"{path}: all {n} lines, {k} ids")
    meta = {"corpora": " ".join(os.path.basename(p) for p in args.corpus), "vocab": str(args.vocab),
            "tokenizers": __import__("tokenizers").__version__}
    save_file(sample, f"{args.out}/bpe_ref.safetensors", metadata=meta)
    if args.full:
        os.makedirs(args.full, exist_ok=True)
        save_file(full, f"{args.full}/bpe_full.safetensors", metadata=meta)


if __name__ == "__main__":
    main()
