/*
 * NBD requests on a libqed image, shared by nbdkit-qed-plugin and
 * nbdkit-qed-filter: libqed errors become nbdkit_error() plus errno.
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "qed-nbdkit.h"

#include <errno.h>
#include <string.h>

/* Reports err (if any) and sets the errno nbdkit sends to the client. */
static int fail(int ret, GError *err)
{
    if (err) {
        nbdkit_error("%s", err->message);
        g_error_free(err);
    }
    /* The plugin reads nbdkit_set_error; the filter passes errno on. */
    nbdkit_set_error(-ret);
    errno = -ret;
    return -1;
}

int qed_nbdkit_parse_cache(const char *value, unsigned *flags)
{
    if (strcmp(value, "writeback") == 0) {
        *flags = 0;
    } else if (strcmp(value, "writethrough") == 0) {
        *flags = QED_OPEN_WRITETHROUGH;
    } else if (strcmp(value, "none") == 0 || strcmp(value, "directsync") == 0) {
        *flags = QED_OPEN_DIRECT;
    } else {
        nbdkit_error("cache: unknown mode '%s' (expected writeback, writethrough or none)",
                     value);
        return -1;
    }
    return 0;
}

void qed_nbdkit_close(QedImage **img)
{
    GError *err = NULL;
    if (*img && qed_close(*img, &err) < 0) {
        nbdkit_error("%s", err->message);
        g_error_free(err);
    }
    *img = NULL;
}

int64_t qed_nbdkit_get_size(QedImage *img)
{
    return (int64_t)qed_get_size(img);
}

int qed_nbdkit_pread(QedImage *img, void *buf, uint32_t count, uint64_t offset)
{
    GError *err = NULL;
    int ret = qed_pread(img, buf, count, offset, &err);
    return ret < 0 ? fail(ret, err) : 0;
}

int qed_nbdkit_pwrite(QedImage *img, const void *buf, uint32_t count, uint64_t offset,
                      uint32_t flags)
{
    GError *err = NULL;
    unsigned wflags = (flags & NBDKIT_FLAG_FUA) ? QED_WRITE_FUA : 0;
    int ret = qed_pwrite(img, buf, count, offset, wflags, &err);
    return ret < 0 ? fail(ret, err) : 0;
}

int qed_nbdkit_zero(QedImage *img, uint32_t count, uint64_t offset, uint32_t flags)
{
    GError *err = NULL;
    unsigned wflags = (flags & NBDKIT_FLAG_FUA) ? QED_WRITE_FUA : 0;
    int ret = qed_pwrite_zeroes(img, count, offset, wflags, &err);
    return ret < 0 ? fail(ret, err) : 0;
}

int qed_nbdkit_trim(QedImage *img, uint32_t count, uint64_t offset, uint32_t flags)
{
    GError *err = NULL;
    int ret = qed_discard(img, count, offset, &err);
    if (ret == 0 && (flags & NBDKIT_FLAG_FUA)) {
        ret = qed_flush(img, &err);
    }
    return ret < 0 ? fail(ret, err) : 0;
}

int qed_nbdkit_flush(QedImage *img)
{
    GError *err = NULL;
    int ret = qed_flush(img, &err);
    return ret < 0 ? fail(ret, err) : 0;
}

/* The NBD type of the run at offset in img (at most len bytes): allocated
 * data, or a hole that reads as zeros, looking through unallocated ranges
 * into the backing chain. */
static int describe(QedImage *img, uint64_t offset, uint64_t len, uint32_t *type,
                    uint64_t *run)
{
    QedExtent ext;
    GError *err = NULL;
    int ret = qed_block_status(img, len, offset, &ext, &err);
    if (ret < 0) {
        return fail(ret, err);
    }
    *run = ext.length;
    switch (ext.type) {
    case QED_EXTENT_DATA:
        *type = 0;
        return 0;
    case QED_EXTENT_ZERO:
        *type = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
        return 0;
    case QED_EXTENT_UNALLOCATED:
        break;
    }
    QedImage *backing = qed_get_backing(img);
    uint64_t backing_size = backing ? qed_get_size(backing) : 0;
    if (offset >= backing_size) {
        *type = NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
        return 0;
    }
    return describe(backing, offset, MIN(ext.length, backing_size - offset), type, run);
}

int qed_nbdkit_extents(QedImage *img, uint32_t count, uint64_t offset, uint32_t flags,
                       struct nbdkit_extents *extents)
{
    uint64_t end = offset + count;
    while (offset < end) {
        uint32_t type;
        uint64_t run;
        if (describe(img, offset, end - offset, &type, &run) < 0) {
            return -1;
        }
        if (nbdkit_add_extent(extents, offset, run, type) < 0) {
            return -1;
        }
        offset += run;
        if (flags & NBDKIT_FLAG_REQ_ONE) {
            break;
        }
    }
    return 0;
}
