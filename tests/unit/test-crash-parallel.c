/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Power loss under many concurrent allocators: 8 to 16 threads write, zero,
 * FUA-write and flush one handle at once, in one L2 table and across
 * tables, with and without a raw backing file, on a recording device
 * (blk-log). Then, at many crash points of the log and with random
 * persisted subsets, each crash state must:
 *   - be consistent but for leaks as it is (our check on the file cut to
 *     whole clusters; qemu-img check exits 0 or 3 on a sample);
 *   - open (repairing itself) and check without corruption;
 *   - read, per sector, the data of the newest durable write to it or of a
 *     later write issued before the crash point; the old content (zeros or
 *     the backing file's) only where no write to the sector was durable; never
 *     another offset's data or a sector torn inside;
 *   - read the same in QEMU (qemu-img compare against what we read, on a
 *     sample).
 * The log itself must keep the commit's order (an L1 entry only after its
 * table was written whole, every entry below the length a flush made
 * durable, copy-on-write data flushed before its L2 entry), and replayed in
 * its order it must be the device (no two writes of a sector overlapped).
 * Durability is what a thread can know without looking at the log: a write
 * that returned before a flush started (one atomic counter orders both) is
 * durable once that flush returned; a FUA write is durable when it returns.
 * Each sector has one writer thread, so its writes are ordered by that
 * thread's program order.
 * QED_CRASH_PAR_STATES=N sets the crash states per workload (default 750,
 * 240 under a sanitizer).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk.h"
#include "image.h"

#define SECTOR 512u
#define BACKING_ID 0x7fffffffu /* the class of the backing file's sectors */
#define ZERO_ID 0u             /* the class of a zeroed sector */

typedef struct Window {
    uint32_t first, end; /* sectors */
    uint32_t grain;      /* sectors per block; a block has one writer thread */
    uint32_t stride;     /* sectors from one block to the next (0: grain) */
} Window;

typedef struct Workload {
    const char *name;
    uint64_t size;
    uint32_t cluster_size;
    uint32_t table_size;
    bool backing;
    int nthreads;
    int nops; /* per thread */
    Window windows[4];
    guint32 seed;
} Workload;

/* One write request of a thread. */
typedef struct WriteOp {
    uint32_t first, count; /* sectors */
    uint32_t id;           /* the data's class, ZERO_ID for a zero write */
    size_t log_start;      /* log length when it was issued */
    uint64_t done;         /* tick when it returned */
    size_t durable_at;     /* a crash point from which it is durable, or SIZE_MAX */
} WriteOp;

typedef struct FlushOp {
    uint64_t start;   /* tick when it was issued */
    size_t log_after; /* log length when it returned */
} FlushOp;

typedef struct Run Run;
typedef struct Worker {
    Run *run;
    int id;
    GArray *blocks;  /* uint32_t first sector of each block this thread owns */
    GArray *writes;  /* WriteOp, in program order */
    GArray *flushes; /* FlushOp */
} Worker;

struct Run {
    const Workload *w;
    QedImage *img;
    BlkDev *log;
    uint64_t clock; /* atomic ticks ordering returns and issues */
};

static uint64_t tick(Run *r)
{
    return __atomic_fetch_add(&r->clock, 1, __ATOMIC_SEQ_CST);
}

/* Sector s of class id: the class and the sector in its first bytes, then
 * a pattern of both, so that a sector of another offset or a torn one is
 * told apart. */
static void fill_sector(uint8_t *p, uint32_t s, uint32_t id)
{
    memcpy(p, &id, 4);
    memcpy(p + 4, &s, 4);
    for (uint32_t i = 8; i < SECTOR; i++) {
        p[i] = (uint8_t)(id * 131u + s * 7u + i);
    }
}

/* The class of the sector read at s; fails the test on a sector that is of
 * another offset, torn, or no write's. */
