/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers shared by the C tests: a scratch directory, images made with the
 * library, and assertions that report GErrors.
 */
#ifndef QED_TESTUTIL_H
#define QED_TESTUTIL_H

#include "qed.h"

/* A fresh scratch directory for this process, removed at exit. */
const char *tu_dir(void);
/* tu_dir()/name; free with g_free. */
char *tu_path(const char *name);
/* Creates an image (aborts the test on failure) and returns its path. */
char *tu_create(const char *name, uint64_t size, uint32_t cluster_size, const char *backing,
                const char *backing_fmt);
/* Opens with flags (aborts the test on failure). */
QedImage *tu_open(const char *path, unsigned flags);
/* Writes a raw file of len bytes, byte i = seed + i * 7 (mod 256). */
char *tu_raw_file(const char *name, size_t len, uint8_t seed);
/* Fills buf with a pattern from seed. */
void tu_fill(void *buf, size_t len, uint8_t seed);
/* Writes len bytes of value at off through img; fails the test on error. */
void tu_write_byte(QedImage *img, uint8_t value, uint64_t len, uint64_t off);
/* Reads len bytes at off through img; fails the test unless all are value. */
void tu_assert_byte(QedImage *img, uint8_t value, uint64_t len, uint64_t off);
/* Runs qemu-img check -U on path (which may be open); returns its exit
 * status, or -1 without qemu-img. */
int tu_qemu_img_check(const char *path);
/* Whether this build runs under AddressSanitizer or ThreadSanitizer (3-10
 * times slower), where the exhaustive tests check a sample of their cases. */
bool tu_sanitized(void);
/* The integer in environment variable name, or def when it is not set. */
int tu_env_int(const char *name, int def);

/* Crash-state tests (test-crash*.c). */
struct BlkDev;
/* Opens an image whose file is dev (owned), named crash.qed, attaching the
 * raw backing file by path when it is not NULL. */
QedImage *tu_open_on_blk(struct BlkDev *dev, const char *backing, GError **errp);
/* Opens a crash state as the next writable open would (repairing it; in a
 * container of fixed length when fixed), attaching the raw backing file
 * when it is not NULL, and fails the test (naming what) unless it opens and
 * its check then finds no corruption. */
QedImage *tu_open_crash_state(GBytes *state, bool fixed, const char *backing, const char *what);
/* Fails the test unless the crash state, as it is, has nothing worse than
 * leaks by QEMU's rules: QEMU's check takes the file's length rounded down
 * to a cluster, so a cluster that sticks out past the end is a corruption
 * there; ours, on the file cut to whole clusters, sees the same. what names
 * the state in the message. */
void tu_assert_state_consistent(GBytes *state, uint32_t cluster_size, const char *what);

/* Runs a library call written with `&tu_err` as its GError argument and
 * fails the test, with the message, when it returns an error. */
#define TU_OK(call) \
    do { \
        GError *tu_err = NULL; \
        int tu_ret = (call); \
        if (tu_ret < 0) { \
            g_error("%s: %d: %s", #call, tu_ret, tu_err ? tu_err->message : "no message"); \
        } \
    } while (0)

/* Reads the whole file into a GBytes. */
GBytes *tu_file_bytes(const char *path);
/* Patches len bytes of the file at offset. */
void tu_patch(const char *path, uint64_t offset, const void *data, size_t len);
/* Patches a little-endian integer of `width` bytes (4 or 8). */
void tu_patch_le(const char *path, uint64_t offset, uint64_t value, int width);

#endif
