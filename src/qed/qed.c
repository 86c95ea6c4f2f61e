/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QED format driver: header validation and open, create, close, and the
 * request paths (read, write, zeroes, flush, resize, block status, info).
 *
 * Design notes: NEED_CHECK is set (and flushed) before the first metadata
 * change after a clean state and cleared at close, after a flush, when no
 * request is in flight. A writable open of an image that has it set checks
 * and repairs it first (qed-check.c).
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static int start_cleaner(QedState *s);
static void stop_cleaner(QedState *s);

bool qed_cluster_size_valid(uint32_t cluster_size)
{
    return cluster_size >= QED_MIN_CLUSTER_SIZE && cluster_size <= QED_MAX_CLUSTER_SIZE &&
           (cluster_size & (cluster_size - 1)) == 0;
}

bool qed_table_size_valid(uint32_t table_size)
{
    return table_size >= QED_MIN_TABLE_SIZE && table_size <= QED_MAX_TABLE_SIZE &&
           (table_size & (table_size - 1)) == 0;
}

/* entries² × cluster_size, saturated at INT64_MAX rounded down to 512 (the
 * largest size a file API can address). QEMU computes this in 64 bits and
 * wraps for the largest geometries; see docs/format.md. */
uint64_t qed_max_image_size(uint32_t cluster_size, uint32_t table_size)
{
    unsigned cluster_bits = (unsigned)g_bit_nth_lsf(cluster_size, -1);
    unsigned table_bits = cluster_bits + (unsigned)g_bit_nth_lsf(table_size, -1) - 3;
    unsigned bits = cluster_bits + 2 * table_bits;
    if (bits >= 63) {
        return (uint64_t)INT64_MAX & ~511ull;
    }
    return 1ull << bits;
}

/* ------------------------------------------------------------------ create */

int qed_format_create(BlkDev *file, const QedCreateOptions *opts, GError **errp)
{
    uint32_t cluster_size = opts->cluster_size ? opts->cluster_size : QED_DEFAULT_CLUSTER_SIZE;
    uint32_t table_size = opts->table_size ? opts->table_size : QED_DEFAULT_TABLE_SIZE;
    uint64_t size = opts->size;

    if (!qed_cluster_size_valid(cluster_size)) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "QED cluster size must be within range [%u, %u] and power of 2",
                    QED_MIN_CLUSTER_SIZE, QED_MAX_CLUSTER_SIZE);
        return -EINVAL;
    }
    if (!qed_table_size_valid(table_size)) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "QED table size must be within range [%u, %u] and power of 2",
                    QED_MIN_TABLE_SIZE, QED_MAX_TABLE_SIZE);
        return -EINVAL;
    }
    uint64_t max = qed_max_image_size(cluster_size, table_size);
    if (size > max || (size + 511) / 512 * 512 > max) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "QED image size must be a non-zero multiple of cluster size and "
                    "less than %" PRIu64 " bytes",
                    max);
        return -EINVAL;
    }
    size = (size + 511) / 512 * 512;
    size_t name_len = opts->backing_file ? strlen(opts->backing_file) : 0;
    if (name_len > cluster_size - QED_HEADER_BYTES) {
        g_set_error(errp, QED_ERROR, EINVAL,
                    "Backing file name is too long for the header (%zu bytes, at most %u)",
                    name_len, cluster_size - QED_HEADER_BYTES);
        return -EINVAL;
    }

    QedHeader h = {
        .magic = QED_MAGIC,
        .cluster_size = cluster_size,
        .table_size = table_size,
        .header_size = 1,
        .l1_table_offset = cluster_size,
        .image_size = size,
    };
    if (opts->backing_file) {
        h.features |= QED_F_BACKING_FILE;
        h.backing_filename_offset = QED_HEADER_BYTES;
        h.backing_filename_size = (uint32_t)name_len;
        if (opts->backing_format && strcmp(opts->backing_format, "raw") == 0) {
            h.features |= QED_F_BACKING_FORMAT_NO_PROBE;
        }
    }

    /* The same writes as qemu-img, so that the file (and its allocation on
     * the host) is the same: header, backing name, and a zeroed L1 table. */
    uint8_t hbuf[QED_HEADER_BYTES];
    qed_header_to_le(&h, hbuf);
    /* A container of fixed length (a block device) keeps its size; its
     * tables say where the image ends. */
    int ret = file->fixed_length ? 0 : blk_truncate(file, 0);
    if (ret == 0) {
        ret = blk_pwrite(file, hbuf, sizeof(hbuf), 0, BLK_TAG_CREATE);
    }
    if (ret == 0 && name_len > 0) {
        ret = blk_pwrite(file, opts->backing_file, name_len, QED_HEADER_BYTES, BLK_TAG_CREATE);
    }
    if (ret == 0) {
        ret = blk_write_zeros(file, h.l1_table_offset, (uint64_t)cluster_size * table_size,
                              BLK_TAG_CREATE);
    }
    if (ret == 0) {
        ret = blk_flush(file);
    }
    if (ret < 0) {
        g_set_error(errp, QED_ERROR, -ret, "Could not write '%s': %s", file->filename,
                    g_strerror(-ret));
    }
    return ret;
}

