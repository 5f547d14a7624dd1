#!/usr/bin/env python3
"""Reference fixtures for the core/ test suites, computed with PyTorch.

Run on the GPU machine, from the repository root:

    python3 tools/make_core_fixtures.py --out tests/fixtures/core

The reference observers run on CUDA, as the Evol-Q / FQ-ViT code does, so
their "divide by a constant" steps are PyTorch's reciprocal multiplies
(spec vit-baseline.md section 3.3). TF32 is off. Outputs (each well under 2 MB):

  fakequant.safetensors   x, scale, zero, y_ref (FQ-ViT uniform quantizer:
                          clamp(round(x / s + z))), y_torch (torch.fake_quantize_*)
                          for per-tensor / per-channel / per-group cases, 2..8 bits,
                          with exact .5 ties
  observers.safetensors   min-max, symmetric, EMA, percentile (FQ-ViT and Quamba
                          forms), OMSE and PTF parameters over several batches
  hadamard.safetensors    had(x) for 2^k and 12*2^k sizes from explicit matrices
                          (Sylvester, and Quamba's H12 literal from the spec)
  convert.safetensors     every float16 bit pattern as float32; float32 -> f16/bf16
  torch_written.safetensors  tensors of every dtype written by safetensors.torch
  quantops.safetensors    integer LayerNorm (PTF, scalar and unquantized inputs)
                          and weight bias correction, as spec sections 7 and 5

Each file's __metadata__ "cases" (JSON) describes its cases for the C tests.
"""
import argparse
import json
import math
import os

import torch
from safetensors.torch import save_file

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
DEV = "cuda" if torch.cuda.is_available() else "cpu"
EPS = torch.finfo(torch.float32).eps


