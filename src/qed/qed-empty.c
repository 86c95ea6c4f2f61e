/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Emptying an image after its clusters were committed into its backing file
 * (the QED design's "reset image after commit", which QEMU never did): every
 * L1 entry cleared, the L2 tables and data clusters dropped, the file cut
 * back to the end of the L1 table.
 *
 * Design notes, the crash order:
 * 0. The backing chain is flushed first: what the caller committed into it
 *    is durable before anything here is dropped, so that from now on the
 *    image's clusters and the backing file's hold the same data.
 * 1. NEED_CHECK is set and flushed (as before any metadata change).
 * 2. The whole L1 table is written as zeros and flushed. A torn or partial
 *    write leaves some entries cleared and the others as they were: each
 *    state is consistent, and the clusters the cleared entries reached are
 *    leaks, which read the same data through the backing file.
 * 3. The file is cut to the end of the L1 table and flushed: after step 2
 *    nothing points past it, so a cut that lands or not is leaks at worst.
 * 4. NEED_CHECK is cleared (a header write and a flush).
 * A crash leaves at worst leaks, which the next writable open reclaims.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <string.h>

/* Forgets every L2 table and points nothing anywhere (with the L1 table
 * on disk all zeros). Called with maint held exclusive and no request in flight. */
static int forget_tables_locked(QedState *s, uint64_t end)
{
    pthread_mutex_lock(&s->lock);
    memset(s->l1, 0, (size_t)s->table_nelems * sizeof(uint64_t));
    size_t budget = s->l2_cache.budget;
    qed_l2_cache_destroy(&s->l2_cache);
    qed_l2_cache_init(&s->l2_cache, budget);
    s->file_end = end;
    s->last_change_us = g_get_monotonic_time();
    int ret = qed_meta_rebuild_locked(s);
    pthread_mutex_unlock(&s->lock);
    qed_note_reclaimed(s);
    return ret;
}

/* Called with maint held exclusive. */
static int make_empty_locked(QedState *s)
{
    /* (Queued entries first: the tables are forgotten below.) */
    int ret = qed_commit(s, false);
    if (ret == 0) {
        ret = image_flush_backing_chain(s->img);
    }
    if (ret == 0) {
        ret = qed_set_need_check(s);
    }
    if (ret < 0) {
        return ret;
    }
    uint8_t *zeros = g_try_malloc0(s->table_bytes);
    if (!zeros) {
        return -ENOMEM;
    }
    ret = blk_pwrite(s->file, zeros, s->table_bytes, s->header.l1_table_offset, BLK_TAG_L1);
    g_free(zeros);
    if (ret == 0) {
        ret = qed_commit(s, true);
    }
    /* Even when the write failed, some entries may be cleared on the disk:
     * the tables are forgotten in memory too, so that no later write goes
     * into a table nothing points at. Reads then fall through to the
     * backing file, which holds the same data. */
    uint64_t end = MAX(s->header.l1_table_offset + s->table_bytes, s->header_bytes);
    pthread_mutex_lock(&s->lock);
    uint64_t keep_end = s->file_end;
    pthread_mutex_unlock(&s->lock);
    int forgot = forget_tables_locked(s, ret == 0 ? end : keep_end);
    if (ret < 0 || forgot < 0) {
        return ret < 0 ? ret : forgot;
    }
    /* Cuts the file to `end`, flushes, and clears NEED_CHECK. */
    return qed_mark_clean_excl(s);
}

int qed_drv_make_empty(QedImage *img, GError **errp)
{
    QedState *s = qed_state(img);
    if (blk_failed(s->file)) {
        return image_error(img, errp, -EIO, "an earlier flush failed");
    }
    pthread_rwlock_wrlock(&s->maint);
    int ret = make_empty_locked(s);
    pthread_rwlock_unlock(&s->maint);
    if (ret < 0) {
        return image_error(img, errp, ret, "Could not empty the image");
    }
    return 0;
}
