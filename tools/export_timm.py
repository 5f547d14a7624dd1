#!/usr/bin/env python3
"""Write timm checkpoints as the safetensors files qtk loads.

    python3 tools/export_timm.py deit_small_patch16_224.fb_in1k [...] --out $QTK_MODELS

For each timm name (with its pretrained tag, e.g. deit_tiny_patch16_224.fb_in1k,
vit_base_patch16_224.augreg_in21k_ft_in1k: the tags the Evol-Q reference
evaluates; see ../shared/specs/vit-baseline.md) this creates the model with
pretrained=True (timm downloads the weights, or takes them from its cache) and
saves the state dict, float32, as OUT/<name>.safetensors, with the name in the
metadata. The experiments/configs/imagenet/*.yaml configs expect exactly these
file names under ${QTK_MODELS}.

--random writes a randomly initialised model instead (no download): enough to
check the plumbing and to time runs, not for accuracy.
"""
import argparse
import os

import timm
import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", help="timm model names with tags")
    ap.add_argument("--out", default=os.environ.get("QTK_MODELS", "models/timm"))
    ap.add_argument("--random", action="store_true", help="random weights, no download")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name in a.names:
        m = timm.create_model(name, pretrained=not a.random).eval()
        sd = {k: v.detach().to(torch.float32).contiguous() for k, v in m.state_dict().items()}
        path = os.path.join(a.out, name + ".safetensors")
        save_file(sd, path, metadata={"timm_name": name, "pretrained": str(not a.random).lower()})
        print(f"wrote {path}: {sum(v.numel() for v in sd.values()) / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()
