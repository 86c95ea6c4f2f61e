/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a resize does besides changing image_size: shrinking a QED image
 * (QEMU's qed driver refuses to) gives up the clusters and L2 tables past
 * the new end, packs the clusters still in use towards the start of the
 * file and cuts the file after them; growing an image whose backing file is
 * longer than it makes the new part read as zeros, not as the backing file.
 *
 * Design notes, the order that keeps a shrink safe across power loss:
 * 1. NEED_CHECK is set and flushed (qed_set_need_check).
 * 2. The tail of a data cluster that the new end cuts in two is zeroed, so
 *    that a later grow reads zeros there, not the old data.
 * 3. The L2 entries past the new end in the table that holds the new end are
 *    cleared (one L2 write), then the L1 entries of the tables wholly past
 *    it (one L1 write); then a flush. What they referenced is leaked now:
 *    a crash before the header below leaves the image at its old size with
 *    its tail reading as unallocated, which is what the caller asked to give
 *    up; nothing inside the new size has changed.
 * 4. The header gets the new size; a flush.
 * 5. The leaks are reclaimed by the check's compaction (qed-check.c), which
 *    keeps the image consistent but for leaks after every step, cuts the
 *    file, and marks the image clean.
 * Clearing the entries before the size goes down, and not after, means no
 * crash leaves an entry past image_size that a later grow would bring back
 * (QED walks, and a grow reaches, the whole L1 table).
 * The compaction moves clusters, so a shrink needs the handle to itself: no
 * other request may be in flight (qed_resize says so).
 *
 * Growing: the new part [old size, new size) would fall through to the
 * backing file where that is longer than the image (QEMU refuses such a
 * grow for QED, as it cannot zero the new part). Here the new part up to the
 * backing file's end becomes zero clusters (the cluster the old end cuts is
 * copied on write with zeros past the old end), through the allocating
 * write path and its order, and is flushed before the header grows: a
 * crash before that leaves the old size, with zero clusters past its end.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <string.h>

/* Zeroes [size, end of its cluster) when a data cluster holds it. */
static int zero_cut_cluster(QedState *s, uint64_t size)
{
    uint64_t in_cluster = qed_offset_into_cluster(s, size);
    if (in_cluster == 0) {
        return 0;
    }
    QedExtent ext;
    int ret = qed_find_cluster(s, size, s->cluster_size - in_cluster, &ext);
    if (ret < 0 || ext.type != QED_EXTENT_DATA) {
        return ret;
    }
    return blk_write_zeros(s->file, ext.file_offset, ext.length, BLK_TAG_DATA);
}

/* Clears the entries of the L2 table of L1 entry l1_index from entry first
 * to its end. */
