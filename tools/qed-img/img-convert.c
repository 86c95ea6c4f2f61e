/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img convert: copies one image, or several concatenated, into a new (or,
 * with -n, an existing) QED or raw image, with the options, checks, messages
 * and result of `qemu-img convert`.
 *
 * Design notes: the copy walks the sources in runs, as qemu-img does: the
 * block status of the flattened backing chain (of the top image only with a
 * target backing file) says data, zeros or "falls through"; data is read in
 * requests of at most 2 MiB and searched for zero runs of at least -S bytes,
 * which are not written (a fresh target without a backing file reads zeros)
 * or written as zeros (zero clusters, holes in a raw file). -m threads each
 * take the next request, read it while the others write, and by default
 * write a QED target in the order of the disk, so that it gets qemu-img's
 * layout (each request's clusters, then a new L2 table after the first
 * request that needs it); a raw target, the same in any order, is written
 * as the requests come with O_DIRECT, else in order too (see open_target).
 * The target is opened with qemu-img's default cache, "unsafe": no flushes
 * (QED_OPEN_NO_FLUSH), as a failed copy is thrown away.
 */
#include "blk/blk.h"
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qed.h>

#include "units.h"

#define SECTOR 512u
#define CONVERT_BUF_BYTES (2u << 20) /* the largest request, as qemu-img's */
#define CONVERT_MAX_SPARSE (16u << 20)
#define CONVERT_MAX_WORKERS 16
/* The longest run one block status query asks about, as qemu's request limit */
#define STATUS_MAX_BYTES ((uint64_t)(INT32_MAX / SECTOR) * SECTOR)

typedef enum RunStatus {
    RUN_DATA,    /* read it, and write what is not zeros */
    RUN_ZERO,    /* reads as zeros */
    RUN_BACKING, /* left unallocated: the target's backing file shows through */
} RunStatus;

typedef struct Source {
    const char *name;
    QedImage *img;
    uint64_t size;
    uint64_t alignment; /* bytes: its cluster size, or a sector for raw */
} Source;

typedef struct Convert {
    Source *src;
    size_t nsrc;
    uint64_t total;
    QedImage *target;
    bool target_has_backing;
    int64_t target_backing_size; /* -1 when unknown or not needed */
    bool has_zero_init;          /* the target reads as zeros where nothing is written */
    uint64_t min_sparse;         /* -S in bytes; 0 writes every byte */
    uint64_t alignment;          /* bytes that zero detection aligns to (a power of 2) */
    bool in_order;               /* no -W */
    bool salvage;
    bool quiet;
    uint64_t rate_limit; /* bytes per second, 0 for none */
    unsigned workers;

    /* lock guards everything below. A worker that waits for its turn to
     * write waits on its own turn[i] with waiting_for[i] set to its
     * position; the writer that moves write_pos there wakes it alone (and
     * an error wakes all). */
    pthread_mutex_t lock;
    pthread_cond_t turn[CONVERT_MAX_WORKERS];
    uint64_t waiting_for[CONVERT_MAX_WORKERS]; /* UINT64_MAX: not waiting */
    uint64_t next;                             /* the first byte no worker has taken yet */
    uint64_t status_end;                       /* the end of the run whose status is status */
    RunStatus status;
    uint64_t write_pos;               /* in order: the end of the last request written */
    uint64_t alloc_total, alloc_done; /* bytes read or written, for -p */
    uint64_t written;                 /* bytes written, for -r */
    int64_t start_us;
    int ret;     /* the first error, or 0 */
    char *error; /* its message */
} Convert;

/* ----------------------------------------------------------- block status */

/* Which source holds byte pos of the concatenation, and where in it. */
static const Source *find_source(const Convert *c, uint64_t pos, uint64_t *offset)
{
    size_t i = 0;
    while (pos >= c->src[i].size) {
        pos -= c->src[i].size;
        i++;
    }
    *offset = pos;
    return &c->src[i];
}

/* The status of the run at pos (at most len bytes) into *status, its
 * length into *run: of the whole chain, or, when the target has a backing
 * file, of the top image, whose unallocated runs show the target's backing
 * file (which should hold what the source's does). */
