/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Power loss at every point: workloads run on a recording device (blk-log),
 * and for every request of the log a number of crash states are built (what
 * a volatile write cache may have persisted, torn at sectors). Each state,
 * as it is, must be consistent but for leaks by QEMU's rules (every table and
 * cluster an entry names wholly inside the file: checked on the file cut to
 * whole clusters, and by qemu-img check itself on a sample); it must then
 * open (repairing itself), check without corruption, keep every sector that
 * a completed flush acknowledged, and hold old or new data everywhere else.
 * The workloads grow the image once (resize) and issue some requests from
 * several threads at once.
 * QED_CRASH_VARIANTS=N sets the random states per crash point (default 36,
 * about 105,000 states in all; 4 under a sanitizer, where every crash point
 * is still visited but each with fewer states).
 */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "image.h"

#define SECTOR 512u

typedef struct UserOp {
    size_t log_start; /* log length when the request was issued */
    uint32_t first;   /* first sector */
    uint32_t count;   /* sectors */
    uint8_t value;    /* every byte of those sectors */
} UserOp;

typedef struct Flush {
    size_t log_after;  /* log length when the flush returned */
    size_t ops_before; /* user ops issued before it */
    uint8_t *snapshot; /* sector values it acknowledged */
} Flush;

/* The workload writes only inside these sector ranges, and only they are
 * read back after each crash (the rest must stay unallocated). */
typedef struct Window {
    uint32_t first, end;
} Window;

typedef struct Workload {
    const char *name;
    Window windows[2];
    uint64_t size;
    uint32_t cluster_size;
    uint32_t table_size;
    bool backing;
    int nops;
    guint32 seed;
} Workload;

static uint8_t backing_value(uint32_t sector)
{
    return (uint8_t)(20 + sector % 200);
}

static char *make_backing(const Workload *w)
{
    g_autofree char *name = g_strdup_printf("%s.raw", w->name);
    char *path = tu_path(name);
    uint32_t n = (uint32_t)(w->size / SECTOR) / 2; /* shorter than the image */
    uint8_t *buf = g_malloc((size_t)n * SECTOR);
    for (uint32_t s = 0; s < n; s++) {
        memset(buf + (size_t)s * SECTOR, backing_value(s), SECTOR);
    }
    g_assert_true(g_file_set_contents(path, (char *)buf, (gssize)n * SECTOR, NULL));
    g_free(buf);
    return path;
}

static bool allowed(const Flush *f, const UserOp *ops, size_t nops, size_t crash_at,
                    uint32_t sector, uint8_t value)
{
    if (f->snapshot[sector] == value) {
        return true;
    }
    for (size_t i = f->ops_before; i < nops && ops[i].log_start < crash_at; i++) {
        if (sector >= ops[i].first && sector < ops[i].first + ops[i].count &&
            ops[i].value == value) {
            return true;
        }
    }
    return false;
}

static void verify_sector(const Workload *w, const Flush *f, GArray *ops, size_t crash_at,
                          const uint8_t *disk, uint32_t s)
{
    const uint8_t *p = disk + (size_t)s * SECTOR;
    for (uint32_t b = 1; b < SECTOR; b++) {
        if (p[b] != p[0]) {
            g_error("%s: crash at %zu: sector %u is torn inside", w->name, crash_at, s);
        }
    }
    if (!allowed(f, (const UserOp *)(void *)ops->data, ops->len, crash_at, s, p[0])) {
        g_error("%s: crash at %zu: sector %u reads %u, acknowledged %u", w->name, crash_at, s,
                p[0], f->snapshot[s]);
    }
}

typedef struct BatchJob {
    QedImage *img;
    UserOp op;
    int kind; /* 0 write, 1 zero write, 2 discard */
} BatchJob;

