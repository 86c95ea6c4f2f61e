/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img create: makes a new QED (or raw) image with the options, checks,
 * messages and "Formatting" line of `qemu-img create`. The QED bytes are
 * written by qed_create(); this file only turns the command line into them.
 */
#include "blk/blk.h"
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#include "units.h"

/* The options that qemu-img's file protocol adds to every format. They do
 * not change a QED file (qemu-img empties the file before writing the
 * header); for raw, preallocation decides how the space is reserved. */
/* A table, aligned by hand. */
/* clang-format off */
#define FILE_LEVEL_OPTIONS                                                                 \
    { "nocow", IMG_OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)", NULL, true }, \
    { "preallocation", IMG_OPT_STRING,                                                     \
      "Preallocation mode (allowed values: off, falloc, full)", NULL, true },              \
    { "extent_size_hint", IMG_OPT_SIZE,                                                    \
      "Extent size hint for the image file, 0 to disable", NULL, true }
/* clang-format on */

G_STATIC_ASSERT(QED_DEFAULT_CLUSTER_SIZE == 65536);

/* In the order in which qemu-img prints them in the Formatting line. */
static const ImgOptDesc qed_options[] = {
    { "size", IMG_OPT_SIZE, "Virtual disk size", NULL, false },
    { "backing_file", IMG_OPT_STRING, "File name of a base image", NULL, false },
    { "backing_fmt", IMG_OPT_STRING, "Image format of the base image", NULL, false },
    { "cluster_size", IMG_OPT_SIZE, "Cluster size (in bytes)", "65536", false },
    { "table_size", IMG_OPT_SIZE, "L1/L2 table size (in clusters)", NULL, false },
    FILE_LEVEL_OPTIONS,
    { NULL, 0, NULL, NULL, false },
};

static const ImgOptDesc raw_options[] = {
    { "size", IMG_OPT_SIZE, "Virtual disk size", NULL, false },
    FILE_LEVEL_OPTIONS,
    { NULL, 0, NULL, NULL, false },
};

typedef struct CreateFormat {
    const char *name;
    const ImgOptDesc *options;
    /* Writes the image, locked as locking says. Its QED_ERROR messages name
     * the file; the others (option checks) do not, and the caller adds the
     * name. */
    int (*create)(const char *filename, const ImgOpts *opts, QedLocking locking, GError **errp);
} CreateFormat;

/* What qemu-img's file protocol checks before the format writes anything. */
static bool check_file_options(const ImgOpts *opts, GError **errp)
{
    const char *prealloc = img_opts_get(opts, "preallocation");

    if (prealloc && strcmp(prealloc, "off") != 0 && strcmp(prealloc, "falloc") != 0 &&
        strcmp(prealloc, "full") != 0) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "invalid parameter value: %s",
                    prealloc);
        return false;
    }
    if (img_opts_get_size(opts, "extent_size_hint", 0) > UINT32_MAX) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                    "Extent size hint is too large");
        return false;
    }
    return true;
}

/* A cluster or table size for QedCreateOptions, whose 0 means "default":
 * 0 and values beyond 32 bits become UINT32_MAX, which is no power of two,
 * so that qed_create() rejects them with its own message. */
static uint32_t geometry_value(uint64_t value)
{
    return (value == 0 || value > UINT32_MAX) ? UINT32_MAX : (uint32_t)value;
}

/* An NBD export is a container of fixed size, which qemu-img's create
 * never makes larger ("Cannot grow NBD nodes" for an image larger than the
 * export): a QED image written into one is held to the same bound. */
static bool check_export_room(const char *filename, uint64_t size, GError **errp)
{
    if (!blk_nbd_name(filename)) {
        return true;
    }
    QedOpenOptions oopts = {
        .format = "raw",
        .flags = QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING,
    };
    QedImage *img = qed_open(filename, &oopts, errp);
    if (!img) {
        return false;
    }
    QedInfo info;
    int ret = qed_get_info(img, &info, errp);
    qed_close(img, NULL);
    if (ret < 0) {
        return false;
    }
    if (size > info.virtual_size) {
        g_set_error_literal(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "Cannot grow NBD nodes");
        return false;
    }
    return true;
}