static int source_status(const Convert *c, uint64_t pos, uint64_t len, RunStatus *status,
                         uint64_t *run, GError **errp)
{
    uint64_t off;
    const Source *src = find_source(c, pos, &off);
    bool post_backing_zero = false;

    len = MIN(len, src->size - off);
    if (c->target_backing_size >= 0) {
        /* past the end of the target's backing file nothing shows through */
        if (pos >= (uint64_t)c->target_backing_size) {
            post_backing_zero = true;
        } else if (pos + len > (uint64_t)c->target_backing_size) {
            len = (uint64_t)c->target_backing_size - pos;
        }
    }
    QedImage *img = src->img;
    RunStatus st;
    for (;;) {
        QedExtent ext;
        int ret = qed_block_status(img, len, off, &ext, errp);
        if (ret < 0) {
            return ret;
        }
        len = MIN(len, ext.length);
        if (ext.type != QED_EXTENT_UNALLOCATED) {
            st = ext.type == QED_EXTENT_DATA ? RUN_DATA : RUN_ZERO;
            break;
        }
        QedImage *backing = qed_get_backing(img);
        uint64_t backing_size = backing ? qed_get_size(backing) : 0;
        if (off >= backing_size) {
            st = RUN_ZERO;
            break;
        }
        if (c->target_has_backing) {
            st = RUN_BACKING;
            break;
        }
        len = MIN(len, backing_size - off);
        img = backing;
    }
    if (st == RUN_ZERO && post_backing_zero) {
        st = RUN_BACKING;
    }
    /* Whole sectors (a raw file may end inside one, which reads as zeros),
     * and, as qemu-img, a run that does not end on a boundary of the
     * source's clusters stops at the last one, so that a request reads
     * whole clusters: this also decides where requests split. */
    len = MIN((len + SECTOR - 1) / SECTOR * SECTOR, src->size - off);
    uint64_t tail = (off + len) % src->alignment;
    if (len > tail) {
        len -= tail;
    }
    *status = st;
    *run = len;
    return 0;
}

/* The next request at c->next: its status and length. Called with lock held. */
static int next_request_locked(Convert *c, RunStatus *status, uint64_t *len, GError **errp)
{
    uint64_t pos = c->next;
    uint64_t n = MIN(c->total - pos, STATUS_MAX_BYTES);

    if (c->status_end <= pos) {
        uint64_t run;
        int ret = source_status(c, pos, n, &c->status, &run, errp);
        if (ret < 0) {
            return ret;
        }
        c->status_end = pos + run;
    }
    n = MIN(n, c->status_end - pos);
    if (c->status == RUN_DATA || (c->min_sparse == 0 && c->status == RUN_ZERO)) {
        n = MIN(n, CONVERT_BUF_BYTES);
    }
    *status = c->status;
    *len = n;
    return 0;
}

/* Whether a request of this status is read or written byte for byte: what
 * -p counts. */
static bool counts_for_progress(const Convert *c, RunStatus status)
{
    return status == RUN_DATA || (c->min_sparse == 0 && status == RUN_ZERO);
}

/* ---------------------------------------------------------- zero detection */

static bool sector_is_zero(const uint8_t *p)
{
    static const uint8_t zeros[16];
    return memcmp(p, zeros, sizeof(zeros)) == 0 && memcmp(p, p + 16, SECTOR - 16) == 0;
}

/* The run of sectors of one kind (zeros or not) at buf, len bytes at
 * virtual pos, into *n; true for data. A run's end is aligned to the
 * zero-detection alignment: data up, zeros down, and a zero run no longer
 * than the part before the alignment boundary counts as data. */
static bool sector_run(const Convert *c, const uint8_t *buf, uint64_t len, uint64_t pos,
                       uint64_t *n)
{
    uint64_t sectors = len / SECTOR;
    bool zero = sector_is_zero(buf);
    uint64_t i = 1;

    while (i < sectors && sector_is_zero(buf + i * SECTOR) == zero) {
        i++;
    }
    if (i < sectors) {
        uint64_t align = c->alignment / SECTOR;
        uint64_t tail = (pos / SECTOR + i) & (align - 1);
        if (tail) {
            if (zero && i <= tail) {
                zero = false;
            }
            i = zero ? i - tail : MIN(i + align - tail, sectors);
        }
    }
    *n = i * SECTOR;
    return !zero;
}

/* As qemu-img: false with the length of a leading zero run in *n; else
 * true with the length of data to write, which ends before the first zero
 * run of at least min_sparse bytes. */
