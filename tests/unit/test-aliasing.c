/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * References into metadata: an L2 entry that names the L1 table, its own
 * table or another L2 table, a run of data that runs into a table, an L1
 * entry whose table overlaps the L1 table or another table (also one past
 * the image size). Every request through such an entry fails with EIO and
 * changes nothing in the file: qemu-img check says the same before and after.
 * A repair (qed_check with fix flags) clears the entry that points into
 * metadata and keeps the tables, after which qemu-img check finds the image
 * clean, every other cluster reads as before, and the range takes writes.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#define CS 65536u
#define TS 2u
#define TABLE (CS * TS)
#define ENTRIES (TABLE / 8)
#define COVERAGE ((uint64_t)ENTRIES * CS) /* 1 GiB per L2 table */
#define SIZE (4 * COVERAGE)

/* The image every case starts from: data at 0 (two clusters), 1 MiB and
 * 1 GiB, each with its own byte, so that the layout is: header, L1 table,
 * data, table 0, data, data, table 1 (allocation appends; the room the file
 * grew by is cut at close). */
typedef struct Layout {
    char *path;
    uint64_t l1;     /* offset of the L1 table */
    uint64_t t0, t1; /* the two L2 tables */
    uint64_t d1g;    /* the data cluster of 1 GiB, right before t1 */
} Layout;

static uint64_t get_le64(GBytes *b, uint64_t off)
{
    uint64_t v;
    memcpy(&v, (const uint8_t *)g_bytes_get_data(b, NULL) + off, sizeof(v));
    return GUINT64_FROM_LE(v);
}

static void make_layout(Layout *l, const char *name)
{
    l->path = tu_path(name);
    QedCreateOptions co = { .size = SIZE, .cluster_size = CS, .table_size = TS };
    TU_OK(qed_create(l->path, &co, &tu_err));
    QedImage *img = tu_open(l->path, 0);
    tu_write_byte(img, 0x11, 2 * CS, 0);
    tu_write_byte(img, 0x22, CS, 1u << 20);
    tu_write_byte(img, 0x33, CS, COVERAGE);
    TU_OK(qed_close(img, &tu_err));
    GBytes *b = tu_file_bytes(l->path);
    l->l1 = get_le64(b, 40);
    l->t0 = get_le64(b, l->l1);
    l->t1 = get_le64(b, l->l1 + 8);
    l->d1g = get_le64(b, l->t1);
    g_assert_cmpuint(l->d1g + CS, ==, l->t1);
    g_assert_cmpuint(g_bytes_get_size(b), ==, l->t1 + TABLE);
    g_bytes_unref(b);
    g_assert_cmpint(tu_qemu_img_check(l->path), <=, 0);
}

/* qemu-img check --output=json, or NULL without qemu-img. */
static char *qemu_check_json(const char *path)
{
    char *qemu_img = g_find_program_in_path("qemu-img");
    if (!qemu_img) {
        return NULL;
    }
    char *argv[] = { qemu_img, "check", "--output=json", (char *)path, NULL };
    char *out = NULL;
    GError *err = NULL;
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out, NULL, NULL,
                      &err)) {
        g_error("qemu-img: %s", err->message);
    }
    g_free(qemu_img);
    return out;
}

static bool has_corruptions(const char *json)
{
    return json && strstr(json, "\"corruptions\":") && !strstr(json, "\"corruptions\": 0");
}

static void expect_eio(int ret, GError *err, const char *what)
{
    if (ret != -EIO || !err || err->code != EIO) {
        g_error("%s through an entry into metadata: %d (%s)", what, ret,
                err ? err->message : "no message");
    }
    g_error_free(err);
}

/* Every kind of request on the cluster at virtual offset pos fails with EIO
 * (for a write: with the cluster allocated or not, whole or partial). */
static void requests_fail(QedImage *img, uint64_t pos)
{
    uint8_t *buf = g_malloc(CS);
    memset(buf, 0xee, CS);
    GError *err = NULL;
    int ret = qed_pread(img, buf, CS, pos, &err);
    expect_eio(ret, err, "a read");
    err = NULL;
    ret = qed_pwrite(img, buf, 4096, pos + 512, 0, &err);
    expect_eio(ret, err, "a partial write");
    err = NULL;
    ret = qed_pwrite(img, buf, CS, pos, QED_WRITE_FUA, &err);
    expect_eio(ret, err, "a FUA write");
    err = NULL;
    ret = qed_pwrite_zeroes(img, CS, pos, 0, &err);
    expect_eio(ret, err, "a zero write");
    err = NULL;
    ret = qed_pwrite_zeroes(img, 4096, pos, 0, &err);
    expect_eio(ret, err, "a partial zero write");
    err = NULL;
    ret = qed_discard(img, CS, pos, &err);
    expect_eio(ret, err, "a discard");
    err = NULL;
    QedExtent ext;
    ret = qed_block_status(img, CS, pos, &ext, &err);
    expect_eio(ret, err, "block status");
    g_free(buf);
}

