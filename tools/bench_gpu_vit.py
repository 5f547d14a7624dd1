#!/usr/bin/env python3
"""GPU ViT forward: qtk against timm's eager PyTorch forward on the same GPU.

Run on the GPU machine from the repository root, after building here:

    python3 tools/bench_gpu_vit.py [--batch 256] [--iters 20] [--search]

For deit_small_patch16_224 and vit_base_patch16_224 (random weights) it
times timm's eager FP32 forward (TF32 off: torch.backends.*.allow_tf32 =
False) with the batch resident on the GPU, then runs build/bench/bench_vit_cuda
(qtk's FP32, W4A8 and TF32 forwards, and W4A8 on int8 tensor cores, the same
batch size) and prints one table with the ratios, all measured in this run.
--search adds the Evol-Q search benchmark (build/bench/bench_vit_cuda --search
--gemm fp32|tf32|int8) against the Evol-Q reference's numbers on an H100, as a
second table, and how far the int8 run's losses are from the FP32 run's.
"""
import argparse
import json
import subprocess
import time

import timm
import torch


def timm_img_s(name, batch, iters):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    m = timm.create_model(name, pretrained=False).cuda().eval()
    x = torch.randn(batch, 3, 224, 224, device="cuda")
    with torch.no_grad():
        for _ in range(3):
            m(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            m(x)
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--qtk", default="build/bench/bench_vit_cuda")
    ap.add_argument("--search", action="store_true", help="also the Evol-Q search benchmark (FP32 and TF32)")
    a = ap.parse_args()
    models = ["deit_small_patch16_224", "vit_base_patch16_224"]
    ref = {n: timm_img_s(n, a.batch, a.iters) for n in models}
    p = subprocess.run([a.qtk, "--batch", str(a.batch), "--iters", str(a.iters)] + models, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{a.qtk} failed ({p.returncode}): {p.stderr.strip()}")
    out = p.stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    print(f"GPU: {torch.cuda.get_device_name()}, batch {a.batch}, images/s (higher is better), torch {torch.__version__}, "
          f"timm {timm.__version__}")
    print("| model | timm eager FP32 | qtk FP32 | qtk / timm | qtk W4A8 | FP32 / W4A8 | qtk TF32 | qtk W4A8 TF32 "
          "| qtk W4A8 int8 | FP32 / W4A8 int8 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = ref[r["model"]]
        print(f"| {r['model']} | {t:.0f} | {r['fp32_img_s']:.0f} | {r['fp32_img_s'] / t:.2f}x | {r['w4a8_img_s']:.0f} | "
              f"{r['quant_overhead']:.2f}x | {r['tf32_img_s']:.0f} | {r['w4a8_tf32_img_s']:.0f} | "
              f"{r['w4a8_int8_img_s']:.0f} | {r['fp32_img_s'] / r['w4a8_int8_img_s']:.2f}x |")
    if a.search:
        print("\nEvol-Q on deit_small_patch16_224 W4A8, 1,000 images, against the reference's numbers (issue 6)")
        print("| GEMMs | calibration | candidate evaluation | block step | full search (projected) |")
        print("|---|---|---|---|---|")
        runs = {}
        for gm in ("fp32", "tf32", "int8"):
            p = subprocess.run([a.qtk, "--search", "--gemm", gm], capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"{a.qtk} --search failed: {p.stderr.strip()}")
            r = runs[gm] = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
            print(f"| {r['gemm']} | {r['calibration_s']:.2f} s ({18.7 / r['calibration_s']:.1f}x) | "
                  f"{r['candidate_eval_mean_over_blocks_s']:.3f} s ({r['candidate_speedup']:.1f}x) | "
                  f"{r['block_step_mean_s']:.3f} s ({r['step_speedup']:.1f}x) | "
                  f"{r['full_search_projected_s']:.1f} s ({r['search_speedup']:.1f}x) |")
        f, i = runs["fp32"], runs["int8"]
        print(f"\nint8 vs FP32 GEMMs (same calibration): infoNCE over all blocks {i['loss_all_blocks']:.8f} vs "
              f"{f['loss_all_blocks']:.8f} (relative {abs(i['loss_all_blocks'] / f['loss_all_blocks'] - 1):.2e}); "
              f"after one search pass {i['loss_after_pass']:.8f} vs {f['loss_after_pass']:.8f}; "
              f"int8 linears: {i['int8_linears']}, fp16 attentions: {i['fp16_attentions']}")


if __name__ == "__main__":
    main()