static gpointer batch_main(gpointer data)
{
    BatchJob *j = data;
    uint64_t off = (uint64_t)j->op.first * SECTOR, len = (uint64_t)j->op.count * SECTOR;
    if (j->kind == 0) {
        uint8_t *buf = g_malloc(len);
        memset(buf, j->op.value, len);
        TU_OK(qed_pwrite(j->img, buf, len, off, 0, &tu_err));
        g_free(buf);
    } else if (j->kind == 1) {
        TU_OK(qed_pwrite_zeroes(j->img, len, off, 0, &tu_err));
    } else {
        TU_OK(qed_discard(j->img, len, off, &tu_err));
    }
    return NULL;
}

/* Four requests at once from four threads, each in its own quarter of the
 * window (so each sector has one writer). They count as issued when the
 * batch starts. */
static void concurrent_batch(QedImage *img, BlkDev *log, const Window *win, GRand *rand,
                             GArray *ops, uint8_t *cur)
{
    BatchJob jobs[4];
    GThread *threads[4];
    uint32_t quarter = (win->end - win->first) / 4;
    size_t start = blk_log_count(log);
    for (int t = 0; t < 4; t++) {
        uint32_t count = (uint32_t)g_rand_int_range(rand, 1, (gint32)MIN(40, quarter));
        uint32_t lo = win->first + (uint32_t)t * quarter;
        uint32_t first = (uint32_t)g_rand_int_range(rand, (gint32)lo,
                                                    (gint32)(lo + quarter - count));
        int kind = g_rand_int_range(rand, 0, 6);
        jobs[t] = (BatchJob){ .img = img,
                              .kind = kind < 4 ? 0 : kind - 3,
                              .op = { .log_start = start, .first = first, .count = count } };
        if (jobs[t].kind == 0) {
            jobs[t].op.value = (uint8_t)g_rand_int_range(rand, 1, 256);
        }
    }
    for (int t = 0; t < 4; t++) {
        threads[t] = g_thread_new("batch", batch_main, &jobs[t]);
    }
    for (int t = 0; t < 4; t++) {
        g_thread_join(threads[t]);
        memset(cur + jobs[t].op.first, jobs[t].op.value, jobs[t].op.count);
        g_array_append_val(ops, jobs[t].op);
    }
}

/* Writes the repaired state to a file and has QEMU check it and read it the
 * same (the reference is what libqed read). */
static void check_with_qemu(GBytes *repaired, const uint8_t *expect, uint64_t size,
                            const char *name)
{
    g_autofree char *path = tu_path(name);
    g_autofree char *flat = g_strdup_printf("%s.flat", path);
    g_assert_true(g_file_set_contents(path, g_bytes_get_data(repaired, NULL),
                                      (gssize)g_bytes_get_size(repaired), NULL));
    g_assert_true(g_file_set_contents(flat, (const char *)expect, (gssize)size, NULL));
    int status = tu_qemu_img_check(path);
    if (status < 0) {
        return;
    }
    /* Leaks (exit 3) are allowed: a crash may leave clusters nobody uses. */
    if (status != 0 && status != 3) {
        g_autofree char *show = g_strdup_printf("qemu-img check '%s'; ls -l '%s'", path, path);
        g_assert_cmpint(system(show), >=, 0);
    }
    g_assert_true(status == 0 || status == 3);
    g_autofree char *cmd = g_strdup_printf("qemu-img compare -q -f qed -F raw '%s' '%s'", path,
                                           flat);
    g_assert_cmpint(system(cmd), ==, 0);
}

/* The crash state as it is, by QEMU's rules: QEMU's check takes the file's
 * length rounded down to a cluster, so a cluster that sticks out past the end
 * is a corruption there. Ours, on the file cut to whole clusters, sees the
 * same; it must find nothing worse than leaks. Every `sample`-th state goes
 * to qemu-img check too. */
