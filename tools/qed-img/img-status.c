/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Block status through a backing chain, in the two ways qemu-img looks at
 * it: map walks the layers one at a time (each layer's own status), compare
 * asks for the status of the whole chain (bdrv_block_status_above).
 *
 * Design notes, QEMU's rules for one layer:
 * - A data cluster of a QED image: data, allocated, an offset in its file.
 * - A zero cluster: zero, allocated, no offset.
 * - An unallocated cluster: nothing; the block layer adds "zero" where there
 *   is no backing image or the range starts past its end, and the walk goes
 *   on to the backing image otherwise (which may cut the range at its end).
 * - A raw image maps itself: data where its file has data, zero in holes,
 *   allocated, with the offset (the same as the virtual one).
 * map stops at the first layer whose status says data or zero. The chain's
 * status stops at the first layer that is allocated; a range that falls
 * past the end of a shorter backing image is zero and allocated there; and
 * "end of file" is set when the range reaches the end of the top image.
 */
#include "qed-img.h"

#include <string.h>

/* The status of one layer: its extent, its format, and its backing image. */
static int layer_status(QedImage *img, int64_t offset, int64_t bytes, QedExtent *ext, bool *raw,
                        const char **filename, GError **errp)
{
    QedInfo info;
    int ret = qed_get_info(img, &info, errp);
    if (ret == 0) {
        ret = qed_block_status(img, (uint64_t)bytes, (uint64_t)offset, ext, errp);
    }
    *raw = ret == 0 && strcmp(info.format, "raw") == 0;
    *filename = info.filename;
    return ret;
}

/* Whether offset lies past the end of img's backing image (or there is
 * none); else *bytes is cut to what the backing image holds. */
static bool past_backing(QedImage *img, int64_t offset, int64_t *bytes)
{
    QedImage *backing = qed_get_backing(img);
    if (!backing || (uint64_t)offset >= qed_get_size(backing)) {
        return true;
    }
    *bytes = MIN(*bytes, (int64_t)(qed_get_size(backing) - (uint64_t)offset));
    return false;
}

int img_map_status(QedImage *img, int64_t offset, int64_t bytes, MapEntry *e, GError **errp)
{
    for (int64_t depth = 0;; depth++) {
        QedExtent ext;
        bool raw;
        const char *filename;
        int ret = layer_status(img, offset, bytes, &ext, &raw, &filename, errp);
        if (ret < 0) {
            return ret;
        }
        *e = (MapEntry){ .start = offset, .length = (int64_t)ext.length, .depth = depth };
        if (ext.type == QED_EXTENT_DATA || (raw && ext.type == QED_EXTENT_ZERO)) {
            e->data = ext.type == QED_EXTENT_DATA;
            e->zero = !e->data;
            e->present = true;
            e->has_offset = true;
            e->offset = raw ? offset : (int64_t)ext.file_offset;
            e->filename = filename;
            return 0;
        }
        if (ext.type == QED_EXTENT_ZERO) {
            e->zero = true;
            e->present = true;
            return 0;
        }
        bytes = (int64_t)ext.length;
        if (past_backing(img, offset, &bytes)) {
            e->zero = true; /* reads as zeros, from no image */
            return 0;
        }
        img = qed_get_backing(img);
    }
}

int img_chain_status(QedImage *img, int64_t offset, int64_t bytes, unsigned *status, int64_t *pnum,
                     GError **errp)
{
    int64_t end = (int64_t)qed_get_size(img);
    bytes = MIN(bytes, end - offset);
    for (;;) {
        QedExtent ext;
        bool raw;
        const char *filename;
        int ret = layer_status(img, offset, bytes, &ext, &raw, &filename, errp);
        if (ret < 0) {
            return ret;
        }
        *pnum = (int64_t)ext.length;
        if (ext.type == QED_EXTENT_DATA) {
            *status = IMG_STATUS_DATA | IMG_STATUS_OFFSET_VALID | IMG_STATUS_ALLOCATED;
            break;
        }
        if (ext.type == QED_EXTENT_ZERO) {
            *status = IMG_STATUS_ZERO | IMG_STATUS_ALLOCATED | (raw ? IMG_STATUS_OFFSET_VALID : 0);
            break;
        }
        bytes = (int64_t)ext.length;
        if (!qed_get_backing(img)) {
            *status = IMG_STATUS_ZERO; /* zeros, held by no image */
            break;
        }
        if (past_backing(img, offset, &bytes)) {
            /* The backing image is shorter: its zeros count as its own. */
            *status = IMG_STATUS_ZERO | IMG_STATUS_ALLOCATED;
            break;
        }
        img = qed_get_backing(img);
    }
    if (offset + *pnum == end) {
        *status |= IMG_STATUS_EOF;
    }
    return 0;
}
