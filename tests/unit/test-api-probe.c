/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Probing through the library: files that QEMU would open as another format
 * are refused (also when the format is named), a qcow2 backing file is
 * refused, and a raw image opened by probing refuses writes that would turn
 * its first sector into another format's header. (test-img-probe.sh checks
 * the same headers against qemu-img's own probe.)
 */
#include "testutil.h"

#include <errno.h>
#include <string.h>

#define MiB (1024u * 1024)

/* A 64 KiB file of zeros with head (len bytes) at offset. */
static char *file_with_head(const char *name, const void *head, size_t len, size_t offset)
{
    char *path = tu_path(name);
    uint8_t *buf = g_malloc0(65536);
    memcpy(buf + offset, head, len);
    g_assert_true(g_file_set_contents(path, (char *)buf, 65536, NULL));
    g_free(buf);
    return path;
}

/* Opening path (format NULL probes) fails with code and a message holding
 * text and the file name; the file is unchanged. */
static void assert_refused(const char *path, const char *format, unsigned flags, int code,
                           const char *text)
{
    g_autoptr(GBytes) before = tu_file_bytes(path);
    QedOpenOptions o = { .format = format, .flags = flags };
    GError *err = NULL;
    QedImage *img = qed_open(path, &o, &err);
    if (img) {
        g_error("%s opened; expected \"%s\"", path, text);
    }
    g_assert_cmpint(err->code, ==, code);
    if (!strstr(err->message, text) || !strstr(err->message, path)) {
        g_error("message \"%s\" lacks \"%s\" or the file name", err->message, text);
    }
    g_error_free(err);
    g_autoptr(GBytes) after = tu_file_bytes(path);
    g_assert_true(g_bytes_equal(before, after));
}

/* The first bytes of each format QEMU probes by its header. */
static const struct {
    const char *format;
    const char *head;
    size_t len;
    size_t offset; /* where head goes */
} foreign[] = {
    { "qcow", "QFI\xfb\0\0\0\x01", 8 },
    { "qcow2", "QFI\xfb\0\0\0\x03", 8 },
    { "vmdk", "KDMV\x01\0\0\0", 8 },
    { "vmdk", "# Disk DescriptorFile\nversion=1\n", 32 },
    { "vdi", "\x7f\x10\xda\xbe", 4, 64 }, /* the signature follows 64 bytes of text */
    { "vhdx", "vhdxfile", 8 },
    { "vpc", "conectix", 8 },
    { "luks", "LUKS\xba\xbe\0\x01", 8 },
    { "parallels", "WithoutFreeSpace\x02\0\0\0", 20 },
    { "bochs",
      "Bochs Virtual HD Image\0\0\0\0\0\0\0\0\0\0Redolog\0\0\0\0\0\0\0\0\0"
      "Growing\0\0\0\0\0\0\0\0\0\0\0\x02\0",
      68 },
    { "cloop",
      "#!/bin/sh\n#V2.0 Format\n"
      "modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n",
      84 },
};

static void test_foreign_formats_are_refused(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(foreign); i++) {
        g_autofree char *name = g_strdup_printf("foreign%zu.img", i);
        g_autofree char *path = file_with_head(name, foreign[i].head, foreign[i].len,
                                               foreign[i].offset);
        g_autofree char *text = g_strdup_printf("Image format '%s' is not supported",
                                                foreign[i].format);
        assert_refused(path, NULL, 0, ENOTSUP, text);
        assert_refused(path, NULL, QED_OPEN_READ_ONLY, ENOTSUP, text);
        /* Named, the format is refused just the same; raw opens it as raw. */
        assert_refused(path, foreign[i].format, QED_OPEN_READ_ONLY, ENOTSUP, text);
        QedOpenOptions o = { .format = "raw", .flags = QED_OPEN_READ_ONLY };
        QedImage *img = qed_open(path, &o, NULL);
        g_assert_nonnull(img);
        TU_OK(qed_close(img, &tu_err));
    }
}

/* dmg is known by its name alone (and only when the file is not empty). */
static void test_dmg_is_known_by_name(void)
{
    g_autofree char *path = file_with_head("disk.dmg", "", 0, 0);
    assert_refused(path, NULL, QED_OPEN_READ_ONLY, ENOTSUP, "Image format 'dmg' is not supported");
    g_autofree char *empty = tu_path("empty.dmg");
    g_assert_true(g_file_set_contents(empty, "", 0, NULL));
    QedImage *img = tu_open(empty, QED_OPEN_READ_ONLY);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpstr(info.format, ==, "raw");
    TU_OK(qed_close(img, &tu_err));
    /* A QED image keeps its format whatever its name (score 100 beats 2). */
    g_autofree char *qed = tu_create("image.dmg", MiB, 0, NULL, NULL);
    img = tu_open(qed, QED_OPEN_READ_ONLY);
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpstr(info.format, ==, "qed");
    TU_OK(qed_close(img, &tu_err));
}

