/*
 * A blk device over the next layer of an nbdkit filter: the QED image lives
 * inside whatever the plugin serves (a file, memory, another NBD server, an
 * HTTP object). The plugin's disk is a container of fixed size.
 */
#include <nbdkit-filter.h>

#include "blk-nbdkit.h"

#include <errno.h>
#include <string.h>

typedef struct BlkNbdkit {
    BlkDev dev;
    nbdkit_next *next;
    int64_t size;           /* the container's size, fixed at open */
    bool can_flush;
    bool can_zero;          /* the next layer takes zero requests */
    pthread_mutex_t lock;   /* the plugin may not take parallel requests from
                             * one shared context: one request at a time */
} BlkNbdkit;

static BlkNbdkit *to_nbd(BlkDev *dev)
{
    return (BlkNbdkit *)dev;
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
    pthread_mutex_lock(&b->lock);
    for (size_t done = 0; done < avail && ret == 0; done += CHUNK) {
        int err = 0;
        uint32_t n = (uint32_t)MIN(avail - done, CHUNK);
        if (b->next->pread(b->next, p + done, n, offset + done, 0, &err) < 0) {
            ret = -(err ? err : EIO);
        }
    }
    pthread_mutex_unlock(&b->lock);
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
    pthread_mutex_lock(&b->lock);
    for (size_t done = 0; done < len && ret == 0; done += CHUNK) {
        int err = 0;
        uint32_t n = (uint32_t)MIN(len - done, CHUNK);
        if (b->next->pwrite(b->next, p + done, n, offset + done, 0, &err) < 0) {
            ret = -(err ? err : EIO);
        }
    }
    pthread_mutex_unlock(&b->lock);
    return ret;
}

static int nbd_flush(BlkDev *dev)
{
    BlkNbdkit *b = to_nbd(dev);
    if (!b->can_flush) {
        return 0;
    }
    int err = 0, ret = 0;
    pthread_mutex_lock(&b->lock);
    if (b->next->flush(b->next, 0, &err) < 0) {
        ret = -(err ? err : EIO);
    }
    pthread_mutex_unlock(&b->lock);
    return ret;
}

static int64_t nbd_get_length(BlkDev *dev)
{
    return to_nbd(dev)->size;
}

static int nbd_truncate(BlkDev *dev, uint64_t length)
{
    /* A container keeps its size; the image only needs to fit. */
    return length <= (uint64_t)to_nbd(dev)->size ? 0 : -ENOSPC;
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
    pthread_mutex_lock(&b->lock);
    for (uint64_t done = 0; done < len && ret == 0; done += CHUNK) {
        int err = 0;
        uint32_t n = (uint32_t)MIN(len - done, CHUNK);
        if (b->next->zero(b->next, n, offset + done, NBDKIT_FLAG_MAY_TRIM, &err) < 0) {
            ret = -(err ? err : EIO);
        }
    }
    pthread_mutex_unlock(&b->lock);
    return ret;
}

static void nbd_close(BlkDev *dev)
{
    BlkNbdkit *b = to_nbd(dev);
    pthread_mutex_destroy(&b->lock);
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
    .close = nbd_close,
};

BlkDev *blk_nbdkit_new(nbdkit_next *next, const char *name, bool read_only)
{
    int64_t size = next->get_size(next);
    if (size < 0) {
        return NULL;
    }
    int can_write = next->can_write(next);
    int can_flush = next->can_flush(next);
    int can_zero = next->can_zero(next);
    if (can_write < 0 || can_flush < 0 || can_zero < 0) {
        return NULL;
    }
    BlkNbdkit *b = g_new0(BlkNbdkit, 1);
    blk_init(&b->dev, &blk_nbdkit_ops, name, read_only || !can_write);
    b->dev.fixed_length = true;
    b->next = next;
    b->size = size;
    b->can_flush = can_flush > 0;
    b->can_zero = can_zero > 0;
    pthread_mutex_init(&b->lock, NULL);
    return &b->dev;
}
