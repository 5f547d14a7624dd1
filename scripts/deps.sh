#!/usr/bin/env bash
# Installs the Debian packages qtk builds against, but only those pkg-config
# (or a header probe) cannot find. Safe to run repeatedly: it does nothing when
# everything is present. Called by `make test` (with --test: also python3-pil
# and python3-numpy, the PIL reference of the image tests, gnuplot, slurm-wlm and munge), `make demo`
# and .ci/run.
set -euo pipefail

# pkg-config module -> Debian package. OpenBLAS ships a pkg-config file named
# "openblas" on Debian 12+ (libopenblas-dev).
declare -A pc_pkg=(
  [check]=check
  [libturbojpeg]=libturbojpeg0-dev
  [libcjson]=libcjson-dev
  [libcyaml]=libcyaml-dev
  [openblas]=libopenblas-dev
  [zlib]=zlib1g-dev
  [libpcre2-8]=libpcre2-dev
)

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
for mod in "${!pc_pkg[@]}"; do
  if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$mod" 2>/dev/null; then
    missing+=("${pc_pkg[$mod]}")
  fi
done
# check.pc names subunit on Debian; without libsubunit-dev linking fails.
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists check 2>/dev/null \
   && ! pkg-config --libs check >/dev/null 2>&1; then
  missing+=(libsubunit-dev)
fi

# --test: also what the test suites use (Debian's Pillow and numpy as the PIL reference)
if [ "${1:-}" = "--test" ] && ! /usr/bin/python3 -c 'import PIL, numpy' >/dev/null 2>&1; then
  missing+=(python3-pil python3-numpy)
fi
# --test: gnuplot, so that the plot tests run (plots are optional for users)
if [ "${1:-}" = "--test" ] && ! command -v gnuplot >/dev/null 2>&1; then
  missing+=(gnuplot-nox)
fi

# --test: Slurm and munge, for the sweep test's single-node cluster (tools/slurm_local.sh)
if [ "${1:-}" = "--test" ] && { ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; }; then
  missing+=(slurm-wlm munge)
fi

# --fuzz (make fuzz, make fuzz-smoke): clang with its libFuzzer and sanitizer runtimes, and its OpenMP
if [ "${1:-}" = "--fuzz" ] || [ "${1:-}" = "--test" ]; then
  probe=$(mktemp -d)
  printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' >"$probe/p.c"
  if ! command -v clang >/dev/null 2>&1 || \
     ! clang -fopenmp -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
    missing+=(clang libclang-rt-dev libomp-dev)
  fi
  rm -rf "$probe"
fi

[ ${#missing[@]} -eq 0 ] && exit 0

echo "qtk deps: installing missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "qtk deps: error: need root or passwordless sudo to install: ${missing[*]}" >&2
  echo "qtk deps: run as root:  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "qtk deps: error: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq >&2
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
echo "qtk deps: done" >&2
