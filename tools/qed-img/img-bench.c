/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img bench: the request-rate benchmark of `qemu-img bench`, with its
 * options, its offset sequence, its flush interval and its output; --stats
 * adds the I/O counts of the image file from qed_get_stats().
 *
 * Design notes. qemu-img keeps `depth` asynchronous requests in flight from
 * one thread; the library's calls are synchronous and thread-safe, so here
 * `depth` worker threads (at most BENCH_MAX_THREADS) each carry one request
 * at a time. The bookkeeping is qemu-img's, under Bench.lock: `n` requests
 * not yet completed, `in_flight` submitted and not completed, the next
 * offset advancing by the step and wrapping at the image size (with
 * `depth` above BENCH_MAX_THREADS, the flush points are counted from that
 * many submitted at once, so a run may flush once more than qemu-img's;
 * docs/qed-img.md says so). As in
 * qemu-img, `depth` requests are submitted at once at the start and after a
 * drain's flush (handed to the workers as a batch); one at a time, a quick
 * completion between two submissions could pass a flush point. On each
 * completion, when the number of requests not yet submitted is a multiple
 * of the flush interval, a flush is due: by default the workers stop
 * submitting until those in flight are done (drain) and the last of them
 * flushes; with --no-drain the flush goes to a flusher thread and runs
 * beside the requests. The clock runs from the first submission to the
 * last completion, as in qemu-img: a flush that is still due or running
 * then, and the flush of the close, are done after the clock stops.
 * pthread locks rather than GMutex, so that ThreadSanitizer sees them.
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qed.h>

#include "probe-warning.h"
#include "units.h"

/* Worker threads at most: deeper queues run with this many requests in
 * flight (qemu-img's own thread pool runs at most 64 requests at once). */
#define BENCH_MAX_THREADS 1024

typedef struct Bench Bench;

typedef struct BenchWorker {
    Bench *b;
    uint8_t *rbuf; /* a reader's own buffer; NULL for writers */
    /* A request submitted for this worker as part of a batch (guarded by
     * Bench.lock). */
    bool assigned;
    uint64_t assigned_offset;
} BenchWorker;

struct Bench {
    /* Set before the workers start, then read-only. */
    QedImage *img;
    uint64_t image_size;
    bool write;
    size_t bufsize;
    uint64_t step;
    int count;
    int flush_interval;
    bool drain;
    const uint8_t *wbuf; /* the pattern, shared by every writer */
    BenchWorker *workers;
    int nthreads;

    /* Everything below is guarded by lock; cond is broadcast on each change
     * that lets a worker go on (start, a drain's flush done, a failure). */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started;
    int n;                 /* requests not yet completed */
    int in_flight;         /* submitted, not yet completed */
    int submitted;         /* requests handed to a worker so far */
    uint64_t offset;       /* of the next request */
    bool draining;         /* no submission until the drain's flush is done */
    bool final_flush;      /* the drain's flush due after the last request (untimed) */
    gint64 t_start, t_end; /* monotonic microseconds */
    QedStats stats0;       /* at t_start */
    QedStats stats;        /* at t_end */
    char *error;           /* the first failure; the workers stop at it */

    /* --no-drain: flushes queued for the flusher thread (guarded by lock). */
    int flushes_due;
    bool flusher_stop;
    pthread_cond_t flusher_cond;
};

/* Hands out the next request (called with lock held): its offset. */
static uint64_t bench_submit_locked(Bench *b)
{
    uint64_t offset = b->offset;

    b->submitted++;
    b->in_flight++;
    b->offset += b->step;
    if (b->image_size > 0) { /* (qemu-img divides by zero here) */
        b->offset %= b->image_size;
    }
    return offset;
}

/* Submits a request to every worker, as qemu-img submits `depth` requests
 * at once at the start and after a drain's flush (called with lock held,
 * all workers idle). One at a time instead, a quick completion could come
 * between two submissions and pass a flush point. */
static void bench_submit_batch_locked(Bench *b)
{
    for (int i = 0; i < b->nthreads && b->submitted < b->count; i++) {
        b->workers[i].assigned_offset = bench_submit_locked(b);
        b->workers[i].assigned = true;
    }
    pthread_cond_broadcast(&b->cond);
}

/* Records the first failure (called with lock held). */
static void bench_fail_locked(Bench *b, char *message)
{
    if (!b->error) {
        b->error = message;
    } else {
        g_free(message);
    }
    pthread_cond_broadcast(&b->cond);
    pthread_cond_broadcast(&b->flusher_cond);
}

/* One request at offset. A range past the end fails with EIO, which is
 * what QEMU's block layer answers before it reaches the driver. */