static bool find_data(const Convert *c, const uint8_t *buf, uint64_t len, uint64_t pos,
                      uint64_t *n)
{
    uint64_t min = MIN(c->min_sparse, len);
    uint64_t run;

    if (!sector_run(c, buf, len, pos, &run)) {
        *n = run;
        return false;
    }
    uint64_t used = run, checked = run;
    while (checked < len) {
        bool data = sector_run(c, buf + checked, len - checked, pos + checked, &run);
        checked += run;
        if (data) {
            used = checked;
        } else if (run >= min) {
            break;
        }
    }
    *n = used;
    return true;
}

/* -------------------------------------------------------------- the copy */

/* Records the first error and its message (taken over), and wakes every
 * waiting worker so that they stop. Called with lock held. */
static void fail_locked(Convert *c, int ret, char *message)
{
    if (c->ret == 0) {
        c->ret = ret;
        c->error = message;
    } else {
        g_free(message);
    }
    for (unsigned i = 0; i < c->workers; i++) {
        pthread_cond_signal(&c->turn[i]);
    }
}

static int read_request(Convert *c, uint8_t *buf, uint64_t pos, uint64_t len, char **message)
{
    uint64_t off;
    const Source *src = find_source(c, pos, &off);
    GError *err = NULL;

    int ret = qed_pread(src->img, buf, len, off, &err);
    if (ret < 0 && c->salvage) {
        /* sector by sector, zeros where a sector cannot be read */
        g_clear_error(&err);
        ret = 0;
        for (uint64_t done = 0; done < len; done += SECTOR) {
            int r = qed_pread(src->img, buf + done, SECTOR, off + done, NULL);
            if (r < 0 && !c->quiet) {
                fflush(stdout);
                fprintf(stderr,
                        QED_IMG_NAME ": warning: error while reading offset %" PRIu64 ": %s\n",
                        off + done, g_strerror(-r));
            }
        }
    }
    if (ret < 0) {
        *message = g_strdup_printf("error while reading at byte %" PRIu64 ": %s", pos,
                                   g_strerror(-ret));
        g_error_free(err);
    }
    return ret;
}

/* -r: sleeps until the bytes written so far fit the rate. */
static void throttle(Convert *c, uint64_t bytes)
{
    pthread_mutex_lock(&c->lock);
    c->written += bytes;
    int64_t due = c->start_us + (int64_t)(c->written * G_USEC_PER_SEC / c->rate_limit);
    pthread_mutex_unlock(&c->lock);
    int64_t now = g_get_monotonic_time();
    if (due > now) {
        g_usleep((gulong)(due - now));
    }
}

static int write_request(Convert *c, const uint8_t *buf, uint64_t pos, uint64_t len,
                         RunStatus status, char **message)
{
    GError *err = NULL;
    uint64_t start = pos;
    int ret = 0;

    while (len > 0 && ret == 0) {
        uint64_t n = len;
        bool zeros = status == RUN_ZERO;
        if (status == RUN_DATA) {
            if (c->min_sparse == 0 || find_data(c, buf, len, pos, &n)) {
                ret = qed_pwrite(c->target, buf, n, pos, 0, &err);
                if (ret == 0 && c->rate_limit) {
                    throttle(c, n);
                }
            } else {
                zeros = true;
            }
        }
        if (zeros && !c->has_zero_init) {
            ret = qed_pwrite_zeroes(c->target, n, pos, 0, &err);
        }
        buf += n;
        pos += n;
        len -= n;
    }
    if (ret < 0) {
        *message = g_strdup_printf("error while writing at byte %" PRIu64 ": %s", start,
                                   err ? err->message : g_strerror(-ret));
        g_clear_error(&err);
    }
    return ret;
}

typedef struct Worker {
    Convert *c;
    unsigned index;
} Worker;

