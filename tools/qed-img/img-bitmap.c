/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img bitmap: QED and raw images cannot store persistent dirty bitmaps.
 * The command takes qemu-img bitmap's syntax, checks its arguments as
 * qemu-img 7.2 does, and answers each action with qemu-img's error: adding
 * a bitmap is not supported, and there is no bitmap to remove, clear,
 * enable, disable or merge into.
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#include "probe-warning.h"
#include "units.h"

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_ADD,
    OPTION_REMOVE,
    OPTION_CLEAR,
    OPTION_ENABLE,
    OPTION_DISABLE,
    OPTION_MERGE,
};

static const char *const op_names[] = {
    [OPTION_ADD - OPTION_ADD] = "add",         [OPTION_REMOVE - OPTION_ADD] = "remove",
    [OPTION_CLEAR - OPTION_ADD] = "clear",     [OPTION_ENABLE - OPTION_ADD] = "enable",
    [OPTION_DISABLE - OPTION_ADD] = "disable", [OPTION_MERGE - OPTION_ADD] = "merge",
};

/* -g, as qemu-img's cvtnum("granularity") reads it. */
static bool parse_granularity(const char *arg, int64_t *value)
{
    uint64_t v;
    int ret = units_parse_size(arg, 'B', &v);
    if (ret == 0 && v > INT64_MAX) {
        ret = -ERANGE;
    }
    if (ret == -ERANGE) {
        img_error("Invalid granularity specified. Must be between 0 and %" PRId64 ".", INT64_MAX);
        return false;
    }
    if (ret < 0) {
        img_error("Invalid granularity specified. You may use k, M, G, T, P or E suffixes for");
        img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return false;
    }
    *value = (int64_t)v;
    return true;
}

/* Opens filename as qemu-img bitmap does (without its backing file). */
static QedImage *open_image(const char *filename, const char *fmt, bool writable)
{
    QedOpenOptions oopts = {
        .format = fmt,
        .flags = QED_OPEN_NO_BACKING | (writable ? 0 : QED_OPEN_READ_ONLY),
    };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
    }
    return img;
}

/* The error of the first action: none of them can succeed. */
static void report_action(int action, const char *filename, const char *bitmap,
                          int64_t granularity)
{
    const char *op = op_names[action - OPTION_ADD];
    uint32_t g = (uint32_t)granularity; /* QEMU's QMP argument is 32 bits */
    if (action == OPTION_ADD && bitmap[0] == '\0') {
        img_error("Operation %s on bitmap %s failed: Bitmap name cannot be empty", op, bitmap);
    } else if (action == OPTION_ADD && granularity && (g < 512 || (g & (g - 1)))) {
        img_error("Operation %s on bitmap %s failed: Granularity must be power of 2 and at "
                  "least 512",
                  op, bitmap);
    } else if (action == OPTION_ADD) {
        /* (qemu-img names its internal node, "#blockNNN", where this says
         * the file.) */
        img_error("Operation %s on bitmap %s failed: Can't store persistent bitmaps to %s: %s", op,
                  bitmap, filename, g_strerror(ENOTSUP));
    } else {
        img_error("Operation %s on bitmap %s failed: Dirty bitmap '%s' not found", op, bitmap,
                  bitmap);
    }
}