/* -------------------------------------------------------------------- open */

static int open_error(GError **errp, int err, const char *msg)
{
    g_set_error_literal(errp, QED_ERROR, err, msg);
    return -err;
}

/* Validates the header in s->header against the file, in QEMU's order and
 * with its words, before any size from it is used. */
static int validate_header(QedState *s, uint64_t file_length, GError **errp)
{
    QedHeader *h = &s->header;
    if (h->magic != QED_MAGIC) {
        return open_error(errp, EINVAL, "Image not in QED format");
    }
    uint64_t unknown = h->features &
                       ~(QED_F_BACKING_FILE | QED_F_NEED_CHECK | QED_F_BACKING_FORMAT_NO_PROBE);
    if (unknown) {
        g_set_error(errp, QED_ERROR, ENOTSUP, "Unsupported QED features: %" PRIx64, unknown);
        return -ENOTSUP;
    }
    if (!qed_cluster_size_valid(h->cluster_size)) {
        return open_error(errp, EINVAL, "QED cluster size is invalid");
    }
    if (!qed_table_size_valid(h->table_size)) {
        return open_error(errp, EINVAL, "QED table size is invalid");
    }
    s->cluster_size = h->cluster_size;
    s->cluster_bits = (uint32_t)g_bit_nth_lsf(h->cluster_size, -1);
    s->table_nelems = (uint32_t)((uint64_t)h->cluster_size * h->table_size / sizeof(uint64_t));
    s->table_bits = (uint32_t)g_bit_nth_lsf(s->table_nelems, -1);
    s->table_bytes = (uint64_t)h->cluster_size * h->table_size;
    s->max_image_size = qed_max_image_size(h->cluster_size, h->table_size);
    if (h->image_size % 512 != 0 || h->image_size > s->max_image_size) {
        return open_error(errp, EINVAL, "QED image size is invalid");
    }
    if (h->header_size == 0) {
        /* QEMU opens it, but then the header's own cluster is not
         * metadata and a data cluster could overwrite it. */
        return open_error(errp, EINVAL,
                          "QED header size is 0 clusters (the header needs at least 1)");
    }
    /* header_size < 2^32 and cluster_size <= 2^26: no overflow. The L1
     * offset is checked before the header size, in QEMU's order, so that
     * the same header gets QEMU's message. */
    s->header_bytes = (uint64_t)h->header_size * h->cluster_size;
    /* Allocation starts after everything the file holds, rounded up so that a
     * partly written last cluster is never handed out again. */
    s->file_end = MAX(qed_round_up_cluster(s, file_length), s->header_bytes);
    if (!qed_table_offset_valid_locked(s, h->l1_table_offset) ||
        h->l1_table_offset + s->table_bytes > file_length) {
        return open_error(errp, EINVAL, "QED table offset is invalid");
    }
    if (h->header_size > UINT32_MAX / h->cluster_size) {
        return open_error(errp, EINVAL, "QED header size is too large");
    }
    if (h->features & QED_F_BACKING_FILE) {
        if ((uint64_t)h->backing_filename_offset + h->backing_filename_size > s->header_bytes) {
            return open_error(errp, EINVAL, "QED backing filename offset is invalid");
        }
        if (h->backing_filename_size >= QED_MAX_BACKING_NAME) {
            return open_error(errp, EINVAL, "QED backing filename is too long");
        }
    }
    return 0;
}

