#!/usr/bin/env bash
# Fetches the real photos of Debian's opencv-doc package (59 JPEGs under
# examples/data) into $QTK_CACHE/opencv-doc (default build/cache), for the
# PIL comparison test. Needs apt-get (Debian or Ubuntu) and the Debian mirror.
# Prints why and exits 1 when it cannot; tests then report a visible skip.
set -euo pipefail
cache=${QTK_CACHE:-build/cache}
dest="$cache/opencv-doc"
[ -f "$dest/.complete" ] && exit 0
command -v apt-get >/dev/null || { echo "fetch_photos: apt-get not found" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && { apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get download opencv-doc >/dev/null 2>&1; }; } ) \
  || { echo "fetch_photos: cannot download the opencv-doc package" >&2; exit 1; }
mkdir -p "$dest"
dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb | tar -x -C "$tmp" ./usr/share/doc/opencv-doc/examples/data
find "$tmp/usr/share/doc/opencv-doc/examples/data" -maxdepth 1 -iname '*.jpg' -exec cp {} "$dest/" \;
n=$(find "$dest" -maxdepth 1 -iname '*.jpg' | wc -l)
[ "$n" -gt 0 ] || { echo "fetch_photos: no JPEGs in the package" >&2; exit 1; }
touch "$dest/.complete"
echo "fetch_photos: $n JPEGs in $dest" >&2
