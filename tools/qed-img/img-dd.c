/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img dd: copies a range of an image into a new qed or raw image, block by
 * block, with the operands (bs=, count=, skip=, if=, of=), messages and
 * results of `qemu-img dd`, quirks included: the output is always created
 * anew, every block is written (zeros too), and with count= the size is
 * count blocks less the skipped ones, as qemu-img computes it.
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qed.h>

#include "units.h"

typedef struct DdArgs {
    const char *in, *out;
    uint64_t bs, count, skip;
    bool has_count, has_skip;
} DdArgs;

/* A number of bs=, count= or skip= between min and max, with qemu-img's
 * messages; false after one. */
static bool parse_number(const char *name, const char *arg, uint64_t min, uint64_t max,
                         uint64_t *value)
{
    int ret = units_parse_size(arg, 'B', value);
    if (ret < 0 && ret != -ERANGE) {
        img_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", name);
        img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return false;
    }
    if (ret == -ERANGE || *value < min || *value > max) {
        img_error("Invalid %s specified. Must be between %" PRIu64 " and %" PRIu64 ".", name, min,
                  max);
        return false;
    }
    return true;
}

static bool parse_operand(const char *arg, DdArgs *dd)
{
    const char *eq = strchr(arg, '=');
    g_autofree char *name = eq ? g_strndup(arg, (size_t)(eq - arg)) : g_strdup(arg);
    const char *value = eq ? eq + 1 : "";

    if (strcmp(name, "bs") == 0) {
        return parse_number("bs", value, 1, INT32_MAX, &dd->bs);
    } else if (strcmp(name, "count") == 0) {
        dd->has_count = true;
        return parse_number("count", value, 0, INT64_MAX, &dd->count);
    } else if (strcmp(name, "skip") == 0) {
        dd->has_skip = true;
        return parse_number("skip", value, 0, INT64_MAX, &dd->skip);
    } else if (strcmp(name, "if") == 0) {
        dd->in = value;
        return true;
    } else if (strcmp(name, "of") == 0) {
        dd->out = value;
        return true;
    }
    img_error("unrecognized operand %s", name);
    return false;
}

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
};

static int img_dd(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *out_fmt = "raw";
    bool force_share = false;
    DdArgs dd = { .bs = 512 };
    int c;

    while ((c = img_getopt(&img_dd_command, argc, argv, ":hf:O:U", long_options)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            img_refuse_image_opts();
        }
    }
    for (int i = optind; i < argc; i++) {
        if (!parse_operand(argv[i], &dd)) {
            return 1;
        }
    }
    if (!dd.in || !dd.out) {
        img_error("Must specify both input and output files");
        return 1;
    }

    QedOpenOptions iopts = {
        .format = fmt,
        .flags = QED_OPEN_READ_ONLY | (force_share ? QED_OPEN_FORCE_SHARE : 0),
    };
    GError *err = NULL;
    QedImage *in = tool_open(dd.in, &iopts, &err);
    if (!in) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    int status = 1;
    QedImage *out = NULL;
    uint8_t *buf = NULL;
    g_autoptr(ImgOpts) opts = NULL;
    const ImgOptDesc *desc = img_create_options(out_fmt);
    if (!desc) {
        img_error("Unknown file format");
        goto done;
    }

    /* count limits the input first; the skipped blocks come off that */
    uint64_t size = qed_get_size(in);
    if (dd.has_count && dd.count <= INT64_MAX / dd.bs && dd.count * dd.bs < size) {
        size = dd.count * dd.bs;
    }
    bool skip_past = dd.has_skip && (dd.skip > INT64_MAX / dd.bs || size < dd.skip * dd.bs);
    uint64_t in_pos = skip_past ? size : (dd.has_skip ? dd.skip * dd.bs : 0);
    opts = img_opts_parse(desc, NULL, &err);
    img_opts_set_size(opts, "size", size - in_pos);
    if (img_create_with_options(dd.out, out_fmt, opts, QED_LOCKING_AUTO, &err) < 0) {
        img_error("%s: error while creating output image: %s", dd.out, err->message);
        g_clear_error(&err);
        goto done;
    }
    QedOpenOptions oopts = { .format = out_fmt, .flags = QED_OPEN_NO_FLUSH };
    out = tool_open(dd.out, &oopts, &err);
    if (!out) {
        img_error("%s", err->message);
        g_clear_error(&err);
        goto done;
    }
    if (skip_past) {
        /* like dd(1): an empty output, and a word about it */
        img_error("%s: cannot skip to specified offset", dd.in);
    }
    buf = g_try_malloc(dd.bs);
    if (!buf) {
        img_error("Not enough memory for a block of %" PRIu64 " bytes", dd.bs);
        goto done;
    }
    for (uint64_t out_pos = 0; in_pos < size;) {
        size_t n = (size_t)MIN(dd.bs, size - in_pos);
        if (qed_pread(in, buf, n, in_pos, &err) < 0) {
            img_error("error while reading from input image file: %s", g_strerror(err->code));
            g_clear_error(&err);
            goto done;
        }
        in_pos += n;
        if (qed_pwrite(out, buf, n, out_pos, 0, &err) < 0) {
            img_error("error while writing to output image file: %s", g_strerror(err->code));
            g_clear_error(&err);
            goto done;
        }
        out_pos += n;
    }
    status = 0;
done:
    g_free(buf);
    if (out && qed_close(out, &err) < 0 && status == 0) {
        img_error("%s", err->message);
        status = 1;
    }
    g_clear_error(&err);
    qed_close(in, NULL);
    return status;
}

const ImgCommand img_dd_command = {
    .name = "dd",
    .run = img_dd,
    .synopsis = "[--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] "
                "[skip=blocks] if=input of=output",
    .summary = "Copy a range of an image into a new image, as dd does.",
    .help = "Copy INPUT into the new image OUTPUT (replacing any file of that name) block by\n"
            "block, like qemu-img dd: the same operands, messages and results. Every block\n"
            "is written, zeros too, so the output is fully allocated.\n"
            "\n"
            "Operands:\n"
            "  bs=block_size   bytes per block, 1 to 2147483647 (default 512); a suffix\n"
            "                  k, M, G... may follow\n"
            "  count=blocks    copy only the first COUNT blocks of the input; the skipped\n"
            "                  blocks are taken off those, as in qemu-img\n"
            "  skip=blocks     start copying SKIP blocks into the input; past its end the\n"
            "                  output is empty (with a message, exit status 0)\n"
            "  if=input        the image to read\n"
            "  of=output       the image to write\n"
            "\n"
            "Options:\n"
            "  -f fmt          the format of INPUT, 'qed' or 'raw' (else probed)\n"
            "  -O output_fmt   the format of OUTPUT, 'raw' (the default) or 'qed'\n"
            "  -U              open INPUT without locking out its writers\n"
            "  -h, --help      display this help and exit\n"
            "\n"
            "Exit status: 0 when the copy is complete, 1 on any error.\n"
            "\n"
            "Examples:\n"
            "  qed-img dd -O qed bs=1M count=16 if=disk.raw of=head.qed\n"
            "  qed-img dd bs=64k count=4 skip=2 if=disk.qed of=part.raw\n",
};
