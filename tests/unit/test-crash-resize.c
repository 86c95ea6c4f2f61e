/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Power loss during a resize (qed_resize) on the recording device (blk-log):
 * a shrink, and a grow over a longer backing file (whose new part becomes
 * zero clusters). For every request the resize and the marking clean after
 * it issue, a number of crash states are built. Each state, as it is, must
 * be consistent but for leaks by QEMU's rules (and qemu-img check must say
 * so on a sample); it must open (repairing itself) at the old or the new
 * size with every sector inside the smaller one as written before. After a
 * shrink: past the new size, at the old size, a sector holds its old data or
 * zeros; at the new size, growing back reads zeros there. After a grow to
 * the new size, the new part reads zeros, not the backing file. The last
 * state must check clean, without leaks, and end at its last cluster.
 * For a shrink the data is laid out so that the compaction has to move
 * clusters and tables: the part given up is written first, so it lies low
 * in the file.
 * QED_CRASH_VARIANTS=N sets the random states per crash point (default 4;
 * 2 under a sanitizer).
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "image.h"

#define SECTOR 512u

typedef struct Workload {
    const char *name;
    uint64_t size;     /* bytes before the resize */
    uint64_t new_size; /* bytes after it */
    uint32_t cluster_size;
    uint32_t table_size;
    guint32 seed;
    bool backing; /* over a raw backing file as long as the larger size */
} Workload;

static uint8_t backing_value(uint32_t sector)
{
    return (uint8_t)(20 + sector % 200);
}

static char *backing_path(const Workload *w)
{
    g_autofree char *name = g_strdup_printf("%s.raw", w->name);
    return tu_path(name);
}

static void make_backing(const Workload *w)
{
    g_autofree char *path = backing_path(w);
    uint32_t n = (uint32_t)(MAX(w->size, w->new_size) / SECTOR);
    uint8_t *buf = g_malloc((size_t)n * SECTOR);
    for (uint32_t s = 0; s < n; s++) {
        memset(buf + (size_t)s * SECTOR, backing_value(s), SECTOR);
    }
    g_assert_true(g_file_set_contents(path, (char *)buf, (gssize)n * SECTOR, NULL));
    g_free(buf);
}

/* Opens the image on dev, with its backing file when the workload has one. */
static QedImage *open_mem(const Workload *w, BlkDev *dev, unsigned flags, GError **errp)
{
    QedImage *img = image_open_blk(dev, "shrink.qed", "qed", flags | QED_OPEN_NO_BACKING, errp);
    if (img && w && w->backing) {
        g_autofree char *path = backing_path(w);
        if (image_attach_backing(img, path, "raw", errp) < 0) {
            qed_close(img, NULL);
            return NULL;
        }
    }
    return img;
}

/* Writes n random runs of sectors in [first, end), each sector all one
 * nonzero value, recording it in cur. */
static void write_runs(QedImage *img, GRand *rand, uint8_t *cur, uint32_t first, uint32_t end,
                       int n)
{
    uint8_t *buf = g_malloc(64 * SECTOR);
    for (int i = 0; i < n; i++) {
        uint32_t count = (uint32_t)g_rand_int_range(rand, 1, (gint32)MIN(64, end - first) + 1);
        uint32_t s = (uint32_t)g_rand_int_range(rand, (gint32)first, (gint32)(end - count) + 1);
        for (uint32_t k = 0; k < count; k++) {
            cur[s + k] = (uint8_t)g_rand_int_range(rand, 1, 256);
            memset(buf + (size_t)k * SECTOR, cur[s + k], SECTOR);
        }
        TU_OK(qed_pwrite(img, buf, (size_t)count * SECTOR, (uint64_t)s * SECTOR, 0, &tu_err));
    }
    g_free(buf);
}

/* The image before the resize, and the sector values it reads. */
static GBytes *make_image(const Workload *w, uint8_t *cur)
{
    g_autofree char *name = g_strdup_printf("%s.qed", w->name);
    g_autofree char *path = tu_path(name);
    g_autofree char *backing = w->backing ? backing_path(w) : NULL;
    QedCreateOptions co = { .size = w->size,
                            .cluster_size = w->cluster_size,
                            .table_size = w->table_size,
                            .backing_file = backing,
                            .backing_format = "raw" };
    TU_OK(qed_create(path, &co, &tu_err));
    GBytes *created = tu_file_bytes(path);
    BlkDev *mem = blk_mem_new("shrink.qed", g_bytes_get_data(created, NULL),
                              g_bytes_get_size(created));
    g_bytes_unref(created);
    GError *err = NULL;
    QedImage *img = open_mem(w, mem, 0, &err);
    g_assert_no_error(err);

    GRand *rand = g_rand_new_with_seed(w->seed);
    uint32_t nsect = (uint32_t)(w->size / SECTOR);
    uint32_t keep = (uint32_t)(MIN(w->new_size, w->size) / SECTOR);
    uint32_t straddle = keep > 64 ? keep - 64 : 0;
    for (uint32_t s = 0; s < nsect; s++) {
        cur[s] = w->backing ? backing_value(s) : 0;
    }
    if (keep < nsect) {
        write_runs(img, rand, cur, keep, nsect, 30); /* given up: low in the file */
    }
    write_runs(img, rand, cur, 0, keep, 30);                        /* kept: moves down */
    write_runs(img, rand, cur, straddle, MIN(keep + 64, nsect), 6); /* the cut cluster */
    if (keep < nsect) {
        write_runs(img, rand, cur, keep, nsect, 10);
    }
    g_rand_free(rand);
    /* Marked clean, as a shrink finds an image that was closed. */
    TU_OK(qed_reopen(img, QED_OPEN_NO_BACKING | QED_OPEN_READ_ONLY, &tu_err));
    GBytes *base = blk_mem_contents(img->file);
    TU_OK(qed_close(img, &tu_err));
    return base;
}