static int read_backing_name(QedState *s, GError **errp)
{
    uint32_t n = s->header.backing_filename_size;
    char *name = g_malloc(n + 1);
    int ret = blk_pread(s->file, name, n, s->header.backing_filename_offset);
    if (ret < 0) {
        g_free(name);
        return open_error(errp, -ret, "Failed to read backing filename");
    }
    name[n] = '\0';
    if (strlen(name) != n) {
        g_free(name);
        return open_error(errp, EINVAL, "QED backing filename contains a NUL byte");
    }
    s->backing_name = name;
    s->backing_full = qed_backing_path(s->img->filename, name);
    return 0;
}

static void qed_free_state(QedState *s)
{
    stop_cleaner(s);
    if (s->l2_cache.tables) {
        qed_l2_cache_destroy(&s->l2_cache);
    }
    g_free(s->l1);
    qed_meta_free(&s->meta);
    g_free(s->backing_name);
    g_free(s->backing_full);
    g_ptr_array_unref(s->retired_names);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->alloc_lock);
    pthread_cond_destroy(&s->l2_loaded);
    pthread_cond_destroy(&s->cleaner_cond);
    g_free(s);
}

/* Unknown autoclear bits mean an older program changed the image without
 * knowing their features: a writable open knocks them out so that their
 * meaning lapses. */
static int clear_autoclear(QedState *s, GError **errp)
{
    if (s->header.autoclear_features == 0) {
        return 0;
    }
    QedHeader h = s->header;
    h.autoclear_features = 0;
    int ret = qed_write_header(s, &h);
    if (ret == 0) {
        ret = blk_flush(s->file);
    }
    if (ret < 0) {
        return open_error(errp, -ret, "Failed to update header");
    }
    s->header.autoclear_features = 0;
    return 0;
}

/* A writable handle on an image marked NEED_CHECK repairs it before use,
 * unless the caller asked to run the check itself (QED_OPEN_CHECK). */
static int repair_if_needed(QedState *s, GError **errp)
{
    if (!(s->header.features & QED_F_NEED_CHECK)) {
        return 0;
    }
    if (s->img->opts.flags & QED_OPEN_CHECK) {
        s->unchecked = true; /* the caller's qed_check repairs */
        return 0;
    }
    return qed_check_repair(s, errp);
}

static int qed_drv_open(QedImage *img, int depth, GPtrArray *chain, GError **errp)
{
    QedState *s = g_new0(QedState, 1);
    s->img = img;
    s->file = img->file;
    s->read_only = img->opts.flags & QED_OPEN_READ_ONLY;
    s->retired_names = g_ptr_array_new_with_free_func(g_free);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->alloc_lock, NULL);
    pthread_cond_init(&s->l2_loaded, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cleaner_cond, &attr);
    pthread_condattr_destroy(&attr);
    img->opaque = s;

    uint8_t hbuf[QED_HEADER_BYTES];
    int ret = blk_pread(s->file, hbuf, sizeof(hbuf), 0);
    if (ret < 0) {
        ret = open_error(errp, -ret, "Failed to read QED header");
        goto fail;
    }
    qed_header_from_le(&s->header, hbuf);
    int64_t file_length = blk_get_length(s->file);
    if (file_length < 0) {
        ret = open_error(errp, (int)-file_length, "Failed to get file length");
        goto fail;
    }
    ret = validate_header(s, (uint64_t)file_length, errp);
    if (ret < 0) {
        goto fail;
    }
    if (s->header.features & QED_F_BACKING_FILE) {
        ret = read_backing_name(s, errp);
        if (ret < 0) {
            goto fail;
        }
    }

    if (!s->read_only) {
        ret = clear_autoclear(s, errp);
        if (ret < 0) {
            goto fail;
        }
    }

    /* The whole L1 table, as QEMU reads it: the tables of entries past
     * image_size are metadata too (qed-meta.c). It lies inside the file
     * (validate_header), which bounds the allocation. */
    s->l1_nelems = qed_l1_nelems_for(s, s->header.image_size);
    s->l1 = g_try_new0(uint64_t, s->table_nelems);
    if (!s->l1) {
        ret = open_error(errp, ENOMEM, "Not enough memory for the L1 table");
        goto fail;
    }
    ret = qed_read_l1(s, 0, s->table_nelems);
    if (ret < 0) {
        ret = open_error(errp, -ret, "Failed to read L1 table");
        goto fail;
    }
    ret = qed_meta_rebuild_locked(s); /* (no other thread knows s yet) */
    if (ret < 0) {
        ret = open_error(errp, -ret, "Not enough memory for the table map");
        goto fail;
    }
    /* Allocation starts at file_end, at or past the end of the file: no
     * entry will point below the length the file has now. */
    s->length_set = s->length_durable = (uint64_t)file_length;
    qed_l2_cache_init(&s->l2_cache, img->opts.l2_cache_bytes ? img->opts.l2_cache_bytes
                                                             : QED_DEFAULT_L2_CACHE_BYTES);

    if (s->file->fixed_length) {
        ret = qed_find_image_end(s);
        if (ret < 0) {
            g_set_error(errp, QED_ERROR, -ret, "Failed to find the end of the image: %s",
                        g_strerror(-ret));
            goto fail;
        }
    }
    if (!s->read_only) {
        ret = repair_if_needed(s, errp);
        if (ret < 0) {
            goto fail;
        }
    }

    if (s->backing_name && !(img->opts.flags & QED_OPEN_NO_BACKING)) {
        const char *fmt = s->header.features & QED_F_BACKING_FORMAT_NO_PROBE ? "raw" : NULL;
        ret = image_open_backing(img, s->backing_name, fmt, depth, chain, errp);
        if (ret < 0) {
            goto fail;
        }
    }
    return 0;

