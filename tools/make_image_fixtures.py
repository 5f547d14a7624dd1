#!/usr/bin/env python3
"""JPEG fixtures and PIL's eval preprocessing of them, for tests/test_image.c.

Run with Debian's python3-pil and python3-numpy (CI installs the same), from
the repository root:

    /usr/bin/python3 tools/make_image_fixtures.py --out tests/fixtures/datasets

Writes a handful of JPEGs (RGB 4:2:0 at an ImageNet-like 500x375, a tiny
61x47 one that is upsampled, grayscale, Adobe CMYK, progressive, 4:4:4) and
pil_reference.safetensors holding, per image, PIL's decoded RGB
(Image.open().convert("RGB")) and torchvision's eval transform up to the
uint8 crop: Resize(int(224 / crop_pct), BICUBIC) then CenterCrop(224), for
crop_pct 0.875 (DeiT, resize 256), and 0.9 (ViT, resize 248) for the
500x375 image, computed with PIL exactly as torchvision 0.26 does it.
"""
import argparse
import json
import os
import struct

import numpy as np
from PIL import Image
import PIL


def safetensors_write(path, tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}[arr.dtype]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        blobs.append(arr.tobytes())
        offset += arr.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def synthetic(w, h, seed):
    """Photo-like content: smooth gradients, edges, texture and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / 37.0) * np.cos(y / 23.0)
    g = 128 + 90 * np.cos((x + y) / 51.0)
    b = 255 * (x / w) * (y / h)
    img = np.stack([r, g, b], -1)
    img[(x // 40 + y // 40) % 2 == 0] *= 0.7  # edges
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def resize_crop(im, crop_pct, size=224):
    # torchvision Resize(int(size / crop_pct)) on the shorter side, BICUBIC, then CenterCrop(size)
    s = int(size / crop_pct)
    w, h = im.size
    if w <= h:
        nw, nh = s, int(s * h / w)
    else:
        nw, nh = int(s * w / h), s
    r = im.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    return np.asarray(r.crop((left, top, left + size, top + size)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/datasets")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cases = [
        ("rgb_500x375.jpg", synthetic(500, 375, 1), dict(quality=90)),
        ("rgb_61x47.jpg", synthetic(61, 47, 2), dict(quality=95)),
        ("gray_300x200.jpg", synthetic(300, 200, 3).convert("L"), dict(quality=85)),
        ("cmyk_120x90.jpg", synthetic(120, 90, 4).convert("CMYK"), dict(quality=90)),
        ("progressive_333x500.jpg", synthetic(333, 500, 5), dict(quality=88, progressive=True)),
        ("rgb444_257x256.jpg", synthetic(257, 256, 6), dict(quality=92, subsampling=0)),
    ]
    tensors, meta = {}, []
    for name, im, opts in cases:
        path = os.path.join(args.out, name)
        im.save(path, "JPEG", **opts)
        dec = Image.open(path)
        mode = dec.mode
        dec = dec.convert("RGB")
        key = name.rsplit(".", 1)[0]
        if dec.size[0] * dec.size[1] <= 300 * 200:
            tensors[f"{key}.decoded"] = np.asarray(dec)
        tensors[f"{key}.crop_0.875"] = resize_crop(dec, 0.875)
        if key == "rgb_500x375":  # the ViT crop_pct on the ImageNet-sized image only (fixture budget)
            tensors[f"{key}.crop_0.9"] = resize_crop(dec, 0.9)
        meta.append(dict(file=name, key=key, mode=mode, size=list(dec.size)))
    out = os.path.join(args.out, "pil_reference.safetensors")
    safetensors_write(out, tensors, {"cases": json.dumps(meta), "pillow": PIL.__version__})
    print(f"{out}: {os.path.getsize(out)} bytes, Pillow {PIL.__version__}")


if __name__ == "__main__":
    main()