static int img_bitmap(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "add", no_argument, NULL, OPTION_ADD },
        { "remove", no_argument, NULL, OPTION_REMOVE },
        { "clear", no_argument, NULL, OPTION_CLEAR },
        { "enable", no_argument, NULL, OPTION_ENABLE },
        { "disable", no_argument, NULL, OPTION_DISABLE },
        { "merge", required_argument, NULL, OPTION_MERGE },
        { "granularity", required_argument, NULL, 'g' },
        { "source-file", required_argument, NULL, 'b' },
        { "source-format", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *src_file = NULL, *src_fmt = NULL;
    int64_t granularity = 0;
    int first_action = 0;
    bool add = false, merge = false, image_opts = false;
    int c;

    while ((c = img_getopt(&img_bitmap_command, argc, argv, ":b:f:F:g:h", long_options)) != -1) {
        switch (c) {
        case 'b':
            src_file = optarg;
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'F':
            src_fmt = optarg;
            break;
        case 'g':
            if (!parse_granularity(optarg, &granularity)) {
                return 1;
            }
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        default: /* an action; they run in order, and the first one fails */
            first_action = first_action ? first_action : c;
            add |= c == OPTION_ADD;
            merge |= c == OPTION_MERGE;
            break;
        }
    }
    if (!first_action) {
        img_error("Need at least one of --add, --remove, --clear, --enable, --disable, or "
                  "--merge");
        return 1;
    }
    if (granularity && !add) {
        img_error("granularity only supported with --add");
        return 1;
    }
    if (src_fmt && !src_file) {
        img_error("-F only supported with -b");
        return 1;
    }
    if (src_file && !merge) {
        img_error("Merge bitmap source file only supported with --merge");
        return 1;
    }
    if (optind != argc - 2) {
        img_error("Expecting filename and bitmap name");
        return 1;
    }
    const char *filename = argv[optind];
    const char *bitmap = argv[optind + 1];
    if (image_opts) {
        img_refuse_image_opts();
    }

    /* Opened for writing, as qemu-img opens it, so that a missing, corrupt
     * or locked image is reported the same way. */
    QedImage *img = open_image(filename, fmt, true);
    if (!img) {
        return 1;
    }
    probe_warning_print(img, filename);
    QedImage *src = src_file ? open_image(src_file, src_fmt, false) : NULL;
    if (!src_file || src) {
        report_action(first_action, filename, bitmap, granularity);
    }
    qed_close(src, NULL);
    qed_close(img, NULL);
    return 1;
}

const ImgCommand img_bitmap_command = {
    .name = "bitmap",
    .run = img_bitmap,
    .synopsis = "(--merge source | --add | --remove | --clear | --enable | --disable)... "
                "[-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] "
                "[--image-opts | -f fmt] filename bitmap",
    .summary = "Persistent dirty bitmaps (QED and raw images have none).",
    .help = "QED and raw images cannot store persistent dirty bitmaps (QEMU keeps them\n"
            "only in qcow2 images). This command takes the syntax of qemu-img bitmap,\n"
            "checks its arguments as qemu-img 7.2 does, and answers as qemu-img answers\n"
            "for QED and raw images: --add fails with \"Operation not supported\", the\n"
            "other actions find no bitmap. Actions run in the order given; the first\n"
            "fails, so the exit status is always 1.\n"
            "\n"
            "Options:\n"
            "  --add                add the bitmap (not supported)\n"
            "  --remove, --clear, --enable, --disable\n"
            "                       change the bitmap (there is none)\n"
            "  --merge source       merge bitmap SOURCE into it (there is none)\n"
            "  -b, --source-file=source_file\n"
            "                       with --merge: the image SOURCE is in\n"
            "  -F, --source-format=source_fmt\n"
            "                       the format of source_file\n"
            "  -g, --granularity=granularity\n"
            "                       with --add: the bitmap's granularity\n"
            "  -f fmt               the format of the image, 'qed' or 'raw'; probed when\n"
            "                       omitted\n"
            "  --object objectdef   refused: qed-img has no QEMU objects\n"
            "  --image-opts         refused: name the image file instead\n"
            "  -h, --help           display this help and exit\n"
            "\n"
            "Exit status: 1 (no action can succeed on a QED or raw image).\n"
            "\n"
            "Examples (each fails, as with qemu-img):\n"
            "  qed-img bitmap --add -g 64k disk.qed b0\n"
            "  qed-img bitmap --merge b1 -b other.qed -F qed disk.qed b0\n",
};
