/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QED format driver's request paths (read, write, zeroes, flush, resize,
 * block status) and its operations table. Open, create, NEED_CHECK and
 * allocation live in the files named in qed-internal.h.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static int qed_drv_flush(QedImage *img)
{
    QedState *s = qed_state(img);
    if (s->read_only) {
        return 0;
    }
    /* Queued entries, then one fdatasync shared with every flush that
     * comes meanwhile (group commit, qed-commit.c). Shared: a job that
     * changes metadata wholesale (and the lengths) is not running. */
    pthread_rwlock_rdlock(&s->maint);
    int ret = qed_commit(s, true);
    pthread_rwlock_unlock(&s->maint);
    return ret;
}

static int pread_maint(QedState *s, void *buf, size_t len, uint64_t pos)
{
    QedImage *img = s->img;
    uint8_t *p = buf;
    while (len > 0) {
        QedExtent ext;
        int ret = qed_find_cluster(s, pos, len, &ext);
        if (ret < 0) {
            return ret;
        }
        size_t n = (size_t)ext.length;
        switch (ext.type) {
        case QED_EXTENT_DATA:
            ret = blk_pread(s->file, p, n, ext.file_offset);
            break;
        case QED_EXTENT_ZERO:
            memset(p, 0, n);
            break;
        case QED_EXTENT_UNALLOCATED:
            ret = image_read_backing(img, p, n, pos);
            break;
        }
        if (ret < 0) {
            return ret;
        }
        p += n;
        pos += n;
        len -= n;
    }
    return 0;
}

/* Every request holds maint shared: a job that moves clusters (a reclaim)
 * then never runs under a read or write that translated before it. */
static int qed_drv_pread(QedImage *img, void *buf, size_t len, uint64_t pos)
{
    QedState *s = qed_state(img);
    pthread_rwlock_rdlock(&s->maint);
    int ret = pread_maint(s, buf, len, pos);
    pthread_rwlock_unlock(&s->maint);
    return ret;
}

