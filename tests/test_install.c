// The installed library as an outside project sees it (tests/install.sh): headers under
// <qtk/...> that compile on their own, libqtk.so and libqtk.a through pkg-config, the C
// example on a ViT and a Mamba checkpoint, the Python ctypes example.
#include <libgen.h>

#include "testutil.h"

START_TEST(test_install) {
    char build[256], cmd[1024];
    snprintf(build, sizeof build, "%s", QTK_CLI);
    snprintf(cmd, sizeof cmd, "bash tests/install.sh %s/prefix %s 2>&1", tu_tmp, dirname(build));
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char out[8192] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    printf("%s", out);
    ck_assert_msg(rc == 0, "tests/install.sh failed:\n%s", out);
    ck_assert_ptr_nonnull(strstr(out, "compile on their own"));
    ck_assert_ptr_nonnull(strstr(out, "fake-quant s=0x1.99999cp-3 z=5: -0x1.000002p+0"));
    ck_assert_ptr_nonnull(strstr(out, "vit fashion_vit: class "));
    ck_assert_ptr_nonnull(strstr(out, "mamba: next byte 115")); // "...the heaven" -> 's'
    ck_assert_ptr_nonnull(strstr(out, "error: no/such/file.safetensors: cannot open"));
    ck_assert_ptr_nonnull(strstr(out, "install: ok"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("outside");
    tcase_set_timeout(tc, 300);
    tcase_add_checked_fixture(tc, tu_tmp_setup, tu_tmp_teardown);
    tcase_add_test(tc, test_install);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
