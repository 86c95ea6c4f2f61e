/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * I/O errors at every point: a workload runs on a fault injector (blk-fault)
 * over an in-memory image, once to count its reads, writes and flushes, then
 * once for every n and every kind of fault (EIO or ENOSPC, transient or
 * persistent, a failed write that did or did not reach the disk). Each
 * request that met a fault must fail with that error and a message naming
 * the file (but a write that met ENOSPC may reclaim freed space and succeed
 * on its second try), every other request must succeed, and what the handle reads is
 * what was written last. Once a flush has failed (a request's own or one
 * inside it), or a write of the metadata commit, the handle is failed: every later write, zero
 * write, discard, resize, flush and the close fail with EIO, and reads go on working. Afterwards
 * the bytes on the device must open, check clean, keep what a completed flush acknowledged and
 * hold old or new data in every other sector. The workload runs on a new image, and again on one
 * left dirty (NEED_CHECK, a leaked cluster) that the open repairs. Two more tests take the failed
 * handle alone: a flush after a failed one, and a failed flush inside an allocating write. Under a
 * sanitizer each n gets one style of fault, in turn, instead of all six (QED_FAULT_SAMPLE=0 runs
 * them all).
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "blk/blk.h"
#include "image.h"

#define SECTOR 512u
#define WINDOW 512u /* sectors the workload touches at the start of each L2 table's range */
#define NWINDOWS 3u /* the third lies past the initial size: only a resize reaches it */
#define NAME "fault.qed"
#define CONTAINER_BYTES (4u << 20) /* the size of a fixed-length container */

/* What a sector can hold: 0 zeros, 1 the backing file's pattern, 2.. the
 * byte every write step fills it with. */
enum { V_ZERO = 0, V_BACKING = 1, V_FIRST_WRITE = 2 };

typedef enum OpKind {
    OP_WRITE,
    OP_WRITE_FUA,
    OP_ZERO,
    OP_DISCARD,
    OP_FLUSH,
    OP_RESIZE,
    OP_READ
} OpKind;

typedef struct Step {
    OpKind op;
    uint32_t window; /* which window */
    uint32_t first;  /* sector inside the window */
    uint32_t count;  /* sectors */
} Step;

/* Allocating writes (partial clusters, several clusters, into a zero
 * cluster), in-place writes, a new L2 table in each window, zeroes and
 * discards of unallocated, partly and wholly allocated clusters, a resize
 * that adds an L1 entry, a FUA write, reads and flushes. */
static const Step steps[] = {
    { OP_WRITE, 0, 3, 5 },     { OP_WRITE, 0, 20, 150 },  { OP_FLUSH, 0, 0, 0 },
    { OP_WRITE, 1, 9, 40 },    { OP_WRITE, 0, 4, 2 },     { OP_ZERO, 0, 256, 128 },
    { OP_ZERO, 0, 10, 30 },    { OP_DISCARD, 1, 0, 64 },  { OP_FLUSH, 0, 0, 0 },
    { OP_WRITE, 0, 260, 4 },   { OP_READ, 0, 0, WINDOW }, { OP_RESIZE, 0, 0, 0 },
    { OP_WRITE, 2, 1, 200 },   { OP_ZERO, 2, 128, 256 },  { OP_WRITE_FUA, 0, 100, 9 },
    { OP_DISCARD, 0, 0, 128 }, { OP_WRITE, 1, 300, 100 }, { OP_ZERO, 1, 0, WINDOW },
    { OP_WRITE, 1, 50, 7 },    { OP_FLUSH, 0, 0, 0 },     { OP_WRITE, 0, 400, 112 },
    { OP_READ, 1, 0, WINDOW }, { OP_WRITE, 2, 500, 12 },
};

typedef struct Workload {
    const char *name;
    uint32_t cluster_size;
    bool backing;
    bool fixed_length; /* a container whose length says nothing (an nbdkit plugin's disk) */
} Workload;

static const Workload workloads[] = {
    { "plain-4k", 4096, false },
    { "raw-backing-4k", 4096, true },
    { "plain-64k", 65536, false },
    { "raw-backing-64k", 65536, true },
    { "fixed-length-4k", 4096, false, true },
};

/* A set of sector values. */
typedef struct VSet {
    uint64_t bits[4];
} VSet;

static void vset_only(VSet *v, unsigned value)
{
    memset(v, 0, sizeof(*v));
    v->bits[value / 64] = 1ull << (value % 64);
}

static void vset_add(VSet *v, unsigned value)
{
    v->bits[value / 64] |= 1ull << (value % 64);
}

static bool vset_has(const VSet *v, unsigned value)
{
    return v->bits[value / 64] & (1ull << (value % 64));
}

/* What every window sector may hold: `cur` on this handle now, `allowed`
 * after any failure (what the last completed flush acknowledged, plus
 * everything written since). */
typedef struct Model {
    VSet cur[NWINDOWS * WINDOW];
    VSet allowed[NWINDOWS * WINDOW];
} Model;

/* What a run starts from: the image's bytes and what its sectors hold. */
typedef struct Start {
    GBytes *bytes;
    Model *model;
    unsigned value_base; /* step i writes value_base + i, so that runs from
                          * here tell their writes from those before */
} Start;

/* One workload's geometry and starting points, shared by all its runs. */
typedef struct Setup {
    const Workload *w;
    uint64_t coverage;     /* bytes one L2 table maps */
    uint64_t size, grown;  /* virtual size before and after the resize */
    uint64_t backing_size; /* bytes; 0 without a backing file */
    char *backing;         /* path of the raw backing file, or NULL */
    Start fresh;           /* the image as created */
    Start dirty;           /* after the clean run's steps, not closed (NEED_CHECK set,
                            * the last cluster maybe short), and a leaked cluster at
                            * the end: a writable open repairs it */
} Setup;

static uint64_t window_offset(const Setup *su, uint32_t window)
{
    return su->coverage * window;
}

static uint64_t abs_sector(const Setup *su, uint32_t window, uint32_t sector)
{
    return window_offset(su, window) / SECTOR + sector;
}

static uint8_t backing_byte(uint64_t sector, size_t i)
{
    return (uint8_t)((sector * 13 + i) % 251 + 1);
}

