#include "file.h"

#include <zlib.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

qtk_status qtk_file_open_regular(const char *path, const char *what, int *fd, size_t *size) {
    *fd = -1;
    *size = 0;
    // O_NONBLOCK: open() on a FIFO with no writer would wait forever
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f < 0) return qtk_fail(QTK_ERR_IO, "%s: cannot open%s%s: %s", path, what ? " the " : "", what ? what : "", strerror(errno));
    struct stat sb;
    if (fstat(f, &sb) != 0) {
        int e = errno;
        close(f);
        return qtk_fail(QTK_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return qtk_fail(QTK_ERR_IO, "%s: not a regular file (%s)%s%s", path,
                        S_ISDIR(sb.st_mode) ? "a folder" : S_ISFIFO(sb.st_mode) ? "a FIFO" : S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) ? "a device" : "a socket or other",
                        what ? ", expected a " : "", what ? what : "");
    }
    int fl = fcntl(f, F_GETFL);
    if (fl >= 0) fcntl(f, F_SETFL, fl & ~O_NONBLOCK);
    *fd = f;
    *size = (size_t)sb.st_size;
    return QTK_OK;
}

FILE *qtk_file_fopen_regular(const char *path, const char *what) {
    int fd;
    size_t size;
    if (qtk_file_open_regular(path, what, &fd, &size) != QTK_OK) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        qtk_fail(QTK_ERR_NOMEM, "%s: cannot start reading", path);
    }
    return f;
}

qtk_status qtk_file_read(const char *path, const char *what, size_t max_bytes, char **buf, size_t *len) {
    *buf = NULL;
    if (len) *len = 0;
    int fd;
    size_t size;
    QTK_TRY(qtk_file_open_regular(path, what, &fd, &size));
    if (size > max_bytes) {
        close(fd);
        return qtk_fail(QTK_ERR_FORMAT, "%s: %zu bytes, more than the %zu a %s may have", path, size, max_bytes,
                        what ? what : "file of this kind");
    }
    char *b = malloc(size + 1);
    if (!b) {
        close(fd);
        return qtk_fail(QTK_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, b + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(b);
        return qtk_fail(QTK_ERR_IO, "%s: read %zu of %zu bytes (changed while reading?)", path, got, size);
    }
    b[size] = '\0';
    *buf = b;
    if (len) *len = size;
    return QTK_OK;
}

int qtk_file_create_tmp(const char *path, char *tmp, size_t tmp_cap) {
    static unsigned counter;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        if ((size_t)snprintf(tmp, tmp_cap, "%s.tmp.%ld.%u", path, (long)getpid(), n) >= tmp_cap) {
            qtk_fail(QTK_ERR_ARG, "%s: path too long for a temporary beside it", path);
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666); // the umask applies, as for fopen()
        if (fd >= 0) return fd;
        if (errno != EEXIST) break;
    }
    qtk_fail(QTK_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
    return -1;
}

// A name "<pid>.<n>" of a process that still runs on this host.
static int tmp_owner_alive(const char *suffix) {
    char *end;
    long pid = strtol(suffix, &end, 10);
    if (end == suffix || *end != '.' || pid <= 0) return 0;
    for (const char *p = end + 1; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int qtk_file_remove_stale_tmp(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    if (slash == path) snprintf(dir, sizeof dir, "/");
    char prefix[512];
    if ((size_t)snprintf(prefix, sizeof prefix, "%s.tmp.", slash ? slash + 1 : path) >= sizeof prefix) return 0;
    size_t pl = strlen(prefix);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, pl) || tmp_owner_alive(e->d_name + pl)) continue;
        char p[4096 + 512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) == 0) removed++;
    }
    closedir(d);
    return removed;
}

qtk_status qtk_file_crc32(const char *path, uint32_t *out) {
    int fd;
    size_t size;
    QTK_TRY(qtk_file_open_regular(path, "checkpoint", &fd, &size));
    unsigned char *buf = malloc(1 << 20);
    if (!buf) {
        close(fd);
        return qtk_fail(QTK_ERR_NOMEM, "%s: out of memory", path);
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    ssize_t n;
    while ((n = read(fd, buf, 1 << 20)) > 0) crc = crc32(crc, buf, (uInt)n);
    free(buf);
    close(fd);
    if (n < 0) return qtk_fail(QTK_ERR_IO, "%s: read error: %s", path, strerror(errno));
    *out = (uint32_t)crc;
    return QTK_OK;
}
