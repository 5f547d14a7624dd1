// The NCCL transport of comm.h. NCCL is opened with dlopen (libnccl.so.2), so a CUDA build neither links
// nor needs it unless a multi-GPU search asks for it.
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "../comm.h"
#include "cuda_check.h"

#if __has_include(<nccl.h>)
#include <nccl.h>

typedef struct {
    void *lib;
    ncclComm_t comm;
    cudaStream_t st;
    double *d_send, *d_recv;
    int cap;
    ncclResult_t (*all_gather)(const void *, void *, size_t, ncclDataType_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*destroy)(ncclComm_t);
    const char *(*err)(ncclResult_t);
} nccl_impl;

static qtk_status nccl_allgather(qtk_comm *c, const double *mine, double *all, int count) {
    nccl_impl *n = (nccl_impl *)c->impl;
    if (count > n->cap) {
        cudaFree(n->d_send);
        cudaFree(n->d_recv);
        n->d_send = n->d_recv = NULL;
        QTK_CUDA_TRY(cudaMalloc((void **)&n->d_send, (size_t)count * sizeof(double)));
        QTK_CUDA_TRY(cudaMalloc((void **)&n->d_recv, (size_t)count * c->size * sizeof(double)));
        n->cap = count;
    }
    QTK_CUDA_TRY(cudaMemcpyAsync(n->d_send, mine, (size_t)count * sizeof(double), cudaMemcpyHostToDevice, n->st));
    ncclResult_t r = n->all_gather(n->d_send, n->d_recv, (size_t)count, ncclDouble, n->comm, n->st);
    if (r != ncclSuccess) return qtk_fail(QTK_ERR_CUDA, "ncclAllGather (rank %d of %d): %s", c->rank, c->size, n->err(r));
    QTK_CUDA_TRY(cudaMemcpyAsync(all, n->d_recv, (size_t)count * c->size * sizeof(double), cudaMemcpyDeviceToHost, n->st));
    QTK_CUDA_TRY(cudaStreamSynchronize(n->st));
    return QTK_OK;
}

static void nccl_close(qtk_comm *c) {
    nccl_impl *n = (nccl_impl *)c->impl;
    if (!n) return;
    if (n->comm) n->destroy(n->comm);
    cudaFree(n->d_send);
    cudaFree(n->d_recv);
    if (n->st) cudaStreamDestroy(n->st);
    free(n);
    c->impl = NULL;
}

extern "C" qtk_status qtk_comm_nccl_init(qtk_comm *host, int device, qtk_comm *out) {
    memset(out, 0, sizeof *out);
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libnccl.so", RTLD_NOW | RTLD_LOCAL);
    // every rank takes part in the id exchange even when its own NCCL is missing, so none waits forever
    double mine[16] = {0}, all_ids[16 * 1024];
    ncclUniqueId id;
    static_assert(sizeof id <= sizeof mine, "ncclUniqueId larger than expected");
    ncclResult_t (*get_id)(ncclUniqueId *) = lib ? (ncclResult_t(*)(ncclUniqueId *))dlsym(lib, "ncclGetUniqueId") : NULL;
    int ok = get_id != NULL;
    if (host->rank == 0 && ok) ok = get_id(&id) == ncclSuccess;
    if (host->rank == 0 && ok) memcpy(mine, &id, sizeof id);
    mine[15] = ok ? 1.0 : 0.0; // the id is 128 bytes: the last double of the 16 is free for the flag
    if (host->size > 1024) return qtk_fail(QTK_ERR_ARG, "NCCL ranks: %d (at most 1024)", host->size);
    QTK_TRY(host->allgather(host, mine, all_ids, 16));
    for (int r = 0; r < host->size; r++)
        if (all_ids[16 * r + 15] != 1.0)
            return qtk_fail(QTK_ERR_UNSUPPORTED, "NCCL: rank %d could not load libnccl.so.2 or make an id (%s)", r,
                            lib ? "ncclGetUniqueId failed" : dlerror());
    memcpy(&id, all_ids, sizeof id);
    nccl_impl *n = (nccl_impl *)calloc(1, sizeof *n);
    if (!n) return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    n->lib = lib;
    n->all_gather = (ncclResult_t(*)(const void *, void *, size_t, ncclDataType_t, ncclComm_t, cudaStream_t))dlsym(
        lib, "ncclAllGather");
    n->destroy = (ncclResult_t(*)(ncclComm_t))dlsym(lib, "ncclCommDestroy");
    n->err = (const char *(*)(ncclResult_t))dlsym(lib, "ncclGetErrorString");
    ncclResult_t (*init)(ncclComm_t *, int, ncclUniqueId, int) =
        (ncclResult_t(*)(ncclComm_t *, int, ncclUniqueId, int))dlsym(lib, "ncclCommInitRank");
    if (!n->all_gather || !n->destroy || !n->err || !init) {
        free(n);
        return qtk_fail(QTK_ERR_UNSUPPORTED, "NCCL: libnccl.so.2 lacks the functions qtk uses");
    }
    *out = (qtk_comm){host->rank, host->size, nccl_allgather, nccl_close, n};
    qtk_status st = QTK_OK;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&n->st, cudaStreamNonBlocking);
    if (e != cudaSuccess) st = qtk_fail(QTK_ERR_CUDA, "NCCL rank %d: GPU %d: %s", host->rank, device, cudaGetErrorString(e));
    if (st == QTK_OK) {
        ncclResult_t r = init(&n->comm, host->size, id, host->rank);
        if (r != ncclSuccess)
            st = qtk_fail(QTK_ERR_CUDA, "ncclCommInitRank (rank %d of %d, GPU %d): %s", host->rank, host->size, device,
                          n->err(r));
    }
    if (st != QTK_OK) nccl_close(out);
    return st;
}

#else

extern "C" qtk_status qtk_comm_nccl_init(qtk_comm *host, int device, qtk_comm *out) {
    memset(out, 0, sizeof *out);
    return qtk_fail(QTK_ERR_UNSUPPORTED, "this qtk was built without nccl.h: the multi-GPU search needs NCCL");
}

#endif
