#!/usr/bin/env python3
"""Quamba v1 (spec mamba-quamba.md section 5) transcribed in PyTorch, as the fixture qtk's CPU reference is
tested against (tests/test_quamba.c, test_transcription).

Run on the GPU machine (PyTorch and transformers; the CPU is enough) from the repository root:

    python3 tools/make_quamba_fixtures.py [--out tests/fixtures/ssm/quamba_ref.safetensors]

Two independent halves:

1. Calibration (section 5.1) with transformers' own MambaForCausalLM (its pure-PyTorch path, float32) and
   forward hooks on each mixer's in_proj, x_proj, dt_proj and out_proj: the percentile observer on x_proj's
   input (torch.quantile of |x|, alpha 0.99999, EMA 0.01 across sequences), running absmax elsewhere (dt_proj's
   output without its bias, out_proj's input rotated by the Hadamard), scale = value / 127; and the int8
   weights (section 5.2: max(max|W|, 1e-5) / 127, round half to even), out_proj fused with H_E^T / sqrt(E)
   in float64. Data: the fixture text's first 4096 bytes as 8 sequences of 512 byte tokens (test_quamba's).

2. The quantized forward (section 5.2), step by step, on the scales and codes of the quantized checkpoint qtk
   wrote (tests/fixtures/ssm/quamba_tiny, made by test_quamba's fixture writer), so that each step's int8
   codes can be compared: fused RMSNorm -> int8 (roundf, half away from zero), the W8A8 GEMMs as exact integer
   products with each call's epilogue association (prefill GEMM r (s_w acc), the sequence-last GEMM
   s_w (r acc) for in_proj and dt_proj, the decode GEMV a acc, with r and a quotients in float64 stored as
   float32), the int8 conv1d + SiLU (prefill: the int32 sum; decode: the float update), the scan on
   dequantized operands (fp16 output, fp16 state between calls), the Hadamard + quantize, out_proj in fp16.
   Cases: 2 sequences x 64 tokens then 2 decode steps (GEMM epilogues), 1 sequence x 16 tokens then 2 decode
   steps (GEMV epilogues).

Float expressions follow the spec's association; the Hadamard product and the RMSNorm's reductions are
PyTorch's, so qtk's codes may differ by one where a value sits on a rounding boundary (the test allows that
for a few codes in a thousand).
"""
import argparse
import json
import math

import torch
from safetensors.torch import load_file, save_file
from transformers import MambaForCausalLM

FIX = "tests/fixtures/ssm"
H12 = ["+-++++++++++", "--+-+-+-+-+-", "+++-++----++", "+---+--+-++-", "+++++-++----", "+-+---+--+-+",
       "++--+++-++--", "+--++---+--+", "++----+++-++", "+--+-++---+-", "++++----+++-", "+-+--+-++---"]


def hadamard(n):
    """The +-1 H_n of spec section 4 (12 * 2^k or 2^k), float64"""
    if n % 12 == 0:
        base, p = torch.tensor([[1.0 if ch == "+" else -1.0 for ch in row] for row in H12], dtype=torch.float64), n // 12
    else:
        base, p = torch.ones(1, 1, dtype=torch.float64), n
    assert p & (p - 1) == 0, n
    s = torch.ones(1, 1, dtype=torch.float64)
    while s.shape[0] < p:
        s = torch.cat([torch.cat([s, s], 1), torch.cat([s, -s], 1)], 0)
    return torch.kron(base, s)


def roundf(v):
    """C's roundf: half away from zero"""
    return torch.sign(v) * torch.floor(torch.abs(v) + 0.5)


def sat(v):
    return v.clamp(-128, 127)


def f16(v):
    return v.half().float()


def f32(x):
    return torch.tensor(x, dtype=torch.float32)


# --- 1. calibration and weights -------------------------------------------------------------------------

