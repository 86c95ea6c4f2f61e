/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img amend: changes the options of an existing image in place, with
 * the syntax, messages and exit status of `qemu-img amend`. QEMU's QED
 * driver amends nothing; here the backing file name and format can change
 * (the header is rewritten as by `rebase -u`), and every option that only
 * creation can set is refused with qemu-img's words.
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#include "probe-warning.h"

/* What QED can change in place. */
static const ImgOptDesc amend_options[] = {
    { "backing_file", IMG_OPT_STRING, "File name of a base image", NULL, false },
    { "backing_fmt", IMG_OPT_STRING, "Image format of the base image", NULL, false },
    { NULL, 0, NULL, NULL, false },
};

/* Every option of a QED image: the ones of creation are named in the error. */
static const ImgOptDesc qed_options[] = {
    { "backing_file", IMG_OPT_STRING, "File name of a base image", NULL, false },
    { "backing_fmt", IMG_OPT_STRING, "Image format of the base image", NULL, false },
    { "size", IMG_OPT_SIZE, "Virtual disk size", NULL, false },
    { "cluster_size", IMG_OPT_SIZE, "Cluster size (in bytes)", NULL, false },
    { "table_size", IMG_OPT_SIZE, "L1/L2 table size (in clusters)", NULL, false },
    { NULL, 0, NULL, NULL, false },
};

static int unsupported_format(const char *format)
{
    img_error("Format driver '%s' does not support option amendment", format);
    return 1;
}

/* Applies options to the open QED image img. Returns the exit status. */
static int amend(QedImage *img, const QedInfo *info, const char *options)
{
    GError *err = NULL;
    g_autoptr(ImgOpts) opts = img_opts_parse(qed_options, options, &err);
    if (!opts) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    for (const ImgOptDesc *d = qed_options; d->name; d++) {
        if (img_opts_is_set(opts, d->name) && strncmp(d->name, "backing_", 8) != 0) {
            img_error("Invalid parameter '%s'\nThis option is only supported for image "
                      "creation",
                      d->name);
            return 1;
        }
    }
    const char *name = img_opts_get(opts, "backing_file");
    const char *fmt = img_opts_get(opts, "backing_fmt");
    if (!name && !fmt) {
        return 0;
    }
    if (fmt && strcmp(fmt, "qed") != 0 && strcmp(fmt, "raw") != 0) {
        img_error("Invalid format name: '%s'", fmt);
        return 1;
    }
    if (!name) {
        /* backing_fmt alone: the stored name with the new format. */
        if (!info->backing_file) {
            img_error("Cannot set backing_fmt: '%s' has no backing file", info->filename);
            return 1;
        }
        name = info->backing_file;
    } else if (name[0] && !fmt) {
        img_error("Could not change the backing file to '%s': backing format must be "
                  "specified",
                  name);
        return 1;
    }
    uint32_t max = qed_get_backing_name_max(img);
    if (strlen(name) > max) {
        img_error("Could not change the backing file to '%s': No space left in the file "
                  "header (the name is %zu bytes; '%s' holds at most %u)",
                  name, strlen(name), info->filename, max);
        return 1;
    }
    img_progress_print(0, 100);
    if (qed_change_backing_file(img, name, fmt, &err) < 0) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    return 0;
}

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_FORCE,
    OPTION_LOCKING,
};

