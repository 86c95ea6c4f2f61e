/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading, writing, zeroing, resizing and block status of images without a
 * backing file, checked against an in-memory model and qemu-img check.
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "blk/blk.h"
#include "image.h"

#define MiB (1024u * 1024)

static void assert_qemu_clean(const char *path)
{
    int status = tu_qemu_img_check(path);
    if (status >= 0) {
        g_assert_cmpint(status, ==, 0);
    }
}

static void test_create_layout_is_qemus(void)
{
    g_autofree char *path = tu_create("layout.qed", 1000, 0, NULL, NULL);
    g_autoptr(GBytes) b = tu_file_bytes(path);
    const uint8_t *d = g_bytes_get_data(b, NULL);
    /* header cluster + 4-cluster L1 table, header fields as qemu-img writes them */
    g_assert_cmpuint(g_bytes_get_size(b), ==, 64 * 1024 * 5);
    g_assert_cmpmem(d, 4, "QED\0", 4);
    g_assert_cmpuint(d[4] | d[5] << 8 | d[6] << 16, ==, 65536);
    g_assert_cmpuint(d[8], ==, 4);
    g_assert_cmpuint(d[12], ==, 1);
    g_assert_cmpuint(d[41] << 8 | d[42] << 16, ==, 65536); /* l1_table_offset */
    g_assert_cmpuint(d[48] | d[49] << 8, ==, 1024);        /* size rounded up to 512 */
    assert_qemu_clean(path);
}

/* Random unaligned writes, zeroes and discards against a model. */
static void test_random_io_matches_model(void)
{
    const uint64_t size = 12 * MiB;
    g_autofree char *path = tu_create("model.qed", size, 4096, NULL, NULL);
    uint8_t *model = g_malloc0(size);
    uint8_t *buf = g_malloc(512 * 1024);
    GRand *rand = g_rand_new_with_seed(42);
    QedImage *img = tu_open(path, 0);

    for (int i = 0; i < 400; i++) {
        uint64_t len = (uint64_t)g_rand_int_range(rand, 1, 300 * 1024);
        uint64_t off = (uint64_t)g_rand_int_range(rand, 0, (gint32)(size - len));
        int op = g_rand_int_range(rand, 0, 10);
        if (op < 6) {
            tu_fill(buf, len, (uint8_t)i);
            TU_OK(qed_pwrite(img, buf, len, off, 0, &tu_err));
            memcpy(model + off, buf, len);
        } else if (op < 8) {
            TU_OK(qed_pwrite_zeroes(img, len, off, 0, &tu_err));
            memset(model + off, 0, len);
        } else if (op < 9) {
            TU_OK(qed_discard(img, len, off, &tu_err));
            memset(model + off, 0, len);
        } else {
            TU_OK(qed_pread(img, buf, len, off, &tu_err));
            g_assert_cmpmem(buf, len, model + off, len);
        }
    }
    TU_OK(qed_close(img, &tu_err));

    img = tu_open(path, QED_OPEN_READ_ONLY);
    uint8_t *all = g_malloc(size);
    TU_OK(qed_pread(img, all, size, 0, &tu_err));
    g_assert_true(memcmp(all, model, size) == 0);
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);

    g_free(all);
    g_rand_free(rand);
    g_free(buf);
    g_free(model);
}

