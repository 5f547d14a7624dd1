// safetensors: files written by PyTorch load with the same values; qtk's
// writer round-trips; malformed files give a clear error and never crash.
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

START_TEST(test_torch_written) {
    qtk_safetensors st;
    tu_open(&st, "torch_written.safetensors");
    ck_assert_uint_eq(st.n_tensors, 12);
    ck_assert_str_eq(qtk_st_meta(&st, "format"), "pt");
    ck_assert_ptr_null(qtk_st_meta(&st, "absent"));
    float buf[256];
    int64_t s35[2] = {3, 5};
    ck_qtk(qtk_st_read_f32(&st, "f32", 2, s35, buf));
    for (int i = 0; i < 15; i++) ck_assert(buf[i] == (float)i * 0.25f - 1.5f);
    // f16 / bf16 decode equals torch's own .float()
    for (int k = 0; k < 2; k++) {
        float ref[24];
        ck_qtk(qtk_st_read_f32(&st, k ? "bf16" : "f16", -1, NULL, buf));
        ck_qtk(qtk_st_read_f32(&st, k ? "bf16_as_f32" : "f16_as_f32", -1, NULL, ref));
        ck_assert_int_lt(tu_first_diff(buf, ref, 24), 0);
        ck_assert_int_eq(qtk_st_find(&st, k ? "bf16" : "f16")->dtype, k ? QTK_BF16 : QTK_F16);
    }
    ck_qtk(qtk_st_read_f32(&st, "i8", -1, NULL, buf));
    for (int i = 0; i < 256; i++) ck_assert(buf[i] == (float)(i - 128));
    ck_qtk(qtk_st_read_f32(&st, "u8", -1, NULL, buf));
    for (int i = 0; i < 256; i++) ck_assert(buf[i] == (float)i);
    const qtk_st_tensor *t = qtk_st_find(&st, "i32");
    int32_t i32[6];
    memcpy(i32, t->data, sizeof i32);
    ck_assert(i32[0] == INT32_MIN && i32[1] == INT32_MAX && i32[3] == 123456789 && i32[4] == -7);
    t = qtk_st_find(&st, "i64");
    int64_t i64[4];
    memcpy(i64, t->data, sizeof i64);
    ck_assert(i64[0] == -(INT64_C(1) << 62) && i64[1] == (INT64_C(1) << 40) + 7 && i64[2] == -1);
    t = qtk_st_find(&st, "scalar");
    ck_assert_int_eq(t->ndim, 0);
    ck_qtk(qtk_st_read_f32(&st, "scalar", 0, NULL, buf));
    ck_assert(buf[0] == 3.5f);
    t = qtk_st_find(&st, "empty");
    ck_assert(t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->nbytes == 0);
    // wrong shape and missing names are errors that name the tensor
    int64_t wrong[2] = {5, 3};
    ck_assert_int_eq(qtk_st_read_f32(&st, "f32", 2, wrong, buf), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "\"f32\" has shape [3, 5], expected [5, 3]"));
    ck_assert_int_eq(qtk_st_read_f32(&st, "blocks.0.attn.proj.weight", -1, NULL, buf), QTK_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "blocks.0.attn.proj.weight"));
    qtk_st_close(&st);
}
END_TEST

