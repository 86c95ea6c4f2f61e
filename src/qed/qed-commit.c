/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The commit queue: the only code that writes L2 and L1 sectors while
 * requests run. An allocation changes entries in the cached table and
 * queues the table with the write units it dirtied; a flush, a FUA write, a
 * full queue or a job that needs the disk to match memory commits them.
 *
 * Design notes (group commit):
 * - Changes join the open batch (QedCommit.gen). One leader at a time takes
 *   the batch, copies its dirty units under the lock, opens a new batch and
 *   writes the copies without the lock; a caller that finds a leader at work
 *   waits for it, and leads the next batch if its own changes were not in
 *   this one. So concurrent flushes and FUA writes share one metadata write
 *   per sector and one fdatasync, and a sector's older copy can never land
 *   after a newer one: its writes are in batch order, one batch at a time.
 * - The order of one batch, which keeps every crash state consistent (leaks
 *   at most; see also qed-alloc.c):
 *   1. NEED_CHECK is set and durable (allocators set it before they write,
 *      so this is only a check).
 *   2. One flush when an entry of the batch needs its cluster's data durable
 *      first (copy-on-write from a backing file: an entry that landed before
 *      its data would show zeros where the backing file's data was), or
 *      when an entry points past the length made durable so far (QEMU calls a
 *      cluster past the end of the file a corruption).
 *   3. New tables whole, and the dirty units of the others.
 *   4. The L1 entries of the new tables. A new table that is not yet written
 *      (created after the batch was taken) is written as 0 in the L1 sector,
 *      and its entry goes with the next batch. In a container of fixed length
 *      a flush comes first: there a new table's space may hold old bytes.
 *   5. With a flush asked for, fdatasync.
 * - A write request returns once its data is written and its entries are in
 *   the cached table: like the data, they are durable after the next flush.
 * - A failed commit leaves the disk unknown: the handle fails (BlkDev.failed)
 *   and every later write and flush is refused until the image is reopened;
 *   the check then finds leaks at most.
 */
#include "qed/qed-internal.h"

#include <errno.h>
#include <string.h>

/* One write of a batch. */
typedef struct CommitWrite {
    uint64_t offset;
    uint64_t len;
    uint8_t *buf;
    BlkTag tag;
} CommitWrite;

void qed_commit_init(QedState *s)
{
    QedCommit *c = &s->commit;
    c->tables = g_ptr_array_new();
    c->l1_dirty = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    c->gen = 1;
    c->written = c->durable = 0;
    c->unit = MAX(s->file->request_align, 512u);
    if (c->unit > s->table_bytes) {
        c->unit = (uint32_t)s->table_bytes;
    }
}

void qed_commit_destroy(QedState *s)
{
    QedCommit *c = &s->commit;
    if (!c->tables) {
        return;
    }
    /* (Close committed everything; after a failure the queue is dropped.) */
    for (guint i = 0; i < c->tables->len; i++) {
        QedL2Table *t = g_ptr_array_index(c->tables, i);
        t->queued = false;
        qed_l2_cache_put_locked(s, t);
    }
    g_ptr_array_unref(c->tables);
    g_array_unref(c->l1_dirty);
    c->tables = NULL;
    c->l1_dirty = NULL;
}

static uint64_t units_of(const QedState *s)
{
    return s->table_bytes / s->commit.unit;
}

static void queue_table_locked(QedState *s, QedL2Table *t)
{
    QedCommit *c = &s->commit;
    if (!t->dirty) {
        t->dirty = g_new0(uint64_t, (units_of(s) + 63) / 64);
    }
    if (!t->queued) {
        t->queued = true;
        qed_l2_cache_ref_locked(s, t);
        g_ptr_array_add(c->tables, t);
    }
    s->last_change_us = g_get_monotonic_time();
}

bool qed_commit_queue_locked(QedState *s, QedL2Table *t, uint32_t first, uint32_t count,
                             bool data_first)
{
    QedCommit *c = &s->commit;
    queue_table_locked(s, t);
    uint64_t per_unit = c->unit / sizeof(uint64_t);
    for (uint64_t u = first / per_unit; u <= (first + count - 1) / per_unit; u++) {
        t->dirty[u / 64] |= 1ull << (u % 64);
    }
    c->data_first |= data_first;
    /* Write back when the queued tables alone fill the cache: they cannot
     * be evicted until written. (At half the cache, random writes over
     * more tables than that cost about one metadata write each: W8.) */
    return (uint64_t)c->tables->len * s->table_bytes > s->l2_cache.budget;
}

void qed_commit_new_table_locked(QedState *s, QedL2Table *t, uint32_t l1_index)
{
    t->unwritten = true;
    queue_table_locked(s, t);
    g_array_append_val(s->commit.l1_dirty, l1_index);
}

int qed_flush_file(QedState *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t length = s->length_set;
    pthread_mutex_unlock(&s->lock);
    int ret = blk_flush(s->file);
    if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        /* (A trim, under maint exclusive, only lowers both lengths.) */
        s->length_durable = MAX(s->length_durable, MIN(length, s->length_set));
        pthread_mutex_unlock(&s->lock);
    }
    return ret;
}

