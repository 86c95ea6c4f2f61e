/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Address translation: a virtual range becomes runs of data clusters (with
 * contiguous file offsets), zero clusters, or unallocated clusters, looked up
 * through the in-memory L1 table and the L2 cache.
 *
 * Design notes: an entry that is invalid, or that aliases metadata (an L1
 * entry the metadata map does not give its table, a data cluster inside a
 * table: qed-meta.c), makes the request fail with -EIO, and a run of data
 * stops before the first cluster that does. So a guest write can never land
 * on a table; the check reports such entries and its repair clears them.
 */
#include "qed/qed-internal.h"

#include <errno.h>

typedef enum { KIND_UNALLOC, KIND_ZERO, KIND_DATA } EntryKind;

static EntryKind entry_kind(uint64_t entry)
{
    if (entry == 0) {
        return KIND_UNALLOC;
    }
    if (entry == QED_L2_ENTRY_ZERO) {
        return KIND_ZERO;
    }
    return KIND_DATA;
}

static const QedExtentType extent_type[] = {
    [KIND_UNALLOC] = QED_EXTENT_UNALLOCATED,
    [KIND_ZERO] = QED_EXTENT_ZERO,
    [KIND_DATA] = QED_EXTENT_DATA,
};

int qed_find_cluster(QedState *s, uint64_t pos, uint64_t len, QedExtent *ext)
{
    /* The run never crosses the range of one L2 table. */
    uint64_t table_end = (pos | (qed_l2_coverage(s) - 1)) + 1;
    len = MIN(len, table_end - pos);
    ext->offset = pos;
    ext->file_offset = 0;

    QED_MUTEX_GUARD(&s->lock);
    uint32_t l1_index = qed_l1_index(s, pos);
    uint64_t l2_offset = l1_index < s->l1_nelems ? s->l1[l1_index] : 0;
    if (l2_offset == 0) {
        ext->type = QED_EXTENT_UNALLOCATED;
        ext->length = len;
        return 0;
    }
    if (!qed_table_offset_valid_locked(s, l2_offset) || !qed_meta_owns(&s->meta, l1_index)) {
        return -EIO; /* the image is corrupt: check would clear this entry */
    }
    int ret = 0;
    QedL2Table *t = qed_l2_cache_get_locked(s, l2_offset, &ret);
    if (!t) {
        return ret;
    }

    uint32_t index = qed_l2_index(s, pos);
    uint64_t first = t->entries[index];
    EntryKind kind = entry_kind(first);
    if (kind == KIND_DATA && !qed_cluster_offset_valid_locked(s, first)) {
        ret = -EIO;
        goto out;
    }
    uint64_t in_cluster = qed_offset_into_cluster(s, pos);
    uint64_t run = s->cluster_size - in_cluster;
    /* Extend the run over following entries of the same kind (and, for data,
     * with the next file offset). */
    for (uint32_t i = index + 1; run < len && i < s->table_nelems; i++) {
        uint64_t e = t->entries[i];
        if (entry_kind(e) != kind) {
            break;
        }
        if (kind == KIND_DATA && (e != first + (uint64_t)(i - index) * s->cluster_size ||
                                  !qed_cluster_offset_valid_locked(s, e))) {
            break;
        }
        run += s->cluster_size;
    }
    run = MIN(run, len);
    if (kind == KIND_DATA) {
        /* One search for the whole run: it stops before a table. */
        uint64_t table = qed_meta_first_overlap(s, &s->meta, first, in_cluster + run);
        if (table <= first) {
            ret = -EIO; /* the first cluster lies inside a table */
            goto out;
        }
        if (table != UINT64_MAX) {
            run = table - first - in_cluster;
        }
        ext->file_offset = first + in_cluster;
    }
    ext->type = extent_type[kind];
    ext->length = run;
out:
    qed_l2_cache_put_locked(s, t);
    return ret;
}
