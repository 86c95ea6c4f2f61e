/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Power loss during a repair (qed_check with every fix flag, as `qed-img
 * check -r all` runs it): leaked clusters in the middle of the file are
 * refilled with the clusters and tables from its end, invalid and duplicate
 * references are cleared, the file shrinks. The repair runs on a recording
 * device (blk-log); for every request of the log, crash states are built,
 * and each must open, check with nothing worse than leaks, read every
 * cluster as before the repair (a cleared reference may read zeros), and
 * repair again to a clean image. QED_CRASH_VARIANTS=N sets the random states
 * per crash point (default 24).
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "image.h"

#define SECTOR 512u

typedef struct Layout {
    const char *name;
    uint32_t cluster_size;
    uint32_t table_size;
    uint64_t size;
} Layout;

static const Layout layouts[] = {
    { "4k-t1", 4096, 1, 8u << 20 },  /* one-cluster tables, 2 MiB per L2 table */
    { "4k-t2", 4096, 2, 16u << 20 }, /* two-cluster tables, 4 MiB per L2 table */
};

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return GUINT64_FROM_LE(v);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    v = GUINT64_TO_LE(v);
    memcpy(p, &v, sizeof(v));
}

/* The byte offset of L2 entry j of the table that L1 entry i points at. */
static uint64_t l2_entry_pos(const uint8_t *img, uint32_t i, uint32_t j)
{
    uint64_t l1 = get_le64(img + 40);
    uint64_t l2 = get_le64(img + l1 + 8ull * i);
    g_assert_cmpuint(l2, !=, 0);
    return l2 + 8ull * j;
}

/* An image written through the library: clusters in every L2 table's range,
 * in an order that interleaves tables and data; then damaged: leaks in the
 * middle (entries and a whole L2 table dropped), an entry pointing past the
 * end of the file, and an entry sharing another's cluster. */
static GBytes *make_damaged(const Layout *l)
{
    g_autofree char *name = g_strdup_printf("%s.qed", l->name);
    g_autofree char *path = tu_path(name);
    QedCreateOptions co = { .size = l->size,
                            .cluster_size = l->cluster_size,
                            .table_size = l->table_size };
    TU_OK(qed_create(path, &co, &tu_err));
    QedImage *img = tu_open(path, 0);
    uint64_t cs = l->cluster_size, coverage = cs * cs * l->table_size / 8;
    uint8_t *buf = g_malloc(cs);
    for (uint32_t round = 0; round < 6; round++) {
        for (uint64_t t = 0; t < l->size / coverage; t++) {
            uint64_t pos = t * coverage + (uint64_t)round * 3 * cs;
            memset(buf, (int)(1 + t * 16 + round), cs);
            TU_OK(qed_pwrite(img, buf, cs, pos, 0, &tu_err));
        }
    }
    TU_OK(qed_close(img, &tu_err));
    g_free(buf);

    GBytes *bytes = tu_file_bytes(path);
    gsize len;
    uint8_t *p = g_bytes_unref_to_data(bytes, &len);
    uint64_t l1 = get_le64(p + 40);
    put_le64(p + l2_entry_pos(p, 0, 3), 0); /* leaks in the middle */
    put_le64(p + l2_entry_pos(p, 1, 6), 0);
    put_le64(p + l2_entry_pos(p, 2, 9), 1ull << 40);                           /* past the end */
    put_le64(p + l2_entry_pos(p, 3, 12), get_le64(p + l2_entry_pos(p, 0, 0))); /* twice */
    put_le64(p + l1 + 8, 0); /* L1 entry 1: its table and data leak */
    return g_bytes_new_take(p, len);
}

/* What each cluster of the virtual disk reads on a read-only open of bytes:
 * its contents, or NULL when the read fails. */
