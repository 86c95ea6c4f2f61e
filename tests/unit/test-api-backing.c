/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Backing files: copy-on-write from raw and QED backing files, zero clusters
 * that hide backing data, chains, relative names, and opening without them.
 */
#include "testutil.h"

#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define MiB (1024u * 1024)
#define CS 65536u

static uint8_t pattern_at(uint64_t off, uint8_t seed)
{
    return (uint8_t)(seed + off * 7);
}

static void assert_qemu_clean(const char *path)
{
    int status = tu_qemu_img_check(path);
    if (status >= 0) {
        g_assert_cmpint(status, ==, 0);
    }
}

/* A backing file shorter than the image reads as zeros past its end. */
static void test_short_raw_backing_reads_zeros_past_end(void)
{
    g_autofree char *base = tu_raw_file("short.raw", 100000, 3);
    g_autofree char *top = tu_create("short-top.qed", 4 * MiB, 0, "short.raw", "raw");
    QedImage *img = tu_open(top, QED_OPEN_READ_ONLY);
    uint8_t *buf = g_malloc(200000);
    TU_OK(qed_pread(img, buf, 200000, 0, &tu_err));
    for (uint64_t i = 0; i < 200000; i++) {
        g_assert_cmpuint(buf[i], ==, i < 100000 ? pattern_at(i, 3) : 0);
    }
    TU_OK(qed_close(img, &tu_err));
    g_free(buf);
}

/* A partial write into an unallocated cluster keeps the backing data around it. */
static void test_partial_write_copies_backing(void)
{
    g_autofree char *base = tu_raw_file("cow.raw", 2 * MiB, 9);
    g_autofree char *top = tu_create("cow-top.qed", 2 * MiB, 0, "cow.raw", "raw");
    QedImage *img = tu_open(top, 0);
    uint8_t data[1000];
    memset(data, 0xee, sizeof(data));
    QedStats a, b;
    qed_get_stats(img, &a);
    TU_OK(qed_pwrite(img, data, sizeof(data), CS + 777, 0, &tu_err));
    qed_get_stats(img, &b);
    g_assert_cmpuint(b.flushes - a.flushes, ==, 1); /* NEED_CHECK's */
    /* The commit flushes the copied data before the L2 entry points at it,
     * then flushes as asked. */
    qed_get_stats(img, &a);
    TU_OK(qed_flush(img, &tu_err));
    qed_get_stats(img, &b);
    g_assert_cmpuint(b.flushes - a.flushes, ==, 2);
    TU_OK(qed_close(img, &tu_err));

    img = tu_open(top, QED_OPEN_READ_ONLY);
    uint8_t *buf = g_malloc(3 * CS);
    TU_OK(qed_pread(img, buf, 3 * CS, 0, &tu_err));
    for (uint64_t i = 0; i < 3 * CS; i++) {
        uint8_t want = (i >= CS + 777 && i < CS + 1777) ? 0xee : pattern_at(i, 9);
        g_assert_cmpuint(buf[i], ==, want);
    }
    QedExtent ext;
    TU_OK(qed_block_status(img, 2 * MiB, 0, &ext, &tu_err));
    g_assert_cmpint(ext.type, ==, QED_EXTENT_UNALLOCATED);
    g_assert_cmpuint(ext.length, ==, CS);
    TU_OK(qed_close(img, &tu_err));
    g_free(buf);
    assert_qemu_clean(top);
}

/* Zeroing whole clusters under a backing file makes zero clusters; a later
 * partial write into one fills the rest with zeros, not backing data (QEMU
 * 7.2 gets this wrong). */
static void test_zero_cluster_hides_backing(void)
{
    g_autofree char *base = tu_raw_file("zc.raw", 2 * MiB, 5);
    g_autofree char *top = tu_create("zc-top.qed", 2 * MiB, 0, "zc.raw", "raw");
    QedImage *img = tu_open(top, 0);
    TU_OK(qed_pwrite_zeroes(img, 3 * CS + 100, CS - 50, 0, &tu_err));
    QedExtent ext;
    TU_OK(qed_block_status(img, 3 * CS, CS, &ext, &tu_err));
    g_assert_cmpint(ext.type, ==, QED_EXTENT_ZERO);
    g_assert_cmpuint(ext.length, ==, 3 * CS);
    uint8_t data[10] = "0123456789";
    TU_OK(qed_pwrite(img, data, sizeof(data), 2 * CS + 5, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));

    img = tu_open(top, QED_OPEN_READ_ONLY);
    uint8_t *buf = g_malloc(5 * CS);
    TU_OK(qed_pread(img, buf, 5 * CS, 0, &tu_err));
    for (uint64_t i = 0; i < 5 * CS; i++) {
        uint8_t want;
        if (i >= 2 * CS + 5 && i < 2 * CS + 15) {
            want = data[i - 2 * CS - 5];
        } else if (i >= CS - 50 && i < 4 * CS + 50) {
            want = 0;
        } else {
            want = pattern_at(i, 5);
        }
        g_assert_cmpuint(buf[i], ==, want);
    }
    TU_OK(qed_close(img, &tu_err));
    g_free(buf);
    assert_qemu_clean(top);
}

