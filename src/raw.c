/*
 * The raw format driver: the virtual disk is the file itself. Used for raw
 * backing files and for tools that take -f raw.
 */
#include "image.h"

#include <errno.h>

static int raw_open(QedImage *img, int depth, GPtrArray *chain, GError **errp)
{
    return 0;
}

static void raw_close(QedImage *img)
{
}

static int raw_pread(QedImage *img, void *buf, size_t len, uint64_t offset)
{
    return blk_pread(img->file, buf, len, offset);
}

static int raw_pwrite(QedImage *img, const void *buf, size_t len, uint64_t offset)
{
    return blk_pwrite(img->file, buf, len, offset, BLK_TAG_DATA);
}

static int raw_pwrite_zeroes(QedImage *img, uint64_t len, uint64_t offset)
{
    return blk_punch_zeroes(img->file, offset, len);
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

static bool raw_probe(const uint8_t *buf, size_t len)
{
    return true; /* anything that is no other format */
}

const ImageDriver raw_driver = {
    .format_name = "raw",
    .probe = raw_probe,
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
};