/* The count of reclaims so far, read before a write that may meet ENOSPC. */
static uint64_t reclaims(QedState *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t n = s->reclaims;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* After a write failed with ENOSPC: when zero writes gave clusters up this
 * session, reclaims them (compaction moves the last clusters into the holes
 * and cuts the file; qed-check.c) so that the write can be tried again, and
 * returns true; also when another writer reclaimed since `seen` (the count
 * read before the write), which many writers meeting a full disk at once
 * do. The freed clusters are never handed out directly: a request that
 * translated before the free could still write there, and a crash could
 * leave the old entry beside the new one. Under maint exclusive no request
 * is in flight, and the reclaim is crash safe. */
static bool reclaim_after_enospc(QedState *s, uint64_t seen)
{
    pthread_mutex_lock(&s->lock);
    bool worth = s->freed_clusters > 0 || s->reclaims != seen;
    pthread_mutex_unlock(&s->lock);
    if (!worth) {
        return false;
    }
    pthread_rwlock_wrlock(&s->maint);
    bool done = s->reclaims != seen;
    if (!done && s->freed_clusters > 0 && !s->unchecked && !blk_failed(s->file)) {
        done = qed_reclaim_excl(s) == 0;
        if (done) {
            qed_note_reclaimed(s);
        }
    }
    pthread_rwlock_unlock(&s->maint);
    return done;
}

/* Writes buf (zeros when NULL) at pos: in place where clusters are
 * allocated, through the allocating path elsewhere. Called with maint
 * held shared. */
static int write_range(QedState *s, const void *buf, uint64_t len, uint64_t pos)
{
    const uint8_t *p = buf;
    while (len > 0) {
        QedExtent ext;
        int ret = qed_find_cluster(s, pos, len, &ext);
        if (ret < 0) {
            return ret;
        }
        int64_t done;
        if (ext.type == QED_EXTENT_DATA) {
            ret = p ? blk_pwrite(s->file, p, ext.length, ext.file_offset, BLK_TAG_DATA)
                    : blk_punch_zeroes(s->file, ext.file_offset, ext.length);
            done = ret < 0 ? ret : (int64_t)ext.length;
        } else if (!p && (ext.type == QED_EXTENT_ZERO || !image_has_backing(s->img))) {
            done = (int64_t)ext.length; /* reads as zeros already */
        } else {
            done = qed_alloc_write(s, p, pos, len);
        }
        if (done < 0) {
            return (int)done;
        }
        if (p) {
            p += done;
        }
        pos += (uint64_t)done;
        len -= (uint64_t)done;
    }
    return 0;
}

/* A failed handle (a flush failed: blk.c) refuses every write, also one
 * that would need no I/O, until the image is opened again. */
static int qed_drv_pwrite(QedImage *img, const void *buf, size_t len, uint64_t pos)
{
    QedState *s = qed_state(img);
    if (blk_failed(s->file)) {
        return -EIO;
    }
    for (int attempt = 0;; attempt++) {
        uint64_t seen = reclaims(s);
        pthread_rwlock_rdlock(&s->maint);
        int ret = write_range(s, buf, len, pos);
        pthread_rwlock_unlock(&s->maint);
        if (ret != -ENOSPC || attempt > 0 || !reclaim_after_enospc(s, seen)) {
            return ret;
        }
    }
}

/* Writes zeros over a partial cluster that is unallocated in an image
 * without a backing file, for QED_WRITE_ZERO_CLUSTERS. */
static int alloc_zeros(QedState *s, uint64_t len, uint64_t pos)
{
    while (len > 0) {
        int64_t done = qed_alloc_write(s, NULL, pos, len);
        if (done < 0) {
            return (int)done;
        }
        pos += (uint64_t)done;
        len -= (uint64_t)done;
    }
    return 0;
}

/* Whole clusters become zero clusters under a backing file, and unallocated
 * without one; the partial clusters at the ends are zeroed in place (or,
 * unallocated under a backing file, copied on write with zeros). With
 * QED_WRITE_ZERO_CLUSTERS, unallocated clusters are zeroed as under a
 * backing file. A data cluster given up this way is leaked until close
 * (or a write that finds the file system or container full) reclaims it.
 * Called with maint held shared. */
static int zeroes_maint(QedState *s, uint64_t len, uint64_t pos, unsigned flags)
{
    /* Whether unallocated clusters may read differently later. */
    bool shadowed = image_has_backing(s->img) || (flags & QED_WRITE_ZERO_CLUSTERS);
    uint64_t want = shadowed ? QED_L2_ENTRY_ZERO : 0;
    while (len > 0) {
        QedExtent ext;
        int ret = qed_find_cluster(s, pos, len, &ext);
        if (ret < 0) {
            return ret;
        }
        uint64_t n = ext.length;
        bool whole = qed_offset_into_cluster(s, pos) == 0 && n >= s->cluster_size;
        bool reads_zero = ext.type == QED_EXTENT_ZERO ||
                          (ext.type == QED_EXTENT_UNALLOCATED && !shadowed);
        if (whole && !reads_zero) {
            n = qed_start_of_cluster(s, n);
            uint64_t span = n;
            qed_range_take(s, pos, pos + span);
            /* Look again, owning the clusters: the run may have changed. */
            QedExtent now;
            ret = qed_find_cluster(s, pos, n, &now);
            if (ret == 0 && now.type == ext.type && now.length == n &&
                now.file_offset == ext.file_offset) {
                ret = qed_set_cluster_entries(s, pos, n / s->cluster_size, want);
                if (ret == 0 && ext.type == QED_EXTENT_DATA) {
                    pthread_mutex_lock(&s->lock);
                    s->freed_clusters += n / s->cluster_size;
                    pthread_mutex_unlock(&s->lock);
                }
            } else if (ret == 0) {
                n = 0; /* changed under us: go round again */
            }
            qed_range_give(s, pos, pos + span);
        } else if (reads_zero) {
            /* nothing to do */
        } else {
            /* A partial cluster: zeroed in place, or copied on write with
             * zeros from under a backing file. */
            n = MIN(n, s->cluster_size - qed_offset_into_cluster(s, pos));
            ret = ext.type == QED_EXTENT_UNALLOCATED && !image_has_backing(s->img)
                      ? alloc_zeros(s, n, pos)
                      : write_range(s, NULL, n, pos);
        }
        if (ret < 0) {
            return ret;
        }
        pos += n;
        len -= n;
    }
    return 0;
}

static int qed_drv_pwrite_zeroes(QedImage *img, uint64_t len, uint64_t pos, unsigned flags)
{
    QedState *s = qed_state(img);
    if (blk_failed(s->file)) {
        return -EIO;
    }
    for (int attempt = 0;; attempt++) {
        uint64_t seen = reclaims(s);
        pthread_rwlock_rdlock(&s->maint);
        int ret = zeroes_maint(s, len, pos, flags);
        pthread_rwlock_unlock(&s->maint);
        if (ret != -ENOSPC || attempt > 0 || !reclaim_after_enospc(s, seen)) {
            return ret;
        }
    }
}

static int qed_drv_resize(QedImage *img, uint64_t size, GError **errp)
{
    QedState *s = qed_state(img);
    if (size % 512 != 0 || size > s->max_image_size) {
        g_set_error(errp, QED_ERROR, EINVAL, "Invalid image size specified");
        return -EINVAL;
    }
    if (blk_failed(s->file)) {
        return image_error(img, errp, -EIO, "an earlier flush failed");
    }
    pthread_rwlock_wrlock(&s->maint);
    int ret = 0;
    if (size < s->header.image_size) {
        ret = qed_shrink_excl(s, size); /* (qed-resize.c) */
        if (ret < 0) {
            ret = image_error(img, errp, ret, "Failed to shrink the image");
        }
        goto out;
    }
    /* The new part must not show the backing file (qed-resize.c). */
    uint64_t old = s->header.image_size;
    if (size > old && image_backing_size(img) > old) {
        ret = qed_zero_grown_excl(s, old, MIN(size, image_backing_size(img)));
        if (ret < 0) {
            ret = image_error(img, errp, ret, "Failed to zero the grown part of the image");
            goto out;
        }
    }
    /* The L1 entries the new size reaches are in memory already (the whole
     * table is), and so are their tables in the metadata map. */
    uint32_t nelems = qed_l1_nelems_for(s, size);
    QedHeader h = s->header;
    h.image_size = size;
    ret = qed_write_header(s, &h);
    if (ret < 0) {
        ret = image_error(img, errp, ret, "Failed to update the image size");
        goto out;
    }
    pthread_mutex_lock(&s->lock);
    s->header.image_size = size;
    s->l1_nelems = MAX(s->l1_nelems, nelems);
    pthread_mutex_unlock(&s->lock);
out:
    pthread_rwlock_unlock(&s->maint);
    return ret;
}

static int qed_drv_block_status(QedImage *img, uint64_t offset, uint64_t len, QedExtent *ext)
{
    QedState *s = qed_state(img);
    pthread_rwlock_rdlock(&s->maint); /* (no reclaim moves the clusters meanwhile) */
    int ret = qed_find_cluster(s, offset, len, ext);
    pthread_rwlock_unlock(&s->maint);
    return ret;
}

static uint64_t qed_drv_get_size(QedImage *img)
{
    QedState *s = qed_state(img);
    pthread_mutex_lock(&s->lock);
    uint64_t size = s->header.image_size;
    pthread_mutex_unlock(&s->lock);
    return size;
}

static uint32_t qed_drv_backing_name_max(QedImage *img)
{
    return qed_backing_name_max(qed_state(img));
}

const ImageDriver qed_driver = {
    .format_name = "qed",
    .probe = qed_drv_probe,
    .open = qed_drv_open,
    .close = qed_drv_close,
    .pread = qed_drv_pread,
    .pwrite = qed_drv_pwrite,
    .pwrite_zeroes = qed_drv_pwrite_zeroes,
    .flush = qed_drv_flush,
    .resize = qed_drv_resize,
    .block_status = qed_drv_block_status,
    .get_size = qed_drv_get_size,
    .get_info = qed_drv_get_info,
    .check = qed_driver_check,
    .shutdown = qed_drv_shutdown,
    .reopen = qed_drv_reopen,
    .change_backing = qed_drv_change_backing,
    .make_empty = qed_drv_make_empty,
    .backing_name_max = qed_drv_backing_name_max,
    .create = qed_format_create,
};