/* Adds to w the writes of t's dirty units (all of t when it is new) and
 * clears them. */
static void take_table_locked(QedState *s, QedL2Table *t, GArray *w)
{
    uint64_t unit = s->commit.unit;
    uint64_t per_unit = unit / sizeof(uint64_t);
    uint64_t nunits = units_of(s);
    if (t->unwritten) {
        CommitWrite cw = { t->offset, s->table_bytes, g_malloc(s->table_bytes), BLK_TAG_L2 };
        qed_entries_to_le(cw.buf, t->entries, s->table_nelems);
        g_array_append_val(w, cw);
        memset(t->dirty, 0, (nunits + 63) / 64 * sizeof(uint64_t));
        return;
    }
    for (uint64_t u = 0; u < nunits;) {
        if (!t->dirty[u / 64]) {
            u = (u / 64 + 1) * 64;
            continue;
        }
        if (!(t->dirty[u / 64] & (1ull << (u % 64)))) {
            u++;
            continue;
        }
        uint64_t end = u;
        while (end < nunits && (t->dirty[end / 64] & (1ull << (end % 64)))) {
            t->dirty[end / 64] &= ~(1ull << (end % 64));
            end++;
        }
        CommitWrite cw = { t->offset + u * unit, (end - u) * unit, NULL, BLK_TAG_L2 };
        cw.buf = g_malloc(cw.len);
        qed_entries_to_le(cw.buf, t->entries + u * per_unit, (end - u) * per_unit);
        g_array_append_val(w, cw);
        u = end;
    }
}

