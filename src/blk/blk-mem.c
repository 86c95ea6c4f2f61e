/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An in-memory device under the blk seam, for tests and fuzzing: a growable
 * byte array behind a mutex. Flush does nothing; nothing is ever lost.
 */
#include "blk/blk.h"

#include <errno.h>
#include <string.h>

/* Refuse to grow past this, so a hostile image cannot make a test allocate without bound. */
#define MEM_MAX_LENGTH (1ull << 32)

typedef struct BlkMem {
    BlkDev dev;
    pthread_mutex_t lock;
    uint8_t *data; /* guarded by lock */
    uint64_t length;
    uint64_t capacity;
} BlkMem;

static BlkMem *to_mem(BlkDev *dev)
{
    return (BlkMem *)dev;
}

/* Called with lock held. */
static int mem_grow_locked(BlkMem *m, uint64_t length)
{
    if (length > MEM_MAX_LENGTH) {
        return -EFBIG;
    }
    if (length > m->capacity) {
        uint64_t cap = MAX(length, m->capacity * 2);
        cap = MIN(cap, MEM_MAX_LENGTH);
        uint8_t *p = g_try_realloc(m->data, cap);
        if (!p) {
            return -ENOMEM;
        }
        memset(p + m->capacity, 0, cap - m->capacity);
        m->data = p;
        m->capacity = cap;
    }
    if (length > m->length) {
        m->length = length;
    }
    return 0;
}

static int mem_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    BlkMem *m = to_mem(dev);
    pthread_mutex_lock(&m->lock);
    size_t avail = offset < m->length ? (size_t)MIN(len, m->length - offset) : 0;
    if (avail > 0) {
        memcpy(buf, m->data + offset, avail);
    }
    memset((uint8_t *)buf + avail, 0, len - avail);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int mem_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    BlkMem *m = to_mem(dev);
    pthread_mutex_lock(&m->lock);
    int ret = mem_grow_locked(m, offset + len);
    if (ret == 0) {
        memcpy(m->data + offset, buf, len);
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

static int mem_flush(BlkDev *dev)
{
    return 0;
}

static int64_t mem_get_length(BlkDev *dev)
{
    BlkMem *m = to_mem(dev);
    pthread_mutex_lock(&m->lock);
    int64_t len = (int64_t)m->length;
    pthread_mutex_unlock(&m->lock);
    return len;
}

static int mem_truncate(BlkDev *dev, uint64_t length)
{
    BlkMem *m = to_mem(dev);
    int ret = 0;
    pthread_mutex_lock(&m->lock);
    if (length < m->length) {
        memset(m->data + length, 0, m->length - length);
        m->length = length;
    } else {
        ret = mem_grow_locked(m, length);
    }
    pthread_mutex_unlock(&m->lock);
    return ret;
}

/* Grows the device over [offset, offset+len) where that lies past its end
 * (memory is always there: nothing else to reserve). */
static int mem_allocate(BlkDev *dev, uint64_t offset, uint64_t len)
{
    BlkMem *m = to_mem(dev);
    pthread_mutex_lock(&m->lock);
    int ret = offset + len > m->length ? mem_grow_locked(m, offset + len) : 0;
    pthread_mutex_unlock(&m->lock);
    return ret;
}

static int mem_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len)
{
    BlkMem *m = to_mem(dev);
    pthread_mutex_lock(&m->lock);
    if (offset < m->length) {
        memset(m->data + offset, 0, (size_t)MIN(len, m->length - offset));
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int mem_reopen(BlkDev *dev, bool read_only)
{
    return 0; /* memory has no mode to change; blk.c records read_only */
}

static void mem_close(BlkDev *dev)
{
    BlkMem *m = to_mem(dev);
    g_free(m->data);
    pthread_mutex_destroy(&m->lock);
    g_free(m);
}

static const BlkOps blk_mem_ops = {
    .name = "mem",
    .pread = mem_pread,
    .pwrite = mem_pwrite,
    .flush = mem_flush,
    .get_length = mem_get_length,
    .truncate = mem_truncate,
    .punch_zeroes = mem_punch_zeroes,
    .allocate = mem_allocate,
    .reopen = mem_reopen,
    .close = mem_close,
};

BlkDev *blk_mem_new(const char *name, const void *contents, size_t len)
{
    BlkMem *m = g_new0(BlkMem, 1);
    blk_init(&m->dev, &blk_mem_ops, name, false);
    pthread_mutex_init(&m->lock, NULL);
    if (len > 0) {
        m->data = g_memdup2(contents, len);
        m->length = m->capacity = len;
    }
    return &m->dev;
}

GBytes *blk_mem_contents(BlkDev *dev)
{
    BlkMem *m = to_mem(dev);
    pthread_mutex_lock(&m->lock);
    GBytes *b = g_bytes_new(m->data, (gsize)m->length);
    pthread_mutex_unlock(&m->lock);
    return b;
}
