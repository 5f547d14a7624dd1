#!/usr/bin/env python3
"""Train the built-in demo model: a small timm ViT on qtk's Fashion-MNIST split.

Run on the GPU machine, from the repository root, with the four IDX files
that datasets/fashion_mnist.sh makes (gzipped or not) in DATA:

    python3 tools/train_fashion_vit.py --data DATA --out models/fashion_vit.safetensors

Model: timm VisionTransformer(img_size=28, patch_size=4, in_chans=1,
num_classes=10, embed_dim=96, depth=6, num_heads=3, mlp_ratio=4) - 0.68M
parameters, 2.7 MB in float32. Input: pixel / 255, normalized with mean = std
= 0.5 (no resize or crop: crop_pct 1.0). Training: AdamW (lr 1e-3, weight decay
0.05), cosine schedule with 2 warm-up epochs, 30 epochs, batch 256, label
smoothing 0.1, random crop (pad 2) and horizontal flip. Seeded; TF32 off.
The checkpoint carries __metadata__ "qtk.vit" (heads, preprocessing) so that
`qtk_vit_load(path, NULL)` needs no description, and the measured FP32 test
top-1.
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(data, name):
    for suffix in ("", ".gz"):
        p = os.path.join(data, name + suffix)
        if os.path.exists(p):
            return read_idx(p)
    raise FileNotFoundError(os.path.join(data, name))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="models/fashion_vit.safetensors")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    dev = "cuda"
    xtr = torch.from_numpy(load(args.data, "train-images-idx3-ubyte").copy()).float().div(255).unsqueeze(1)
    ytr = torch.from_numpy(load(args.data, "train-labels-idx1-ubyte").astype(np.int64))
    xte = torch.from_numpy(load(args.data, "t10k-images-idx3-ubyte").copy()).float().div(255).unsqueeze(1)
    yte = torch.from_numpy(load(args.data, "t10k-labels-idx1-ubyte").astype(np.int64))
    norm = lambda x: (x - 0.5) / 0.5
    xtr, ytr, xte, yte = xtr.to(dev), ytr.to(dev), xte.to(dev), yte.to(dev)
    model = VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=96, depth=6,
                              num_heads=3, mlp_ratio=4.0).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    bs, steps_per_epoch = 256, math.ceil(60000 / 256)
    total, warm = args.epochs * steps_per_epoch, 2 * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
    g = torch.Generator(device=dev).manual_seed(args.seed)
    t0 = time.time()

    def evaluate():
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, 10000, 1000):
                correct += (model(norm(xte[i:i + 1000])).argmax(1) == yte[i:i + 1000]).sum().item()
        model.train()
        return correct / 100.0

    for ep in range(args.epochs):
        perm = torch.randperm(60000, device=dev, generator=g)
        for i in range(0, 60000, bs):
            idx = perm[i:i + bs]
            x = xtr[idx]
            # augmentation: random crop after 2-pixel padding, horizontal flip
            x = F.pad(x, (2, 2, 2, 2))
            ox, oy = torch.randint(0, 5, (2,), device=dev, generator=g).tolist()
            x = x[:, :, oy:oy + 28, ox:ox + 28]
            flip = torch.rand(x.shape[0], device=dev, generator=g) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.cross_entropy(model(norm(x)), ytr[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if ep % 5 == 4 or ep == args.epochs - 1:
            print(f"epoch {ep + 1}: loss {loss.item():.4f}, test top-1 {evaluate():.2f}%, {time.time() - t0:.0f} s",
                  flush=True)
    acc = evaluate()
    model.eval()
    sd = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    desc = {"name": "fashion_vit", "heads": 3, "crop_pct": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
            "input_quant": 1, "interpolation": "bicubic"}
    with torch.no_grad():
        logits = model(norm(xte[:100])).float().cpu()
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    save_file(sd, args.out, metadata={"qtk.vit": json.dumps(desc), "fp32_test_top1": f"{acc:.2f}",
                                      "trained_by": "tools/train_fashion_vit.py", "epochs": str(args.epochs),
                                      "seed": str(args.seed), "params": str(n_params)})
    save_file({"logits": logits}, args.out.replace(".safetensors", ".logits100.safetensors"))
    print(f"{args.out}: {n_params} parameters, {os.path.getsize(args.out)} bytes, FP32 test top-1 {acc:.2f}%")


if __name__ == "__main__":
    main()