static void test_close_clears_need_check(void)
{
    g_autofree char *path = tu_create("dirty.qed", MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    char data[512] = "hello";
    TU_OK(qed_pwrite(img, data, sizeof(data), 0, 0, &tu_err));
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_true(info.need_check);
    {
        g_autoptr(GBytes) b = tu_file_bytes(path);
        const uint8_t *d = g_bytes_get_data(b, NULL);
        g_assert_cmpuint(d[16] & QED_F_NEED_CHECK, !=, 0);
    }
    TU_OK(qed_close(img, &tu_err));
    g_autoptr(GBytes) b = tu_file_bytes(path);
    const uint8_t *d = g_bytes_get_data(b, NULL);
    g_assert_cmpuint(d[16] & QED_F_NEED_CHECK, ==, 0);
    assert_qemu_clean(path);
}

static bool header_need_check(const char *path)
{
    g_autoptr(GBytes) b = tu_file_bytes(path);
    return ((const uint8_t *)g_bytes_get_data(b, NULL))[16] & QED_F_NEED_CHECK;
}

/* An image that stays open but idle is marked clean after a while, so a
 * long-running export does not stay dirty; the next write dirties it again. */
static void test_idle_image_is_marked_clean(void)
{
    g_autofree char *path = tu_create("idle.qed", MiB, 0, NULL, NULL);
    QedOpenOptions o = { .clean_after_ms = 200 };
    GError *err = NULL;
    QedImage *img = qed_open(path, &o, &err);
    g_assert_no_error(err);
    char data[512] = "idle";
    for (int round = 0; round < 2; round++) {
        TU_OK(qed_pwrite(img, data, sizeof(data), (uint64_t)round * 65536, 0, &tu_err));
        g_assert_true(header_need_check(path));
        gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
        while (header_need_check(path) && g_get_monotonic_time() < deadline) {
            g_usleep(20000);
        }
        g_assert_false(header_need_check(path));
        assert_qemu_clean(path); /* clean while still open */
    }
    TU_OK(qed_close(img, &tu_err));
}

/* QED exists for its few I/Os: count them on the file. An allocating write
 * writes its data only; its entries reach the disk with the next flush, in
 * one write per dirty sector however many writes changed it. */
static void test_allocating_write_io_count(void)
{
    g_autofree char *path = tu_create("count.qed", 64 * MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    uint8_t buf[4096] = { 1 };
    QedStats a, b;

    qed_get_stats(img, &a);
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 0, 0, &tu_err));
    qed_get_stats(img, &b);
    /* NEED_CHECK header + flush, data */
    g_assert_cmpuint(b.writes - a.writes, ==, 2);
    g_assert_cmpuint(b.flushes - a.flushes, ==, 1);
    /* Without a backing file the rest of the new cluster is not written. */
    g_assert_cmpuint(b.bytes_written - a.bytes_written, <, 4096 + 1024);

    qed_get_stats(img, &a);
    TU_OK(qed_flush(img, &tu_err));
    qed_get_stats(img, &b);
    /* The new L2 table whole and its L1 sector, after a flush that makes the
     * grown length durable, then the flush asked for. */
    g_assert_cmpuint(b.writes - a.writes, ==, 2);
    g_assert_cmpuint(b.flushes - a.flushes, ==, 2);

    /* Eight allocating writes into one L2 sector: eight data writes, and
     * one L2 write at the flush. */
    qed_get_stats(img, &a);
    for (int i = 0; i < 8; i++) {
        TU_OK(qed_pwrite(img, buf, sizeof(buf), 1 * MiB + (uint64_t)i * 65536, 0, &tu_err));
    }
    qed_get_stats(img, &b);
    g_assert_cmpuint(b.writes - a.writes, ==, 8);
    g_assert_cmpuint(b.flushes - a.flushes, ==, 0);
    qed_get_stats(img, &a);
    TU_OK(qed_flush(img, &tu_err));
    qed_get_stats(img, &b);
    g_assert_cmpuint(b.writes - a.writes, ==, 1);
    g_assert_cmpuint(b.flushes - a.flushes, ==, 1);

    qed_get_stats(img, &a);
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 1 * MiB + 8192, 0, &tu_err));
    TU_OK(qed_pread(img, buf, sizeof(buf), 1 * MiB, &tu_err));
    qed_get_stats(img, &b);
    g_assert_cmpuint(b.writes - a.writes, ==, 1); /* in place */
    g_assert_cmpuint(b.reads - a.reads, ==, 1);   /* the L2 table is cached */
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);
}

/* QED_OPEN_NO_FLUSH (cache=unsafe, qemu-img convert's target): writes and
 * qed_flush reach no flush of the file; the image still checks clean. */
/* Queued tables are pinned in the L2 cache until written: once they fill
 * its budget, the queue is written back without waiting for a flush, so
 * memory stays bounded. Here the budget holds two tables (256 KiB each)
 * and the writes dirty four. */
static void test_queue_written_back_at_cache_budget(void)
{
    g_autofree char *path = tu_create("writeback.qed", 16ull << 30, 0, NULL, NULL);
    QedOpenOptions opts = { .format = "qed", .l2_cache_bytes = 2 * 256 * 1024 };
    GError *err = NULL;
    QedImage *img = qed_open(path, &opts, &err);
    g_assert_no_error(err);
    QedStats a, b;
    qed_get_stats(img, &a);
    for (uint64_t i = 0; i < 4; i++) {
        tu_write_byte(img, (uint8_t)(i + 1), 4096, i << 31); /* one table per 2 GiB */
    }
    qed_get_stats(img, &b);
    /* NEED_CHECK's header and four data writes, and the written-back tables */
    g_assert_cmpuint(b.writes - a.writes, >, 5);
    for (uint64_t i = 0; i < 4; i++) {
        tu_assert_byte(img, (uint8_t)(i + 1), 4096, i << 31);
    }
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);
}

