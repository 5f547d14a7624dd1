// Tensors: dtypes, shapes, aligned buffers, f16/bf16 conversion vs PyTorch.
#include "testutil.h"

START_TEST(test_dtypes_and_shapes) {
    const char *names[] = {"F32", "F16", "BF16", "I8", "U8", "I32", "I64", "I4", "U4", "F64"};
    const size_t sizes[] = {4, 2, 2, 1, 1, 4, 8, 0, 0, 8};
    for (int i = 0; i < QTK_DTYPE_COUNT; i++) {
        qtk_dtype dt;
        ck_assert_str_eq(qtk_dtype_name((qtk_dtype)i), names[i]);
        ck_qtk(qtk_dtype_from_name(names[i], &dt));
        ck_assert_int_eq(dt, i);
        if (sizes[i]) ck_assert_uint_eq(qtk_dtype_nbytes((qtk_dtype)i, 3), 3 * sizes[i]);
    }
    ck_assert_uint_eq(qtk_dtype_nbytes(QTK_I4, 5), 3); // packed, rounded up
    qtk_dtype dt;
    ck_assert_int_eq(qtk_dtype_from_name("F8_E4M3", &dt), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "F8_E4M3"));
    int64_t s[3] = {2, 3, 4}, bad[2] = {INT64_MAX, 4}, neg[2] = {2, -1};
    ck_assert_int_eq(qtk_numel(3, s), 24);
    ck_assert_int_eq(qtk_numel(0, s), 1);
    ck_assert_int_eq(qtk_numel(2, bad), -1);
    ck_assert_int_eq(qtk_numel(2, neg), -1);
    size_t o, l, in;
    ck_qtk(qtk_axis_view(3, s, 1, &o, &l, &in));
    ck_assert(o == 2 && l == 3 && in == 4);
    ck_qtk(qtk_axis_view(3, s, -1, &o, &l, &in));
    ck_assert(o == 6 && l == 4 && in == 1);
    ck_assert_int_eq(qtk_axis_view(3, s, 3, &o, &l, &in), QTK_ERR_ARG);
    ck_assert_int_eq(qtk_axis_view(3, s, -4, &o, &l, &in), QTK_ERR_ARG);
    char buf[64];
    ck_assert_str_eq(qtk_shape_str(3, s, buf, sizeof buf), "[2, 3, 4]");
    ck_assert_str_eq(qtk_shape_str(0, s, buf, sizeof buf), "[]");
}
END_TEST

START_TEST(test_alloc) {
    for (size_t n = 1; n < 5000; n += 997) {
        float *p = qtk_aligned_alloc(n);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq((int)((uintptr_t)p % QTK_ALIGN), 0);
        for (size_t i = 0; i < n; i++) ck_assert_int_eq(((unsigned char *)p)[i], 0);
        qtk_aligned_free(p);
    }
    qtk_tensor t;
    int64_t shape[2] = {3, 7};
    ck_qtk(qtk_tensor_alloc(&t, QTK_U4, 2, shape));
    ck_assert_uint_eq(t.nbytes, 11);
    ck_assert_int_eq(qtk_tensor_numel(&t), 21);
    qtk_tensor_free(&t);
    ck_assert_ptr_null(t.data);
    int64_t neg[1] = {-5};
    ck_assert_int_eq(qtk_tensor_alloc(&t, QTK_F32, 1, neg), QTK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "[-5]"));
}
END_TEST

// All 65536 half patterns decode as torch does; f32 -> f16/bf16 rounding
// (ties, overflow to inf, subnormals, NaN) equals torch's CPU and CUDA casts.
START_TEST(test_half_conversions) {
    qtk_safetensors st;
    tu_open(&st, "convert.safetensors");
    size_t n;
    float *all = NULL;
    ck_qtk(qtk_st_load_f32(&st, "all_f16_as_f32", &all, &n));
    ck_assert_uint_eq(n, 65536);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = qtk_f16_to_f32((uint16_t)h);
        ck_assert_msg(tu_same(f, all[h]) && (!isnan(f) || tu_bits(f) == tu_bits(all[h])),
                      "f16 0x%04x -> %a, torch %a", h, f, all[h]);
        // and back: every non-NaN half survives the round trip, NaNs stay NaN
        if (!isnan(f)) ck_assert_uint_eq(qtk_f32_to_f16(f), h);
        else ck_assert(isnan(qtk_f16_to_f32(qtk_f32_to_f16(f))));
    }
    qtk_aligned_free(all);
    float *x = NULL;
    ck_qtk(qtk_st_load_f32(&st, "x", &x, &n));
    const char *names[] = {"x_f16", "x_f16_cuda", "x_bf16", "x_bf16_cuda"};
    for (int k = 0; k < 4; k++) {
        const qtk_st_tensor *t = qtk_st_find(&st, names[k]);
        ck_assert_ptr_nonnull(t);
        const uint16_t *ref = t->data;
        for (size_t i = 0; i < n; i++) {
            uint16_t mine = k < 2 ? qtk_f32_to_f16(x[i]) : qtk_f32_to_bf16(x[i]);
            if (isnan(x[i])) {
                float back = k < 2 ? qtk_f16_to_f32(mine) : qtk_bf16_to_f32(mine);
                ck_assert(isnan(back));
                continue;
            }
            ck_assert_msg(mine == ref[i], "%s: %a -> 0x%04x, torch 0x%04x", names[k], x[i], mine, ref[i]);
        }
    }
    qtk_aligned_free(x);
    qtk_st_close(&st);
    float fs[3] = {1, 2, 3}, back[3];
    uint16_t hs[3];
    ck_qtk(qtk_convert_from_f32(fs, QTK_F16, hs, 3));
    ck_qtk(qtk_convert_to_f32(QTK_F16, hs, back, 3));
    ck_assert(back[2] == 3.0f);
    ck_assert_int_eq(qtk_convert_from_f32(fs, QTK_I8, hs, 3), QTK_ERR_UNSUPPORTED);
    ck_assert_int_eq(qtk_convert_to_f32(QTK_I4, hs, back, 3), QTK_ERR_UNSUPPORTED);
}
END_TEST

int main(void) {
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_dtypes_and_shapes);
    tcase_add_test(tc, test_alloc);
    tcase_add_test(tc, test_half_conversions);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
