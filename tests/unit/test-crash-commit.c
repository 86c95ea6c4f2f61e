/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Power loss while an overlay is emptied after a commit (qed_make_empty) and
 * while the header's backing file name is rewritten (qed_change_backing_file):
 * the overlay runs on the recording device (blk-log), and for every request
 * of the log a number of crash states are built. Emptying: each state, as it
 * is, must be consistent but for leaks by QEMU's rules (and by qemu-img check
 * on a sample), read the committed data through the backing file (which holds
 * it too), and open writable (repairing) without corruption. Renaming: each
 * state names the old backing file or the new one, whole, with its format.
 * QED_CRASH_VARIANTS=N sets the random states per crash point (default 40).
 */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk/blk.h"
#include "image.h"

#define SECTOR 512u

static int variants(void)
{
    return tu_env_int("QED_CRASH_VARIANTS", tu_sanitized() ? 8 : 40);
}

/* Opens the image whose file is dev (owned), attaching the raw backing
 * file by path unless backing is NULL. */
static QedImage *open_on(BlkDev *dev, const char *backing, unsigned flags, GError **errp)
{
    QedImage *img = image_open_blk(dev, "crash.qed", "qed", flags | QED_OPEN_NO_BACKING, errp);
    if (img && backing && image_attach_backing(img, backing, "raw", errp) < 0) {
        qed_close(img, NULL);
        return NULL;
    }
    return img;
}

static QedImage *open_bytes(GBytes *bytes, gsize len, const char *backing, unsigned flags)
{
    BlkDev *mem = blk_mem_new("crash.qed", g_bytes_get_data(bytes, NULL), len);
    GError *err = NULL;
    QedImage *img = open_on(mem, backing, flags, &err);
    if (!img) {
        g_error("the crash state does not open: %s", err->message);
    }
    return img;
}

/* A consistent image but for leaks, by our check on the state cut to whole
 * clusters (QEMU's view of a partial last cluster). */
static void assert_consistent(GBytes *state, uint32_t cluster, size_t crash_at)
{
    gsize len = g_bytes_get_size(state) / cluster * cluster;
    QedImage *img = open_bytes(state, len, NULL, QED_OPEN_READ_ONLY);
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    if (res.corruptions || res.check_errors) {
        g_error("crash at %zu: %" G_GUINT64_FORMAT " corruptions", crash_at, res.corruptions);
    }
    TU_OK(qed_close(img, &tu_err));
}

/* ------------------------------------------------------- emptying after commit */

typedef struct EmptyCase {
    const char *name;
    uint32_t cluster_size;
    uint64_t size;      /* of the overlay; the backing file is half as long */
    uint64_t writes[4]; /* offsets of 96 KiB data writes (0 ends the list) */
    uint64_t zero_at;   /* a zero cluster's offset */
} EmptyCase;

static void fill_backing(const char *path, uint64_t len)
{
    uint8_t *buf = g_malloc(len);
    for (uint64_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(20 + (i / SECTOR) % 200);
    }
    g_assert_true(g_file_set_contents(path, (char *)buf, (gssize)len, NULL));
    g_free(buf);
}

/* What the library's commit does (qed-img commit): the overlay's clusters,
 * data and zeros, into the backing file opened read-write; then a flush. */
static void commit_into_backing(QedImage *img)
{
    QedImage *b = qed_get_backing(img);
    TU_OK(qed_reopen(b, b->opts.flags & ~QED_OPEN_READ_ONLY, &tu_err));
    uint64_t size = qed_get_size(img);
    TU_OK(qed_resize(b, size, &tu_err)); /* as QEMU's commit grows a shorter base */
    uint8_t *buf = g_malloc(1u << 20);
    for (uint64_t pos = 0; pos < size;) {
        QedExtent ext;
        TU_OK(qed_block_status(img, MIN(size - pos, 1u << 20), pos, &ext, &tu_err));
        if (ext.type == QED_EXTENT_DATA) {
            TU_OK(qed_pread(img, buf, ext.length, pos, &tu_err));
            TU_OK(qed_pwrite(b, buf, ext.length, pos, 0, &tu_err));
        } else if (ext.type == QED_EXTENT_ZERO) {
            TU_OK(qed_pwrite_zeroes(b, ext.length, pos, 0, &tu_err));
        }
        pos += ext.length;
    }
    g_free(buf);
    /* No flush here: qed_make_empty flushes the backing chain first. */
}