/* The file grows ahead of allocation by reserving its room (fallocate), not
 * by a hole: ext4 runs O_DIRECT writes into reserved blocks in parallel. The
 * room is there while the image is open and dirty, and cut at close. */
static void test_growth_is_reserved(void)
{
    g_autofree char *path = tu_create("reserve.qed", 1ull << 30, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    tu_write_byte(img, 1, 4096, 0);
    struct stat st;
    g_assert_cmpint(stat(path, &st), ==, 0);
    /* header, L1 table and one 4 KiB write; the rest is the reserved step */
    g_assert_cmpint((int64_t)st.st_blocks * 512, >=, 1 << 20);
    g_assert_cmpint(st.st_size, >=, 1 << 20);
    TU_OK(qed_close(img, &tu_err));
    g_assert_cmpint(stat(path, &st), ==, 0);
    g_assert_cmpint(st.st_size, <, 1 << 20);
    assert_qemu_clean(path);
}

static void test_no_flush_flushes_nothing(void)
{
    g_autofree char *path = tu_create("noflush.qed", 64 * MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, QED_OPEN_NO_FLUSH);
    uint8_t buf[4096] = { 7 };
    QedStats a, b;

    qed_get_stats(img, &a);
    for (int i = 0; i < 8; i++) {
        TU_OK(qed_pwrite(img, buf, sizeof(buf), (uint64_t)i * 4 * MiB, 0, &tu_err));
    }
    TU_OK(qed_flush(img, &tu_err));
    qed_get_stats(img, &b);
    g_assert_cmpuint(b.writes - a.writes, >, 8);
    g_assert_cmpuint(b.flushes - a.flushes, ==, 0);
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);
}

static void test_block_status_runs(void)
{
    g_autofree char *path = tu_create("status.qed", 4 * MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    uint8_t *buf = g_malloc0(3 * 65536);
    TU_OK(qed_pwrite(img, buf, 3 * 65536, 65536, 0, &tu_err));
    QedExtent ext;
    TU_OK(qed_block_status(img, 4 * MiB, 0, &ext, &tu_err));
    g_assert_cmpint(ext.type, ==, QED_EXTENT_UNALLOCATED);
    g_assert_cmpuint(ext.length, ==, 65536);
    TU_OK(qed_block_status(img, 4 * MiB - 65536, 65536, &ext, &tu_err));
    g_assert_cmpint(ext.type, ==, QED_EXTENT_DATA);
    g_assert_cmpuint(ext.length, ==, 3 * 65536); /* one run: contiguous in the file */
    g_assert_cmpuint(ext.file_offset % 65536, ==, 0);
    TU_OK(qed_block_status(img, 1000, 4 * 65536 + 100, &ext, &tu_err));
    g_assert_cmpint(ext.type, ==, QED_EXTENT_UNALLOCATED);
    g_assert_cmpuint(ext.length, ==, 1000);
    TU_OK(qed_close(img, &tu_err));
    g_free(buf);
}

/* Every range call takes the length before the offset (libnbd's order):
 * distinct values make a swapped pair describe another run. */
static void test_block_status_takes_len_then_offset(void)
{
    g_autofree char *path = tu_create("order.qed", 4 * MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    uint8_t *buf = g_malloc0(3 * 65536);
    TU_OK(qed_pwrite(img, buf, 3 * 65536, 65536, 0, &tu_err));
    QedExtent ext;
    TU_OK(qed_block_status(img, 2 * 65536, 65536, &ext, &tu_err));
    g_assert_cmpuint(ext.offset, ==, 65536);
    g_assert_cmpint(ext.type, ==, QED_EXTENT_DATA);
    g_assert_cmpuint(ext.length, ==, 2 * 65536);
    TU_OK(qed_close(img, &tu_err));
    g_free(buf);
}

/* Growing maps new L2 tables; shrinking (which QEMU cannot) gives the
 * clusters and tables past the new end up, keeps what lies inside it, cuts
 * the file, and a grow afterwards reads zeros where the old data was. */
static void test_resize_grows_and_shrinks(void)
{
    g_autofree char *path = tu_create("resize.qed", MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    uint8_t buf[4096];
    memset(buf, 0xab, sizeof(buf));
    TU_OK(qed_pwrite(img, buf, sizeof(buf), MiB - 4096, 0, &tu_err));
    /* Grow past the range of the first L2 table (256 MiB here). */
    TU_OK(qed_resize(img, 600 * MiB, &tu_err));
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 599 * MiB, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));

    img = tu_open(path, QED_OPEN_READ_ONLY);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpuint(info.virtual_size, ==, 600 * MiB);
    uint64_t grown_length = info.file_length;
    uint8_t got[4096];
    TU_OK(qed_pread(img, got, sizeof(got), 599 * MiB, &tu_err));
    g_assert_cmpmem(got, sizeof(got), buf, sizeof(buf));
    TU_OK(qed_pread(img, got, sizeof(got), 300 * MiB, &tu_err));
    g_assert_cmpuint(got[0] | got[4095], ==, 0);
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);

    /* Shrink to 1 MiB - 2048: the second table goes, the last cluster is
     * cut in the middle of the data. */
    img = tu_open(path, 0);
    TU_OK(qed_resize(img, MiB - 2048, &tu_err));
    g_assert_cmpuint(qed_get_size(img), ==, MiB - 2048);
    GError *err = NULL;
    g_assert_cmpint(qed_pread(img, got, sizeof(got), MiB - 4096, &err), ==, -EINVAL);
    g_clear_error(&err);
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);

    img = tu_open(path, 0);
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpuint(info.virtual_size, ==, MiB - 2048);
    g_assert_cmpuint(info.file_length, <, grown_length);
    TU_OK(qed_pread(img, got, 2048, MiB - 4096, &tu_err));
    g_assert_cmpmem(got, 2048, buf, 2048);
    TU_OK(qed_resize(img, 600 * MiB, &tu_err));
    TU_OK(qed_pread(img, got, sizeof(got), MiB - 4096, &tu_err));
    g_assert_cmpmem(got, 2048, buf, 2048);
    for (size_t i = 2048; i < sizeof(got); i++) {
        g_assert_cmpuint(got[i], ==, 0);
    }
    TU_OK(qed_pread(img, got, sizeof(got), 599 * MiB, &tu_err));
    for (size_t i = 0; i < sizeof(got); i++) {
        g_assert_cmpuint(got[i], ==, 0);
    }
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);
}

