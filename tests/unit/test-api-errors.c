/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bad input: every invalid header field, tables and clusters outside the
 * file, unknown features, backing loops and missing backing files. Each must
 * fail with a message naming the problem, never crash, and leave the file as
 * it was.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define MiB (1024u * 1024)

/* Opening path must fail with errno `code` and a message containing `text`
 * (and the file name), and must not change the file. */
static void assert_open_fails(const char *path, unsigned flags, int code, const char *text)
{
    g_autoptr(GBytes) before = tu_file_bytes(path);
    /* Named, not probed: a file without QED's magic probes as raw. */
    QedOpenOptions o = { .format = "qed", .flags = flags };
    GError *err = NULL;
    QedImage *img = qed_open(path, &o, &err);
    if (img) {
        g_error("opening %s succeeded; expected \"%s\"", path, text);
    }
    g_assert_nonnull(err);
    g_assert_cmpint(err->code, ==, code);
    if (!strstr(err->message, text)) {
        g_error("message \"%s\" lacks \"%s\"", err->message, text);
    }
    g_assert_nonnull(strstr(err->message, path));
    g_error_free(err);
    g_autoptr(GBytes) after = tu_file_bytes(path);
    g_assert_true(g_bytes_equal(before, after));
}

typedef struct HeaderCase {
    const char *name;
    uint64_t offset;
    uint64_t value;
    int width;
    int code;
    const char *text;
} HeaderCase;

static const HeaderCase header_cases[] = {
    { "bad-magic", 0, 0x00444552, 4, EINVAL, "Image not in QED format" },
    { "unknown-feature", 16, 0x10, 8, ENOTSUP, "Unsupported QED features: 10" },
    { "cluster-size-small", 4, 2048, 4, EINVAL, "QED cluster size is invalid" },
    { "cluster-size-not-pow2", 4, 65536 + 4096, 4, EINVAL, "QED cluster size is invalid" },
    { "cluster-size-huge", 4, 128u * MiB, 4, EINVAL, "QED cluster size is invalid" },
    { "table-size-zero", 8, 0, 4, EINVAL, "QED table size is invalid" },
    { "table-size-3", 8, 3, 4, EINVAL, "QED table size is invalid" },
    { "table-size-32", 8, 32, 4, EINVAL, "QED table size is invalid" },
    { "image-size-unaligned", 48, 1000, 8, EINVAL, "QED image size is invalid" },
    { "image-size-too-big", 48, 1ull << 50, 8, EINVAL, "QED image size is invalid" },
    { "header-size-zero", 12, 0, 4, EINVAL, "QED header size is 0 clusters" },
    { "header-size-huge", 12, 0x10000, 4, EINVAL, "QED table offset is invalid" },
    { "l1-unaligned", 40, 65536 + 512, 8, EINVAL, "QED table offset is invalid" },
    { "l1-in-header", 40, 0, 8, EINVAL, "QED table offset is invalid" },
    { "l1-past-end", 40, 1ull << 40, 8, EINVAL, "QED table offset is invalid" },
    { "l1-overflow", 40, 0xffffffffffff0000ull, 8, EINVAL, "QED table offset is invalid" },
    { "header-covers-l1", 12, 2, 4, EINVAL, "QED table offset is invalid" },
    { "backing-name-outside", 56, 65530, 4, EINVAL, "QED backing filename offset is invalid" },
};

static void test_invalid_header_field(gconstpointer data)
{
    const HeaderCase *c = data;
    g_autofree char *name = g_strdup_printf("%s.qed", c->name);
    g_autofree char *path = tu_create(name, 8 * MiB, 0, "base.raw", "raw");
    tu_patch_le(path, c->offset, c->value, c->width);
    assert_open_fails(path, 0, c->code, c->text);
    assert_open_fails(path, QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING, c->code, c->text);
}