/* The value a sector read holds, or -1 for anything else (torn, foreign). */
static int classify(const uint8_t *p, uint64_t sector)
{
    size_t i = 1;
    while (i < SECTOR && p[i] == p[0]) {
        i++;
    }
    if (i == SECTOR) {
        return p[0] == 0 || p[0] >= V_FIRST_WRITE ? p[0] : -1;
    }
    for (i = 0; i < SECTOR; i++) {
        if (p[i] != backing_byte(sector, i)) {
            return -1;
        }
    }
    return V_BACKING;
}

static unsigned initial_value(const Setup *su, uint32_t window, uint32_t sector)
{
    return abs_sector(su, window, sector) * SECTOR < su->backing_size ? V_BACKING : V_ZERO;
}

static void model_init(Model *m, const Setup *su)
{
    for (uint32_t win = 0; win < NWINDOWS; win++) {
        for (uint32_t s = 0; s < WINDOW; s++) {
            vset_only(&m->cur[win * WINDOW + s], initial_value(su, win, s));
            m->allowed[win * WINDOW + s] = m->cur[win * WINDOW + s];
        }
    }
}

static void setup_init(Setup *su, const Workload *w)
{
    su->w = w;
    su->coverage = (uint64_t)(w->cluster_size / sizeof(uint64_t)) * w->cluster_size;
    su->size = 2 * su->coverage;
    su->grown = 3 * su->coverage;
    su->backing = NULL;
    su->backing_size = 0;
    if (w->backing) {
        /* Sparse: the pattern only where the windows are. It ends in the
         * middle of window 1, so copy-on-write there fills zeros past it. */
        g_autofree char *name = g_strdup_printf("%s.raw", w->name);
        su->backing = tu_path(name);
        su->backing_size = su->coverage + WINDOW * SECTOR / 2;
        int fd = open(su->backing, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        g_assert_cmpint(fd, >=, 0);
        uint8_t *buf = g_malloc(WINDOW * SECTOR);
        for (uint32_t win = 0; win < 2; win++) {
            for (uint32_t s = 0; s < WINDOW; s++) {
                for (size_t i = 0; i < SECTOR; i++) {
                    buf[s * SECTOR + i] = backing_byte(abs_sector(su, win, s), i);
                }
            }
            uint64_t off = window_offset(su, win);
            size_t len = (size_t)MIN(WINDOW * SECTOR, su->backing_size - off);
            g_assert_cmpint(pwrite(fd, buf, len, (off_t)off), ==, (ssize_t)len);
        }
        g_assert_cmpint(ftruncate(fd, (off_t)su->backing_size), ==, 0);
        close(fd);
        g_free(buf);
    }
    BlkDev *mem = blk_mem_new(NAME, NULL, 0);
    QedCreateOptions co = { .size = su->size,
                            .cluster_size = w->cluster_size,
                            .table_size = 1,
                            .backing_file = su->backing,
                            .backing_format = "raw" };
    TU_OK(qed_driver.create(mem, &co, &tu_err));
    su->fresh.bytes = blk_mem_contents(mem);
    blk_close(mem);
    if (w->fixed_length) {
        /* A container with room for the workload, holding old bytes past
         * the image: allocation must overwrite them, never show them. */
        GByteArray *a = g_byte_array_new();
        g_byte_array_append(a, g_bytes_get_data(su->fresh.bytes, NULL),
                            (guint)g_bytes_get_size(su->fresh.bytes));
        guint old = a->len;
        g_byte_array_set_size(a, CONTAINER_BYTES);
        memset(a->data + old, 0xa5, CONTAINER_BYTES - old);
        g_bytes_unref(su->fresh.bytes);
        su->fresh.bytes = g_byte_array_free_to_bytes(a);
    }
    su->fresh.value_base = V_FIRST_WRITE;
    su->fresh.model = g_new(Model, 1);
    model_init(su->fresh.model, su);
}

static void setup_destroy(Setup *su)
{
    g_bytes_unref(su->fresh.bytes);
    g_bytes_unref(su->dirty.bytes);
    g_free(su->fresh.model);
    g_free(su->dirty.model);
    g_free(su->backing);
}

/* A write of value to [first, first+count) of window completed (ok) or failed. */
static void model_write(Model *m, uint32_t window, uint32_t first, uint32_t count, unsigned value,
                        bool ok)
{
    for (uint32_t s = first; s < first + count; s++) {
        VSet *cur = &m->cur[window * WINDOW + s];
        if (ok) {
            vset_only(cur, value);
        } else {
            vset_add(cur, value);
        }
        vset_add(&m->allowed[window * WINDOW + s], value);
    }
}

static void model_flushed(Model *m)
{
    memcpy(m->allowed, m->cur, sizeof(m->allowed));
}

/* One run of the workload with one fault armed (or none). */
typedef struct Run {
    const Setup *su;
    const Start *start;
    Start *capture; /* when not NULL, gets the state just before close */
    BlkFault fault; /* nth == 0: nothing armed */
    char *ctx;      /* names the run in failure messages */
    BlkDev *mem;    /* the image's bytes; outlives the fault device */
    BlkDev *dev;    /* the fault device, owned by img */
    QedImage *img;
    uint64_t size; /* what the handle says the size is */
    Model *m;
    bool failed;                          /* a flush has failed: the handle is failed */
    bool recoverable;                     /* the request running may retry after ENOSPC */
    uint64_t calls[BLK_FAULT_KIND_COUNT]; /* requests that reached the device */
} Run;

/* A request has returned ret (with err): it must have failed with the armed
 * error, naming the file, exactly when it met a fault. Returns ret == 0. */
static bool expect_result(Run *r, const char *what, uint64_t injected_before, int ret, GError *err)
{
    bool met = blk_fault_injected(r->dev) != injected_before;
    /* A failed flush fails the handle; so does a failed write of the
     * metadata commit (inside a flush, a FUA write, a resize), after which
     * what is on the disk is unknown too. The handle says which it was;
     * nothing else may fail it. */
    bool failed = blk_failed(r->img->file);
    if (met && (r->fault.kind == BLK_FAULT_FLUSH || failed)) {
        r->failed = true;
    } else if (failed && !r->failed) {
        g_error("%s: %s failed the handle without meeting a fault", r->ctx, what);
    }
    /* A write or zero write that met ENOSPC reclaims what zero writes freed
     * this session and tries once more (qed.c): it may then succeed, and
     * the model takes its data as written. */
    if (met && ret == 0 && r->fault.error == ENOSPC && !r->failed && r->recoverable) {
        g_assert_null(err);
        return true;
    }
    if (!met) {
        if (ret != 0) {
            g_error("%s: %s failed without a fault: %d %s", r->ctx, what, ret,
                    err ? err->message : "(no message)");
        }
        g_assert_null(err);
        return true;
    }
    if (ret != -r->fault.error) {
        g_error("%s: %s met a fault but returned %d (%s)", r->ctx, what, ret,
                err ? err->message : "no message");
    }
    if (!err || err->domain != QED_ERROR || err->code != r->fault.error ||
        !strstr(err->message, NAME)) {
        g_error("%s: %s: bad error: %s", r->ctx, what, err ? err->message : "(none)");
    }
    g_error_free(err);
    return false;
}

static bool in_size(const Run *r, uint32_t window)
{
    return window_offset(r->su, window) + WINDOW * SECTOR <= r->size;
}

/* Checks a read of count sectors at window/first against the model: each
 * sector one of cur (strict) or of allowed. */
static void check_sectors(const Run *r, const char *when, const uint8_t *buf, uint32_t window,
                          uint32_t first, uint32_t count, bool strict)
{
    for (uint32_t s = first; s < first + count; s++) {
        int v = classify(buf + (size_t)(s - first) * SECTOR, abs_sector(r->su, window, s));
        const VSet *set = strict ? &r->m->cur[window * WINDOW + s]
                                 : &r->m->allowed[window * WINDOW + s];
        if (v < 0 || !vset_has(set, (unsigned)v)) {
            g_error("%s: %s: window %u sector %u reads %d, not a value %s", r->ctx, when, window,
                    s, v, strict ? "written last" : "old or new");
        }
    }
}

/* A request on a failed handle: it must fail with EIO, naming the file, and
 * without reaching the device. */
static void expect_failed_handle(Run *r, const char *what, uint64_t calls_before, int ret,
                                 GError *err)
{
    if (ret != -EIO || !err || err->code != EIO || !strstr(err->message, NAME)) {
        g_error("%s: %s on a failed handle returned %d (%s)", r->ctx, what, ret,
                err ? err->message : "no message");
    }
    g_error_free(err);
    uint64_t calls = blk_fault_calls(r->dev, BLK_FAULT_WRITE) +
                     blk_fault_calls(r->dev, BLK_FAULT_FLUSH);
    if (calls != calls_before) {
        g_error("%s: %s on a failed handle reached the device", r->ctx, what);
    }
}

/* Runs a step on a failed handle: everything but a read fails. */
static void run_step_failed(Run *r, const Step *st, const char *what, uint8_t *buf)
{
    uint64_t off = window_offset(r->su, st->window) + (uint64_t)st->first * SECTOR;
    uint64_t len = (uint64_t)st->count * SECTOR;
    uint64_t calls = blk_fault_calls(r->dev, BLK_FAULT_WRITE) +
                     blk_fault_calls(r->dev, BLK_FAULT_FLUSH);
    GError *err = NULL;
    int ret = 0;
    switch (st->op) {
    case OP_WRITE:
    case OP_WRITE_FUA:
        memset(buf, 0xee, len);
        ret = qed_pwrite(r->img, buf, len, off, st->op == OP_WRITE_FUA ? QED_WRITE_FUA : 0, &err);
        break;
    case OP_ZERO:
        ret = qed_pwrite_zeroes(r->img, len, off, 0, &err);
        break;
    case OP_DISCARD:
        ret = qed_discard(r->img, len, off, &err);
        break;
    case OP_FLUSH:
        ret = qed_flush(r->img, &err);
        break;
    case OP_RESIZE:
        ret = qed_resize(r->img, r->su->grown, &err);
        g_assert_cmpuint(qed_get_size(r->img), ==, r->size);
        break;
    case OP_READ:
        TU_OK(qed_pread(r->img, buf, len, off, &tu_err));
        check_sectors(r, what, buf, st->window, st->first, st->count, true);
        return;
    }
    expect_failed_handle(r, what, calls, ret, err);
}

static void run_step(Run *r, size_t i, uint8_t *buf)
{
    const Step *st = &steps[i];
    unsigned value = r->start->value_base + (unsigned)i;
    uint64_t off = window_offset(r->su, st->window) + (uint64_t)st->first * SECTOR;
    uint64_t len = (uint64_t)st->count * SECTOR;
    if (st->op != OP_FLUSH && st->op != OP_RESIZE && !in_size(r, st->window)) {
        return; /* the resize failed: its window is not there */
    }
    g_autofree char *what = g_strdup_printf("step %zu", i);
    if (r->failed) {
        run_step_failed(r, st, what, buf);
        return;
    }
    uint64_t before = blk_fault_injected(r->dev);
    GError *err = NULL;
    int ret = 0;
    r->recoverable = st->op == OP_WRITE || st->op == OP_WRITE_FUA || st->op == OP_ZERO ||
                     st->op == OP_DISCARD;
    switch (st->op) {
    case OP_WRITE:
    case OP_WRITE_FUA:
        memset(buf, (int)value, len);
        ret = qed_pwrite(r->img, buf, len, off, st->op == OP_WRITE_FUA ? QED_WRITE_FUA : 0, &err);
        model_write(r->m, st->window, st->first, st->count, value,
                    expect_result(r, what, before, ret, err));
        break;
    case OP_ZERO:
        ret = qed_pwrite_zeroes(r->img, len, off, 0, &err);
        model_write(r->m, st->window, st->first, st->count, V_ZERO,
                    expect_result(r, what, before, ret, err));
        break;
    case OP_DISCARD:
        ret = qed_discard(r->img, len, off, &err);
        model_write(r->m, st->window, st->first, st->count, V_ZERO,
                    expect_result(r, what, before, ret, err));
        break;
    case OP_FLUSH:
        ret = qed_flush(r->img, &err);
        if (expect_result(r, what, before, ret, err)) {
            model_flushed(r->m);
        }
        break;
    case OP_RESIZE:
        ret = qed_resize(r->img, r->su->grown, &err);
        if (expect_result(r, what, before, ret, err)) {
            g_assert_cmpuint(qed_get_size(r->img), ==, r->su->grown);
        }
        r->size = qed_get_size(r->img);
        break;
    case OP_READ:
        ret = qed_pread(r->img, buf, len, off, &err);
        if (expect_result(r, what, before, ret, err)) {
            check_sectors(r, what, buf, st->window, st->first, st->count, true);
        }
        break;
    }
    r->recoverable = false;
}

/* The device's bytes after the run: they open read-only and check clean,
 * open writable (repairing) and check clean, and every window sector holds
 * a value the model allows (after a close that succeeded, the last one
 * written). Nothing outside the windows is allocated. */
static void verify_bytes(Run *r, bool handle_flushed)
{
    const Setup *su = r->su;
    GBytes *bytes = blk_mem_contents(r->mem);
    GError *err = NULL;
    QedCheckResult res;

    BlkDev *ro_dev = blk_mem_new(NAME, g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
    ro_dev->fixed_length = su->w->fixed_length;
    QedImage *ro = image_open_blk(ro_dev, NAME, "qed", QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING,
                                  &err);
    if (!ro) {
        g_error("%s: read-only reopen failed: %s", r->ctx, err->message);
    }
    TU_OK(qed_check(ro, 0, &res, &tu_err));
    if (res.corruptions || res.check_errors) {
        g_error("%s: %" G_GUINT64_FORMAT " corruptions, %" G_GUINT64_FORMAT
                " check errors before repair",
                r->ctx, res.corruptions, res.check_errors);
    }
    TU_OK(qed_close(ro, &tu_err));

    BlkDev *rw_dev = blk_mem_new(NAME, g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
    rw_dev->fixed_length = su->w->fixed_length;
    g_bytes_unref(bytes);
    QedImage *rw = image_open_blk(rw_dev, NAME, "qed", QED_OPEN_NO_BACKING, &err);
    if (!rw) {
        g_error("%s: reopen failed: %s", r->ctx, err->message);
    }
    if (su->backing) {
        TU_OK(image_attach_backing(rw, su->backing, "raw", &tu_err));
    }
    TU_OK(qed_check(rw, 0, &res, &tu_err));
    if (res.corruptions || res.check_errors) {
        g_error("%s: %" G_GUINT64_FORMAT " corruptions after repair", r->ctx, res.corruptions);
    }
    uint64_t size = qed_get_size(rw);
    g_assert_true(size == su->size || size == su->grown);
    if (r->size == su->grown && handle_flushed) {
        g_assert_cmpuint(size, ==, su->grown);
    }
    uint8_t *buf = g_malloc(WINDOW * SECTOR);
    for (uint32_t win = 0; win < NWINDOWS; win++) {
        if (window_offset(su, win) + WINDOW * SECTOR > size) {
            continue;
        }
        TU_OK(qed_pread(rw, buf, WINDOW * SECTOR, window_offset(su, win), &tu_err));
        check_sectors(r, "after reopen", buf, win, 0, WINDOW, false);
    }
    for (uint64_t pos = 0; pos < size;) {
        QedExtent ext;
        TU_OK(qed_block_status(rw, size - pos, pos, &ext, &tu_err));
        if (ext.type != QED_EXTENT_UNALLOCATED) {
            uint64_t win = pos / su->coverage;
            if (win >= NWINDOWS ||
                pos + ext.length > window_offset(su, (uint32_t)win) + WINDOW * SECTOR) {
                g_error("%s: allocated outside the windows at %" G_GUINT64_FORMAT, r->ctx, pos);
            }
        }
        pos += ext.length;
    }
    g_free(buf);
    TU_OK(qed_close(rw, &tu_err));
}

/* Reads every window through the handle: what it reads must be what was
 * written last. */
static void read_windows(Run *r, const char *what, uint8_t *buf)
{
    for (uint32_t win = 0; win < NWINDOWS; win++) {
        if (!in_size(r, win)) {
            continue;
        }
        uint64_t before = blk_fault_injected(r->dev);
        GError *err = NULL;
        int ret = qed_pread(r->img, buf, WINDOW * SECTOR, window_offset(r->su, win), &err);
        if (expect_result(r, what, before, ret, err)) {
            check_sectors(r, what, buf, win, 0, WINDOW, true);
        }
    }
}

/* Runs open, the steps, a read of every window and close with r->fault
 * armed from the start. */
static void run_once(Run *r)
{
    const Setup *su = r->su;
    Model *m = g_memdup2(r->start->model, sizeof(Model));
    r->m = m;
    GBytes *start = r->start->bytes;
    r->mem = blk_mem_new(NAME, g_bytes_get_data(start, NULL), g_bytes_get_size(start));
    r->mem->fixed_length = su->w->fixed_length;
    r->dev = blk_fault_new(r->mem);
    blk_fault_arm(r->dev, &r->fault);

    GError *err = NULL;
    r->img = image_open_blk(r->dev, NAME, "qed", QED_OPEN_NO_BACKING, &err);
    bool handle_flushed = false;
    r->size = 0;
    if (!r->img) {
        /* The open met the fault (it had better); dev is closed already. */
        if (r->fault.nth == 0 || !err || err->code != r->fault.error ||
            !strstr(err->message, NAME)) {
            g_error("%s: open failed: %s", r->ctx, err ? err->message : "(no message)");
        }
        g_error_free(err);
        r->dev = NULL;
    } else {
        if (blk_fault_injected(r->dev) != 0) {
            g_error("%s: the open met the fault but succeeded", r->ctx);
        }
        /* No idle cleaner in the middle of a run: its I/O would meet the
         * fault outside any request. */
        r->img->opts.clean_after_ms = 3600 * 1000;
        if (su->backing) {
            TU_OK(image_attach_backing(r->img, su->backing, "raw", &tu_err));
        }
        r->size = qed_get_size(r->img);
        uint8_t *buf = g_malloc(WINDOW * SECTOR);
        read_windows(r, "first read", buf);
        for (size_t i = 0; i < G_N_ELEMENTS(steps); i++) {
            run_step(r, i, buf);
        }
        read_windows(r, "last read", buf);
        g_free(buf);
        if (r->capture) {
            /* The metadata of completed writes is durable after a flush
             * (qed-commit.c): flush, but do not close (NEED_CHECK stays). */
            TU_OK(qed_flush(r->img, &tu_err));
            r->capture->bytes = blk_mem_contents(r->mem);
            r->capture->model = g_memdup2(m, sizeof(Model));
        }
        bool failed = r->failed;
        int ret = qed_close(r->img, &err);
        r->img = NULL;
        r->dev = NULL; /* closed with the image */
        /* A failed handle's close fails with EIO. Any other close either met
         * the fault (and failed) or succeeded. */
        if (failed) {
            if (ret != -EIO || !err || !strstr(err->message, NAME)) {
                g_error("%s: close of a failed handle returned %d (%s)", r->ctx, ret,
                        err ? err->message : "no message");
            }
            g_error_free(err);
        } else if (ret == 0) {
            g_assert_null(err);
            model_flushed(m);
            handle_flushed = true;
        } else {
            /* A flush that failed inside the close (a compaction's) fails
             * the handle: what the close does next fails with EIO. */
            int want = r->fault.kind == BLK_FAULT_FLUSH && ret == -EIO ? EIO : r->fault.error;
            if (ret != -want || !err || err->code != want || !strstr(err->message, NAME)) {
                g_error("%s: close: bad error %d: %s", r->ctx, ret, err ? err->message : "(none)");
            }
            g_error_free(err);
        }
    }
    /* The device under the injector saw every request that went through. */
    BlkStats st;
    blk_get_stats(r->mem, &st);
    r->calls[BLK_FAULT_READ] = st.reads;
    r->calls[BLK_FAULT_WRITE] = st.writes + st.truncates;
    r->calls[BLK_FAULT_FLUSH] = st.flushes;
    verify_bytes(r, handle_flushed);
    blk_close(r->mem);
    g_free(m);
}

static const char *kind_name[] = { "read", "write", "flush" };

/* Sweeps every fault over the run from start; returns the runs made. */
static uint64_t sweep(const Setup *su, const Start *start, const char *name)
{
    /* The clean run: counts the requests and must end exactly as modelled. */
    Run clean = { .su = su, .start = start, .ctx = g_strdup_printf("%s clean", name) };
    run_once(&clean);
    g_free(clean.ctx);

    /* Error, persistent, lands (writes only: the last two). */
    static const BlkFault styles[] = {
        { .error = EIO },
        { .error = EIO, .persistent = true },
        { .error = ENOSPC },
        { .error = ENOSPC, .persistent = true },
        { .error = EIO, .lands = true },
        { .error = EIO, .persistent = true, .lands = true },
    };
    /* Under a sanitizer every request still meets a fault, in one of the
     * styles in turn (QED_FAULT_SAMPLE=0 or 1 decides). */
    bool sample = tu_env_int("QED_FAULT_SAMPLE", tu_sanitized());
    uint64_t runs = 0;
    for (int k = 0; k < BLK_FAULT_KIND_COUNT; k++) {
        size_t nstyles = k == BLK_FAULT_WRITE ? G_N_ELEMENTS(styles) : 4;
        /* One past the last request: nothing fails, all must be well. */
        uint64_t total = clean.calls[k] + 1;
        for (uint64_t n = 1; n <= total; n++) {
            for (size_t v = 0; v < nstyles; v++) {
                if (sample && v != n % nstyles) {
                    continue;
                }
                Run r = { .su = su, .start = start, .fault = styles[v] };
                r.fault.kind = (BlkFaultKind)k;
                r.fault.nth = n;
                r.ctx = g_strdup_printf("%s: %s %s #%" G_GUINT64_FORMAT "%s%s", name, kind_name[k],
                                        g_strerror(r.fault.error), n,
                                        r.fault.persistent ? " persistent" : "",
                                        r.fault.lands ? " (landed)" : "");
                run_once(&r);
                g_free(r.ctx);
                runs++;
            }
        }
    }
    g_test_message("%s: %" G_GUINT64_FORMAT " reads, %" G_GUINT64_FORMAT
                   " writes, %" G_GUINT64_FORMAT " flushes; %" G_GUINT64_FORMAT " faulty runs",
                   name, clean.calls[0], clean.calls[1], clean.calls[2], runs);
    return runs;
}

/* The dirty start: the clean run's state before close, padded to whole
 * clusters, with a cluster nothing references after it. */
static void make_dirty(Setup *su)
{
    Start before = { 0 };
    Run r = { .su = su, .start = &su->fresh, .capture = &before };
    r.ctx = g_strdup_printf("%s: capture", su->w->name);
    run_once(&r);
    g_free(r.ctx);
    GByteArray *a = g_byte_array_new();
    g_byte_array_append(a, g_bytes_get_data(before.bytes, NULL),
                        (guint)g_bytes_get_size(before.bytes));
    guint cs = su->w->cluster_size;
    guint end = (a->len + cs - 1) / cs * cs + cs;
    guint old = a->len;
    g_byte_array_set_size(a, end);
    memset(a->data + old, 0, end - old);
    memset(a->data + end - cs, 0x5a, cs);
    g_bytes_unref(before.bytes);
    su->dirty.bytes = g_byte_array_free_to_bytes(a);
    su->dirty.model = before.model;
    su->dirty.value_base = V_FIRST_WRITE + G_N_ELEMENTS(steps);
    model_flushed(su->dirty.model);
}

static void test_workload(gconstpointer data)
{
    const Workload *w = data;
    Setup su;
    setup_init(&su, w);
    uint64_t runs = sweep(&su, &su.fresh, w->name);
    make_dirty(&su);
    g_autofree char *name = g_strdup_printf("%s, repaired at open", w->name);
    runs += sweep(&su, &su.dirty, name);
    g_print("# %s: %" G_GUINT64_FORMAT " runs with a fault\n", w->name, runs);
    setup_destroy(&su);
}

/* ------------------------------------------------ the failed handle, alone */

/* An image of 4 MiB (64 KiB clusters) on a fault injector over memory, with
 * no idle cleaner. *mem gets the device under the injector. */
static QedImage *open_faulty(BlkDev **mem, GBytes *bytes, BlkDev **dev)
{
    *mem = blk_mem_new(NAME, g_bytes_get_data(bytes, NULL), g_bytes_get_size(bytes));
    *dev = blk_fault_new(*mem);
    GError *err = NULL;
    QedImage *img = image_open_blk(*dev, NAME, "qed", QED_OPEN_NO_BACKING, &err);
    g_assert_no_error(err);
    img->opts.clean_after_ms = 3600 * 1000;
    return img;
}

static GBytes *new_image_bytes(void)
{
    BlkDev *mem = blk_mem_new(NAME, NULL, 0);
    QedCreateOptions co = { .size = 4u << 20, .cluster_size = 65536, .table_size = 2 };
    TU_OK(qed_driver.create(mem, &co, &tu_err));
    GBytes *bytes = blk_mem_contents(mem);
    blk_close(mem);
    return bytes;
}

/* A request on a failed handle fails with EIO, naming the file. Clears *errp. */
static void assert_eio(int ret, GError **errp, const char *what)
{
    GError *err = *errp;
    if (ret != -EIO || !err || err->code != EIO || !strstr(err->message, NAME)) {
        g_error("%s on a failed handle: %d (%s)", what, ret, err ? err->message : "no message");
    }
    g_clear_error(errp);
}

/* Runs call, a request written with &err, and asserts that it fails with EIO. */
#define ASSERT_EIO(call, what) \
    do { \
        int eio_ret = (call); \
        assert_eio(eio_ret, &err, what); \
    } while (0)

static bool bytes_need_check(GBytes *bytes)
{
    return ((const uint8_t *)g_bytes_get_data(bytes, NULL))[16] & QED_F_NEED_CHECK;
}

/* Once a flush has failed, no later flush succeeds, although the fault was
 * transient and the device would take the next one: the kernel may have
 * dropped what it could not write. Writes of every kind fail without
 * reaching the device, reads work, the close fails and leaves NEED_CHECK
 * set, and a new open sees what reached the device and repairs it. */
static void test_failed_flush_is_sticky(void)
{
    GBytes *fresh = new_image_bytes();
    BlkDev *mem, *dev;
    QedImage *img = open_faulty(&mem, fresh, &dev);
    tu_write_byte(img, 1, 65536, 0);
    TU_OK(qed_flush(img, &tu_err));
    tu_write_byte(img, 2, 4096, 1u << 20); /* allocating, not flushed */

    blk_fault_arm(dev, &(BlkFault){ .kind = BLK_FAULT_FLUSH, .nth = 1, .error = EIO });
    GError *err = NULL;
    g_assert_cmpint(qed_flush(img, &err), ==, -EIO);
    g_clear_error(&err);
    g_assert_cmpuint(blk_fault_injected(dev), ==, 1);

    uint64_t flushes = blk_fault_calls(dev, BLK_FAULT_FLUSH);
    uint64_t writes = blk_fault_calls(dev, BLK_FAULT_WRITE);
    ASSERT_EIO(qed_flush(img, &err), "a second flush");
    uint8_t buf[4096] = { 3 };
    ASSERT_EIO(qed_pwrite(img, buf, sizeof(buf), 0, 0, &err), "a write in place");
    ASSERT_EIO(qed_pwrite(img, buf, sizeof(buf), 2u << 20, 0, &err), "an allocating write");
    ASSERT_EIO(qed_pwrite(img, buf, sizeof(buf), 0, QED_WRITE_FUA, &err), "a FUA write");
    ASSERT_EIO(qed_pwrite_zeroes(img, 65536, 0, 0, &err), "a zero write");
    ASSERT_EIO(qed_pwrite_zeroes(img, 65536, 3u << 20, 0, &err),
               "a zero write over unallocated clusters");
    ASSERT_EIO(qed_discard(img, 65536, 0, &err), "a discard");
    ASSERT_EIO(qed_resize(img, 8u << 20, &err), "a resize");
    g_assert_cmpuint(qed_get_size(img), ==, 4u << 20);
    /* Nothing reached the device, and the flush there would have worked. */
    g_assert_cmpuint(blk_fault_calls(dev, BLK_FAULT_FLUSH), ==, flushes);
    g_assert_cmpuint(blk_fault_calls(dev, BLK_FAULT_WRITE), ==, writes);
    g_assert_cmpuint(blk_fault_injected(dev), ==, 1);

    tu_assert_byte(img, 1, 65536, 0);
    tu_assert_byte(img, 2, 4096, 1u << 20);
    tu_assert_byte(img, 0, 65536, 2u << 20);
    ASSERT_EIO(qed_close(img, &err), "the close");

    /* What reached the device: both writes, and NEED_CHECK still set. */
    GBytes *after = blk_mem_contents(mem);
    blk_close(mem);
    g_assert_true(bytes_need_check(after));
    img = open_faulty(&mem, after, &dev); /* repairs */
    tu_assert_byte(img, 1, 65536, 0);
    tu_assert_byte(img, 2, 4096, 1u << 20);
    tu_assert_byte(img, 0, 65536, 2u << 20);
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.corruptions + res.leaks + res.check_errors, ==, 0);
    tu_write_byte(img, 4, 4096, 2u << 20); /* a new handle writes again */
    TU_OK(qed_close(img, &tu_err));
    GBytes *closed = blk_mem_contents(mem);
    blk_close(mem);
    g_assert_false(bytes_need_check(closed));
    g_bytes_unref(closed);
    g_bytes_unref(after);
    g_bytes_unref(fresh);
}

/* The flushes the driver makes for itself count too: a failed NEED_CHECK
 * flush inside an allocating write fails the handle, and close leaves the
 * mark on the device. */
static void test_failed_internal_flush(void)
{
    GBytes *fresh = new_image_bytes();
    BlkDev *mem, *dev;
    QedImage *img = open_faulty(&mem, fresh, &dev);
    blk_fault_arm(dev, &(BlkFault){ .kind = BLK_FAULT_FLUSH, .nth = 1, .error = ENOSPC });
    uint8_t buf[4096] = { 5 };
    GError *err = NULL;
    g_assert_cmpint(qed_pwrite(img, buf, sizeof(buf), 0, 0, &err), ==, -ENOSPC);
    g_clear_error(&err);
    ASSERT_EIO(qed_flush(img, &err), "a flush after a failed NEED_CHECK flush");
    tu_assert_byte(img, 0, 4096, 0);
    ASSERT_EIO(qed_close(img, &err), "the close");
    GBytes *after = blk_mem_contents(mem);
    blk_close(mem);
    g_assert_true(bytes_need_check(after));
    g_bytes_unref(after);
    g_bytes_unref(fresh);
}

/* A container of fixed length (an nbdkit plugin's disk): a new image and
 * room bytes of fill past it. *image gets the image's length. */
static BlkDev *new_container(gsize room, uint8_t fill, gsize *image)
{
    GBytes *fresh = new_image_bytes();
    *image = g_bytes_get_size(fresh);
    uint8_t *bytes = g_malloc(*image + room);
    memcpy(bytes, g_bytes_get_data(fresh, NULL), *image);
    memset(bytes + *image, fill, room);
    BlkDev *mem = blk_mem_new(NAME, bytes, *image + room);
    mem->fixed_length = true;
    g_free(bytes);
    g_bytes_unref(fresh);
    return mem;
}

/* Closes the container mem (whose image is closed) and opens what it held,
 * read-only, in a new one: it kept its length, and the image checks clean,
 * without leaks. *res gets the check. */
static QedImage *reopen_container_clean(BlkDev *mem, QedCheckResult *res)
{
    int64_t length = blk_get_length(mem);
    GBytes *after = blk_mem_contents(mem);
    blk_close(mem);
    g_assert_cmpint(g_bytes_get_size(after), ==, length);
    mem = blk_mem_new(NAME, g_bytes_get_data(after, NULL), g_bytes_get_size(after));
    mem->fixed_length = true;
    g_bytes_unref(after);
    GError *err = NULL;
    QedImage *img = image_open_blk(mem, NAME, "qed", QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING,
                                   &err);
    g_assert_no_error(err);
    TU_OK(qed_check(img, 0, res, &tu_err));
    g_assert_cmpuint(res->corruptions + res->leaks + res->check_errors, ==, 0);
    return img;
}

/* A container of fixed length (an nbdkit plugin's disk) cannot grow: writes
 * succeed up to its last cluster, and the one that does not fit fails with
 * ENOSPC before it writes anything; the handle is not failed, and the image
 * stays consistent. The container has room for one L2 table and three data
 * clusters past the image, and holds old bytes there. */
static void test_fixed_length_full(void)
{
    gsize image, room = 2 * 65536 + 3 * 65536;
    BlkDev *mem = new_container(room, 0xa5, &image);
    BlkDev *dev = blk_fault_new(mem);
    GError *err = NULL;
    QedImage *img = image_open_blk(dev, NAME, "qed", QED_OPEN_NO_BACKING, &err);
    g_assert_no_error(err);
    img->opts.clean_after_ms = 3600 * 1000;
    for (uint8_t i = 0; i < 3; i++) {
        tu_write_byte(img, (uint8_t)(i + 1), 65536, (uint64_t)i * 65536);
    }
    uint64_t writes = blk_fault_calls(dev, BLK_FAULT_WRITE);
    uint8_t buf[512] = { 9 };
    int ret = qed_pwrite(img, buf, sizeof(buf), 3 * 65536, 0, &err);
    if (ret != -ENOSPC || !err || !strstr(err->message, NAME)) {
        g_error("a write into a full container: %d (%s)", ret, err ? err->message : "");
    }
    g_clear_error(&err);
    g_assert_cmpuint(blk_fault_calls(dev, BLK_FAULT_WRITE), ==, writes);
    for (uint8_t i = 0; i < 3; i++) {
        tu_assert_byte(img, (uint8_t)(i + 1), 65536, (uint64_t)i * 65536);
    }
    tu_assert_byte(img, 0, 65536, 3 * 65536);
    tu_write_byte(img, 7, 4096, 65536); /* in place: there is room for that */
    TU_OK(qed_flush(img, &tu_err));
    TU_OK(qed_close(img, &tu_err));

    QedCheckResult res;
    img = reopen_container_clean(mem, &res);
    g_assert_cmpuint(res.image_end_offset, ==, image + room);
    tu_assert_byte(img, 7, 4096, 65536);
    TU_OK(qed_close(img, &tu_err));
}

/* Space that a discard gave up is used again in the same session: in a full
 * container, a write that failed with ENOSPC succeeds after a discard (the
 * write reclaims the freed cluster), and the image checks clean. */
static void test_full_container_reuses_discarded(void)
{
    gsize image;
    BlkDev *mem = new_container(2 * 65536 + 3 * 65536, 0xa5, &image);
    GError *err = NULL;
    /* (The injector, armed with nothing, keeps mem open past the close.) */
    QedImage *img = image_open_blk(blk_fault_new(mem), NAME, "qed", QED_OPEN_NO_BACKING, &err);
    g_assert_no_error(err);
    for (uint8_t i = 0; i < 3; i++) {
        tu_write_byte(img, (uint8_t)(i + 1), 65536, (uint64_t)i * 65536);
    }
    uint8_t buf[65536];
    memset(buf, 4, sizeof(buf));
    g_assert_cmpint(qed_pwrite(img, buf, sizeof(buf), 3 * 65536, 0, &err), ==, -ENOSPC);
    g_clear_error(&err);
    TU_OK(qed_discard(img, 65536, 65536, &tu_err));
    TU_OK(qed_pwrite(img, buf, sizeof(buf), 3 * 65536, 0, &tu_err));
    uint8_t want[] = { 1, 0, 3, 4 };
    for (unsigned i = 0; i < 4; i++) {
        tu_assert_byte(img, want[i], 65536, (uint64_t)i * 65536);
    }
    TU_OK(qed_close(img, &tu_err));

    QedCheckResult res;
    img = reopen_container_clean(mem, &res);
    for (unsigned i = 0; i < 4; i++) {
        tu_assert_byte(img, want[i], 65536, (uint64_t)i * 65536);
    }
    TU_OK(qed_close(img, &tu_err));
}

typedef struct RefillArg {
    QedImage *img;
    uint64_t off;
    int ret;
    gint *gate; /* the writers start together once it is 1 */
} RefillArg;

static gpointer refill_main(gpointer opaque)
{
    RefillArg *a = opaque;
    while (!g_atomic_int_get(a->gate)) {
        g_thread_yield();
    }
    uint8_t buf[65536];
    memset(buf, 0x60, sizeof(buf));
    a->ret = qed_pwrite(a->img, buf, sizeof(buf), a->off, 0, NULL);
    return NULL;
}

/* Many writers meet the full container at once after a discard freed room
 * for all of them: one reclaims, and every one of them then succeeds (a
 * writer that found the reclaim done by another tries again too). */
static void test_full_container_parallel_refill(void)
{
    enum { N = 8 };
    gsize image;
    BlkDev *mem = new_container(2 * 65536 + 2 * N * 65536, 0, &image);
    GError *err = NULL;
    QedImage *img = image_open_blk(blk_fault_new(mem), NAME, "qed", QED_OPEN_NO_BACKING, &err);
    g_assert_no_error(err);
    for (unsigned i = 0; i < 2 * N; i++) {
        tu_write_byte(img, (uint8_t)(i + 1), 65536, (uint64_t)i * 65536);
    }
    uint8_t one[512] = { 1 };
    g_assert_cmpint(qed_pwrite(img, one, sizeof(one), 2 * N * 65536, 0, NULL), ==, -ENOSPC);
    TU_OK(qed_discard(img, N * 65536, 0, &tu_err));
    RefillArg args[N];
    GThread *threads[N];
    gint gate = 0;
    for (unsigned i = 0; i < N; i++) {
        args[i] = (RefillArg){ img, (uint64_t)(2 * N + i) * 65536, 0, &gate };
        threads[i] = g_thread_new("refill", refill_main, &args[i]);
    }
    g_atomic_int_set(&gate, 1);
    for (unsigned i = 0; i < N; i++) {
        g_thread_join(threads[i]);
        g_assert_cmpint(args[i].ret, ==, 0);
    }
    for (unsigned i = 0; i < N; i++) {
        tu_assert_byte(img, 0, 65536, (uint64_t)i * 65536);
        tu_assert_byte(img, (uint8_t)(N + i + 1), 65536, (uint64_t)(N + i) * 65536);
        tu_assert_byte(img, 0x60, 65536, (uint64_t)(2 * N + i) * 65536);
    }
    TU_OK(qed_close(img, &tu_err));
    QedCheckResult res;
    TU_OK(qed_close(reopen_container_clean(mem, &res), &tu_err));
}

/* A data write that fails (ENOSPC on a full file system) gives its clusters
 * back: the failed requests leave no leak and do not make the file grow
 * again and again, and the close leaves the image as long as before,
 * without leaks. */
static void test_failed_data_write_leaks_nothing(void)
{
    GBytes *fresh = new_image_bytes();
    BlkDev *mem, *dev;
    QedImage *img = open_faulty(&mem, fresh, &dev);
    tu_write_byte(img, 1, 65536, 0);
    TU_OK(qed_flush(img, &tu_err));
    QedCheckResult res;
    TU_OK(qed_check(img, 0, &res, &tu_err));
    uint64_t end = res.image_end_offset;
    int64_t length = blk_get_length(mem);

    /* 512 KiB fit in the room the file has grown by, so the data write is
     * the first write of each request. */
    uint8_t *buf = g_malloc(512u << 10);
    memset(buf, 6, 512u << 10);
    for (int i = 0; i < 5; i++) {
        blk_fault_arm(dev, &(BlkFault){ .kind = BLK_FAULT_WRITE, .nth = 1, .error = ENOSPC });
        GError *err = NULL;
        g_assert_cmpint(qed_pwrite(img, buf, 512u << 10, 1u << 20, 0, &err), ==, -ENOSPC);
        g_clear_error(&err);
        g_assert_cmpint(blk_get_length(mem), ==, length); /* no new growth */
    }
    g_free(buf);
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.leaks + res.corruptions, ==, 0);
    tu_assert_byte(img, 1, 65536, 0);
    tu_assert_byte(img, 0, 65536, 1u << 20);
    tu_write_byte(img, 2, 4096, 1u << 20); /* the clusters serve the next write */
    TU_OK(qed_close(img, &tu_err));

    GBytes *after = blk_mem_contents(mem);
    blk_close(mem);
    g_assert_cmpuint(g_bytes_get_size(after), ==, end + 65536);
    img = open_faulty(&mem, after, &dev);
    TU_OK(qed_check(img, 0, &res, &tu_err));
    g_assert_cmpuint(res.leaks + res.corruptions + res.check_errors, ==, 0);
    tu_assert_byte(img, 2, 4096, 1u << 20);
    TU_OK(qed_close(img, &tu_err));
    blk_close(mem);
    g_bytes_unref(after);
    g_bytes_unref(fresh);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/faults/fixed-length-full", test_fixed_length_full);
    g_test_add_func("/faults/full-container-reuses-discarded",
                    test_full_container_reuses_discarded);
    g_test_add_func("/faults/full-container-parallel-refill", test_full_container_parallel_refill);
    g_test_add_func("/faults/failed-flush-is-sticky", test_failed_flush_is_sticky);
    g_test_add_func("/faults/failed-internal-flush", test_failed_internal_flush);
    g_test_add_func("/faults/failed-data-write-leaks-nothing",
                    test_failed_data_write_leaks_nothing);
    for (size_t i = 0; i < G_N_ELEMENTS(workloads); i++) {
        g_autofree char *name = g_strdup_printf("/faults/%s", workloads[i].name);
        g_test_add_data_func(name, &workloads[i], test_workload);
    }
    return g_test_run();
}