/* A zero write over whole data clusters unallocates them (no backing file),
 * the partial clusters at its ends are zeroed in place, and close reclaims
 * the clusters given up: the file shrinks and checks clean, without leaks. */
static void test_zeroes_over_data_are_reclaimed(void)
{
    g_autofree char *path = tu_create("zleak.qed", 4 * MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    uint8_t *buf = g_malloc(MiB);
    memset(buf, 0x5a, MiB);
    TU_OK(qed_pwrite(img, buf, MiB, 0, 0, &tu_err));
    TU_OK(qed_pwrite(img, buf, 65536, 2 * MiB, 0, &tu_err)); /* lands after the L2 table */
    TU_OK(qed_pwrite_zeroes(img, MiB - 1000, 500, 0, &tu_err));
    QedExtent ext;
    TU_OK(qed_block_status(img, MiB, 65536, &ext, &tu_err));
    g_assert_cmpint(ext.type, ==, QED_EXTENT_UNALLOCATED);
    g_assert_cmpuint(ext.length, ==, 14 * 65536);
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions, ==, 0);
    g_assert_cmpuint(res.leaks, ==, 14); /* until close */
    /* (The file is longer while open: it grows ahead of allocation.) */
    uint64_t length_before = res.image_end_offset;
    TU_OK(qed_close(img, &tu_err));
    QedInfo info;

    img = tu_open(path, QED_OPEN_READ_ONLY);
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpuint(info.file_length, ==, length_before - 14 * 65536);
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions + res.leaks, ==, 0);
    TU_OK(qed_pread(img, buf, MiB, 0, &tu_err));
    g_assert_cmpuint(buf[499], ==, 0x5a);
    g_assert_cmpuint(buf[500], ==, 0);
    g_assert_cmpuint(buf[MiB - 501], ==, 0);
    g_assert_cmpuint(buf[MiB - 500], ==, 0x5a);
    TU_OK(qed_pread(img, buf, 65536, 2 * MiB, &tu_err));
    g_assert_cmpuint(buf[0] & buf[65535], ==, 0x5a);
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);
    g_free(buf);
}

/* An image of two written clusters (bytes 7), left with NEED_CHECK set and
 * the L2 entry of cluster 1 pointing far outside the file. */
static char *make_dirty_image(const char *name)
{
    char *path = tu_create(name, 4 * MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    uint8_t buf[4096];
    memset(buf, 7, sizeof(buf));
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 0, 0, &tu_err));
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 65536, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));
    /* Layout now: header, L1 (4 clusters), data 0, L2 (4 clusters), data 1. */
    uint64_t l2 = 6 * 65536;
    tu_patch_le(path, 16, QED_F_NEED_CHECK, 8);
    tu_patch_le(path, l2 + 8, 1ull << 40, 8);
    return path;
}

