/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library calls behind qed-img commit, rebase and amend:
 * qed_change_backing_file, qed_make_empty, and a backing image reopened
 * read-write. Each refusal (read-only handle, a name the header cannot
 * hold, an unknown format, raw images, no open backing file) comes with a
 * message naming the file and leaves the file byte for byte as it was; each
 * success leaves an image that reads as before and checks clean.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#define MiB (1024u * 1024)

/* Fails the test unless err carries code and a message naming path and
 * containing text. */
static void assert_error(GError *err, int code, const char *path, const char *text)
{
    g_assert_nonnull(err);
    g_assert_cmpint(err->code, ==, code);
    if (!strstr(err->message, text) || !strstr(err->message, path)) {
        g_error("message \"%s\" lacks \"%s\" or \"%s\"", err->message, text, path);
    }
}

static char *repeat(char c, size_t n)
{
    char *s = g_malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_change_backing_refusals(void)
{
    g_autofree char *base = tu_raw_file("cb-base.raw", MiB, 1);
    g_autofree char *path = tu_create("cb.qed", MiB, 0, base, "raw");
    g_autofree char *small = tu_create("cb-4k.qed", MiB, 4096, NULL, NULL);
    g_autofree char *raw = tu_raw_file("cb.raw", MiB, 2);
    g_autoptr(GBytes) before = tu_file_bytes(path);
    g_autoptr(GBytes) before_small = tu_file_bytes(small);
    GError *err = NULL;

    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING);
    g_assert_cmpint(qed_change_backing_file(img, "x.raw", "raw", &err), ==, -EROFS);
    assert_error(err, EROFS, path, "read-only");
    g_clear_error(&err);
    TU_OK(qed_close(img, &tu_err));

    img = tu_open(path, QED_OPEN_NO_BACKING);
    g_assert_cmpuint(qed_get_backing_name_max(img), ==, 4095);
    g_autofree char *too_long = repeat('l', 4096);
    g_assert_cmpint(qed_change_backing_file(img, too_long, "raw", &err), ==, -ENOSPC);
    assert_error(err, ENOSPC, path, "at most 4095");
    g_clear_error(&err);
    g_assert_cmpint(qed_change_backing_file(img, "x.vmdk", "vmdk", &err), ==, -EINVAL);
    assert_error(err, EINVAL, path, "'vmdk'");
    g_clear_error(&err);
    TU_OK(qed_close(img, &tu_err));
    g_autoptr(GBytes) after = tu_file_bytes(path);
    g_assert_true(g_bytes_equal(before, after));

    /* 4 KiB clusters: the header area holds 4096 - 64 bytes of name. */
    img = tu_open(small, 0);
    g_autofree char *too_long_4k = repeat('s', 4033);
    g_assert_cmpint(qed_change_backing_file(img, too_long_4k, NULL, &err), ==, -ENOSPC);
    assert_error(err, ENOSPC, small, "at most 4032");
    g_clear_error(&err);
    TU_OK(qed_close(img, &tu_err));
    g_autoptr(GBytes) after_small = tu_file_bytes(small);
    g_assert_true(g_bytes_equal(before_small, after_small));

    QedOpenOptions ro = { .format = "raw" };
    img = qed_open(raw, &ro, &err);
    g_assert_no_error(err);
    g_assert_cmpint(qed_change_backing_file(img, "x.raw", "raw", &err), ==, -ENOTSUP);
    assert_error(err, ENOTSUP, raw, "raw");
    g_clear_error(&err);
    TU_OK(qed_close(img, &tu_err));
}

static void test_change_backing_names(void)
{
    g_autofree char *old_base = tu_raw_file("cn-old.raw", MiB, 3);
    g_autofree char *path = tu_create("cn.qed", MiB, 0, "cn-old.raw", "raw");
    QedImage *img = tu_open(path, QED_OPEN_NO_BACKING);
    QedInfo before;
    TU_OK(qed_get_info(img, &before, &tu_err));
    const char *old_name = before.backing_file;

    g_autofree char *longest = repeat('m', 4095);
    TU_OK(qed_change_backing_file(img, longest, "qed", &tu_err));
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpstr(info.backing_file, ==, longest);
    g_assert_null(info.backing_format);
    g_assert_cmpstr(old_name, ==, "cn-old.raw"); /* earlier strings live until close */
    TU_OK(qed_change_backing_file(img, "", "raw", &tu_err));
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_null(info.backing_file);
    g_assert_cmpuint(info.features & (QED_F_BACKING_FILE | QED_F_BACKING_FORMAT_NO_PROBE), ==, 0);
    TU_OK(qed_change_backing_file(img, "cn-old.raw", "raw", &tu_err));
    TU_OK(qed_close(img, &tu_err));

    /* Reopened, the image reads through the name as written. */
    img = tu_open(path, QED_OPEN_READ_ONLY);
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpstr(info.backing_file, ==, "cn-old.raw");
    g_assert_cmpstr(info.backing_format, ==, "raw");
    g_assert_nonnull(qed_get_backing(img));
    TU_OK(qed_close(img, &tu_err));
    g_assert_cmpint(tu_qemu_img_check(path) > 0, ==, 0);
}

