#!/usr/bin/env python3
"""Apply a qtk export (quant.safetensors, docs/export.md) to the timm model in PyTorch and compare the
quantized logits with qtk's.

    qtk eval CONFIG.yaml --quant RUN/quant.safetensors --logits eval.safetensors   # on any machine
    python3 tools/apply_export.py --checkpoint models/fashion_vit.safetensors \\
        --export RUN/quant.safetensors --logits eval.safetensors [--device cuda]

The checkpoint is a timm VisionTransformer state dict (its shape gives the architecture; the number of heads
comes from its "qtk.vit" metadata or --heads). Every quantization point of the export becomes a fake quantizer
at its place in the forward (tools/make_vit_quant_fixtures.py's independent PyTorch implementation of the
quantized ViT: OMSE points per tensor, PTF points per channel, weights per output channel, integer LayerNorm).
The weights are the export's "<name>.weight_q" where it has them (output.weights: true), else they are
fake-quantized from the scales here (and bias-corrected when the export says so). The inputs are the ones qtk
evaluated ("inputs" of --logits), so preprocessing plays no part in the comparison.

Prints how close the two are: FP32 logits (timm vs qtk) and quantized logits (this script vs qtk), as max
|diff|, max relative diff, equal logits and argmax agreement.
"""
import argparse
import importlib.util
import json
import os

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_vit(sd, heads):
    """The timm ViT whose state dict is sd (class token, no distillation token)."""
    C = sd["cls_token"].shape[-1]
    pw = sd["patch_embed.proj.weight"]
    patch, chans = pw.shape[-1], pw.shape[1]
    grid = int(round((sd["pos_embed"].shape[1] - 1) ** 0.5))
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    mlp = sd["blocks.0.mlp.fc1.weight"].shape[0]
    m = VisionTransformer(img_size=grid * patch, patch_size=patch, in_chans=chans, num_classes=sd["head.weight"].shape[0],
                          embed_dim=C, depth=depth, num_heads=heads, mlp_ratio=mlp / C)
    m.load_state_dict(sd)
    return m.eval()


def compare(name, mine, theirs):
    d = (mine - theirs).abs()
    rel = float(d.max() / theirs.abs().max().clamp_min(1e-30))
    agree = int((mine.argmax(1) == theirs.argmax(1)).sum())
    print(f"{name}: max |diff| {float(d.max()):.3g} (relative {rel:.3g}), {int((d == 0).sum())} of {d.numel()} logits "
          f"equal, argmax agrees on {agree} of {mine.shape[0]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--export", required=True)
    ap.add_argument("--logits", required=True, help="qtk eval --logits output")
    ap.add_argument("--heads", type=int, default=0, help="attention heads (default: the checkpoint's qtk.vit metadata)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    fx = load_tool("make_vit_quant_fixtures")
    core = fx.core

    with safe_open(args.checkpoint, "pt") as f:
        meta = f.metadata() or {}
    heads = args.heads or json.loads(meta.get("qtk.vit", "{}")).get("heads", 0)
    if not heads:
        raise SystemExit(f"{args.checkpoint}: no qtk.vit metadata with the heads; give --heads")
    model = build_vit(load_file(args.checkpoint), heads)

    with safe_open(args.export, "pt") as f:
        emeta = f.metadata()
        ex = {k: f.get_tensor(k) for k in f.keys()}
    if emeta.get("format_version") != "1":
        raise SystemExit(f"{args.export}: export format {emeta.get('format_version')}, this script reads format 1")
    cfg = json.loads(emeta["config"])
    points = json.loads(emeta["quantizers"])
    qv = fx.QuantViT(model, cfg["w_bits"], cfg["a_bits"], cfg.get("quant_input", False))
    if set(qv.q) != {p["name"] for p in points}:
        raise SystemExit(f"{args.export}: its points {sorted(p['name'] for p in points)} are not this model's")
    off = {p["name"] for p in points if not p["enabled"]}
    sd = dict(model.named_parameters())
    for name, q in qv.q.items():
        s, z = ex[name + ".scale"], ex[name + ".zero_point"]
        if q.kind == "omse":  # per tensor
            q.s, q.z = s.reshape(()), z.reshape(())
        elif q.kind == "ptf":  # per channel of the last axis, one shared zero point
            q.s, q.z = s, z[0]
        else:  # weights, per output channel
            q.s, q.z = s, z
            if name + ".weight_q" in ex:  # stored as the registry's (O, K) view: back to the module's shape
                qv.weff[name] = ex[name + ".weight_q"].reshape(sd[name].shape)
            else:
                w = sd[name].detach()
                wq = q.fq(w)
                qv.weff[name] = core.bias_correct_ref(w, wq) if cfg["bias_corr"] else wq
    if not cfg["int_layernorm"]:
        raise SystemExit(f"{args.export}: made with int_layernorm off; this script implements the integer LayerNorm only")
    tap = qv.tap
    qv.tap = lambda name, t: t if name in off else tap(name, t)  # points switched off pass their tensor through

    lg = load_file(args.logits)
    x = lg["inputs"]
    chans, size = model.patch_embed.proj.in_channels, model.patch_embed.img_size[0]
    x = x.reshape(x.shape[0], chans, size, size).to(args.device)
    qv.to(args.device)
    with torch.no_grad():
        qv.mode = "fp"
        fp = qv.forward(x).cpu()
        qv.mode = "quant"
        qlog = qv.forward(x).cpu()
    y = lg["labels"].long()
    print(f"{args.export} on {x.shape[0]} inputs ({args.device}): W{cfg['w_bits']}A{cfg['a_bits']}, "
          f"{'exported' if any(k.endswith('.weight_q') for k in ex) else 're-derived'} weights")
    compare("FP32 logits, timm vs qtk", fp, lg["fp32"])
    compare("quantized logits, PyTorch with the export vs qtk", qlog, lg["quantized"])
    for nm, l in (("timm FP32", fp), ("PyTorch quantized", qlog), ("qtk FP32", lg["fp32"]), ("qtk quantized", lg["quantized"])):
        print(f"  top-1 {nm}: {100.0 * float((l.argmax(1) == y).float().mean()):.2f}%")


if __name__ == "__main__":
    main()