static void run_empty(gconstpointer data)
{
    const EmptyCase *c = data;
    g_autofree char *bname = g_strdup_printf("%s.raw", c->name);
    g_autofree char *backing = tu_path(bname);
    g_autofree char *oname = g_strdup_printf("%s.qed", c->name);
    g_autofree char *path = tu_path(oname);
    fill_backing(backing, c->size / 2);
    QedCreateOptions co = { .size = c->size,
                            .cluster_size = c->cluster_size,
                            .table_size = 2,
                            .backing_file = backing,
                            .backing_format = "raw" };
    TU_OK(qed_create(path, &co, &tu_err));

    /* The overlay's contents, written outside the log. */
    QedImage *img = tu_open(path, 0);
    uint8_t *buf = g_malloc(96 * 1024);
    for (int i = 0; i < 4 && (i == 0 || c->writes[i]); i++) {
        tu_fill(buf, 96 * 1024, (uint8_t)(i + 1));
        TU_OK(qed_pwrite(img, buf, 96 * 1024, c->writes[i] + 1000, 0, &tu_err));
    }
    TU_OK(qed_pwrite_zeroes(img, c->cluster_size, c->zero_at, 0, &tu_err));
    uint8_t *want = g_malloc(c->size);
    TU_OK(qed_pread(img, want, c->size, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));

    /* Commit, then empty on the recording device. */
    GBytes *base = tu_file_bytes(path);
    BlkDev *log = blk_log_new(
        blk_mem_new("crash.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base)));
    GError *err = NULL;
    img = open_on(log, backing, 0, &err);
    g_assert_no_error(err);
    commit_into_backing(img);
    g_assert_cmpuint(blk_log_count(log), ==, 0); /* the copy only reads the overlay */
    TU_OK(qed_make_empty(img, &tu_err));
    size_t emptied = blk_log_count(log);
    GRand *rand = g_rand_new_with_seed(7);
    size_t durable;
    GBytes *final_state = blk_log_crash_state(log, base, emptied, rand, SECTOR, &durable);
    g_assert_cmpuint(durable, ==, emptied); /* it ends with a flush */

    /* The backing file holds the committed data, whatever happens above. */
    gsize blen;
    g_autofree char *bdata = NULL;
    g_assert_true(g_file_get_contents(backing, &bdata, &blen, NULL));
    g_assert_cmpuint(blen, ==, c->size);
    g_assert_true(memcmp(bdata, want, blen) == 0);

    /* Emptied: header + L1, nothing allocated, no leaks. */
    uint64_t l1_end = (uint64_t)c->cluster_size * 3;
    g_assert_cmpuint(g_bytes_get_size(final_state), ==, l1_end);
    QedImage *f = open_bytes(final_state, l1_end, backing, QED_OPEN_READ_ONLY);
    QedCheckResult res;
    TU_OK(qed_check(f, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions + res.leaks + res.allocated_clusters, ==, 0);
    TU_OK(qed_close(f, &tu_err));
    g_bytes_unref(final_state);

    /* Every crash state of the emptying (and of nothing else). */
    uint8_t *got = g_malloc(c->size);
    uint64_t states = 0;
    int nvar = variants();
    for (size_t crash_at = 0; crash_at <= emptied; crash_at++) {
        for (int v = 0; v < nvar; v++) {
            GBytes *state = blk_log_crash_state(log, base, crash_at, rand, SECTOR, NULL);
            assert_consistent(state, c->cluster_size, crash_at);
            if (states % 25 == 0) {
                g_autofree char *qpath = tu_path("qemu-state.qed");
                g_assert_true(g_file_set_contents(qpath, g_bytes_get_data(state, NULL),
                                                  (gssize)g_bytes_get_size(state), NULL));
                int status = tu_qemu_img_check(qpath);
                if (status > 0 && status != 3) {
                    g_error("crash at %zu: qemu-img check exits %d", crash_at, status);
                }
            }
            /* As it is, and after a repairing writable open: the same data. */
            for (int writable = 0; writable < 2; writable++) {
                QedImage *s = open_bytes(state, g_bytes_get_size(state), backing,
                                         writable ? 0 : QED_OPEN_READ_ONLY);
                TU_OK(qed_pread(s, got, c->size, 0, &tu_err));
                if (memcmp(got, want, c->size) != 0) {
                    g_error("crash at %zu: the data changed (writable open %d)", crash_at,
                            writable);
                }
                if (writable) {
                    TU_OK(qed_check(s, 0, &res, &tu_err));
                    g_assert_cmpuint(res.corruptions + res.check_errors, ==, 0);
                }
                TU_OK(qed_close(s, &tu_err));
            }
            g_bytes_unref(state);
            states++;
        }
    }
    g_print("# %s: %zu logged requests, %" G_GUINT64_FORMAT " crash states\n", c->name, emptied,
            states);
    TU_OK(qed_close(img, &tu_err)); /* (and the log with it) */
    g_rand_free(rand);
    g_free(got);
    g_free(want);
    g_free(buf);
    g_bytes_unref(base);
}

/* ------------------------------------------------------ backing name rewrite */

typedef struct RenameCase {
    const char *name;
    uint32_t cluster_size;
    size_t old_len, new_len; /* new_len 0: remove the backing file */
    const char *old_fmt, *new_fmt;
    bool may_mix; /* the names cannot lie side by side (documented) */
} RenameCase;

static char *make_name(size_t len, char c)
{
    char *s = g_malloc(len + 1);
    memset(s, c, len);
    memcpy(s, "dir/", MIN(len, 4));
    s[len] = '\0';
    return s;
}

static void run_rename(gconstpointer data)
{
    const RenameCase *c = data;
    g_autofree char *oname = g_strdup_printf("%s.qed", c->name);
    g_autofree char *path = tu_path(oname);
    g_autofree char *old_name = make_name(c->old_len, 'o');
    g_autofree char *new_name = c->new_len ? make_name(c->new_len, 'n') : NULL;
    QedCreateOptions co = { .size = 1u << 20,
                            .cluster_size = c->cluster_size,
                            .backing_file = old_name,
                            .backing_format = c->old_fmt };
    TU_OK(qed_create(path, &co, &tu_err));
    GBytes *base = tu_file_bytes(path);
    BlkDev *log = blk_log_new(
        blk_mem_new("crash.qed", g_bytes_get_data(base, NULL), g_bytes_get_size(base)));
    GError *err = NULL;
    QedImage *img = open_on(log, NULL, 0, &err);
    g_assert_no_error(err);
    TU_OK(qed_change_backing_file(img, new_name, c->new_fmt, &tu_err));
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpstr(info.backing_file, ==, new_name);
    size_t total = blk_log_count(log);

    GRand *rand = g_rand_new_with_seed(11);
    uint64_t states = 0, mixed = 0;
    int nvar = variants();
    for (size_t crash_at = 0; crash_at <= total; crash_at++) {
        for (int v = 0; v < nvar; v++) {
            GBytes *state = blk_log_crash_state(log, base, crash_at, rand, SECTOR, NULL);
            assert_consistent(state, c->cluster_size, crash_at);
            QedImage *s = open_bytes(state, g_bytes_get_size(state), NULL, QED_OPEN_READ_ONLY);
            TU_OK(qed_get_info(s, &info, &tu_err));
            bool is_old = info.backing_file && strcmp(info.backing_file, old_name) == 0;
            bool is_new = new_name ? info.backing_file && strcmp(info.backing_file, new_name) == 0
                                   : info.backing_file == NULL;
            const char *fmt = info.backing_format ? info.backing_format : "qed";
            if (is_old) {
                g_assert_cmpstr(fmt, ==, c->old_fmt);
            } else if (is_new) {
                if (new_name) {
                    g_assert_cmpstr(fmt, ==, c->new_fmt);
                }
            } else if (c->may_mix && info.backing_file &&
                       (strlen(info.backing_file) == c->old_len ||
                        strlen(info.backing_file) == c->new_len)) {
                mixed++; /* the in-place case docs/design.md describes */
            } else {
                g_error("%s: crash at %zu: the header names '%.40s...' (%zu bytes)", c->name,
                        crash_at, info.backing_file ? info.backing_file : "(none)",
                        info.backing_file ? strlen(info.backing_file) : 0);
            }
            TU_OK(qed_close(s, &tu_err));
            g_bytes_unref(state);
            states++;
        }
    }
    g_print("# %s: %zu logged requests, %" G_GUINT64_FORMAT " crash states, %" G_GUINT64_FORMAT
            " mixed\n",
            c->name, total, states, mixed);
    if (!c->may_mix) {
        g_assert_cmpuint(mixed, ==, 0);
    }
    TU_OK(qed_close(img, &tu_err)); /* (and the log with it) */
    g_rand_free(rand);
    g_bytes_unref(base);
}

static const EmptyCase empty_cases[] = {
    /* 4 KiB clusters, 2-cluster tables: an L2 table maps 4 MiB, so the
     * writes need three of them and the L1 table spans 16 sectors. */
    { "empty-4k", 4096, 12u << 20, { 0, 5u << 20, 9u << 20, 0 }, 64 * 1024 },
    { "empty-64k", 65536, 4u << 20, { 0, 1u << 20, 3u << 20, 0 }, 2u << 20 },
};

static const RenameCase rename_cases[] = {
    { "rename-short", 65536, 10, 12, "raw", "qed", false },  /* one sector, atomic */
    { "rename-long", 65536, 10, 1000, "raw", "raw", false }, /* via the end of the area */
    { "rename-longer", 65536, 1000, 3000, "qed", "raw", false },
    { "rename-beside", 65536, 3000, 600, "raw", "qed", false },
    { "rename-remove", 65536, 700, 0, "raw", NULL, false },
    { "rename-in-place", 4096, 2000, 2500, "raw", "qed", true },
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(empty_cases); i++) {
        g_autofree char *name = g_strdup_printf("/crash-commit/%s", empty_cases[i].name);
        g_test_add_data_func(name, &empty_cases[i], run_empty);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(rename_cases); i++) {
        g_autofree char *name = g_strdup_printf("/crash-commit/%s", rename_cases[i].name);
        g_test_add_data_func(name, &rename_cases[i], run_rename);
    }
    return g_test_run();
}