static GPtrArray *read_clusters(GBytes *bytes, const Layout *l, QedCheckResult *res)
{
    BlkDev *dev = blk_mem_new("crash.qed", g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
    GError *err = NULL;
    QedImage *img = image_open_blk(dev, "crash.qed", "qed",
                                   QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING, &err);
    if (!img) {
        g_error("open failed: %s", err->message);
    }
    TU_OK(qed_check(img, 0, res, &tu_err));
    GPtrArray *clusters = g_ptr_array_new_with_free_func(g_free);
    for (uint64_t pos = 0; pos < l->size; pos += l->cluster_size) {
        uint8_t *c = g_malloc(l->cluster_size);
        if (qed_pread(img, c, l->cluster_size, pos, NULL) < 0) {
            g_clear_pointer(&c, g_free);
        }
        g_ptr_array_add(clusters, c);
    }
    TU_OK(qed_close(img, &tu_err));
    return clusters;
}

static bool is_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static void run_layout(gconstpointer data)
{
    const Layout *l = data;
    int variants = 24;
    const char *env = g_getenv("QED_CRASH_VARIANTS");
    if (env) {
        variants = atoi(env);
    }
    GBytes *base = make_damaged(l);
    QedCheckResult before_res;
    GPtrArray *before = read_clusters(base, l, &before_res);
    g_assert_cmpuint(before_res.corruptions, ==, 2);
    g_assert_cmpuint(before_res.leaks, >, 4);

    /* The repair, recorded. */
    BlkDev *log = blk_log_new(
        blk_mem_new("crash.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base)));
    GError *err = NULL;
    QedImage *img = image_open_blk(log, "crash.qed", "qed", QED_OPEN_CHECK | QED_OPEN_NO_BACKING,
                                   &err);
    g_assert_no_error(err);
    QedCheckResult res;
    TU_OK(qed_check(img, QED_CHECK_FIX_ERRORS | QED_CHECK_FIX_LEAKS | QED_CHECK_FIX_COMPACT, &res,
                    &tu_err));
    g_assert_cmpuint(res.corruptions_fixed, ==, 2);
    g_assert_cmpuint(res.leaks_fixed, ==, before_res.leaks);
    size_t total = blk_log_count(log);
    g_assert_cmpint(blk_log_op(log, total - 1)->kind, ==, BLK_LOG_FLUSH);
    GRand *rand = g_rand_new_with_seed(42);
    GBytes *repaired = blk_log_crash_state(log, base, total, rand, SECTOR, NULL);
    g_assert_cmpuint(g_bytes_get_size(repaired), <, g_bytes_get_size(base));

    uint64_t states = 0;
    for (size_t crash_at = 0; crash_at <= total; crash_at++) {
        for (int v = 0; v < (crash_at == total ? 1 : variants); v++) {
            GBytes *state = crash_at == total
                                ? g_bytes_ref(repaired)
                                : blk_log_crash_state(log, base, crash_at, rand, SECTOR, NULL);
            QedCheckResult r;
            GPtrArray *now = read_clusters(state, l, &r);
            if (r.corruptions > 2 || r.check_errors) {
                g_error("%s: crash at %zu/%zu: %" G_GUINT64_FORMAT " corruptions", l->name,
                        crash_at, total, r.corruptions);
            }
            for (guint k = 0; k < before->len; k++) {
                const uint8_t *want = g_ptr_array_index(before, k);
                const uint8_t *got = g_ptr_array_index(now, k);
                /* A cleared reference fails (not yet cleared) or reads zeros. */
                bool same = want && got ? memcmp(want, got, l->cluster_size) == 0 : want == got;
                bool cleared = got && is_zero(got, l->cluster_size);
                if (!same && !cleared) {
                    g_error("%s: crash at %zu/%zu: cluster %u changed", l->name, crash_at, total,
                            k);
                }
            }
            g_ptr_array_unref(now);

            /* Repairing again ends clean. */
            BlkDev *dev = blk_mem_new("again.qed", g_bytes_get_data(state, NULL),
                                      g_bytes_get_size(state));
            QedImage *again = image_open_blk(dev, "again.qed", "qed",
                                             QED_OPEN_CHECK | QED_OPEN_NO_BACKING, &err);
            g_assert_no_error(err);
            TU_OK(qed_check(again,
                            QED_CHECK_FIX_ERRORS | QED_CHECK_FIX_LEAKS | QED_CHECK_FIX_COMPACT, &r,
                            &tu_err));
            TU_OK(qed_check(again, 0, &r, &tu_err));
            g_assert_cmpuint(r.corruptions + r.leaks + r.check_errors, ==, 0);
            TU_OK(qed_close(again, &tu_err));
            g_bytes_unref(state);
            states++;
        }
    }
    TU_OK(qed_close(img, &tu_err)); /* the log goes with it */
    g_print("# %s: %zu logged requests, %" G_GUINT64_FORMAT " crash states verified\n", l->name,
            total, states);
    g_rand_free(rand);
    g_ptr_array_unref(before);
    g_bytes_unref(repaired);
    g_bytes_unref(base);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(layouts); i++) {
        g_autofree char *name = g_strdup_printf("/check-crash/%s", layouts[i].name);
        g_test_add_data_func(name, &layouts[i], run_layout);
    }
    return g_test_run();
}
