/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-embed.h: a blk device over a caller's storage callbacks, and the
 * open on it. The device is a container of fixed size (BlkDev.fixed_length):
 * reads past its end see zeros, writes past it fail with ENOSPC, and it
 * never changes length.
 */
#include "qed-embed.h"

#include <errno.h>
#include <string.h>

#include "image.h"

typedef struct BlkStorage {
    BlkDev dev;
    const QedStorageOps *ops;
    void *opaque;
    uint64_t size; /* fixed at open */
} BlkStorage;

static BlkStorage *to_storage(BlkDev *dev)
{
    return (BlkStorage *)dev;
}

static int storage_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    BlkStorage *s = to_storage(dev);
    size_t avail = offset < s->size ? (size_t)MIN(len, s->size - offset) : 0;
    memset((uint8_t *)buf + avail, 0, len - avail);
    return avail ? s->ops->pread(s->opaque, buf, avail, offset) : 0;
}

static int storage_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    BlkStorage *s = to_storage(dev);
    if (offset > s->size || len > s->size - offset) {
        return -ENOSPC; /* the container cannot grow */
    }
    return s->ops->pwrite(s->opaque, buf, len, offset);
}

static int storage_flush(BlkDev *dev)
{
    BlkStorage *s = to_storage(dev);
    return s->ops->flush ? s->ops->flush(s->opaque) : 0;
}

static int64_t storage_get_length(BlkDev *dev)
{
    return (int64_t)to_storage(dev)->size;
}

/* A container keeps its size. The image grows the file over the clusters
 * it allocated; here every one of them was written whole, and a write past
 * the end fails (ENOSPC) before anything points at its clusters, so the
 * container already covers every cluster in use: what lies beyond belongs
 * to allocations that failed. Refusing would fail every later flush. */
static int storage_truncate(BlkDev *dev, uint64_t length)
{
    return 0;
}

static int storage_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len)
{
    BlkStorage *s = to_storage(dev);
    if (offset >= s->size) {
        return 0;
    }
    len = MIN(len, s->size - offset);
    if (s->ops->zero) {
        return s->ops->zero(s->opaque, offset, len);
    }
    const size_t chunk = 1024 * 1024;
    void *zeros = g_malloc0(chunk);
    int ret = 0;
    for (uint64_t done = 0; done < len && ret == 0; done += chunk) {
        ret = s->ops->pwrite(s->opaque, zeros, (size_t)MIN(len - done, chunk), offset + done);
    }
    g_free(zeros);
    return ret;
}

static int storage_reopen(BlkDev *dev, bool read_only)
{
    BlkStorage *s = to_storage(dev);
    if (!s->ops->reopen) {
        return read_only ? 0 : -EROFS;
    }
    return s->ops->reopen(s->opaque, read_only);
}

static void storage_close(BlkDev *dev)
{
    BlkStorage *s = to_storage(dev);
    s->ops->close(s->opaque);
    g_free(s); /* blk_close frees the name */
}

static const BlkOps blk_storage_ops = {
    .name = "storage",
    .pread = storage_pread,
    .pwrite = storage_pwrite,
    .flush = storage_flush,
    .get_length = storage_get_length,
    .truncate = storage_truncate,
    .punch_zeroes = storage_punch_zeroes,
    .reopen = storage_reopen,
    .close = storage_close,
};

QedImage *qed_open_storage(const QedStorageOps *ops, void *opaque, uint64_t size, const char *name,
                           const char *format, unsigned flags, GError **errp)
{
    BlkStorage *s = g_new0(BlkStorage, 1);
    blk_init(&s->dev, &blk_storage_ops, name, flags & QED_OPEN_READ_ONLY);
    s->dev.fixed_length = true;
    s->ops = ops;
    s->opaque = opaque;
    s->size = size;
    return image_open_blk(&s->dev, name, format, flags, errp);
}

int qed_attach_backing(QedImage *img, const char *path, const char *format, GError **errp)
{
    return image_attach_backing(img, path, format, errp);
}

bool qed_name_is_nbd(const char *name)
{
    return blk_nbd_name(name);
}