static gint cmp_u32(gconstpointer a, gconstpointer b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The L1 units holding the entries of l1 (sorted), as in memory but with
 * the entries of tables not yet written as 0. */
static void take_l1_locked(QedState *s, GArray *l1, GArray *w)
{
    uint64_t per_unit = s->commit.unit / sizeof(uint64_t);
    uint64_t last = UINT64_MAX;
    for (guint i = 0; i < l1->len; i++) {
        uint64_t u = g_array_index(l1, uint32_t, i) / per_unit;
        if (u == last) {
            continue;
        }
        last = u;
        uint64_t first = u * per_unit;
        uint64_t n = MIN(per_unit, s->table_nelems - first);
        CommitWrite cw = { s->header.l1_table_offset + first * sizeof(uint64_t),
                           n * sizeof(uint64_t), g_malloc(n * sizeof(uint64_t)), BLK_TAG_L1 };
        for (uint64_t j = 0; j < n; j++) {
            uint64_t e = s->l1[first + j];
            if (e != 0) {
                QedL2Table *t = g_hash_table_lookup(s->l2_cache.tables, &e);
                if (t && t->unwritten) {
                    e = 0;
                }
            }
            qed_entries_to_le(cw.buf + j * sizeof(uint64_t), &e, 1);
        }
        g_array_append_val(w, cw);
    }
}

static int write_all(QedState *s, GArray *w)
{
    for (guint i = 0; i < w->len; i++) {
        CommitWrite *cw = &g_array_index(w, CommitWrite, i);
        int ret = blk_pwrite(s->file, cw->buf, cw->len, cw->offset, cw->tag);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

static void free_writes(GArray *w)
{
    for (guint i = 0; i < w->len; i++) {
        g_free(g_array_index(w, CommitWrite, i).buf);
    }
    g_array_set_size(w, 0);
}

/* Writes one batch; with flush, ends with an fdatasync. Called by the
 * leader, with lock held (dropped across the I/O). */
static int lead_locked(QedState *s, bool flush)
{
    QedCommit *c = &s->commit;
    GPtrArray *tables = c->tables;
    GArray *l1 = c->l1_dirty;
    bool data_first = c->data_first;
    c->tables = g_ptr_array_new();
    c->l1_dirty = g_array_new(FALSE, FALSE, sizeof(uint32_t));
    c->data_first = false;

    GArray *w = g_array_new(FALSE, FALSE, sizeof(CommitWrite));
    bool new_tables = false;
    for (guint i = 0; i < tables->len; i++) {
        QedL2Table *t = g_ptr_array_index(tables, i);
        t->queued = false;
        new_tables |= t->unwritten;
        take_table_locked(s, t, w);
    }
    bool need_check = s->header.features & QED_F_NEED_CHECK;
    bool short_length = s->length_durable < s->file_end;
    pthread_mutex_unlock(&s->lock);

    int ret = 0;
    bool work = w->len > 0 || l1->len > 0;
    if (work && !need_check) {
        ret = qed_set_need_check(s); /* (flushes) */
    } else if (work && (data_first || short_length)) {
        ret = qed_flush_file(s);
    }
    if (ret == 0) {
        ret = write_all(s, w);
    }
    free_writes(w);
    if (ret == 0 && l1->len > 0) {
        if (new_tables && s->file->fixed_length) {
            ret = qed_flush_file(s);
        }
        pthread_mutex_lock(&s->lock);
        for (guint i = 0; i < tables->len; i++) {
            ((QedL2Table *)g_ptr_array_index(tables, i))->unwritten = false;
        }
        g_array_sort(l1, cmp_u32);
        take_l1_locked(s, l1, w);
        pthread_mutex_unlock(&s->lock);
        if (ret == 0) {
            ret = write_all(s, w);
        }
        free_writes(w);
    } else if (ret == 0) {
        pthread_mutex_lock(&s->lock);
        for (guint i = 0; i < tables->len; i++) {
            ((QedL2Table *)g_ptr_array_index(tables, i))->unwritten = false;
        }
        pthread_mutex_unlock(&s->lock);
    }
    if (ret == 0 && flush) {
        ret = qed_flush_file(s);
    }
    g_array_unref(w);
    g_array_unref(l1);

    pthread_mutex_lock(&s->lock);
    for (guint i = 0; i < tables->len; i++) {
        qed_l2_cache_put_locked(s, g_ptr_array_index(tables, i));
    }
    g_ptr_array_unref(tables);
    return ret;
}

int qed_commit(QedState *s, bool flush)
{
    QedCommit *c = &s->commit;
    pthread_mutex_lock(&s->lock);
    uint64_t mine = c->gen;
    int ret = 0;
    for (;;) {
        if (c->error) {
            ret = -EIO; /* (the commit that failed returned its own error) */
            break;
        }
        if ((flush ? c->durable : c->written) >= mine) {
            break;
        }
        if (!flush && c->tables->len == 0 && c->l1_dirty->len == 0 && !c->busy) {
            break; /* nothing of ours (or anyone's) is queued */
        }
        if (c->busy) {
            pthread_cond_wait(&s->changed, &s->lock);
            continue;
        }
        c->busy = true;
        uint64_t batch = c->gen++;
        ret = lead_locked(s, flush);
        c->busy = false;
        if (ret < 0) {
            c->error = ret;
            blk_set_failed(s->file);
            pthread_cond_broadcast(&s->changed);
            break;
        } else {
            c->written = batch;
            if (flush) {
                c->durable = batch;
            }
        }
        pthread_cond_broadcast(&s->changed);
    }
    pthread_mutex_unlock(&s->lock);
    return ret;
}