START_TEST(test_write_round_trip) {
    char path[300];
    snprintf(path, sizeof path, "%s/out.safetensors", tu_tmp);
    float f[6] = {1.5f, -2, 3.25f, 0, -0.0f, 1e-3f};
    uint16_t h[6], b[6];
    for (int i = 0; i < 6; i++) {
        h[i] = qtk_f32_to_f16(f[i]);
        b[i] = qtk_f32_to_bf16(f[i]);
    }
    int8_t i8[3] = {-128, 0, 127};
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    int32_t i32[2] = {INT32_MIN, 7};
    int64_t i64[1] = {INT64_MAX};
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s5[1] = {5}, s2[1] = {2}, s1[1] = {1};
    qtk_st_entry e[] = {
        {"w.f32", QTK_F32, 2, s23, f}, {"w.f16", QTK_F16, 2, s23, h}, {"w.bf16", QTK_BF16, 2, s23, b},
        {"q.i8", QTK_I8, 1, s3, i8},   {"q.u8", QTK_U8, 1, s5, u8},  {"n.i32", QTK_I32, 1, s2, i32},
        {"n.i64", QTK_I64, 1, s1, i64}, {"scalar", QTK_F32, 0, NULL, f},
    };
    const char *meta[][2] = {{"seed", "42"}, {"config", "{\"bits\": 4}"}};
    ck_qtk(qtk_st_write(path, e, 8, meta, 2));
    // no temporary file left beside it
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", tu_tmp);
    ck_assert_int_eq(system(cmd), 0);
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, path));
    ck_assert_uint_eq(st.n_tensors, 8);
    ck_assert_str_eq(qtk_st_meta(&st, "config"), "{\"bits\": 4}");
    for (size_t i = 0; i < 8; i++) {
        const qtk_st_tensor *t = qtk_st_find(&st, e[i].name);
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(t->dtype, e[i].dtype);
        ck_assert_int_eq(t->ndim, e[i].ndim);
        ck_assert_mem_eq(t->data, e[i].data, t->nbytes);
        // header padded to 8 bytes, spans ordered by element size: every span aligned
        ck_assert_int_eq((int)((uintptr_t)t->data % qtk_dtype_nbytes(t->dtype, 1)), 0);
    }
    float back[6];
    ck_qtk(qtk_st_read_f32(&st, "w.f16", 2, s23, back));
    for (int i = 0; i < 6; i++) ck_assert(back[i] == qtk_f16_to_f32(h[i]));
    qtk_st_close(&st);
    // rewriting replaces the file atomically
    ck_qtk(qtk_st_write(path, e, 1, NULL, 0));
    ck_qtk(qtk_st_open(&st, path));
    ck_assert_uint_eq(st.n_tensors, 1);
    qtk_st_close(&st);
    // errors: missing folder, duplicate names, a dtype safetensors cannot hold
    ck_assert_int_eq(qtk_st_write("/nonexistent-dir/x.safetensors", e, 1, NULL, 0), QTK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "/nonexistent-dir/x.safetensors"));
    qtk_st_entry dup[2] = {e[0], e[0]};
    ck_assert_int_eq(qtk_st_write(path, dup, 2, NULL, 0), QTK_ERR_ARG);
    qtk_st_entry i4 = {"p", QTK_I4, 1, s2, u8};
    ck_assert_int_eq(qtk_st_write(path, &i4, 1, NULL, 0), QTK_ERR_ARG);
}
END_TEST

// Writes a raw file: 8-byte length (hlen, or strlen(json)), the JSON, then data.
static void write_raw(const char *path, uint64_t hlen, const char *json, const void *data, size_t nd) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    unsigned char l[8];
    for (int i = 0; i < 8; i++) l[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(l, 1, 8, f);
    if (json) fwrite(json, 1, strlen(json), f);
    if (nd) fwrite(data, 1, nd, f);
    fclose(f);
}

