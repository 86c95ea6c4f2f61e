/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The raw format driver: the virtual disk is the file itself. Used for raw
 * backing files, for tools that take -f raw, and for files that probe as
 * raw. Those are guarded as QEMU's raw driver guards them: a write into the
 * first sector that would make the file probe as another format fails with
 * -EPERM, so that a guest cannot turn its disk into, say, a qcow2 image
 * naming a host file as its backing file.
 */
#include "image.h"

#include <errno.h>
#include <string.h>

#include "probe.h"

/* A probed raw image's state (img->opaque); NULL when the format was named. */
typedef struct RawState {
    /* Held across the check and the write of every request that touches the
     * first sector, so that two partial writes, each harmless alone, cannot
     * together leave another format's header there. */
    pthread_mutex_t sector0_lock;
} RawState;

static int raw_open(QedImage *img, int depth, GPtrArray *chain, GError **errp)
{
    if (img->probed) {
        RawState *s = g_new0(RawState, 1);
        pthread_mutex_init(&s->sector0_lock, NULL);
        img->opaque = s;
    }
    return 0;
}

static void raw_close(QedImage *img)
{
    RawState *s = img->opaque;
    if (s) {
        pthread_mutex_destroy(&s->sector0_lock);
        g_free(s);
        img->opaque = NULL;
    }
}

/* With sector0_lock held: -EPERM unless the first sector, with the
 * request's part of it (buf, or zeros when NULL) applied, still probes as
 * raw. As QEMU, without the file name: a raw file named *.dmg stays raw.
 * sector gets the first sector as the request leaves it. */
static int check_sector0_locked(QedImage *img, const void *buf, size_t len, uint64_t offset,
                                uint8_t sector[PROBE_BYTES])
{
    int ret = blk_pread(img->file, sector, PROBE_BYTES, 0);
    if (ret < 0) {
        return ret;
    }
    size_t n = (size_t)MIN(len, PROBE_BYTES - offset);
    if (buf) {
        memcpy(sector + offset, buf, n);
    } else {
        memset(sector + offset, 0, n);
    }
    return strcmp(probe_format(sector, NULL), "raw") == 0 ? 0 : -EPERM;
}

static int raw_pread(QedImage *img, void *buf, size_t len, uint64_t offset)
{
    return blk_pread(img->file, buf, len, offset);
}

static int raw_pwrite(QedImage *img, const void *buf, size_t len, uint64_t offset)
{
    RawState *s = img->opaque;
    if (!s || offset >= PROBE_BYTES) {
        return blk_pwrite(img->file, buf, len, offset, BLK_TAG_DATA);
    }
    /* The checked copy is what is written: the caller's buffer might change
     * under us (QEMU does the same for a guest's). */
    uint8_t sector[PROBE_BYTES];
    size_t head = (size_t)MIN(len, PROBE_BYTES - offset);
    pthread_mutex_lock(&s->sector0_lock);
    int ret = check_sector0_locked(img, buf, len, offset, sector);
    if (ret == 0) {
        ret = blk_pwrite(img->file, sector + offset, head, offset, BLK_TAG_DATA);
    }
    if (ret == 0 && len > head) {
        ret = blk_pwrite(img->file, (const uint8_t *)buf + head, len - head, offset + head,
                         BLK_TAG_DATA);
    }
    pthread_mutex_unlock(&s->sector0_lock);
    return ret;
}

static int raw_pwrite_zeroes(QedImage *img, uint64_t len, uint64_t offset, unsigned flags)
{
    (void)flags; /* a raw file has no clusters */
    RawState *s = img->opaque;
    if (!s || offset >= PROBE_BYTES) {
        return blk_punch_zeroes(img->file, offset, len);
    }
    uint8_t sector[PROBE_BYTES];
    pthread_mutex_lock(&s->sector0_lock);
    int ret = check_sector0_locked(img, NULL, (size_t)MIN(len, PROBE_BYTES), offset, sector);
    if (ret == 0) {
        ret = blk_punch_zeroes(img->file, offset, len);
    }
    pthread_mutex_unlock(&s->sector0_lock);
    return ret;
}

static int raw_flush(QedImage *img)
{
    return blk_flush(img->file);
}

static int raw_resize(QedImage *img, uint64_t size, GError **errp)
{
    int ret = blk_truncate(img->file, size);
    if (ret < 0) {
        return image_error(img, errp, ret, "Failed to resize");
    }
    return 0;
}

static int raw_block_status(QedImage *img, uint64_t offset, uint64_t len, QedExtent *ext)
{
    bool is_data;
    uint64_t run;
    int ret = blk_data_status(img->file, offset, len, &is_data, &run);
    if (ret < 0) {
        return ret;
    }
    ext->offset = offset;
    ext->length = run;
    ext->type = is_data ? QED_EXTENT_DATA : QED_EXTENT_ZERO;
    ext->file_offset = is_data ? offset : 0;
    return 0;
}

