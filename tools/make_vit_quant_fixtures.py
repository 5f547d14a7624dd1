#!/usr/bin/env python3
"""The quantized ViT baseline of spec vit-baseline.md, in PyTorch, for tests/test_vit_quant.c.

Run on the GPU machine, from the repository root:

    python3 tools/make_vit_quant_fixtures.py --out tests/fixtures/vision

This is an independent PyTorch implementation of the spec (the Evol-Q
reference's e2e mode): the same quantization points in the same order,
min-max per-channel weights with bias correction, OMSE activations, PTF on the
residual sums, integer LayerNorm, quantized softmax, input quantization for
DeiT. It runs on CUDA, as the reference does, so its "divide by a constant"
steps are PyTorch's reciprocal multiplies. TF32 is off.

Weights and images come from PCG32 exactly as in tools/make_vit_fixtures.py
(weights: stream 0; calibration images: stream 2; evaluation images: stream 3;
uniform in [-2, 2)). Calibration: the reference's stage order (statistics of
the FP model on every batch; OMSE and PTF scored on the last batch).

Stored per model: every quantizer's scale and zero point (and its 90 OMSE
scores), the FP and quantized logits of the evaluation images.
"""
import argparse
import importlib.util
import json
import math
import os

import torch
import torch.nn.functional as F
import timm
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

HERE = os.path.dirname(os.path.abspath(__file__))


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


core = load_tool("make_core_fixtures")  # asym_params, ref_fq, int_ln_ref, bias_correct_ref, lp_loss
vitfx = load_tool("make_vit_fixtures")  # PCG32, fill
DEV = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


class Quantizer:
    """One quantization point: observer state, parameters, fake quantization."""

    def __init__(self, name, kind, bits):
        self.name, self.kind, self.lo, self.hi = name, kind, 0, (1 << bits) - 1
        self.min = self.max = self.s = self.z = None
        self.scores = None

    def update(self, v):
        if self.kind == "minmax":  # weights: per output channel
            r = v.reshape(v.shape[0], -1)
            cmx, cmn = r.amax(1), r.amin(1)
        elif self.kind == "ptf":  # per channel of the last axis
            r = v.reshape(-1, v.shape[-1])
            cmx, cmn = r.amax(0), r.amin(0)
        else:  # omse: layer-wise
            cmx, cmn = v.max(), v.min()
        self.max = cmx if self.max is None else torch.max(self.max, cmx)
        self.min = cmn if self.min is None else torch.min(self.min, cmn)

    def params(self, x):
        lo, hi = self.lo, self.hi
        if self.kind == "minmax":
            self.s, self.z = core.asym_params(self.min, self.max, lo, hi)
        elif self.kind == "omse":
            best, scores = 1e10, []
            for i in range(90):
                ns, nz = core.asym_params(self.min * (1.0 - (i * 0.01)), self.max * (1.0 - (i * 0.01)), lo, hi)
                xq = ((x / ns + nz).round().clamp(lo, hi) - nz) * ns
                score = core.lp_loss(x, xq)
                scores.append(float(score))
                if score < best:
                    best, self.s, self.z = score, ns, nz
            self.scores = torch.tensor(scores)
        else:  # ptf
            s8, z = core.asym_params(self.min.min(), self.max.max(), lo, hi)
            s4 = s8 / 2
            s2 = s4 / 2
            s1 = s2 / 2
            mask = torch.ones_like(self.max)
            for j in range(x.shape[-1]):
                data = x[..., j].unsqueeze(-1)
                sc = []
                for sk in (s1, s2, s4, s8):
                    sc.append(core.lp_loss(data, ((data / sk + z).round().clamp(lo, hi) - z) * sk))
                mask[j] *= 2 ** sc.index(min(sc))
            self.s, self.z = s1 * mask, z

    def fq(self, x):
        s, z = self.s, self.z
        if self.kind == "minmax":
            shape = [-1] + [1] * (x.dim() - 1)
            s, z = s.reshape(shape), z.reshape(shape)
        return core.ref_fq(x, s, z, self.lo, self.hi)


