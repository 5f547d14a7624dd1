#!/usr/bin/env bash
# The offline English corpora of ../shared/data.md as one text file each, for the BPE tokenizer and the
# BPE-vocabulary Mamba models (tools/train_bpe_mamba.py):
#
#   datasets/corpora.sh [QTK_BINARY]      (or: make corpora)
#
# Output: $QTK_CACHE/corpora (default build/cache/corpora):
#   kjv.txt       the King James Bible, one verse per line (datasets/kjv.sh's text)
#   fortunes.txt  Debian's fortunes (/usr/share/games/fortunes/*, no *.dat, *.u8 or off/), files in C order,
#                 the "%" separator lines dropped
#   wordnet.txt   WordNet 3.0's glosses and examples: the text after "| " on each synset line of
#                 /usr/share/wordnet/data.{noun,verb,adj,adv} (license header lines skipped), trailing blanks cut
#   gcide.txt     GCIDE 0.48 (dict-gcide's gcide.dict.dz) from its first entry on: lines stripped of leading and
#                 trailing blanks, empty lines and the bracketed source notes ("[WordNet 1.5]") dropped
#   SHA256SUMS    the four files' checksums (another package version gives other text: compare before mixing)
# Installs bible-kjv, fortunes, wordnet-base and dict-gcide when run as root with apt-get.
set -euo pipefail
export LC_ALL=C
qtk=${1:-build/qtk}
cache=${QTK_CACHE:-build/cache}
out="$cache/corpora"
need=()
command -v bible >/dev/null 2>&1 || need+=(bible-kjv)
[ -d /usr/share/games/fortunes ] || need+=(fortunes)
[ -f /usr/share/wordnet/data.noun ] || need+=(wordnet-base)
[ -f /usr/share/dictd/gcide.dict.dz ] || need+=(dict-gcide)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "datasets/corpora.sh: needs ${need[*]}: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
mkdir -p "$out"
[ -f "$cache/kjv/kjv.txt" ] || QTK_CACHE="$cache" bash datasets/kjv.sh "$qtk" >/dev/null
cp "$cache/kjv/kjv.txt" "$out/kjv.txt"
find /usr/share/games/fortunes -path '*/off' -prune -o -type f ! -name '*.dat' ! -name '*.u8' -print | sort |
  while IFS= read -r f; do cat "$f"; done | grep -v '^%$' > "$out/fortunes.txt"
for p in noun verb adj adv; do
  grep -v '^  ' "/usr/share/wordnet/data.$p" | sed -n 's/^[^|]*| //p' | sed 's/[[:space:]]*$//'
done > "$out/wordnet.txt"
zcat /usr/share/dictd/gcide.dict.dz | sed -n '/^ *Begin file 1 of 26/,$p' | sed 's/^[[:space:]]*//; s/[[:space:]]*$//' |
  grep -v -e '^$' -e '^\[[^]]*\]$' > "$out/gcide.txt"
(cd "$out" && sha256sum kjv.txt fortunes.txt wordnet.txt gcide.txt > SHA256SUMS)
wc -c "$out"/*.txt
echo "datasets/corpora.sh: $out ready"
