// Shared by the libFuzzer targets: a private working folder (made once per process; the harness chdirs
// into it so seeds can name files relatively), writing an input there as a file, and splitting an input
// into parts at a separator line.
#ifndef QTK_FUZZ_H
#define QTK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[64];

// Makes the working folder (under /dev/shm when it exists: no disk writes per execution) and enters it.
static inline void fuzz_init_dir(void) {
    if (fuzz_dir[0]) return;
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/qtk_fuzz_XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(fuzz_dir) || chdir(fuzz_dir) != 0) abort();
    setenv("OMP_NUM_THREADS", "1", 0);
}

// Writes n bytes as the file `name` in the working folder; returns name.
static inline const char *fuzz_write(const char *name, const void *data, size_t n) {
    FILE *f = fopen(name, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
    return name;
}

// Splits data at each occurrence of sep (e.g. "\n%%\n") into at most max parts; returns the count.
static inline int fuzz_split(const uint8_t *data, size_t size, const char *sep, const uint8_t **part, size_t *len, int max) {
    size_t sl = strlen(sep), start = 0;
    int n = 0;
    for (size_t i = 0; n < max - 1 && i + sl <= size; i++)
        if (!memcmp(data + i, sep, sl)) {
            part[n] = data + start;
            len[n++] = i - start;
            start = i + sl;
            i += sl - 1;
        }
    part[n] = data + start;
    len[n++] = size - start;
    for (int k = n; k < max; k++) part[k] = data + size, len[k] = 0;
    return n;
}

// A NUL-terminated copy (free it).
static inline char *fuzz_str(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

#endif