static void check_raw_state(const Workload *w, GBytes *state, size_t crash_at, bool sample)
{
    g_autofree char *what = g_strdup_printf("%s: crash at %zu", w->name, crash_at);
    tu_assert_state_consistent(state, w->cluster_size, what);
    if (!sample || w->table_size < 2) {
        return; /* (QEMU opens no image of table_size 1) */
    }
    g_autofree char *path = tu_path("qemu-raw.qed");
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

static void run_workload(gconstpointer data)
{
    const Workload *w = data;
    int variants = tu_env_int("QED_CRASH_VARIANTS", tu_sanitized() ? 4 : 36);
    /* About 25 states per workload go to qemu-img, however many there are. */
    uint64_t every = MAX(100, (uint64_t)variants * 111);
    uint32_t nsect = (uint32_t)(w->size / SECTOR);
    g_autofree char *backing = w->backing ? make_backing(w) : NULL;
    g_autofree char *name = g_strdup_printf("%s.qed", w->name);
    g_autofree char *path = tu_path(name);
    /* Created at half its size: the workload grows it (resize). */
    QedCreateOptions co = { .size = w->size / 2,
                            .cluster_size = w->cluster_size,
                            .table_size = w->table_size,
                            .backing_file = backing,
                            .backing_format = "raw" };
    TU_OK(qed_create(path, &co, &tu_err));
    GBytes *base = tu_file_bytes(path);

    BlkDev *log = blk_log_new(
        blk_mem_new("crash.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base)));
    GError *err = NULL;
    QedImage *img = tu_open_on_blk(log, backing, &err);
    g_assert_no_error(err);

    uint8_t *cur = g_malloc(nsect);
    for (uint32_t s = 0; s < nsect; s++) {
        cur[s] = w->backing && s < nsect / 2 ? backing_value(s) : 0;
    }
    GArray *ops = g_array_new(FALSE, FALSE, sizeof(UserOp));
    GArray *flushes = g_array_new(FALSE, FALSE, sizeof(Flush));
    Flush f0 = { .log_after = 0, .ops_before = 0, .snapshot = g_memdup2(cur, nsect) };
    g_array_append_val(flushes, f0);

    GRand *rand = g_rand_new_with_seed(w->seed);
    uint8_t *buf = g_malloc(64 * SECTOR);
    uint32_t size_sect = nsect / 2; /* sectors of the image now */
    for (int i = 0; i < w->nops; i++) {
        if (i == w->nops / 3) {
            TU_OK(qed_resize(img, w->size, &tu_err));
            size_sect = nsect;
            continue;
        }
        int kind = g_rand_int_range(rand, 0, 20);
        if (kind < 2) {
            TU_OK(qed_flush(img, &tu_err));
            Flush f = { .log_after = blk_log_count(log),
                        .ops_before = ops->len,
                        .snapshot = g_memdup2(cur, nsect) };
            g_array_append_val(flushes, f);
            continue;
        }
        const Window *win = &w->windows[g_rand_int_range(rand, 0, 2)];
        if (win->end > size_sect) {
            win = &w->windows[0];
        }
        if (kind == 2) {
            concurrent_batch(img, log, win, rand, ops, cur);
            continue;
        }
        uint32_t count = (uint32_t)g_rand_int_range(rand, 1, 40);
        uint32_t first = (uint32_t)g_rand_int_range(rand, (gint32)win->first,
                                                    (gint32)(win->end - count));
        UserOp op = { .log_start = blk_log_count(log), .first = first, .count = count };
        uint64_t off = (uint64_t)first * SECTOR, len = (uint64_t)count * SECTOR;
        if (kind < 15) {
            op.value = (uint8_t)g_rand_int_range(rand, 1, 256);
            memset(buf, op.value, len);
            TU_OK(qed_pwrite(img, buf, len, off, 0, &tu_err));
        } else if (kind < 18) {
            TU_OK(qed_pwrite_zeroes(img, len, off, 0, &tu_err));
        } else {
            TU_OK(qed_discard(img, len, off, &tu_err));
        }
        memset(cur + first, op.value, count);
        g_array_append_val(ops, op);
    }

    size_t total = blk_log_count(log);
    uint64_t states = 0;
    uint8_t *disk = g_malloc(w->size);
    for (size_t crash_at = 0; crash_at <= total; crash_at++) {
        const Flush *f = &g_array_index(flushes, Flush, 0);
        for (guint k = 0; k < flushes->len; k++) {
            if (g_array_index(flushes, Flush, k).log_after <= crash_at) {
                f = &g_array_index(flushes, Flush, k);
            }
        }
        for (int v = 0; v < variants; v++) {
            GBytes *state = blk_log_crash_state(log, base, crash_at, rand, SECTOR, NULL);
            check_raw_state(w, state, crash_at, states % every == every / 2);
            g_autofree char *what = g_strdup_printf("%s: crash at %zu/%zu", w->name, crash_at,
                                                    total);
            QedImage *c = tu_open_crash_state(state, false, backing, what);
            g_bytes_unref(state);
            /* The resize may or may not have reached the disk. */
            uint32_t csect = (uint32_t)(qed_get_size(c) / SECTOR);
            g_assert_true(csect == nsect || csect == nsect / 2);
            for (int wi = 0; wi < 2; wi++) {
                const Window *win = &w->windows[wi];
                uint32_t end = MIN(win->end, csect);
                if (end <= win->first) {
                    continue;
                }
                uint64_t woff = (uint64_t)win->first * SECTOR;
                TU_OK(qed_pread(c, disk + woff, (uint64_t)(end - win->first) * SECTOR, woff,
                                &tu_err));
                for (uint32_t s = win->first; s < end; s++) {
                    verify_sector(w, f, ops, crash_at, disk, s);
                }
            }
            if (states % every == 0 && w->table_size > 1 && csect == nsect) {
                TU_OK(qed_pread(c, disk, w->size, 0, &tu_err));
                GBytes *repaired = blk_mem_contents(c->file);
                check_with_qemu(repaired, disk, w->size, "qemu-check.qed");
                g_bytes_unref(repaired);
            }
            TU_OK(qed_close(c, &tu_err));
            states++;
        }
    }
    g_test_message("%s: %zu logged requests, %" G_GUINT64_FORMAT " crash states verified", w->name,
                   total, states);
    g_print("# %s: %" G_GUINT64_FORMAT " crash states\n", w->name, states);

    TU_OK(qed_close(img, &tu_err));
    for (guint k = 0; k < flushes->len; k++) {
        g_free(g_array_index(flushes, Flush, k).snapshot);
    }
    g_array_free(flushes, TRUE);
    g_array_free(ops, TRUE);
    g_free(disk);
    g_free(buf);
    g_free(cur);
    g_rand_free(rand);
    g_bytes_unref(base);
}

/* With 4 KiB clusters and table_size 2 an L2 table maps 4 MiB: the second
 * window straddles the boundary between the first two tables. */
#define W4K \
    { \
        { 0, 1024 }, \
        { \
            7680, 8704 \
        } \
    }
#define W64K \
    { \
        { 0, 1024 }, \
        { \
            1024, 2048 \
        } \
    }
static const Workload workloads[] = {
    { "plain-4k", W4K, 6u << 20, 4096, 2, false, 250, 1 },
    { "raw-backing-4k", W4K, 6u << 20, 4096, 2, true, 250, 2 },
    { "raw-backing-64k", W64K, 1u << 20, 65536, 2, true, 150, 3 },
    { "plain-64k", W64K, 1u << 20, 65536, 2, false, 150, 4 },
    { "table1-4k", W4K, 6u << 20, 4096, 1, true, 250, 5 },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(workloads); i++) {
        g_autofree char *name = g_strdup_printf("/crash/%s", workloads[i].name);
        g_test_add_data_func(name, &workloads[i], run_workload);
    }
    return g_test_run();
}
