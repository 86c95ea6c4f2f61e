/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img commit: copies what an overlay holds into its backing file (or,
 * with -b, what every layer above a deeper base holds into that base), with
 * the options, messages and exit status of `qemu-img commit`; then, unlike
 * qemu-img, empties the overlay when it was committed into its immediate
 * backing file (qed_make_empty), which QED's design asked for.
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qed.h>

#include "probe-warning.h"
#include "units.h"

/* The most one copy step reads and writes, in bytes. */
#define COMMIT_CHUNK (4u * 1024 * 1024)

/* The layers whose clusters are committed: layers[0] is the image named on
 * the command line, layers[n-1] the one right above the base. */
typedef struct CommitChain {
    QedImage *layers[64];
    int n;
    QedImage *base;
} CommitChain;

/* Whether path names the same file as the image b. */
static bool same_file(const char *path, QedImage *b)
{
    QedInfo info;
    if (qed_get_info(b, &info, NULL) < 0) {
        return false;
    }
    if (strcmp(path, info.filename) == 0) {
        return true;
    }
    g_autofree char *a = realpath(path, NULL);
    g_autofree char *c = realpath(info.filename, NULL);
    return a && c && strcmp(a, c) == 0;
}

/* Finds base in the backing chain of top as qemu-img does: each image's
 * backing file is compared with base, taken relative to the directory of the
 * image that names it. Fills chain; false when base is not in it. */
static bool find_base(QedImage *top, const char *base, CommitChain *chain)
{
    chain->n = 0;
    for (QedImage *img = top; qed_get_backing(img) && chain->n < (int)G_N_ELEMENTS(chain->layers);
         img = qed_get_backing(img)) {
        chain->layers[chain->n++] = img;
        QedImage *b = qed_get_backing(img);
        if (!base) {
            chain->base = b;
            return true;
        }
        QedInfo info;
        if (qed_get_info(img, &info, NULL) < 0) {
            return false;
        }
        g_autofree char *candidate = qed_backing_path(info.filename, base);
        if (same_file(candidate, b) || same_file(base, b)) {
            chain->base = b;
            return true;
        }
    }
    return false;
}

/* How [pos, pos + *n) reads in the view of the top layer as far as the
 * layers above the base decide it: DATA or ZERO when one of them holds it
 * (the top-most that does), UNALLOCATED when it falls through to the base.
 * A range past the end of a shorter layer below the top reads as zeros. */
static int chain_status(const CommitChain *chain, uint64_t pos, uint64_t *n, QedExtentType *type,
                        GError **errp)
{
    for (int i = 0; i < chain->n; i++) {
        uint64_t size = qed_get_size(chain->layers[i]);
        if (pos >= size) {
            *type = QED_EXTENT_ZERO;
            return 0;
        }
        QedExtent ext;
        int ret = qed_block_status(chain->layers[i], MIN(*n, size - pos), pos, &ext, errp);
        if (ret < 0) {
            return ret;
        }
        *n = ext.length;
        if (ext.type != QED_EXTENT_UNALLOCATED) {
            *type = ext.type;
            return 0;
        }
    }
    *type = QED_EXTENT_UNALLOCATED;
    return 0;
}

/* Keeps the copy at or below rate bytes per second (0: no limit). */
static void rate_limit(uint64_t rate, uint64_t done, gint64 start_us)
{
    if (rate == 0) {
        return;
    }
    gint64 due_us = start_us + (gint64)(done * (double)G_USEC_PER_SEC / (double)rate);
    gint64 now = g_get_monotonic_time();
    if (due_us > now) {
        g_usleep((gulong)(due_us - now));
    }
}

/* Copies every range the layers above the base hold into the base. */
static int copy_into_base(const CommitChain *chain, uint64_t rate, GError **errp)
{
    QedImage *top = chain->layers[0];
    uint64_t size = qed_get_size(top);
    g_autofree uint8_t *buf = g_malloc(COMMIT_CHUNK);
    uint64_t copied = 0;
    gint64 start_us = g_get_monotonic_time();

    /* First the metadata of the whole range, which costs no data I/O: a
     * damaged table stops the commit before the base changes. */
    for (uint64_t pos = 0; pos < size;) {
        uint64_t n = MIN(size - pos, COMMIT_CHUNK);
        QedExtentType type;
        int ret = chain_status(chain, pos, &n, &type, errp);
        if (ret < 0) {
            return ret;
        }
        pos += n;
    }
    for (uint64_t pos = 0; pos < size;) {
        uint64_t n = MIN(size - pos, COMMIT_CHUNK);
        QedExtentType type;
        int ret = chain_status(chain, pos, &n, &type, errp);
        if (ret == 0 && type == QED_EXTENT_DATA) {
            ret = qed_pread(top, buf, n, pos, errp);
            if (ret == 0) {
                ret = qed_pwrite(chain->base, buf, n, pos, 0, errp);
            }
        } else if (ret == 0 && type == QED_EXTENT_ZERO) {
            ret = qed_pwrite_zeroes(chain->base, n, pos, 0, errp);
        }
        if (ret < 0) {
            return ret;
        }
        if (type != QED_EXTENT_UNALLOCATED) {
            copied += n;
            rate_limit(rate, copied, start_us);
        }
        pos += n;
        img_progress_print((double)n * 100 / (double)size, 100); /* a step */
    }
    return qed_flush(chain->base, errp);
}