def qrange(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def bitwise_equal(a, b):
    return torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


# ---------------------------------------------------------------- fake quant
def ref_fq(x, s, z, lo, hi):
    # models/ptq/quantizer/uniform.py: quant then dequantize
    q = (x / s + z).round().clamp(lo, hi)
    return (q - z) * s


def make_fakequant(g):
    tensors, cases = {}, []

    def add(name, meta, **ts):
        for k, v in ts.items():
            tensors[f"{name}.{k}"] = v.contiguous().cpu()
        cases.append(dict(name=name, **meta))

    # per tensor: every bit width and sign, random values and exact ties
    for bits in range(2, 9):
        for signed in (False, True):
            lo, hi = qrange(bits, signed)
            for kind in ("random", "ties"):
                if kind == "random":
                    s = float(torch.empty(1).uniform_(0.01, 0.5, generator=g))
                    x = torch.randn(512, generator=g) * s * (hi - lo) / 3
                    x[:8] = torch.tensor([0.0, -0.0, -0.1 * s, 0.1 * s, 1e6, -1e6, 0.49 * s, -0.51 * s])
                else:
                    # power-of-two scale: x / s is exact, so x / s + z lands on k + 0.5
                    s = 2.0 ** -int(torch.randint(1, 6, (1,), generator=g))
                    k = torch.randint(lo - 3, hi + 3, (512,), generator=g).float()
                    x = None
                zi = 0 if signed and kind == "ties" else int(torch.randint(lo, hi + 1, (1,), generator=g))
                if x is None:
                    x = (k + 0.5 - zi) * s
                s = float(torch.tensor(s, dtype=torch.float32))
                sx, zx = torch.tensor([s]), torch.tensor([float(zi)])
                y_ref = ref_fq(x.to(DEV), sx.to(DEV), zx.to(DEV), lo, hi).cpu()
                assert bitwise_equal(y_ref, ref_fq(x, sx, zx, lo, hi)), "ref fake-quant CPU != CUDA"
                y_t = torch.fake_quantize_per_tensor_affine(x, s, zi, lo, hi)
                y_tc = torch.fake_quantize_per_tensor_affine(x.to(DEV), s, zi, lo, hi).cpu()
                add(f"t{bits}{'s' if signed else 'u'}_{kind}",
                    dict(gran="tensor", bits=bits, signed=signed, axis=0, group=0, shape=[512],
                         torch_cpu_equals_cuda=bool(bitwise_equal(y_t, y_tc))),
                    x=x, scale=sx, zero=zx, y_ref=y_ref, y_torch=y_t)

    # per channel, several axes
    for shape, axis, bits, signed in [((16, 257), 0, 4, False), ((33, 24), 1, 8, False),
                                      ((4, 8, 9), 1, 3, True), ((64, 48), 0, 8, True)]:
        lo, hi = qrange(bits, signed)
        C = shape[axis]
        s = torch.empty(C).uniform_(0.005, 0.2, generator=g)
        z = torch.randint(lo, hi + 1, (C,), generator=g).float()
        if signed:
            z[::2] = 0
        x = torch.randn(*shape, generator=g) * 0.3 * (hi - lo) * s.mean()
        bshape = [1] * len(shape)
        bshape[axis] = C
        y_ref = ref_fq(x.to(DEV), s.view(bshape).to(DEV), z.view(bshape).to(DEV), lo, hi).cpu()
        y_t = torch.fake_quantize_per_channel_affine(x, s, z.int(), axis, lo, hi)
        y_tc = torch.fake_quantize_per_channel_affine(x.to(DEV), s.to(DEV), z.int().to(DEV), axis, lo, hi).cpu()
        add(f"c{bits}{'s' if signed else 'u'}_axis{axis}_{'x'.join(map(str, shape))}",
            dict(gran="channel", bits=bits, signed=signed, axis=axis, group=0, shape=list(shape),
                 torch_cpu_equals_cuda=bool(bitwise_equal(y_t, y_tc))),
            x=x, scale=s, zero=z, y_ref=y_ref, y_torch=y_t)

    # per group: params laid out (outer, L/group, inner)
    for shape, axis, group, bits in [((8, 256), 1, 64, 4), ((128, 6), 0, 32, 3), ((4, 96), 1, 32, 8)]:
        lo, hi = qrange(bits, False)
        outer = math.prod(shape[:axis])
        L = shape[axis]
        inner = math.prod(shape[axis + 1:])
        ng = L // group
        x = torch.randn(*shape, generator=g)
        xv = x.reshape(outer, ng, group, inner)
        mn = xv.amin(dim=2, keepdim=True)
        mx = xv.amax(dim=2, keepdim=True)
        s = ((mx - mn) / float(hi - lo)).clamp(min=EPS)
        z = (lo - torch.round(mn / s)).clamp(lo, hi)
        y_ref = ref_fq(xv.to(DEV), s.to(DEV), z.to(DEV), lo, hi).cpu().reshape(shape)
        add(f"g{bits}u_axis{axis}_group{group}",
            dict(gran="group", bits=bits, signed=False, axis=axis, group=group, shape=list(shape)),
            x=x, scale=s.reshape(-1), zero=z.reshape(-1), y_ref=y_ref)
    return tensors, cases


# ---------------------------------------------------------------- observers
def asym_params(mn, mx, lo, hi):
    # models/ptq/observer/base.py get_quantization_params, asymmetric branch
    scale = (mx - mn) / float(hi - lo)
    scale.clamp_(EPS)
    zero = lo - torch.round(mn / scale)
    zero.clamp_(lo, hi)
    return scale, zero


def sym_params(mn, mx, lo, hi):
    mx = torch.max(-mn, mx)
    scale = mx / (float(hi - lo) / 2)
    scale.clamp_(EPS)
    return scale, torch.zeros_like(mx)


def lp_loss(pred, tgt, p=2.0):
    return (pred - tgt).abs().pow(p).mean()


def channel_rows(v, axis):
    # reshape_tensor: channels first, everything else flattened
    return v.movedim(axis, 0).reshape(v.shape[axis], -1)


def make_observers(g):
    tensors, cases = {}, []

    def put(name, meta, **ts):
        for k, v in ts.items():
            tensors[f"{name}.{k}"] = torch.as_tensor(v).reshape(-1).cpu().float().clone()
        cases.append(dict(name=name, **meta))

    def batches(n, shape, outliers=True):
        out = []
        for _ in range(n):
            b = torch.randn(*shape, generator=g)
            if outliers:
                b.view(-1)[torch.randint(0, b.numel(), (5,), generator=g)] *= 12.0
            out.append(b)
        return out

    # min-max per output channel on a conv weight, unsigned asym (the e2e weights)
    w = torch.randn(32, 3, 4, 4, generator=g) * 0.05
    rows = channel_rows(w.to(DEV), 0)
    for bits in (3, 4, 8):
        lo, hi = qrange(bits, False)
        s, z = asym_params(rows.amin(1), rows.amax(1), lo, hi)
        put(f"minmax_w{bits}", dict(kind="minmax", bits=bits, signed=False, channel_wise=True, axis=0,
                                    batches=1, shape=list(w.shape)), b0=w, scale=s, zero=z)
    # symmetric per channel, int8 (the reference form divides by 127.5)
    lo, hi = qrange(8, True)
    s, z = sym_params(rows.amin(1), rows.amax(1), lo, hi)
    put("minmax_sym_w8", dict(kind="minmax", bits=8, signed=True, channel_wise=True, axis=0, batches=1,
                              shape=list(w.shape)), b0=w, scale=s, zero=z)

    shape = (4, 50, 64)
    lo, hi = qrange(8, False)
    # min-max, layer-wise, over 3 batches
    bs = batches(3, shape)
    mn = min(b.min() for b in bs).to(DEV)
    mx = max(b.max() for b in bs).to(DEV)
    s, z = asym_params(mn, mx, lo, hi)
    put("minmax_a8", dict(kind="minmax", bits=8, signed=False, channel_wise=False, axis=0, batches=3,
                          shape=list(shape)), **{f"b{i}": b for i, b in enumerate(bs)}, scale=s, zero=z)

    # EMA, layer-wise and channel-wise (last axis)
    for cw in (False, True):
        bs = batches(3, shape)
        mx_v = mn_v = None
        for b in bs:
            r = channel_rows(b.to(DEV), -1)
            cmx, cmn = r.amax(1), r.amin(1)
            if mx_v is None:
                mx_v, mn_v = cmx, cmn
            else:
                mx_v = mx_v + 0.01 * (cmx - mx_v)
                mn_v = mn_v + 0.01 * (cmn - mn_v)
            if not cw:
                mx_v, mn_v = mx_v.max(), mn_v.min()
        s, z = asym_params(mn_v, mx_v, lo, hi)
        put(f"ema_a8_{'channel' if cw else 'layer'}",
            dict(kind="ema", bits=8, signed=False, channel_wise=cw, axis=-1, batches=3, shape=list(shape)),
            **{f"b{i}": b for i, b in enumerate(bs)}, scale=s, zero=z)

    # percentile (FQ-ViT): quantiles of each batch, then EMA
    bs = batches(3, shape)
    mx_v = mn_v = None
    for b in bs:
        v = b.to(DEV).reshape(-1)
        cmx, cmn = torch.quantile(v, 0.99999), torch.quantile(v, 1.0 - 0.99999)
        if mx_v is None:
            mx_v, mn_v = cmx, cmn
        else:
            mx_v = mx_v + 0.01 * (cmx - mx_v)
            mn_v = mn_v + 0.01 * (cmn - mn_v)
    s, z = asym_params(mn_v, mx_v, lo, hi)
    put("percentile_a8", dict(kind="percentile", bits=8, signed=False, channel_wise=False, axis=0, batches=3,
                              shape=list(shape)), **{f"b{i}": b for i, b in enumerate(bs)}, scale=s, zero=z,
        max_val=mx_v, min_val=mn_v)

    # percentile of |x| per sample, EMA, scale = value / 127 (Quamba's x_proj input)
    bs = batches(3, (50, 64))
    m = None
    for b in bs:
        q = torch.quantile(b.to(DEV).abs().reshape(-1), 0.99999)
        m = q if m is None else m + 0.01 * (q - m)
    s = m / 127
    put("percentile_abs_s8", dict(kind="percentile_abs", bits=8, signed=True, channel_wise=False, axis=0,
                                  batches=3, shape=[50, 64]), **{f"b{i}": b for i, b in enumerate(bs)},
        scale=s, zero=torch.zeros(1), max_val=m)

    # OMSE, layer-wise, 8 and 4 bits
    for bits in (8, 4):
        lo, hi = qrange(bits, False)
        bs = batches(3, shape)
        mn = min(b.min() for b in bs).to(DEV)
        mx = max(b.max() for b in bs).to(DEV)
        x = bs[-1].to(DEV)
        best, best_i, scores = 1e10, -1, []
        for i in range(90):
            new_max = mx * (1.0 - (i * 0.01))
            new_min = mn * (1.0 - (i * 0.01))
            ns, nz = asym_params(new_min, new_max, lo, hi)
            xq = ((x / ns + nz).round().clamp(lo, hi) - nz) * ns
            score = lp_loss(x, xq)
            scores.append(float(score))
            if score < best:
                best, best_i, bs_s, bs_z = score, i, ns, nz
        put(f"omse_a{bits}", dict(kind="omse", bits=bits, signed=False, channel_wise=False, axis=0, batches=3,
                                  shape=list(shape), best_index=best_i),
            **{f"b{i}": b for i, b in enumerate(bs)}, scale=bs_s, zero=bs_z, scores=torch.tensor(scores))

    # PTF: per-channel power-of-two factors, one zero point
    shape_p = (4, 50, 32)
    lo, hi = qrange(8, False)
    chs = torch.exp(torch.empty(32).uniform_(-3.0, 1.0, generator=g))
    bs = [torch.randn(*shape_p, generator=g) * chs + 0.3 * chs for _ in range(3)]
    mx_c = mn_c = None
    for b in bs:
        r = channel_rows(b.to(DEV), -1)
        cmx, cmn = r.amax(1), r.amin(1)
        mx_c = cmx if mx_c is None else torch.max(mx_c, cmx)
        mn_c = cmn if mn_c is None else torch.min(mn_c, cmn)
    x = bs[-1].to(DEV)
    s8, z = asym_params(mn_c.min(), mx_c.max(), lo, hi)
    s4 = s8 / 2
    s2 = s4 / 2
    s1 = s2 / 2
    mask = torch.ones_like(mx_c)
    all_scores = []
    for j in range(x.shape[2]):
        data = x[..., j].unsqueeze(-1)
        sc = []
        for sk in (s1, s2, s4, s8):
            dq = ((data / sk + z).round().clamp(lo, hi) - z) * sk
            sc.append(lp_loss(data, dq))
        all_scores.append([float(v) for v in sc])
        mask[j] *= 2 ** sc.index(min(sc))
    put("ptf_a8", dict(kind="ptf", bits=8, signed=False, channel_wise=True, axis=-1, batches=3,
                       shape=list(shape_p)), **{f"b{i}": b for i, b in enumerate(bs)}, scale=s1 * mask,
        zero=z, scores=torch.tensor(all_scores))

    # torch.quantile on its own (float32 rank, lerp)
    qcases = []
    for n in (7, 1000, 12800):
        v = torch.randn(n, generator=g)
        for q in (0.0, 0.25, 0.5, 0.9, 0.99999, 0.00001, 1.0):
            r = torch.quantile(v.to(DEV), q).cpu()
            qcases.append((n, q, r, torch.quantile(v, q)))
        tensors[f"quantile_n{n}.v"] = v
    tensors["quantile.results"] = torch.stack([c[2] for c in qcases])
    tensors["quantile.results_cpu"] = torch.stack([c[3] for c in qcases])
    meta_q = [dict(n=c[0], q=c[1]) for c in qcases]
    return tensors, cases, meta_q


# ---------------------------------------------------------------- hadamard
H12_SPEC = """+-++++++++++ --+-+-+-+-+- +++-++----++ +---+--+-++- +++++-++---- +-+---+--+-+
++--+++-++-- +--++---+--+ ++----+++-++ +--+-++---+- ++++----+++- +-+--+-++---""".split()


def sylvester(n):
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def make_hadamard(g):
    h12 = torch.tensor([[1.0 if c == "+" else -1.0 for c in r] for r in H12_SPEC], dtype=torch.float64)
    tensors, cases = {}, []
    for n in (1, 2, 64, 256, 4096, 96, 768, 1536):
        H = torch.kron(h12, sylvester(n // 12)) if n % 12 == 0 else sylvester(n)
        x = torch.randn(3, n, generator=g)
        y = (x.double() @ H.T / math.sqrt(n)).float()
        tensors[f"n{n}.x"] = x
        tensors[f"n{n}.y"] = y
        cases.append(dict(n=n, rows=3))
    return tensors, cases


# ---------------------------------------------------------------- integer LayerNorm, bias correction
def int_ln_ref(x, s_in, s_out, gamma, beta, per_channel):
    """Spec section 7, float32 on the device; S1 and S2 exact (int64), C*S2 - S1^2 in float64 rounded once."""
    C = x.shape[-1]
    if per_channel:
        s1 = s_in.min()
        m = torch.round(s_in / s1)
    else:
        s1 = s_in.reshape(())
        m = torch.ones_like(s_in)
    xq = torch.round(x / s_in) * m
    xi = xq.to(torch.int64)
    S1 = xi.sum(-1)
    S2 = (xi * xi).sum(-1)
    mean = (S1.float() * (1.0 / C)) * s1
    var_term = (C * S2.double() - S1.double() * S1.double()).float()
    std = (s1 * (1.0 / C)) * torch.sqrt(var_term)
    A = ((s1 / std)[:, None] * gamma) / s_out
    sgn = torch.sign(A)
    a = A.abs()
    N = (7 - torch.floor(torch.log2(a))).clamp(0, 31)
    M = torch.floor(a * torch.exp2(N)).clamp(0, 255)
    p2 = torch.exp2(N)
    B = torch.round(((beta - (mean / std)[:, None] * gamma) / s_out) * p2)
    yq = torch.round(((sgn * M) * xq + B) / p2)
    return yq * s_out, M, N, B


def bias_correct_ref(W, Wq):
    """Spec section 5 (quantizer/base.py bias_correction), rows of the [O, K] view."""
    O = W.shape[0]
    w, q = W.reshape(O, -1), Wq.reshape(O, -1)
    mean_q, mean_o = q.mean(1, keepdim=True), w.mean(1, keepdim=True)
    std_q, std_o = q.std(1, keepdim=True), w.std(1, keepdim=True)
    vc = std_o / (std_q + 1e-8)
    t = q - mean_q
    t = t * vc
    t = t + mean_q
    t = t - mean_q
    return (t + mean_o).reshape(W.shape)


def make_quantops(g):
    tensors, cases = {}, []
    R, C = 64, 192
    lo, hi = qrange(8, False)
    for name, kind in [("ptf", "per_channel"), ("scalar", "scalar"), ("fp_input", "per_channel")]:
        xr = torch.randn(R, C, generator=g) * torch.exp(torch.empty(C).uniform_(-2, 1, generator=g))
        xr[:, 5] += 3.0  # an outlier channel
        if kind == "scalar":
            s_in = torch.tensor([float((xr.max() - xr.min()) / 255)])
        else:
            s8 = float((xr.max() - xr.min()) / 255)
            k = torch.randint(0, 4, (C,), generator=g).float()
            s_in = s8 / 8 * torch.exp2(k)
        z = float(torch.round(-xr.min() / s_in.max()).clamp(lo, hi))
        if name == "fp_input":
            x = xr  # FP mode: the integer LN rounds an unquantized input (spec 7, last paragraph)
        else:
            x = ((xr / s_in + z).round().clamp(lo, hi) - z) * s_in
        gamma = torch.empty(C).uniform_(-0.5, 2.0, generator=g)
        gamma[7] = 0.0
        beta = torch.empty(C).uniform_(-0.3, 0.3, generator=g)
        s_out = torch.tensor([0.0371])
        y, M, N, B = int_ln_ref(x.to(DEV), s_in.to(DEV), s_out.to(DEV), gamma.to(DEV), beta.to(DEV),
                                kind != "scalar")
        for k_, v in dict(x=x, s_in=s_in, s_out=s_out, gamma=gamma, beta=beta, y=y, M=M, N=N, B=B).items():
            tensors[f"intln_{name}.{k_}"] = v.float().contiguous().cpu()
        cases.append(dict(name=f"intln_{name}", per_channel=kind != "scalar", rows=R, C=C))
    for name, shape, bits in [("conv", (48, 3, 4, 4), 4), ("linear", (64, 192), 3), ("linear8", (32, 96), 8)]:
        W = torch.randn(*shape, generator=g) * 0.05
        lo, hi = qrange(bits, False)
        rows = W.reshape(shape[0], -1)
        s, zp = asym_params(rows.amin(1), rows.amax(1), lo, hi)
        Wq = ref_fq(rows, s[:, None], zp[:, None], lo, hi).reshape(shape)
        Wc = bias_correct_ref(W.to(DEV), Wq.to(DEV)).cpu()
        tensors[f"bcorr_{name}.w"] = W
        tensors[f"bcorr_{name}.wq"] = Wq
        tensors[f"bcorr_{name}.out"] = Wc
        cases.append(dict(name=f"bcorr_{name}", shape=list(shape)))
    return tensors, cases


# ---------------------------------------------------------------- conversions
def make_convert(g):
    bits = torch.arange(0, 65536, dtype=torch.int32).to(torch.int16)
    all_f16 = bits.view(torch.float16).float()
    specials = torch.tensor([0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99609375, 65520.0, 65536.0, 1e5, -65520.0,
                             2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -25,
                             1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8,
                             3.0e38, -3.0e38, 1e-40, float("inf"), float("-inf"), float("nan")],
                            dtype=torch.float32)
    scales = torch.tensor([1e-8, 1e-6, 1e-4, 1e-2, 1.0, 100.0, 1e4, 7e4, 1e38])
    rnd = (torch.randn(len(scales), 400, generator=g) * scales[:, None]).reshape(-1)
    x = torch.cat([specials, rnd])
    cases = [dict(specials=len(specials))]
    return {"all_f16_as_f32": all_f16, "x": x, "x_f16": x.half(), "x_bf16": x.bfloat16(),
            "x_f16_cuda": x.to(DEV).half().cpu(), "x_bf16_cuda": x.to(DEV).bfloat16().cpu()}, cases


def make_torch_written(g):
    f32 = torch.arange(15, dtype=torch.float32).reshape(3, 5) * 0.25 - 1.5
    r = torch.randn(4, 6, generator=g)
    return {
        "f32": f32,
        "f16": r.half(), "f16_as_f32": r.half().float(),
        "bf16": r.bfloat16(), "bf16_as_f32": r.bfloat16().float(),
        "i8": torch.arange(-128, 128, dtype=torch.int8).reshape(16, 16),
        "u8": torch.arange(0, 256, dtype=torch.int32).to(torch.uint8),
        "i32": torch.tensor([-2 ** 31, 2 ** 31 - 1, 0, 123456789, -7, 1], dtype=torch.int32).reshape(2, 3),
        "i64": torch.tensor([-(2 ** 62), 2 ** 40 + 7, -1, 0], dtype=torch.int64),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "blocks.0.attn.qkv.weight": torch.randn(12, 4, generator=g),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/core")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    g = torch.Generator().manual_seed(20261124)
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu"}

    def save(name, tensors, meta):
        path = os.path.join(args.out, name)
        save_file(tensors, path, metadata={k: (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()})
        print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")

    t, c = make_fakequant(g)
    save("fakequant.safetensors", t, {"cases": c, **info})
    t, c, q = make_observers(g)
    save("observers.safetensors", t, {"cases": c, "quantile_cases": q, **info})
    t, c = make_hadamard(g)
    save("hadamard.safetensors", t, {"cases": c, **info})
    t, c = make_convert(g)
    save("convert.safetensors", t, {"cases": c, **info})
    save("torch_written.safetensors", make_torch_written(g), {"producer": "make_core_fixtures.py", "format": "pt"})
    # a separate generator, so adding these cases leaves the files above unchanged
    t, c = make_quantops(torch.Generator().manual_seed(7))
    save("quantops.safetensors", t, {"cases": c, **info})


if __name__ == "__main__":
    main()
