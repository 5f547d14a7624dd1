#!/usr/bin/env python3
"""GPU ViT forward: qtk against timm's eager PyTorch forward on the same GPU.

Run on the GPU machine from the repository root, after building here:

    python3 tools/bench_gpu_vit.py [--batch 256] [--iters 20] [--search]

For deit_small_patch16_224 and vit_base_patch16_224 (random weights) it
times timm's eager FP32 forward (TF32 off: torch.backends.*.allow_tf32 =
False) with the batch resident on the GPU, then runs build/bench/bench_vit_cuda
(qtk's FP32, W4A8 and TF32 forwards, the same batch size) and prints one table
with the ratios, all measured in this run. --search adds the Evol-Q search
benchmark (build/bench/bench_vit_cuda --search [--tf32]) against the Evol-Q
reference's numbers on an H100, as a second table.
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
    print("| model | timm eager FP32 | qtk FP32 | qtk / timm | qtk W4A8 | FP32 / W4A8 | qtk TF32 | qtk W4A8 TF32 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = ref[r["model"]]
        print(f"| {r['model']} | {t:.0f} | {r['fp32_img_s']:.0f} | {r['fp32_img_s'] / t:.2f}x | {r['w4a8_img_s']:.0f} | "
              f"{r['quant_overhead']:.2f}x | {r['tf32_img_s']:.0f} | {r['w4a8_tf32_img_s']:.0f} |")
    if a.search:
        print("\nEvol-Q on deit_small_patch16_224 W4A8, 1,000 images, against the reference's numbers (issue 6)")
        print("| GEMMs | calibration | candidate evaluation | block step | full search (projected) |")
        print("|---|---|---|---|---|")
        for tf in ([], ["--tf32"]):
            p = subprocess.run([a.qtk, "--search"] + tf, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"{a.qtk} --search failed: {p.stderr.strip()}")
            r = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])
            print(f"| {r['gemm']} | {r['calibration_s']:.2f} s ({18.7 / r['calibration_s']:.1f}x) | "
                  f"{r['candidate_eval_mean_over_blocks_s']:.3f} s ({r['candidate_speedup']:.1f}x) | "
                  f"{r['block_step_mean_s']:.3f} s ({r['step_speedup']:.1f}x) | "
                  f"{r['full_search_projected_s']:.1f} s ({r['search_speedup']:.1f}x) |")


if __name__ == "__main__":
    main()