static void *convert_worker(void *opaque)
{
    Convert *c = ((Worker *)opaque)->c;
    unsigned me = ((Worker *)opaque)->index;
    /* aligned for O_DIRECT (-t none, -T none) */
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, CONVERT_BUF_BYTES) != 0) {
        pthread_mutex_lock(&c->lock);
        fail_locked(c, -ENOMEM, g_strdup("Not enough memory for the copy buffer"));
        pthread_mutex_unlock(&c->lock);
        return NULL;
    }
    for (;;) {
        RunStatus status;
        uint64_t pos, len;
        GError *err = NULL;
        char *message = NULL;

        pthread_mutex_lock(&c->lock);
        if (c->ret < 0 || c->next >= c->total) {
            pthread_mutex_unlock(&c->lock);
            break;
        }
        int ret = next_request_locked(c, &status, &len, &err);
        if (ret < 0) {
            fail_locked(c, ret,
                        g_strdup_printf("error while reading block status at offset "
                                        "%" PRIu64 ": %s",
                                        c->next, g_strerror(-ret)));
            g_error_free(err);
            pthread_mutex_unlock(&c->lock);
            break;
        }
        pos = c->next;
        c->next += len;
        if (counts_for_progress(c, status)) {
            c->alloc_done += len;
            img_progress_print(100.0 * (double)c->alloc_done / (double)c->alloc_total, 0);
        }
        pthread_mutex_unlock(&c->lock);

        if (status == RUN_DATA) {
            ret = read_request(c, buf, pos, len, &message);
        } else if (c->min_sparse == 0 && status == RUN_ZERO) {
            memset(buf, 0, len);
            status = RUN_DATA;
        }

        pthread_mutex_lock(&c->lock);
        c->waiting_for[me] = pos;
        while (c->in_order && c->write_pos != pos && c->ret == 0) {
            pthread_cond_wait(&c->turn[me], &c->lock);
        }
        c->waiting_for[me] = UINT64_MAX;
        bool go = c->ret == 0 && ret == 0;
        pthread_mutex_unlock(&c->lock);

        if (go) {
            ret = write_request(c, buf, pos, len, status, &message);
        }

        pthread_mutex_lock(&c->lock);
        if (ret < 0) {
            fail_locked(c, ret, message);
        }
        c->write_pos = pos + len;
        for (unsigned i = 0; i < c->workers; i++) {
            if (c->waiting_for[i] == c->write_pos) {
                pthread_cond_signal(&c->turn[i]);
                break;
            }
        }
        pthread_mutex_unlock(&c->lock);
    }
    free(buf);
    return NULL;
}

/* Counts what -p measures, then runs the workers. On failure the message
 * is in c->error. */
static int convert_copy(Convert *c)
{
    GError *err = NULL;

    for (uint64_t pos = 0; pos < c->total;) {
        RunStatus status;
        uint64_t len;
        c->next = pos;
        int ret = next_request_locked(c, &status, &len, &err);
        if (ret < 0) {
            c->error = g_strdup_printf("error while reading block status at offset %" PRIu64
                                       ": %s",
                                       pos, g_strerror(-ret));
            g_error_free(err);
            return ret;
        }
        if (counts_for_progress(c, status)) {
            c->alloc_total += len;
        }
        pos += len;
    }
    c->next = 0;
    c->status_end = 0;
    c->write_pos = 0;
    c->start_us = g_get_monotonic_time();

    pthread_t threads[CONVERT_MAX_WORKERS];
    Worker workers[CONVERT_MAX_WORKERS];
    unsigned started = 0;
    pthread_mutex_lock(&c->lock); /* (the workers see all of them started) */
    for (; started < c->workers; started++) {
        workers[started] = (Worker){ c, started };
        if (pthread_create(&threads[started], NULL, convert_worker, &workers[started]) != 0) {
            break;
        }
    }
    c->workers = started;
    pthread_mutex_unlock(&c->lock);
    if (started == 0) {
        c->error = g_strdup("Could not start a thread for the copy");
        return -EAGAIN;
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    return c->ret;
}

/* ------------------------------------------------------------ the command */

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_TARGET_IMAGE_OPTS,
    OPTION_SALVAGE,
    OPTION_TARGET_IS_ZERO,
    OPTION_BITMAPS,
};

typedef struct ConvertArgs {
    const char *fmt;
    const char *out_fmt;
    const char *out_baseimg; /* -B */
    const char *out_basefmt; /* -F */
    const char *cache;
    const char *src_cache;
    const char *snapshot; /* -l */
    bool compressed, copy_offload, skip_create, progress, force_share, bitmaps;
    bool explicit_min_sparse;
    bool image_opts, target_image_opts;
} ConvertArgs;

/* -o help, as create prints it. */
static int print_option_help(const char *filename, const char *fmt)
{
    const ImgOptDesc *desc = img_create_options(fmt);

    if (!desc) {
        img_error("Unknown file format '%s'", fmt);
        return 1;
    }
    if (!filename) {
        printf("Supported %s options:\n", fmt);
        img_opts_print_help(desc, false);
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    } else {
        printf("Supported options:\n");
        img_opts_print_help(desc, true);
    }
    return 0;
}

