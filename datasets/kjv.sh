#!/usr/bin/env bash
# English text for the small byte-level Mamba models: the King James Bible from
# Debian's bible-kjv package (verse prefixes stripped), split 95 / 5 by bytes.
#
#   datasets/kjv.sh [QTK_BINARY]      (or: make kjv)
#
# Output: $QTK_CACHE/kjv (default build/cache/kjv):
#   kjv.txt        4,137,850 bytes (bible -f 'gen1:1-rev22:21' | sed 's/^[^ ]* //')
#   train.tok      bytes [0, 3930957) as tokens (vocabulary 256), + train.tok.json
#   heldout.tok    bytes [3930957, 4137850), + heldout.tok.json
# tools/train_tiny_mamba.py trained models/tiny_mamba* on the same split.
# Needs the `bible` program (Debian: bible-kjv); installs it when run as root.
set -euo pipefail
qtk=${1:-build/qtk}
cache=${QTK_CACHE:-build/cache}
out="$cache/kjv"
SHA256=b5c4940bcfeee072c0935b5200d0f9d88a00a0199cb0961d16133458fcdfae5d
SPLIT=3930957
if ! command -v bible >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bible-kjv >/dev/null
  else
    echo "datasets/kjv.sh: needs the bible program: sudo apt-get install bible-kjv" >&2
    exit 1
  fi
fi
mkdir -p "$out"
bible -f 'gen1:1-rev22:21' | sed 's/^[^ ]* //' > "$out/kjv.txt.new"
got=$(sha256sum "$out/kjv.txt.new" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
  echo "datasets/kjv.sh: the text's SHA-256 is $got, expected $SHA256 (another bible-kjv version?)" >&2
  exit 1
fi
mv "$out/kjv.txt.new" "$out/kjv.txt"
"$qtk" dataset bytes --text "$out/kjv.txt" --to $SPLIT --out "$out/train.tok"
"$qtk" dataset bytes --text "$out/kjv.txt" --from $SPLIT --out "$out/heldout.tok"
echo "datasets/kjv.sh: $out ready"
