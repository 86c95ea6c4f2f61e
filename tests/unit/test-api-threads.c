/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One handle, many threads: allocating and in-place writes, zeroes, reads and
 * flushes at once must lose nothing, and a read racing an allocating write
 * sees each sector old or new, never zeros where the backing file had data.
 */
#include "testutil.h"

#include <string.h>

#define MiB (1024u * 1024)
#define SECTOR 512u
#define NTHREADS 8

typedef struct Worker {
    QedImage *img;
    int id;
    uint64_t size;
    volatile gint *stop;
    guint64 checked; /* sectors verified by a reader */
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
    gint stop = 0;
    Worker w[NTHREADS];
    GThread *t[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (Worker){ .img = img, .id = i, .size = size, .stop = &stop };
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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/threads/interleaved-writers-lose-nothing",
                    test_interleaved_writers_lose_nothing);
    g_test_add_func("/threads/parallel-regions-exact", test_parallel_regions_exact);
    g_test_add_func("/threads/reads-racing-cow-see-old-or-new",
                    test_reads_racing_cow_see_old_or_new);
    return g_test_run();
}
