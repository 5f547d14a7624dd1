#!/usr/bin/env python3
"""Trains the BPE-vocabulary Mamba1 and Mamba2 of issue 17's accuracy table (the quantization runs need models
wide and deep enough for activation outliers to appear; the byte-level tiny models of models/ are not).

Run on the GPU machine (transformers' pure-PyTorch Mamba / Mamba2, HF tokenizers), from the repository root,
with the offline corpora made here (data.md: KJV, fortunes, WordNet glosses, GCIDE; `make corpora` writes them to
build/cache/corpora with their SHA256SUMS), one text per corpus:

    python3 tools/train_bpe_mamba.py --corpus build/cache/corpora/{kjv,fortunes,wordnet,gcide}.txt --out models \\
        [--vocab 4096] [--steps 3000] [--max-seconds 240]

Tokenizer: a byte-level BPE of --vocab ids built as GPT-2 / GPT-NeoX's (tools/make_bpe_fixtures.py's
construction: NFC, the ByteLevel pre-tokenizer and decoder, one special token <|endoftext|>), trained on the
training split only. Split: the last 5% of each corpus's lines are held out; the training and held-out texts
are written beside the models (train.txt, heldout.txt, their SHA-256 in split.json) so `qtk tokenize` makes the
token files the configs read (its ids equal HF's: test_bpe). Models (fp16 on disk, under 10 MB each):
  bpe_mamba1: MambaConfig  D 256, E 512, N 16, K 4, R 16, 8 layers, tied head
  bpe_mamba2: Mamba2Config D 256, E 512, H 8, P 64, G 1, N 64, K 4, chunk 64, 8 layers, tied head
Training: random windows of 256 ids, batch 32, AdamW (lr 1.5e-3, weight decay 0.1, betas 0.9/0.95), 200
warm-up steps then cosine to 10%, seed 0, float32 weights (TF32 matmuls: training only), stopping early at
--max-seconds per model (recorded). Written per model: config.json, model.safetensors (fp16), tokenizer.json,
train.json (loss curve, held-out perplexity in PyTorch over windows of 256, stride 256).
"""
import argparse
import hashlib
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

from train_tiny_mamba import train  # the training loop (tools/ is the script's folder, so on sys.path)

SEQ, BATCH, LR, WD, WARM = 256, 32, 1.5e-3, 0.1, 200


def model_defs(vocab):
    common = dict(vocab_size=vocab, hidden_size=256, conv_kernel=4, num_hidden_layers=8, use_bias=False,
                  use_conv_bias=True, residual_in_fp32=True, tie_word_embeddings=True, pad_token_id=0,
                  bos_token_id=0, eos_token_id=0)
    return {
        "bpe_mamba1": (MambaForCausalLM, lambda: MambaConfig(intermediate_size=512, state_size=16, time_step_rank=16,
                                                             **common)),
        "bpe_mamba2": (Mamba2ForCausalLM, lambda: Mamba2Config(expand=2, head_dim=64, num_heads=8, n_groups=1,
                                                               state_size=64, chunk_size=64, **common)),
    }


def split_corpora(paths):
    train, held = [], []
    for p in paths:
        lines = [l for l in open(p, encoding="utf-8").read().split("\n") if l.strip()]
        cut = len(lines) * 95 // 100
        train += lines[:cut]
        held += lines[cut:]
    return "\n".join(train) + "\n", "\n".join(held) + "\n"


def train_tokenizer(train_path, vocab):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([train_path], trainer)
    return tok


def ids_of(tok, text):
    # the whole text at once, as `qtk tokenize --text` encodes a file
    return np.array(tok.encode(text).ids, dtype=np.int64)


@torch.no_grad()
def perplexity(model, data):
    n = len(data) // SEQ
    x = torch.from_numpy(data[: n * SEQ].reshape(n, SEQ))
    nll, count = 0.0, 0
    for i in range(0, n, 64):
        xb = x[i:i + 64].cuda()
        logits = model(xb).logits.float()
        nll += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1), reduction="sum").item()
        count += xb[:, 1:].numel()
    return math.exp(nll / count), n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", nargs="+", required=True)
    ap.add_argument("--out", default="models")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--max-seconds", type=float, default=240)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    os.makedirs(a.out, exist_ok=True)
    train_text, held_text = split_corpora(a.corpus)
    split_dir = os.path.join(a.out, "bpe_corpus")
    os.makedirs(split_dir, exist_ok=True)
    paths = {}
    for name, text in (("train", train_text), ("heldout", held_text)):
        paths[name] = os.path.join(split_dir, f"{name}.txt")
        with open(paths[name], "w", encoding="utf-8") as f:
            f.write(text)
    tok = train_tokenizer(paths["train"], a.vocab)
    tok.save(os.path.join(split_dir, "tokenizer.json"))
    train_ids, held_ids = ids_of(tok, train_text), ids_of(tok, held_text)
    with open(os.path.join(split_dir, "split.json"), "w") as f:
        json.dump({"corpora": [os.path.basename(p) for p in a.corpus], "vocab": a.vocab,
                   "train_sha256": hashlib.sha256(train_text.encode()).hexdigest(),
                   "heldout_sha256": hashlib.sha256(held_text.encode()).hexdigest(),
                   "train_ids": int(len(train_ids)), "heldout_ids": int(len(held_ids))}, f, indent=1)
    print(f"train {len(train_ids)} ids, held out {len(held_ids)} ids, vocab {a.vocab}", flush=True)
    tdata = torch.from_numpy(train_ids)
    for name, (cls, mk) in model_defs(a.vocab).items():
        torch.manual_seed(0)
        model = cls(mk()).cuda().float()
        n_params = sum(p.numel() for p in model.parameters())
        curve, step, train_s = train(name, model, tdata, a.vocab, a.steps, LR, WARM, a.max_seconds, 100)
        model.eval()
        ppl, n_win = perplexity(model, held_ids)
        out = os.path.join(a.out, name)
        model.half().save_pretrained(out, safe_serialization=True)
        gc = os.path.join(out, "generation_config.json")
        if os.path.exists(gc):
            os.remove(gc)
        tok.save(os.path.join(out, "tokenizer.json"))
        info = {"params": n_params, "steps": step, "planned_steps": a.steps, "train_seconds": round(train_s, 1),
                "seq_len": SEQ, "batch": BATCH, "lr": LR, "weight_decay": WD, "loss_curve": curve,
                "heldout_windows": n_win, "heldout_ppl_fp32": ppl, "gpu": torch.cuda.get_device_name()}
        with open(os.path.join(out, "train.json"), "w") as f:
            json.dump(info, f, indent=1)
        size = os.path.getsize(os.path.join(out, "model.safetensors"))
        print(f"{name}: {n_params} params ({size / 1e6:.1f} MB fp16), {step} steps in {train_s:.0f} s, held-out "
              f"perplexity {ppl:.4f} over {n_win} windows", flush=True)


if __name__ == "__main__":
    main()