/* Discard under a backing file: the backing data must not come back. */
static void test_discard_keeps_backing_hidden(void)
{
    g_autofree char *base = tu_raw_file("dis.raw", MiB, 1);
    g_autofree char *top = tu_create("dis-top.qed", MiB, 0, "dis.raw", "raw");
    QedImage *img = tu_open(top, 0);
    TU_OK(qed_discard(img, 5 * CS, 0, &tu_err));
    uint8_t *buf = g_malloc(5 * CS);
    TU_OK(qed_pread(img, buf, 5 * CS, 0, &tu_err));
    for (uint64_t i = 0; i < 5 * CS; i++) {
        g_assert_cmpuint(buf[i], ==, 0);
    }
    TU_OK(qed_close(img, &tu_err));
    g_free(buf);
    assert_qemu_clean(top);
}

/* qed -> qed -> raw, names relative to each image's directory, opened from
 * another working directory. */
static void test_chain_with_relative_names(void)
{
    g_autofree char *sub = tu_path("sub");
    g_assert_cmpint(g_mkdir(sub, 0755), ==, 0);
    g_autofree char *base = tu_raw_file("sub/base.raw", MiB, 11);
    g_autofree char *mid = tu_create("sub/mid.qed", MiB, 0, "base.raw", "raw");
    g_autofree char *top = tu_create("top.qed", MiB, 0, "sub/mid.qed", "qed");

    QedImage *m = tu_open(mid, 0);
    uint8_t d[4096];
    memset(d, 0x77, sizeof(d));
    TU_OK(qed_pwrite(m, d, sizeof(d), 8192, 0, &tu_err));
    TU_OK(qed_close(m, &tu_err));

    g_autofree char *cwd = g_get_current_dir();
    g_assert_cmpint(chdir("/"), ==, 0);
    QedImage *img = tu_open(top, 0);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpstr(info.backing_file, ==, "sub/mid.qed");
    g_assert_null(info.backing_format);
    g_assert_nonnull(qed_get_backing(img));
    g_assert_nonnull(qed_get_backing(qed_get_backing(img)));
    uint8_t buf[3 * 4096];
    TU_OK(qed_pread(img, buf, sizeof(buf), 4096, &tu_err));
    for (uint64_t i = 0; i < sizeof(buf); i++) {
        uint64_t off = 4096 + i;
        uint8_t want = off >= 8192 && off < 12288 ? 0x77 : pattern_at(off, 11);
        g_assert_cmpuint(buf[i], ==, want);
    }
    TU_OK(qed_close(img, &tu_err));
    g_assert_cmpint(chdir(cwd), ==, 0);
}

/* QED_OPEN_NO_BACKING: the backing file is neither opened nor needed. */
static void test_no_backing_flag_reads_zeros(void)
{
    g_autofree char *top = tu_create("nb-top.qed", MiB, 0, "does-not-exist.raw", "raw");
    QedImage *img = tu_open(top, QED_OPEN_NO_BACKING | QED_OPEN_READ_ONLY);
    g_assert_null(qed_get_backing(img));
    uint8_t buf[512];
    memset(buf, 1, sizeof(buf));
    TU_OK(qed_pread(img, buf, sizeof(buf), 0, &tu_err));
    g_assert_cmpuint(buf[0] | buf[511], ==, 0);
    TU_OK(qed_close(img, &tu_err));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/backing/short-raw-reads-zeros-past-end",
                    test_short_raw_backing_reads_zeros_past_end);
    g_test_add_func("/backing/partial-write-copies-backing", test_partial_write_copies_backing);
    g_test_add_func("/backing/zero-cluster-hides-backing", test_zero_cluster_hides_backing);
    g_test_add_func("/backing/discard-keeps-backing-hidden", test_discard_keeps_backing_hidden);
    g_test_add_func("/backing/chain-with-relative-names", test_chain_with_relative_names);
    g_test_add_func("/backing/no-backing-flag-reads-zeros", test_no_backing_flag_reads_zeros);
    return g_test_run();
}