static char *bench_request(Bench *b, uint8_t *rbuf, uint64_t offset)
{
    if (offset > b->image_size || b->image_size - offset < b->bufsize) {
        return g_strdup_printf("Failed request: %s", g_strerror(EIO));
    }
    GError *err = NULL;
    int ret = b->write ? qed_pwrite(b->img, b->wbuf, b->bufsize, offset, 0, &err)
                       : qed_pread(b->img, rbuf, b->bufsize, offset, &err);
    if (ret < 0) {
        char *msg = g_strdup_printf("Failed request: %s", err ? err->message : g_strerror(-ret));
        g_clear_error(&err);
        return msg;
    }
    return NULL;
}

/* A flush outside the lock; the failure message, or NULL. */
static char *bench_flush(Bench *b, const char *what)
{
    GError *err = NULL;
    int ret = qed_flush(b->img, &err);
    if (ret < 0) {
        char *msg = g_strdup_printf("%s: %s", what, err ? err->message : g_strerror(-ret));
        g_clear_error(&err);
        return msg;
    }
    return NULL;
}

/* A completion, with qemu-img's arithmetic (called with lock held):
 * `remaining` is the count of requests not yet submitted. */
static void bench_complete_locked(Bench *b)
{
    int remaining = b->count - b->submitted;

    b->n--;
    b->in_flight--;
    if (b->n == 0) {
        b->t_end = g_get_monotonic_time();
        qed_get_stats(b->img, &b->stats);
    }
    if (!b->flush_interval || remaining % b->flush_interval != 0) {
        return;
    }
    if (!b->drain) {
        b->flushes_due++;
        pthread_cond_signal(&b->flusher_cond);
        return;
    }
    b->draining = true;
    if (b->in_flight > 0) {
        return; /* the last one in flight flushes */
    }
    if (b->n == 0) {
        b->final_flush = true; /* qemu-img issues it and stops the clock */
        return;
    }
    pthread_mutex_unlock(&b->lock);
    char *msg = bench_flush(b, "Failed request");
    pthread_mutex_lock(&b->lock);
    if (msg) {
        bench_fail_locked(b, msg);
        return;
    }
    b->draining = false;
    bench_submit_batch_locked(b);
}

static gpointer bench_worker(gpointer opaque)
{
    BenchWorker *w = opaque;
    Bench *b = w->b;

    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->error && !w->assigned && (!b->started || b->draining) &&
               b->submitted < b->count) {
            pthread_cond_wait(&b->cond, &b->lock);
        }
        if (b->error || (!w->assigned && b->submitted == b->count)) {
            break;
        }
        uint64_t offset = w->assigned ? w->assigned_offset : bench_submit_locked(b);
        w->assigned = false;
        pthread_mutex_unlock(&b->lock);

        char *msg = bench_request(b, w->rbuf, offset);

        pthread_mutex_lock(&b->lock);
        if (msg) {
            bench_fail_locked(b, msg);
            break;
        }
        bench_complete_locked(b);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* --no-drain: runs the flushes due, one after another, beside the requests;
 * on stop, those still due first. */
