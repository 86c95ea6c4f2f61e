/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The generic half of the blk seam: argument checks and I/O counters around
 * each implementation's operations, and the failed state after a flush error.
 *
 * Design notes: after fdatasync fails, the kernel may already have dropped
 * the dirty pages it could not write and cleared the error, so a second
 * fdatasync can succeed without the data ever reaching the disk. A device
 * whose flush failed therefore stays failed: every later flush and every
 * write fails with -EIO, so that no caller is told that data is safe when
 * it may not be, and no metadata is written over a state nobody knows.
 * Every flush of a format driver passes here (its own, NEED_CHECK, an
 * allocation's, marking clean), so the rule holds for all of them.
 */
#include "blk/blk.h"

#include <errno.h>
#include <string.h>

void blk_init(BlkDev *dev, const BlkOps *ops, const char *filename, bool read_only)
{
    memset(dev, 0, sizeof(*dev));
    dev->ops = ops;
    dev->filename = g_strdup(filename);
    dev->read_only = read_only;
    dev->request_align = 512;
}

static void count(uint64_t *counter, uint64_t n)
{
    __atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

void blk_set_failed(BlkDev *dev)
{
    __atomic_store_n(&dev->failed, true, __ATOMIC_RELEASE);
}

bool blk_failed(BlkDev *dev)
{
    return __atomic_load_n(&dev->failed, __ATOMIC_ACQUIRE);
}

int blk_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    if (len == 0) {
        return 0;
    }
    if (offset > INT64_MAX || len > INT64_MAX - offset) {
        return -EINVAL;
    }
    count(&dev->stats.reads, 1);
    count(&dev->stats.bytes_read, len);
    return dev->ops->pread(dev, buf, len, offset);
}

int blk_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    if (dev->read_only) {
        return -EROFS;
    }
    if (blk_failed(dev)) {
        return -EIO;
    }
    if (len == 0) {
        return 0;
    }
    if (offset > INT64_MAX || len > INT64_MAX - offset) {
        return -EFBIG;
    }
    count(&dev->stats.writes, 1);
    count(&dev->stats.bytes_written, len);
    count(&dev->stats.writes_by_tag[tag], 1);
    return dev->ops->pwrite(dev, buf, len, offset, tag);
}

int blk_flush(BlkDev *dev)
{
    if (dev->read_only || dev->no_flush) {
        return 0;
    }
    if (blk_failed(dev)) {
        return -EIO;
    }
    count(&dev->stats.flushes, 1);
    int ret = dev->ops->flush(dev);
    if (ret < 0) {
        __atomic_store_n(&dev->failed, true, __ATOMIC_RELEASE);
    }
    return ret;
}

int64_t blk_get_length(BlkDev *dev)
{
    return dev->ops->get_length(dev);
}

int blk_truncate(BlkDev *dev, uint64_t length)
{
    if (dev->read_only) {
        return -EROFS;
    }
    if (blk_failed(dev)) {
        return -EIO;
    }
    if (length > INT64_MAX) {
        return -EFBIG;
    }
    count(&dev->stats.truncates, 1);
    return dev->ops->truncate(dev, length);
}

int blk_allocate(BlkDev *dev, uint64_t offset, uint64_t len)
{
    if (dev->read_only) {
        return -EROFS;
    }
    if (blk_failed(dev)) {
        return -EIO;
    }
    if (!dev->ops->allocate) {
        return -ENOTSUP;
    }
    if (offset > INT64_MAX || len > INT64_MAX - offset) {
        return -EFBIG;
    }
    if (len == 0) {
        return 0;
    }
    count(&dev->stats.truncates, 1);
    return dev->ops->allocate(dev, offset, len);
}

int blk_write_zeros(BlkDev *dev, uint64_t offset, uint64_t len, BlkTag tag)
{
    if (len == 0) {
        return 0;
    }
    size_t chunk = (size_t)MIN(len, 4u * 1024 * 1024);
    void *zeros = g_try_malloc0(chunk);
    if (!zeros) {
        return -ENOMEM;
    }
    int ret = 0;
    for (uint64_t done = 0; ret == 0 && done < len; done += chunk) {
        ret = blk_pwrite(dev, zeros, (size_t)MIN(chunk, len - done), offset + done, tag);
    }
    g_free(zeros);
    return ret;
}

int blk_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len)
{
    if (dev->read_only) {
        return -EROFS;
    }
    if (blk_failed(dev)) {
        return -EIO;
    }
    if (len == 0) {
        return 0;
    }
    count(&dev->stats.writes, 1);
    count(&dev->stats.writes_by_tag[BLK_TAG_DATA], 1);
    return dev->ops->punch_zeroes(dev, offset, len);
}

int64_t blk_allocated_bytes(BlkDev *dev)
{
    if (!dev->ops->allocated_bytes) {
        return blk_get_length(dev);
    }
    return dev->ops->allocated_bytes(dev);
}

int blk_data_status(BlkDev *dev, uint64_t offset, uint64_t len, bool *is_data, uint64_t *run)
{
    if (!dev->ops->data_status) {
        *is_data = true;
        *run = len;
        return 0;
    }
    return dev->ops->data_status(dev, offset, len, is_data, run);
}

int blk_reopen(BlkDev *dev, bool read_only)
{
    if (read_only == dev->read_only) {
        return 0;
    }
    if (!dev->ops->reopen) {
        if (!read_only) {
            return -EROFS;
        }
        dev->read_only = true; /* nothing to reopen: just stop writing */
        return 0;
    }
    int ret = dev->ops->reopen(dev, read_only);
    if (ret == 0) {
        dev->read_only = read_only;
    }
    return ret;
}

void blk_get_stats(BlkDev *dev, BlkStats *stats)
{
    uint64_t *src = (uint64_t *)&dev->stats;
    uint64_t *dst = (uint64_t *)stats;
    for (size_t i = 0; i < sizeof(*stats) / sizeof(uint64_t); i++) {
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    }
}

void blk_close(BlkDev *dev)
{
    if (!dev) {
        return;
    }
    char *filename = dev->filename;
    dev->ops->close(dev);
    g_free(filename);
}