START_TEST(test_malformed) {
    static const unsigned char zeros[64] = {0};
    const struct {
        const char *what, *json;
        int64_t hlen; // -1: strlen(json)
        size_t ndata;
        qtk_status expect;
        const char *msg; // a substring of the error
    } cases[] = {
        {"empty file", NULL, -2, 0, QTK_ERR_FORMAT, "too short"},
        {"4-byte file", NULL, -3, 0, QTK_ERR_FORMAT, "too short"},
        {"header length 2^60", "{}", INT64_C(1) << 60, 0, QTK_ERR_FORMAT, "header length"},
        {"header length past the end", "{}", 4096, 0, QTK_ERR_FORMAT, "header length"},
        {"bad JSON", "{\"a\": {\"dtype\": \"F32\", ", -1, 0, QTK_ERR_FORMAT, "not a valid JSON"},
        {"JSON array", "[1, 2, 3]", -1, 0, QTK_ERR_FORMAT, "start with '{'"},
        {"binary garbage", "\x01\x02\x03\x04", -1, 0, QTK_ERR_FORMAT, "start with '{'"},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", -1, 4, QTK_ERR_FORMAT,
         "unsupported dtype \"F8_E4M3\""},
        {"qtk-only dtype", "{\"a\":{\"dtype\":\"I4\",\"shape\":[2],\"data_offsets\":[0,1]}}", -1, 1, QTK_ERR_FORMAT,
         "unsupported dtype"},
        {"shape/size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", -1, 20,
         QTK_ERR_FORMAT, "[2, 3]"},
        {"span past end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, 8, QTK_ERR_FORMAT,
         "past the"},
        {"overlapping spans",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
         "\"data_offsets\":[4,12]}}",
         -1, 12, QTK_ERR_FORMAT, "overlaps"},
        {"negative shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", -1, 4, QTK_ERR_FORMAT,
         "shape[0]"},
        {"absurd shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}", -1,
         4, QTK_ERR_FORMAT, "2^64"},
        {"fractional shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", -1, 4,
         QTK_ERR_FORMAT, "shape[0]"},
        {"nine dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", -1, 1,
         QTK_ERR_FORMAT, "9 dimensions"},
        {"offsets arity", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", -1, 4, QTK_ERR_FORMAT,
         "data_offsets"},
        {"end before begin", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", -1, 4,
         QTK_ERR_FORMAT, "< begin"},
        {"missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", -1, 4, QTK_ERR_FORMAT, "\"dtype\""},
        {"entry not an object", "{\"a\":7}", -1, 0, QTK_ERR_FORMAT, "not a JSON object"},
        {"metadata value not a string", "{\"__metadata__\":{\"k\":1}}", -1, 0, QTK_ERR_FORMAT, "__metadata__"},
        {"duplicate names",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
         "\"data_offsets\":[1,2]}}",
         -1, 2, QTK_ERR_FORMAT, "twice"},
        {"hole in the buffer", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}", -1, 4, QTK_ERR_FORMAT,
         "hole"},
        {"unclaimed bytes at the end", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", -1, 9,
         QTK_ERR_FORMAT, "cover"},
        {"trailing bytes after JSON", "{} x", -1, 0, QTK_ERR_FORMAT, "trailing"},
        {"NUL inside the header", "{}\0\0", -1, 0, QTK_OK, NULL}, // strlen stops: a valid empty file
    };
    char path[300];
    snprintf(path, sizeof path, "%s/bad.safetensors", tu_tmp);
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (cases[i].hlen == -2) {
            write_raw(path, 0, NULL, NULL, 0);
            truncate(path, 0);
        } else if (cases[i].hlen == -3) {
            write_raw(path, 0, NULL, NULL, 0);
            truncate(path, 4);
        } else {
            uint64_t hl = cases[i].hlen == -1 ? strlen(cases[i].json) : (uint64_t)cases[i].hlen;
            write_raw(path, hl, cases[i].json, zeros, cases[i].ndata);
        }
        qtk_safetensors st;
        qtk_clear_error();
        qtk_status r = qtk_st_open(&st, path);
        ck_assert_msg(r == cases[i].expect, "%s: status %s, expected %s (%s)", cases[i].what, qtk_status_str(r),
                      qtk_status_str(cases[i].expect), qtk_last_error());
        if (r == QTK_OK) {
            qtk_st_close(&st);
            continue;
        }
        ck_assert_msg(strstr(qtk_last_error(), path) != NULL, "%s: message does not name the file: %s", cases[i].what,
                      qtk_last_error());
        ck_assert_msg(strstr(qtk_last_error(), cases[i].msg) != NULL, "%s: message \"%s\" lacks \"%s\"", cases[i].what,
                      qtk_last_error(), cases[i].msg);
        n++;
    }
    ck_assert_int_ge(n, 25);
    // a real file cut short anywhere never crashes
    char src[300];
    snprintf(src, sizeof src, "%s/torch_written.safetensors", QTK_FIXTURES);
    FILE *f = fopen(src, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    for (size_t cut = 0; cut < len; cut += 7) {
        FILE *g = fopen(path, "wb");
        fwrite(buf, 1, cut, g);
        fclose(g);
        qtk_safetensors st;
        ck_assert_int_ne(qtk_st_open(&st, path), QTK_OK);
    }
    // missing file and a folder
    qtk_safetensors st;
    ck_assert_int_eq(qtk_st_open(&st, "/nonexistent/model.safetensors"), QTK_ERR_IO);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "/nonexistent/model.safetensors"));
    ck_assert_int_eq(qtk_st_open(&st, tu_tmp), QTK_ERR_IO);
}
END_TEST

