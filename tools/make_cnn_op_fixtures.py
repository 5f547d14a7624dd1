#!/usr/bin/env python3
"""PyTorch references for the CNN ops of core/ops.h (tests/test_cnn_ops.c), on the CPU in float32.

Run on the GPU machine (it has PyTorch), from the repository root:

    python3 tools/make_cnn_op_fixtures.py --out tests/fixtures/core

cnn_ops.safetensors holds, per case: F.conv2d (dense and depthwise, with and without bias) as x, w, b, y;
eval-mode F.batch_norm followed by each activation (relu, relu6, hardswish, hardsigmoid, silu, gelu) as
x, gamma, beta, mean, var, y. __metadata__ "cases" (JSON) lists them with their shapes.
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ACTS = {"none": lambda v: v, "relu": F.relu, "relu6": F.relu6, "hardswish": F.hardswish,
        "hardsigmoid": F.hardsigmoid, "silu": F.silu, "gelu": F.gelu}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/core")
    a = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(7)
    tensors, cases = {}, []
    # (B, C, H, W, O, KH, KW, stride_h, stride_w, pad_h, pad_w, groups)
    convs = [(2, 16, 15, 17, 24, 3, 3, 2, 2, 1, 1, 1), (2, 24, 8, 9, 40, 1, 1, 1, 1, 0, 0, 1),
             (1, 3, 33, 31, 16, 7, 7, 2, 2, 3, 3, 1), (2, 32, 14, 13, 32, 3, 3, 1, 1, 1, 1, 32),
             (2, 32, 14, 13, 32, 5, 5, 2, 2, 2, 2, 32)]
    for i, (B, C, H, W, O, KH, KW, sh, sw, ph, pw, groups) in enumerate(convs):
        x = torch.randn(B, C, H, W, generator=g)
        w = torch.randn(O, C // groups, KH, KW, generator=g) * 0.2
        b = torch.randn(O, generator=g) * 0.5
        bias = b if i % 2 == 0 else None
        y = F.conv2d(x, w, bias, stride=(sh, sw), padding=(ph, pw), groups=groups)
        name = f"conv{i}"
        tensors.update({f"{name}.x": x, f"{name}.w": w, f"{name}.b": b, f"{name}.y": y.contiguous()})
        cases.append(dict(name=name, kind="conv", shape=[B, C, H, W, O, KH, KW, sh, sw, ph, pw, groups],
                          bias=bias is not None))
    B, C, H, W = 2, 24, 10, 11
    x = torch.randn(B, C, H, W, generator=g) * 3
    gamma, beta = torch.rand(C, generator=g) + 0.5, torch.randn(C, generator=g) * 0.5
    mean, var = torch.randn(C, generator=g), torch.rand(C, generator=g) * 2 + 0.1
    bn = F.batch_norm(x, mean, var, gamma, beta, training=False, eps=1e-5)
    for act, f in ACTS.items():
        name = f"bn_{act}"
        tensors.update({f"{name}.x": x.clone(), f"{name}.gamma": gamma.clone(), f"{name}.beta": beta.clone(),
                        f"{name}.mean": mean.clone(), f"{name}.var": var.clone(), f"{name}.y": f(bn).contiguous()})
        cases.append(dict(name=name, kind="bn", act=act, shape=[B, C, H, W], eps=1e-5))
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "cnn_ops.safetensors")
    save_file(tensors, path, metadata={"cases": json.dumps(cases), "torch": torch.__version__})
    print(f"wrote {path}: {len(cases)} cases (torch {torch.__version__})")


if __name__ == "__main__":
    main()