static void test_unknown_format_name(void)
{
    g_autofree char *path = file_with_head("unknown.raw", "", 0, 0);
    assert_refused(path, "frob", 0, EINVAL, "Unknown driver 'frob'");
}

/* A qcow2 backing file (stored without a format, so probed) is refused at
 * open, naming the file and the format, instead of reading its header as
 * data. With BACKING_FORMAT_NO_PROBE the same file is raw, as in QEMU. */
static void test_qcow2_backing_file_is_refused(void)
{
    g_autofree char *base = file_with_head("base.qcow2", "QFI\xfb\0\0\0\x03", 8, 0);
    g_autofree char *top = tu_create("over-qcow2.qed", MiB, 0, "base.qcow2", NULL);
    assert_refused(top, NULL, QED_OPEN_READ_ONLY, ENOTSUP,
                   "Could not open backing file: Could not open");
    assert_refused(top, NULL, QED_OPEN_READ_ONLY, ENOTSUP,
                   "base.qcow2': Image format 'qcow2' is not supported");
    /* The image itself opens without its backing file. */
    QedImage *img = tu_open(top, QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING);
    TU_OK(qed_close(img, &tu_err));
    /* Stored as raw, the same bytes are a raw backing file, as in QEMU. */
    g_autofree char *raw_top = tu_create("over-raw.qed", MiB, 0, "base.qcow2", "raw");
    img = tu_open(raw_top, QED_OPEN_READ_ONLY);
    uint8_t buf[8];
    TU_OK(qed_pread(img, buf, sizeof(buf), 0, &tu_err));
    g_assert_cmpmem(buf, 8, "QFI\xfb\0\0\0\x03", 8);
    TU_OK(qed_close(img, &tu_err));
}

static QedImage *open_probed(const char *path, unsigned flags)
{
    QedImage *img = tu_open(path, flags);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_cmpstr(info.format, ==, "raw");
    g_assert_true(info.format_probed);
    return img;
}

static void assert_write_refused(QedImage *img, const char *path, const void *buf, size_t len,
                                 uint64_t offset)
{
    g_autoptr(GBytes) before = tu_file_bytes(path);
    GError *err = NULL;
    g_assert_cmpint(qed_pwrite(img, buf, len, offset, 0, &err), ==, -EPERM);
    g_assert_cmpint(err->code, ==, EPERM);
    g_assert_nonnull(strstr(err->message, path));
    g_assert_nonnull(strstr(err->message, "probe"));
    g_clear_error(&err);
    g_autoptr(GBytes) after = tu_file_bytes(path);
    g_assert_true(g_bytes_equal(before, after));
}

static void test_probed_raw_refuses_foreign_header(void)
{
    g_autofree char *path = tu_raw_file("probed.raw", MiB, 1);
    QedImage *img = open_probed(path, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(foreign); i++) {
        uint8_t sector[512] = { 0 };
        memcpy(sector + foreign[i].offset, foreign[i].head, foreign[i].len);
        assert_write_refused(img, path, sector, sizeof(sector), 0);
        /* A longer write that covers the first sector is refused whole. */
        uint8_t *big = g_malloc0(65536);
        memcpy(big + foreign[i].offset, foreign[i].head, foreign[i].len);
        assert_write_refused(img, path, big, 65536, 0);
        g_free(big);
    }
    /* QED's own header counts as another format too. */
    uint32_t magic = GUINT32_TO_LE(QED_MAGIC);
    assert_write_refused(img, path, &magic, sizeof(magic), 0);
    TU_OK(qed_close(img, &tu_err));
}

/* Two writes, each harmless alone, that together would leave a qcow2
 * header: the second sees the first's bytes on disk and is refused. */
static void test_probed_raw_refuses_header_in_pieces(void)
{
    g_autofree char *path = tu_raw_file("pieces.raw", MiB, 1);
    uint8_t zero[8] = { 0 };
    tu_patch(path, 0, zero, sizeof(zero));
    QedImage *img = open_probed(path, 0);
    TU_OK(qed_pwrite(img, "QFI\xfb", 4, 0, 0, &tu_err)); /* version 0: still raw */
    assert_write_refused(img, path, "\0\0\0\x02", 4, 4);
    TU_OK(qed_close(img, &tu_err));
}

/* Zeroing or discarding bytes can complete a header too (a LUKS version of
 * 0x0101 is no LUKS; 0x0001 is); QEMU lets zero writes through unchecked. */
