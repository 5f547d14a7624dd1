#!/usr/bin/env bash
# `make install` into a temporary prefix, then use it as an outside project would:
# every public header compiles on its own under -std=c11 -pedantic; examples/c/example.c
# builds with pkg-config against the shared and against the static library, both run
# and print the same; the Python ctypes example prints the same fake-quant line.
#   tests/install.sh PREFIX [BUILD]     (BUILD: build or build/asan, as the suites)
set -euo pipefail
P=$1
B=${2:-build}
make_args=(PREFIX="$P")
san=()
if [ "$B" = build/asan ]; then make_args+=(SANITIZE=1); san=(-fsanitize=address,undefined); fi
make --no-print-directory "${make_args[@]}" install >"$P.log" 2>&1 || { cat "$P.log"; exit 1; }
export PKG_CONFIG_PATH=$P/lib/pkgconfig
if grep -q "$PWD" "$P/lib/pkgconfig/libqtk.pc"; then echo "libqtk.pc names the build tree"; exit 1; fi
pc_rest=$(grep -v '^prefix=' "$P/lib/pkgconfig/libqtk.pc")
if grep -qE '(^|[ =:])/' <<<"$pc_rest"; then
  echo "libqtk.pc: an absolute path other than prefix"; exit 1; fi

n=0
for h in $(cd "$P/include" && find qtk -name '*.h' | sort); do
  echo "#include <$h>" | cc -std=c11 -pedantic -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags libqtk libcjson) -x c - \
    || { echo "header $h does not compile on its own"; exit 1; }
  n=$((n + 1))
done
echo "headers: $n compile on their own"

# CUDA's libraries are found where this machine keeps them (the .pc names none)
cudalib=()
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [ -d $d ] && cudalib+=(-L$d -Wl,-rpath,$d); done
cc -std=c11 -Wall -Wextra -Werror "${san[@]}" -o "$P/ex_shared" examples/c/example.c \
   $(pkg-config --cflags --libs libqtk) -Wl,-rpath,"$P/lib" "${cudalib[@]}"
cc -std=c11 -Wall -Wextra -Werror "${san[@]}" -o "$P/ex_static" examples/c/example.c $(pkg-config --cflags libqtk) \
   "$P/lib/libqtk.a" $(pkg-config --static --libs libqtk | sed 's/-lqtk//') "${cudalib[@]}"
# (ldd's output kept first: grep -q would close the pipe early, and pipefail would see ldd's SIGPIPE)
deps_static=$(ldd "$P/ex_static") deps_shared=$(ldd "$P/ex_shared")
if grep -q libqtk <<<"$deps_static"; then echo "the static example links libqtk.so"; exit 1; fi
grep -q "$P/lib/libqtk.so" <<<"$deps_shared" || { echo "the shared example does not use the installed libqtk.so:"; echo "$deps_shared"; exit 1; }
"$P/ex_shared" models/fashion_vit.safetensors models/tiny_mamba1 >"$P/out_shared"
"$P/ex_static" models/fashion_vit.safetensors models/tiny_mamba1 >"$P/out_static"
cmp "$P/out_shared" "$P/out_static" || { echo "shared and static examples differ"; exit 1; }
cat "$P/out_shared"
if [ ${#san[@]} -eq 0 ] && command -v python3 >/dev/null; then
  LIBQTK=$P/lib/libqtk.so python3 examples/python/fake_quant.py >"$P/out_py"
  cmp <(head -1 "$P/out_py") <(head -1 "$P/out_shared") || { echo "python and C fake-quant differ"; exit 1; }
  echo "python: $(head -1 "$P/out_py")"
else
  echo "python: skipped (no python3, or a sanitizer build)"
fi
make --no-print-directory "${make_args[@]}" uninstall >/dev/null
[ -z "$(find "$P" -name 'libqtk*' -o -name qtk -type d)" ] || { echo "uninstall left files"; exit 1; }
echo "install: ok"
