#!/usr/bin/env python3
"""FP32 reference logits of timm Vision Transformers for tests/test_vit.c.

Run on the GPU machine (timm 1.0.29, PyTorch 2.11), from the repository root:

    python3 tools/make_vit_fixtures.py --out tests/fixtures/vision

A deit_tiny checkpoint is 23 MB, far over the fixture budget, so the weights
are not stored. Instead every parameter is filled from PCG32 (qtk's generator,
core/rng.c), tensors in sorted-name order, elements in row-major order:
    v = lo + (hi - lo) * u,   u = (pcg32() >> 8) * 2^-24,   all in float32
with (lo, hi) per tensor listed in the metadata. The C test regenerates the
same tensors bit for bit, writes them as a safetensors checkpoint, loads it
through qtk's loader and compares logits. Input images come from the same
generator (stream 1), uniform in [-2, 2). The forward runs on the CPU in
float32 (no TF32 anywhere).

Models: timm deit_tiny_patch16_224 (random init, 224x224, 2 images); a custom
VisionTransformer on 28x28x1 images (patch 7, dim 64, depth 3, 4 heads,
10 classes; 4 images); a distilled DeiT (32x32, patch 8, dim 48, depth 2,
3 heads, 10 classes; 3 images).
"""
import argparse
import json
import math
import os

import numpy as np
import timm
import torch
from safetensors.torch import save_file
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer

from pcg32 import PCG32  # noqa: E402 (tools/ is on the path)

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
SEED = 2026


def param_range(name, shape, timm_scale=False):
    if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
        return 0.8, 1.2
    if name.endswith(".bias"):
        return -0.05, 0.05
    if name in ("cls_token", "dist_token", "pos_embed"):
        return -0.2, 0.2
    if timm_scale:
        # timm initializes Linear weights with trunc_normal(std=0.02): U(-a, a) with the same std
        a = float(np.float32(0.02 * math.sqrt(3.0)))
        return -a, a
    fan_in = math.prod(shape[1:])
    a = float(np.float32(math.sqrt(3.0 / fan_in)))
    return -a, a


def fill(model, timm_scale=False):
    rng = PCG32(SEED, 0)
    sd = model.state_dict()
    params = []
    for name in sorted(sd):
        shape = list(sd[name].shape)
        lo, hi = param_range(name, shape, timm_scale)
        v = rng.uniform(math.prod(shape), lo, hi).reshape(shape)
        sd[name] = torch.from_numpy(v)
        params.append([name, shape, lo, hi])
    model.load_state_dict(sd)
    return params


def run(name, model, n_images, heads, extra):
    model.eval()
    params = fill(model)
    cfg = model.patch_embed
    img = cfg.img_size[0]
    chans = model.patch_embed.proj.in_channels
    x = torch.from_numpy(PCG32(SEED, 1).uniform(n_images * chans * img * img, -2.0, 2.0)).reshape(
        n_images, chans, img, img)
    with torch.no_grad():
        logits = model(x).float()
    meta = {"params": params, "seed": SEED, "images": [n_images, chans, img, img], "heads": heads, **extra}
    print(f"{name}: {sum(math.prod(p[1]) for p in params)} parameters, logits {tuple(logits.shape)}, "
          f"|logits| max {logits.abs().max():.4f}")
    return {f"{name}.logits": logits.contiguous()}, {name: meta}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/vision")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    tensors, meta = {}, {}
    for name, model, n, heads, extra in [
        ("deit_tiny", timm.create_model("deit_tiny_patch16_224", pretrained=False), 2, 3,
         {"desc": "deit_tiny_patch16_224"}),
        ("custom28", VisionTransformer(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=64, depth=3,
                                       num_heads=4, mlp_ratio=4.0), 4, 4, {"desc": '{"heads": 4}'}),
        ("distilled32", VisionTransformerDistilled(img_size=32, patch_size=8, in_chans=3, num_classes=10, embed_dim=48,
                                                   depth=2, num_heads=3, mlp_ratio=4.0), 3, 3,
         {"desc": '{"heads": 3}'}),
    ]:
        t, m = run(name, model, n, heads, extra)
        tensors.update(t)
        meta.update(m)
    path = os.path.join(args.out, "vit_fp32.safetensors")
    save_file(tensors, path, metadata={"models": json.dumps(meta), "timm": timm.__version__,
                                       "torch": torch.__version__})
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
