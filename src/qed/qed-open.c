/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening a QED image: header validation in QEMU's order, the backing name,
 * the L1 table and the metadata map; and the life of a handle after that:
 * reopen between read-only and read-write, shutdown (mark clean) and close.
 *
 * Design notes: a writable open of an image that has NEED_CHECK set checks
 * and repairs it first (qed-check.c), unless the caller runs the check.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

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
    qed_cleaner_stop(s);
    if (s->l2_cache.tables) {
        qed_commit_destroy(s); /* (puts its tables) */
        qed_l2_cache_destroy(&s->l2_cache);
    }
    qed_inflight_destroy(&s->inflight);
    g_free(s->l1);
    qed_meta_free(&s->meta);
    g_free(s->backing_name);
    g_free(s->backing_full);
    g_ptr_array_unref(s->retired_names);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->grow_lock);
    pthread_rwlock_destroy(&s->maint);
    pthread_cond_destroy(&s->l2_loaded);
    pthread_cond_destroy(&s->changed);
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

int qed_drv_open(QedImage *img, int depth, GPtrArray *chain, GError **errp)
{
    QedState *s = g_new0(QedState, 1);
    s->img = img;
    s->file = img->file;
    s->read_only = img->opts.flags & QED_OPEN_READ_ONLY;
    s->retired_names = g_ptr_array_new_with_free_func(g_free);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->grow_lock, NULL);
    pthread_rwlockattr_t rwattr;
    pthread_rwlockattr_init(&rwattr);
    /* A job that needs maint exclusive (the cleaner, a resize) must not
     * starve behind a stream of allocating writes. */
    pthread_rwlockattr_setkind_np(&rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->maint, &rwattr);
    pthread_rwlockattr_destroy(&rwattr);
    pthread_cond_init(&s->l2_loaded, NULL);
    pthread_cond_init(&s->changed, NULL);
    qed_inflight_init(&s->inflight);
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
    qed_commit_init(s);

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

void qed_drv_get_info(QedImage *img, QedInfo *info)
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
int qed_drv_shutdown(QedImage *img, GError **errp)
{
    QedState *s = qed_state(img);
    qed_cleaner_stop(s);
    if (s->read_only) {
        return 0;
    }
    pthread_rwlock_wrlock(&s->maint);
    int ret = qed_reclaim_and_mark_clean_excl(s);
    pthread_rwlock_unlock(&s->maint);
    if (ret < 0) {
        return image_error(img, errp, ret, "Failed to flush and mark the image clean");
    }
    return 0;
}

/* Switches between read-only and read-write (no request may be in flight).
 * Going writable does what a writable open does: autoclear bits go and a
 * NEED_CHECK image is repaired. Going read-only marks the image clean. */
int qed_drv_reopen(QedImage *img, bool writable, GError **errp)
{
    QedState *s = qed_state(img);
    if (writable == !s->read_only) {
        return 0;
    }
    int ret;
    if (!writable) {
        qed_cleaner_stop(s);
        pthread_rwlock_wrlock(&s->maint);
        ret = qed_reclaim_and_mark_clean_excl(s);
        pthread_rwlock_unlock(&s->maint);
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

void qed_drv_close(QedImage *img)
{
    if (img->opaque) {
        qed_free_state(img->opaque);
        img->opaque = NULL;
    }
}

bool qed_drv_probe(const uint8_t *buf, size_t len)
{
    uint32_t magic;
    if (len < sizeof(magic)) {
        return false;
    }
    memcpy(&magic, buf, sizeof(magic));
    return GUINT32_FROM_LE(magic) == QED_MAGIC;
}
