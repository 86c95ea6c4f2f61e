/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared image and the NBD requests on it, for nbdkit-qed-plugin and
 * nbdkit-qed-filter: libqed errors become nbdkit_error() plus errno.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "qed-nbdkit.h"

#include <errno.h>
#include <string.h>

/* Reports err (if any) and sets the errno nbdkit sends to the client. */
static int fail(int ret, GError *err)
{
    if (err) {
        nbdkit_error("%s", err->message);
        g_error_free(err);
    }
    /* The plugin reads nbdkit_set_error; the filter passes errno on. */
    nbdkit_set_error(-ret);
    errno = -ret;
    return -1;
}

void qed_export_init(QedExport *exp, bool stay_read_only)
{
    memset(exp, 0, sizeof(*exp));
    exp->stay_read_only = stay_read_only;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&exp->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
}

void qed_export_set_image(QedExport *exp, QedImage *img, unsigned flags)
{
    exp->img = img;
    exp->open_flags = flags;
    exp->writable = !(flags & QED_OPEN_READ_ONLY);
}

int qed_export_can_write(QedExport *exp)
{
    pthread_rwlock_rdlock(&exp->lock);
    int writable = exp->writable;
    pthread_rwlock_unlock(&exp->lock);
    return writable;
}

int qed_export_connect(QedExport *exp, int readonly)
{
    pthread_rwlock_rdlock(&exp->lock);
    bool done = readonly || exp->stay_read_only || exp->writable;
    pthread_rwlock_unlock(&exp->lock);
    if (done) {
        return 0;
    }
    GError *err = NULL;
    int ret = 0;
    pthread_rwlock_wrlock(&exp->lock);
    /* Another connection may have switched meanwhile. */
    if (!exp->writable && !exp->stay_read_only) {
        ret = qed_reopen(exp->img, exp->open_flags & ~QED_OPEN_READ_ONLY, &err);
        exp->writable = ret == 0;
        if (ret == -EROFS || ret == -EACCES || ret == -EPERM) {
            /* The storage cannot be written (a read-only file system, a
             * file the server's user may not write, a plugin below that
             * cannot write): serve read-only, as nbdkit's file plugin
             * serves such a file, and stop trying. */
            nbdkit_debug("serving read-only: %s", err->message);
            g_clear_error(&err);
            exp->stay_read_only = true;
            ret = 0;
        }
    }
    pthread_rwlock_unlock(&exp->lock);
    if (ret < 0) {
        nbdkit_error("cannot serve the image writable, refusing the client: %s", err->message);
        g_error_free(err);
        return -1;
    }
    return 0;
}

void qed_export_close(QedExport *exp)
{
    GError *err = NULL;
    if (exp->img && qed_close(exp->img, &err) < 0) {
        nbdkit_error("%s", err->message);
        g_error_free(err);
    }
    exp->img = NULL;
}

int qed_nbdkit_parse_cache(const char *value, unsigned *flags)
{
    if (strcmp(value, "writeback") == 0) {
        *flags = 0;
    } else if (strcmp(value, "writethrough") == 0) {
        *flags = QED_OPEN_WRITETHROUGH;
    } else if (strcmp(value, "none") == 0 || strcmp(value, "directsync") == 0) {
        *flags = QED_OPEN_DIRECT;
    } else {
        nbdkit_error("cache=%s: unknown mode (expected writeback, writethrough or none)", value);
        return -1;
    }
    return 0;
}

int qed_nbdkit_parse_locking(const char *value, QedLocking *locking)
{
    if (strcmp(value, "auto") == 0) {
        *locking = QED_LOCKING_AUTO;
    } else if (strcmp(value, "on") == 0) {
        *locking = QED_LOCKING_ON;
    } else if (strcmp(value, "off") == 0) {
        *locking = QED_LOCKING_OFF;
    } else {
        nbdkit_error("locking=%s: expected auto, on or off", value);
        return -1;
    }
    return 0;
}

int64_t qed_nbdkit_get_size(QedExport *exp)
{
    pthread_rwlock_rdlock(&exp->lock);
    uint64_t size = qed_get_size(exp->img);
    pthread_rwlock_unlock(&exp->lock);
    return (int64_t)size;
}

