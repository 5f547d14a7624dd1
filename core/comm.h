// Data parallelism for the search (multi-GPU Evol-Q): `size` processes ("ranks"), each evaluating every
// candidate on its share of the calibration groups, combine their per-group losses with an all-gather,
// so every rank sees the single-process loss bit for bit and takes the same evolutionary steps.
//
// Transports: host (processes forked on one machine, joined by socketpairs: any device, and the test
// path); NCCL (one process per GPU; core/cuda/comm_nccl.cu, in builds with NCCL).
#ifndef QTK_COMM_H
#define QTK_COMM_H

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qtk_comm {
    int rank, size;
    // every rank's `count` doubles into all (size x count, in rank order); every rank calls it
    qtk_status (*allgather)(struct qtk_comm *c, const double *mine, double *all, int count);
    void (*close)(struct qtk_comm *c);
    void *impl;
} qtk_comm;

// Forks size - 1 processes: returns in each of the size processes with c set for its rank (the caller
// is rank 0). Fork before starting threads (OpenMP, OpenBLAS, CUDA): a child inherits no threads.
qtk_status qtk_comm_host_fork(int size, qtk_comm *c);
// Rank 0: waits for the other ranks to exit; *failed = how many exited with a non-zero status or a
// signal. Other ranks: nothing (they return from main or _exit).
qtk_status qtk_comm_host_join(qtk_comm *c, int *failed);
void qtk_comm_close(qtk_comm *c);

// NCCL on top of host ranks (one process per GPU): every rank calls it with its GPU; rank 0's NCCL id
// travels over host. libnccl.so.2 is loaded at run time, so CUDA builds run without it until this is
// called (then: QTK_ERR_UNSUPPORTED naming it). NVLink multicast stays off (NCCL_NVLS_ENABLE=0 unless set).
// All-gathers then go through GPU memory; host stays open for joining.
qtk_status qtk_comm_nccl_init(qtk_comm *host, int device, qtk_comm *out);

// The groups [*g0, *g1) of n_groups that rank r of size evaluates: contiguous, sizes differing by <= 1
void qtk_comm_shard(int n_groups, int rank, int size, int *g0, int *g1);

#ifdef __cplusplus
}
#endif

#endif