/* The byte every cluster of the layout reads. */
static void reads_as_before(QedImage *img)
{
    uint8_t *buf = g_malloc(CS);
    struct {
        uint64_t pos;
        uint8_t value;
    } want[] = {
        { 0, 0x11 },
        { CS, 0x11 },
        { 1u << 20, 0x22 },
        { COVERAGE, 0x33 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
        TU_OK(qed_pread(img, buf, CS, want[i].pos, &tu_err));
        g_assert_cmpuint(buf[0], ==, want[i].value);
        g_assert_cmpuint(buf[CS - 1], ==, want[i].value);
    }
    g_free(buf);
}

typedef void (*Damage)(const Layout *l);

typedef struct Case {
    const char *name;
    Damage damage;
    uint64_t bad_pos;  /* a virtual cluster whose requests must fail */
    uint64_t good_pos; /* one that must go on working */
} Case;

/* Appends n clusters of byte value to the file; returns their offset. */
static uint64_t append_clusters(const Layout *l, uint32_t n, uint8_t value)
{
    GBytes *b = tu_file_bytes(l->path);
    uint64_t end = g_bytes_get_size(b);
    g_bytes_unref(b);
    uint8_t *buf = g_malloc((size_t)n * CS);
    memset(buf, value, (size_t)n * CS);
    tu_patch(l->path, end, buf, (size_t)n * CS);
    g_free(buf);
    return end;
}

/* L2 entry 32 of table 0 (virtual 2 MiB) pointing at the L1 table. */
static void l2_to_l1(const Layout *l)
{
    tu_patch_le(l->path, l->t0 + 32 * 8, l->l1, 8);
}

/* ... at the second cluster of its own table. */
static void l2_to_own_table(const Layout *l)
{
    tu_patch_le(l->path, l->t0 + 32 * 8, l->t0 + CS, 8);
}

/* ... at the L2 table walked after it. */
static void l2_to_later_table(const Layout *l)
{
    tu_patch_le(l->path, l->t0 + 32 * 8, l->t1, 8);
}

/* Entries 32 and 33 of table 0: a run of two clusters, contiguous in the
 * file: a data cluster (byte 0x55) and the first cluster of the (empty) L2
 * table of L1 entry 3, both appended to the file. */
static void run_into_table(const Layout *l)
{
    uint64_t data = append_clusters(l, 1, 0x55);
    uint64_t table = append_clusters(l, TS, 0);
    tu_patch_le(l->path, l->l1 + 3 * 8, table, 8);
    tu_patch_le(l->path, l->t0 + 32 * 8, data, 8);
    tu_patch_le(l->path, l->t0 + 33 * 8, table, 8);
}

/* L1 entry 2 (virtual 2 GiB) naming a table that overlaps the L1 table. */
static void l1_over_l1(const Layout *l)
{
    tu_patch_le(l->path, l->l1 + 2 * 8, l->l1 + CS, 8);
}

/* L1 entry 2 naming table 0, which entry 0 uses. */
static void l1_same_table(const Layout *l)
{
    tu_patch_le(l->path, l->l1 + 2 * 8, l->t0, 8);
}

/* The last L1 entry, past the image size, names a table at the end of the
 * file, and L2 entry 32 of table 0 points into it. */
static void l2_to_table_past_size(const Layout *l)
{
    uint64_t table = append_clusters(l, TS, 0);
    tu_patch_le(l->path, l->l1 + (ENTRIES - 1) * 8, table, 8);
    tu_patch_le(l->path, l->t0 + 32 * 8, table + CS, 8);
}

static const Case cases[] = {
    { "l2-to-l1", l2_to_l1, 2u << 20, 1u << 20 },
    { "l2-to-own-table", l2_to_own_table, 2u << 20, 1u << 20 },
    { "l2-to-later-table", l2_to_later_table, 2u << 20, COVERAGE },
    { "run-into-table", run_into_table, (2u << 20) + CS, 2u << 20 },
    { "l1-over-l1", l1_over_l1, 2 * COVERAGE, 0 },
    { "l1-same-table", l1_same_table, 2 * COVERAGE, 0 },
    { "l2-to-table-past-size", l2_to_table_past_size, 2u << 20, 0 },
};

static void test_case(gconstpointer data)
{
    const Case *c = data;
    Layout l;
    g_autofree char *name = g_strdup_printf("%s.qed", c->name);
    make_layout(&l, name);
    c->damage(&l);
    g_autofree char *before_check = qemu_check_json(l.path);
    g_assert_true(!before_check || has_corruptions(before_check));
    GBytes *before = tu_file_bytes(l.path);

    QedImage *img = tu_open(l.path, 0);
    requests_fail(img, c->bad_pos);
    uint8_t buf[512];
    TU_OK(qed_pread(img, buf, sizeof(buf), c->good_pos, &tu_err));
    g_assert_cmpuint(buf[0], !=, 0);
    reads_as_before(img);
    TU_OK(qed_close(img, &tu_err));

    /* Nothing changed: the tables are as they were, and so is QEMU's view. */
    GBytes *after = tu_file_bytes(l.path);
    g_assert_true(g_bytes_equal(before, after));
    g_autofree char *after_check = qemu_check_json(l.path);
    g_assert_cmpstr(before_check, ==, after_check);
    g_bytes_unref(after);

    if (c->damage == run_into_table) {
        /* A write over the whole run writes its first cluster (data) and
         * fails where the run meets the table, which stays as it was. */
        img = tu_open(l.path, 0);
        uint8_t *two = g_malloc(2 * CS);
        memset(two, 0x66, 2 * CS);
        GError *err = NULL;
        int ret = qed_pwrite(img, two, 2 * CS, 2u << 20, 0, &err);
        expect_eio(ret, err, "a write over a run into a table");
        TU_OK(qed_pread(img, buf, sizeof(buf), 2u << 20, &tu_err));
        g_assert_cmpuint(buf[0], ==, 0x66);
        TU_OK(qed_close(img, &tu_err));
        g_free(two);
        after = tu_file_bytes(l.path);
        gsize n = g_bytes_get_size(after);
        g_assert_cmpuint(n, ==, g_bytes_get_size(before));
        const uint8_t *p = g_bytes_get_data(after, NULL), *q = g_bytes_get_data(before, NULL);
        g_assert_cmpmem(p + n - TABLE, TABLE, q + n - TABLE, TABLE);
        g_bytes_unref(after);
        g_autofree char *run_check = qemu_check_json(l.path);
        g_assert_cmpstr(before_check, ==, run_check);
    }

    /* A repair clears the entry into metadata and keeps the tables. */
    QedOpenOptions o = { .flags = QED_OPEN_CHECK };
    GError *err = NULL;
    img = qed_open(l.path, &o, &err);
    g_assert_no_error(err);
    QedCheckResult res;
    TU_OK(qed_check(img, QED_CHECK_FIX_ERRORS | QED_CHECK_FIX_LEAKS, &res, &tu_err));
    g_assert_cmpuint(res.corruptions, >, 0);
    g_assert_cmpuint(res.corruptions_fixed, ==, res.corruptions);
    TU_OK(qed_close(img, &tu_err));
    int status = tu_qemu_img_check(l.path);
    if (status >= 0) {
        g_assert_cmpint(status, ==, 0);
    }
    GBytes *repaired = tu_file_bytes(l.path);
    g_assert_cmpuint(get_le64(repaired, get_le64(repaired, 40)), ==, l.t0);
    g_assert_cmpuint(get_le64(repaired, get_le64(repaired, 40) + 8), ==, l.t1);
    g_bytes_unref(repaired);
    img = tu_open(l.path, 0);
    reads_as_before(img);
    tu_write_byte(img, 0x44, CS, c->bad_pos);
    TU_OK(qed_pread(img, buf, sizeof(buf), c->bad_pos, &tu_err));
    g_assert_cmpuint(buf[0], ==, 0x44);
    reads_as_before(img);
    TU_OK(qed_close(img, &tu_err));
    status = tu_qemu_img_check(l.path);
    if (status >= 0) {
        g_assert_cmpint(status, ==, 0);
    }
    g_bytes_unref(before);
    g_free(l.path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *name = g_strdup_printf("/aliasing/%s", cases[i].name);
        g_test_add_data_func(name, &cases[i], test_case);
    }
    return g_test_run();
}
