/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the C tests (see testutil.h).
 */
#include "testutil.h"

#include "blk/blk.h"
#include "image.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static char *scratch;

static void remove_scratch(void)
{
    if (scratch) {
        char *cmd = g_strdup_printf("rm -rf '%s'", scratch);
        if (system(cmd) != 0) {
            g_printerr("could not remove %s\n", scratch);
        }
        g_free(cmd);
    }
}

const char *tu_dir(void)
{
    if (!scratch) {
        scratch = g_dir_make_tmp("qedunit.XXXXXX", NULL);
        g_assert_nonnull(scratch);
        atexit(remove_scratch);
    }
    return scratch;
}

char *tu_path(const char *name)
{
    return g_build_filename(tu_dir(), name, NULL);
}

char *tu_create(const char *name, uint64_t size, uint32_t cluster_size, const char *backing,
                const char *backing_fmt)
{
    char *path = tu_path(name);
    QedCreateOptions o = {
        .size = size,
        .cluster_size = cluster_size,
        .backing_file = backing,
        .backing_format = backing_fmt,
    };
    GError *err = NULL;
    if (qed_create(path, &o, &err) < 0) {
        g_error("create %s: %s", path, err->message);
    }
    return path;
}

QedImage *tu_open(const char *path, unsigned flags)
{
    QedOpenOptions o = { .flags = flags };
    GError *err = NULL;
    QedImage *img = qed_open(path, &o, &err);
    if (!img) {
        g_error("open %s: %s", path, err->message);
    }
    return img;
}

void tu_fill(void *buf, size_t len, uint8_t seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(seed + i * 7);
    }
}

void tu_write_byte(QedImage *img, uint8_t value, uint64_t len, uint64_t off)
{
    uint8_t *buf = g_malloc(len);
    memset(buf, value, len);
    TU_OK(qed_pwrite(img, buf, len, off, 0, &tu_err));
    g_free(buf);
}

void tu_assert_byte(QedImage *img, uint8_t value, uint64_t len, uint64_t off)
{
    uint8_t *buf = g_malloc(len);
    TU_OK(qed_pread(img, buf, len, off, &tu_err));
    for (uint64_t i = 0; i < len; i++) {
        if (buf[i] != value) {
            g_error("byte %" G_GUINT64_FORMAT " reads %u, not %u", off + i, buf[i], value);
        }
    }
    g_free(buf);
}

char *tu_raw_file(const char *name, size_t len, uint8_t seed)
{
    char *path = tu_path(name);
    uint8_t *buf = g_malloc(len);
    tu_fill(buf, len, seed);
    g_assert_true(g_file_set_contents(path, (char *)buf, (gssize)len, NULL));
    g_free(buf);
    return path;
}

int tu_qemu_img_check(const char *path)
{
    char *qemu_img = g_find_program_in_path("qemu-img");
    if (!qemu_img) {
        return -1;
    }
    /* -U: some tests check an image that they still hold open (and locked). */
    char *argv[] = { qemu_img, "check", "-q", "-U", (char *)path, NULL };
    int status = 0;
    GError *err = NULL;
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, NULL, &status, &err)) {
        g_error("qemu-img: %s", err->message);
    }
    g_free(qemu_img);
    return WEXITSTATUS(status);
}

/* GCC says so with a macro, clang through __has_feature. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TU_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TU_SANITIZED 1
#endif
#endif

bool tu_sanitized(void)
{
#ifdef TU_SANITIZED
    return true;
#else
    return false;
#endif
}

int tu_env_int(const char *name, int def)
{
    const char *v = g_getenv(name);
    return v && *v ? atoi(v) : def;
}

GBytes *tu_file_bytes(const char *path)
{
    char *data;
    gsize len;
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_bytes_new_take(data, len);
}

void tu_patch(const char *path, uint64_t offset, const void *data, size_t len)
{
    FILE *f = fopen(path, "r+b");
    g_assert_nonnull(f);
    g_assert_cmpint(fseeko(f, (off_t)offset, SEEK_SET), ==, 0);
    g_assert_cmpuint(fwrite(data, 1, len, f), ==, len);
    fclose(f);
}

void tu_patch_le(const char *path, uint64_t offset, uint64_t value, int width)
{
    uint8_t b[8];
    for (int i = 0; i < width; i++) {
        b[i] = (uint8_t)(value >> (8 * i));
    }
    tu_patch(path, offset, b, (size_t)width);
}

QedImage *tu_open_on_blk(BlkDev *dev, const char *backing, GError **errp)
{
    QedImage *img = image_open_blk(dev, "crash.qed", "qed", QED_OPEN_NO_BACKING, errp);
    if (img && backing && image_attach_backing(img, backing, "raw", errp) < 0) {
        qed_close(img, NULL);
        return NULL;
    }
    return img;
}

QedImage *tu_open_crash_state(GBytes *state, bool fixed, const char *backing, const char *what)
{
    BlkDev *mem = blk_mem_new("crash.qed", g_bytes_get_data(state, NULL), g_bytes_get_size(state));
    mem->fixed_length = fixed;
    GError *err = NULL;
    QedImage *img = tu_open_on_blk(mem, backing, &err);
    if (!img) {
        g_error("%s: open failed: %s", what, err->message);
    }
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    if (res.corruptions || res.check_errors) {
        g_error("%s: %" G_GUINT64_FORMAT " corruptions after repair", what, res.corruptions);
    }
    return img;
}

void tu_assert_state_consistent(GBytes *state, uint32_t cluster_size, const char *what)
{
    gsize len = g_bytes_get_size(state) / cluster_size * cluster_size;
    BlkDev *cut = blk_mem_new("crash.qed", g_bytes_get_data(state, NULL), len);
    GError *err = NULL;
    QedImage *ro = image_open_blk(cut, "crash.qed", "qed",
                                  QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING, &err);
    if (!ro) {
        g_error("%s: the state does not open: %s", what, err->message);
    }
    QedCheckResult res;
    TU_OK(qed_check(ro, 0, &res, &tu_err));
    if (res.corruptions || res.check_errors) {
        g_error("%s: the state QEMU would see has %" G_GUINT64_FORMAT " corruptions", what,
                res.corruptions);
    }
    TU_OK(qed_close(ro, &tu_err));
}