static int create_qed(const char *filename, const ImgOpts *opts, QedLocking locking, GError **errp)
{
    if (!check_file_options(opts, errp)) {
        return -EINVAL;
    }
    /* qemu-img reads table_size a second time as a plain integer */
    const char *table = img_opts_get(opts, "table_size");
    if (table) {
        char *end;
        errno = 0;
        g_ascii_strtoull(table, &end, 0);
        if (errno || end == table || *end) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                        "Parameter 'table-size' expects integer");
            return -EINVAL;
        }
    }

    QedCreateOptions qopts = {
        .size = img_opts_get_size(opts, "size", 0),
        .cluster_size = geometry_value(
            img_opts_get_size(opts, "cluster_size", QED_DEFAULT_CLUSTER_SIZE)),
        .table_size = geometry_value(
            img_opts_get_size(opts, "table_size", QED_DEFAULT_TABLE_SIZE)),
        .backing_file = img_opts_get(opts, "backing_file"),
        .backing_format = img_opts_get(opts, "backing_fmt"),
        .locking = locking,
    };
    if (!check_export_room(filename, qopts.size, errp)) {
        return -EINVAL;
    }
    return qed_create(filename, &qopts, errp);
}

/* A raw image is the file itself: qed_create() sizes and preallocates it
 * as qemu-img does, under the same locks. */
static int create_raw(const char *filename, const ImgOpts *opts, QedLocking locking, GError **errp)
{
    if (!check_file_options(opts, errp)) {
        return -EINVAL;
    }
    QedCreateOptions qopts = {
        .size = img_opts_get_size(opts, "size", 0),
        .locking = locking,
        .format = "raw",
        .preallocation = img_opts_get(opts, "preallocation"),
    };
    return qed_create(filename, &qopts, errp);
}

static const CreateFormat formats[] = {
    { "qed", qed_options, create_qed },
    { "raw", raw_options, create_raw },
};

static const CreateFormat *find_format(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(formats); i++) {
        if (strcmp(formats[i].name, name) == 0) {
            return &formats[i];
        }
    }
    return NULL;
}

static bool format_has_option(const CreateFormat *format, const char *name)
{
    for (const ImgOptDesc *d = format->options; d->name; d++) {
        if (strcmp(d->name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* -o help: the format's own options, or all of them once the file is named. */
static int print_option_help(const char *filename, const char *fmt)
{
    const CreateFormat *format = find_format(fmt);

    if (!format) {
        img_error("Unknown file format '%s'", fmt);
        return 1;
    }
    if (!filename) {
        printf("Supported %s options:\n", fmt);
        img_opts_print_help(format->options, false);
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    } else {
        printf("Supported options:\n");
        img_opts_print_help(format->options, true);
    }
    return 0;
}

typedef struct CreateRequest {
    const char *filename;
    const char *fmt;
    const char *backing_file; /* -b */
    const char *backing_fmt;  /* -F */
    const char *options;      /* the -o lists, joined */
    bool has_size;            /* the size argument was given */
    uint64_t size;
    bool no_backing; /* -u: never open the backing file */
    bool quiet;
    QedLocking locking; /* --locking */
} CreateRequest;

/* Opens the backing file as qemu-img does (read-only, without its own
 * backing file, without a lock) to learn its format and size; as a name in
 * a header, since that is where it goes (a URI that reads host files, or a
 * relative name in an image on an NBD server, would never open later). */
static bool probe_backing(const CreateRequest *req, ImgOpts *opts, GError **errp)
{
    const char *backing = img_opts_get(opts, "backing_file");
    const char *backing_fmt = img_opts_get(opts, "backing_fmt");
    QedOpenOptions oopts = {
        .format = backing_fmt,
        .flags = QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING | QED_OPEN_FORCE_SHARE,
        .locking = req->locking,
    };
    GError *err = NULL;

    /* Found as the new image will find it: by the rules of header names. */
    QedImage *img = tool_open_backing(req->filename, backing, &oopts, &err);
    if (!img) {
        g_set_error(errp, err->domain, err->code, "%s\nCould not open backing image.",
                    err->message);
        g_error_free(err);
        return false;
    }
    QedInfo info;
    bool ok = qed_get_info(img, &info, errp) == 0;
    if (ok && !backing_fmt) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "Backing file specified without backing format\nDetected format of %s.",
                    info.format);
        ok = false;
    }
    if (ok && !img_opts_is_set(opts, "size")) {
        img_opts_set_size(opts, "size", info.virtual_size);
    }
    qed_close(img, NULL);
    return ok;
}

/* Everything after the command line is read, in qemu-img's order of checks.
 * The messages set here do not name the file; the caller adds it. */
static bool prepare(const CreateRequest *req, const CreateFormat *format, ImgOpts *opts,
                    GError **errp)
{
    if (img_opts_is_set(opts, "size") && req->has_size) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "The image size must be specified only once");
        return false;
    }
    if (req->has_size) {
        img_opts_set_size(opts, "size", req->size);
    }
    if (req->backing_file) {
        if (!format_has_option(format, "backing_file")) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                        "Backing file not supported for file format '%s'", req->fmt);
            return false;
        }
        img_opts_set(opts, "backing_file", req->backing_file);
    }
    if (req->backing_fmt) {
        if (!format_has_option(format, "backing_fmt")) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                        "Backing file format not supported for file format '%s'", req->fmt);
            return false;
        }
        img_opts_set(opts, "backing_fmt", req->backing_fmt);
    }

    const char *backing = img_opts_get(opts, "backing_file");
    if (backing) {
        if (strcmp(req->filename, backing) == 0) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                        "Error: Trying to create an image with the same filename as the "
                        "backing file");
            return false;
        }
        if (backing[0] == '\0') {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                        "Expected backing file name, got empty string");
            return false;
        }
        if (!req->no_backing) {
            if (!probe_backing(req, opts, errp)) {
                return false;
            }
        } else if (!img_opts_get(opts, "backing_fmt")) {
            g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                        "Backing file specified without backing format");
            return false;
        }
    }
    if (!img_opts_is_set(opts, "size")) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "Image creation needs a size parameter");
        return false;
    }
    return true;
}