static int img_amend(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force", no_argument, NULL, OPTION_FORCE },
        { "locking", required_argument, NULL, OPTION_LOCKING },
        { NULL, 0, NULL, 0 },
    };
    g_autofree char *options = NULL;
    const char *fmt = NULL;
    const char *cache = "writeback";
    bool quiet = false, progress = false;
    QedLocking locking = QED_LOCKING_AUTO;
    int c;

    while ((c = img_getopt(&img_amend_command, argc, argv, ":ho:f:t:pq", long_options)) != -1) {
        switch (c) {
        case 'o':
            if (!img_opts_accumulate(&options, optarg)) {
                return 1;
            }
            break;
        case 'f':
            fmt = optarg;
            break;
        case 't':
            cache = optarg;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case OPTION_FORCE:
            break; /* for qcow2's risky amendments; QED has none */
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
    if (!options) {
        img_error_exit("Must specify options (-o)");
    }
    if (quiet) {
        progress = false;
    }
    bool help = img_opts_wants_help(options);
    const char *filename = optind == argc - 1 ? argv[optind] : NULL;
    if (help && !filename && fmt) {
        /* As qemu-img: the options of a named format need no image. */
        if (strcmp(fmt, "qed") != 0) {
            return unsupported_format(fmt);
        }
        printf("Amend options for 'qed':\n");
        img_opts_print_help(amend_options, false);
        return 0;
    }
    if (!filename) {
        img_error("Expecting one image file name"); /* (without the --help hint) */
        return 1;
    }
    unsigned cache_flags;
    if (!img_parse_cache(cache, &cache_flags)) {
        img_error("Invalid cache option: %s", cache);
        return 1;
    }

    QedOpenOptions oopts = { .format = fmt,
                             .flags = cache_flags | QED_OPEN_NO_BACKING,
                             .locking = locking };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    probe_warning_print(img, filename);
    QedInfo info;
    int status = 1;
    if (qed_get_info(img, &info, &err) < 0) {
        img_error("%s", err->message);
        g_clear_error(&err);
    } else if (strcmp(info.format, "qed") != 0) {
        status = unsupported_format(info.format);
    } else if (help) {
        printf("Amend options for 'qed':\n");
        img_opts_print_help(amend_options, false);
        status = 0;
    } else {
        /* As in qemu-img: the first line is drawn once the options are
         * accepted (amend draws it), and the line is ended on every exit. */
        img_progress_init(progress, 1.0);
        status = amend(img, &info, options);
        if (status == 0) {
            img_progress_print(100, 0);
        }
        img_progress_end();
    }
    if (qed_close(img, &err) < 0) {
        img_error("%s", err->message);
        g_clear_error(&err);
        status = 1;
    }
    return status;
}

const ImgCommand img_amend_command = {
    .name = "amend",
    .run = img_amend,
    .synopsis = "[--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] "
                "[--locking=mode] -o options filename",
    .summary = "Change the options of an existing image in place.",
    .help = "Change format options of the image FILENAME in place, as qemu-img amend does.\n"
            "A QED image can change its backing file name and format (backing_file,\n"
            "backing_fmt): the header is rewritten, nothing is copied, and the backing\n"
            "file is not opened (like 'rebase -u'); a crash leaves the old or the new\n"
            "name. QEMU's QED driver amends nothing (\"Format driver 'qed' does not\n"
            "support option amendment\"). The options that only creation sets (size,\n"
            "cluster_size, table_size) are refused with qemu-img's message, and so is\n"
            "every option of a raw image.\n"
            "\n"
            "Options:\n"
            "  -o options   a comma separated list: backing_file=NAME ('' removes the\n"
            "               backing file), backing_fmt=qed|raw (required with a new name;\n"
            "               alone, it changes the format of the stored name); '-o help'\n"
            "               lists them\n"
            "  -f fmt       the format of FILENAME; probed when omitted\n"
            "  -t cache     the cache mode: writeback (default), unsafe, writethrough, none,\n"
            "               off or directsync\n"
            "  -p           show progress\n"
            "  -q           quiet: print nothing but errors\n"
            "  --force      accepted for qemu-img's sake; nothing in QED needs it\n"
            "  --locking=mode  'auto' (the default) locks the image as QEMU does where the\n"
            "               file system allows it, 'on' fails where it does not, 'off' takes\n"
            "               no lock and ignores those of others\n"
            "  --object, --image-opts  refused: qed-img has no objects, and takes file\n"
            "               names and -f only\n"
            "  -h, --help   display this help and exit\n"
            "\n"
            "Exit status: 0 on success, 1 on any error.\n"
            "\n"
            "Examples:\n"
            "  qed-img amend -o backing_file=base.raw,backing_fmt=raw overlay.qed\n"
            "  qed-img amend -o help -f qed\n",
};
