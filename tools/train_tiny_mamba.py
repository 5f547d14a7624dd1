#!/usr/bin/env python3
"""Trains the two tiny byte-level Mamba language models committed in models/.

Run on the GPU machine (transformers 5.17 pure-PyTorch Mamba / Mamba2, PyTorch
2.11), from the repository root, with the KJV text made here by
datasets/kjv.sh (Debian's bible-kjv, verse prefixes stripped):

    python3 tools/train_tiny_mamba.py --text build/cache/kjv/kjv.txt --out models \\
        --fixtures tests/fixtures/ssm --steps1 300 --steps2 1500

Data: the text's bytes are the tokens (vocabulary 256). The first 95% of the
bytes train, the last 5% are held out (the split datasets/kjv.sh writes as
token files). Training: random windows of 256 bytes, batch 32, AdamW (lr 2e-3,
weight decay 0.1, betas 0.9/0.95), 100 warm-up steps then cosine to 10%, seed
0, float32, TF32 off. transformers' Mamba1 path scans token by token in Python
(about 0.6 s a step on an H100), so it gets 300 steps; Mamba2's chunked path
gets 1,500.

Models (a few MB each, float32):
  tiny_mamba1: MambaConfig  D 128, E 256, N 16, K 4, R 8, 4 layers, tied head
  tiny_mamba2: Mamba2Config D 128, E 256, H 8, P 32, G 1, N 32, K 4, chunk 64, 4 layers, tied head

Written: models/tiny_mamba{1,2}/ (config.json, model.safetensors via
save_pretrained, train.json with the loss curve and held-out perplexity), and
tests/fixtures/ssm/tiny.safetensors: for each model, the logits of 2 held-out
windows of 64 bytes and the perplexity over the first 32 held-out windows of
256 bytes (stride 256, every position after the first predicted), which the C
tests reproduce.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False

MODELS = {
    "tiny_mamba1": (MambaForCausalLM,
                    lambda: MambaConfig(vocab_size=256, hidden_size=128, intermediate_size=256, state_size=16,
                                        conv_kernel=4, time_step_rank=8, num_hidden_layers=4, use_bias=False,
                                        use_conv_bias=True, residual_in_fp32=True, tie_word_embeddings=True,
                                        pad_token_id=0, bos_token_id=0, eos_token_id=0)),
    "tiny_mamba2": (Mamba2ForCausalLM,
                    lambda: Mamba2Config(vocab_size=256, hidden_size=128, expand=2, head_dim=32, num_heads=8,
                                         n_groups=1, state_size=32, conv_kernel=4, chunk_size=64,
                                         num_hidden_layers=4, use_bias=False, use_conv_bias=True,
                                         residual_in_fp32=True, tie_word_embeddings=True, pad_token_id=0,
                                         bos_token_id=0, eos_token_id=0)),
}
SEQ, BATCH, LR, WD = 256, 32, 2e-3, 0.1


def train(name, model, tdata, vocab, steps, lr, warm, max_seconds, log_every, seq=SEQ, batch=BATCH, wd=WD):
    """AdamW (betas 0.9/0.95, weight decay wd) on random windows of seq ids of the 1-D tensor tdata, batch batch,
    warm linear warm-up steps then cosine to 10% of lr, gradients clipped at 1, windows drawn from a generator
    seeded 0; stops early past max_seconds. Returns the loss curve, the steps taken and the seconds."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, betas=(0.9, 0.95))
    curve, t0, step = [], time.time(), 0
    for step in range(1, steps + 1):
        f = step / warm if step <= warm else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))
        for g in opt.param_groups:
            g["lr"] = lr * f
        idx = torch.randint(0, len(tdata) - seq - 1, (batch,), generator=gen)
        x = torch.stack([tdata[i:i + seq] for i in idx.tolist()]).cuda()
        logits = model(x).logits.float()
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % log_every == 0 or step == 1:
            curve.append([step, round(loss.item(), 4), round(time.time() - t0, 1)])
            print(f"{name} step {step} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
        if time.time() - t0 > max_seconds:
            break
    return curve, step, time.time() - t0


def windows(data, n, seq):
    """The first n whole windows of seq tokens, stride seq."""
    n = min(n, len(data) // seq)
    return torch.from_numpy(data[: n * seq].astype(np.int64).reshape(n, seq))


@torch.no_grad()
def perplexity(model, data, n_windows, seq=SEQ):
    x = windows(data, n_windows, seq).cuda()
    nll, count = 0.0, 0
    for i in range(0, len(x), 64):
        logits = model(x[i:i + 64]).logits.float()
        nll += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[i:i + 64, 1:].reshape(-1),
                               reduction="sum").item()
        count += x[i:i + 64, 1:].numel()
    return math.exp(nll / count), len(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", required=True)
    ap.add_argument("--out", default="models")
    ap.add_argument("--fixtures", default="tests/fixtures/ssm")
    ap.add_argument("--steps1", type=int, default=300, help="tiny_mamba1's steps")
    ap.add_argument("--steps2", type=int, default=1500, help="tiny_mamba2's steps")
    ap.add_argument("--max-seconds", type=float, default=400, help="per model: stop early (recorded) past this")
    a = ap.parse_args()
    raw = np.frombuffer(open(a.text, "rb").read(), dtype=np.uint8)
    split = len(raw) * 95 // 100
    train_bytes, val = raw[:split], raw[split:]
    print(f"text {len(raw)} bytes: train {len(train_bytes)}, held out {len(val)}")
    fix = {}
    meta = {"made_by": "tools/train_tiny_mamba.py", "torch": torch.__version__, "text_bytes": str(len(raw)),
            "split_at": str(split)}
    for name, (cls, mk) in MODELS.items():
        steps = a.steps1 if name == "tiny_mamba1" else a.steps2
        torch.manual_seed(0)
        cfg = mk()
        model = cls(cfg).cuda().float()
        n_params = sum(p.numel() for p in model.parameters())
        tdata = torch.from_numpy(train_bytes.astype(np.int64))
        curve, step, train_s = train(name, model, tdata, 256, steps, LR, 100, a.max_seconds, 50)
        model.eval()
        ppl_all, n_all = perplexity(model, val, 10 ** 9)
        ppl_32, n_32 = perplexity(model, val, 32)
        out = os.path.join(a.out, name)
        model.save_pretrained(out, safe_serialization=True)
        gc = os.path.join(out, "generation_config.json")
        if os.path.exists(gc):
            os.remove(gc)
        info = {"params": n_params, "steps": step, "planned_steps": steps, "train_seconds": round(train_s, 1),
                "seq_len": SEQ, "batch": BATCH, "lr": LR, "weight_decay": WD, "loss_curve": curve,
                "heldout_bytes": int(len(val)), "heldout_windows": n_all, "heldout_ppl": ppl_all,
                "heldout_ppl_first32": ppl_32, "gpu": torch.cuda.get_device_name()}
        with open(os.path.join(out, "train.json"), "w") as f:
            json.dump(info, f, indent=1)
        print(f"{name}: {n_params} params, {step} steps in {train_s:.0f} s, held-out perplexity {ppl_all:.4f} "
              f"({n_all} windows), first 32 windows {ppl_32:.4f}")
        x = windows(val, 2, 64).cuda()
        with torch.no_grad():
            fix[f"{name}.logits"] = model(x).logits.float().cpu().contiguous()
        fix[f"{name}.tokens"] = x.int().cpu().contiguous()
        meta[f"{name}.ppl_first32"] = repr(ppl_32)
        meta[f"{name}.ppl_all"] = repr(ppl_all)
    os.makedirs(a.fixtures, exist_ok=True)
    save_file(fix, os.path.join(a.fixtures, "tiny.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