static bool create_image(const CreateRequest *req)
{
    const CreateFormat *format = find_format(req->fmt);
    GError *err = NULL;

    if (!format) {
        img_error("%s: Unknown file format '%s'", req->filename, req->fmt);
        return false;
    }
    g_autoptr(ImgOpts) opts = img_opts_parse(format->options, req->options, &err);
    if (!opts || !prepare(req, format, opts, &err)) {
        img_error("%s: %s", req->filename, err->message);
        g_error_free(err);
        return false;
    }

    if (!req->quiet) {
        g_autofree char *settings = img_opts_to_string(opts);
        printf("Formatting '%s', fmt=%s %s\n", req->filename, req->fmt, settings);
        fflush(stdout);
    }
    if (format->create(req->filename, opts, req->locking, &err) < 0) {
        if (err->domain == QED_ERROR) {
            img_error("%s", err->message); /* the library names the file */
        } else {
            img_error("%s: %s", req->filename, err->message);
        }
        g_error_free(err);
        return false;
    }
    return true;
}

enum {
    OPTION_LOCKING = 256,
    OPTION_OBJECT,
};

static int img_create(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "locking", required_argument, NULL, OPTION_LOCKING },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { NULL, 0, NULL, 0 },
    };
    CreateRequest req = { .fmt = "qed" };
    g_autofree char *options = NULL;
    int c;

    while ((c = img_getopt(&img_create_command, argc, argv, ":F:b:f:ho:qu", long_options)) != -1) {
        switch (c) {
        case 'F':
            req.backing_fmt = optarg;
            break;
        case 'b':
            req.backing_file = optarg;
            break;
        case 'f':
            req.fmt = optarg;
            break;
        case 'o':
            if (!img_opts_accumulate(&options, optarg)) {
                return 1;
            }
            break;
        case 'q':
            req.quiet = true;
            break;
        case 'u':
            req.no_backing = true;
            break;
        case OPTION_LOCKING:
            if (!img_parse_locking(optarg, &req.locking)) {
                return 1;
            }
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        }
    }

    req.filename = optind < argc ? argv[optind] : NULL;
    if (options && img_opts_wants_help(options)) {
        return print_option_help(req.filename, req.fmt);
    }
    if (optind >= argc) {
        img_error_exit("Expecting image file name");
    }
    optind++;

    if (optind < argc) {
        const char *arg = argv[optind++];
        int ret = units_parse_size(arg, 'B', &req.size);
        if (ret < 0 && ret != -ERANGE) {
            img_error("Invalid image size specified. You may use "
                      "k, M, G, T, P or E suffixes for");
            img_error("kilobytes, megabytes, gigabytes, terabytes, "
                      "petabytes and exabytes.");
            return 1;
        }
        if (ret == -ERANGE || req.size > INT64_MAX) {
            img_error("Invalid image size specified. Must be between 0 and %" PRId64 ".",
                      INT64_MAX);
            return 1;
        }
        req.has_size = true;
    }
    if (optind != argc) {
        img_error_exit("Unexpected argument: %s", argv[optind]);
    }
    req.options = options;
    return create_image(&req) ? 0 : 1;
}