/* The file length rounded up to a sector, as QEMU sees a raw file; the
 * partial sector at the end reads as zeros past the end of the file. */
static uint64_t raw_get_size(QedImage *img)
{
    int64_t len = blk_get_length(img->file);
    return len < 0 ? 0 : ((uint64_t)len + 511) / 512 * 512;
}

static void raw_get_info(QedImage *img, QedInfo *info)
{
    info->virtual_size = raw_get_size(img);
}

static int raw_shutdown(QedImage *img, GError **errp)
{
    if (img->file->read_only) {
        return 0;
    }
    int ret = blk_flush(img->file);
    if (ret < 0) {
        return image_error(img, errp, ret, "Failed to flush");
    }
    return 0;
}

static int raw_reopen(QedImage *img, bool writable, GError **errp)
{
    int ret = blk_reopen(img->file, !writable);
    if (ret < 0) {
        return image_error(img, errp, ret, "Could not reopen");
    }
    return 0;
}

/* Reserves [0, size) as preallocation asks ("off": a sparse file). */
static int preallocate(BlkDev *file, uint64_t size, const char *mode)
{
    if (strcmp(mode, "falloc") == 0) {
        return blk_allocate(file, 0, size);
    }
    if (strcmp(mode, "full") == 0) {
        return blk_write_zeros(file, 0, size, BLK_TAG_CREATE);
    }
    return blk_truncate(file, size);
}

/* A raw image in a container of fixed length (an NBD export, a block
 * device) is the container as it is, as in QEMU, which cannot resize one
 * either: the size may not exceed it, nothing is preallocated, and the
 * first sector is zeroed (so that no old header is probed there). */
static int create_in_container(BlkDev *file, uint64_t size, const char *mode, GError **errp)
{
    bool nbd = strcmp(file->ops->name, "nbd") == 0;
    if (strcmp(mode, "off") != 0) {
        g_set_error(errp, QED_ERROR, ENOTSUP, "Unsupported preallocation mode '%s'", mode);
        return -ENOTSUP;
    }
    int64_t length = blk_get_length(file);
    if (length >= 0 && size > (uint64_t)length) {
        g_set_error_literal(errp, QED_ERROR, EINVAL,
                            nbd ? "Cannot grow NBD nodes" : "Cannot grow device files");
        return -EINVAL;
    }
    int ret = length < 0 ? (int)length : 0;
    if (ret == 0 && length > 0) {
        ret = blk_write_zeros(file, 0, length < 512 ? (uint64_t)length : 512, BLK_TAG_CREATE);
    }
    return image_create_finish(file, ret, errp);
}

/* Makes file a raw image of opts->size bytes, preallocated as opts says. */
static int raw_create(BlkDev *file, const QedCreateOptions *opts, GError **errp)
{
    const char *mode = opts->preallocation ? opts->preallocation : "off";
    if (strcmp(mode, "off") != 0 && strcmp(mode, "falloc") != 0 && strcmp(mode, "full") != 0) {
        g_set_error(errp, QED_ERROR, EINVAL, "Unsupported preallocation mode '%s'", mode);
        return -EINVAL;
    }
    if (opts->size > (uint64_t)INT64_MAX - 511) {
        g_set_error_literal(errp, QED_ERROR, EFBIG, "Image size is too large");
        return -EFBIG;
    }
    uint64_t size = (opts->size + 511) / 512 * 512;
    if (file->fixed_length) {
        return create_in_container(file, size, mode, errp);
    }
    /* As qemu-img: empty the file, reserve the space, and write the first
     * block, so that the file and its allocation come out the same. */
    int ret = blk_truncate(file, 0);
    if (ret == 0) {
        ret = preallocate(file, size, mode);
    }
    if (ret == 0 && size > 0) {
        static const uint8_t first_block[4096];
        size_t n = size < sizeof(first_block) ? 512 : sizeof(first_block);
        ret = blk_pwrite(file, first_block, n, 0, BLK_TAG_CREATE);
    }
    return image_create_finish(file, ret, errp);
}

const ImageDriver raw_driver = {
    .format_name = "raw",
    .open = raw_open,
    .close = raw_close,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .pwrite_zeroes = raw_pwrite_zeroes,
    .flush = raw_flush,
    .resize = raw_resize,
    .block_status = raw_block_status,
    .get_size = raw_get_size,
    .get_info = raw_get_info,
    .shutdown = raw_shutdown,
    .reopen = raw_reopen,
    .create = raw_create,
};
