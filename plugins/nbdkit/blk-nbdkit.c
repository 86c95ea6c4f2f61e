/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A blk device over the next layer of an nbdkit filter: the QED image lives
 * inside whatever the plugin serves (a file, memory, another NBD server, an
 * HTTP object). The plugin's disk is a container of fixed size. The device
 * owns one shared context into the plugin, read-only or read-write; a
 * reopen replaces it with a context of the other kind.
 *
 * When the device must serialize its calls into the plugin. nbdkit computes
 * one thread model for the whole chain, the most restrictive of the plugin's
 * and every filter's, and hands it to each filter's .get_ready; its locks
 * (server/locks.c) then wrap each client request before it enters the
 * chain:
 * - PARALLEL: no lock. The plugin takes any number of concurrent calls on
 *   one handle, so the device passes libqed's calls through as they come.
 * - SERIALIZE_REQUESTS: one request at a time per connection only. Every
 *   connection's requests reach our one shared context, which is one handle
 *   in the plugin: two connections would overlap on it.
 * - SERIALIZE_ALL_REQUESTS and SERIALIZE_CONNECTIONS: one request at a time
 *   in the whole server, but libqed also calls the device outside any
 *   request: its cleaner thread marks the image clean after it has been idle
 *   (a header write and flushes), and the open in .after_fork and the
 *   reopen in a connection's .open come from nbdkit's own threads.
 * So below PARALLEL the device takes its lock exclusively around every call
 * into the plugin (requests and the rest alike: a lock only one side takes
 * excludes nothing); at PARALLEL it takes it shared, which orders no call
 * against another and only keeps `next` from being swapped under a call.
 */
#include <nbdkit-filter.h>

#include "blk-nbdkit.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

typedef struct BlkNbdkit {
    BlkDev dev;
    nbdkit_backend *backend; /* where contexts are opened; valid until .cleanup */
    nbdkit_next *next;       /* the context, prepared; owned; replaced by a reopen */
    int64_t size;            /* the container's size, fixed at open */
    bool can_flush;
    bool can_zero;         /* the next layer takes zero requests */
    bool serialize;        /* the thread model is below PARALLEL; fixed at open */
    pthread_rwlock_t lock; /* held around every call into the plugin: exclusive
                            * when `serialize`, else shared; exclusive while a
                            * reopen opens a context and swaps `next` and the
                            * flags (see the top of the file) */
} BlkNbdkit;

static BlkNbdkit *to_nbd(BlkDev *dev)
{
    return (BlkNbdkit *)dev;
}

/* Before and after each call into the plugin. */
static void plugin_enter(BlkNbdkit *b)
{
    if (b->serialize) {
        pthread_rwlock_wrlock(&b->lock);
    } else {
        pthread_rwlock_rdlock(&b->lock);
    }
}

static void plugin_leave(BlkNbdkit *b)
{
    pthread_rwlock_unlock(&b->lock);
}

/* nbdkit takes 32-bit counts: split longer requests. */
#define CHUNK (32u * 1024 * 1024)

static int nbd_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    BlkNbdkit *b = to_nbd(dev);
    uint8_t *p = buf;
    /* Past the end of the container reads as zeros, like a file. */
    size_t avail = offset < (uint64_t)b->size ? (size_t)MIN(len, (uint64_t)b->size - offset) : 0;
    memset(p + avail, 0, len - avail);
    int ret = 0;
    plugin_enter(b);
    for (size_t done = 0; done < avail && ret == 0; done += CHUNK) {
        int err = 0;
        uint32_t n = (uint32_t)MIN(avail - done, CHUNK);
        if (b->next->pread(b->next, p + done, n, offset + done, 0, &err) < 0) {
            ret = -(err ? err : EIO);
        }
    }
    plugin_leave(b);
    return ret;
}

static int nbd_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    BlkNbdkit *b = to_nbd(dev);
    if (offset > (uint64_t)b->size || len > (uint64_t)b->size - offset) {
        return -ENOSPC; /* the container cannot grow */
    }
    const uint8_t *p = buf;
    int ret = 0;
    plugin_enter(b);
    for (size_t done = 0; done < len && ret == 0; done += CHUNK) {
        int err = 0;
        uint32_t n = (uint32_t)MIN(len - done, CHUNK);
        if (b->next->pwrite(b->next, p + done, n, offset + done, 0, &err) < 0) {
            ret = -(err ? err : EIO);
        }
    }
    plugin_leave(b);
    return ret;
}

static int nbd_flush(BlkDev *dev)
{
    BlkNbdkit *b = to_nbd(dev);
    if (!b->can_flush) {
        return 0;
    }
    int err = 0, ret = 0;
    plugin_enter(b);
    if (b->next->flush(b->next, 0, &err) < 0) {
        ret = -(err ? err : EIO);
    }
    plugin_leave(b);
    return ret;
}

static int64_t nbd_get_length(BlkDev *dev)
{
    return to_nbd(dev)->size;
}

/* A container keeps its size. The image grows the file over the clusters
 * it allocated; here every one of them was written whole, and a write past
 * the end fails (ENOSPC) before anything points at its clusters, so the
 * container already covers every cluster in use: what lies beyond belongs
 * to allocations that failed. Refusing would fail every later flush. */