static void test_make_empty_refusals(void)
{
    g_autofree char *base = tu_raw_file("me-base.raw", MiB, 4);
    g_autofree char *plain = tu_create("me-plain.qed", MiB, 0, NULL, NULL);
    g_autofree char *over = tu_create("me-over.qed", MiB, 0, base, "raw");
    g_autofree char *raw = tu_raw_file("me.raw", MiB, 5);
    GError *err = NULL;

    QedImage *img = tu_open(over, 0);
    uint8_t buf[4096];
    tu_fill(buf, sizeof(buf), 9);
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 0, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));
    g_autoptr(GBytes) before = tu_file_bytes(over);

    const struct {
        const char *path;
        unsigned flags;
        const char *format;
        int code;
        const char *text;
    } cases[] = {
        { plain, 0, NULL, EINVAL, "backing file is open" },
        { over, QED_OPEN_NO_BACKING, NULL, EINVAL, "backing file is open" },
        { over, QED_OPEN_READ_ONLY, NULL, EROFS, "read-only" },
        { raw, 0, "raw", ENOTSUP, "cannot be emptied" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        QedOpenOptions o = { .format = cases[i].format, .flags = cases[i].flags };
        img = qed_open(cases[i].path, &o, &err);
        g_assert_no_error(err);
        g_assert_cmpint(qed_make_empty(img, &err), ==, -cases[i].code);
        assert_error(err, cases[i].code, cases[i].path, cases[i].text);
        g_clear_error(&err);
        TU_OK(qed_close(img, &tu_err));
    }
    g_autoptr(GBytes) after = tu_file_bytes(over);
    g_assert_true(g_bytes_equal(before, after));
}

/* A commit through the API: the base reopened read-write takes the write
 * locks (a second opener fails as with QEMU), the overlay is emptied and can
 * be written again, and closing the overlay marks the base clean. */
static void test_commit_through_backing(void)
{
    g_autofree char *base = tu_create("ct-base.qed", 4 * MiB, 0, NULL, NULL);
    g_autofree char *over = tu_create("ct-over.qed", 4 * MiB, 0, "ct-base.qed", NULL);
    QedImage *img = tu_open(over, 0);
    g_autofree uint8_t *data = g_malloc(MiB);
    tu_fill(data, MiB, 6);
    TU_OK(qed_pwrite(img, data, 300 * 1024, 100 * 1024, 0, &tu_err));
    TU_OK(qed_pwrite_zeroes(img, 64 * 1024, 2 * MiB, 0, &tu_err));
    g_autofree uint8_t *want = g_malloc(4 * MiB);
    TU_OK(qed_pread(img, want, 4 * MiB, 0, &tu_err));

    QedImage *b = qed_get_backing(img);
    GError *err = NULL;
    /* Read-only, the base admits other readers; read-write, it does not. */
    QedImage *other = tu_open(base, QED_OPEN_READ_ONLY);
    TU_OK(qed_close(other, &tu_err));
    TU_OK(qed_reopen(b, 0, &tu_err));
    QedOpenOptions ro = { .flags = QED_OPEN_READ_ONLY };
    other = qed_open(base, &ro, &err);
    g_assert_null(other);
    assert_error(err, EAGAIN, base, "\"write\" lock");
    g_clear_error(&err);

    TU_OK(qed_pwrite(b, want, 4 * MiB, 0, 0, &tu_err));
    TU_OK(qed_make_empty(img, &tu_err));
    QedExtent ext;
    TU_OK(qed_block_status(img, 4 * MiB, 0, &ext, &tu_err));
    g_assert_cmpint(ext.type, ==, QED_EXTENT_UNALLOCATED);
    g_assert_cmpuint(ext.length, ==, 4 * MiB);
    g_autofree uint8_t *got = g_malloc(4 * MiB);
    TU_OK(qed_pread(img, got, 4 * MiB, 0, &tu_err));
    g_assert_true(memcmp(got, want, 4 * MiB) == 0);
    /* Written again after emptying: allocation starts behind the L1 table. */
    TU_OK(qed_pwrite(img, data + 7, 5000, 3 * MiB + 11, 0, &tu_err));
    memcpy(want + 3 * MiB + 11, data + 7, 5000);
    TU_OK(qed_close(img, &tu_err)); /* flushes the base and marks it clean */

    img = tu_open(over, QED_OPEN_READ_ONLY);
    TU_OK(qed_pread(img, got, 4 * MiB, 0, &tu_err));
    g_assert_true(memcmp(got, want, 4 * MiB) == 0);
    QedInfo info;
    TU_OK(qed_get_info(qed_get_backing(img), &info, &tu_err));
    g_assert_false(info.need_check);
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions + res.leaks, ==, 0);
    g_assert_cmpuint(res.allocated_clusters, ==, 1);
    TU_OK(qed_close(img, &tu_err));
    g_assert_cmpint(tu_qemu_img_check(over) > 0, ==, 0);
    g_assert_cmpint(tu_qemu_img_check(base) > 0, ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/commit/change-backing-refusals", test_change_backing_refusals);
    g_test_add_func("/commit/change-backing-names", test_change_backing_names);
    g_test_add_func("/commit/make-empty-refusals", test_make_empty_refusals);
    g_test_add_func("/commit/through-backing", test_commit_through_backing);
    return g_test_run();
}