static gpointer bench_flusher(gpointer opaque)
{
    Bench *b = opaque;

    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->error && !b->flushes_due && !b->flusher_stop) {
            pthread_cond_wait(&b->flusher_cond, &b->lock);
        }
        if (b->error || !b->flushes_due) {
            break;
        }
        b->flushes_due--;
        pthread_mutex_unlock(&b->lock);
        char *msg = bench_flush(b, "Failed flush request");
        pthread_mutex_lock(&b->lock);
        if (msg) {
            bench_fail_locked(b, msg);
        }
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Runs the requests; false after printing the failure. */
static bool bench_run(Bench *b, int depth, int pattern)
{
    int nthreads = MIN(MIN(depth, b->count), BENCH_MAX_THREADS);
    BenchWorker *workers = g_new0(BenchWorker, MAX(nthreads, 1));
    GThread **threads = g_new0(GThread *, MAX(nthreads, 1));
    GThread *flusher = NULL;
    void *wbuf = NULL;
    bool ok = false;

    /* Aligned for O_DIRECT, as qemu-img aligns its buffers: the library
     * would copy an unaligned one through a bounce buffer. */
    size_t alloc = MAX(b->bufsize, 1);
    if (b->write) {
        if (posix_memalign(&wbuf, 4096, alloc) != 0) {
            img_error("Could not allocate the request buffer of %zu bytes", b->bufsize);
            goto out;
        }
        memset(wbuf, pattern, alloc);
        b->wbuf = wbuf;
    }
    for (int i = 0; i < nthreads && !b->write; i++) {
        void *p;
        if (posix_memalign(&p, 4096, alloc) != 0) {
            img_error("Could not allocate %d request buffers of %zu bytes", nthreads, b->bufsize);
            goto out;
        }
        memset(p, pattern, alloc);
        workers[i].rbuf = p;
    }

    for (int i = 0; i < nthreads; i++) {
        workers[i].b = b;
        threads[i] = g_thread_new("bench", bench_worker, &workers[i]);
    }
    if (b->flush_interval && !b->drain) {
        flusher = g_thread_new("bench-flush", bench_flusher, b);
    }

    pthread_mutex_lock(&b->lock);
    b->workers = workers;
    b->nthreads = nthreads;
    bench_submit_batch_locked(b);
    qed_get_stats(b->img, &b->stats0);
    b->t_start = g_get_monotonic_time();
    b->started = true;
    if (b->count == 0) {
        b->t_end = b->t_start;
        qed_get_stats(b->img, &b->stats);
    }
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);

    for (int i = 0; i < nthreads; i++) {
        g_thread_join(threads[i]);
    }
    if (flusher) {
        pthread_mutex_lock(&b->lock);
        b->flusher_stop = true;
        pthread_cond_signal(&b->flusher_cond);
        pthread_mutex_unlock(&b->lock);
        g_thread_join(flusher);
    }
    if (!b->error && b->final_flush) {
        b->error = bench_flush(b, "Failed request");
    }
    if (b->error) {
        img_error("%s", b->error);
        goto out;
    }
    ok = true;

out:
    for (int i = 0; i < nthreads; i++) {
        free(workers[i].rbuf);
    }
    free(wbuf);
    g_free(workers);
    g_free(threads);
    return ok;
}

/* The I/O of the timed run: the counters at its end less those at its start
 * (the open's reads and the close's writes are not the benchmark's). */
static QedStats bench_stats(const Bench *b)
{
    return (QedStats){
        .reads = b->stats.reads - b->stats0.reads,
        .writes = b->stats.writes - b->stats0.writes,
        .flushes = b->stats.flushes - b->stats0.flushes,
        .bytes_read = b->stats.bytes_read - b->stats0.bytes_read,
        .bytes_written = b->stats.bytes_written - b->stats0.bytes_written,
    };
}

/* A number as qemu_strtoul() reads it (base 0: decimal, 0x hex, 0 octal;
 * a '-' wraps), at most max. */
static bool parse_ulong(const char *arg, unsigned long max, int *value)
{
    char *end;

    errno = 0;
    unsigned long v = strtoul(arg, &end, 0);
    if (end == arg || *end != '\0' || errno == ERANGE || v > max) {
        return false;
    }
    *value = (int)v;
    return true;
}

/* A size as qemu-img's cvtnum_full() reads it, in [0, max]. */
static bool parse_size(const char *what, const char *arg, int64_t max, int64_t *value)
{
    uint64_t v;
    int ret = units_parse_size(arg, 'B', &v);
    if (ret < 0 && ret != -ERANGE) {
        img_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", what);
        img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return false;
    }
    if (ret == -ERANGE || v > (uint64_t)max) {
        img_error("Invalid %s specified. Must be between 0 and %" PRId64 ".", what, max);
        return false;
    }
    *value = (int64_t)v;
    return true;
}

static void print_stats(const Bench *b)
{
    QedStats run = bench_stats(b);
    const QedStats *s = &run;
    double per = b->count ? 1.0 / b->count : 0;

    printf("reads: %" PRIu64 "\n", s->reads);
    printf("writes: %" PRIu64 "\n", s->writes);
    printf("flushes: %" PRIu64 "\n", s->flushes);
    printf("bytes_read: %" PRIu64 "\n", s->bytes_read);
    printf("bytes_written: %" PRIu64 "\n", s->bytes_written);
    printf("writes_per_request: %.3f\n", (double)s->writes * per);
    printf("flushes_per_request: %.3f\n", (double)s->flushes * per);
}

enum {
    OPTION_FLUSH_INTERVAL = 256,
    OPTION_NO_DRAIN,
    OPTION_PATTERN,
    OPTION_IMAGE_OPTS,
    OPTION_STATS,
};