class QuantViT:
    def __init__(self, model, w_bits, a_bits, input_quant):
        self.m, self.mode, self.last = model, "fp", False
        self.q, self.weff = {}, {}
        depth = len(model.blocks)

        def add(name, kind, bits):
            self.q[name] = Quantizer(name, kind, bits)

        if input_quant:
            add("input", "omse", a_bits)
        add("patch_embed.proj.weight", "minmax", w_bits)
        for n in ("patch_embed.out", "embed.cls_concat", "pos_embed"):
            add(n, "omse", a_bits)
        add("embed.out", "ptf", a_bits)
        for i in range(depth):
            b = f"blocks.{i}."
            for n, kind, bits in [("norm1.out", "omse", a_bits), ("attn.qkv.weight", "minmax", w_bits),
                                  ("attn.qkv.out", "omse", a_bits), ("attn.scores", "omse", a_bits),
                                  ("attn.softmax", "omse", a_bits), ("attn.context", "omse", a_bits),
                                  ("attn.proj.weight", "minmax", w_bits), ("attn.proj.out", "omse", a_bits),
                                  ("resid1", "ptf", a_bits), ("norm2.out", "omse", a_bits),
                                  ("mlp.fc1.weight", "minmax", w_bits), ("mlp.act.out", "omse", a_bits),
                                  ("mlp.fc2.weight", "minmax", w_bits), ("mlp.fc2.out", "omse", a_bits),
                                  ("resid2", "ptf", a_bits)]:
                add(b + n, kind, bits)
        add("norm.out", "omse", a_bits)
        add("head.weight", "minmax", w_bits)
        add("head.out", "omse", a_bits)

    def to(self, dev):
        self.m = self.m.to(dev)
        self.weff = {k: v.to(dev) for k, v in self.weff.items()}
        for q in self.q.values():
            q.s, q.z = q.s.to(dev), torch.as_tensor(q.z).to(dev)

    def calibrate_weights(self):
        sd = dict(self.m.named_parameters())
        for name, q in self.q.items():
            if q.kind != "minmax":
                continue
            w = sd[name]
            q.update(w)
            q.params(w)
            self.weff[name] = core.bias_correct_ref(w, q.fq(w))

    def tap(self, name, t):
        q = self.q.get(name)
        if q is None:
            return t
        if self.mode == "calib":
            q.update(t)
            if self.last:
                q.params(t)
            return t
        if self.mode == "quant":
            return q.fq(t)
        return t

    def weight(self, name, w):
        return self.weff[name] if self.mode == "quant" else w

    def norm(self, x, ln, qin, qout):
        if self.mode == "quant":
            C = x.shape[-1]
            s_in, s_out = self.q[qin].s, self.q[qout].s
            per_channel = s_in.numel() > 1
            y, _, _, _ = core.int_ln_ref(x.reshape(-1, C), s_in.reshape(-1) if per_channel else s_in.reshape(1),
                                         s_out.reshape(1), ln.weight, ln.bias, per_channel)
            return y.reshape(x.shape)
        return F.layer_norm(x, (x.shape[-1],), ln.weight, ln.bias, ln.eps)

    def forward(self, x):
        m = self.m
        B = x.shape[0]
        x = self.tap("input", x)
        pe = m.patch_embed.proj
        y = F.conv2d(x, self.weight("patch_embed.proj.weight", pe.weight), pe.bias, stride=pe.stride)
        y = y.flatten(2).transpose(1, 2)
        y = self.tap("patch_embed.out", y)
        x = torch.cat([m.cls_token.expand(B, -1, -1), y], dim=1)
        x = self.tap("embed.cls_concat", x)
        pos = self.tap("pos_embed", m.pos_embed)
        x = self.tap("embed.out", x + pos)
        prev = "embed.out"
        for i, blk in enumerate(m.blocks):
            b = f"blocks.{i}."
            h = self.tap(b + "norm1.out", self.norm(x, blk.norm1, prev, b + "norm1.out"))
            at = blk.attn
            qkv = self.tap(b + "attn.qkv.out", F.linear(h, self.weight(b + "attn.qkv.weight", at.qkv.weight), at.qkv.bias))
            T, C = qkv.shape[1], qkv.shape[2] // 3
            H = at.num_heads
            qkv = qkv.reshape(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            s = self.tap(b + "attn.scores", (q @ k.transpose(-2, -1)) * at.scale)
            p = self.tap(b + "attn.softmax", s.softmax(dim=-1))
            ctx = self.tap(b + "attn.context", (p @ v).transpose(1, 2).reshape(B, T, C))
            a = self.tap(b + "attn.proj.out", F.linear(ctx, self.weight(b + "attn.proj.weight", at.proj.weight), at.proj.bias))
            x = self.tap(b + "resid1", x + a)
            h = self.tap(b + "norm2.out", self.norm(x, blk.norm2, b + "resid1", b + "norm2.out"))
            mlp = blk.mlp
            u = F.gelu(F.linear(h, self.weight(b + "mlp.fc1.weight", mlp.fc1.weight), mlp.fc1.bias))
            u = self.tap(b + "mlp.act.out", u)
            f = self.tap(b + "mlp.fc2.out", F.linear(u, self.weight(b + "mlp.fc2.weight", mlp.fc2.weight), mlp.fc2.bias))
            x = self.tap(b + "resid2", x + f)
            prev = b + "resid2"
        x = self.norm(x, m.norm, prev, "norm.out")
        feat = self.tap("norm.out", x[:, 0])
        return self.tap("head.out", F.linear(feat, self.weight("head.weight", m.head.weight), m.head.bias))


def images(stream, n, chans, size):
    v = vitfx.PCG32(vitfx.SEED, stream).uniform(n * chans * size * size, -2.0, 2.0)
    return torch.from_numpy(v).reshape(n, chans, size, size)


def run(name, model, desc, input_quant, w_bits, n_batches, batch, n_eval, timm_scale):
    model.eval()
    params = vitfx.fill(model, timm_scale)
    model = model.to(DEV)
    chans, size = model.patch_embed.proj.in_channels, model.patch_embed.img_size[0]
    calib = images(2, n_batches * batch, chans, size).to(DEV)
    ev = images(3, n_eval, chans, size).to(DEV)
    qv = QuantViT(model, w_bits, 8, input_quant)
    out = {}
    with torch.no_grad():
        qv.mode = "fp"
        out[f"{name}.logits_fp"] = qv.forward(ev).cpu()
        qv.calibrate_weights()
        qv.mode = "calib"
        for i in range(n_batches):
            qv.last = i == n_batches - 1
            qv.forward(calib[i * batch:(i + 1) * batch])
        qv.mode = "quant"
        out[f"{name}.logits_q"] = qv.forward(ev).cpu()
        # PyTorch's own quantized forward on the CPU with the same parameters: how far two
        # float32 backends drift apart through rounding-boundary flips alone
        qv.to("cpu")
        out[f"{name}.logits_q_cpu"] = qv.forward(ev.cpu())
    for qn, q in qv.q.items():
        out[f"{name}.q.{qn}.scale"] = q.s.reshape(-1).float().cpu()
        out[f"{name}.q.{qn}.zero"] = q.z.reshape(-1).float().cpu()
        if q.scores is not None:
            out[f"{name}.q.{qn}.omse_scores"] = q.scores.float()
    lq, lf, lc = out[f"{name}.logits_q"], out[f"{name}.logits_fp"], out[f"{name}.logits_q_cpu"]
    print(f"{name}: {len(qv.q)} quantizers; W{w_bits}A8 logits vs FP: max |diff| {float((lq - lf).abs().max()):.4f}, "
          f"argmax agreement {float((lq.argmax(1) == lf.argmax(1)).float().mean()):.2f}; quantized CPU vs GPU: "
          f"{int((lc == lq).sum())} of {lq.numel()} equal, max |diff| {float((lc - lq).abs().max()):.4f}")
    meta = {"params": params, "seed": vitfx.SEED, "desc": desc, "w_bits": w_bits, "a_bits": 8,
            "input_quant": input_quant, "calib": [n_batches, batch], "eval": n_eval, "timm_scale": timm_scale,
            "image": [chans, size], "quantizers": list(qv.q.keys())}
    return {k: v.contiguous() for k, v in out.items()}, {name: meta}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/vision")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tensors, meta = {}, {}
    # (name, model, description, input quantization, weight bits, calibration batches, batch, eval images,
    #  timm-scale weights). deit_tiny_w8_wide keeps unit-variance weights: large attention scores, where
    #  rounding-boundary flips between any two float32 backends compound over 12 blocks.
    for name, model, desc, iq, wb, nb, bs, ne, ts in [
        ("custom28_w4", VisionTransformer(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=64, depth=3,
                                          num_heads=4, mlp_ratio=4.0), '{"heads": 4, "input_quant": 1}', 1, 4, 4, 16, 8,
         False),
        ("deit_tiny_w8", timm.create_model("deit_tiny_patch16_224", pretrained=False), "deit_tiny_patch16_224", 1, 8,
         2, 4, 2, True),
        ("deit_tiny_w4", timm.create_model("deit_tiny_patch16_224", pretrained=False), "deit_tiny_patch16_224", 1, 4,
         2, 4, 2, True),
        ("deit_tiny_w8_wide", timm.create_model("deit_tiny_patch16_224", pretrained=False), "deit_tiny_patch16_224", 1,
         8, 2, 4, 2, False),
    ]:
        t, m = run(name, model, desc, iq, wb, nb, bs, ne, ts)
        tensors.update(t)
        meta.update(m)
    path = os.path.join(args.out, "vit_quant.safetensors")
    save_file(tensors, path, metadata={"models": json.dumps(meta), "timm": timm.__version__, "torch": torch.__version__})
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
