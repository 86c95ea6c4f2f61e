/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of the QED driver's internals that parallel allocation rests
 * on: the in-flight range set (qed-inflight.c, qed_range_take/give), the
 * commit queue (qed-commit.c: group commit, one write per dirty unit and
 * batch, a failed commit failing the handle) and the L2 cache
 * (qed-l2-cache.c: eviction of unreferenced, unqueued tables only, within
 * the budget). They drive a real image on an in-memory device and look at
 * the driver state and at the requests the device saw.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk.h"
#include "image.h"
#include "qed/qed-internal.h"

#define KiB 1024u
#define MiB (1024u * 1024)
#define CLUSTER (4 * KiB)
#define TABLE_SPAN (4 * MiB) /* 4 KiB clusters, table_size 2: 1024 entries */

/* ------------------------------------------------------------ the device */

/* A device whose flushes take a while (the time a disk's takes), so that
 * concurrent flushers find a flush in progress. It passes everything to
 * inner (owned). */
typedef struct SlowDev {
    BlkDev dev;
    BlkDev *inner;
    unsigned flush_us;
} SlowDev;

static int slow_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset)
{
    return blk_pread(((SlowDev *)dev)->inner, buf, len, offset);
}
static int slow_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag)
{
    return blk_pwrite(((SlowDev *)dev)->inner, buf, len, offset, tag);
}
static int slow_flush(BlkDev *dev)
{
    g_usleep(((SlowDev *)dev)->flush_us);
    return blk_flush(((SlowDev *)dev)->inner);
}
static int64_t slow_get_length(BlkDev *dev)
{
    return blk_get_length(((SlowDev *)dev)->inner);
}
static int slow_truncate(BlkDev *dev, uint64_t length)
{
    return blk_truncate(((SlowDev *)dev)->inner, length);
}
static int slow_punch(BlkDev *dev, uint64_t offset, uint64_t len)
{
    return blk_punch_zeroes(((SlowDev *)dev)->inner, offset, len);
}
static int slow_allocate(BlkDev *dev, uint64_t offset, uint64_t len)
{
    return blk_allocate(((SlowDev *)dev)->inner, offset, len);
}
static void slow_close(BlkDev *dev)
{
    blk_close(((SlowDev *)dev)->inner);
    g_free(dev);
}
static const BlkOps slow_ops = {
    .name = "slow",
    .pread = slow_pread,
    .pwrite = slow_pwrite,
    .flush = slow_flush,
    .get_length = slow_get_length,
    .truncate = slow_truncate,
    .punch_zeroes = slow_punch,
    .allocate = slow_allocate,
    .close = slow_close,
};
static BlkDev *slow_new(BlkDev *inner, unsigned flush_us)
{
    SlowDev *d = g_new0(SlowDev, 1);
    blk_init(&d->dev, &slow_ops, inner->filename, false);
    d->inner = inner;
    d->flush_us = flush_us;
    return &d->dev;
}

/* A fresh image (4 KiB clusters, table_size 2) of size bytes as bytes. */
static GBytes *new_image(uint64_t size)
{
    g_autofree char *path = tu_path("internals.qed");
    QedCreateOptions co = { .size = size, .cluster_size = CLUSTER, .table_size = 2 };
    TU_OK(qed_create(path, &co, &tu_err));
    return tu_file_bytes(path);
}

static QedImage *open_dev(BlkDev *dev)
{
    GError *err = NULL;
    QedImage *img = image_open_blk(dev, "internals.qed", "qed", QED_OPEN_NO_BACKING, &err);
    g_assert_no_error(err);
    return img;
}

/* ---------------------------------------------------- the in-flight set */

/* The set against a bitmap model: half-open ranges, edges that touch do
 * not overlap, every byte inside does. */
