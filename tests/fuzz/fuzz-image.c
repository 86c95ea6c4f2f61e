/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fuzz target: the input is an image file behind a small prefix that
 * chooses what to do with it. The image is opened from memory (never its
 * backing file), read-only and then writable, and driven through reads,
 * writes, zero writes, discards, block status, resize, flush, info and
 * checks with and without repair. Nothing may crash, hang, leak or allocate
 * without bound, whatever the bytes; errors are fine. An image that checks
 * clean when opened must check clean after the writable pass.
 *
 * Input layout (docs in tests/fuzz/make-seeds.sh, which builds seeds):
 *   byte 0     mode: bit 0 skips the read-only pass, bit 1 the writable one,
 *              bit 2 makes the device of fixed length (an nbdkit container),
 *              bit 3 opens the writable pass for checking (QED_OPEN_CHECK:
 *              no repair at open)
 *   bytes 1-7  seed of the requests (xorshift), count = 4 + byte 1 % 16
 *   the rest   the image file
 * Built by scripts/fuzz.sh with libFuzzer, and by meson (fuzz-replay.c)
 * as a regression test over the seeds.
 */
#include <stdint.h>
#include <string.h>

#include "blk/blk.h"
#include "image.h"

#define PREFIX 8
#define MAX_IO (64u * 1024) /* the largest request the target makes */
#define NAME "fuzz.qed"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Fuzz {
    uint64_t state; /* xorshift64 */
    uint8_t *buf;   /* MAX_IO bytes */
} Fuzz;

static uint64_t next(Fuzz *f)
{
    f->state ^= f->state << 13;
    f->state ^= f->state >> 7;
    f->state ^= f->state << 17;
    return f->state;
}

/* An offset in [0, size): mostly near the start, where the tables point,
 * sometimes anywhere, sometimes near the end. */
static uint64_t pick_offset(Fuzz *f, uint64_t size)
{
    if (size == 0) {
        return 0;
    }
    uint64_t r = next(f);
    uint64_t off;
    switch (r % 4) {
    case 0:
        off = next(f) % size;
        break;
    case 1:
        off = size - 1 - next(f) % MIN(size, 1u << 20);
        break;
    default:
        off = next(f) % MIN(size, 4u << 20);
        break;
    }
    if (r & 0x10) {
        off &= ~511ull; /* sector aligned, most of the time */
    }
    return off;
}

static uint64_t pick_len(Fuzz *f, uint64_t size, uint64_t off)
{
    uint64_t len = 1 + next(f) % MAX_IO;
    return MIN(len, size - off);
}

static void drive(Fuzz *f, QedImage *img, int requests, bool writable)
{
    for (int i = 0; i < requests; i++) {
        uint64_t size = qed_get_size(img);
        uint64_t off = pick_offset(f, size);
        uint64_t len = pick_len(f, size, off);
        unsigned op = (unsigned)(next(f) % (writable ? 13 : 5));
        QedExtent ext;
        QedCheckResult res;
        QedInfo info;
        switch (op) {
        case 0:
        case 1:
            qed_pread(img, f->buf, len, off, NULL);
            break;
        case 2:
            qed_block_status(img, size - off, off, &ext, NULL);
            break;
        case 3:
            qed_check(img, 0, &res, NULL);
            break;
        case 4:
            qed_get_info(img, &info, NULL);
            break;
        case 5:
        case 6:
            memset(f->buf, (int)(next(f) | 1), len);
            qed_pwrite(img, f->buf, len, off, (next(f) & 7) == 0 ? QED_WRITE_FUA : 0, NULL);
            break;
        case 7:
            qed_pwrite_zeroes(img, len, off, 0, NULL);
            break;
        case 8:
            qed_discard(img, len, off, NULL);
            break;
        case 9:
            qed_flush(img, NULL);
            break;
        case 10:
            qed_check(img, QED_CHECK_FIX_ERRORS | QED_CHECK_FIX_LEAKS, &res, NULL);
            break;
        case 11:
            qed_check(img, QED_CHECK_FIX_ERRORS | QED_CHECK_FIX_LEAKS | QED_CHECK_FIX_COMPACT,
                      &res, NULL);
            break;
        case 12:
            /* Grow a little: a new L1 entry or two at most. */
            qed_resize(img, size + (next(f) % (64u << 20) & ~511ull), NULL);
            break;
        }
    }
}

static bool consistent(QedImage *img)
{
    QedCheckResult res;
    return qed_check(img, 0, &res, NULL) == 0 && res.corruptions == 0 && res.check_errors == 0;
}

/* One pass: the file bytes on a fresh in-memory device, opened with flags.
 * A writable pass over an image that checks clean must leave it clean (but
 * for leaks), whatever its requests did and however they failed. */
static void pass(const uint8_t *prefix, const uint8_t *file, size_t len, unsigned flags)
{
    Fuzz f = { .buf = g_malloc(MAX_IO) };
    for (int i = 1; i < PREFIX; i++) {
        f.state = f.state << 8 | prefix[i];
    }
    f.state = f.state * 0x9e3779b97f4a7c15ull + 1; /* never zero */
    bool writable = !(flags & QED_OPEN_READ_ONLY);
    BlkDev *mem = blk_mem_new(NAME, file, len);
    mem->fixed_length = prefix[0] & 4;
    /* An unarmed fault injector: the image owns it, the bytes outlive it. */
    BlkDev *dev = blk_fault_new(mem);
    GError *err = NULL;
    QedImage *img = image_open_blk(dev, NAME, "qed", flags | QED_OPEN_NO_BACKING, &err);
    if (!img) {
        /* Refused: it must say why, naming the file. */
        if (!err || !strstr(err->message, NAME)) {
            g_error("open failed without a proper error: %s", err ? err->message : "(none)");
        }
        g_error_free(err);
    } else {
        bool was_consistent = writable && consistent(img);
        drive(&f, img, 4 + prefix[1] % 16, writable);
        if (qed_close(img, NULL) == 0 && was_consistent) {
            GBytes *after = blk_mem_contents(mem);
            BlkDev *again = blk_mem_new(NAME, g_bytes_get_data(after, NULL),
                                        g_bytes_get_size(after));
            again->fixed_length = mem->fixed_length;
            g_bytes_unref(after);
            img = image_open_blk(again, NAME, "qed", QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING,
                                 &err);
            if (!img) {
                g_error("a consistent image does not open after writes: %s", err->message);
            }
            if (!consistent(img)) {
                g_error("a consistent image is corrupt after writes");
            }
            qed_close(img, NULL);
        }
    }
    blk_close(mem);
    g_free(f.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PREFIX) {
        return 0;
    }
    if (!(data[0] & 1)) {
        pass(data, data + PREFIX, size - PREFIX, QED_OPEN_READ_ONLY);
    }
    if (!(data[0] & 2)) {
        pass(data, data + PREFIX, size - PREFIX, data[0] & 8 ? QED_OPEN_CHECK : 0);
    }
    return 0;
}