static void test_truncated_files(void)
{
    g_autofree char *path = tu_create("trunc.qed", 8 * MiB, 0, NULL, NULL);
    /* header only, then half the L1 table, then nothing at all */
    g_assert_cmpint(truncate(path, 65536), ==, 0);
    assert_open_fails(path, 0, EINVAL, "QED table offset is invalid");
    g_assert_cmpint(truncate(path, 65536 + 100000), ==, 0);
    assert_open_fails(path, 0, EINVAL, "QED table offset is invalid");
    /* Too short for a header: not QED when asked for QED; probing says raw. */
    QedOpenOptions o = { .format = "qed" };
    for (int len = 2; len >= 0; len -= 2) {
        g_assert_cmpint(truncate(path, len), ==, 0);
        GError *err = NULL;
        g_assert_null(qed_open(path, &o, &err));
        g_assert_nonnull(strstr(err->message, "Image not in QED format"));
        g_error_free(err);
    }
    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpstr(info.format, ==, "raw");
    TU_OK(qed_close(img, &tu_err));
}

static void test_unknown_autoclear_bits(void)
{
    g_autofree char *path = tu_create("autoclear.qed", MiB, 0, NULL, NULL);
    tu_patch_le(path, 32, 0x8001, 8);
    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY);
    TU_OK(qed_close(img, &tu_err));
    g_autoptr(GBytes) ro = tu_file_bytes(path);
    g_assert_cmpuint(((const uint8_t *)g_bytes_get_data(ro, NULL))[32], ==, 1);
    img = tu_open(path, 0);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpuint(info.autoclear_features, ==, 0);
    TU_OK(qed_close(img, &tu_err));
    g_autoptr(GBytes) rw = tu_file_bytes(path);
    g_assert_cmpuint(((const uint8_t *)g_bytes_get_data(rw, NULL))[32], ==, 0);
}

/* Table entries pointing outside the file: reads fail with EIO, no crash. */
static void test_entries_outside_file_fail_reads(void)
{
    g_autofree char *path = tu_create("badentry.qed", 6144ull * MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    uint8_t buf[4096] = { 3 };
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 0, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));
    uint64_t l1 = 65536, l2 = 6 * 65536;
    tu_patch_le(path, l2, 1ull << 45, 8);          /* data cluster far past the end */
    tu_patch_le(path, l2 + 8, 6 * 65536 + 512, 8); /* unaligned data cluster */
    tu_patch_le(path, l1 + 8, 1ull << 45, 8);      /* L2 table past the end */
    tu_patch_le(path, l1 + 16, 65536 * 3 + 8, 8);  /* unaligned L2 table */
    img = tu_open(path, QED_OPEN_READ_ONLY);
    /* One L2 table maps 2 GiB here. */
    const uint64_t offs[] = { 0, 65536, 2048ull * MiB, 4096ull * MiB };
    for (size_t i = 0; i < G_N_ELEMENTS(offs); i++) {
        GError *err = NULL;
        memset(buf, 9, sizeof(buf));
        g_assert_cmpint(qed_pread(img, buf, sizeof(buf), offs[i], &err), ==, -EIO);
        g_assert_nonnull(strstr(err->message, path));
        g_assert_cmpuint(buf[0], ==, 0); /* the buffer holds no stale data */
        g_error_free(err);
    }
    TU_OK(qed_close(img, &tu_err));
}

static void test_backing_loops(void)
{
    /* a -> b -> a, and c -> c */
    g_autofree char *a = tu_create("loop-a.qed", MiB, 0, "loop-b.qed", "qed");
    g_autofree char *b = tu_create("loop-b.qed", MiB, 0, "loop-a.qed", "qed");
    g_autofree char *c = tu_create("loop-c.qed", MiB, 0, "loop-c.qed", NULL);
    assert_open_fails(a, 0, ELOOP, "creates an infinite loop");
    assert_open_fails(c, QED_OPEN_READ_ONLY, ELOOP, "creates an infinite loop");
    /* Without following the backing file they open fine. */
    QedImage *img = tu_open(a, QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING);
    TU_OK(qed_close(img, &tu_err));
}

