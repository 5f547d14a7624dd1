#!/usr/bin/env python3
"""Reference logits of HuggingFace Mamba1 / Mamba2 language models for tests/test_mamba.c.

Run on the GPU machine (transformers 5.17, PyTorch 2.11; no mamba_ssm, so the
pure-PyTorch paths run), from the repository root:

    python3 tools/make_mamba_fixtures.py --out tests/fixtures/ssm

A mamba-130m-shaped layer is 15 MB in float32, far over the fixture budget,
so the weights are not stored. Every tensor of the checkpoint that
save_pretrained writes (sorted by name; a tied lm_head is not written) is
filled from PCG32 (qtk's generator, core/rng.c, seed 2026, stream 0), elements
in row-major order:
    v = lo + (hi - lo) * u,   u = (pcg32() >> 8) * 2^-24,   float32 arithmetic
with (lo, hi) per tensor in the metadata. Token ids come from stream 1:
(pcg32() >> 8) % vocab_size. The C test regenerates the same tensors, writes
them with the config.json text stored here (save_pretrained's own, so its
"Infinity" forms are exercised), loads the folder through qtk's loader and
compares logits. The forward runs on the GPU in float32 with TF32 off.

Cases (fewer layers and a 512-token vocabulary; the layer shapes of the
130m models):
  m1_130m  MambaConfig  D 768, E 1536, N 16, K 4, R 48, 2 layers, tied head; B 2, L 24
  m2_130m  Mamba2Config D 768, E 1536, H 24, P 64, G 1, N 128, K 4, chunk 16, 2 layers,
           untied head; B 2, L 40 (three chunks, the last padded)
  m1_small D 64, E 128, N 8, K 3, R 4, 3 layers, in/out_proj bias, vocab 300, untied; B 3, L 9
  m2_small D 64, E 128, H 8, P 16, G 1, N 16, K 3, chunk 8, 2 layers, bias, time_step_limit
           (0.01, 0.5), vocab 300, tied; B 2, L 21
"""
import argparse
import json
import os
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

from pcg32 import PCG32  # noqa: E402 (tools/ is on the path)

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
SEED = 2026


def value_range(name, D):
    """(lo, hi) for a tensor by its role."""
    rules = [
        ("embeddings.weight", (-1.0, 1.0)),
        ("norm_f.weight", (0.8, 1.2)),
        ("mixer.norm.weight", (0.8, 1.2)),
        ("norm.weight", (0.8, 1.2)),
        ("in_proj.weight", (-1.0 / D ** 0.5, 1.0 / D ** 0.5)),
        ("in_proj.bias", (-0.1, 0.1)),
        ("conv1d.weight", (-0.5, 0.5)),
        ("conv1d.bias", (-0.2, 0.2)),
        ("x_proj.weight", (-0.05, 0.05)),
        ("dt_proj.weight", (-0.15, 0.15)),
        ("dt_proj.bias", (-4.5, -2.0)),
        ("dt_bias", (-4.5, -2.0)),
        ("A_log", (0.0, 2.8)),
        ("mixer.D", (0.5, 1.5)),
        ("out_proj.weight", (-0.05, 0.05)),
        ("out_proj.bias", (-0.1, 0.1)),
        ("lm_head.weight", (-0.05, 0.05)),
    ]
    for suffix, r in rules:
        if name.endswith(suffix):
            return r
    raise SystemExit(f"no value range for {name}")


CASES = [
    ("m1_130m", MambaForCausalLM,
     MambaConfig(vocab_size=512, hidden_size=768, state_size=16, num_hidden_layers=2, intermediate_size=1536,
                 conv_kernel=4, time_step_rank=48, use_bias=False, use_conv_bias=True, layer_norm_epsilon=1e-5,
                 residual_in_fp32=True, tie_word_embeddings=True), 2, 24),
    ("m2_130m", Mamba2ForCausalLM,
     Mamba2Config(vocab_size=512, hidden_size=768, expand=2, head_dim=64, num_heads=24, n_groups=1, state_size=128,
                  conv_kernel=4, chunk_size=16, num_hidden_layers=2, use_bias=False, use_conv_bias=True,
                  layer_norm_epsilon=1e-5, residual_in_fp32=True, tie_word_embeddings=False), 2, 40),
    ("m1_small", MambaForCausalLM,
     MambaConfig(vocab_size=300, hidden_size=64, state_size=8, num_hidden_layers=3, intermediate_size=128,
                 conv_kernel=3, time_step_rank=4, use_bias=True, use_conv_bias=True, layer_norm_epsilon=1e-5,
                 residual_in_fp32=True, tie_word_embeddings=False), 3, 9),
    ("m2_small", Mamba2ForCausalLM,
     Mamba2Config(vocab_size=300, hidden_size=64, expand=2, head_dim=16, num_heads=8, n_groups=1, state_size=16,
                  conv_kernel=3, chunk_size=8, num_hidden_layers=2, use_bias=True, use_conv_bias=True,
                  time_step_limit=(0.01, 0.5), layer_norm_epsilon=1e-5, residual_in_fp32=True,
                  tie_word_embeddings=True), 2, 21),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    tensors, meta_cases = {}, []
    for name, cls, cfg, B, L in CASES:
        torch.manual_seed(0)
        model = cls(cfg).float().eval()
        with tempfile.TemporaryDirectory() as d:
            model.save_pretrained(d, safe_serialization=True)
            with open(os.path.join(d, "config.json")) as f:
                config_text = f.read()
            with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
                names = sorted(f.keys())
                shapes = {k: list(f.get_slice(k).get_shape()) for k in names}
        rng = PCG32(SEED, 0)
        state = model.state_dict()
        params = []
        for k in names:
            lo, hi = value_range(k, cfg.hidden_size)
            n = int(np.prod(shapes[k]))
            v = rng.uniform(n, lo, hi).reshape(shapes[k])
            with torch.no_grad():
                state[k].copy_(torch.from_numpy(v))
            params.append({"name": k, "shape": shapes[k], "lo": lo, "hi": hi})
        if cfg.tie_word_embeddings:
            assert model.lm_head.weight.data_ptr() == model.backbone.embeddings.weight.data_ptr()
        tok_rng = PCG32(SEED, 1)
        ids = np.array([(tok_rng.next() >> 8) % cfg.vocab_size for _ in range(B * L)], dtype=np.int32).reshape(B, L)
        model = model.cuda()
        with torch.no_grad():
            logits = model(torch.from_numpy(ids).long().cuda()).logits.float().cpu()
        tensors[f"{name}.tokens"] = torch.from_numpy(ids)
        tensors[f"{name}.logits"] = logits.contiguous()
        meta_cases.append({"name": name, "batch": B, "length": L, "config_json": config_text, "params": params})
        print(f"{name}: {len(names)} tensors, logits {tuple(logits.shape)}, max |logit| {logits.abs().max():.3f}")
    meta = {"cases": json.dumps(meta_cases), "seed": str(SEED), "made_by": "tools/make_mamba_fixtures.py",
            "torch": torch.__version__}
    import transformers
    meta["transformers"] = transformers.__version__
    save_file(tensors, os.path.join(a.out, "mamba.safetensors"), metadata=meta)


if __name__ == "__main__":
    main()
