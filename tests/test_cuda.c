// The CUDA runtime without a device (or in a CPU-only build): the API says so instead of failing
// obscurely; the NCCL transport with one rank. The twins of core's kernels are rows of
// tests/test_backends.c.
#include "testutil.h"
#include "../core/comm.h"

static int have_gpu;

START_TEST(test_no_device_behaviour) {
    if (have_gpu) return;
    void *p = (void *)1;
    ck_assert_int_eq(qtk_cuda_device_count(), 0);
    qtk_status st = qtk_cuda_malloc(&p, 16);
    ck_assert_int_ne(st, QTK_OK);
    ck_assert_ptr_null(p);
    ck_assert(strlen(qtk_last_error()) > 0);
}
END_TEST

// The NCCL transport of core/comm.h with one rank (all a one-GPU machine allows): libnccl loaded at run
// time, the id exchanged over the host transport, an all-gather through the GPU. Without NCCL: a clear error.
START_TEST(test_nccl_one_rank) {
    if (!have_gpu) TU_SKIP("NCCL transport: no CUDA device");
    qtk_comm host, nc;
    ck_qtk(qtk_comm_host_fork(1, &host));
    qtk_status st = qtk_comm_nccl_init(&host, 0, &nc);
    if (st != QTK_OK) {
        ck_assert_int_eq(st, QTK_ERR_UNSUPPORTED);
        qtk_comm_close(&host);
        TU_SKIP("NCCL transport: %s", qtk_last_error());
    }
    double mine[3] = {1.5, -2.25, 1e300}, all[3] = {0};
    ck_qtk(nc.allgather(&nc, mine, all, 3));
    ck_assert(!memcmp(mine, all, sizeof mine));
    printf("NCCL transport: one rank, an all-gather of 3 doubles through the GPU\n");
    qtk_comm_close(&nc);
    qtk_comm_close(&host);
}
END_TEST

int main(void) {
    have_gpu = qtk_cuda_device_count() > 0;
    if (!have_gpu)
        printf("skipped: no CUDA device (%s build): GPU-vs-CPU checks not run\n",
               qtk_cuda_built() ? "CUDA" : "CPU-only");
    else {
        char info[256];
        qtk_cuda_device_info(0, info, sizeof info);
        printf("CUDA device 0: %s\n", info);
    }
    Suite *s = suite_create("cuda");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_no_device_behaviour);
    tcase_add_test(tc, test_nccl_one_rank);
    suite_add_tcase(s, tc);
    return tu_run_mode(s, 0);
}