static uint32_t classify(const Workload *w, size_t crash_at, const uint8_t *p, uint32_t s)
{
    static const uint8_t zeros[SECTOR];
    if (memcmp(p, zeros, SECTOR) == 0) {
        return ZERO_ID;
    }
    uint32_t id, at;
    memcpy(&id, p, 4);
    memcpy(&at, p + 4, 4);
    if (at != s) {
        g_error("%s: crash at %zu: sector %u holds data of sector %u (class %u)", w->name,
                crash_at, s, at, id);
    }
    uint8_t want[SECTOR];
    fill_sector(want, s, id);
    if (memcmp(p, want, SECTOR) != 0) {
        g_error("%s: crash at %zu: sector %u is torn or foreign (class %u)", w->name, crash_at, s,
                id);
    }
    return id;
}

static uint32_t backing_sectors(const Workload *w)
{
    return (uint32_t)(w->size / SECTOR) / 4 * 3; /* shorter than the image */
}

static uint32_t old_class(const Workload *w, uint32_t s)
{
    return w->backing && s < backing_sectors(w) ? BACKING_ID : ZERO_ID;
}

static char *make_backing(const Workload *w)
{
    g_autofree char *name = g_strdup_printf("%s.raw", w->name);
    char *path = tu_path(name);
    uint32_t n = backing_sectors(w);
    uint8_t *buf = g_malloc((size_t)n * SECTOR);
    for (uint32_t s = 0; s < n; s++) {
        fill_sector(buf + (size_t)s * SECTOR, s, BACKING_ID);
    }
    g_assert_true(g_file_set_contents(path, (char *)buf, (gssize)n * SECTOR, NULL));
    g_free(buf);
    return path;
}

static gpointer worker_main(gpointer data)
{
    Worker *k = data;
    Run *r = k->run;
    const Workload *w = r->w;
    GRand *rand = g_rand_new_with_seed(w->seed * 1000 + (guint32)k->id);
    uint32_t max_grain = 0;
    for (int i = 0; i < 4; i++) {
        max_grain = MAX(max_grain, w->windows[i].grain);
    }
    uint8_t *buf = g_malloc((size_t)max_grain * SECTOR);
    for (int n = 0; n < w->nops; n++) {
        int kind = g_rand_int_range(rand, 0, 100);
        if (kind < 8) {
            FlushOp f = { .start = tick(r) };
            TU_OK(qed_flush(r->img, &tu_err));
            f.log_after = blk_log_count(r->log);
            g_array_append_val(k->flushes, f);
            continue;
        }
        /* A random part of a random block of ours. */
        uint32_t b = g_array_index(k->blocks, uint32_t,
                                   g_rand_int_range(rand, 0, (gint32)k->blocks->len));
        uint32_t grain = 0;
        for (int i = 0; i < 4; i++) {
            const Window *win = &w->windows[i];
            if (b >= win->first && b < win->end) {
                grain = win->grain;
            }
        }
        uint32_t count = (uint32_t)g_rand_int_range(rand, 1, (gint32)grain + 1);
        uint32_t first = b + (uint32_t)g_rand_int_range(rand, 0, (gint32)(grain - count + 1));
        bool fua = kind >= 8 && kind < 18;
        bool zero = kind >= 18 && kind < 26;
        WriteOp op = { .first = first,
                       .count = count,
                       .id = zero ? ZERO_ID : (uint32_t)(k->id << 16 | (n + 1)),
                       .durable_at = SIZE_MAX };
        uint64_t off = (uint64_t)first * SECTOR, len = (uint64_t)count * SECTOR;
        unsigned flags = fua ? QED_WRITE_FUA : 0;
        op.log_start = blk_log_count(r->log);
        if (zero) {
            TU_OK(qed_pwrite_zeroes(r->img, len, off, flags, &tu_err));
        } else {
            for (uint32_t s = 0; s < count; s++) {
                fill_sector(buf + (size_t)s * SECTOR, first + s, op.id);
            }
            TU_OK(qed_pwrite(r->img, buf, len, off, flags, &tu_err));
        }
        op.done = tick(r);
        if (fua) {
            op.durable_at = blk_log_count(r->log);
        }
        g_array_append_val(k->writes, op);
    }
    g_free(buf);
    g_rand_free(rand);
    return NULL;
}

/* What the verification needs: every write, and per window sector the
 * indices of the writes to it in program order. */