static void test_inflight_edges(void)
{
    QedInflight f;
    qed_inflight_init(&f);
    qed_inflight_add_locked(&f, 4096, 8192);
    g_assert_false(qed_inflight_overlaps_locked(&f, 0, 4096));     /* ends where it starts */
    g_assert_false(qed_inflight_overlaps_locked(&f, 8192, 12288)); /* starts where it ends */
    g_assert_true(qed_inflight_overlaps_locked(&f, 0, 4097));
    g_assert_true(qed_inflight_overlaps_locked(&f, 8191, 8192));
    g_assert_true(qed_inflight_overlaps_locked(&f, 4096, 4097));
    g_assert_true(qed_inflight_overlaps_locked(&f, 5000, 6000));  /* inside */
    g_assert_true(qed_inflight_overlaps_locked(&f, 0, 1u << 30)); /* around */
    /* Neighbours on both sides may be added. */
    qed_inflight_add_locked(&f, 8192, 12288);
    qed_inflight_add_locked(&f, 0, 4096);
    g_assert_cmpuint(qed_inflight_count_locked(&f), ==, 3);
    qed_inflight_remove_locked(&f, 4096, 8192);
    g_assert_cmpuint(qed_inflight_count_locked(&f), ==, 2);
    g_assert_false(qed_inflight_overlaps_locked(&f, 4096, 8192));
    g_assert_true(qed_inflight_overlaps_locked(&f, 4095, 8193));
    qed_inflight_remove_locked(&f, 0, 4096);
    qed_inflight_remove_locked(&f, 8192, 12288);
    g_assert_cmpuint(qed_inflight_count_locked(&f), ==, 0);
    g_assert_false(qed_inflight_overlaps_locked(&f, 0, UINT64_MAX));

    /* Random adds and removes against a model of 64 units. */
    GRand *rand = g_rand_new_with_seed(7);
    uint64_t owner[64] = { 0 }; /* 1 + index of the range, or 0 */
    QedRange held[64];
    int nheld = 0;
    for (int step = 0; step < 20000; step++) {
        uint64_t a = (uint64_t)g_rand_int_range(rand, 0, 64);
        uint64_t b = a + (uint64_t)g_rand_int_range(rand, 1, (gint32)(65 - a));
        bool model = false;
        for (uint64_t u = a; u < b; u++) {
            model |= owner[u] != 0;
        }
        g_assert_cmpint(qed_inflight_overlaps_locked(&f, a * 512, b * 512), ==, model);
        if (!model && nheld < 64 && g_rand_boolean(rand)) {
            qed_inflight_add_locked(&f, a * 512, b * 512);
            held[nheld++] = (QedRange){ a, b };
            for (uint64_t u = a; u < b; u++) {
                owner[u] = 1;
            }
        } else if (nheld > 0 && g_rand_int_range(rand, 0, 3) == 0) {
            int k = g_rand_int_range(rand, 0, nheld);
            qed_inflight_remove_locked(&f, held[k].start * 512, held[k].end * 512);
            for (uint64_t u = held[k].start; u < held[k].end; u++) {
                owner[u] = 0;
            }
            held[k] = held[--nheld];
        }
        g_assert_cmpuint(qed_inflight_count_locked(&f), ==, (guint)nheld);
    }
    g_rand_free(rand);
    qed_inflight_destroy(&f);
}

typedef struct TakeJob {
    QedState *s;
    uint64_t start, end;
    gint done;
    gint *inside; /* per 512-byte unit: threads holding it (exclusion check) */
    int id;
} TakeJob;

static gpointer take_main(gpointer data)
{
    TakeJob *j = data;
    qed_range_take(j->s, j->start, j->end);
    g_atomic_int_set(&j->done, 1);
    return NULL;
}

/* Many threads take random ranges; no two ever hold one unit at once. */
static gpointer hammer_main(gpointer data)
{
    TakeJob *j = data;
    GRand *rand = g_rand_new_with_seed((guint32)j->id);
    for (int n = 0; n < 2000; n++) {
        uint64_t a = (uint64_t)g_rand_int_range(rand, 0, 32);
        uint64_t b = a + (uint64_t)g_rand_int_range(rand, 1, (gint32)MIN(9, 33 - a));
        qed_range_take(j->s, a * 512, b * 512);
        for (uint64_t u = a; u < b; u++) {
            g_assert_cmpint(g_atomic_int_add(&j->inside[u], 1), ==, 0);
        }
        for (uint64_t u = a; u < b; u++) {
            g_atomic_int_add(&j->inside[u], -1);
        }
        qed_range_give(j->s, a * 512, b * 512);
    }
    g_rand_free(rand);
    return NULL;
}

