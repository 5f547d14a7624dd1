// test_quamba*.c's shared pieces: the tiny models, the fixture text as calibration tokens, a calibration
#ifndef QTK_QUAMBA_TESTUTIL_H
#define QTK_QUAMBA_TESTUTIL_H

#define QTK_FIXTURES "tests/fixtures/ssm"
#include "../ssm/quamba.h"
#include "testutil.h"

#define TINY "models/tiny_mamba1"
#define TINY2 "models/tiny_mamba2"

// the fixture text's bytes as tokens: calibration takes the first half, evaluation the second
static int32_t *kjv_tokens(size_t *n) {
    FILE *f = fopen(QTK_FIXTURES "/kjv_heldout_8192.bin", "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char buf[8192];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int32_t *t = malloc(*n * sizeof *t);
    for (size_t i = 0; i < *n; i++) t[i] = buf[i];
    return t;
}

static void calibrate(qtk_quamba *q, const qtk_mamba *m, qtk_quamba_variant v, const int32_t *tok, int n, int len) {
    qtk_quamba_opts o;
    qtk_quamba_opts_default(&o);
    o.variant = v;
    qtk_quamba_calib c = {.tokens = tok, .n = n, .len = len, .data_name = "kjv_heldout_8192.bin"};
    ck_qtk(qtk_quamba_calibrate(q, m, &o, &c));
}

#endif