/* The state as QEMU sees it (the file cut to whole clusters): nothing worse
 * than leaks; every `sample`-th one also through qemu-img check. */
static void check_raw_state(const Workload *w, GBytes *state, size_t crash_at, bool sample)
{
    gsize len = g_bytes_get_size(state) / w->cluster_size * w->cluster_size;
    GError *err = NULL;
    QedImage *ro = open_mem(NULL, blk_mem_new("shrink.qed", g_bytes_get_data(state, NULL), len),
                            QED_OPEN_READ_ONLY, &err);
    if (!ro) {
        g_error("%s: crash at %zu: the state does not open: %s", w->name, crash_at, err->message);
    }
    QedCheckResult res;
    TU_OK(qed_check(ro, 0, &res, &tu_err));
    if (res.corruptions || res.check_errors) {
        g_error("%s: crash at %zu: %" G_GUINT64_FORMAT " corruptions", w->name, crash_at,
                res.corruptions);
    }
    TU_OK(qed_close(ro, &tu_err));
    if (!sample) {
        return;
    }
    g_autofree char *path = tu_path("qemu-state.qed");
    g_assert_true(g_file_set_contents(path, g_bytes_get_data(state, NULL),
                                      (gssize)g_bytes_get_size(state), NULL));
    int status = tu_qemu_img_check(path);
    if (status >= 0 && status != 0 && status != 3) {
        g_error("%s: crash at %zu: qemu-img check exits %d on the crash state", w->name, crash_at,
                status);
    }
}

/* Opens the state (repairing it) and checks what it reads. */
static void verify_state(const Workload *w, GBytes *state, size_t crash_at, const uint8_t *cur)
{
    GError *err = NULL;
    QedImage *img = open_mem(
        w, blk_mem_new("shrink.qed", g_bytes_get_data(state, NULL), g_bytes_get_size(state)), 0,
        &err);
    if (!img) {
        g_error("%s: crash at %zu: open failed: %s", w->name, crash_at, err->message);
    }
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    if (res.corruptions || res.check_errors) {
        g_error("%s: crash at %zu: %" G_GUINT64_FORMAT " corruptions after repair", w->name,
                crash_at, res.corruptions);
    }
    uint64_t size = qed_get_size(img);
    if (size != w->size && size != w->new_size) {
        g_error("%s: crash at %zu: size %" G_GUINT64_FORMAT, w->name, crash_at, size);
    }
    uint64_t small = MIN(w->size, w->new_size), big = MAX(w->size, w->new_size);
    bool resized = size == w->new_size;
    uint8_t *disk = g_malloc(big);
    TU_OK(qed_pread(img, disk, small, 0, &tu_err));
    if (w->new_size > w->size) {
        /* A grow: inside the old size as written; the new part zeros. */
        if (resized) {
            TU_OK(qed_pread(img, disk + small, big - small, small, &tu_err));
        } else {
            memset(disk + small, 0, big - small);
        }
    } else {
        if (resized) {
            TU_OK(qed_resize(img, w->size, &tu_err)); /* grow back */
        }
        TU_OK(qed_pread(img, disk + small, big - small, small, &tu_err));
    }
    for (uint32_t s = 0; s < big / SECTOR; s++) {
        const uint8_t *p = disk + (size_t)s * SECTOR;
        for (uint32_t b = 1; b < SECTOR; b++) {
            if (p[b] != p[0]) {
                g_error("%s: crash at %zu: sector %u is torn", w->name, crash_at, s);
            }
        }
        bool inside = (uint64_t)s * SECTOR < small;
        /* A shrink cut short gives the tail up in part: its sectors read
         * as before, as zeros, or (unallocated) from the backing file. */
        bool given_up = !resized && w->new_size < w->size;
        bool ok = inside ? p[0] == cur[s]
                         : p[0] == 0 || (given_up && (p[0] == cur[s] ||
                                                      (w->backing && p[0] == backing_value(s))));
        if (!ok) {
            g_error("%s: crash at %zu (%s): sector %u reads %u, written %u", w->name, crash_at,
                    resized ? "new size" : "old size", s, p[0], cur[s]);
        }
    }
    g_free(disk);
    TU_OK(qed_close(img, &tu_err));
}