/* An image left with NEED_CHECK, a leaked cluster at its end and an L2
 * entry pointing outside the file is repaired by a writable open. */
static void test_writable_open_repairs_need_check(void)
{
    g_autofree char *path = make_dirty_image("repair.qed");
    QedImage *img;
    uint8_t buf[4096];
    char leak[65536] = { 1 };
    tu_patch(path, 11 * 65536, leak, sizeof(leak)); /* a leaked cluster at the end */

    g_autoptr(GBytes) before = tu_file_bytes(path);
    img = tu_open(path, QED_OPEN_READ_ONLY); /* read-only: allowed, no repair */
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions, ==, 1);
    g_assert_cmpuint(res.leaks, ==, 2); /* data cluster 1, and the one at the end */
    TU_OK(qed_close(img, &tu_err));
    g_autoptr(GBytes) after = tu_file_bytes(path);
    g_assert_true(g_bytes_equal(before, after));

    img = tu_open(path, 0);
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions, ==, 0);
    g_assert_cmpuint(res.leaks, ==, 0); /* old data cluster 1 and the leak: both cut off */
    TU_OK(qed_pread(img, buf, sizeof(buf), 0, &tu_err));
    g_assert_cmpuint(buf[0], ==, 7);
    TU_OK(qed_pread(img, buf, sizeof(buf), 65536, &tu_err));
    g_assert_cmpuint(buf[0], ==, 0);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_false(info.need_check);
    g_assert_cmpuint(info.file_length, ==, 10 * 65536);
    TU_OK(qed_close(img, &tu_err));
}

/* A read-only handle reopened read-write checks and repairs the image then,
 * as a writable open would (QEMU forgets to); back to read-only it is clean. */
static void test_reopen_writable_repairs(void)
{
    g_autofree char *path = make_dirty_image("reopen.qed");
    uint8_t buf[4096];
    memset(buf, 7, sizeof(buf));
    QedImage *img = tu_open(path, QED_OPEN_READ_ONLY);
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions, ==, 1);
    TU_OK(qed_reopen(img, 0, &tu_err));
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions, ==, 0);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_false(info.need_check);
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 2 * 65536, 0, &tu_err));

    TU_OK(qed_reopen(img, QED_OPEN_READ_ONLY, &tu_err));
    g_assert_false(header_need_check(path));
    GError *err = NULL;
    g_assert_cmpint(qed_pwrite(img, buf, 512, 0, 0, &err), ==, -EROFS);
    g_clear_error(&err);
    g_assert_cmpint(qed_reopen(img, QED_OPEN_NO_BACKING, &err), ==, -EINVAL);
    g_clear_error(&err);
    TU_OK(qed_pread(img, buf, sizeof(buf), 2 * 65536, &tu_err));
    g_assert_cmpuint(buf[0], ==, 7);
    TU_OK(qed_close(img, &tu_err));
    assert_qemu_clean(path);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rw/create-layout-is-qemus", test_create_layout_is_qemus);
    g_test_add_func("/rw/random-io-matches-model", test_random_io_matches_model);
    g_test_add_func("/rw/close-clears-need-check", test_close_clears_need_check);
    g_test_add_func("/rw/idle-image-is-marked-clean", test_idle_image_is_marked_clean);
    g_test_add_func("/rw/reopen-writable-repairs", test_reopen_writable_repairs);
    g_test_add_func("/rw/allocating-write-io-count", test_allocating_write_io_count);
    g_test_add_func("/rw/no-flush-flushes-nothing", test_no_flush_flushes_nothing);
    g_test_add_func("/rw/queue-written-back-at-cache-budget",
                    test_queue_written_back_at_cache_budget);
    g_test_add_func("/rw/growth-is-reserved", test_growth_is_reserved);
    g_test_add_func("/rw/block-status-runs", test_block_status_runs);
    g_test_add_func("/rw/block-status-takes-len-then-offset",
                    test_block_status_takes_len_then_offset);
    g_test_add_func("/rw/resize-grows-and-shrinks", test_resize_grows_and_shrinks);
    g_test_add_func("/rw/zeroes-over-data-are-reclaimed", test_zeroes_over_data_are_reclaimed);
    g_test_add_func("/rw/writable-open-repairs-need-check", test_writable_open_repairs_need_check);
    return g_test_run();
}