/* Opens the sources; false after an error message. */
static bool open_sources(Convert *c, const ConvertArgs *a, char **names)
{
    unsigned flags;
    if (!img_parse_cache(a->src_cache, &flags)) {
        img_error("Invalid source cache option: %s", a->src_cache);
        return false;
    }
    QedOpenOptions oopts = {
        .format = a->fmt,
        /* as qemu-img: no writer in, so that the target cannot be a source (or a
         * file of its backing chain), which creating it would destroy */
        .flags = flags | QED_OPEN_READ_ONLY |
                 (a->force_share ? QED_OPEN_FORCE_SHARE : QED_OPEN_NO_SHARE),
    };
    oopts.flags &= ~(unsigned)QED_OPEN_NO_FLUSH;
    for (size_t i = 0; i < c->nsrc; i++) {
        GError *err = NULL;
        c->src[i].name = names[i];
        c->src[i].img = tool_open(names[i], &oopts, &err);
        if (!c->src[i].img) {
            img_error("%s", err->message);
            g_error_free(err);
            return false;
        }
        c->src[i].size = qed_get_size(c->src[i].img);
        QedInfo info;
        if (qed_get_info(c->src[i].img, &info, NULL) == 0 && info.cluster_size > SECTOR) {
            c->src[i].alignment = info.cluster_size;
        } else {
            c->src[i].alignment = SECTOR;
        }
        c->total += c->src[i].size;
    }
    return true;
}

/* Creates the target as qemu-img does: the format's -o options, the total
 * size, -B and -F; false after an error message. */
static bool create_target(Convert *c, const ConvertArgs *a, const char *options,
                          const char *out_filename)
{
    const ImgOptDesc *desc = img_create_options(a->out_fmt);
    GError *err = NULL;

    if (!desc) {
        img_error("Unknown file format '%s'", a->out_fmt);
        return false;
    }
    g_autoptr(ImgOpts) opts = img_opts_parse(desc, options, &err);
    if (!opts) {
        img_error("%s", err->message);
        g_error_free(err);
        return false;
    }
    img_opts_set_size(opts, "size", c->total);
    bool has_backing_opt = false;
    for (const ImgOptDesc *d = desc; d->name; d++) {
        has_backing_opt |= strcmp(d->name, "backing_file") == 0;
    }
    if (a->out_baseimg) {
        if (!has_backing_opt) {
            img_error("Backing file not supported for file format '%s'", a->out_fmt);
            return false;
        }
        img_opts_set(opts, "backing_file", a->out_baseimg);
    }
    if (a->out_basefmt) {
        if (!has_backing_opt) {
            img_error("Backing file format not supported for file format '%s'", a->out_fmt);
            return false;
        }
        img_opts_set(opts, "backing_fmt", a->out_basefmt);
    }
    const char *backing = has_backing_opt ? img_opts_get(opts, "backing_file") : NULL;
    c->target_has_backing = backing != NULL;
    if (c->has_zero_init && c->target_has_backing) {
        img_error("Cannot use --target-is-zero when the destination image has a backing file");
        return false;
    }
    if (c->nsrc > 1 && backing) {
        img_error("Having a backing file for the target makes no sense when concatenating "
                  "multiple input images");
        return false;
    }
    if (backing && !img_opts_get(opts, "backing_fmt")) {
        img_error("Use of backing file requires explicit backing format");
        return false;
    }
    if (a->compressed) {
        img_error("Compression not supported for this file format");
        return false;
    }
    if (a->bitmaps) {
        img_error(c->nsrc > 1 ? "Copying bitmaps only possible with single source"
                              : "Source lacks bitmap support");
        return false;
    }
    if (img_create_with_options(out_filename, a->out_fmt, opts, QED_LOCKING_AUTO, &err) < 0) {
        /* qemu-img names the file once, in front */
        g_autofree char *named = g_strconcat(out_filename, ": ", NULL);
        const char *msg = g_str_has_prefix(err->message, named) ? err->message + strlen(named)
                                                                : err->message;
        img_error("%s: error while converting %s: %s", out_filename, a->out_fmt, msg);
        g_error_free(err);
        return false;
    }
    return true;
}