static void run_workload(gconstpointer data)
{
    const Workload *w = data;
    int variants = tu_env_int("QED_CRASH_VARIANTS", tu_sanitized() ? 2 : 4);
    if (w->backing) {
        make_backing(w);
    }
    /* (zeros past the old size: what a grow must read there) */
    uint8_t *cur = g_malloc0(MAX(w->size, w->new_size) / SECTOR);
    GBytes *base = make_image(w, cur);

    BlkDev *inner = blk_mem_new("shrink.qed", g_bytes_get_data(base, NULL),
                                g_bytes_get_size(base));
    BlkDev *log = blk_log_new(inner); /* (owns inner) */
    GError *err = NULL;
    QedImage *img = open_mem(w, log, 0, &err);
    g_assert_no_error(err);
    TU_OK(qed_resize(img, w->new_size, &tu_err));
    g_assert_cmpuint(qed_get_size(img), ==, w->new_size);
    /* Marked clean as close would (a shrink has done so already). */
    TU_OK(qed_reopen(img, QED_OPEN_NO_BACKING | QED_OPEN_READ_ONLY, &tu_err));
    size_t total = blk_log_count(log);

    GRand *rand = g_rand_new_with_seed(w->seed);
    uint64_t states = 0;
    for (size_t crash_at = 0; crash_at <= total; crash_at++) {
        for (int v = 0; v < variants; v++) {
            GBytes *state = blk_log_crash_state(log, base, crash_at, rand, SECTOR, NULL);
            check_raw_state(w, state, crash_at, states % 199 == 13);
            verify_state(w, state, crash_at, cur);
            g_bytes_unref(state);
            states++;
        }
    }

    /* Everything done: clean, without leaks, for QEMU too, and the file
     * holds no more than the clusters in use. */
    GBytes *final = blk_mem_contents(inner);
    g_autofree char *path = tu_path("final.qed");
    g_assert_true(g_file_set_contents(path, g_bytes_get_data(final, NULL),
                                      (gssize)g_bytes_get_size(final), NULL));
    g_assert_cmpint(tu_qemu_img_check(path), <=, 0);
    GError *cerr = NULL;
    QedImage *fin = open_mem(
        NULL, blk_mem_new("final.qed", g_bytes_get_data(final, NULL), g_bytes_get_size(final)),
        QED_OPEN_READ_ONLY, &cerr);
    g_assert_no_error(cerr);
    QedCheckResult res;
    TU_OK(qed_check(fin, 0, &res, &tu_err));
    g_assert_cmpuint(res.leaks, ==, 0);
    g_assert_cmpuint(res.corruptions, ==, 0);
    g_assert_cmpuint(g_bytes_get_size(final), ==, res.image_end_offset);
    TU_OK(qed_close(fin, &tu_err));
    g_bytes_unref(final);

    g_print("# %s: %zu logged requests, %" G_GUINT64_FORMAT " crash states\n", w->name, total,
            states);
    TU_OK(qed_close(img, &tu_err));
    g_rand_free(rand);
    g_bytes_unref(base);
    g_free(cur);
}

/* 4 KiB clusters and table_size 2: an L2 table maps 4 MiB. */
static const Workload workloads[] = {
    /* The new end cuts a cluster in the first table; the second goes. */
    { "cut-cluster-4k", 6u << 20, (3u << 20) + 1536, 4096, 2, 11 },
    /* The new end is a table boundary: no L2 table keeps entries past it. */
    { "table-boundary-4k", 6u << 20, 4u << 20, 4096, 2, 12 },
    { "cut-cluster-64k", 2u << 20, (1u << 20) + 512, 65536, 2, 13 },
    { "to-one-sector-64k", 2u << 20, 512, 65536, 4, 14 },
    /* With a backing file: the regrow in the check reads zeros all the same. */
    { "backing-cut-cluster-4k", 6u << 20, (3u << 20) + 1536, 4096, 2, 15, true },
    /* A grow over a longer backing file: the new part becomes zero clusters,
     * through a new L2 table (the old end cuts a cluster). */
    { "grow-over-backing-4k", (3u << 20) + 1536, 6u << 20, 4096, 2, 16, true },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(workloads); i++) {
        g_autofree char *name = g_strdup_printf("/crash-resize/%s", workloads[i].name);
        g_test_add_data_func(name, &workloads[i], run_workload);
    }
    return g_test_run();
}