const ImgCommand img_create_command = {
    .name = "create",
    .run = img_create,
    .synopsis =
        "[--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] "
        "[--locking=mode] filename [size]",
    .summary = "Create a new image.",
    .help = "Create the disk image FILENAME of SIZE bytes, like qemu-img create: the same\n"
            "options, the same checks and messages, the same \"Formatting\" line, and for\n"
            "QED the same bytes in the file. An existing file is replaced, unless a program\n"
            "has it open (QEMU or libqed, which lock the images they use): then nothing in\n"
            "it changes and the status is 1.\n"
            "\n"
            "With a backing file, the new image starts as a copy-on-write overlay: reads of\n"
            "clusters that were never written fall through to the backing file. A relative\n"
            "backing file name is stored as given and found in the directory of the new\n"
            "image. Unless -u is given, the backing file is opened: to check it, and to take\n"
            "its size when SIZE is omitted.\n"
            "\n"
            "Options:\n"
            "  -f fmt           the format of the new image: 'qed' (the default) or 'raw'\n"
            "  -b backing_file  the backing file of the new image (same as -o backing_file)\n"
            "  -F backing_fmt   the format of the backing file, 'qed' or 'raw'; required\n"
            "                   with a backing file ('raw' is stored in the image and turns\n"
            "                   off format probing for the backing file)\n"
            "  -u               do not open the backing file; SIZE must then be given\n"
            "  -o options       comma separated name=value format options, see below; may\n"
            "                   be repeated; '-o help' lists the options of the format\n"
            "  -q               quiet: do not print the \"Formatting\" line\n"
            "  --locking=mode   'auto' (the default) locks a QED image while writing it as\n"
            "                   QEMU does where the file system allows it, 'on' fails where\n"
            "                   it does not, 'off' overwrites the file whoever uses it\n"
            "  --object objectdef  refused: qed-img has no QEMU objects\n"
            "  -h, --help       display this help and exit\n"
            "\n"
            "Options of -o for qed:\n"
            "  size=SIZE              the virtual size (instead of the SIZE argument)\n"
            "  backing_file=NAME      as -b\n"
            "  backing_fmt=FMT        as -F\n"
            "  cluster_size=SIZE      bytes per cluster: a power of two from 4k to 64M\n"
            "                         (default 64k)\n"
            "  table_size=N           clusters per L1 or L2 table: 1, 2, 4, 8 or 16\n"
            "                         (default 4); the largest image is\n"
            "                         (N * cluster_size / 8)^2 * cluster_size bytes\n"
            "  preallocation=MODE     off, falloc or full: how a raw image reserves its\n"
            "                         space; no effect on a QED image\n"
            "  nocow=on|off           accepted for qemu-img compatibility; no effect\n"
            "  extent_size_hint=SIZE  accepted for qemu-img compatibility; no effect\n"
            "A raw image takes size and the last three. Write ',,' for a comma in a value.\n"
            "\n"
            "SIZE is a number of bytes with an optional suffix k or K, M, G, T, P or E\n"
            "(powers of 1024); a fraction needs a suffix ('1.5G'). It is rounded up to a\n"
            "multiple of 512.\n"
            "\n"
            "Exit status: 0 when the image was created, 1 on any error.\n"
            "\n"
            "Examples:\n"
            "  qed-img create -f qed disk.qed 10G\n"
            "  qed-img create -f qed -b base.raw -F raw overlay.qed\n"
            "  qed-img create -f qed -o cluster_size=1M,table_size=16 big.qed 1P\n",
};

/* ------------------------------------------------ for convert and measure */

const ImgOptDesc *img_create_options(const char *fmt)
{
    const CreateFormat *format = find_format(fmt);
    return format ? format->options : NULL;
}

int img_create_with_options(const char *filename, const char *fmt, const ImgOpts *opts,
                            QedLocking locking, GError **errp)
{
    const CreateFormat *format = find_format(fmt);
    if (!format) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "Unknown file format '%s'",
                    fmt);
        return -EINVAL;
    }
    return format->create(filename, opts, locking, errp);
}