/* Switches the base between read-only and read-write: it was opened as a
 * backing file, read-only, with the top's cache mode (open_flags). */
static int reopen_base(QedImage *base, unsigned open_flags, bool writable, GError **errp)
{
    unsigned flags = (open_flags & QED_OPEN_DIRECT) | (writable ? 0 : QED_OPEN_READ_ONLY);
    return tool_reopen(base, flags, errp);
}

/* A base that must grow for the top while its own backing file reaches past
 * its end would show that backing file's data in the grown area, where the
 * top read zeros (past the end of its backing file): the top's data would
 * change, and once emptied, be lost. QEMU's commit fails there too (its
 * truncate must zero-fill the area, which QED cannot: ENOTSUP). Checked before
 * anything is written; prints the error. */
static bool base_can_grow(const CommitChain *chain)
{
    QedImage *base = chain->base;
    QedImage *below = qed_get_backing(base);
    uint64_t top_size = qed_get_size(chain->layers[0]);
    uint64_t base_size = qed_get_size(base);
    if (!below || base_size >= top_size || qed_get_size(below) <= base_size) {
        return true;
    }
    QedInfo ti = { .filename = "?" }, bi = ti, li = ti;
    qed_get_info(chain->layers[0], &ti, NULL);
    qed_get_info(base, &bi, NULL);
    qed_get_info(below, &li, NULL);
    img_error("Could not grow '%s' to the size of '%s' (%" PRIu64 " bytes): its backing "
              "file '%s' would show through the new area: %s",
              bi.filename, ti.filename, top_size, li.filename, g_strerror(ENOTSUP));
    return false;
}

/* Opens the base read-write (as qemu-img reopens it, taking the write locks),
 * grows it to the size of the top when it is smaller (as QEMU's commit
 * does), copies, empties the top unless drop, and drops the base back to
 * read-only, which flushes it and marks it clean. */
static int commit(const CommitChain *chain, unsigned open_flags, uint64_t rate, bool drop,
                  GError **errp)
{
    QedImage *base = chain->base;
    int ret = reopen_base(base, open_flags, true, errp);
    if (ret < 0) {
        return ret;
    }
    uint64_t top_size = qed_get_size(chain->layers[0]);
    if (qed_get_size(base) < top_size) {
        ret = qed_resize(base, top_size, errp);
    }
    if (ret == 0) {
        ret = copy_into_base(chain, rate, errp);
    }
    if (ret == 0 && !drop) {
        ret = qed_make_empty(chain->layers[0], errp);
    }
    int r = reopen_base(base, open_flags, false, ret < 0 ? NULL : errp);
    return ret < 0 ? ret : r;
}

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_LOCKING,
};