static bool open_target(Convert *c, const ConvertArgs *a, const char *out_filename)
{
    unsigned flags;
    if (!img_parse_cache(a->cache, &flags)) {
        img_error("Invalid cache option: %s", a->cache);
        return false;
    }
    QedOpenOptions oopts = { .format = a->out_fmt, .flags = flags };
    GError *err = NULL;
    c->target = tool_open(out_filename, &oopts, &err);
    if (!c->target) {
        img_error("%s", err->message);
        g_error_free(err);
        return false;
    }
    /* Order only decides where a QED target puts clusters: a raw one is the
     * same whatever the order, so with O_DIRECT (-t none, directsync) its
     * writes overlap and wait for the disk in parallel. Through the page
     * cache they stay in order: concurrent writes that extend one file
     * serialize in the kernel and made qed->raw slower than qemu-img's. */
    QedInfo info;
    if ((flags & QED_OPEN_DIRECT) && qed_get_info(c->target, &info, NULL) == 0 &&
        strcmp(info.format, "raw") == 0) {
        c->in_order = false;
    }
    QedImage *backing = qed_get_backing(c->target);
    if (a->skip_create) {
        if (qed_get_size(c->target) < c->total) {
            img_error("output file is smaller than input file");
            return false;
        }
    }
    c->target_backing_size = (backing && !a->skip_create) ? (int64_t)qed_get_size(backing) : -1;
    /* A new QED image or regular file reads as zeros; a raw image in an NBD
     * export is the export as it was (creating it zeroed one sector), so
     * zeros are written there, as qemu-img writes them. */
    bool raw_export = blk_nbd_name(out_filename) && strcmp(a->out_fmt, "raw") == 0;
    if (!c->has_zero_init && !a->skip_create && c->min_sparse && !c->target_has_backing &&
        !raw_export) {
        c->has_zero_init = true;
    }
    return true;
}

/* Parses a -S, -m or -r argument; false after qemu-img's message. */
static bool parse_sparse(const char *arg, uint64_t *bytes)
{
    if (units_parse_size(arg, 'B', bytes) < 0 || *bytes > INT64_MAX) {
        img_error("Invalid buffer size for sparse output specified. You may use "
                  "k, M, G, T, P or E suffixes for");
        img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return false;
    }
    if (*bytes % SECTOR != 0 || *bytes > CONVERT_MAX_SPARSE) {
        img_error("Invalid buffer size for sparse output specified. Valid sizes are multiples "
                  "of %u up to %u. Select 0 to disable sparse detection (fully allocates "
                  "output).",
                  SECTOR, CONVERT_MAX_SPARSE);
        return false;
    }
    return true;
}

static bool parse_workers(const char *arg, unsigned *workers)
{
    char *end;
    errno = 0;
    long n = strtol(arg, &end, 0);
    if (errno || end == arg || *end || n < 1 || n > CONVERT_MAX_WORKERS) {
        img_error("Invalid number of coroutines. Allowed number of coroutines is between 1 "
                  "and %d",
                  CONVERT_MAX_WORKERS);
        return false;
    }
    *workers = (unsigned)n;
    return true;
}

static void convert_free(Convert *c)
{
    for (size_t i = 0; i < c->nsrc; i++) {
        qed_close(c->src[i].img, NULL);
    }
    g_free(c->src);
    g_free(c->error);
    pthread_mutex_destroy(&c->lock);
    for (unsigned i = 0; i < CONVERT_MAX_WORKERS; i++) {
        pthread_cond_destroy(&c->turn[i]);
    }
}

