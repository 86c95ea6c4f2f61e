/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One handle, many threads: allocating and in-place writes, zeroes, reads and
 * flushes at once must lose nothing, and a read racing an allocating write
 * sees each sector old or new, never zeros where the backing file had data.
 * Where every cluster is written once (allocating writes only), a racing
 * read sees each sector whole: old or new, never a mix inside it, and never
 * old again once it saw new (O_DIRECT file and memory, with and without a
 * backing file).
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "image.h"

#define MiB (1024u * 1024)
#define SECTOR 512u
#define NTHREADS 8

typedef struct Worker {
    QedImage *img;
    int id;
    uint64_t size;
    volatile gint *stop;
    guint64 checked; /* sectors verified by a reader */
    gint *started;   /* readers that have verified a read (the race tests) */
} Worker;

/* Sector s of writer w holds this byte; writers own interleaved sectors. */
static uint8_t sector_byte(int writer, uint64_t sector)
{
    return (uint8_t)(1 + writer * 16 + sector % 13);
}

/* Writer w owns every sector with index % NTHREADS == w, so all writers hit
 * the same clusters and L2 tables, in random order. */
static gpointer writer_main(gpointer data)
{
    Worker *w = data;
    GRand *rand = g_rand_new_with_seed((guint32)w->id);
    uint64_t nsectors = w->size / SECTOR / NTHREADS;
    uint8_t buf[SECTOR];
    for (uint64_t n = 0; n < nsectors; n++) {
        uint64_t k = (uint64_t)g_rand_int_range(rand, 0, (gint32)nsectors);
        uint64_t sector = k * NTHREADS + (uint64_t)w->id;
        memset(buf, sector_byte(w->id, sector), sizeof(buf));
        TU_OK(qed_pwrite(w->img, buf, sizeof(buf), sector * SECTOR, 0, &tu_err));
        if (n % 97 == 0) {
            TU_OK(qed_flush(w->img, &tu_err));
        }
    }
    g_rand_free(rand);
    return NULL;
}

static void test_interleaved_writers_lose_nothing(void)
{
    const uint64_t size = 4 * MiB;
    g_autofree char *path = tu_create("threads.qed", size, 4096, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    Worker w[NTHREADS];
    GThread *t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (Worker){ .img = img, .id = i, .size = size };
        t[i] = g_thread_new("writer", writer_main, &w[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        g_thread_join(t[i]);
    }
    TU_OK(qed_close(img, &tu_err));

    img = tu_open(path, QED_OPEN_READ_ONLY);
    uint8_t *all = g_malloc(size);
    TU_OK(qed_pread(img, all, size, 0, &tu_err));
    for (uint64_t s = 0; s < size / SECTOR; s++) {
        /* Each writer wrote a random subset of its sectors; unwritten read 0. */
        uint8_t b = all[s * SECTOR];
        if (b != 0) {
            g_assert_cmpuint(b, ==, sector_byte((int)(s % NTHREADS), s));
        }
        for (uint64_t i = 1; i < SECTOR; i++) {
            g_assert_cmpuint(all[s * SECTOR + i], ==, b);
        }
    }
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions, ==, 0);
    g_assert_cmpuint(res.leaks, ==, 0);
    TU_OK(qed_close(img, &tu_err));
    g_free(all);
    int status = tu_qemu_img_check(path);
    g_assert_true(status == 0 || status == -1);
}

/* Every sector of every writer's region written, all complete: exact check. */
static gpointer full_writer_main(gpointer data)
{
    Worker *w = data;
    uint64_t region = w->size / NTHREADS;
    uint8_t *buf = g_malloc(region);
    /* Unaligned pieces of varying size, straddling cluster boundaries. */
    uint64_t off = 0;
    GRand *rand = g_rand_new_with_seed((guint32)w->id + 100);
    while (off < region) {
        uint64_t len = (uint64_t)g_rand_int_range(rand, 1, 20000);
        len = MIN(len, region - off);
        for (uint64_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)(w->id * 31 + off + i);
        }
        TU_OK(qed_pwrite(w->img, buf, len, w->id * region + off, 0, &tu_err));
        off += len;
    }
    g_rand_free(rand);
    g_free(buf);
    return NULL;
}

