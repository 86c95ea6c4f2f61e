/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The storage under the qed filter's image (qed-embed.h): the next layer of
 * the filter, whatever the plugin serves (a file, memory, another NBD
 * server, an HTTP object). libqed treats it as a container of fixed size.
 * The storage owns one shared context into the plugin, read-only or
 * read-write; a reopen replaces it with a context of the other kind.
 *
 * When the storage must serialize its calls into the plugin. nbdkit computes
 * one thread model for the whole chain, the most restrictive of the plugin's
 * and every filter's, and hands it to each filter's .get_ready; its locks
 * (server/locks.c) then wrap each client request before it enters the
 * chain:
 * - PARALLEL: nothing to serialize. The plugin takes any number of
 *   concurrent calls on one handle, so libqed's calls pass as they come.
 * - SERIALIZE_REQUESTS: one request at a time per connection only. Every
 *   connection's requests reach our one shared context, which is one handle
 *   in the plugin: two connections would overlap on it.
 * - SERIALIZE_ALL_REQUESTS and SERIALIZE_CONNECTIONS: one request at a time
 *   in the whole server, but libqed also calls the storage outside any
 *   request: its cleaner thread marks the image clean after it has been
 *   idle (a header write and flushes), and the open in .after_fork and the
 *   reopen in a connection's .open come from nbdkit's own threads.
 * So below PARALLEL the storage takes its lock exclusively around every call
 * into the plugin (requests and the rest alike: a lock only one side takes
 * excludes nothing); at PARALLEL it takes it shared, which orders no call
 * against another and only keeps `next` from being swapped under a call.
 */
#include <nbdkit-filter.h>

#include "nbdkit-storage.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct NbdkitStorage {
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
};

/* Before and after each call into the plugin. */
static void plugin_enter(NbdkitStorage *st)
{
    if (st->serialize) {
        pthread_rwlock_wrlock(&st->lock);
    } else {
        pthread_rwlock_rdlock(&st->lock);
    }
}

static void plugin_leave(NbdkitStorage *st)
{
    pthread_rwlock_unlock(&st->lock);
}

/* nbdkit takes 32-bit counts: split longer requests. */
#define CHUNK (32u * 1024 * 1024)

static uint32_t chunk(uint64_t left)
{
    return left < CHUNK ? (uint32_t)left : CHUNK;
}

static int st_pread(void *opaque, void *buf, size_t len, uint64_t offset)
{
    NbdkitStorage *st = opaque;
    uint8_t *p = buf;
    int ret = 0;
    plugin_enter(st);
    for (size_t done = 0; done < len && ret == 0; done += CHUNK) {
        int err = 0;
        if (st->next->pread(st->next, p + done, chunk(len - done), offset + done, 0, &err) < 0) {
            ret = -(err ? err : EIO);
        }
    }
    plugin_leave(st);
    return ret;
}

static int st_pwrite(void *opaque, const void *buf, size_t len, uint64_t offset)
{
    NbdkitStorage *st = opaque;
    const uint8_t *p = buf;
    int ret = 0;
    plugin_enter(st);
    for (size_t done = 0; done < len && ret == 0; done += CHUNK) {
        int err = 0;
        if (st->next->pwrite(st->next, p + done, chunk(len - done), offset + done, 0, &err) < 0) {
            ret = -(err ? err : EIO);
        }
    }
    plugin_leave(st);
    return ret;
}

static int st_flush(void *opaque)
{
    NbdkitStorage *st = opaque;
    int err = 0, ret = 0;
    plugin_enter(st);
    if (st->can_flush && st->next->flush(st->next, 0, &err) < 0) {
        ret = -(err ? err : EIO);
    }
    plugin_leave(st);
    return ret;
}

static int st_zero(void *opaque, uint64_t offset, uint64_t len)
{
    NbdkitStorage *st = opaque;
    int ret = 0;
    plugin_enter(st);
    if (!st->can_zero) {
        void *zeros = calloc(1, chunk(len));
        if (!zeros) {
            ret = -ENOMEM;
        }
        for (uint64_t done = 0; done < len && ret == 0; done += CHUNK) {
            int err = 0;
            if (st->next->pwrite(st->next, zeros, chunk(len - done), offset + done, 0, &err) < 0) {
                ret = -(err ? err : EIO);
            }
        }
        free(zeros);
    } else {
        for (uint64_t done = 0; done < len && ret == 0; done += CHUNK) {
            int err = 0;
            if (st->next->zero(st->next, chunk(len - done), offset + done, NBDKIT_FLAG_MAY_TRIM,
                               &err) < 0) {
                ret = -(err ? err : EIO);
            }
        }
    }
    plugin_leave(st);
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
static int st_reopen(void *opaque, bool read_only)
{
    NbdkitStorage *st = opaque;
    int64_t size;
    int can_write, can_flush, can_zero;
    int ret = 0;
    pthread_rwlock_wrlock(&st->lock);
    nbdkit_next *next = open_context(st->backend, read_only, &size, &can_write, &can_flush,
                                     &can_zero);
    if (!next) {
        ret = -EIO;
    } else if (!read_only && !can_write) {
        close_context(next); /* the plugin cannot write: not an error */
        ret = -EROFS;
    } else if (size != st->size) {
        nbdkit_error("qed: the plugin's disk changed size from %" PRIi64 " to %" PRIi64 " bytes",
                     st->size, size);
        close_context(next);
        ret = -EIO;
    } else {
        close_context(st->next);
        st->next = next;
        st->can_flush = can_flush > 0;
        st->can_zero = can_zero > 0;
    }
    pthread_rwlock_unlock(&st->lock);
    return ret;
}

static void st_close(void *opaque)
{
    NbdkitStorage *st = opaque;
    close_context(st->next);
    pthread_rwlock_destroy(&st->lock);
    free(st);
}

const QedStorageOps nbdkit_storage_ops = {
    .pread = st_pread,
    .pwrite = st_pwrite,
    .flush = st_flush,
    .zero = st_zero,
    .reopen = st_reopen,
    .close = st_close,
};

NbdkitStorage *nbdkit_storage_open(nbdkit_backend *backend, bool read_only, int thread_model)
{
    int64_t size;
    int can_write, can_flush, can_zero;
    nbdkit_next *next = open_context(backend, read_only, &size, &can_write, &can_flush, &can_zero);
    if (!next) {
        return NULL;
    }
    NbdkitStorage *st = calloc(1, sizeof(*st));
    if (!st) {
        nbdkit_error("qed: out of memory");
        close_context(next);
        return NULL;
    }
    st->backend = backend;
    st->next = next;
    st->size = size;
    st->can_flush = can_flush > 0;
    st->can_zero = can_zero > 0;
    st->serialize = thread_model < NBDKIT_THREAD_MODEL_PARALLEL;
    pthread_rwlock_init(&st->lock, NULL);
    return st;
}

uint64_t nbdkit_storage_size(const NbdkitStorage *st)
{
    return (uint64_t)st->size;
}