int qed_nbdkit_pread(QedExport *exp, void *buf, uint32_t count, uint64_t offset)
{
    GError *err = NULL;
    pthread_rwlock_rdlock(&exp->lock);
    int ret = qed_pread(exp->img, buf, count, offset, &err);
    pthread_rwlock_unlock(&exp->lock);
    return ret < 0 ? fail(ret, err) : 0;
}

int qed_nbdkit_pwrite(QedExport *exp, const void *buf, uint32_t count, uint64_t offset,
                      uint32_t flags)
{
    GError *err = NULL;
    unsigned wflags = (flags & NBDKIT_FLAG_FUA) ? QED_WRITE_FUA : 0;
    pthread_rwlock_rdlock(&exp->lock);
    int ret = qed_pwrite(exp->img, buf, count, offset, wflags, &err);
    pthread_rwlock_unlock(&exp->lock);
    return ret < 0 ? fail(ret, err) : 0;
}

int qed_nbdkit_zero(QedExport *exp, uint32_t count, uint64_t offset, uint32_t flags)
{
    GError *err = NULL;
    unsigned wflags = (flags & NBDKIT_FLAG_FUA) ? QED_WRITE_FUA : 0;
    pthread_rwlock_rdlock(&exp->lock);
    int ret = qed_pwrite_zeroes(exp->img, count, offset, wflags, &err);
    pthread_rwlock_unlock(&exp->lock);
    return ret < 0 ? fail(ret, err) : 0;
}

int qed_nbdkit_trim(QedExport *exp, uint32_t count, uint64_t offset, uint32_t flags)
{
    GError *err = NULL;
    pthread_rwlock_rdlock(&exp->lock);
    int ret = qed_discard(exp->img, count, offset, &err);
    if (ret == 0 && (flags & NBDKIT_FLAG_FUA)) {
        ret = qed_flush(exp->img, &err);
    }
    pthread_rwlock_unlock(&exp->lock);
    return ret < 0 ? fail(ret, err) : 0;
}

int qed_nbdkit_flush(QedExport *exp)
{
    GError *err = NULL;
    pthread_rwlock_rdlock(&exp->lock);
    int ret = qed_flush(exp->img, &err);
    pthread_rwlock_unlock(&exp->lock);
    return ret < 0 ? fail(ret, err) : 0;
}

/* The NBD type of the run at offset in img (at most len bytes): allocated
 * data, or a hole that reads as zeros, looking through unallocated ranges
 * into the backing chain. */
static int describe(QedImage *img, uint64_t offset, uint64_t len, uint32_t *type, uint64_t *run)
{
    QedExtent ext;
    GError *err = NULL;
    int ret = qed_block_status(img, len, offset, &ext, &err);
    if (ret < 0) {
        return fail(ret, err);
    }
    *run = ext.length;
    switch (ext.type) {
    case QED_EXTENT_DATA:
        *type = 0;
        return 0;
    case QED_EXTENT_ZERO:
        *type = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
        return 0;
    case QED_EXTENT_UNALLOCATED:
        break;
    }
    QedImage *backing = qed_get_backing(img);
    uint64_t backing_size = backing ? qed_get_size(backing) : 0;
    if (offset >= backing_size) {
        *type = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
        return 0;
    }
    return describe(backing, offset, MIN(ext.length, backing_size - offset), type, run);
}

/* Called with exp->lock held shared. */
static int extents_locked(QedImage *img, uint32_t count, uint64_t offset, uint32_t flags,
                          struct nbdkit_extents *extents)
{
    uint64_t end = offset + count;
    while (offset < end) {
        uint32_t type;
        uint64_t run;
        if (describe(img, offset, end - offset, &type, &run) < 0) {
            return -1;
        }
        if (nbdkit_add_extent(extents, offset, run, type) < 0) {
            return -1;
        }
        offset += run;
        if (flags & NBDKIT_FLAG_REQ_ONE) {
            break;
        }
    }
    return 0;
}

int qed_nbdkit_extents(QedExport *exp, uint32_t count, uint64_t offset, uint32_t flags,
                       struct nbdkit_extents *extents)
{
    pthread_rwlock_rdlock(&exp->lock);
    int ret = extents_locked(exp->img, count, offset, flags, extents);
    pthread_rwlock_unlock(&exp->lock);
    return ret;
}
