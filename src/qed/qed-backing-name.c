/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Changing the backing file that a QED header names (qemu-img rebase and
 * amend): the name and format bit are rewritten in place, in an order that
 * leaves the old or the new name, whole, after a crash at any point.
 *
 * Design notes, the crash order: the 64-byte header lies in the first
 * sector, which a disk writes whole or not at all; the name lies behind it
 * in the header area. A write of header and name together that ends inside
 * the first 512 bytes is therefore atomic, and is done in one write (QEMU's
 * layout: the name at offset 64). A longer name could be torn across
 * sectors, so it is first written where the current name is not, flushed,
 * and only then does one header write switch to it; once that is flushed,
 * the name is moved to offset 64 the same way when it fits there beside the
 * copy the header now points at. If the old and the new name cannot lie side
 * by side in the header area at all (both thousands of bytes long), the name
 * is written in place behind the header: a crash can then leave a name that
 * mixes both, and the image opens only without its backing file until it is
 * rebased again (docs/design.md).
 * Before anything is written the image is flushed: data copied into it for
 * the new backing file (rebase) is durable before the header names that file.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <string.h>

/* The first sector: a write that lies inside it is never torn. */
#define QED_ATOMIC_BYTES 512u

uint32_t qed_backing_name_max(const QedState *s)
{
    uint64_t room = s->header_bytes - QED_HEADER_BYTES;
    return (uint32_t)MIN(room, QED_MAX_BACKING_NAME - 1);
}

static bool spans_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return alen > 0 && blen > 0 && a < b + blen && b < a + alen;
}

/* Writes h (and name, n bytes at h->backing_filename_offset, unless n is 0)
 * and flushes. When the name ends inside the first sector, both go in one
 * write. Called with maint held exclusive. */
static int write_header_and_name(QedState *s, const QedHeader *h, const char *name, uint32_t n)
{
    int ret;
    if (n > 0 && h->backing_filename_offset == QED_HEADER_BYTES &&
        QED_HEADER_BYTES + n <= QED_ATOMIC_BYTES) {
        uint8_t buf[QED_ATOMIC_BYTES];
        qed_header_to_le(h, buf);
        memcpy(buf + QED_HEADER_BYTES, name, n);
        ret = blk_pwrite(s->file, buf, QED_HEADER_BYTES + n, 0, BLK_TAG_HEADER);
    } else {
        ret = qed_write_header(s, h);
    }
    if (ret == 0) {
        ret = qed_commit(s, true);
    }
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        s->header = *h;
        pthread_mutex_unlock(&s->lock);
    }
    return ret;
}

static int write_name(QedState *s, const char *name, uint32_t n, uint64_t offset)
{
    int ret = blk_pwrite(s->file, name, n, offset, BLK_TAG_HEADER);
    return ret < 0 ? ret : qed_commit(s, true);
}

/* Called with maint held exclusive. */
static int change_backing_locked(QedState *s, const char *name, uint32_t n, bool raw)
{
    QedHeader h = s->header;
    uint64_t old_off = h.backing_filename_offset;
    uint64_t old_len = (h.features & QED_F_BACKING_FILE) ? h.backing_filename_size : 0;

    h.features &= ~(QED_F_BACKING_FILE | QED_F_BACKING_FORMAT_NO_PROBE);
    h.backing_filename_offset = QED_HEADER_BYTES;
    h.backing_filename_size = n;
    if (n == 0) {
        /* Removing the name: one header write, as qemu-img leaves it. */
        return write_header_and_name(s, &h, NULL, 0);
    }
    h.features |= QED_F_BACKING_FILE | (raw ? QED_F_BACKING_FORMAT_NO_PROBE : 0);

    if (QED_HEADER_BYTES + n <= QED_ATOMIC_BYTES ||
        !spans_overlap(QED_HEADER_BYTES, n, old_off, old_len)) {
        /* Atomic with the header, or beside the current name. */
        if (QED_HEADER_BYTES + n > QED_ATOMIC_BYTES) {
            int ret = write_name(s, name, n, QED_HEADER_BYTES);
            if (ret < 0) {
                return ret;
            }
        }
        return write_header_and_name(s, &h, name, n);
    }
    uint64_t spare = s->header_bytes - n; /* the end of the header area */
    if (spare >= QED_HEADER_BYTES && !spans_overlap(spare, n, old_off, old_len)) {
        h.backing_filename_offset = (uint32_t)spare;
        int ret = write_name(s, name, n, spare);
        if (ret == 0) {
            ret = write_header_and_name(s, &h, name, n);
        }
        if (ret < 0 || spans_overlap(QED_HEADER_BYTES, n, spare, n)) {
            return ret; /* the name stays at the end of the area */
        }
        h.backing_filename_offset = QED_HEADER_BYTES;
        ret = write_name(s, name, n, QED_HEADER_BYTES);
        return ret < 0 ? ret : write_header_and_name(s, &h, name, n);
    }
    /* The two names cannot lie side by side: in place (see above). */
    int ret = write_name(s, name, n, QED_HEADER_BYTES);
    return ret < 0 ? ret : write_header_and_name(s, &h, name, n);
}

int qed_drv_change_backing(QedImage *img, const char *name, const char *format, GError **errp)
{
    QedState *s = qed_state(img);
    size_t n = name ? strlen(name) : 0;
    uint32_t max = qed_backing_name_max(s);
    if (n > max) {
        g_set_error(errp, QED_ERROR, ENOSPC,
                    "%s: the backing file name is too long for the header (%zu bytes, at most "
                    "%u fit in its header area)",
                    img->filename, n, max);
        return -ENOSPC;
    }
    if (blk_failed(s->file)) {
        return image_error(img, errp, -EIO, "an earlier flush failed");
    }
    pthread_rwlock_wrlock(&s->maint);
    /* Whatever was written for the new backing file is durable first. */
    int ret = qed_commit(s, true);
    if (ret == 0) {
        ret = change_backing_locked(s, name, (uint32_t)n, format && strcmp(format, "raw") == 0);
    }
    if (ret == 0) {
        /* The strings handed out by qed_get_info live until close. */
        g_ptr_array_add(s->retired_names, s->backing_name);
        g_ptr_array_add(s->retired_names, s->backing_full);
        s->backing_name = n ? g_strdup(name) : NULL;
        s->backing_full = n ? qed_backing_path(img->filename, name) : NULL;
    }
    pthread_rwlock_unlock(&s->maint);
    if (ret < 0) {
        return image_error(img, errp, ret, "Could not update the backing file name");
    }
    return 0;
}