typedef struct Model {
    GArray *writes;     /* WriteOp of all threads */
    GArray **by_sector; /* per sector of the image: guint indices into writes, or NULL */
    GArray *flush_ops;  /* size_t log index of each flush in the log */
} Model;

static void build_model(const Workload *w, Worker *workers, BlkDev *log, Model *m)
{
    m->writes = g_array_new(FALSE, FALSE, sizeof(WriteOp));
    uint32_t nsect = (uint32_t)(w->size / SECTOR);
    m->by_sector = g_new0(GArray *, nsect);
    for (int t = 0; t < w->nthreads; t++) {
        GArray *ws = workers[t].writes;
        for (guint i = 0; i < ws->len; i++) {
            WriteOp *op = &g_array_index(ws, WriteOp, i);
            /* Every flush that started after the write returned covers it. */
            for (int u = 0; u < w->nthreads; u++) {
                GArray *fs = workers[u].flushes;
                for (guint j = 0; j < fs->len; j++) {
                    const FlushOp *f = &g_array_index(fs, FlushOp, j);
                    if (op->done < f->start) {
                        op->durable_at = MIN(op->durable_at, f->log_after);
                    }
                }
            }
            guint idx = m->writes->len;
            g_array_append_val(m->writes, *op);
            for (uint32_t s = op->first; s < op->first + op->count; s++) {
                if (!m->by_sector[s]) {
                    m->by_sector[s] = g_array_new(FALSE, FALSE, sizeof(guint));
                }
                g_array_append_val(m->by_sector[s], idx);
            }
        }
    }
    m->flush_ops = g_array_new(FALSE, FALSE, sizeof(size_t));
    size_t total = blk_log_count(log);
    for (size_t i = 0; i < total; i++) {
        if (blk_log_op(log, i)->kind == BLK_LOG_FLUSH) {
            g_array_append_val(m->flush_ops, i);
        }
    }
}

static void free_model(const Workload *w, Model *m)
{
    for (uint32_t s = 0; s < w->size / SECTOR; s++) {
        if (m->by_sector[s]) {
            g_array_free(m->by_sector[s], TRUE);
        }
    }
    g_free(m->by_sector);
    g_array_free(m->writes, TRUE);
    g_array_free(m->flush_ops, TRUE);
}

/* Sector s read as class cls at crash point crash_at: the newest durable
 * write to it, a later write issued before the crash point, or (with no
 * durable write) the old content. */
static void verify_sector(const Workload *w, const Model *m, size_t crash_at, uint32_t s,
                          uint32_t cls)
{
    GArray *list = m->by_sector[s];
    guint n = list ? list->len : 0;
    gint d = -1;
    for (guint j = 0; j < n; j++) {
        const WriteOp *op = &g_array_index(m->writes, WriteOp, g_array_index(list, guint, j));
        if (op->durable_at <= crash_at) {
            d = (gint)j;
        }
    }
    if (d < 0 && cls == old_class(w, s)) {
        return;
    }
    for (guint j = d < 0 ? 0 : (guint)d; j < n; j++) {
        const WriteOp *op = &g_array_index(m->writes, WriteOp, g_array_index(list, guint, j));
        if (op->log_start < crash_at && op->id == cls) {
            return;
        }
    }
    uint32_t durable = ZERO_ID;
    if (d >= 0) {
        durable = g_array_index(m->writes, WriteOp, g_array_index(list, guint, d)).id;
    }
    g_error("%s: crash at %zu: sector %u reads class %#x; durable: %s %#x (of %u writes to it)",
            w->name, crash_at, s, cls, d < 0 ? "none, old" : "write",
            d < 0 ? old_class(w, s) : durable, n);
}

/* The crash state as it is, by QEMU's rules (see test-crash.c): our check
 * on the file cut to whole clusters finds leaks at most; with sample, so
 * does qemu-img check on the file itself. */