static int img_commit(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "locking", required_argument, NULL, OPTION_LOCKING },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    const char *cache = "writeback";
    const char *base_name = NULL;
    uint64_t rate = 0;
    bool quiet = false, progress = false, drop = false;
    QedLocking locking = QED_LOCKING_AUTO;
    int c;

    while ((c = img_getopt(&img_commit_command, argc, argv, ":hf:t:b:r:dpq", long_options)) !=
           -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 't':
            cache = optarg;
            break;
        case 'b':
            base_name = optarg;
            break;
        case 'r': {
            /* qemu-img's two messages: malformed, or out of range (which
             * includes numbers too large for 64 bits). */
            int r = units_parse_size(optarg, 'B', &rate);
            if (r < 0 && r != -ERANGE) {
                img_error("Invalid rate limit specified. You may use k, M, G, T, P or E "
                          "suffixes for");
                img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and "
                          "exabytes.");
                return 1;
            }
            if (r == -ERANGE || rate > INT64_MAX) {
                img_error("Invalid rate limit specified. Must be between 0 and %" PRId64 ".",
                          INT64_MAX);
                return 1;
            }
            break;
        }
        case 'd':
            drop = true;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case OPTION_LOCKING:
            if (!img_parse_locking(optarg, &locking)) {
                return 1;
            }
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            img_refuse_image_opts();
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    const char *filename = argv[optind];
    if (quiet) {
        progress = false;
    }
    unsigned cache_flags;
    if (!img_parse_cache(cache, &cache_flags)) {
        img_error("Invalid cache option: %s", cache);
        return 1;
    }

    QedOpenOptions oopts = { .format = fmt, .flags = cache_flags, .locking = locking };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    probe_warning_print(img, filename);
    /* As in qemu-img, -p draws its first line once the image is open, and
     * every exit from here on ends the line. */
    img_progress_init(progress, 1.0);
    img_progress_print(0, 100);

    CommitChain chain;
    int ret = 0;
    if (!qed_get_backing(img)) {
        img_error("Image does not have a backing file");
        ret = -EINVAL;
    } else if (!find_base(img, base_name, &chain)) {
        img_error("Did not find '%s' in the backing chain of '%s'", base_name, filename);
        ret = -EINVAL;
    }
    if (ret == 0 && !base_can_grow(&chain)) {
        ret = -ENOTSUP;
    }
    if (ret == 0) {
        /* Emptying the top over a deeper base would let the stale layers
         * in between show through: -b into a deeper base implies -d. */
        drop = drop || chain.n > 1;
        ret = commit(&chain, cache_flags, rate, drop, &err);
        if (ret < 0) {
            img_error("%s", err->message);
            g_clear_error(&err);
        }
    }
    if (qed_close(img, &err) < 0) {
        img_error("%s", err->message);
        g_clear_error(&err);
        ret = -EIO;
    }
    if (ret == 0) {
        img_progress_print(100, 0);
    }
    img_progress_end();
    if (ret < 0) {
        return 1;
    }
    if (!quiet) {
        printf("Image committed.\n");
    }
    return 0;
}

const ImgCommand img_commit_command = {
    .name = "commit",
    .run = img_commit,
    .synopsis = "[--object objectdef] [--image-opts] [-q] [-f fmt] [-t cache] [-b base] "
                "[-r rate_limit] [-d] [-p] [--locking=mode] filename",
    .summary = "Commit an overlay into its backing file, and empty the overlay.",
    .help = "Copy every cluster that the image FILENAME holds (data, and zero clusters as\n"
            "zeros) into its backing file, as qemu-img commit does, so that the backing\n"
            "file reads as FILENAME read. Then, when the backing file was the image's\n"
            "immediate one and -d is not given, empty FILENAME: its tables are cleared and\n"
            "the file is cut back to the header and L1 table, so that every read falls\n"
            "through to the committed backing file (qemu-img leaves a QED overlay as it\n"
            "was). The backing file is flushed before anything in FILENAME is dropped, and\n"
            "a crash at any point leaves both files consistent and the data in them.\n"
            "\n"
            "With -b, the clusters of every image above BASE in the backing chain are\n"
            "committed into BASE. Committing into a deeper base keeps FILENAME as it is\n"
            "(-d is implied): emptying it would let the stale images in between show.\n"
            "A base smaller than FILENAME is grown to its size first. The backing file is\n"
            "opened read-write for the copy (taking the write locks, as qemu-img does) and\n"
            "read-only again afterwards.\n"
            "\n"
            "Options:\n"
            "  -f fmt          the format of FILENAME, 'qed' or 'raw'; probed when omitted\n"
            "  -t cache        the cache mode: writeback (default), unsafe, writethrough,\n"
            "                  none, off or directsync\n"
            "  -b base         commit into BASE, an image of the backing chain (named as\n"
            "                  stored, or as a path); the default is the backing file\n"
            "  -r rate_limit   copy at most RATE_LIMIT bytes per second (suffixes k, M, G,\n"
            "                  T, P, E)\n"
            "  -d              do not empty FILENAME after the commit\n"
            "  -p              show the progress of the copy\n"
            "  -q              quiet: print nothing but errors\n"
            "  --locking=mode  'auto' (the default) locks the images as QEMU does where the\n"
            "                  file system allows it, 'on' fails where it does not, 'off'\n"
            "                  takes no lock and ignores those of others\n"
            "  --object, --image-opts  refused: qed-img has no objects, and takes file\n"
            "                  names and -f only\n"
            "  -h, --help      display this help and exit\n"
            "\n"
            "Exit status: 0 when the image was committed, 1 on any error (no backing\n"
            "file, BASE not in the chain, a file that cannot be opened, locked, read or\n"
            "written).\n"
            "\n"
            "Examples:\n"
            "  qed-img commit -p overlay.qed\n"
            "  qed-img commit -b base.raw top.qed\n",
};