static void test_probed_raw_refuses_zeroes_that_make_a_header(void)
{
    g_autofree char *path = tu_raw_file("zeroes.raw", MiB, 1);
    tu_patch(path, 0, "LUKS\xba\xbe\x01\x01", 8);
    QedImage *img = open_probed(path, 0);
    g_autoptr(GBytes) before = tu_file_bytes(path);
    GError *err = NULL;
    g_assert_cmpint(qed_pwrite_zeroes(img, 1, 6, 0, &err), ==, -EPERM);
    g_clear_error(&err);
    g_assert_cmpint(qed_discard(img, 1, 6, &err), ==, -EPERM);
    g_clear_error(&err);
    g_autoptr(GBytes) after = tu_file_bytes(path);
    g_assert_true(g_bytes_equal(before, after));
    /* Zeroing the magic as well leaves no header: allowed. */
    TU_OK(qed_pwrite_zeroes(img, 8, 0, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));
}

static void test_probed_raw_allows_ordinary_writes(void)
{
    g_autofree char *path = tu_raw_file("ordinary.raw", MiB, 1);
    QedImage *img = open_probed(path, 0);
    uint8_t buf[4096];
    tu_fill(buf, sizeof(buf), 42);
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 0, 0, &tu_err));
    TU_OK(qed_pwrite(img, buf, 100, 3, 0, &tu_err));
    TU_OK(qed_pwrite_zeroes(img, 4096, 0, 0, &tu_err));
    /* Past the first sector anything goes. */
    TU_OK(qed_pwrite(img, "QFI\xfb\0\0\0\x03", 8, 512, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));
    g_autoptr(GBytes) bytes = tu_file_bytes(path);
    const uint8_t *p = g_bytes_get_data(bytes, NULL);
    g_assert_cmpmem(p + 512, 8, "QFI\xfb\0\0\0\x03", 8);
    g_assert_cmpuint(p[0] | p[511], ==, 0);
}

/* Named as raw, the image is not guarded: any first sector may be written. */
static void test_named_raw_is_not_restricted(void)
{
    g_autofree char *path = tu_raw_file("named.raw", MiB, 1);
    QedOpenOptions o = { .format = "raw" };
    QedImage *img = qed_open(path, &o, NULL);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_false(info.format_probed);
    TU_OK(qed_pwrite(img, "QFI\xfb\0\0\0\x03", 8, 0, 0, &tu_err));
    TU_OK(qed_close(img, &tu_err));
    assert_refused(path, NULL, 0, ENOTSUP, "Image format 'qcow2' is not supported");
}

/* A probed image opened read-only and switched to read-write is guarded too. */
static void test_reopened_probed_raw_is_restricted(void)
{
    g_autofree char *path = tu_raw_file("reopen.raw", MiB, 1);
    QedImage *img = open_probed(path, QED_OPEN_READ_ONLY);
    TU_OK(qed_reopen(img, 0, &tu_err));
    assert_write_refused(img, path, "conectix", 8, 0);
    TU_OK(qed_close(img, &tu_err));
}

static void test_qed_image_is_not_probed_raw(void)
{
    g_autofree char *path = tu_create("plain.qed", MiB, 0, NULL, NULL);
    QedImage *img = tu_open(path, 0);
    QedInfo info;
    TU_OK(qed_get_info(img, &info, &tu_err));
    g_assert_false(info.format_probed);
    TU_OK(qed_close(img, &tu_err));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/probe/foreign-formats-are-refused", test_foreign_formats_are_refused);
    g_test_add_func("/probe/dmg-is-known-by-name", test_dmg_is_known_by_name);
    g_test_add_func("/probe/unknown-format-name", test_unknown_format_name);
    g_test_add_func("/probe/qcow2-backing-file-is-refused", test_qcow2_backing_file_is_refused);
    g_test_add_func("/probe/probed-raw-refuses-foreign-header",
                    test_probed_raw_refuses_foreign_header);
    g_test_add_func("/probe/probed-raw-refuses-header-in-pieces",
                    test_probed_raw_refuses_header_in_pieces);
    g_test_add_func("/probe/probed-raw-refuses-zeroes-that-make-a-header",
                    test_probed_raw_refuses_zeroes_that_make_a_header);
    g_test_add_func("/probe/probed-raw-allows-ordinary-writes",
                    test_probed_raw_allows_ordinary_writes);
    g_test_add_func("/probe/named-raw-is-not-restricted", test_named_raw_is_not_restricted);
    g_test_add_func("/probe/reopened-probed-raw-is-restricted",
                    test_reopened_probed_raw_is_restricted);
    g_test_add_func("/probe/qed-image-is-not-probed-raw", test_qed_image_is_not_probed_raw);
    return g_test_run();
}
