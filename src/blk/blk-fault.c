/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fault-injecting blk device for error-path tests: it passes every request
 * to the device under it and fails the n-th read, write or flush with the
 * errno it is given, once (transient) or from then on (persistent).
 *
 * Design notes: faults are armed by countdown, as in SQLite's test_vfs.c, so
 * a test runs its workload once to count the requests of each kind and then
 * sweeps n over that count. A failed request does nothing unless `lands` is
 * set, when the write is done and the error reported all the same: a disk
 * that reports EIO may or may not have written. Truncates and hole punches
 * count as writes. The inner device is borrowed, not owned.
 */
#include "blk/blk.h"

#include <string.h>

typedef struct BlkFaultDev {
    BlkDev dev;
    BlkDev *inner;                        /* borrowed */
    pthread_mutex_t lock;                 /* guards everything below */
    uint64_t calls[BLK_FAULT_KIND_COUNT]; /* requests seen, per kind */
    uint64_t injected;                    /* requests failed */
    BlkFault fault;                       /* armed when fault.nth != 0 */
    uint64_t armed_at;                    /* calls[fault.kind] when armed */
    bool fired;                           /* the nth request has failed */
} BlkFaultDev;

static BlkFaultDev *to_fault(BlkDev *dev)
{
    return (BlkFaultDev *)dev;
}

/* Counts a request of kind; returns the -errno it must fail with, or 0.
 * *lands says whether a failing write is still to be done. */
static int next_request(BlkDev *dev, BlkFaultKind kind, bool *lands)
{
    BlkFaultDev *f = to_fault(dev);
    int ret = 0;
    *lands = false;
    pthread_mutex_lock(&f->lock);
    uint64_t n = ++f->calls[kind];
    if (f->fault.nth != 0 && f->fault.kind == kind) {
        uint64_t target = f->armed_at + f->fault.nth;
        if (n == target) {
            ret = -f->fault.error;
            *lands = f->fault.lands;
            f->fired = true;
        } else if (n > target && f->fault.persistent && f->fired) {
            ret = -f->fault.error;
        }
    }
    if (ret != 0) {
        f->injected++;
    }
    pthread_mutex_unlock(&f->lock);
    return ret;
}

static int fault_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    bool lands;
    int ret = next_request(dev, BLK_FAULT_READ, &lands);
    if (ret < 0) {
        memset(buf, 0, len);
        return ret;
    }
    return blk_pread(to_fault(dev)->inner, buf, len, offset);
}

static int fault_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    bool lands;
    int ret = next_request(dev, BLK_FAULT_WRITE, &lands);
    if (ret == 0 || lands) {
        int r = blk_pwrite(to_fault(dev)->inner, buf, len, offset, tag);
        ret = ret < 0 ? ret : r;
    }
    return ret;
}

static int fault_flush(BlkDev *dev)
{
    bool lands;
    int ret = next_request(dev, BLK_FAULT_FLUSH, &lands);
    return ret < 0 ? ret : blk_flush(to_fault(dev)->inner);
}

static int64_t fault_get_length(BlkDev *dev)
{
    return blk_get_length(to_fault(dev)->inner);
}

static int fault_truncate(BlkDev *dev, uint64_t length)
{
    bool lands;
    int ret = next_request(dev, BLK_FAULT_WRITE, &lands);
    if (ret == 0 || lands) {
        int r = blk_truncate(to_fault(dev)->inner, length);
        ret = ret < 0 ? ret : r;
    }
    return ret;
}

static int fault_allocate(BlkDev *dev, uint64_t offset, uint64_t len)
{
    bool lands;
    int ret = next_request(dev, BLK_FAULT_WRITE, &lands);
    if (ret == 0 || lands) {
        int r = blk_allocate(to_fault(dev)->inner, offset, len);
        ret = ret < 0 ? ret : r;
    }
    return ret;
}

static int fault_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len)
{
    bool lands;
    int ret = next_request(dev, BLK_FAULT_WRITE, &lands);
    if (ret == 0 || lands) {
        int r = blk_punch_zeroes(to_fault(dev)->inner, offset, len);
        ret = ret < 0 ? ret : r;
    }
    return ret;
}

static int64_t fault_allocated_bytes(BlkDev *dev)
{
    return blk_allocated_bytes(to_fault(dev)->inner);
}

static int fault_data_status(BlkDev *dev, uint64_t offset, uint64_t len, bool *is_data,
                             uint64_t *run)
{
    return blk_data_status(to_fault(dev)->inner, offset, len, is_data, run);
}

static void fault_close(BlkDev *dev)
{
    BlkFaultDev *f = to_fault(dev);
    pthread_mutex_destroy(&f->lock);
    g_free(f);
}

static const BlkOps blk_fault_ops = {
    .name = "fault",
    .pread = fault_pread,
    .pwrite = fault_pwrite,
    .flush = fault_flush,
    .get_length = fault_get_length,
    .truncate = fault_truncate,
    .punch_zeroes = fault_punch_zeroes,
    .allocate = fault_allocate,
    .allocated_bytes = fault_allocated_bytes,
    .data_status = fault_data_status,
    .close = fault_close,
};

BlkDev *blk_fault_new(BlkDev *inner)
{
    BlkFaultDev *f = g_new0(BlkFaultDev, 1);
    blk_init(&f->dev, &blk_fault_ops, inner->filename, inner->read_only);
    f->dev.request_align = inner->request_align;
    f->dev.fixed_length = inner->fixed_length;
    f->inner = inner;
    pthread_mutex_init(&f->lock, NULL);
    return &f->dev;
}

void blk_fault_arm(BlkDev *dev, const BlkFault *fault)
{
    BlkFaultDev *f = to_fault(dev);
    g_assert(fault->kind < BLK_FAULT_KIND_COUNT);
    pthread_mutex_lock(&f->lock);
    f->fault = *fault;
    f->armed_at = f->calls[fault->kind];
    f->fired = false;
    pthread_mutex_unlock(&f->lock);
}

uint64_t blk_fault_calls(BlkDev *dev, BlkFaultKind kind)
{
    BlkFaultDev *f = to_fault(dev);
    pthread_mutex_lock(&f->lock);
    uint64_t n = f->calls[kind];
    pthread_mutex_unlock(&f->lock);
    return n;
}

uint64_t blk_fault_injected(BlkDev *dev)
{
    BlkFaultDev *f = to_fault(dev);
    pthread_mutex_lock(&f->lock);
    uint64_t n = f->injected;
    pthread_mutex_unlock(&f->lock);
    return n;
}