static void check_raw_state(const Workload *w, GBytes *state, size_t crash_at, bool sample,
                            const char *path)
{
    g_autofree char *what = g_strdup_printf("%s: crash at %zu", w->name, crash_at);
    tu_assert_state_consistent(state, w->cluster_size, what);
    if (!sample) {
        return;
    }
    g_assert_true(g_file_set_contents(path, g_bytes_get_data(state, NULL),
                                      (gssize)g_bytes_get_size(state), NULL));
    int status = tu_qemu_img_check(path);
    if (status >= 0 && status != 0 && status != 3) {
        g_autofree char *show = g_strdup_printf("qemu-img check '%s'", path);
        g_assert_cmpint(system(show), >=, 0);
        g_error("%s: crash at %zu: qemu-img check exits %d on the crash state", w->name, crash_at,
                status);
    }
}

/* QEMU reads the crash state at path (as it is, unrepaired) as we read it
 * after repair: expect, the whole virtual disk. */
static void compare_with_qemu(const Workload *w, size_t crash_at, const char *path,
                              const uint8_t *expect)
{
    g_autofree char *flat = g_strdup_printf("%s.flat", path);
    /* Sparse: only the sectors that are not zeros are written. */
    FILE *f = fopen(flat, "wb");
    g_assert_nonnull(f);
    g_assert_cmpint(ftruncate(fileno(f), (off_t)w->size), ==, 0);
    static const uint8_t zeros[SECTOR];
    for (uint64_t off = 0; off < w->size; off += SECTOR) {
        if (memcmp(expect + off, zeros, SECTOR) != 0) {
            g_assert_cmpint(fseeko(f, (off_t)off, SEEK_SET), ==, 0);
            g_assert_cmpuint(fwrite(expect + off, 1, SECTOR, f), ==, SECTOR);
        }
    }
    g_assert_cmpint(fclose(f), ==, 0);
    g_autofree char *cmd = g_strdup_printf("qemu-img compare -q -U -f qed -F raw '%s' '%s'", path,
                                           flat);
    int status = system(cmd);
    if (status != 0) {
        g_error("%s: crash at %zu: QEMU reads the state otherwise (%s: %d)", w->name, crash_at,
                cmd, status);
    }
}

static uint64_t le64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_LE(v);
}

/* The order of the log itself, as the commit promises it (qed-commit.c):
 * an L1 entry is written only after its new table was written whole; an
 * entry (L1 or L2) points only below the file length that a flush made
 * durable before it; an L2 entry of a cluster whose copy-on-write data was
 * written is written only after a flush that followed that data. */