fail:
    img->opaque = NULL;
    qed_free_state(s);
    return ret;
}

/* ---------------------------------------------------------------- requests */

int qed_set_need_check(QedState *s)
{
    pthread_mutex_lock(&s->lock);
    s->last_change_us = g_get_monotonic_time();
    bool set = s->header.features & QED_F_NEED_CHECK;
    pthread_mutex_unlock(&s->lock);
    if (set) {
        return 0;
    }
    /* The cleaner starts with the first change, not at open: a process that
     * forks after opening (nbdkit does) would lose it otherwise. */
    if (!s->cleaner_started) {
        int ret = start_cleaner(s);
        if (ret < 0) {
            return ret;
        }
    }
    QedHeader h = s->header;
    h.features |= QED_F_NEED_CHECK;
    int ret = qed_write_header(s, &h);
    if (ret == 0) {
        ret = qed_flush_locked(s); /* (also makes a length just grown durable) */
    }
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        s->header.features |= QED_F_NEED_CHECK;
        pthread_cond_signal(&s->cleaner_cond);
        pthread_mutex_unlock(&s->lock);
    }
    return ret;
}

int qed_mark_clean_locked(QedState *s)
{
    /* The room grown ahead of allocation goes first: a clean image has no
     * leaks at its end. A failed handle writes nothing more. */
    int ret = qed_trim_file_locked(s);
    if (ret == 0) {
        ret = qed_flush_locked(s);
    }
    if (ret < 0 || !(s->header.features & QED_F_NEED_CHECK) || s->unchecked) {
        return ret;
    }
    QedHeader h = s->header;
    h.features &= ~QED_F_NEED_CHECK;
    ret = qed_write_header(s, &h);
    if (ret == 0) {
        ret = blk_flush(s->file);
    }
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        s->header.features = h.features;
        pthread_mutex_unlock(&s->lock);
    }
    return ret;
}

int qed_reclaim_and_mark_clean_locked(QedState *s)
{
    if (s->freed_clusters > 0 && !s->unchecked && !blk_failed(s->file)) {
        /* Best effort: a failed compaction leaves leaks, which are harmless. */
        if (qed_reclaim_locked(s) == 0) {
            s->freed_clusters = 0;
        }
    }
    return qed_mark_clean_locked(s);
}

/* The cleaner: waits until NEED_CHECK is set and no metadata has changed for
 * clean_after_us, then marks the image clean, so that a long-running export
 * is not left dirty. Failures are left for close to report. */
