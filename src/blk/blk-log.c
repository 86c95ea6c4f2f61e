/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A recording blk device for power-loss tests: it passes every request to
 * the device under it and logs each write, truncate, hole punch and flush.
 * blk_log_crash_state() then builds what the disk could hold after a power
 * loss at any point of the run.
 *
 * Design notes, the crash model: everything before the last flush that
 * completed is on the disk. Of the requests after it, any subset may have
 * reached the disk (a volatile write cache persists what it likes), writes
 * in any order among themselves, and a write may be torn at sector
 * boundaries. Truncates keep their place in that order, as a file system
 * applies them in order, but like any request after the last flush one may
 * be lost while later writes persist: a length set by ftruncate is durable
 * only once a flush returned (fdatasync writes the size it needs), so an
 * entry that points into a grown file must come after that flush. A write
 * past the end of the file may also persist its new length without its data
 * (the file grows with zeros where it was going), as a file system that
 * commits the size before the data block can leave it.
 */
#include "blk/blk.h"

#include <errno.h>
#include <string.h>

typedef struct BlkLog {
    BlkDev dev;
    BlkDev *inner;        /* owned */
    pthread_mutex_t lock; /* guards ops */
    GArray *ops;          /* BlkLogOp, in the order the requests completed */
} BlkLog;

static BlkLog *to_log(BlkDev *dev)
{
    return (BlkLog *)dev;
}

static void record(BlkLog *l, BlkLogOp op)
{
    pthread_mutex_lock(&l->lock);
    g_array_append_val(l->ops, op);
    pthread_mutex_unlock(&l->lock);
}

static int log_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    return blk_pread(to_log(dev)->inner, buf, len, offset);
}

static int log_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    BlkLog *l = to_log(dev);
    int ret = blk_pwrite(l->inner, buf, len, offset, tag);
    if (ret == 0) {
        record(l, (BlkLogOp){ .kind = BLK_LOG_WRITE,
                              .offset = offset,
                              .len = len,
                              .tag = tag,
                              .data = g_memdup2(buf, len) });
    }
    return ret;
}

static int log_flush(BlkDev *dev)
{
    BlkLog *l = to_log(dev);
    int ret = blk_flush(l->inner);
    if (ret == 0) {
        record(l, (BlkLogOp){ .kind = BLK_LOG_FLUSH });
    }
    return ret;
}

static int64_t log_get_length(BlkDev *dev)
{
    return blk_get_length(to_log(dev)->inner);
}

static int log_truncate(BlkDev *dev, uint64_t length)
{
    BlkLog *l = to_log(dev);
    int ret = blk_truncate(l->inner, length);
    if (ret == 0) {
        record(l, (BlkLogOp){ .kind = BLK_LOG_TRUNCATE, .offset = length });
    }
    return ret;
}

/* A reservation that grows the device is, for a power loss, a truncate to
 * the new length (the new part reads as zeros): it is logged as one. */
static int log_allocate(BlkDev *dev, uint64_t offset, uint64_t len)
{
    BlkLog *l = to_log(dev);
    int64_t before = blk_get_length(l->inner);
    if (before < 0) {
        return (int)before;
    }
    int ret = blk_allocate(l->inner, offset, len);
    if (ret == 0 && offset + len > (uint64_t)before) {
        record(l, (BlkLogOp){ .kind = BLK_LOG_TRUNCATE, .offset = offset + len });
    }
    return ret;
}

static int log_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len)
{
    BlkLog *l = to_log(dev);
    int ret = blk_punch_zeroes(l->inner, offset, len);
    if (ret == 0) {
        record(l, (BlkLogOp){ .kind = BLK_LOG_PUNCH, .offset = offset, .len = len });
    }
    return ret;
}

static void log_close(BlkDev *dev)
{
    BlkLog *l = to_log(dev);
    for (guint i = 0; i < l->ops->len; i++) {
        g_free(g_array_index(l->ops, BlkLogOp, i).data);
    }
    g_array_free(l->ops, TRUE);
    blk_close(l->inner);
    pthread_mutex_destroy(&l->lock);
    g_free(l);
}

static const BlkOps blk_log_ops = {
    .name = "log",
    .pread = log_pread,
    .pwrite = log_pwrite,
    .flush = log_flush,
    .get_length = log_get_length,
    .truncate = log_truncate,
    .punch_zeroes = log_punch_zeroes,
    .allocate = log_allocate,
    .close = log_close,
};

BlkDev *blk_log_new(BlkDev *inner)
{
    BlkLog *l = g_new0(BlkLog, 1);
    blk_init(&l->dev, &blk_log_ops, inner->filename, inner->read_only);
    l->inner = inner;
    l->ops = g_array_new(FALSE, FALSE, sizeof(BlkLogOp));
    pthread_mutex_init(&l->lock, NULL);
    return &l->dev;
}