static void test_range_take_give_threads(void)
{
    GBytes *base = new_image(16 * MiB);
    QedImage *img = open_dev(
        blk_mem_new("internals.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base)));
    QedState *s = qed_state(img);

    qed_range_take(s, 0, 8192);
    /* An overlapping taker waits; a disjoint one, also touching, does not. */
    TakeJob over = { .s = s, .start = 4096, .end = 12288 };
    TakeJob beside = { .s = s, .start = 8192, .end = 16384 };
    GThread *t1 = g_thread_new("over", take_main, &over);
    GThread *t2 = g_thread_new("beside", take_main, &beside);
    g_thread_join(t2);
    g_assert_true(g_atomic_int_get(&beside.done));
    g_usleep(50000);
    g_assert_false(g_atomic_int_get(&over.done));
    qed_range_give(s, 8192, 16384);
    g_usleep(20000);
    g_assert_false(g_atomic_int_get(&over.done)); /* still overlaps [0, 8192) */
    qed_range_give(s, 0, 8192);
    g_thread_join(t1);
    g_assert_true(g_atomic_int_get(&over.done));
    pthread_mutex_lock(&s->lock);
    g_assert_cmpuint(qed_inflight_count_locked(&s->inflight), ==, 1);
    pthread_mutex_unlock(&s->lock);
    qed_range_give(s, 4096, 12288);

    gint inside[32] = { 0 };
    TakeJob jobs[8];
    GThread *t[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (TakeJob){ .s = s, .inside = inside, .id = i };
        t[i] = g_thread_new("hammer", hammer_main, &jobs[i]);
    }
    for (int i = 0; i < 8; i++) {
        g_thread_join(t[i]);
    }
    pthread_mutex_lock(&s->lock);
    g_assert_cmpuint(qed_inflight_count_locked(&s->inflight), ==, 0);
    pthread_mutex_unlock(&s->lock);
    TU_OK(qed_close(img, &tu_err));
    g_bytes_unref(base);
}

/* ------------------------------------------------------ the commit queue */

#define NFLUSHERS 16

/* A reusable barrier on pthreads (which TSan sees). */
typedef struct Barrier {
    pthread_mutex_t m;
    pthread_cond_t c;
    int n, waiting;
    unsigned gen;
} Barrier;

typedef struct FlushJob {
    QedImage *img;
    int id;
    Barrier *barrier;
} FlushJob;

static void barrier_wait(Barrier *b)
{
    pthread_mutex_lock(&b->m);
    unsigned gen = b->gen;
    if (++b->waiting == b->n) {
        b->waiting = 0;
        b->gen++;
        pthread_cond_broadcast(&b->c);
    } else {
        while (gen == b->gen) {
            pthread_cond_wait(&b->c, &b->m);
        }
    }
    pthread_mutex_unlock(&b->m);
}

static gpointer flusher_main(gpointer data)
{
    FlushJob *j = data;
    /* Each allocates a cluster of its own in the first table (so all
     * entries share an L2 sector or two), then all flush at once. */
    barrier_wait(j->barrier);
    tu_write_byte(j->img, (uint8_t)(j->id + 1), CLUSTER, (uint64_t)j->id * 2 * CLUSTER);
    barrier_wait(j->barrier);
    TU_OK(qed_flush(j->img, &tu_err));
    return NULL;
}

/* Between two flushes of the log (one batch of commits that flush), no
 * metadata sector is written twice: every dirty unit once per batch, so no
 * older copy of a sector can land after a newer one. Returns the flushes. */
static uint64_t check_once_per_batch(BlkDev *log, size_t from)
{
    GHashTable *seen = g_hash_table_new(g_int64_hash, g_int64_equal);
    size_t total = blk_log_count(log);
    uint64_t *keys = g_new(uint64_t, total * 16 + 1);
    size_t nkeys = 0;
    uint64_t flushes = 0;
    for (size_t i = from; i < total; i++) {
        const BlkLogOp *op = blk_log_op(log, i);
        if (op->kind == BLK_LOG_FLUSH) {
            g_hash_table_remove_all(seen);
            nkeys = 0;
            flushes++;
            continue;
        }
        if (op->kind != BLK_LOG_WRITE || (op->tag != BLK_TAG_L1 && op->tag != BLK_TAG_L2)) {
            continue;
        }
        for (uint64_t off = op->offset; off < op->offset + op->len; off += 512) {
            if (g_hash_table_contains(seen, &off)) {
                g_error("log op %zu: %s sector at %#" G_GINT64_MODIFIER
                        "x written twice in one batch",
                        i, op->tag == BLK_TAG_L1 ? "L1" : "L2", off);
            }
            g_assert_cmpuint(nkeys, <, total * 16 + 1);
            keys[nkeys] = off;
            g_hash_table_add(seen, &keys[nkeys++]);
        }
    }
    g_hash_table_destroy(seen);
    g_free(keys);
    return flushes;
}

static void test_commit_group_flush(void)
{
    GBytes *base = new_image(16 * MiB);
    BlkDev *inner = blk_mem_new("internals.qed", g_bytes_get_data(base, NULL),
                                g_bytes_get_size(base));
    BlkDev *log = blk_log_new(inner);
    QedImage *img = open_dev(slow_new(log, 30000));
    QedState *s = qed_state(img);
    Barrier barrier = { .n = NFLUSHERS };
    pthread_mutex_init(&barrier.m, NULL);
    pthread_cond_init(&barrier.c, NULL);

    /* NEED_CHECK once, before counting. */
    tu_write_byte(img, 0xee, CLUSTER, 64 * CLUSTER);
    TU_OK(qed_flush(img, &tu_err));
    size_t from = blk_log_count(log);
    BlkStats before, after;
    blk_get_stats(log, &before);

    FlushJob jobs[NFLUSHERS];
    GThread *t[NFLUSHERS];
    for (int i = 0; i < NFLUSHERS; i++) {
        jobs[i] = (FlushJob){ .img = img, .id = i, .barrier = &barrier };
        t[i] = g_thread_new("flusher", flusher_main, &jobs[i]);
    }
    for (int i = 0; i < NFLUSHERS; i++) {
        g_thread_join(t[i]);
    }
    blk_get_stats(log, &after);
    uint64_t flushes = after.flushes - before.flushes;
    uint64_t l2 = after.writes_by_tag[BLK_TAG_L2] - before.writes_by_tag[BLK_TAG_L2];
    g_test_message("%d flushers: %" G_GUINT64_FORMAT " flushes, %" G_GUINT64_FORMAT " L2 writes",
                   NFLUSHERS, flushes, l2);
    /* Flushers that find one in progress wait for it, and the next leader's
     * batch holds all their entries: a few flushes, not sixteen. */
    g_assert_cmpuint(flushes, >=, 1);
    g_assert_cmpuint(flushes, <=, NFLUSHERS / 4);
    g_assert_cmpuint(l2, <=, flushes);
    g_assert_cmpuint(check_once_per_batch(log, from), ==, flushes);
    pthread_mutex_lock(&s->lock);
    g_assert_cmpuint(s->commit.durable, ==, s->commit.written);
    g_assert_cmpuint(s->commit.tables->len, ==, 0);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < NFLUSHERS; i++) {
        tu_assert_byte(img, (uint8_t)(i + 1), CLUSTER, (uint64_t)i * 2 * CLUSTER);
    }
    TU_OK(qed_close(img, &tu_err));
    pthread_mutex_destroy(&barrier.m);
    pthread_cond_destroy(&barrier.c);
    g_bytes_unref(base);
}

/* Every dirty unit written once per batch, with allocators writing while
 * batches are taken: many threads, each writing and flushing in turn over
 * several tables. */
static gpointer churn_main(gpointer data)
{
    FlushJob *j = data;
    GRand *rand = g_rand_new_with_seed((guint32)j->id + 40);
    for (int n = 0; n < 60; n++) {
        uint64_t cluster = (uint64_t)g_rand_int_range(rand, 0, 256) * 8 + (uint64_t)j->id % 8;
        uint64_t off = (cluster * CLUSTER) % (12 * MiB);
        if (g_rand_int_range(rand, 0, 4) == 0) {
            TU_OK(qed_flush(j->img, &tu_err));
        } else if (g_rand_int_range(rand, 0, 3) == 0) {
            uint8_t buf[512];
            memset(buf, 0x5a, sizeof(buf));
            TU_OK(qed_pwrite(j->img, buf, sizeof(buf), off, QED_WRITE_FUA, &tu_err));
        } else {
            tu_write_byte(j->img, 0x5a, 512, off);
        }
    }
    g_rand_free(rand);
    return NULL;
}

static void test_commit_once_per_batch(void)
{
    GBytes *base = new_image(16 * MiB);
    BlkDev *log = blk_log_new(
        blk_mem_new("internals.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base)));
    QedImage *img = open_dev(slow_new(log, 2000));
    FlushJob jobs[NFLUSHERS];
    GThread *t[NFLUSHERS];
    for (int i = 0; i < NFLUSHERS; i++) {
        jobs[i] = (FlushJob){ .img = img, .id = i };
        t[i] = g_thread_new("churn", churn_main, &jobs[i]);
    }
    for (int i = 0; i < NFLUSHERS; i++) {
        g_thread_join(t[i]);
    }
    TU_OK(qed_flush(img, &tu_err));
    g_assert_cmpuint(check_once_per_batch(log, 0), >, 0);
    TU_OK(qed_close(img, &tu_err));
    g_bytes_unref(base);
}

/* A commit whose metadata write fails fails the handle: that flush and
 * every later flush and write fail, reads go on, and the image opens again
 * with leaks at most. */
static void test_commit_fault_fails_handle(void)
{
    GBytes *base = new_image(16 * MiB);
    BlkDev *mem = blk_mem_new("internals.qed", g_bytes_get_data(base, NULL),
                              g_bytes_get_size(base));
    BlkDev *fault = blk_fault_new(mem);
    QedImage *img = open_dev(fault);
    QedState *s = qed_state(img);
    tu_write_byte(img, 0x11, CLUSTER, 0);
    TU_OK(qed_flush(img, &tu_err));
    tu_write_byte(img, 0x22, CLUSTER, TABLE_SPAN); /* a new table, queued */
    pthread_mutex_lock(&s->lock);
    g_assert_cmpuint(s->commit.tables->len, ==, 1);
    pthread_mutex_unlock(&s->lock);

    BlkFault f = { .kind = BLK_FAULT_WRITE, .nth = 1, .error = EIO };
    blk_fault_arm(fault, &f); /* the commit's first write: the new table */
    GError *err = NULL;
    g_assert_cmpint(qed_flush(img, &err), <, 0);
    g_clear_error(&err);
    g_assert_true(blk_failed(s->file));
    pthread_mutex_lock(&s->lock);
    g_assert_cmpint(s->commit.error, <, 0);
    pthread_mutex_unlock(&s->lock);
    g_assert_cmpuint(blk_fault_injected(fault), ==, 1);
    /* Nothing more reaches the device. */
    uint64_t writes = blk_fault_calls(fault, BLK_FAULT_WRITE);
    g_assert_cmpint(qed_flush(img, &err), ==, -EIO);
    g_clear_error(&err);
    uint8_t buf[512] = { 0x33 };
    g_assert_cmpint(qed_pwrite(img, buf, sizeof(buf), 2 * TABLE_SPAN, 0, &err), <, 0);
    g_clear_error(&err);
    g_assert_cmpint(qed_pwrite(img, buf, sizeof(buf), 0, 0, &err), <, 0);
    g_clear_error(&err);
    g_assert_cmpuint(blk_fault_calls(fault, BLK_FAULT_WRITE), ==, writes);
    tu_assert_byte(img, 0x11, CLUSTER, 0);
    qed_close(img, NULL);

    /* What reached the disk: the first cluster, durable; leaks at most. */
    GBytes *disk = blk_mem_contents(mem);
    blk_close(mem);
    img = open_dev(
        blk_mem_new("internals.qed", g_bytes_get_data(disk, NULL), g_bytes_get_size(disk)));
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions, ==, 0);
    tu_assert_byte(img, 0x11, CLUSTER, 0);
    TU_OK(qed_close(img, &tu_err));
    g_bytes_unref(disk);
    g_bytes_unref(base);
}

/* -------------------------------------------------------- the L2 cache */

static bool cached_locked(QedState *s, uint64_t offset)
{
    return g_hash_table_contains(s->l2_cache.tables, &offset);
}

static void test_l2_cache_eviction(void)
{
    const int ntables = 8;
    GBytes *base = new_image((uint64_t)ntables * TABLE_SPAN);
    QedImage *img = open_dev(
        blk_mem_new("internals.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base)));
    QedState *s = qed_state(img);
    uint64_t tb = s->table_bytes;
    for (int i = 0; i < ntables; i++) {
        tu_write_byte(img, (uint8_t)(i + 1), 512, (uint64_t)i * TABLE_SPAN);
    }
    /* A budget of three tables: the commit puts the tables it wrote, and
     * the cache sheds the unreferenced ones beyond it. */
    pthread_mutex_lock(&s->lock);
    s->l2_cache.budget = 3 * tb;
    g_assert_cmpuint(s->commit.tables->len, ==, (guint)ntables); /* queued: all kept */
    g_assert_cmpuint(s->l2_cache.bytes, ==, ntables * tb);
    pthread_mutex_unlock(&s->lock);
    TU_OK(qed_flush(img, &tu_err));
    uint64_t off[8];
    pthread_mutex_lock(&s->lock);
    g_assert_cmpuint(s->l2_cache.bytes, <=, s->l2_cache.budget);
    for (int i = 0; i < ntables; i++) {
        off[i] = s->l1[i];
        g_assert_cmpuint(off[i], !=, 0);
    }

    /* Tables in use stay, over the budget; the least recently used
     * unreferenced ones go first. */
    QedL2Table *held[5];
    int err = 0;
    for (int i = 0; i < 5; i++) {
        held[i] = qed_l2_cache_get_locked(s, off[i], &err);
        g_assert_nonnull(held[i]);
    }
    /* (A load evicts nothing: the next put does.) */
    g_assert_cmpuint(s->l2_cache.bytes, <=, s->l2_cache.budget + 5 * tb);
    QedL2Table *t7 = qed_l2_cache_get_locked(s, off[7], &err);
    g_assert_nonnull(t7);
    qed_l2_cache_put_locked(s, t7); /* unreferenced, over the budget: all such go */
    g_assert_cmpuint(s->l2_cache.bytes, ==, 5 * tb);
    g_assert_false(cached_locked(s, off[7]) || cached_locked(s, off[6]) ||
                   cached_locked(s, off[5]));
    for (int i = 0; i < 5; i++) {
        g_assert_true(cached_locked(s, off[i]));
    }
    for (int i = 0; i < 5; i++) {
        qed_l2_cache_put_locked(s, held[i]);
        g_assert_cmpuint(s->l2_cache.bytes, <=, MAX(s->l2_cache.budget, (4 - (guint)i) * tb));
    }
    g_assert_cmpuint(s->l2_cache.bytes, <=, s->l2_cache.budget);
    /* Put in order 0..4: 4, 3, 2 are the most recent and stay. */
    g_assert_true(cached_locked(s, off[4]) && cached_locked(s, off[3]) &&
                  cached_locked(s, off[2]));
    g_assert_false(cached_locked(s, off[0]) || cached_locked(s, off[1]));
    pthread_mutex_unlock(&s->lock);

    /* A queued table is never evicted, however many others pass through:
     * its entries are not on the disk yet. */
    tu_write_byte(img, 0x66, 512, 6 * TABLE_SPAN + CLUSTER);
    pthread_mutex_lock(&s->lock);
    QedL2Table *queued = g_hash_table_lookup(s->l2_cache.tables, &off[6]);
    g_assert_nonnull(queued);
    g_assert_true(queued->queued);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < ntables; i++) {
            if (i == 6) {
                continue;
            }
            QedL2Table *t = qed_l2_cache_get_locked(s, off[i], &err);
            g_assert_nonnull(t);
            qed_l2_cache_put_locked(s, t);
            g_assert_true(g_hash_table_lookup(s->l2_cache.tables, &off[6]) == queued);
            g_assert_cmpuint(s->l2_cache.bytes, <=, s->l2_cache.budget);
        }
    }
    pthread_mutex_unlock(&s->lock);
    TU_OK(qed_flush(img, &tu_err));
    pthread_mutex_lock(&s->lock);
    g_assert_cmpuint(s->l2_cache.bytes, <=, s->l2_cache.budget);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < ntables; i++) {
        tu_assert_byte(img, (uint8_t)(i + 1), 512, (uint64_t)i * TABLE_SPAN);
    }
    tu_assert_byte(img, 0x66, 512, 6 * TABLE_SPAN + CLUSTER);
    TU_OK(qed_close(img, &tu_err));
    g_bytes_unref(base);
}

/* Many threads reading and allocating over more tables than the budget
 * holds: the budget holds whenever no table is in use, and every write
 * reads back (an evicted or queued table never loses an entry). */
static gpointer cache_churn_main(gpointer data)
{
    FlushJob *j = data;
    GRand *rand = g_rand_new_with_seed((guint32)j->id + 90);
    uint8_t buf[512];
    for (int n = 0; n < 150; n++) {
        uint64_t table = (uint64_t)g_rand_int_range(rand, 0, 16);
        uint64_t off = table * TABLE_SPAN + (uint64_t)j->id * CLUSTER;
        if (g_rand_boolean(rand)) {
            TU_OK(qed_pread(j->img, buf, sizeof(buf), off, &tu_err));
            g_assert_true(buf[0] == 0 || buf[0] == (uint8_t)(j->id + 1));
        } else {
            tu_write_byte(j->img, (uint8_t)(j->id + 1), 512, off);
        }
        if (n % 25 == 0) {
            TU_OK(qed_flush(j->img, &tu_err));
        }
    }
    g_rand_free(rand);
    return NULL;
}

static void test_l2_cache_budget_threads(void)
{
    GBytes *base = new_image(16 * (uint64_t)TABLE_SPAN);
    QedImage *img = open_dev(
        blk_mem_new("internals.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base)));
    QedState *s = qed_state(img);
    pthread_mutex_lock(&s->lock);
    s->l2_cache.budget = 4 * s->table_bytes;
    pthread_mutex_unlock(&s->lock);
    FlushJob jobs[8];
    GThread *t[8];
    for (int i = 0; i < 8; i++) {
        jobs[i] = (FlushJob){ .img = img, .id = i };
        t[i] = g_thread_new("cache", cache_churn_main, &jobs[i]);
    }
    for (int i = 0; i < 8; i++) {
        g_thread_join(t[i]);
    }
    TU_OK(qed_flush(img, &tu_err));
    pthread_mutex_lock(&s->lock);
    g_assert_cmpuint(s->l2_cache.bytes, <=, s->l2_cache.budget);
    g_assert_cmpuint(g_hash_table_size(s->l2_cache.tables) * s->table_bytes, ==,
                     s->l2_cache.bytes);
    g_assert_cmpuint(g_queue_get_length(&s->l2_cache.lru), ==,
                     g_hash_table_size(s->l2_cache.tables));
    pthread_mutex_unlock(&s->lock);
    TU_OK(qed_close(img, &tu_err));
    g_bytes_unref(base);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/internals/inflight/edges", test_inflight_edges);
    g_test_add_func("/internals/inflight/take-give-threads", test_range_take_give_threads);
    g_test_add_func("/internals/commit/group-flush", test_commit_group_flush);
    g_test_add_func("/internals/commit/once-per-batch", test_commit_once_per_batch);
    g_test_add_func("/internals/commit/fault-fails-handle", test_commit_fault_fails_handle);
    g_test_add_func("/internals/l2-cache/eviction", test_l2_cache_eviction);
    g_test_add_func("/internals/l2-cache/budget-threads", test_l2_cache_budget_threads);
    return g_test_run();
}