static void *cleaner_main(void *opaque)
{
    QedState *s = opaque;
    pthread_mutex_lock(&s->lock);
    while (!s->cleaner_stop) {
        if (!(s->header.features & QED_F_NEED_CHECK)) {
            pthread_cond_wait(&s->cleaner_cond, &s->lock);
            continue;
        }
        int64_t deadline = s->last_change_us + s->clean_after_us;
        if (g_get_monotonic_time() < deadline) {
            struct timespec ts = { .tv_sec = deadline / G_USEC_PER_SEC,
                                   .tv_nsec = (deadline % G_USEC_PER_SEC) * 1000 };
            pthread_cond_timedwait(&s->cleaner_cond, &s->lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->lock);
        pthread_mutex_lock(&s->alloc_lock);
        pthread_mutex_lock(&s->lock);
        bool still_idle = g_get_monotonic_time() >= s->last_change_us + s->clean_after_us;
        pthread_mutex_unlock(&s->lock);
        if (still_idle && qed_mark_clean_locked(s) < 0) {
            /* Try again after another idle period rather than spin. */
            pthread_mutex_lock(&s->lock);
            s->last_change_us = g_get_monotonic_time();
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_unlock(&s->alloc_lock);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static int start_cleaner(QedState *s)
{
    unsigned ms = s->img->opts.clean_after_ms ? s->img->opts.clean_after_ms : 5000;
    s->clean_after_us = (int64_t)ms * 1000;
    s->cleaner_stop = false;
    int err = pthread_create(&s->cleaner, NULL, cleaner_main, s);
    if (err) {
        return -err;
    }
    s->cleaner_started = true;
    return 0;
}

static void stop_cleaner(QedState *s)
{
    if (!s->cleaner_started) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->cleaner_stop = true;
    pthread_cond_signal(&s->cleaner_cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->cleaner, NULL);
    s->cleaner_started = false;
}

static int qed_drv_flush(QedImage *img)
{
    QedState *s = qed_state(img);
    if (s->read_only) {
        return 0;
    }
    /* The file is long enough already: allocation grows it ahead. */
    return blk_flush(s->file);
}

static int qed_drv_pread(QedImage *img, void *buf, size_t len, uint64_t pos)
{
    QedState *s = qed_state(img);
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

/* Writes buf (zeros when NULL) at pos: in place where clusters are
 * allocated, through the allocating path elsewhere. */
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
        } else if (!p && (ext.type == QED_EXTENT_ZERO || !s->img->backing)) {
            done = (int64_t)ext.length; /* reads as zeros already */
        } else {
            pthread_mutex_lock(&s->alloc_lock);
            done = qed_alloc_write(s, p, pos, len);
            pthread_mutex_unlock(&s->alloc_lock);
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
    return write_range(s, buf, len, pos);
}

/* Writes zeros over a partial cluster that is unallocated in an image
 * without a backing file, for QED_WRITE_ZERO_CLUSTERS. */
static int alloc_zeros(QedState *s, uint64_t len, uint64_t pos)
{
    while (len > 0) {
        pthread_mutex_lock(&s->alloc_lock);
        int64_t done = qed_alloc_write(s, NULL, pos, len);
        pthread_mutex_unlock(&s->alloc_lock);
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
 * reclaims it. */
static int qed_drv_pwrite_zeroes(QedImage *img, uint64_t len, uint64_t pos, unsigned flags)
{
    QedState *s = qed_state(img);
    /* Whether unallocated clusters may read differently later. */
    bool shadowed = s->img->backing || (flags & QED_WRITE_ZERO_CLUSTERS);
    uint64_t want = shadowed ? QED_L2_ENTRY_ZERO : 0;
    if (blk_failed(s->file)) {
        return -EIO;
    }
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
            pthread_mutex_lock(&s->alloc_lock);
            /* Look again under the lock: the run may have changed. */
            QedExtent now;
            ret = qed_find_cluster(s, pos, n, &now);
            if (ret == 0 && now.type == ext.type && now.length == n &&
                now.file_offset == ext.file_offset) {
                ret = qed_set_cluster_entries(s, pos, n / s->cluster_size, want);
                if (ret == 0 && ext.type == QED_EXTENT_DATA) {
                    s->freed_clusters += n / s->cluster_size;
                }
            } else if (ret == 0) {
                n = 0; /* changed under us: go round again */
            }
            pthread_mutex_unlock(&s->alloc_lock);
        } else if (reads_zero) {
            /* nothing to do */
        } else {
            /* A partial cluster: zeroed in place, or copied on write with
             * zeros from under a backing file. */
            n = MIN(n, s->cluster_size - qed_offset_into_cluster(s, pos));
            ret = ext.type == QED_EXTENT_UNALLOCATED && !s->img->backing
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
    pthread_mutex_lock(&s->alloc_lock);
    int ret = 0;
    if (size < s->header.image_size) {
        ret = qed_shrink_locked(s, size); /* (qed-resize.c) */
        if (ret < 0) {
            ret = image_error(img, errp, ret, "Failed to shrink the image");
        }
        goto out;
    }
    /* The new part must not show the backing file (qed-resize.c). */
    uint64_t old = s->header.image_size;
    if (size > old && img->backing && img->backing_size > old) {
        ret = qed_zero_grown_locked(s, old, MIN(size, img->backing_size));
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
    pthread_mutex_unlock(&s->alloc_lock);
    return ret;
}

static int qed_drv_block_status(QedImage *img, uint64_t offset, uint64_t len, QedExtent *ext)
{
    return qed_find_cluster(qed_state(img), offset, len, ext);
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

static void qed_drv_get_info(QedImage *img, QedInfo *info)
{
    QedState *s = qed_state(img);
    pthread_mutex_lock(&s->lock);
    info->virtual_size = s->header.image_size;
    info->cluster_size = s->header.cluster_size;
    info->table_size = s->header.table_size;
    info->header_size = s->header.header_size;
    info->features = s->header.features;
    info->compat_features = s->header.compat_features;
    info->autoclear_features = s->header.autoclear_features;
    info->need_check = s->header.features & QED_F_NEED_CHECK;
    pthread_mutex_unlock(&s->lock);
    info->backing_file = s->backing_name;
    info->backing_file_full = s->backing_full;
    info->backing_format = (s->backing_name && (info->features & QED_F_BACKING_FORMAT_NO_PROBE))
                               ? "raw"
                               : NULL;
}

/* Flushes and clears NEED_CHECK. */
static int qed_drv_shutdown(QedImage *img, GError **errp)
{
    QedState *s = qed_state(img);
    stop_cleaner(s);
    if (s->read_only) {
        return 0;
    }
    pthread_mutex_lock(&s->alloc_lock);
    int ret = qed_reclaim_and_mark_clean_locked(s);
    pthread_mutex_unlock(&s->alloc_lock);
    if (ret < 0) {
        return image_error(img, errp, ret, "Failed to flush and mark the image clean");
    }
    return 0;
}

/* Switches between read-only and read-write (no request may be in flight).
 * Going writable does what a writable open does: autoclear bits go and a
 * NEED_CHECK image is repaired. Going read-only marks the image clean. */
static int qed_drv_reopen(QedImage *img, bool writable, GError **errp)
{
    QedState *s = qed_state(img);
    if (writable == !s->read_only) {
        return 0;
    }
    int ret;
    if (!writable) {
        stop_cleaner(s);
        pthread_mutex_lock(&s->alloc_lock);
        ret = qed_reclaim_and_mark_clean_locked(s);
        pthread_mutex_unlock(&s->alloc_lock);
        if (ret < 0) {
            return image_error(img, errp, ret, "Failed to flush and mark the image clean");
        }
    }
    ret = blk_reopen(s->file, !writable);
    if (ret < 0) {
        return image_error(img, errp, ret,
                           writable ? "Could not reopen read-write"
                                    : "Could not reopen read-only");
    }
    s->read_only = !writable;
    if (!writable) {
        return 0;
    }
    GError *err = NULL;
    ret = clear_autoclear(s, &err);
    if (ret == 0) {
        ret = repair_if_needed(s, &err);
    }
    if (ret < 0) {
        /* Back to read-only: the image must not be written unrepaired. */
        blk_reopen(s->file, true);
        s->read_only = true;
        g_propagate_prefixed_error(errp, err, "%s: ", img->filename);
    }
    return ret;
}

static void qed_drv_close(QedImage *img)
{
    if (img->opaque) {
        qed_free_state(img->opaque);
        img->opaque = NULL;
    }
}

static bool qed_drv_probe(const uint8_t *buf, size_t len)
{
    uint32_t magic;
    if (len < sizeof(magic)) {
        return false;
    }
    memcpy(&magic, buf, sizeof(magic));
    return GUINT32_FROM_LE(magic) == QED_MAGIC;
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
};