size_t blk_log_count(BlkDev *dev)
{
    BlkLog *l = to_log(dev);
    pthread_mutex_lock(&l->lock);
    size_t n = l->ops->len;
    pthread_mutex_unlock(&l->lock);
    return n;
}

const BlkLogOp *blk_log_op(BlkDev *dev, size_t i)
{
    BlkLog *l = to_log(dev);
    pthread_mutex_lock(&l->lock);
    const BlkLogOp *op = &g_array_index(l->ops, BlkLogOp, i);
    pthread_mutex_unlock(&l->lock);
    return op;
}

/* Grows the byte array with zeros to at least length. */
static void grow(GByteArray *disk, uint64_t length)
{
    if (length > disk->len) {
        guint old = disk->len;
        g_byte_array_set_size(disk, (guint)length);
        memset(disk->data + old, 0, length - old);
    }
}

/* Applies op to the byte array, only the sectors in keep (all when NULL). */
static void apply(GByteArray *disk, const BlkLogOp *op, const bool *keep, uint32_t sector)
{
    switch (op->kind) {
    case BLK_LOG_TRUNCATE:
        if (op->offset < disk->len) {
            g_byte_array_set_size(disk, (guint)op->offset);
        }
        grow(disk, op->offset); /* a file grows with zeros */
        return;
    case BLK_LOG_FLUSH:
        return;
    case BLK_LOG_WRITE:
    case BLK_LOG_PUNCH:
        break;
    }
    uint64_t end = op->offset + op->len;
    if (op->kind == BLK_LOG_PUNCH) {
        end = MIN(end, disk->len); /* punching never grows the file */
    }
    for (uint64_t pos = op->offset; pos < end;) {
        uint64_t next = MIN(end, (pos / sector + 1) * sector);
        size_t idx = (size_t)((pos - op->offset + (op->offset % sector)) / sector);
        if (!keep || keep[idx]) {
            grow(disk, next);
            if (op->kind == BLK_LOG_WRITE) {
                memcpy(disk->data + pos, op->data + (pos - op->offset), next - pos);
            } else {
                memset(disk->data + pos, 0, next - pos);
            }
        }
        pos = next;
    }
}

GBytes *blk_log_crash_state(BlkDev *dev, GBytes *base, size_t crash_at, GRand *rand,
                            uint32_t sector, size_t *durable_ops)
{
    BlkLog *l = to_log(dev);
    GByteArray *disk = g_byte_array_new();
    g_byte_array_append(disk, g_bytes_get_data(base, NULL), (guint)g_bytes_get_size(base));

    pthread_mutex_lock(&l->lock);
    g_assert(crash_at <= l->ops->len);
    BlkLogOp *ops = (BlkLogOp *)(void *)l->ops->data;
    size_t durable = 0;
    for (size_t i = 0; i < crash_at; i++) {
        if (ops[i].kind == BLK_LOG_FLUSH) {
            durable = i + 1;
        }
    }
    for (size_t i = 0; i < durable; i++) {
        apply(disk, &ops[i], NULL, sector);
    }
    /* The pending requests: a random subset, writes shuffled between
     * truncates, some torn. Of a write that is lost, sometimes the length
     * it gave the file persists (applied first, before the others). */
    size_t n = crash_at - durable;
    size_t *order = g_new(size_t, n ? n : 1);
    size_t count = 0;
    for (size_t i = durable; i < crash_at; i++) {
        if (g_rand_boolean(rand)) {
            order[count++] = i;
        } else if (ops[i].kind == BLK_LOG_WRITE && g_rand_int_range(rand, 0, 8) == 0) {
            grow(disk, ops[i].offset + ops[i].len);
        }
    }
    for (size_t i = 0; i + 1 < count; i++) {
        size_t j = i + (size_t)g_rand_int_range(rand, 0, (gint32)(count - i));
        if (ops[order[i]].kind != BLK_LOG_TRUNCATE && ops[order[j]].kind != BLK_LOG_TRUNCATE) {
            size_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    for (size_t k = 0; k < count; k++) {
        const BlkLogOp *op = &ops[order[k]];
        size_t nsect = (size_t)((op->offset % sector + op->len + sector - 1) / sector);
        bool *keep = NULL;
        if (op->kind != BLK_LOG_TRUNCATE && nsect > 1 && g_rand_int_range(rand, 0, 4) == 0) {
            keep = g_new(bool, nsect);
            for (size_t s = 0; s < nsect; s++) {
                keep[s] = g_rand_boolean(rand);
            }
        }
        apply(disk, op, keep, sector);
        g_free(keep);
    }
    pthread_mutex_unlock(&l->lock);
    g_free(order);
    if (durable_ops) {
        *durable_ops = durable;
    }
    return g_byte_array_free_to_bytes(disk);
}
