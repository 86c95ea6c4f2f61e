/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Many threads on one handle: writes (some FUA), reads, zero writes,
 * discards, flushes, block status and checks on overlapping clusters and L2
 * tables, with and without a backing file, and the idle cleaner marking the
 * image clean in between, compared against a serial model.
 * Built for ThreadSanitizer too (scripts/tsan.sh): threads and phases use
 * pthreads, whose synchronization TSan sees.
 *
 * Design notes: the run is a sequence of phases separated by a barrier. In
 * each phase the disk is cut into segments of 1 to 64 sectors, each owned by
 * one thread, so the clusters and L2 tables under a request are shared with
 * other threads while every sector has one writer; ownership changes from
 * phase to phase. Every sector written carries a version tag (sector,
 * writer, sequence), so the model holds one version per sector and the
 * final image must equal it exactly. A thread checks what it reads of its
 * own sectors against the model, and of other sectors that each one no
 * request wrote meanwhile is exactly the model's version (a per-sector
 * counter, odd while the owner's request is in flight, tells which). A
 * sector written while it is read may come back torn: the page cache
 * copies a buffered pread and a pwrite of the same bytes concurrently, in
 * pieces, without locking either against the other (seen here, at 64-byte
 * steps), so no file under it can promise more.
 * QED_STRESS_OPS sets the requests per thread and phase (default 300).
 */
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk.h"

#define SECTOR 512u
#define NTHREADS 8
#define NPHASES 6
#define MAX_SEGMENT 64u /* sectors */
#define MAX_REQUEST (MAX_SEGMENT * SECTOR)

/* Versions: 0 reads as zeros, V_BACKING as the backing file, else a write's
 * tag (writer + 1) << 24 | sequence. */
#define V_ZERO 0u
#define V_BACKING 0xffffffffu

static uint8_t pattern_byte(uint64_t sector, uint32_t version, size_t i)
{
    return (uint8_t)((sector * 2654435761u + version * 40503u + i) >> 3);
}

/* A sector of version v (not V_ZERO): a 16-byte tag, then a pattern. */
static void fill_sector(uint8_t *p, uint64_t sector, uint32_t version)
{
    uint32_t tag[4] = { 0x51edc0deu, (uint32_t)sector, (uint32_t)(sector >> 32), version };
    memcpy(p, tag, sizeof(tag));
    for (size_t i = sizeof(tag); i < SECTOR; i++) {
        p[i] = pattern_byte(sector, version, i);
    }
}

static bool sector_is(const uint8_t *p, uint64_t sector, uint32_t version)
{
    if (version == V_ZERO) {
        for (size_t i = 0; i < SECTOR; i++) {
            if (p[i] != 0) {
                return false;
            }
        }
        return true;
    }
    uint8_t want[SECTOR];
    fill_sector(want, sector, version);
    return memcmp(p, want, SECTOR) == 0;
}

/* The version a whole sector holds, or -1 when it is torn or misplaced. */
static int64_t sector_version(const uint8_t *p, uint64_t sector)
{
    uint32_t tag[4];
    memcpy(tag, p, sizeof(tag));
    if (tag[0] != 0x51edc0deu) {
        return sector_is(p, sector, V_ZERO) ? (int64_t)V_ZERO : -1;
    }
    return sector_is(p, sector, tag[3]) ? (int64_t)tag[3] : -1;
}

typedef struct Config {
    const char *name;
    uint64_t size;
    uint32_t cluster_size;
    uint32_t table_size;
    bool backing;
} Config;

typedef struct Segment {
    uint32_t first, count; /* sectors */
} Segment;

typedef struct Shared {
    const Config *cfg;
    QedImage *img;
    uint32_t nsect;
    uint32_t backing_sect; /* sectors the backing file covers */
    int ops;               /* per thread and phase */
    pthread_barrier_t barrier;
    /* Written by thread 0 between barriers, read by all in a phase. */
    GArray *segments[NTHREADS]; /* Segment, the ones each thread owns */
    /* The model: one version per sector, written only by the sector's
     * owner in the current phase (atomically: other threads read it). */
    uint32_t *version;
    /* Per sector: odd while its owner's write, zero write or discard is in
     * flight; the owner adds one before and after (atomically). */
    uint32_t *busy;
} Shared;