@torch.no_grad()
def calibrate(model_dir, seqs, alpha=0.99999, momentum=0.01):
    model = MambaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    cfg = model.config
    E = cfg.intermediate_size
    H = hadamard(E).float()
    stats = {}

    def observe(key, v, pct):
        v = v.detach().float().flatten()
        if pct:
            q = torch.quantile(v.abs(), alpha).item()
            stats[key] = q if key not in stats else stats[key] + momentum * (q - stats[key])
        else:
            m = max(v.abs().max().item(), 1e-5)
            stats[key] = max(stats.get(key, 0.0), m)

    hooks = []
    for i, layer in enumerate(model.backbone.layers):
        mx = layer.mixer

        def mk(i, name, mod):
            def hook(m, inp, out):
                x = inp[0]
                if name == "in_proj":
                    observe((i, "in_proj:input"), x, False)
                    observe((i, "in_proj:output"), out, False)
                elif name == "x_proj":
                    observe((i, "x_proj:input"), x, True)
                    observe((i, "x_proj:output"), out, False)
                    # transformers' slow path applies dt_proj's weight functionally (no module call, no hook):
                    # dt_proj's output without its bias from x_proj's dt columns
                    dt = model.backbone.layers[i].mixer.dt_proj
                    observe((i, "dt_proj:output"), out[..., :dt.in_features] @ dt.weight.T, False)
                elif name == "dt_proj":  # where a version calls the module, the same tensor
                    pass
                else:  # out_proj sees had(y) (HadLinear after the online Hadamard)
                    observe((i, "out_proj:input"), (x.float() @ H.T) / math.sqrt(E), False)
            return hook

        for name in ("in_proj", "x_proj", "dt_proj", "out_proj"):
            mod = getattr(mx, name)
            hooks.append(mod.register_forward_hook(mk(i, name, mod)))
    for s in seqs:
        model(torch.tensor([s]), use_cache=False)
    for h in hooks:
        h.remove()
    out = {}
    for (i, name), v in stats.items():
        out[f"calib.layers.{i}.{name}"] = (f32(v) / 127).reshape(1)  # value / 127 in float32
    # the int8 weights
    for i, layer in enumerate(model.backbone.layers):
        mx = layer.mixer
        ws = {"in_proj.weight": mx.in_proj.weight, "conv1d.weight": mx.conv1d.weight, "conv1d.bias": mx.conv1d.bias,
              "x_proj.weight": mx.x_proj.weight, "dt_proj.weight": mx.dt_proj.weight, "dt_proj.bias": mx.dt_proj.bias,
              "A_log": mx.A_log, "D": mx.D,
              "out_proj.weight": (mx.out_proj.weight.double() @ hadamard(E).T / math.sqrt(E)).float()}
        for name, w in ws.items():
            w = w.detach().float()
            s = w.abs().max().clamp(min=1e-5) / 127
            out[f"weights.layers.{i}.{name}"] = sat(torch.round(w / s)).to(torch.int8).contiguous()
            out[f"weights.layers.{i}.{name}.scale"] = s.reshape(1)
    return out, cfg


# --- 2. the quantized forward ---------------------------------------------------------------------------

