#!/usr/bin/env python3
"""PIL + numpy baseline for bench/bench_image.c: the timm/torchvision eval
transform (decode, convert RGB, BICUBIC resize of the shorter side to 256,
center crop 224, to float, normalize) on one core, over the given JPEG files
repeated REPEAT times. Prints images per second.

    /usr/bin/python3 tools/bench_pil.py REPEAT FILE.jpg...
"""
import io
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def transform(buf):
    im = Image.open(io.BytesIO(buf)).convert("RGB")
    w, h = im.size
    s = 256
    nw, nh = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
    im = im.resize((nw, nh), Image.BICUBIC)
    top, left = int(round((nh - 224) / 2.0)), int(round((nw - 224) / 2.0))
    x = np.asarray(im.crop((left, top, left + 224, top + 224)), np.float32) / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def main():
    repeat, files = int(sys.argv[1]), sys.argv[2:]
    bufs = [open(f, "rb").read() for f in files]
    transform(bufs[0])
    t0 = time.perf_counter()
    n = 0
    for _ in range(repeat):
        for b in bufs:
            transform(b)
            n += 1
    print(f"{n / (time.perf_counter() - t0):.2f}")


if __name__ == "__main__":
    main()
