/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A POSIX file under the blk seam: pread/pwrite/fdatasync/ftruncate/fallocate.
 * With O_DIRECT, unaligned requests go through an aligned bounce buffer. The
 * read-modify-write of a partial block holds rmw_lock exclusively and every
 * other write or hole punch holds it shared, so that no concurrent write
 * into the same block can be undone by the stale copy the RMW writes back.
 */
#include "blk/blk.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "qed.h"

#define DIRECT_ALIGN 4096u

typedef struct BlkFile {
    BlkDev dev;
    int fd;
    bool direct;
    pthread_rwlock_t rmw_lock; /* O_DIRECT: exclusive for read-modify-write */
    BlkLockState lock;         /* QEMU's lock bytes held on fd (blk-lock.c) */
} BlkFile;

static BlkFile *to_file(BlkDev *dev)
{
    return (BlkFile *)dev;
}

/* Full-length pread; a short read at the end of the file leaves zeros. */
static int read_full(int fd, void *buf, size_t len, uint64_t offset)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            memset(p, 0, len);
            return 0;
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len, uint64_t offset)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static bool is_aligned(BlkFile *f, const void *buf, size_t len, uint64_t offset)
{
    return !f->direct || (((uintptr_t)buf | len | offset) & (DIRECT_ALIGN - 1)) == 0;
}

/* The aligned span around [offset, offset+len), in a fresh aligned buffer. */
static void *bounce_span(size_t len, uint64_t offset, uint64_t *start, size_t *span)
{
    *start = offset & ~(uint64_t)(DIRECT_ALIGN - 1);
    uint64_t end = (offset + len + DIRECT_ALIGN - 1) & ~(uint64_t)(DIRECT_ALIGN - 1);
    *span = (size_t)(end - *start);
    return g_try_malloc(*span + DIRECT_ALIGN);
}

static void *align_ptr(void *p)
{
    return (void *)(((uintptr_t)p + DIRECT_ALIGN - 1) & ~(uintptr_t)(DIRECT_ALIGN - 1));
}

static int file_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    BlkFile *f = to_file(dev);
    if (is_aligned(f, buf, len, offset)) {
        return read_full(f->fd, buf, len, offset);
    }
    uint64_t start;
    size_t span;
    void *raw = bounce_span(len, offset, &start, &span);
    if (!raw) {
        return -ENOMEM;
    }
    uint8_t *b = align_ptr(raw);
    int ret = read_full(f->fd, b, span, start);
    if (ret == 0) {
        memcpy(buf, b + (offset - start), len);
    }
    g_free(raw);
    return ret;
}

static int file_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    BlkFile *f = to_file(dev);
    if (is_aligned(f, buf, len, offset)) {
        if (!f->direct) {
            return write_full(f->fd, buf, len, offset);
        }
        pthread_rwlock_rdlock(&f->rmw_lock);
        int ret = write_full(f->fd, buf, len, offset);
        pthread_rwlock_unlock(&f->rmw_lock);
        return ret;
    }
    uint64_t start;
    size_t span;
    void *raw = bounce_span(len, offset, &start, &span);
    if (!raw) {
        return -ENOMEM;
    }
    uint8_t *b = align_ptr(raw);
    pthread_rwlock_wrlock(&f->rmw_lock);
    struct stat st;
    int ret = fstat(f->fd, &st) < 0 ? -errno : 0;
    if (ret == 0 && (start != offset || span != len)) {
        ret = read_full(f->fd, b, span, start);
    }
    if (ret == 0) {
        memcpy(b + (offset - start), buf, len);
        ret = write_full(f->fd, b, span, start);
    }
    /* The aligned span may have grown the file past what the caller wrote:
     * give the zeros back. (Only callers that never write past the end of
     * the file concurrently use O_DIRECT with unaligned writes there: the
     * qed driver writes whole clusters when the file is opened O_DIRECT.) */
    uint64_t want = MAX((uint64_t)st.st_size, offset + len);
    if (ret == 0 && (uint64_t)st.st_size < start + span && want < start + span &&
        ftruncate(f->fd, (off_t)want) < 0) {
        ret = -errno;
    }
    pthread_rwlock_unlock(&f->rmw_lock);
    g_free(raw);
    return ret;
}

static int file_flush(BlkDev *dev)
{
    if (fdatasync(to_file(dev)->fd) < 0) {
        return -errno;
    }
    return 0;
}

static int64_t file_get_length(BlkDev *dev)
{
    int fd = to_file(dev)->fd;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    if (S_ISBLK(st.st_mode)) {
        /* st_size is 0 for a block device; its end is its size. (The file
         * offset is never used for I/O: every access is pread/pwrite.) */
        off_t end = lseek(fd, 0, SEEK_END);
        return end < 0 ? -errno : end;
    }
    return st.st_size;
}

static int file_truncate(BlkDev *dev, uint64_t length)
{
    if (ftruncate(to_file(dev)->fd, (off_t)length) < 0) {
        return -errno;
    }
    return 0;
}

