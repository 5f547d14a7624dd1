#!/usr/bin/env python3
"""PIL's eval crops of JPEG files, for tests/test_photos.c (run at test time).

    /usr/bin/python3 tools/pil_crops.py OUT.safetensors SIZE CROP_PCT FILE.jpg...

Writes tensor "crops" (N, SIZE, SIZE, 3) uint8: Image.open().convert("RGB"),
torchvision Resize(int(SIZE / CROP_PCT), BICUBIC), CenterCrop(SIZE). A file PIL
cannot read gets an all-zero crop and is listed in metadata "unreadable".
"""
import json
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from make_image_fixtures import resize_crop, safetensors_write  # noqa: E402


def main():
    out, size, crop_pct, files = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
    crops, bad = np.zeros((len(files), size, size, 3), np.uint8), []
    for i, f in enumerate(files):
        try:
            crops[i] = resize_crop(Image.open(f).convert("RGB"), crop_pct, size)
        except Exception as e:  # noqa: BLE001 - report, the C test decides
            bad.append([i, str(e)])
    safetensors_write(out, {"crops": crops}, {"unreadable": json.dumps(bad)})


if __name__ == "__main__":
    main()