static int img_convert(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "target-image-opts", no_argument, NULL, OPTION_TARGET_IMAGE_OPTS },
        { "salvage", no_argument, NULL, OPTION_SALVAGE },
        { "target-is-zero", no_argument, NULL, OPTION_TARGET_IS_ZERO },
        { "bitmaps", no_argument, NULL, OPTION_BITMAPS },
        { NULL, 0, NULL, 0 },
    };
    ConvertArgs a = { .cache = "unsafe", .src_cache = "writeback" };
    Convert c = { .min_sparse = 4096, .in_order = true, .workers = 8 };
    g_autofree char *options = NULL;
    int ch;

    while ((ch = img_getopt(&img_convert_command, argc, argv,
                            ":hf:O:B:F:Cco:l:S:pt:T:qnm:WUr:", long_options)) != -1) {
        switch (ch) {
        case 'f':
            a.fmt = optarg;
            break;
        case 'O':
            a.out_fmt = optarg;
            break;
        case 'B':
            a.out_baseimg = optarg;
            break;
        case 'F':
            a.out_basefmt = optarg;
            break;
        case 'C':
            a.copy_offload = true;
            break;
        case 'c':
            a.compressed = true;
            break;
        case 'o':
            if (!img_opts_accumulate(&options, optarg)) {
                return 1;
            }
            break;
        case 'l':
            a.snapshot = optarg;
            break;
        case 'S':
            if (!parse_sparse(optarg, &c.min_sparse)) {
                return 1;
            }
            a.explicit_min_sparse = true;
            break;
        case 'p':
            a.progress = true;
            break;
        case 't':
            a.cache = optarg;
            break;
        case 'T':
            a.src_cache = optarg;
            break;
        case 'q':
            c.quiet = true;
            break;
        case 'n':
            a.skip_create = true;
            break;
        case 'm':
            if (!parse_workers(optarg, &c.workers)) {
                return 1;
            }
            break;
        case 'W':
            c.in_order = false;
            break;
        case 'U':
            a.force_share = true;
            break;
        case 'r':
            if (units_parse_size(optarg, 'B', &c.rate_limit) < 0 || c.rate_limit > INT64_MAX) {
                img_error("Invalid rate limit specified. You may use "
                          "k, M, G, T, P or E suffixes for");
                img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
                return 1;
            }
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            a.image_opts = true;
            break;
        case OPTION_TARGET_IMAGE_OPTS:
            a.target_image_opts = true;
            break;
        case OPTION_SALVAGE:
            c.salvage = true;
            break;
        case OPTION_TARGET_IS_ZERO:
            c.has_zero_init = true;
            break;
        case OPTION_BITMAPS:
            a.bitmaps = true;
            break;
        }
    }
    if (!a.out_fmt && !a.target_image_opts) {
        a.out_fmt = "raw";
    }
    if (a.compressed && a.copy_offload) {
        img_error("Cannot enable copy offloading when -c is used");
        return 1;
    }
    if (a.explicit_min_sparse && a.copy_offload) {
        img_error("Cannot enable copy offloading when -S is used");
        return 1;
    }
    if (a.copy_offload && c.salvage) {
        img_error("Cannot use copy offloading in salvaging mode");
        return 1;
    }
    if (a.target_image_opts && !a.skip_create) {
        img_error("--target-image-opts requires use of -n flag");
        return 1;
    }
    if (a.skip_create && options) {
        img_error("-o has no effect when skipping image creation");
        return 1;
    }
    if (c.has_zero_init && !a.skip_create) {
        img_error("--target-is-zero requires use of -n flag");
        return 1;
    }
    if (a.image_opts || a.target_image_opts) {
        img_refuse_image_opts();
    }
    int nsrc = argc - optind - 1;
    const char *out_filename = nsrc >= 1 ? argv[argc - 1] : NULL;
    if (options && img_opts_wants_help(options)) {
        return print_option_help(out_filename, a.out_fmt);
    }
    if (nsrc < 1) {
        img_error("Must specify image file name");
        return 1;
    }
    if (c.quiet) {
        a.progress = false;
    }
    c.alignment = SECTOR;
    while (c.alignment * 2 <= c.min_sparse) {
        c.alignment *= 2; /* the largest power of 2 not above -S */
    }

    pthread_mutex_init(&c.lock, NULL);
    for (unsigned i = 0; i < CONVERT_MAX_WORKERS; i++) {
        pthread_cond_init(&c.turn[i], NULL);
        c.waiting_for[i] = UINT64_MAX;
    }
    c.nsrc = (size_t)nsrc;
    c.src = g_new0(Source, c.nsrc);
    img_progress_init(a.progress, 1.0);
    img_progress_print(0, 100);

    bool ok = open_sources(&c, &a, argv + optind);
    if (ok && a.snapshot) {
        if (c.nsrc > 1) {
            img_error("No support for concatenating multiple snapshot");
        } else {
            QedInfo info;
            qed_get_info(c.src[0].img, &info, NULL);
            img_error("Failed to load snapshot: Block format '%s' used by device '' does not "
                      "support temporarily loading internal snapshots",
                      strcmp(info.format, "raw") == 0 ? "file" : info.format);
        }
        ok = false;
    }
    if (ok && !a.skip_create) {
        ok = create_target(&c, &a, options, out_filename);
    } else if (ok) {
        /* -B with -n: the target's backing file is taken to be there */
        c.target_has_backing = a.out_baseimg != NULL;
        if (c.has_zero_init && c.target_has_backing) {
            img_error("Cannot use --target-is-zero when the destination image has a backing "
                      "file");
            ok = false;
        } else if (c.nsrc > 1 && c.target_has_backing) {
            img_error("Having a backing file for the target makes no sense when concatenating "
                      "multiple input images");
            ok = false;
        } else if (a.compressed || a.bitmaps) {
            img_error(a.compressed ? "Compression not supported for this file format"
                                   : "Source lacks bitmap support");
            ok = false;
        }
    }
    ok = ok && open_target(&c, &a, out_filename);
    if (ok && convert_copy(&c) < 0) {
        img_error("%s", c.error);
        ok = false;
    }
    if (c.target) {
        GError *err = NULL;
        if (qed_close(c.target, &err) < 0 && ok) {
            img_error("%s", err->message);
            ok = false;
        }
        g_clear_error(&err);
    }
    if (ok) {
        img_progress_print(100, 0);
    }
    img_progress_end();
    convert_free(&c);
    return ok ? 0 : 1;
}

