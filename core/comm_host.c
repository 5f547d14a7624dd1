// The host transport of comm.h: rank 0 and each other rank share a socketpair; an all-gather sends every
// rank's part to rank 0, which sends the assembled whole back. For the search's few doubles per
// candidate this costs microseconds.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "comm.h"

typedef struct {
    int *fd;     // rank 0: fd[r] for ranks 1..size-1; other ranks: fd[0]
    pid_t *pid;  // rank 0: the children
} host_impl;

static qtk_status xfer(int fd, void *buf, size_t n, int wr, int peer) {
    char *p = buf;
    while (n) {
        ssize_t k = wr ? write(fd, p, n) : read(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return qtk_fail(QTK_ERR_IO, "search ranks: %s rank %d failed: %s", wr ? "writing to" : "reading from", peer,
                            k < 0 ? strerror(errno) : "it exited");
        p += k;
        n -= (size_t)k;
    }
    return QTK_OK;
}

static qtk_status host_allgather(qtk_comm *c, const double *mine, double *all, int count) {
    host_impl *h = c->impl;
    const size_t bytes = (size_t)count * sizeof(double);
    if (c->rank) {
        QTK_TRY(xfer(h->fd[0], (void *)mine, bytes, 1, 0));
        return xfer(h->fd[0], all, bytes * (size_t)c->size, 0, 0);
    }
    memcpy(all, mine, bytes);
    for (int r = 1; r < c->size; r++) QTK_TRY(xfer(h->fd[r], all + (size_t)r * count, bytes, 0, r));
    for (int r = 1; r < c->size; r++) QTK_TRY(xfer(h->fd[r], all, bytes * (size_t)c->size, 1, r));
    return QTK_OK;
}

static void host_close(qtk_comm *c) {
    host_impl *h = c->impl;
    if (!h) return;
    for (int r = 0; r < c->size; r++)
        if (h->fd[r] >= 0) close(h->fd[r]);
    free(h->fd);
    free(h->pid);
    free(h);
    c->impl = NULL;
}

qtk_status qtk_comm_host_fork(int size, qtk_comm *c) {
    memset(c, 0, sizeof *c);
    if (size < 1 || size > 1024) return qtk_fail(QTK_ERR_ARG, "search ranks: %d processes (1..1024)", size);
    host_impl *h = calloc(1, sizeof *h);
    if (!h || !(h->fd = malloc((size_t)size * sizeof *h->fd)) || !(h->pid = calloc((size_t)size, sizeof *h->pid))) {
        if (h) free(h->fd);
        free(h);
        return qtk_fail(QTK_ERR_NOMEM, "out of memory");
    }
    for (int r = 0; r < size; r++) h->fd[r] = -1;
    *c = (qtk_comm){0, size, host_allgather, host_close, h};
    for (int r = 1; r < size; r++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
            qtk_status st = qtk_fail(QTK_ERR_IO, "search ranks: socketpair: %s", strerror(errno));
            qtk_comm_close(c);
            return st;
        }
        pid_t pid = fork();
        if (pid < 0) {
            close(sv[0]);
            close(sv[1]);
            qtk_status st = qtk_fail(QTK_ERR_IO, "search ranks: fork: %s", strerror(errno));
            qtk_comm_close(c);
            return st;
        }
        if (pid == 0) { // rank r: only its own end
            for (int q = 1; q < r; q++) close(h->fd[q]);
            close(sv[0]);
            for (int q = 0; q < size; q++) h->fd[q] = -1;
            h->fd[0] = sv[1];
            c->rank = r;
            return QTK_OK;
        }
        close(sv[1]);
        h->fd[r] = sv[0];
        h->pid[r] = pid;
    }
    return QTK_OK;
}

qtk_status qtk_comm_host_join(qtk_comm *c, int *failed) {
    *failed = 0;
    host_impl *h = c->impl;
    if (!h || c->rank) return QTK_OK;
    for (int r = 1; r < c->size; r++) { // closing our ends first lets a rank blocked on a read see the end
        if (h->fd[r] >= 0) close(h->fd[r]);
        h->fd[r] = -1;
    }
    for (int r = 1; r < c->size; r++) {
        int st = 0;
        while (h->pid[r] > 0 && waitpid(h->pid[r], &st, 0) < 0 && errno == EINTR) {
        }
        if (h->pid[r] > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) (*failed)++;
        h->pid[r] = 0;
    }
    return QTK_OK;
}

void qtk_comm_close(qtk_comm *c) {
    if (c && c->close) c->close(c);
}

void qtk_comm_shard(int n_groups, int rank, int size, int *g0, int *g1) {
    *g0 = (int)((long)n_groups * rank / size);
    *g1 = (int)((long)n_groups * (rank + 1) / size);
}
