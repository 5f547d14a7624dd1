#!/usr/bin/env python3
"""GPU Mamba: qtk against transformers' PyTorch path on the same GPU.

Run on the GPU machine from the repository root, after building here:

    python3 tools/bench_gpu_mamba.py [--prefill 1024] [--layers-2p8b 64] [--fp16]

For random-weight models with the shapes of mamba-130m and mamba-2.8b (and
mamba2-130m), float32 on both sides (TF32 off; with --fp16: transformers'
model in fp16, qtk's projections in fp16 with FP32 sums), it times transformers'
forward of one sequence of --prefill tokens, and its decode per token at
batch 1, 16 and 64 (generate() with the cache: the time of 40 new tokens
minus 8, over 32). Then it runs build/bench/bench_mamba_cuda (the same
shapes and measurements, plus the weight-bandwidth floor from a
device-to-device copy in the same run) and prints one table with the ratios.
transformers runs without mamba_ssm / causal_conv1d here, so its Mamba paths
are the pure-PyTorch reference ones.
"""
import argparse
import json
import subprocess
import time

import torch
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def shapes(layers_big):
    return {
        "mamba-130m": (MambaForCausalLM, MambaConfig(vocab_size=50280, hidden_size=768, intermediate_size=1536,
                                                       state_size=16, conv_kernel=4, time_step_rank=48,
                                                       num_hidden_layers=24, tie_word_embeddings=True)),
        "mamba-2.8b": (MambaForCausalLM, MambaConfig(vocab_size=50280, hidden_size=2560, intermediate_size=5120,
                                                       state_size=16, conv_kernel=4, time_step_rank=160,
                                                       num_hidden_layers=layers_big, tie_word_embeddings=True)),
        "mamba2-130m": (Mamba2ForCausalLM, Mamba2Config(vocab_size=50288, hidden_size=768, expand=2, head_dim=64,
                                                          num_heads=24, n_groups=1, state_size=128, conv_kernel=4,
                                                          chunk_size=256, num_hidden_layers=24,
                                                          tie_word_embeddings=True)),
    }


def sync_time(fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


@torch.no_grad()
def hf_times(cls, cfg, L, fp16):
    with torch.device("cuda"):
        model = cls(cfg).eval()
        model = model.half() if fp16 else model.float()
    ids = torch.randint(0, cfg.vocab_size, (1, L), device="cuda")
    model(ids[:, :16], use_cache=False)
    prefill = min(sync_time(lambda: model(ids, use_cache=False)) for _ in range(2))
    dec = {}
    for B in (1, 16, 64):
        p = torch.randint(0, cfg.vocab_size, (B, 8), device="cuda")
        gen = lambda n: model.generate(p, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True,
                                       pad_token_id=0)
        gen(4)
        t8, t40 = sync_time(lambda: gen(8)), sync_time(lambda: gen(40))
        dec[B] = (t40 - t8) / 32
    del model
    torch.cuda.empty_cache()
    return prefill, dec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefill", type=int, default=1024)
    ap.add_argument("--layers-2p8b", type=int, default=64)
    ap.add_argument("--qtk", default="build/bench/bench_mamba_cuda")
    ap.add_argument("--fp16", action="store_true")
    a = ap.parse_args()
    p = subprocess.run([a.qtk, "--prefill", str(a.prefill), "--layers-2p8b", str(a.layers_2p8b), "--fp16",
                        str(int(a.fp16))], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{a.qtk} failed ({p.returncode}): {p.stderr.strip()}")
    rows = {r["model"]: r for r in (json.loads(l) for l in p.stdout.splitlines() if l.startswith("{"))}
    print(f"GPU: {torch.cuda.get_device_name()}, {'fp16' if a.fp16 else 'float32 (TF32 off)'}, torch {torch.__version__}; "
          f"{p.stderr.strip()}")
    print(f"| model | prefill L={a.prefill}: transformers | qtk | speed-up | decode B=1: transformers | qtk | speed-up "
          "| weight-bandwidth floor | qtk / floor | decode B=16: transformers / qtk | decode B=64: transformers / qtk |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, (cls, cfg) in shapes(a.layers_2p8b).items():
        if name not in rows:
            continue
        r = rows[name]
        pre, dec = hf_times(cls, cfg, a.prefill, a.fp16)
        print(f"| {name} ({r['layers']} layers, {r['params_m']:.0f}M) | {pre:.3f} s | {r['prefill_s']:.4f} s | "
              f"{pre / r['prefill_s']:.1f}x | {dec[1] * 1e3:.2f} ms | {r['decode_b1_ms']:.3f} ms | "
              f"{dec[1] * 1e3 / r['decode_b1_ms']:.1f}x | {r['floor_ms']:.3f} ms | {r['decode_b1_over_floor']:.2f}x | "
              f"{dec[16] * 1e3:.2f} / {r['decode_b16_ms']:.3f} ms | {dec[64] * 1e3:.2f} / {r['decode_b64_ms']:.3f} ms |",
              flush=True)


if __name__ == "__main__":
    main()
