/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The L2 table cache: tables shared by every request, reference counted, and
 * bounded in bytes. Write-through: a change is made here and written to disk
 * by its maker while it holds a reference.
 *
 * Design notes: a table being read from disk is in the cache as a "loading"
 * placeholder, so two readers of one table read it once, and a stale copy can
 * never be inserted behind a newer one that a writer already changed. Only
 * unreferenced tables are evicted, least recently used first; tables in use
 * may push the cache over its budget until they are put.
 * Every function here is called with QedState.lock held.
 */
#include "qed/qed-internal.h"

#include <errno.h>

static void table_free(QedL2Table *t)
{
    g_free(t->dirty);
    g_free(t->entries);
    g_free(t);
}

void qed_l2_cache_init(QedL2Cache *cache, size_t budget)
{
    cache->tables = g_hash_table_new(g_int64_hash, g_int64_equal);
    g_queue_init(&cache->lru);
    cache->bytes = 0;
    cache->budget = budget;
}

void qed_l2_cache_destroy(QedL2Cache *cache)
{
    GHashTableIter iter;
    gpointer value;
    g_hash_table_iter_init(&iter, cache->tables);
    while (g_hash_table_iter_next(&iter, NULL, &value)) {
        table_free(value);
    }
    g_hash_table_destroy(cache->tables);
    g_queue_clear(&cache->lru);
}

static void evict_locked(QedState *s)
{
    QedL2Cache *c = &s->l2_cache;
    while (c->bytes > c->budget && !g_queue_is_empty(&c->lru)) {
        QedL2Table *t = g_queue_pop_tail(&c->lru);
        t->lru_link = NULL;
        g_hash_table_remove(c->tables, &t->offset);
        c->bytes -= s->table_bytes;
        table_free(t);
    }
}

void qed_l2_cache_ref_locked(QedState *s, QedL2Table *t)
{
    if (t->lru_link) {
        g_queue_delete_link(&s->l2_cache.lru, t->lru_link);
        t->lru_link = NULL;
    }
    t->ref++;
}

static QedL2Table *insert_locked(QedState *s, uint64_t offset, bool zeroed)
{
    QedL2Table *t = g_try_new0(QedL2Table, 1);
    if (!t) {
        return NULL;
    }
    t->entries = zeroed ? g_try_malloc0(s->table_bytes) : g_try_malloc(s->table_bytes);
    if (!t->entries) {
        g_free(t);
        return NULL;
    }
    t->offset = offset;
    t->ref = 1;
    g_hash_table_insert(s->l2_cache.tables, &t->offset, t);
    s->l2_cache.bytes += s->table_bytes;
    return t;
}

QedL2Table *qed_l2_cache_get_locked(QedState *s, uint64_t offset, int *err)
{
    QedL2Table *t = g_hash_table_lookup(s->l2_cache.tables, &offset);
    if (t) {
        qed_l2_cache_ref_locked(s, t);
        while (t->loading) {
            pthread_cond_wait(&s->l2_loaded, &s->lock);
        }
        if (t->load_error) {
            *err = t->load_error;
            qed_l2_cache_put_locked(s, t);
            return NULL;
        }
        return t;
    }

    t = insert_locked(s, offset, false);
    if (!t) {
        *err = -ENOMEM;
        return NULL;
    }
    t->loading = true;
    pthread_mutex_unlock(&s->lock);
    int ret = qed_read_l2(s, offset, t->entries);
    pthread_mutex_lock(&s->lock);
    t->loading = false;
    pthread_cond_broadcast(&s->l2_loaded);
    if (ret < 0) {
        t->load_error = ret;
        *err = ret;
        qed_l2_cache_invalidate_locked(s, t);
        qed_l2_cache_put_locked(s, t);
        return NULL;
    }
    return t;
}

QedL2Table *qed_l2_cache_new_locked(QedState *s, uint64_t offset)
{
    QedL2Table *old = g_hash_table_lookup(s->l2_cache.tables, &offset);
    if (old) {
        /* A table that was cached at this offset before (a leaked cluster
         * being reused): it is stale now. */
        qed_l2_cache_invalidate_locked(s, old);
    }
    return insert_locked(s, offset, true);
}

void qed_l2_cache_put_locked(QedState *s, QedL2Table *t)
{
    g_assert(t->ref > 0);
    if (--t->ref > 0) {
        return;
    }
    if (g_hash_table_lookup(s->l2_cache.tables, &t->offset) != t) {
        table_free(t); /* invalidated while in use */
        return;
    }
    g_queue_push_head(&s->l2_cache.lru, t);
    t->lru_link = s->l2_cache.lru.head;
    evict_locked(s);
}

void qed_l2_cache_invalidate_locked(QedState *s, QedL2Table *t)
{
    if (g_hash_table_lookup(s->l2_cache.tables, &t->offset) != t) {
        return;
    }
    g_hash_table_remove(s->l2_cache.tables, &t->offset);
    s->l2_cache.bytes -= s->table_bytes;
    if (t->lru_link) {
        g_queue_delete_link(&s->l2_cache.lru, t->lru_link);
        t->lru_link = NULL;
        table_free(t);
    }
}