static int file_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len)
{
    BlkFile *f = to_file(dev);
    if (f->direct) {
        pthread_rwlock_rdlock(&f->rmw_lock);
    }
    int ret = fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                        (off_t)len) == 0
                  ? 0
                  : -errno;
    if (f->direct) {
        pthread_rwlock_unlock(&f->rmw_lock);
    }
    if (ret != -EOPNOTSUPP && ret != -ENOSYS) {
        return ret;
    }
    /* No hole punching here: write zeros, in bounded pieces. */
    size_t chunk = (size_t)MIN(len, 1024 * 1024);
    void *raw = g_try_malloc0(chunk + DIRECT_ALIGN);
    if (!raw) {
        return -ENOMEM;
    }
    ret = 0;
    while (len > 0 && ret == 0) {
        size_t n = (size_t)MIN(len, chunk);
        ret = file_pwrite(dev, align_ptr(raw), n, offset, BLK_TAG_DATA);
        offset += n;
        len -= n;
    }
    g_free(raw);
    return ret;
}

static int file_allocate(BlkDev *dev, uint64_t offset, uint64_t len)
{
    return -posix_fallocate(to_file(dev)->fd, (off_t)offset, (off_t)len);
}

static int64_t file_allocated_bytes(BlkDev *dev)
{
    struct stat st;
    if (fstat(to_file(dev)->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

static int file_data_status(BlkDev *dev, uint64_t offset, uint64_t len, bool *is_data,
                            uint64_t *run)
{
    int fd = to_file(dev)->fd;
    off_t data = lseek(fd, (off_t)offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {
            /* Past the last data: a hole up to the end of the file, or beyond it. */
            *is_data = false;
            *run = len;
            return 0;
        }
        /* SEEK_DATA unsupported: report data. */
        *is_data = true;
        *run = len;
        return 0;
    }
    if ((uint64_t)data > offset) {
        *is_data = false;
        *run = MIN(len, (uint64_t)data - offset);
        return 0;
    }
    off_t hole = lseek(fd, (off_t)offset, SEEK_HOLE);
    *is_data = true;
    *run = hole < 0 ? len : MIN(len, (uint64_t)hole - offset);
    if (*run == 0) {
        *run = len;
    }
    return 0;
}

static int file_reopen(BlkDev *dev, bool read_only)
{
    BlkFile *f = to_file(dev);
    int flags = O_CLOEXEC | (read_only ? O_RDONLY : O_RDWR) | (f->direct ? O_DIRECT : 0);
    /* Through /proc, so that it is the same file even if the name changed
     * (never by name: it might now be a FIFO, or lie outside the directory
     * a backing chain was confined to; blk-open.c needs /proc too). */
    char path[64];
    g_snprintf(path, sizeof(path), "/proc/self/fd/%d", f->fd);
    int fd = open(path, flags);
    if (fd < 0) {
        return -errno;
    }
    /* The new descriptor is a new open file description: give it our lock
     * bytes before the old one's go with its close. */
    int ret = blk_lock_copy(&f->lock, fd);
    if (ret < 0) {
        close(fd);
        return ret;
    }
    int old = f->fd;
    f->fd = fd;
    close(old);
    return 0;
}

static int file_lock(BlkDev *dev, unsigned perm, unsigned shared, QedLocking mode, GError **errp)
{
    BlkFile *f = to_file(dev);
    return blk_lock_fd(f->fd, &f->lock, dev->filename, perm, shared, mode, errp);
}

static void file_close(BlkDev *dev)
{
    BlkFile *f = to_file(dev);
    close(f->fd);
    pthread_rwlock_destroy(&f->rmw_lock);
    g_free(f);
}

static const BlkOps blk_file_ops = {
    .name = "file",
    .pread = file_pread,
    .pwrite = file_pwrite,
    .flush = file_flush,
    .get_length = file_get_length,
    .truncate = file_truncate,
    .punch_zeroes = file_punch_zeroes,
    .allocate = file_allocate,
    .allocated_bytes = file_allocated_bytes,
    .data_status = file_data_status,
    .reopen = file_reopen,
    .lock = file_lock,
    .close = file_close,
};

BlkDev *blk_file_new(int fd, const char *filename, unsigned flags)
{
    BlkFile *f = g_new0(BlkFile, 1);
    blk_init(&f->dev, &blk_file_ops, filename, flags & BLK_OPEN_READ_ONLY);
    f->fd = fd;
    f->direct = flags & BLK_OPEN_DIRECT;
    if (f->direct) {
        f->dev.request_align = DIRECT_ALIGN;
    }
    /* A block device cannot grow and keeps whatever lies past the image. */
    struct stat st;
    f->dev.fixed_length = fstat(fd, &st) == 0 && S_ISBLK(st.st_mode);
    pthread_rwlock_init(&f->rmw_lock, NULL);
    return &f->dev;
}

BlkDev *blk_file_open(const char *filename, unsigned flags, GError **errp)
{
    struct stat st;
    int fd = blk_open_fd(AT_FDCWD, filename, filename, flags, &st, errp);
    if (fd < 0) {
        return NULL;
    }
    return blk_file_new(fd, filename, flags);
}