static int img_bench(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "flush-interval", required_argument, NULL, OPTION_FLUSH_INTERVAL },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "pattern", required_argument, NULL, OPTION_PATTERN },
        { "no-drain", no_argument, NULL, OPTION_NO_DRAIN },
        { "force-share", no_argument, NULL, 'U' },
        { "stats", no_argument, NULL, OPTION_STATS },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    bool image_opts = false;
    bool write = false;
    bool force_share = false;
    bool native_aio = false;
    bool stats = false;
    int count = 75000;
    int depth = 64;
    int64_t offset = 0;
    int64_t bufsize = 4096;
    int64_t step = 0;
    int pattern = 0;
    int flush_interval = 0;
    bool drain = true;
    unsigned cache_flags = 0; /* writeback */
    int c;

    while ((c = img_getopt(&img_bench_command, argc, argv, ":hc:d:f:ni:o:qs:S:t:wU",
                           long_options)) != -1) {
        switch (c) {
        case 'c':
            if (!parse_ulong(optarg, INT_MAX, &count)) {
                img_error("Invalid request count specified");
                return 1;
            }
            break;
        case 'd':
            if (!parse_ulong(optarg, INT_MAX, &depth)) {
                img_error("Invalid queue depth specified");
                return 1;
            }
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'n':
            native_aio = true;
            break;
        case 'i':
            if (strcmp(optarg, "native") == 0) {
                native_aio = true;
            } else if (strcmp(optarg, "threads") != 0 && strcmp(optarg, "io_uring") != 0) {
                img_error("Invalid aio option: %s", optarg);
                return 1;
            }
            break;
        case 'o':
            if (!parse_size("offset", optarg, INT64_MAX, &offset)) {
                return 1;
            }
            break;
        case 'q':
            break; /* qemu-img bench prints its lines with -q too */
        case 's':
            if (!parse_size("buffer size", optarg, INT_MAX, &bufsize)) {
                return 1;
            }
            break;
        case 'S':
            if (!parse_size("step_size", optarg, INT_MAX, &step)) {
                return 1;
            }
            break;
        case 't':
            if (!img_parse_cache(optarg, &cache_flags)) {
                img_error("Invalid cache mode");
                return 1;
            }
            break;
        case 'w':
            write = true;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_PATTERN:
            if (!parse_ulong(optarg, 0xff, &pattern)) {
                img_error("Invalid pattern byte specified");
                return 1;
            }
            break;
        case OPTION_FLUSH_INTERVAL:
            if (!parse_ulong(optarg, INT_MAX, &flush_interval)) {
                img_error("Invalid flush interval specified");
                return 1;
            }
            break;
        case OPTION_NO_DRAIN:
            drain = false;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_STATS:
            stats = true;
            break;
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    const char *filename = argv[argc - 1];

    if (!write && flush_interval) {
        img_error("--flush-interval is only available in write tests");
        return 1;
    }
    if (flush_interval && flush_interval < depth) {
        img_error("Flush interval can't be smaller than depth");
        return 1;
    }
    if (image_opts) {
        img_refuse_image_opts();
    }
    /* qemu-img waits forever for requests that never start. */
    if (depth == 0 && count > 0) {
        img_error("Invalid queue depth specified");
        return 1;
    }

    QedOpenOptions oopts = {
        .format = fmt,
        .flags = cache_flags | (write ? 0 : QED_OPEN_READ_ONLY) |
                 (force_share ? QED_OPEN_FORCE_SHARE : 0),
    };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    if (native_aio && !(cache_flags & QED_OPEN_DIRECT)) {
        qed_close(img, NULL);
        img_error("Could not open '%s': aio=native was specified, but it requires "
                  "cache.direct=on, which was not specified.",
                  filename);
        return 1;
    }
    if (write) {
        probe_warning_print(img, filename);
    }

    Bench b = {
        .img = img,
        .image_size = qed_get_size(img),
        .write = write,
        .bufsize = (size_t)bufsize,
        .step = step ? (uint64_t)step : (uint64_t)bufsize,
        .count = count,
        .flush_interval = flush_interval,
        .drain = drain,
        .n = count,
        .offset = (uint64_t)offset,
    };
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    pthread_cond_init(&b.flusher_cond, NULL);

    printf("Sending %d %s requests, %d bytes each, %d in parallel "
           "(starting at offset %" PRId64 ", step size %d)\n",
           count, write ? "write" : "read", (int)bufsize, depth, offset, (int)b.step);
    if (flush_interval) {
        printf("Sending flush every %d requests\n", flush_interval);
    }
    bool ok = bench_run(&b, depth, pattern);
    if (ok) {
        printf("Run completed in %3.3f seconds.\n", (double)(b.t_end - b.t_start) / 1e6);
        if (stats) {
            print_stats(&b);
        }
    }
    g_free(b.error);
    pthread_mutex_destroy(&b.lock);
    pthread_cond_destroy(&b.cond);
    pthread_cond_destroy(&b.flusher_cond);

    if (qed_close(img, &err) < 0) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    return ok ? 0 : 1;
}

const ImgCommand img_bench_command = {
    .name = "bench",
    .run = img_bench,
    .synopsis = "[-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] "
                "[-n] [--no-drain] [-o offset] [--pattern=pattern_byte] [-q] [-s buffer_size] "
                "[-S step_size] [-t cache] [-w] [-U] [--stats] filename",
    .summary = "Measure the request rate of an image.",
    .help = "Measure how fast the disk image FILENAME serves requests, as qemu-img bench\n"
            "does: send COUNT read requests (or with -w write requests) of BUFFER_SIZE\n"
            "bytes, DEPTH of them in flight at a time, and print how long they took. The\n"
            "first request is at OFFSET, each next one STEP_SIZE bytes further on; an\n"
            "offset that reaches the end of the virtual disk wraps around to its start\n"
            "(offset modulo the disk size), and a request that would cross the end fails.\n"
            "Writes write the pattern byte; reads go through the backing chain. The image\n"
            "is opened read-only without -w.\n"
            "\n"
            "The time runs from the first request to the completion of the last one. It\n"
            "includes the flushes of --flush-interval that requests wait for; the flush\n"
            "due after the last request, flushes still running then (--no-drain), and\n"
            "the flush of closing the image are not counted, as in qemu-img. DEPTH\n"
            "threads each carry one request at a time (at most 1024 threads).\n"
            "\n"
            "Options:\n"
            "  -c count             the number of requests (default 75000)\n"
            "  -d depth             the requests in flight at a time (default 64; 0 only\n"
            "                       with -c 0)\n"
            "  -f fmt               the format of the image, 'qed' or 'raw'; probed when\n"
            "                       omitted\n"
            "  -s buffer_size       the bytes of each request (default 4096; a size with\n"
            "                       an optional k, M or G suffix)\n"
            "  -S step_size         the distance from one request's offset to the next\n"
            "                       (default, and 0: buffer_size)\n"
            "  -o offset            the offset of the first request (default 0)\n"
            "  -w                   write instead of read\n"
            "  --pattern=pattern_byte\n"
            "                       the byte that writes fill their buffer with (0-255,\n"
            "                       decimal, 0x hex or 0 octal; default 0)\n"
            "  --flush-interval=flush_interval\n"
            "                       with -w, flush after every flush_interval requests\n"
            "                       (not fewer than depth): first wait until the requests\n"
            "                       in flight are done, then flush, then go on\n"
            "  --no-drain           with --flush-interval, flush beside the requests in\n"
            "                       flight instead of waiting for them\n"
            "  -t cache             the cache mode: writeback (default), unsafe,\n"
            "                       writethrough, none, off or directsync\n"
            "  -n                   native AIO in qemu-img; here accepted with -t none, off\n"
            "                       or directsync (as qemu-img requires) and without effect:\n"
            "                       the library chooses how it does I/O\n"
            "  -i aio               'threads', 'native' (as -n) or 'io_uring'; accepted\n"
            "                       and without effect, as -n\n"
            "  -q                   accepted; qemu-img bench prints its lines with -q too\n"
            "  -U, --force-share    let other programs write the image meanwhile (not\n"
            "                       with -w)\n"
            "  --stats              after the run, print the I/O that reached the image\n"
            "                       file during the timed run (not its backing file), one\n"
            "                       'name: value' line each: reads, writes, flushes,\n"
            "                       bytes_read, bytes_written, writes_per_request and\n"
            "                       flushes_per_request (divided by count); qemu-img bench\n"
            "                       has no --stats\n"
            "  --image-opts         refused: name the image file (and give -f) instead\n"
            "  -h, --help           display this help and exit\n"
            "\n"
            "Output: 'Sending COUNT read|write requests, BUFFER_SIZE bytes each, DEPTH in\n"
            "parallel (starting at offset OFFSET, step size STEP)', with --flush-interval\n"
            "'Sending flush every N requests', and at the end 'Run completed in S\n"
            "seconds.' (milliseconds precision).\n"
            "\n"
            "Exit status: 0 when every request succeeded, 1 on a bad option, an image\n"
            "that cannot be opened or a failed request (which stops the run: 'Failed\n"
            "request: ...', and no time is printed).\n"
            "\n"
            "Examples:\n"
            "  qed-img bench -w -t none -n -c 20000 -d 16 -s 4k -S 64k disk.qed\n"
            "  qed-img bench -w -c 20000 -d 16 --flush-interval=16 --stats disk.qed\n"
            "  qed-img bench -c 50000 -d 16 -S 64k disk.qed\n",
};