static int nbd_truncate(BlkDev *dev, uint64_t length)
{
    return 0;
}

static int nbd_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len)
{
    BlkNbdkit *b = to_nbd(dev);
    if (offset >= (uint64_t)b->size) {
        return 0;
    }
    len = MIN(len, (uint64_t)b->size - offset);
    if (!b->can_zero) {
        void *zeros = g_malloc0(CHUNK);
        int ret = 0;
        for (uint64_t done = 0; done < len && ret == 0; done += CHUNK) {
            ret = nbd_pwrite(dev, zeros, (size_t)MIN(len - done, CHUNK), offset + done,
                             BLK_TAG_DATA);
        }
        g_free(zeros);
        return ret;
    }
    int ret = 0;
    plugin_enter(b);
    for (uint64_t done = 0; done < len && ret == 0; done += CHUNK) {
        int err = 0;
        uint32_t n = (uint32_t)MIN(len - done, CHUNK);
        if (b->next->zero(b->next, n, offset + done, NBDKIT_FLAG_MAY_TRIM, &err) < 0) {
            ret = -(err ? err : EIO);
        }
    }
    plugin_leave(b);
    return ret;
}

/* A prepared shared context into the plugin, and what it can do. NULL
 * (with nbdkit_error) when it cannot be opened. */
static nbdkit_next *open_context(nbdkit_backend *backend, bool read_only, int64_t *size,
                                 int *can_write, int *can_flush, int *can_zero)
{
    nbdkit_next *next = nbdkit_next_context_open(backend, read_only, "", 1);
    if (!next) {
        nbdkit_error("qed: could not open the underlying plugin");
        return NULL;
    }
    if (next->prepare(next) < 0) {
        nbdkit_next_context_close(next);
        return NULL;
    }
    *size = next->get_size(next);
    *can_write = next->can_write(next);
    *can_flush = next->can_flush(next);
    *can_zero = next->can_zero(next);
    if (*size < 0 || *can_write < 0 || *can_flush < 0 || *can_zero < 0) {
        next->finalize(next);
        nbdkit_next_context_close(next);
        return NULL;
    }
    return next;
}

static void close_context(nbdkit_next *next)
{
    next->finalize(next);
    nbdkit_next_context_close(next);
}

/* Called with no request in flight (qed_reopen's contract); holds the lock
 * exclusive all the same, so that under a serializing thread model the
 * plugin's open, prepare and finalize of the two contexts overlap nothing.
 * -EROFS when the plugin cannot write; other refusals of the plugin were
 * reported with nbdkit_error. */
static int nbd_reopen(BlkDev *dev, bool read_only)
{
    BlkNbdkit *b = to_nbd(dev);
    int64_t size;
    int can_write, can_flush, can_zero;
    int ret = 0;
    pthread_rwlock_wrlock(&b->lock);
    nbdkit_next *next = open_context(b->backend, read_only, &size, &can_write, &can_flush,
                                     &can_zero);
    if (!next) {
        ret = -EIO;
    } else if (!read_only && !can_write) {
        close_context(next); /* the plugin cannot write: not an error */
        ret = -EROFS;
    } else if (size != b->size) {
        nbdkit_error("qed: the plugin's disk changed size from %" PRIi64 " to %" PRIi64 " bytes",
                     b->size, size);
        close_context(next);
        ret = -EIO;
    } else {
        close_context(b->next);
        b->next = next;
        b->can_flush = can_flush > 0;
        b->can_zero = can_zero > 0;
    }
    pthread_rwlock_unlock(&b->lock);
    return ret;
}

static void nbd_close(BlkDev *dev)
{
    BlkNbdkit *b = to_nbd(dev);
    close_context(b->next);
    pthread_rwlock_destroy(&b->lock);
    g_free(b);
}

static const BlkOps blk_nbdkit_ops = {
    .name = "nbdkit",
    .pread = nbd_pread,
    .pwrite = nbd_pwrite,
    .flush = nbd_flush,
    .get_length = nbd_get_length,
    .truncate = nbd_truncate,
    .punch_zeroes = nbd_punch_zeroes,
    .reopen = nbd_reopen,
    .close = nbd_close,
};

BlkDev *blk_nbdkit_open(nbdkit_backend *backend, const char *name, bool read_only,
                        int thread_model)
{
    int64_t size;
    int can_write, can_flush, can_zero;
    nbdkit_next *next = open_context(backend, read_only, &size, &can_write, &can_flush, &can_zero);
    if (!next) {
        return NULL;
    }
    BlkNbdkit *b = g_new0(BlkNbdkit, 1);
    blk_init(&b->dev, &blk_nbdkit_ops, name, read_only || !can_write);
    b->dev.fixed_length = true;
    b->backend = backend;
    b->next = next;
    b->size = size;
    b->can_flush = can_flush > 0;
    b->can_zero = can_zero > 0;
    b->serialize = thread_model < NBDKIT_THREAD_MODEL_PARALLEL;
    pthread_rwlock_init(&b->lock, NULL);
    return &b->dev;
}
