#!/usr/bin/env bash
# Prints one sha256 per CPU output that a refactor must leave unchanged: Fashion ViT
# runs (calibration, Evol-Q search, export, evaluation) in two settings, a calibrate +
# eval round trip, Mamba1/Mamba2 perplexity and the core demo. Wall-clock fields are
# dropped before hashing; everything else is compared byte for byte.
#
#   tests/golden.sh [QTK] > before.txt     # at one commit
#   tests/golden.sh [QTK] > after.txt      # at another
#   diff before.txt after.txt              # empty: the same results
#
# Needs the Fashion-MNIST IDX files (make fashion-mnist). About 1.5 min on 2 cores.
set -euo pipefail
QTK=${1:-build/qtk}
W=/tmp/qtk-golden # fixed: the exports record their output folder
rm -rf "$W" && mkdir -p "$W"
[ -f build/cache/fashion-mnist/t10k-labels-idx1-ubyte ] || { echo "golden.sh: run make fashion-mnist first" >&2; exit 2; }

# JSON lines / objects without the fields that hold times
untimed() { sed -E 's/"[a-z_]*(seconds|wall)[a-z_]*":[[:space:]]*[0-9.e+-]+,?//g' "$1"; }
hash() { printf '%-28s %s\n' "$1" "$(sha256sum | cut -c1-16)"; }
# a safetensors file's results: its tensor list (names, dtypes, shapes) and its data bytes; the
# metadata (which names the build's commit) is left out
st_results() {
  local n
  n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  "$QTK" info "$1" | sed -n '2,/^total:/p'
  tail -c +$((9 + n)) "$1"
}

common=(--set search.passes=1 --set search.population=6 --set calibration.images=200 --set data.test_images=1000)
"$QTK" run experiments/configs/fashion_w4a8.yaml "${common[@]}" --set output.dir=$W/a >/dev/null 2>&1
# run b: lists cannot be given with --set
cat >$W/b.yaml <<EOF
name: golden_b
model: {checkpoint: models/fashion_vit.safetensors}
data: {format: fashion-mnist, root: build/cache/fashion-mnist}
calibration: {images: 200, batch: 100}
quantization: {w_bits: 3, a_bits: 8, off: [blocks.0.attn.softmax]}
search: {method: evolq, targets: [act, fc1], fp_targets: float}
EOF
"$QTK" run $W/b.yaml "${common[@]}" --set output.dir=$W/b >/dev/null 2>&1
for r in a b; do
    st_results "$W/$r/quant.safetensors" | hash "run $r quant.safetensors"
    untimed "$W/$r/summary.json" | hash "run $r summary.json"
    untimed "$W/$r/log.jsonl" | hash "run $r log.jsonl"
    sed -E 's/\| [0-9.]+ s \|$//' "$W/$r/table.md" | hash "run $r table.md"
done

"$QTK" calibrate experiments/configs/fashion_w4a8.yaml --set calibration.images=300 --set output.dir=$W/c >/dev/null 2>&1
st_results "$(ls $W/c/*.safetensors | head -1)" | hash "calibrate export"
"$QTK" eval experiments/configs/fashion_w4a8.yaml --set data.test_images=500 --quant "$(ls $W/c/*.safetensors | head -1)" \
    --set output.dir=$W/c 2>/dev/null | grep -E 'top-1|top1' | hash "eval of the export"

for m in tiny_mamba1 tiny_mamba2; do
    "$QTK" perplexity --model models/$m --text tests/fixtures/ssm/kjv_heldout_8192.bin --ctx 256 --max-windows 4 \
        --json $W/$m.json >/dev/null 2>&1
    untimed $W/$m.json | hash "perplexity $m"
done

"$QTK" demo --core --out $W/core >/dev/null 2>&1
for f in $(cd $W/core && ls | grep -vE '\.png$|\.safetensors$' | sort); do untimed "$W/core/$f" | hash "core demo $f"; done
st_results "$W/core/quant.safetensors" | hash "core demo quant.safetensors"
rm -rf "$W"