typedef struct Worker {
    Shared *sh;
    int id;
    GRand *rand;
    uint32_t seq;
    uint8_t *buf;
    uint64_t requests;
} Worker;

/* Cuts the disk into segments for a phase (called by thread 0 alone). */
static void deal_segments(Shared *sh, guint32 seed)
{
    GRand *rand = g_rand_new_with_seed(seed);
    for (int t = 0; t < NTHREADS; t++) {
        g_array_set_size(sh->segments[t], 0);
    }
    for (uint32_t s = 0; s < sh->nsect;) {
        uint32_t count = (uint32_t)g_rand_int_range(rand, 1, MAX_SEGMENT + 1);
        Segment seg = { s, MIN(count, sh->nsect - s) };
        g_array_append_val(sh->segments[g_rand_int_range(rand, 0, NTHREADS)], seg);
        s += seg.count;
    }
    g_rand_free(rand);
}

/* A random part of a random segment of this thread's. */
static Segment pick_own(Worker *w)
{
    GArray *mine = w->sh->segments[w->id];
    Segment seg = g_array_index(mine, Segment, g_rand_int_range(w->rand, 0, (gint32)mine->len));
    uint32_t first = seg.first + (uint32_t)g_rand_int_range(w->rand, 0, (gint32)seg.count);
    uint32_t count = (uint32_t)g_rand_int_range(w->rand, 1,
                                                (gint32)(seg.first + seg.count - first + 1));
    return (Segment){ first, count };
}

