/*
 * Consistency check and repair: every table and data offset must be valid and
 * referenced once; clusters nobody references are leaks.
 *
 * Design notes: the check streams the tables straight from disk (not through
 * the L2 cache) and keeps one bit per cluster of the file, so its memory is
 * bounded by the file size / cluster size / 8 plus one table. Repair clears
 * invalid and duplicate entries (rewriting the table) and cuts leaked
 * clusters off the end of the file. A cleared entry reads as unallocated.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <string.h>

typedef struct CheckState {
    QedState *s;
    unsigned fix;
    QedCheckResult *res;
    uint8_t *used;       /* one bit per cluster of the file */
    uint64_t nclusters;  /* clusters covered by used */
    uint64_t last_data;  /* file offset of the previous data cluster, for fragmentation */
} CheckState;

static bool test_and_mark(CheckState *c, uint64_t offset, uint64_t n)
{
    uint64_t first = offset / c->s->cluster_size;
    for (uint64_t i = first; i < first + n; i++) {
        if (c->used[i / 8] & (1u << (i % 8))) {
            return false;
        }
    }
    for (uint64_t i = first; i < first + n; i++) {
        c->used[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    return true;
}

/* Checks the entries of one L2 table; returns how many it cleared. */
static uint32_t check_l2(CheckState *c, uint64_t *entries)
{
    QedState *s = c->s;
    uint32_t cleared = 0;
    for (uint32_t j = 0; j < s->table_nelems; j++) {
        uint64_t e = entries[j];
        if (e == 0 || e == QED_L2_ENTRY_ZERO) {
            continue;
        }
        if (!qed_cluster_offset_valid_locked(s, e) || !test_and_mark(c, e, 1)) {
            c->res->corruptions++;
            if (c->fix & QED_CHECK_FIX_ERRORS) {
                entries[j] = 0;
                cleared++;
            }
            continue;
        }
        c->res->allocated_clusters++;
        if (c->last_data && e != c->last_data + s->cluster_size) {
            c->res->fragmented_clusters++;
        }
        c->last_data = e;
    }
    return cleared;
}

static int write_table(QedState *s, uint64_t offset, uint64_t *entries, uint64_t bytes,
                       BlkTag tag)
{
    uint64_t n = bytes / sizeof(uint64_t);
    for (uint64_t i = 0; i < n; i++) {
        entries[i] = GUINT64_TO_LE(entries[i]);
    }
    int ret = blk_pwrite(s->file, entries, bytes, offset, tag);
    for (uint64_t i = 0; i < n; i++) {
        entries[i] = GUINT64_FROM_LE(entries[i]);
    }
    return ret;
}

/* Called with alloc_lock held and no request in flight that changes metadata. */
static int check_locked(QedState *s, unsigned fix, QedCheckResult *res)
{
    CheckState c = { .s = s, .fix = fix, .res = res };
    c.nclusters = s->file_end / s->cluster_size;
    c.used = g_try_malloc0(c.nclusters / 8 + 1);
    uint64_t *l1 = g_try_malloc(s->table_bytes);
    uint64_t *l2 = g_try_malloc(s->table_bytes);
    int ret = 0;
    if (!c.used || !l1 || !l2) {
        ret = -ENOMEM;
        goto out;
    }
    res->total_clusters = (s->header.image_size + s->cluster_size - 1) / s->cluster_size;
    test_and_mark(&c, 0, s->header.header_size);
    test_and_mark(&c, s->header.l1_table_offset, s->header.table_size);

    ret = blk_pread(s->file, l1, s->table_bytes, s->header.l1_table_offset);
    if (ret < 0) {
        res->check_errors++;
        goto out;
    }
    bool l1_dirty = false;
    for (uint32_t i = 0; i < s->table_nelems; i++) {
        uint64_t e = GUINT64_FROM_LE(l1[i]);
        l1[i] = e;
        if (e == 0) {
            continue;
        }
        if (!qed_table_offset_valid_locked(s, e) ||
            !test_and_mark(&c, e, s->header.table_size)) {
            res->corruptions++;
            if (fix & QED_CHECK_FIX_ERRORS) {
                l1[i] = 0;
                l1_dirty = true;
                res->corruptions_fixed++;
            }
            continue;
        }
        if (qed_read_l2(s, e, l2) < 0) {
            res->check_errors++;
            continue;
        }
        uint32_t cleared = check_l2(&c, l2);
        if (cleared > 0) {
            ret = write_table(s, e, l2, s->table_bytes, BLK_TAG_L2);
            if (ret < 0) {
                goto out;
            }
            res->corruptions_fixed += cleared;
        }
    }
    if (l1_dirty) {
        ret = write_table(s, s->header.l1_table_offset, l1, s->table_bytes, BLK_TAG_L1);
        if (ret < 0) {
            goto out;
        }
    }

    uint64_t last_used = 0;
    for (uint64_t i = 0; i < c.nclusters; i++) {
        if (c.used[i / 8] & (1u << (i % 8))) {
            last_used = i;
        } else {
            res->leaks++;
        }
    }
    res->image_end_offset = (last_used + 1) * s->cluster_size;

    if ((fix & QED_CHECK_FIX_LEAKS) && res->image_end_offset < s->file_end) {
        /* Leaks at the end of the file: cut them off. Tables written above
         * must reach the disk before the clusters they dropped can go. */
        ret = blk_flush(s->file);
        if (ret == 0) {
            ret = blk_truncate(s->file, res->image_end_offset);
        }
        if (ret < 0) {
            goto out;
        }
        res->leaks_fixed = (s->file_end - res->image_end_offset) / s->cluster_size;
        pthread_mutex_lock(&s->lock);
        s->file_end = res->image_end_offset;
        pthread_mutex_unlock(&s->lock);
    }
    if (res->corruptions_fixed > 0) {
        /* The in-memory view must follow the tables just rewritten. */
        pthread_mutex_lock(&s->lock);
        memcpy(s->l1, l1, (size_t)s->l1_nelems * sizeof(uint64_t));
        GList *tables = g_hash_table_get_values(s->l2_cache.tables);
        for (GList *l = tables; l; l = l->next) {
            qed_l2_cache_invalidate_locked(s, l->data);
        }
        g_list_free(tables);
        pthread_mutex_unlock(&s->lock);
    }
    ret = blk_flush(s->file);
out:
    g_free(c.used);
    g_free(l1);
    g_free(l2);
    return ret;
}

int qed_check_repair(QedState *s, GError **errp)
{
    QedCheckResult res = { 0 };
    pthread_mutex_lock(&s->alloc_lock);
    int ret = check_locked(s, QED_CHECK_FIX_ERRORS | QED_CHECK_FIX_LEAKS, &res);
    if (ret == 0 && (res.check_errors > 0 || res.corruptions > res.corruptions_fixed)) {
        ret = -EIO;
    }
    if (ret < 0) {
        pthread_mutex_unlock(&s->alloc_lock);
        g_set_error(errp, QED_ERROR, -ret, "Image corrupted");
        return ret;
    }
    /* Consistent again: make every cluster whole (a crash can leave the last
     * one sticking out past the end of the file), and the mark can go. */
    ret = qed_mark_clean_locked(s);
    pthread_mutex_unlock(&s->alloc_lock);
    if (ret < 0) {
        g_set_error(errp, QED_ERROR, -ret, "Failed to update header");
    }
    return ret;
}

int qed_find_image_end(QedState *s)
{
    QedCheckResult res = { 0 };
    pthread_mutex_lock(&s->alloc_lock);
    int ret = check_locked(s, 0, &res);
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        s->file_end = res.image_end_offset;
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&s->alloc_lock);
    return ret;
}

int qed_driver_check(QedImage *img, unsigned fix, QedCheckResult *res, GError **errp)
{
    QedState *s = qed_state(img);
    pthread_mutex_lock(&s->alloc_lock);
    int ret = check_locked(s, fix, res);
    pthread_mutex_unlock(&s->alloc_lock);
    if (ret < 0) {
        return image_error(img, errp, ret, "check failed");
    }
    return 0;
}