static void test_parallel_regions_exact(void)
{
    const uint64_t size = 8 * MiB;
    g_autofree char *path = tu_create("regions.qed", size, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    Worker w[NTHREADS];
    GThread *t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (Worker){ .img = img, .id = i, .size = size };
        t[i] = g_thread_new("region", full_writer_main, &w[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        g_thread_join(t[i]);
    }
    uint8_t *all = g_malloc(size);
    TU_OK(qed_pread(img, all, size, 0, &tu_err));
    uint64_t region = size / NTHREADS;
    for (uint64_t i = 0; i < size; i++) {
        uint64_t id = i / region, off = i % region;
        g_assert_cmpuint(all[i], ==, (uint8_t)(id * 31 + off));
    }
    TU_OK(qed_close(img, &tu_err));
    g_free(all);
}

/* Readers race writers over a backing file that has no zero bytes. */
static gpointer backing_writer_main(gpointer data)
{
    Worker *w = data;
    GRand *rand = g_rand_new_with_seed((guint32)w->id + 7);
    uint8_t buf[3 * SECTOR];
    /* Writers start once every reader runs, so that reads do race them
     * even where the scheduler would let the writers finish first. */
    while (g_atomic_int_get(w->started) < NTHREADS - 4) {
        g_usleep(1000);
    }
    for (int n = 0; n < 300; n++) {
        uint64_t sector = (uint64_t)g_rand_int_range(rand, 0, (gint32)(w->size / SECTOR - 3));
        memset(buf, 0xfe, sizeof(buf));
        TU_OK(qed_pwrite(w->img, buf, sizeof(buf), sector * SECTOR, 0, &tu_err));
    }
    g_rand_free(rand);
    return NULL;
}

static gpointer backing_reader_main(gpointer data)
{
    Worker *w = data;
    GRand *rand = g_rand_new_with_seed((guint32)w->id + 1000);
    uint8_t buf[64 * 1024];
    while (!g_atomic_int_get(w->stop)) {
        uint64_t off = (uint64_t)g_rand_int_range(rand, 0, (gint32)(w->size - sizeof(buf)));
        off -= off % SECTOR;
        TU_OK(qed_pread(w->img, buf, sizeof(buf), off, &tu_err));
        /* Every byte is the backing file's or the writer's, never a zero
         * or another cluster's. Not every sector is whole: once a cluster
         * is allocated, a second writer overwrites the copied backing data
         * in place, and Linux may tear a buffered read racing that write
         * (in 64-byte steps; docs/design.md, "Concurrency"). */
        for (size_t s = 0; s < sizeof(buf) / SECTOR; s++) {
            const uint8_t *p = buf + s * SECTOR;
            for (size_t i = 0; i < SECTOR; i++) {
                uint8_t old = (uint8_t)(0x11 + (off + s * SECTOR + i) % 200);
                if (p[i] != 0xfe && p[i] != old) {
                    g_error("byte at %" G_GUINT64_FORMAT " is neither old nor new",
                            off + s * SECTOR + i);
                }
            }
            w->checked++;
        }
        if (w->checked == sizeof(buf) / SECTOR) {
            g_atomic_int_inc(w->started);
        }
    }
    g_rand_free(rand);
    return NULL;
}

static void test_reads_racing_cow_see_old_or_new(void)
{
    const uint64_t size = 4 * MiB;
    g_autofree char *base = tu_path("race.raw");
    uint8_t *contents = g_malloc(size);
    for (uint64_t i = 0; i < size; i++) {
        contents[i] = (uint8_t)(0x11 + i % 200);
    }
    g_assert_true(g_file_set_contents(base, (char *)contents, (gssize)size, NULL));
    g_free(contents);
    g_autofree char *path = tu_create("race.qed", size, 0, "race.raw", "raw");
    QedImage *img = tu_open(path, 0);
    gint stop = 0, started = 0;
    Worker w[NTHREADS];
    GThread *t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (Worker){ .img = img, .id = i, .size = size, .stop = &stop, .started = &started };
        t[i] = g_thread_new("race", i < 4 ? backing_writer_main : backing_reader_main, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        g_thread_join(t[i]);
    }
    g_atomic_int_set(&stop, 1);
    guint64 checked = 0;
    for (int i = 4; i < NTHREADS; i++) {
        g_thread_join(t[i]);
        checked += w[i].checked;
    }
    g_assert_cmpuint(checked, >, 0);
    TU_OK(qed_close(img, &tu_err));
    int status = tu_qemu_img_check(path);
    g_assert_true(status == 0 || status == -1);
}

/* ---- reads racing allocating writes, whole sectors ---- */

#define RACE_CLUSTER 4096u
#define RACE_WRITERS 8
#define RACE_READERS 6

typedef struct RaceConf {
    const char *name;
    bool backing;
    bool direct; /* an O_DIRECT file, else a memory device */
} RaceConf;

typedef struct Race {
    QedImage *img;
    uint64_t size;
    uint64_t backing_size; /* bytes of the backing file (shorter than the disk), 0 without */
    gint stop;
} Race;

typedef struct RaceWorker {
    Race *race;
    int id;
    guint64 sectors, seen_new;
} RaceWorker;

/* The old (backing) and new (written) bytes of sector s: different in every
 * byte and never zero, so that a mix or zeros inside a sector show. */
static uint8_t race_old(uint64_t s, uint32_t i)
{
    return (uint8_t)(1 + (s * 7 + i) % 127);
}
static uint8_t race_new(uint64_t s, uint32_t i)
{
    return (uint8_t)(129 + (s * 5 + i) % 127);
}

static void *aligned_buf(size_t len)
{
    void *p = NULL;
    g_assert_cmpint(posix_memalign(&p, 4096, len), ==, 0);
    return p;
}

/* Writer w allocates the clusters c with c % RACE_WRITERS == w, each once,
 * in random order, with one write of a random run of its sectors. */
static gpointer race_writer_main(gpointer data)
{
    RaceWorker *k = data;
    Race *r = k->race;
    uint64_t nclusters = r->size / RACE_CLUSTER / RACE_WRITERS;
    uint64_t *order = g_new(uint64_t, nclusters);
    for (uint64_t i = 0; i < nclusters; i++) {
        order[i] = i * RACE_WRITERS + (uint64_t)k->id;
    }
    GRand *rand = g_rand_new_with_seed((guint32)k->id + 500);
    for (uint64_t i = nclusters; i > 1; i--) {
        uint64_t j = (uint64_t)g_rand_int_range(rand, 0, (gint32)i);
        uint64_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    uint32_t per = RACE_CLUSTER / SECTOR;
    uint8_t *buf = aligned_buf(RACE_CLUSTER);
    for (uint64_t i = 0; i < nclusters; i++) {
        uint32_t a = (uint32_t)g_rand_int_range(rand, 0, (gint32)per);
        uint32_t b = (uint32_t)g_rand_int_range(rand, (gint32)a + 1, (gint32)per + 1);
        uint64_t first = order[i] * per + a;
        for (uint32_t s = 0; s < b - a; s++) {
            for (uint32_t x = 0; x < SECTOR; x++) {
                buf[s * SECTOR + x] = race_new(first + s, x);
            }
        }
        TU_OK(qed_pwrite(r->img, buf, (size_t)(b - a) * SECTOR, first * SECTOR, 0, &tu_err));
        if (i % 64 == 63) {
            TU_OK(qed_flush(r->img, &tu_err));
        }
    }
    g_free(buf);
    g_free(order);
    g_rand_free(rand);
    return NULL;
}

static gpointer race_reader_main(gpointer data)
{
    RaceWorker *k = data;
    Race *r = k->race;
    const size_t len = 32 * 1024;
    uint8_t *buf = aligned_buf(len);
    uint8_t *seen = g_new0(uint8_t, r->size / SECTOR); /* read new once */
    GRand *rand = g_rand_new_with_seed((guint32)k->id + 900);
    while (!g_atomic_int_get(&r->stop)) {
        uint64_t off = (uint64_t)g_rand_int_range(rand, 0, (gint32)((r->size - len) / SECTOR));
        off *= SECTOR;
        TU_OK(qed_pread(r->img, buf, len, off, &tu_err));
        for (size_t i = 0; i < len / SECTOR; i++) {
            uint64_t s = off / SECTOR + i;
            const uint8_t *p = buf + i * SECTOR;
            bool has_old = s * SECTOR < r->backing_size;
            bool is_new = true, is_old = true;
            for (uint32_t x = 0; x < SECTOR && (is_new || is_old); x++) {
                is_new &= p[x] == race_new(s, x);
                is_old &= p[x] == (has_old ? race_old(s, x) : 0);
            }
            if (!is_new && !is_old) {
                g_error("sector %" G_GUINT64_FORMAT " reads neither old nor new (bytes %u %u %u)",
                        s, p[0], p[SECTOR / 2], p[SECTOR - 1]);
            }
            if (is_old && seen[s]) {
                g_error("sector %" G_GUINT64_FORMAT " reads old after it read new", s);
            }
            seen[s] |= is_new;
            k->seen_new += is_new;
            k->sectors++;
        }
    }
    g_rand_free(rand);
    g_free(seen);
    g_free(buf);
    return NULL;
}

static void test_reads_racing_allocation_whole_sectors(gconstpointer data)
{
    const RaceConf *conf = data;
    Race r = { .size = 8 * MiB };
    g_autofree char *raw_name = g_strdup_printf("%s.raw", conf->name);
    g_autofree char *raw = tu_path(raw_name);
    if (conf->backing) {
        r.backing_size = r.size / 4 * 3;
        uint8_t *contents = g_malloc(r.backing_size);
        for (uint64_t i = 0; i < r.backing_size; i++) {
            contents[i] = race_old(i / SECTOR, (uint32_t)(i % SECTOR));
        }
        g_assert_true(g_file_set_contents(raw, (char *)contents, (gssize)r.backing_size, NULL));
        g_free(contents);
    }
    g_autofree char *name = g_strdup_printf("%s.qed", conf->name);
    g_autofree char *path = tu_path(name);
    QedCreateOptions co = { .size = r.size,
                            .cluster_size = RACE_CLUSTER,
                            .table_size = 2, /* a table per 4 MiB: new tables in the race */
                            .backing_file = conf->backing ? raw_name : NULL,
                            .backing_format = "raw" };
    TU_OK(qed_create(path, &co, &tu_err));
    if (conf->direct) {
        /* A small cache, so that tables are evicted and loaded again. */
        QedOpenOptions o = { .flags = QED_OPEN_DIRECT, .l2_cache_bytes = 16 * 1024 };
        GError *err = NULL;
        r.img = qed_open(path, &o, &err);
        if (!r.img) {
            g_test_skip(err->message); /* (a file system without O_DIRECT) */
            g_error_free(err);
            return;
        }
    } else {
        GBytes *bytes = tu_file_bytes(path);
        GError *err = NULL;
        BlkDev *mem = blk_mem_new(path, g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
        g_bytes_unref(bytes);
        r.img = image_open_blk(mem, path, "qed", 0, &err);
        g_assert_no_error(err);
    }
    RaceWorker k[RACE_WRITERS + RACE_READERS];
    GThread *t[RACE_WRITERS + RACE_READERS];
    for (int i = 0; i < RACE_WRITERS + RACE_READERS; i++) {
        k[i] = (RaceWorker){ .race = &r, .id = i };
        t[i] = g_thread_new("race", i < RACE_WRITERS ? race_writer_main : race_reader_main, &k[i]);
    }
    for (int i = 0; i < RACE_WRITERS; i++) {
        g_thread_join(t[i]);
    }
    g_atomic_int_set(&r.stop, 1);
    guint64 sectors = 0, seen_new = 0;
    for (int i = RACE_WRITERS; i < RACE_WRITERS + RACE_READERS; i++) {
        g_thread_join(t[i]);
        sectors += k[i].sectors;
        seen_new += k[i].seen_new;
    }
    g_test_message("%s: %" G_GUINT64_FORMAT " sectors read racing, %" G_GUINT64_FORMAT " new",
                   conf->name, sectors, seen_new);
    g_assert_cmpuint(sectors, >, 0);
    g_assert_cmpuint(seen_new, <, sectors); /* the reads did race the writes */
    TU_OK(qed_close(r.img, &tu_err));
    if (conf->direct) {
        int status = tu_qemu_img_check(path);
        g_assert_true(status == 0 || status == -1);
    }
}

static const RaceConf race_confs[] = {
    { "race-direct-backing", true, true },
    { "race-direct-plain", false, true },
    { "race-mem-backing", true, false },
    { "race-mem-plain", false, false },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/threads/interleaved-writers-lose-nothing",
                    test_interleaved_writers_lose_nothing);
    g_test_add_func("/threads/parallel-regions-exact", test_parallel_regions_exact);
    g_test_add_func("/threads/reads-racing-cow-see-old-or-new",
                    test_reads_racing_cow_see_old_or_new);
    for (size_t i = 0; i < G_N_ELEMENTS(race_confs); i++) {
        g_autofree char *name = g_strdup_printf(
            "/threads/reads-racing-allocation-whole-sectors/%s", race_confs[i].name);
        g_test_add_data_func(name, &race_confs[i], test_reads_racing_allocation_whole_sectors);
    }
    return g_test_run();
}