static uint32_t load(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* The owner marks r in flight, or done again. */
static void mark_busy(Shared *sh, Segment r)
{
    for (uint32_t s = 0; s < r.count; s++) {
        __atomic_add_fetch(&sh->busy[r.first + s], 1, __ATOMIC_SEQ_CST);
    }
}

static void check_own(Worker *w, Segment r)
{
    for (uint32_t s = 0; s < r.count; s++) {
        uint64_t sector = r.first + s;
        uint32_t v = w->sh->version[sector];
        if (!sector_is(w->buf + (size_t)s * SECTOR, sector, v)) {
            g_error("%s: thread %d: sector %" G_GUINT64_FORMAT " is not version %08x "
                    "(reads %" G_GINT64_FORMAT ")",
                    w->sh->cfg->name, w->id, sector, v,
                    sector_version(w->buf + (size_t)s * SECTOR, sector));
        }
    }
}

static void do_request(Worker *w)
{
    Shared *sh = w->sh;
    QedImage *img = sh->img;
    int kind = g_rand_int_range(w->rand, 0, 100);
    w->requests++;
    if (kind < 8) {
        /* Anybody's sectors: each that no request wrote meanwhile must be
         * the model's version exactly. */
        uint32_t count = (uint32_t)g_rand_int_range(w->rand, 1, MAX_SEGMENT + 1);
        uint32_t first = (uint32_t)g_rand_int_range(w->rand, 0, (gint32)(sh->nsect - count));
        uint32_t before[MAX_SEGMENT];
        for (uint32_t s = 0; s < count; s++) {
            before[s] = load(&sh->busy[first + s]);
        }
        TU_OK(qed_pread(img, w->buf, (size_t)count * SECTOR, (uint64_t)first * SECTOR, &tu_err));
        for (uint32_t s = 0; s < count; s++) {
            uint64_t sector = first + s;
            uint32_t v = load(&sh->version[sector]);
            if (before[s] % 2 != 0 || load(&sh->busy[sector]) != before[s]) {
                continue; /* written meanwhile */
            }
            const uint8_t *p = w->buf + (size_t)s * SECTOR;
            if (!sector_is(p, sector, v)) {
                g_error("%s: sector %" G_GUINT64_FORMAT
                        " is not version %08x (reads %" G_GINT64_FORMAT
                        "), and nobody wrote it meanwhile",
                        sh->cfg->name, sector, v, sector_version(p, sector));
            }
        }
        return;
    }
    if (kind < 11) {
        QedExtent ext;
        uint64_t off = (uint64_t)g_rand_int_range(w->rand, 0, (gint32)sh->nsect) * SECTOR;
        TU_OK(qed_block_status(img, sh->cfg->size - off, off, &ext, &tu_err));
        g_assert_cmpuint(ext.offset, ==, off);
        g_assert_cmpuint(ext.length, >, 0);
        return;
    }
    if (kind < 12) {
        QedCheckResult res;
        TU_OK(qed_check(img, 0, &res, &tu_err));
        /* Clusters that zero writes gave up are leaks until close. */
        if (res.corruptions || res.check_errors) {
            g_error("%s: check during the run: %" G_GUINT64_FORMAT " corruptions", sh->cfg->name,
                    res.corruptions);
        }
        return;
    }
    if (kind < 16) {
        TU_OK(qed_flush(img, &tu_err));
        return;
    }
    Segment r = pick_own(w);
    uint64_t off = (uint64_t)r.first * SECTOR, len = (uint64_t)r.count * SECTOR;
    if (kind < 30) {
        TU_OK(qed_pread(img, w->buf, len, off, &tu_err));
        check_own(w, r);
    } else if (kind < 80) {
        uint32_t v = ((uint32_t)(w->id + 1) << 24) | ++w->seq;
        for (uint32_t s = 0; s < r.count; s++) {
            fill_sector(w->buf + (size_t)s * SECTOR, r.first + s, v);
        }
        unsigned flags = kind < 33 ? QED_WRITE_FUA : 0;
        mark_busy(sh, r);
        TU_OK(qed_pwrite(img, w->buf, len, off, flags, &tu_err));
        for (uint32_t s = 0; s < r.count; s++) {
            __atomic_store_n(&sh->version[r.first + s], v, __ATOMIC_SEQ_CST);
        }
        mark_busy(sh, r);
    } else {
        mark_busy(sh, r);
        if (kind < 90) {
            TU_OK(qed_pwrite_zeroes(img, len, off, 0, &tu_err));
        } else {
            TU_OK(qed_discard(img, len, off, &tu_err));
        }
        for (uint32_t s = 0; s < r.count; s++) {
            __atomic_store_n(&sh->version[r.first + s], V_ZERO, __ATOMIC_SEQ_CST);
        }
        mark_busy(sh, r);
    }
}

static void *worker_main(void *data)
{
    Worker *w = data;
    Shared *sh = w->sh;
    for (int phase = 0; phase < NPHASES; phase++) {
        if (w->id == 0) {
            deal_segments(sh, (guint32)phase * 7919u + 1);
        }
        pthread_barrier_wait(&sh->barrier);
        for (int i = 0; i < sh->ops; i++) {
            do_request(w);
        }
        pthread_barrier_wait(&sh->barrier);
    }
    return NULL;
}

/* Reads the whole image and compares it with the model. */
static void compare_with_model(Shared *sh, QedImage *img, const char *when)
{
    uint8_t *all = g_malloc(sh->cfg->size);
    TU_OK(qed_pread(img, all, sh->cfg->size, 0, &tu_err));
    for (uint32_t s = 0; s < sh->nsect; s++) {
        if (!sector_is(all + (size_t)s * SECTOR, s, sh->version[s])) {
            g_error("%s: %s: sector %u is not version %08x (reads %" G_GINT64_FORMAT ")",
                    sh->cfg->name, when, s, sh->version[s],
                    sector_version(all + (size_t)s * SECTOR, s));
        }
    }
    g_free(all);
}

/* No corruption; and no leak either once the image was closed (close
 * reclaims the clusters zero writes gave up). */
static void expect_clean(Shared *sh, QedImage *img, const char *when, bool closed)
{
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    if (res.corruptions || (closed && res.leaks) || res.check_errors) {
        g_error("%s: %s: %" G_GUINT64_FORMAT " corruptions, %" G_GUINT64_FORMAT " leaks",
                sh->cfg->name, when, res.corruptions, res.leaks);
    }
}

static char *make_backing(const Config *cfg, uint32_t nsect)
{
    g_autofree char *name = g_strdup_printf("%s.raw", cfg->name);
    char *path = tu_path(name);
    uint8_t *buf = g_malloc((size_t)nsect * SECTOR);
    for (uint32_t s = 0; s < nsect; s++) {
        fill_sector(buf + (size_t)s * SECTOR, s, V_BACKING);
    }
    g_assert_true(g_file_set_contents(path, (char *)buf, (gssize)nsect * SECTOR, NULL));
    g_free(buf);
    return path;
}

static void test_stress(gconstpointer data)
{
    const Config *cfg = data;
    Shared sh = { .cfg = cfg, .nsect = (uint32_t)(cfg->size / SECTOR), .ops = 300 };
    const char *env = g_getenv("QED_STRESS_OPS");
    if (env) {
        sh.ops = atoi(env);
    }
    /* The backing file ends three quarters in: past it the image reads zeros. */
    sh.backing_sect = cfg->backing ? sh.nsect / 4 * 3 : 0;
    g_autofree char *backing = cfg->backing ? make_backing(cfg, sh.backing_sect) : NULL;
    g_autofree char *name = g_strdup_printf("%s.qed", cfg->name);
    g_autofree char *path = tu_path(name);
    QedCreateOptions co = { .size = cfg->size,
                            .cluster_size = cfg->cluster_size,
                            .table_size = cfg->table_size,
                            .backing_file = backing,
                            .backing_format = "raw" };
    TU_OK(qed_create(path, &co, &tu_err));

    sh.version = g_new(uint32_t, sh.nsect);
    sh.busy = g_new0(uint32_t, sh.nsect);
    for (uint32_t s = 0; s < sh.nsect; s++) {
        sh.version[s] = s < sh.backing_sect ? V_BACKING : V_ZERO;
    }
    for (int t = 0; t < NTHREADS; t++) {
        sh.segments[t] = g_array_new(FALSE, FALSE, sizeof(Segment));
    }
    pthread_barrier_init(&sh.barrier, NULL, NTHREADS);
    /* The idle cleaner marks the image clean whenever metadata has not
     * changed for a few milliseconds: it races the requests too. */
    QedOpenOptions oo = { .clean_after_ms = 5 };
    sh.img = qed_open(path, &oo, NULL);
    g_assert_nonnull(sh.img);

    Worker w[NTHREADS];
    pthread_t threads[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        w[t] = (Worker){ .sh = &sh,
                         .id = t,
                         .rand = g_rand_new_with_seed((guint32)t + 1),
                         .buf = g_malloc(MAX_REQUEST) };
        g_assert_cmpint(pthread_create(&threads[t], NULL, worker_main, &w[t]), ==, 0);
    }
    uint64_t requests = 0;
    for (int t = 0; t < NTHREADS; t++) {
        g_assert_cmpint(pthread_join(threads[t], NULL), ==, 0);
        requests += w[t].requests;
        g_rand_free(w[t].rand);
        g_free(w[t].buf);
    }

    compare_with_model(&sh, sh.img, "after the run");
    expect_clean(&sh, sh.img, "after the run", false);
    TU_OK(qed_close(sh.img, &tu_err));
    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY);
    compare_with_model(&sh, img, "after reopening");
    expect_clean(&sh, img, "after reopening", true);
    TU_OK(qed_close(img, &tu_err));
    if (cfg->table_size > 1) { /* QEMU 7.2 refuses one-cluster tables of 4 KiB clusters */
        int status = tu_qemu_img_check(path);
        g_assert_true(status == 0 || status == -1);
    }
    g_print("# %s: %" G_GUINT64_FORMAT " requests from %d threads\n", cfg->name, requests,
            NTHREADS);

    pthread_barrier_destroy(&sh.barrier);
    for (int t = 0; t < NTHREADS; t++) {
        g_array_free(sh.segments[t], TRUE);
    }
    g_free(sh.version);
    g_free(sh.busy);
}

/* 4 KiB clusters with one-cluster tables: an L2 table maps 2 MiB, so the
 * 8 MiB image has four tables that all threads allocate in at once. */
static const Config configs[] = {
    { "plain-4k", 8u << 20, 4096, 1, false },
    { "raw-backing-4k", 8u << 20, 4096, 1, true },
    { "raw-backing-64k", 8u << 20, 65536, 4, true },
    { "plain-64k", 8u << 20, 65536, 4, false },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(configs); i++) {
        g_autofree char *name = g_strdup_printf("/stress/%s", configs[i].name);
        g_test_add_data_func(name, &configs[i], test_stress);
    }
    return g_test_run();
}
