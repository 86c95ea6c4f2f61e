/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The metadata map: where the L1 table and the L2 tables it references lie in
 * the file, so that translation refuses a data reference into a table (a
 * write through it would overwrite the table) and an L1 entry whose table
 * overlaps another, for one binary search per request.
 *
 * Design notes, the aliasing rule (docs/format.md), shared with the repair
 * (qed-check.c) so that what a request refuses is exactly what a repair
 * clears, and the tables are never what goes:
 * - The L1 table is accepted first. Then each L1 entry, in index order, whose
 *   table is valid (aligned, past the header, inside the file) and overlaps
 *   no table accepted before it. Every other nonzero entry is corrupt, also
 *   one that names a table an earlier entry accepted.
 * - A data cluster that overlaps an accepted table is corrupt (one inside
 *   the header area is invalid anyway).
 * - The whole L1 table counts, also entries past image_size: a resize makes
 *   them reachable, and the check walks them, as QEMU's does.
 * The map is the accepted tables sorted by offset, and a bit per L1 entry
 * that says whether its table is one of them. The tables do not overlap and
 * are all table_bytes long, so their ends are sorted too, and the table a
 * byte range runs into is found by one binary search. The map is rebuilt when
 * the L1 table changes wholesale (open, check and repair, compaction) and
 * grows by one when an allocation makes a table (at the end of the file).
 * Building it takes O(n log n) for n nonzero L1 entries and memory of about
 * 40 bytes each, transiently, plus 16 bytes per accepted table.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void qed_meta_free(QedMeta *meta)
{
    g_free(meta->tables);
    g_free(meta->owned);
    memset(meta, 0, sizeof(*meta));
}

static void set_owned(QedMeta *meta, uint32_t l1_index, bool owned)
{
    if (l1_index == QED_META_L1) {
        return;
    }
    uint64_t bit = 1ull << (l1_index % 64);
    if (owned) {
        meta->owned[l1_index / 64] |= bit;
    } else {
        meta->owned[l1_index / 64] &= ~bit;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The index of key in the n sorted keys, or n. */
static size_t find_key(const uint64_t *keys, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && keys[lo] == key ? lo : n;
}

int qed_meta_build(const QedState *s, const uint64_t *l1, uint64_t l1_offset, uint64_t end,
                   QedMeta *meta)
{
    uint64_t tb = s->table_bytes;
    size_t n = 1;
    for (uint32_t i = 0; i < s->table_nelems; i++) {
        n += l1[i] != 0;
    }
    /* Candidates in the order they are accepted: the L1 table, then the
     * valid entries in index order. A table at offset o lies in bucket
     * o / table_bytes; two tables overlap only if their buckets are equal or
     * adjacent, and a bucket holds at most one accepted table. */
    uint64_t *off = g_try_new(uint64_t, n);
    uint32_t *owner = g_try_new(uint32_t, n);
    uint64_t *keys = g_try_new(uint64_t, n);
    QedMetaTable *acc = g_try_new(QedMetaTable, n);
    uint64_t *owned = g_try_new0(uint64_t, s->table_nelems / 64 + 1);
    int ret = 0;
    if (!off || !owner || !keys || !acc || !owned) {
        ret = -ENOMEM;
        goto out;
    }
    size_t m = 0;
    off[m] = l1_offset;
    owner[m++] = QED_META_L1;
    for (uint32_t i = 0; i < s->table_nelems; i++) {
        uint64_t e = l1[i];
        if (e != 0 && qed_offset_into_cluster(s, e) == 0 && e >= s->header_bytes && e <= end &&
            end - e >= tb) {
            off[m] = e;
            owner[m++] = i;
        }
    }
    for (size_t k = 0; k < m; k++) {
        keys[k] = off[k] / tb;
    }
    qsort(keys, m, sizeof(uint64_t), cmp_u64);
    size_t nkeys = 0;
    for (size_t k = 0; k < m; k++) {
        if (nkeys == 0 || keys[nkeys - 1] != keys[k]) {
            keys[nkeys++] = keys[k];
        }
    }
    for (size_t k = 0; k < nkeys; k++) {
        acc[k].offset = UINT64_MAX; /* nothing accepted in this bucket yet */
    }
    for (size_t k = 0; k < m; k++) {
        size_t p = find_key(keys, nkeys, off[k] / tb);
        bool clash = false;
        for (size_t q = p > 0 ? p - 1 : 0; q <= p + 1 && q < nkeys; q++) {
            uint64_t a = acc[q].offset;
            if (a != UINT64_MAX && a < off[k] + tb && off[k] < a + tb) {
                clash = true;
            }
        }
        if (!clash) {
            acc[p] = (QedMetaTable){ .offset = off[k], .owner = owner[k] };
        }
    }
    size_t kept = 0;
    for (size_t k = 0; k < nkeys; k++) {
        if (acc[k].offset != UINT64_MAX) {
            acc[kept++] = acc[k];
        }
    }
    qed_meta_free(meta);
    meta->tables = acc;
    meta->n = kept;
    meta->cap = n;
    meta->owned = owned;
    for (size_t k = 0; k < kept; k++) {
        set_owned(meta, acc[k].owner, true);
    }
    acc = NULL;
    owned = NULL;
out:
    g_free(off);
    g_free(owner);
    g_free(keys);
    g_free(acc);
    g_free(owned);
    return ret;
}

/* The index of the first table that ends after pos. */
static size_t first_ending_after(const QedState *s, const QedMeta *meta, uint64_t pos)
{
    size_t lo = 0, hi = meta->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (meta->tables[mid].offset + s->table_bytes <= pos) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

uint64_t qed_meta_first_overlap(const QedState *s, const QedMeta *meta, uint64_t start,
                                uint64_t len)
{
    size_t i = first_ending_after(s, meta, start);
    if (i < meta->n) {
        uint64_t t = meta->tables[i].offset;
        if (t <= start || t - start < len) {
            return t;
        }
    }
    return UINT64_MAX;
}

int qed_meta_add(const QedState *s, QedMeta *meta, uint64_t offset, uint32_t l1_index)
{
    if (meta->n == meta->cap) {
        size_t cap = MAX(2 * meta->cap, 16);
        QedMetaTable *t = g_try_renew(QedMetaTable, meta->tables, cap);
        if (!t) {
            return -ENOMEM;
        }
        meta->tables = t;
        meta->cap = cap;
    }
    /* New tables go to the end of the file: this is nearly always an append. */
    size_t i = first_ending_after(s, meta, offset);
    memmove(meta->tables + i + 1, meta->tables + i, (meta->n - i) * sizeof(QedMetaTable));
    meta->tables[i] = (QedMetaTable){ .offset = offset, .owner = l1_index };
    meta->n++;
    set_owned(meta, l1_index, true);
    return 0;
}

void qed_meta_remove(const QedState *s, QedMeta *meta, uint64_t offset, uint32_t l1_index)
{
    size_t i = first_ending_after(s, meta, offset);
    if (i < meta->n && meta->tables[i].offset == offset && meta->tables[i].owner == l1_index) {
        memmove(meta->tables + i, meta->tables + i + 1, (meta->n - i - 1) * sizeof(QedMetaTable));
        meta->n--;
        set_owned(meta, l1_index, false);
    }
}

int qed_meta_rebuild_locked(QedState *s)
{
    return qed_meta_build(s, s->l1, s->header.l1_table_offset, s->file_end, &s->meta);
}