static void check_log_order(const Workload *w, BlkDev *log, GBytes *base)
{
    const uint8_t *hdr = g_bytes_get_data(base, NULL);
    uint64_t l1_offset = le64_at(hdr + 40);
    uint64_t table_bytes = (uint64_t)w->cluster_size * w->table_size;
    uint64_t length = g_bytes_get_size(base), durable_length = length;
    GHashTable *tables = g_hash_table_new(g_int64_hash, g_int64_equal); /* written whole */
    GHashTable *cow = g_hash_table_new(g_int64_hash, g_int64_equal);    /* offset -> flushed */
    size_t total = blk_log_count(log);
    uint64_t *keys = g_new(uint64_t, total);
    uint64_t l1_writes = 0, l2_writes = 0;
    for (size_t i = 0; i < total; i++) {
        const BlkLogOp *op = blk_log_op(log, i);
        if (op->kind == BLK_LOG_FLUSH) {
            durable_length = length;
            GHashTableIter it;
            gpointer k, v;
            g_hash_table_iter_init(&it, cow);
            while (g_hash_table_iter_next(&it, &k, &v)) {
                g_hash_table_iter_replace(&it, GINT_TO_POINTER(1));
            }
            continue;
        }
        if (op->kind == BLK_LOG_TRUNCATE) {
            length = op->offset;
            continue;
        }
        if (op->kind != BLK_LOG_WRITE) {
            continue;
        }
        if (op->tag == BLK_TAG_COW) {
            for (uint64_t c = 0; c < op->len; c += w->cluster_size) {
                uint64_t *key = g_new(uint64_t, 1);
                *key = op->offset + c;
                g_hash_table_replace(cow, key, GINT_TO_POINTER(0));
            }
        }
        if (op->tag != BLK_TAG_L1 && op->tag != BLK_TAG_L2) {
            continue;
        }
        g_assert_true(op->offset % 8 == 0 && op->len % 8 == 0);
        bool is_l1 = op->tag == BLK_TAG_L1;
        l1_writes += is_l1;
        l2_writes += !is_l1;
        if (is_l1) {
            g_assert_cmpuint(op->offset, >=, l1_offset);
            g_assert_cmpuint(op->offset + op->len, <=, l1_offset + table_bytes);
        } else if (op->len == table_bytes) {
            keys[i] = op->offset;
            g_hash_table_add(tables, &keys[i]);
        }
        for (uint64_t e = 0; e < op->len; e += 8) {
            uint64_t v = le64_at(op->data + e);
            if (v <= 1) {
                continue; /* unallocated or a zero cluster */
            }
            uint64_t span = is_l1 ? table_bytes : w->cluster_size;
            if (v + span > durable_length) {
                g_error("%s: log op %zu: %s entry points at %#" G_GINT64_MODIFIER
                        "x, past the durable length %#" G_GINT64_MODIFIER "x",
                        w->name, i, is_l1 ? "L1" : "L2", v, durable_length);
            }
            if (is_l1 && !g_hash_table_contains(tables, &v)) {
                /* (tables of the base image: none, it is new) */
                g_error("%s: log op %zu: the L1 entry points at table %#" G_GINT64_MODIFIER
                        "x before it was written whole",
                        w->name, i, v);
            }
            gpointer flushed;
            if (!is_l1 && g_hash_table_lookup_extended(cow, &v, NULL, &flushed) && !flushed) {
                g_error("%s: log op %zu: the L2 entry of cluster %#" G_GINT64_MODIFIER
                        "x lands before a flush of its copy-on-write data",
                        w->name, i, v);
            }
        }
    }
    g_assert_cmpuint(l1_writes, >, 0);
    g_assert_cmpuint(l2_writes, >, 0);
    g_hash_table_destroy(tables);
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init(&it, cow);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        g_free(k);
    }
    g_hash_table_destroy(cow);
    g_free(keys);
}

/* About want crash points: half spread evenly over the log, half at
 * flushes, on either side (where the durable prefix changes). */
static GArray *crash_points(const Model *m, size_t total, size_t want)
{
    GArray *pts = g_array_new(FALSE, FALSE, sizeof(size_t));
    size_t spread = MAX(want / 2, 1);
    for (size_t i = 0; i < spread; i++) {
        size_t p = total * i / spread;
        g_array_append_val(pts, p);
    }
    g_array_append_val(pts, total);
    guint nflush = m->flush_ops->len;
    size_t pairs = MIN(MAX(want / 4, 1), nflush);
    for (size_t i = 0; i < pairs; i++) {
        size_t f = g_array_index(m->flush_ops, size_t, i * nflush / pairs);
        size_t p = f + 1;
        g_array_append_val(pts, f); /* just before it completed */
        g_array_append_val(pts, p); /* just after */
    }
    return pts;
}