class QModel:
    def __init__(self, folder, cfg_json):
        t = load_file(f"{folder}/model.safetensors")
        self.t = {k: v for k, v in t.items()}
        self.D, self.E = cfg_json["hidden_size"], cfg_json["intermediate_size"]
        self.N, self.R, self.K = cfg_json["state_size"], cfg_json["time_step_rank"], cfg_json["conv_kernel"]
        self.L = cfg_json["num_hidden_layers"]
        self.eps = cfg_json["layer_norm_epsilon"]
        self.had = json.loads(json.dumps(cfg_json["quantization_config"]))["hadamard"] != "none"
        self.H = hadamard(self.E).float()

    def g(self, name):
        return self.t[name]

    def s(self, name):
        return self.t[name].float().reshape(()).item()

    def state(self, B):
        return [(torch.zeros(B, self.E, self.K, dtype=torch.int64), torch.zeros(B, self.E, self.N)) for _ in range(self.L)]

    @staticmethod
    def epilogue(acc, sw, sin, sout, e):
        r, a = f32(sin / sout), f32(sw * sin / sout)  # float64 quotients stored as float32 (python floats are doubles)
        sw, v = f32(sw), acc.float()
        x = r * (sw * v) if e == 0 else sw * (r * v) if e == 1 else a * v
        return sat(torch.round(x)).to(torch.int64)

    def forward(self, tokens, states, dump, tag):
        B, L = tokens.shape
        rows = B * L
        D, E, N, R, K = self.D, self.E, self.N, self.R, self.K
        e = 2 if rows == 1 else 0
        et = 2 if rows == 1 else (1 if L > 1 else 0)
        h = self.g("backbone.embeddings.weight").float()[tokens.reshape(-1)]
        for l in range(self.L):
            p = f"backbone.layers.{l}.mixer."
            A = {k: self.s(p + k) for k in ("in_proj.input_scale", "in_proj.output_scale", "x_proj.input_scale",
                                            "x_proj.output_scale", "dt_proj.output_scale", "out_proj.input_scale")}
            # residual -> RMSNorm (mean of squares in double) -> int8 (roundf)
            ss = (h.double() ** 2).mean(-1, keepdim=True)
            rs = 1.0 / torch.sqrt(ss.float() + f32(self.eps))
            u = self.g(f"backbone.layers.{l}.norm.weight").float() * (h * rs)
            uq = sat(roundf(u / f32(A["in_proj.input_scale"]))).to(torch.int64)
            # in_proj: int8 x | z
            acc = uq @ self.g(p + "in_proj.weight").to(torch.int64).T
            xz = self.epilogue(acc, self.s(p + "in_proj.weight_scale"), A["in_proj.input_scale"], A["in_proj.output_scale"], et)
            # conv1d + SiLU on int8 x
            conv_state, ssm_state = states[l]
            w = self.g(p + "conv1d.weight").to(torch.int64).reshape(E, K)
            bq = self.g(p + "conv1d.bias").to(torch.int64)
            sw = f32(self.s(p + "conv1d.weight_scale")) * f32(A["in_proj.output_scale"])
            bias = f32(self.s(p + "conv1d.bias_scale")) * bq.float()
            x = xz[:, :E].reshape(B, L, E)
            xq = torch.zeros(B, L, E, dtype=torch.int64)
            win = conv_state.clone()
            for t in range(L):
                win = torch.cat([win[:, :, 1:], x[:, t, :, None]], 2)
                if L > 1:
                    v = sw * (win * w).sum(-1).float() + bias
                else:
                    v = bias.expand(B, E).clone()
                    for k in range(K):
                        v = v + sw * w[:, k].float() * win[:, :, k].float()
                silu = v / (1 + torch.exp(-v))
                xq[:, t] = sat(roundf(silu / f32(A["x_proj.input_scale"]))).to(torch.int64)
            states[l] = (win, ssm_state)
            xq = xq.reshape(rows, E)
            # x_proj: int8 dt | B | C; dt_proj with x_proj's output scale as its input scale
            acc = xq @ self.g(p + "x_proj.weight").to(torch.int64).T
            dbl = self.epilogue(acc, self.s(p + "x_proj.weight_scale"), A["x_proj.input_scale"], A["x_proj.output_scale"], e)
            acc = dbl[:, :R] @ self.g(p + "dt_proj.weight").to(torch.int64).T
            dtq = self.epilogue(acc, self.s(p + "dt_proj.weight_scale"), A["x_proj.output_scale"],
                                A["dt_proj.output_scale"], et)
            # the scan, fp32, on dequantized operands
            Aq = -torch.exp(f32(self.s(p + "A_log_scale")) * self.g(p + "A_log").float())
            Dc = f32(self.s(p + "D_scale")) * self.g(p + "D").float()
            db = f32(self.s(p + "dt_proj.bias_scale")) * self.g(p + "dt_proj.bias").float()
            su, sdt, sbc, sz = (f32(A["x_proj.input_scale"]), f32(A["dt_proj.output_scale"]), f32(A["x_proj.output_scale"]),
                                f32(A["in_proj.output_scale"]))
            hs = states[l][1].clone()
            y = torch.zeros(B, L, E)
            xq3, dt3, dbl3, z3 = xq.reshape(B, L, E), dtq.reshape(B, L, E), dbl.reshape(B, L, -1), xz[:, E:].reshape(B, L, E)
            for t in range(L):
                uu = su * xq3[:, t].float()
                d = sdt * dt3[:, t].float() + db
                d = torch.where(d <= 20, torch.log1p(torch.exp(d)), d)
                Bn, Cn = sbc * dbl3[:, t, R:R + N].float(), sbc * dbl3[:, t, R + N:].float()
                acc = torch.zeros(B, E)
                for n in range(N):  # in state order, as the reference's loop
                    hs[:, :, n] = torch.exp(d * Aq[:, n]) * hs[:, :, n] + (d * Bn[:, n:n + 1]) * uu
                    acc = acc + hs[:, :, n] * Cn[:, n:n + 1]
                z = sz * z3[:, t].float()
                y[:, t] = f16((acc + Dc * uu) * (z / (1 + torch.exp(-z))))
            states[l] = (states[l][0], f16(hs))
            y = y.reshape(rows, E)
            # Hadamard + quantize: roundf((H y) mu), mu = (1 / sqrt(E)) / s in float64, stored as float32
            so = A["out_proj.input_scale"]
            mu = f32((1.0 / math.sqrt(E) if self.had else 1.0) / so)
            hy = (y.double() @ hadamard(E).T).float() if self.had else y
            yq = sat(roundf(hy * mu)).to(torch.int64)
            # out_proj, fp16 out; the residual
            acc = yq @ self.g(p + "out_proj.weight").to(torch.int64).T
            h = h + f16(f32(so) * (f32(self.s(p + "out_proj.weight_scale")) * acc.float()))
            for kind, v in (("uq", uq), ("xz", xz), ("xq", xq), ("dbl", dbl), ("dtq", dtq), ("yq", yq)):
                dump[f"{tag}.layers.{l}.{kind}"] = v.to(torch.int8).contiguous()
            dump[f"{tag}.layers.{l}.y"] = y.half().contiguous()  # fp16 values: exact, half the bytes
        ss = (h.double() ** 2).mean(-1, keepdim=True)
        rs = 1.0 / torch.sqrt(ss.float() + f32(self.eps))
        t = f16(self.g("backbone.norm_f.weight").float() * (h * rs))
        dump[f"{tag}.logits"] = (t @ self.g("backbone.embeddings.weight").float().T).contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=f"{FIX}/quamba_ref.safetensors")
    args = ap.parse_args()
    data = list(open(f"{FIX}/kjv_heldout_8192.bin", "rb").read())
    seqs = [data[i * 512:(i + 1) * 512] for i in range(8)]
    out, cfg = calibrate("models/tiny_mamba1", seqs)
    folder = f"{FIX}/quamba_tiny"
    qm = QModel(folder, json.load(open(f"{folder}/config.json")))
    ev = torch.tensor(data[4096:4096 + 256])
    for tag, B, L in (("b2", 2, 64), ("b1", 1, 16)):
        toks = ev[:B * (L + 2)].reshape(B, L + 2)
        st = qm.state(B)
        qm.forward(toks[:, :L], st, out, f"{tag}.prefill")
        for k in range(2):
            qm.forward(toks[:, L + k:L + k + 1], st, out, f"{tag}.decode{k}")
    save_file(out, args.out, metadata={"source": "tools/make_quamba_fixtures.py", "torch": torch.__version__})
    print(f"wrote {args.out}: {len(out)} tensors")


if __name__ == "__main__":
    main()