static void test_deep_chain_is_refused(void)
{
    char prev[32] = "";
    g_autofree char *last = NULL;
    for (int i = 0; i < 40; i++) {
        char name[32];
        g_snprintf(name, sizeof(name), "deep%02d.qed", i);
        g_free(last);
        last = tu_create(name, MiB, 0, i ? prev : NULL, i ? "qed" : NULL);
        memcpy(prev, name, sizeof(name));
    }
    assert_open_fails(last, QED_OPEN_READ_ONLY, ELOOP, "too deep");
}

static void test_missing_backing_names_path(void)
{
    g_autofree char *path = tu_create("orphan.qed", MiB, 0, "gone/base.raw", "raw");
    g_autofree char *missing = tu_path("gone/base.raw");
    assert_open_fails(path, 0, ENOENT, missing);
    g_autofree char *dir = tu_path("adir");
    g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
    g_autofree char *dirb = tu_create("dirback.qed", MiB, 0, "adir", "raw");
    assert_open_fails(dirb, 0, EISDIR, "adir");
}

static void test_requests_outside_image(void)
{
    g_autofree char *path = tu_create("range.qed", MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    uint8_t buf[1024];
    GError *err = NULL;
    g_assert_cmpint(qed_pread(img, buf, sizeof(buf), MiB - 512, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "outside the image"));
    g_clear_error(&err);
    g_assert_cmpint(qed_pwrite(img, buf, 1, UINT64_MAX, 0, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(qed_pwrite_zeroes(img, UINT64_MAX, 512, 0, &err), ==, -EINVAL);
    g_clear_error(&err);
    TU_OK(qed_close(img, &tu_err));

    img = tu_open(path, QED_OPEN_READ_ONLY);
    g_assert_cmpint(qed_pwrite(img, buf, 512, 0, 0, &err), ==, -EROFS);
    g_assert_nonnull(strstr(err->message, "read-only"));
    g_clear_error(&err);
    TU_OK(qed_close(img, &tu_err));
}

static void test_create_rejects_bad_options(void)
{
    g_autofree char *path = tu_path("badcreate.qed");
    const struct {
        QedCreateOptions o;
        const char *text;
    } cases[] = {
        { { .size = MiB, .cluster_size = 1000 }, "cluster size must be within range" },
        { { .size = MiB, .table_size = 3 }, "table size must be within range" },
        { { .size = 1ull << 50, .cluster_size = 4096, .table_size = 1 }, "less than" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GError *err = NULL;
        g_assert_cmpint(qed_create(path, &cases[i].o, &err), ==, -EINVAL);
        g_assert_nonnull(strstr(err->message, cases[i].text));
        g_assert_nonnull(strstr(err->message, path));
        g_error_free(err);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(header_cases); i++) {
        g_autofree char *name = g_strdup_printf("/errors/header/%s", header_cases[i].name);
        g_test_add_data_func(name, &header_cases[i], test_invalid_header_field);
    }
    g_test_add_func("/errors/truncated-files", test_truncated_files);
    g_test_add_func("/errors/unknown-autoclear-bits", test_unknown_autoclear_bits);
    g_test_add_func("/errors/entries-outside-file-fail-reads",
                    test_entries_outside_file_fail_reads);
    g_test_add_func("/errors/backing-loops", test_backing_loops);
    g_test_add_func("/errors/deep-chain-is-refused", test_deep_chain_is_refused);
    g_test_add_func("/errors/missing-backing-names-path", test_missing_backing_names_path);
    g_test_add_func("/errors/requests-outside-image", test_requests_outside_image);
    g_test_add_func("/errors/create-rejects-bad-options", test_create_rejects_bad_options);
    return g_test_run();
}