const ImgCommand img_convert_command = {
    .name = "convert",
    .run = img_convert,
    .synopsis = "[--object objectdef] [--image-opts] [--target-image-opts] [--target-is-zero] "
                "[--bitmaps] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] "
                "[-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] "
                "[-l snapshot_param] [-S sparse_size] [-r rate_limit] [-m num_coroutines] [-W] "
                "[--salvage] filename [filename2 [...]] output_filename",
    .summary = "Copy images into a new QED or raw image.",
    .help = "Copy the disk image FILENAME (or several, one after the other) into\n"
            "OUTPUT_FILENAME, like qemu-img convert: the same options, checks, messages and\n"
            "exit status, a result that qemu-img compare finds identical, and the same\n"
            "allocation. The backing chain of a source is flattened: the target holds\n"
            "everything the source reads, unless -B gives it a backing file.\n"
            "\n"
            "Zeros are not copied: a run of at least -S bytes of zeros (4k by default) is\n"
            "left unallocated in a new target without a backing file, and otherwise\n"
            "written as zeros (a zero cluster in QED, a hole in a raw file). Sources are\n"
            "read in requests of at most 2 MiB by several threads at once (-m); a QED\n"
            "target is written in the order of the disk (unless -W), for qemu-img's layout.\n"
            "\n"
            "Options:\n"
            "  -f fmt            the format of the sources, 'qed' or 'raw' (else probed)\n"
            "  -O output_fmt     the format of the target, 'qed' or 'raw' (the default)\n"
            "  -o options        -o options of the target, as for create: cluster_size,\n"
            "                    table_size, backing_file, backing_fmt for qed,\n"
            "                    preallocation for raw; '-o help' lists them\n"
            "  -B backing_file   give the target this backing file and copy only what the\n"
            "                    top image of the source holds; the backing file should\n"
            "                    read as the source's backing file does\n"
            "  -F backing_fmt    the format of -B's file (required with -B)\n"
            "  -n                the target exists: do not create it (its format is\n"
            "                    -O's, raw by default); it must be large enough\n"
            "  --target-is-zero  with -n: the target reads as zeros already, so zeros are\n"
            "                    not written\n"
            "  -S sparse_size    the shortest run of zeros left out (a multiple of 512 up to\n"
            "                    16M, default 4k); 0 writes every byte, zeros included\n"
            "  -t cache          the cache mode of the target: unsafe (the default: no\n"
            "                    flushes), writeback, writethrough, directsync, none, off\n"
            "  -T src_cache      the cache mode of the sources (default writeback)\n"
            "  -m num_coroutines the requests in flight, 1 to 16 (default 8)\n"
            "  -W                write out of order (the layout of a QED target then varies)\n"
            "  -r rate_limit     write at most this many bytes per second\n"
            "  -C                accepted; there is no copy offloading, so the copy is the\n"
            "                    same as without -C (as qemu-img falls back for qed)\n"
            "  --salvage         read what can be read: sectors that fail read as zeros\n"
            "  -U                open the sources without locking out their writers\n"
            "  -p                show the progress of the copy\n"
            "  -q                quiet: print nothing but errors\n"
            "  -h, --help        display this help and exit\n"
            "Refused as qemu-img refuses them for qed and raw: -c (compression), -l\n"
            "(internal snapshots), --bitmaps; and --image-opts, --target-image-opts,\n"
            "--object, which qed-img does not take.\n"
            "\n"
            "Exit status: 0 when the copy is complete, 1 on any error.\n"
            "\n"
            "Examples:\n"
            "  qed-img convert -O raw disk.qed disk.raw\n"
            "  qed-img convert -p -O qed disk.raw copy.qed\n"
            "  qed-img convert -O qed -o cluster_size=1M disk.qed big-clusters.qed\n",
};
