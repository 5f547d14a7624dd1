// Errors: messages, propagation, per-thread state.
#include <pthread.h>
#include <signal.h>

#include "testutil.h"

static qtk_status inner(int fail) {
    if (fail) return qtk_fail(QTK_ERR_NOT_FOUND, "tensor \"%s\" missing in %s", "head.weight", "model.safetensors");
    return QTK_OK;
}

static qtk_status outer(int fail, int *reached) {
    QTK_TRY(inner(fail));
    *reached = 1;
    return QTK_OK;
}

START_TEST(test_messages_and_try) {
    qtk_clear_error();
    ck_assert_str_eq(qtk_last_error(), "");
    int reached = 0;
    ck_assert_int_eq(outer(1, &reached), QTK_ERR_NOT_FOUND);
    ck_assert_int_eq(reached, 0);
    ck_assert_str_eq(qtk_last_error(), "tensor \"head.weight\" missing in model.safetensors");
    ck_assert_int_eq(outer(0, &reached), QTK_OK);
    ck_assert_int_eq(reached, 1);
    for (int s = QTK_OK; s <= QTK_ERR_CUDA; s++) ck_assert_str_ne(qtk_status_str((qtk_status)s), "unknown status");
    ck_assert_str_eq(qtk_status_str((qtk_status)99), "unknown status");
    // context added around the last message (the argument is the message buffer itself)
    qtk_fail(QTK_ERR_ARG, "inner %d", 7);
    ck_assert_int_eq(qtk_fail(QTK_ERR_FORMAT, "cfg.yaml: search.targets: %s", qtk_last_error()), QTK_ERR_FORMAT);
    ck_assert_str_eq(qtk_last_error(), "cfg.yaml: search.targets: inner 7");
}
END_TEST

static void *thread_body(void *arg) {
    qtk_fail(QTK_ERR_IO, "from the thread");
    *(int *)arg = strcmp(qtk_last_error(), "from the thread") == 0;
    return NULL;
}

START_TEST(test_thread_local) {
    qtk_fail(QTK_ERR_ARG, "main thread message");
    pthread_t t;
    int ok = 0;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_body, &ok), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(ok, 1);
    ck_assert_str_eq(qtk_last_error(), "main thread message");
}
END_TEST

static void check_fails(void) {
    fputs("(test_check_aborts: the \"internal check failed\" line below is expected)\n", stderr);
    QTK_CHECK(1 + 1 == 3);
}

START_TEST(test_check_aborts) { check_fails(); }
END_TEST

int main(void) {
    Suite *s = suite_create("error");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_messages_and_try);
    tcase_add_test(tc, test_thread_local);
    tcase_add_test_raise_signal(tc, test_check_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