static int clear_l2_tail(QedState *s, uint32_t l1_index, uint32_t first)
{
    pthread_mutex_lock(&s->lock);
    uint64_t l2_offset = s->l1[l1_index];
    if (l2_offset == 0 || !qed_table_offset_valid_locked(s, l2_offset) ||
        !qed_meta_owns(&s->meta, l1_index)) {
        /* No table, or one the check will clear: nothing to keep in step. */
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    int ret = 0;
    QedL2Table *t = qed_l2_cache_get_locked(s, l2_offset, &ret);
    if (!t) {
        pthread_mutex_unlock(&s->lock);
        return ret;
    }
    bool changed = false;
    for (uint32_t j = first; j < s->table_nelems; j++) {
        changed |= t->entries[j] != 0;
        t->entries[j] = 0;
    }
    pthread_mutex_unlock(&s->lock);
    if (changed) {
        ret = qed_write_l2(s, t, first, s->table_nelems - first);
    }
    pthread_mutex_lock(&s->lock);
    if (ret < 0) {
        qed_l2_cache_invalidate_locked(s, t); /* the disk may hold either */
    }
    qed_l2_cache_put_locked(s, t);
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* Clears the L1 entries from first on, and forgets their tables. */
static int clear_l1_tail(QedState *s, uint32_t first)
{
    bool changed = false;
    pthread_mutex_lock(&s->lock);
    for (uint32_t i = first; i < s->table_nelems; i++) {
        uint64_t offset = s->l1[i];
        if (offset == 0) {
            continue;
        }
        QedL2Table *t = g_hash_table_lookup(s->l2_cache.tables, &offset);
        if (t) {
            qed_l2_cache_invalidate_locked(s, t);
        }
        qed_meta_remove(s, &s->meta, offset, i);
        s->l1[i] = 0;
        changed = true;
    }
    if (!changed) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    /* The whole table in one aligned write (also under O_DIRECT). */
    uint8_t *buf = g_try_malloc(s->table_bytes);
    if (!buf) {
        pthread_mutex_unlock(&s->lock);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->table_nelems; i++) {
        uint64_t le = GUINT64_TO_LE(s->l1[i]);
        memcpy(buf + (size_t)i * sizeof(le), &le, sizeof(le));
    }
    uint64_t l1_offset = s->header.l1_table_offset;
    pthread_mutex_unlock(&s->lock);
    int ret = blk_pwrite(s->file, buf, s->table_bytes, l1_offset, BLK_TAG_L1);
    g_free(buf);
    return ret;
}

int qed_shrink_excl(QedState *s, uint64_t size)
{
    g_assert(size < s->header.image_size);
    uint32_t keep = qed_l1_nelems_for(s, size);
    uint64_t cut = qed_round_up_cluster(s, size); /* the first cluster given up */

    /* (Queued entries first: the tail is cleared on the disk below.) */
    int ret = qed_commit(s, false);
    if (ret == 0) {
        ret = qed_set_need_check(s);
    }
    if (ret == 0) {
        ret = zero_cut_cluster(s, size);
    }
    if (ret == 0 && qed_l1_index(s, cut) == keep - 1) {
        ret = clear_l2_tail(s, keep - 1, qed_l2_index(s, cut));
    }
    if (ret == 0) {
        ret = clear_l1_tail(s, keep);
    }
    if (ret == 0) {
        ret = qed_commit(s, true);
    }
    if (ret < 0) {
        return ret;
    }

    QedHeader h = s->header;
    h.image_size = size;
    ret = qed_write_header(s, &h);
    if (ret == 0) {
        ret = qed_commit(s, true);
    }
    if (ret < 0) {
        return ret;
    }
    pthread_mutex_lock(&s->lock);
    s->header.image_size = size;
    s->l1_nelems = keep;
    pthread_mutex_unlock(&s->lock);

    /* Compacts, cuts the file and marks the image clean. */
    ret = qed_reclaim_excl(s);
    if (ret == 0) {
        qed_note_reclaimed(s);
    }
    return ret;
}

int qed_zero_grown_excl(QedState *s, uint64_t from, uint64_t to)
{
    /* Translation must reach the new tables (requests past the size in the
     * header are still refused by the caller's checks). */
    pthread_mutex_lock(&s->lock);
    s->l1_nelems = MAX(s->l1_nelems, qed_l1_nelems_for(s, to));
    pthread_mutex_unlock(&s->lock);

    uint64_t pos = from;
    int ret = 0;
    if (qed_offset_into_cluster(s, pos) != 0) {
        /* The whole rest of the cut cluster, also past `to`: a later grow
         * must not find backing data in it either. */
        uint64_t len = qed_round_up_cluster(s, pos) - pos;
        QedExtent ext;
        ret = qed_find_cluster(s, pos, len, &ext);
        if (ret == 0 && ext.type == QED_EXTENT_DATA) {
            ret = blk_write_zeros(s->file, ext.file_offset, ext.length, BLK_TAG_DATA);
        } else if (ret == 0 && ext.type == QED_EXTENT_UNALLOCATED) {
            for (uint64_t done = 0; ret == 0 && done < len;) {
                int64_t n = qed_alloc_write(s, NULL, pos + done, len - done);
                ret = n < 0 ? (int)n : 0;
                done += n < 0 ? 0 : (uint64_t)n;
            }
        }
        pos += len;
    }
    uint64_t end = qed_round_up_cluster(s, to);
    while (ret == 0 && pos < end) {
        uint64_t table_end = (pos | (qed_l2_coverage(s) - 1)) + 1;
        uint64_t n = (MIN(end, table_end) - pos) >> s->cluster_bits;
        ret = qed_set_cluster_entries(s, pos, n, QED_L2_ENTRY_ZERO);
        pos += n << s->cluster_bits;
    }
    if (ret == 0) {
        ret = qed_commit(s, true);
    }
    return ret;
}