// Spans need not be aligned in the format: reads go through a copy.
START_TEST(test_unaligned_span) {
    char path[300];
    snprintf(path, sizeof path, "%s/unaligned.safetensors", tu_tmp);
    const char *json = "{\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    unsigned char data[9] = {7};
    float v[2] = {1.25f, -3.0f};
    memcpy(data + 1, v, 8);
    write_raw(path, strlen(json), json, data, 9);
    qtk_safetensors st;
    ck_qtk(qtk_st_open(&st, path));
    float out[2];
    ck_qtk(qtk_st_read_f32(&st, "a", -1, NULL, out));
    ck_assert(out[0] == 1.25f && out[1] == -3.0f);
    qtk_st_close(&st);
}
END_TEST

// The two-pass parameter walker (core/params.h): alternatives, optional tensors, alignment,
// and errors found in the counting pass, before anything is allocated.
typedef struct {
    float *a, *b, *opt, *c;
} walked;

static qtk_status walk_toy(qtk_param_walker *w, walked *m, int with_opt) {
    m->a = qtk_param_take(w, "a", 1, (int64_t[]){3}, 1);
    m->b = qtk_param_take(w, "b_new|b_old", 2, (int64_t[]){2, 2}, 1);
    m->opt = qtk_param_take(w, "opt", 1, (int64_t[]){5}, with_opt);
    m->c = qtk_param_take(w, "c", 1, (int64_t[]){1}, 1);
    return w->st;
}

START_TEST(test_params_walker) {
    float a[3] = {1, 2, 3}, b[4] = {4, 5, 6, 7}, c[1] = {8};
    int32_t bad[1] = {9};
    char path[128];
    snprintf(path, sizeof path, "%s/p.safetensors", tu_tmp);
    qtk_st_entry e[3] = {{"a", QTK_F32, 1, (int64_t[]){3}, a}, {"b_old", QTK_F32, 2, (int64_t[]){2, 2}, b},
                         {"c", QTK_F32, 1, (int64_t[]){1}, c}};
    ck_qtk(qtk_st_write(path, e, 3, NULL, 0));
    qtk_st_shards s;
    ck_qtk(qtk_st_shards_open(&s, NULL, path));
    qtk_param_walker w = {.src = &s, .align = 4};
    walked m;
    ck_qtk(walk_toy(&w, &m, 0));
    ck_assert_ptr_null(m.a); // counting: nothing carved
    ck_assert_uint_eq(w.used, 4 + 4 + 4);
    float *mem;
    ck_qtk(qtk_param_alloc(&w, &mem));
    ck_qtk(walk_toy(&w, &m, 0));
    ck_assert(m.a == mem && m.b == mem + 4 && m.opt == NULL && m.c == mem + 8);
    ck_assert_mem_eq(m.b, b, sizeof b); // the second alternative
    ck_assert_float_eq(m.c[0], 8);
    qtk_aligned_free(mem);
    // an optional tensor asked for but absent: named with its expected shape
    qtk_param_walker w2 = {.src = &s};
    ck_assert_int_eq(walk_toy(&w2, &m, 1), QTK_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "missing tensor \"opt\" (expected shape [5])"));
    ck_assert_uint_eq(w2.used, 3 + 4); // packed, and stopped there
    qtk_st_shards_close(&s);
    // a wrong shape, a non-float dtype
    e[2] = (qtk_st_entry){"c", QTK_I32, 1, (int64_t[]){1}, bad};
    ck_qtk(qtk_st_write(path, e, 3, NULL, 0));
    ck_qtk(qtk_st_shards_open(&s, NULL, path));
    qtk_param_walker w3 = {.src = &s};
    ck_assert_int_eq(walk_toy(&w3, &m, 0), QTK_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(qtk_last_error(), "tensor \"c\" has dtype I32, expected F32, F16 or BF16"));
    ck_assert_int_eq(qtk_param_alloc(&w3, &mem), QTK_ERR_FORMAT);
    ck_assert_ptr_null(mem);
    qtk_st_shards_close(&s);
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_torch_written);
    tcase_add_test(tc, test_write_round_trip);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_unaligned_span);
    tcase_add_test(tc, test_params_walker);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