static void run_workload(gconstpointer data)
{
    const Workload *w = data;
    int want = tu_env_int("QED_CRASH_PAR_STATES", tu_sanitized() ? 240 : 750);
    /* About 8 states per workload go to QEMU. */
    int every = MAX(want / 8, 1);
    /* (QEMU opens no image of table_size 1.) */
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
    bool qemu_opens = w->table_size >= 2 && qemu_img;
    g_autofree char *backing = w->backing ? make_backing(w) : NULL;
    g_autofree char *name = g_strdup_printf("%s.qed", w->name);
    g_autofree char *path = tu_path(name);
    QedCreateOptions co = { .size = w->size,
                            .cluster_size = w->cluster_size,
                            .table_size = w->table_size,
                            .backing_file = backing,
                            .backing_format = "raw" };
    TU_OK(qed_create(path, &co, &tu_err));
    GBytes *base = tu_file_bytes(path);

    Run run = { .w = w };
    BlkDev *inner = blk_mem_new("crash.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base));
    run.log = blk_log_new(inner);
    GError *err = NULL;
    run.img = tu_open_on_blk(run.log, backing, &err);
    g_assert_no_error(err);

    /* Blocks go round the threads in turn. */
    Worker *workers = g_new0(Worker, w->nthreads);
    for (int t = 0; t < w->nthreads; t++) {
        workers[t] = (Worker){ .run = &run,
                               .id = t,
                               .blocks = g_array_new(FALSE, FALSE, sizeof(uint32_t)),
                               .writes = g_array_new(FALSE, FALSE, sizeof(WriteOp)),
                               .flushes = g_array_new(FALSE, FALSE, sizeof(FlushOp)) };
    }
    uint32_t nblock = 0;
    for (int i = 0; i < 4 && w->windows[i].grain; i++) {
        const Window *win = &w->windows[i];
        uint32_t stride = win->stride ? win->stride : win->grain;
        for (uint32_t b = win->first; b + win->grain <= win->end; b += stride) {
            g_array_append_val(workers[nblock++ % (uint32_t)w->nthreads].blocks, b);
        }
    }
    GThread **threads = g_new(GThread *, w->nthreads);
    for (int t = 0; t < w->nthreads; t++) {
        threads[t] = g_thread_new("alloc", worker_main, &workers[t]);
    }
    for (int t = 0; t < w->nthreads; t++) {
        g_thread_join(threads[t]);
    }
    g_free(threads);
    /* A last flush makes everything durable: the crash point at the end of
     * the log must read every sector's last write. */
    FlushOp last = { .start = tick(&run) };
    TU_OK(qed_flush(run.img, &tu_err));
    last.log_after = blk_log_count(run.log);
    g_array_append_val(workers[0].flushes, last);
    check_log_order(w, run.log, base);

    Model m;
    build_model(w, workers, run.log, &m);
    size_t total = blk_log_count(run.log);
    GArray *pts = crash_points(&m, total, (size_t)want / 3);
    GRand *rand = g_rand_new_with_seed(w->seed);
    /* The log, replayed in its order, is the device: no two writes of one
     * sector overlapped in time (they could land in either order). */
    GBytes *replay = blk_log_crash_state(run.log, base, total, rand, SECTOR, NULL);
    GBytes *device = blk_mem_contents(inner);
    g_assert_true(g_bytes_equal(replay, device));
    g_bytes_unref(replay);
    g_bytes_unref(device);
    g_autofree char *state_path = tu_path("state.qed");
    uint8_t *disk = g_malloc(w->size);
    uint64_t states = 0, qemu_states = 0;
    for (guint pi = 0; pi < pts->len; pi++) {
        size_t crash_at = g_array_index(pts, size_t, pi);
        for (int v = 0; v < 3; v++) {
            GBytes *state = blk_log_crash_state(run.log, base, crash_at, rand, SECTOR, NULL);
            bool sample = qemu_opens && states % (uint64_t)every == (uint64_t)every / 2;
            check_raw_state(w, state, crash_at, sample, state_path);
            g_autofree char *what = g_strdup_printf("%s: crash at %zu/%zu", w->name, crash_at,
                                                    total);
            QedImage *c = tu_open_crash_state(state, false, backing, what);
            g_bytes_unref(state);
            if (sample) {
                TU_OK(qed_pread(c, disk, w->size, 0, &tu_err));
            }
            for (int i = 0; i < 4 && w->windows[i].grain; i++) {
                /* A window whole, or of one with gaps its blocks. */
                const Window *win = &w->windows[i];
                uint32_t len = win->stride ? win->grain : win->end - win->first;
                uint32_t step = win->stride ? win->stride : len;
                for (uint32_t b = win->first; b + len <= win->end; b += step) {
                    uint64_t off = (uint64_t)b * SECTOR;
                    if (!sample) {
                        TU_OK(qed_pread(c, disk + off, (uint64_t)len * SECTOR, off, &tu_err));
                    }
                    for (uint32_t s = b; s < b + len; s++) {
                        uint32_t cls = classify(w, crash_at, disk + (size_t)s * SECTOR, s);
                        verify_sector(w, &m, crash_at, s, cls);
                    }
                }
            }
            if (sample) {
                compare_with_qemu(w, crash_at, state_path, disk);
                qemu_states++;
            }
            TU_OK(qed_close(c, &tu_err));
            states++;
        }
    }
    size_t nwrites = m.writes->len, nflush = m.flush_ops->len;
    g_print("# %s: %d threads, %zu writes, %zu logged requests (%zu flushes), %" G_GUINT64_FORMAT
            " crash states (%" G_GUINT64_FORMAT " also in QEMU)\n",
            w->name, w->nthreads, nwrites, total, nflush, states, qemu_states);
    g_assert_cmpuint(states, >=, (uint64_t)want / 2);
    g_assert_true(!qemu_opens || qemu_states > 0);

    TU_OK(qed_close(run.img, &tu_err));
    for (int t = 0; t < w->nthreads; t++) {
        g_array_free(workers[t].blocks, TRUE);
        g_array_free(workers[t].writes, TRUE);
        g_array_free(workers[t].flushes, TRUE);
    }
    g_free(workers);
    free_model(w, &m);
    g_array_free(pts, TRUE);
    g_rand_free(rand);
    g_free(disk);
    g_bytes_unref(base);
}

/* 4 KiB clusters: with table_size 2 a table maps 4 MiB (8192 sectors), with
 * table_size 1 2 MiB (4096 sectors). A grain of 2 sectors puts four
 * threads in each cluster (in-place writes racing allocations of the same
 * cluster); a grain of 32 sectors gives each thread four clusters in a row
 * (requests over several clusters). */
static const Workload workloads[] = {
    /* All threads in one L2 table, the table new. */
    { .name = "one-table-16",
      .size = 8u << 20,
      .cluster_size = 4096,
      .table_size = 2,
      .nthreads = 16,
      .nops = 60,
      .windows = { { 0, 2048, 2 }, { 4096, 6144, 32 } },
      .seed = 11 },
    /* Across four tables, each new, windows straddling table boundaries. */
    { .name = "tables-12",
      .size = 16u << 20,
      .cluster_size = 4096,
      .table_size = 2,
      .nthreads = 12,
      .nops = 70,
      .windows = { { 7936, 8448, 32 },
                   { 16128, 16640, 2 },
                   { 24320, 24832, 32 },
                   { 1024, 1536, 2 } },
      .seed = 12 },
    /* Copy-on-write from a raw backing file (three quarters of the disk):
     * the data flush before the entries. */
    { .name = "backing-tables-12",
      .size = 16u << 20,
      .cluster_size = 4096,
      .table_size = 2,
      .backing = true,
      .nthreads = 12,
      .nops = 70,
      .windows = { { 7936, 8448, 2 },
                   { 16128, 16640, 32 },
                   { 24320, 24832, 2 },
                   { 1024, 1536, 32 } },
      .seed = 13 },
    { .name = "backing-one-table-8",
      .size = 8u << 20,
      .cluster_size = 4096,
      .table_size = 2,
      .backing = true,
      .nthreads = 8,
      .nops = 90,
      .windows = { { 0, 4096, 2 } },
      .seed = 14 },
    /* Sixteen tables, each made while others are being made and committed:
     * a new table's L1 entry shares its L1 sector with the others'. */
    { .name = "many-tables-16",
      .size = 64u << 20,
      .cluster_size = 4096,
      .table_size = 2,
      .nthreads = 16,
      .nops = 50,
      .windows = { { 0, 131072, 16, 4096 } },
      .seed = 16 },
    /* table_size 1: a new table every 2 MiB (QEMU does not open these). */
    { .name = "table1-backing-16",
      .size = 8u << 20,
      .cluster_size = 4096,
      .table_size = 1,
      .backing = true,
      .nthreads = 16,
      .nops = 60,
      .windows = { { 3840, 4352, 2 }, { 8000, 8384, 32 }, { 12288, 12544, 2 } },
      .seed = 15 },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(workloads); i++) {
        g_autofree char *name = g_strdup_printf("/crash-parallel/%s", workloads[i].name);
        g_test_add_data_func(name, &workloads[i], run_workload);
    }
    return g_test_run();
}
