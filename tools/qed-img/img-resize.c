/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img resize: changes the virtual size of an image, with the options,
 * messages and exit status of `qemu-img resize`; unlike QEMU it also shrinks
 * QED images (with --shrink), freeing what lies past the new end.
 */
#include "open.h"
#include "qed-img.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#include "probe-warning.h"

/* The largest length QEMU's block layer takes (BDRV_MAX_LENGTH: INT64_MAX
 * rounded down to its largest request alignment). */
#define IMG_MAX_LENGTH 9223372035781033984ll

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_PREALLOCATION,
    OPTION_SHRINK,
};

/* Parses the size argument as qemu-img parses its "size" option. */
static bool parse_size(const char *arg, uint64_t *size)
{
    static const ImgOptDesc desc[] = {
        { "size", IMG_OPT_SIZE, "Virtual disk size", NULL, false },
        { NULL, 0, NULL, NULL, false },
    };
    /* One option whose value may hold a comma: doubled, it stays literal. */
    g_auto(GStrv) parts = g_strsplit(arg, ",", -1);
    g_autofree char *escaped = g_strjoinv(",,", parts);
    g_autofree char *list = g_strdup_printf("size=%s", escaped);
    GError *err = NULL;
    g_autoptr(ImgOpts) opts = img_opts_parse(desc, list, &err);
    if (!opts) {
        img_error("%s", err->message);
        g_error_free(err);
        return false;
    }
    *size = img_opts_get_size(opts, "size", 0);
    return true;
}

static int img_resize(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "preallocation", required_argument, NULL, OPTION_PREALLOCATION },
        { "shrink", no_argument, NULL, OPTION_SHRINK },
        { NULL, 0, NULL, 0 },
    };
    static const char *const prealloc_modes[] = { "off", "metadata", "falloc", "full" };
    const char *fmt = NULL;
    const char *prealloc = "off";
    bool quiet = false;
    bool shrink = false;
    bool image_opts = false;
    int c;

    /* The size is the last argument, taken before the options so that a
     * negative size is not read as one (as qemu-img). */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            img_command_help(&img_resize_command);
        }
    }
    if (argc < 3) {
        img_error_exit("Not enough arguments");
    }
    const char *size_arg = argv[--argc];

    while ((c = img_getopt(&img_resize_command, argc, argv, ":f:hq", long_options)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_PREALLOCATION: {
            bool known = false;
            for (size_t i = 0; i < G_N_ELEMENTS(prealloc_modes); i++) {
                known |= strcmp(optarg, prealloc_modes[i]) == 0;
            }
            if (!known) {
                img_error("Invalid preallocation mode '%s'", optarg);
                return 1;
            }
            prealloc = optarg;
            break;
        }
        case OPTION_SHRINK:
            shrink = true;
            break;
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting image file name and size");
    }
    const char *filename = argv[optind];

    /* "+N" grows by N, "-N" shrinks by N, "N" sets the size. */
    int relative = 0;
    if (size_arg[0] == '+' || size_arg[0] == '-') {
        relative = size_arg[0] == '+' ? 1 : -1;
        size_arg++;
    }
    uint64_t n;
    if (!parse_size(size_arg, &n)) {
        return 1;
    }
    if (image_opts) {
        img_refuse_image_opts();
    }

    QedOpenOptions oopts = { .format = fmt };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    probe_warning_print(img, filename);

    /* In signed 64-bit arithmetic, as qemu-img: a size of 2^63 or more
     * comes out negative. */
    int64_t current = (int64_t)qed_get_size(img);
    int64_t total = relative ? (int64_t)((uint64_t)current + n * (uint64_t)(int64_t)relative)
                             : (int64_t)n;
    int ret = 0;
    if (total <= 0) {
        img_error("New image size must be positive");
        ret = -1;
    } else if (total <= current && strcmp(prealloc, "off") != 0) {
        img_error("Preallocation can only be used for growing images");
        ret = -1;
    } else if (total < current && !shrink) {
        img_error("Use the --shrink option to perform a shrink operation.");
        img_error("warning: Shrinking an image will delete all data beyond the shrunken "
                  "image's end. Before performing such an operation, make sure there is "
                  "no important data there.");
        ret = -1;
    } else if (total > IMG_MAX_LENGTH) {
        img_error("offset(%" PRId64 ") exceeds maximum(%lld)", total, IMG_MAX_LENGTH);
        ret = -1;
    } else if (total != current || strcmp(prealloc, "off") != 0) {
        ret = qed_resize_preallocate(img, (uint64_t)total, prealloc, &err);
        if (ret < 0) {
            img_error("%s", err->message);
            g_clear_error(&err);
        }
    }
    if (ret == 0 && !quiet) {
        printf("Image resized.\n");
    }
    if (qed_close(img, &err) < 0) {
        img_error("%s", err->message);
        g_error_free(err);
        ret = -1;
    }
    return ret < 0 ? 1 : 0;
}

const ImgCommand img_resize_command = {
    .name = "resize",
    .run = img_resize,
    .synopsis = "[--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] "
                "[--shrink] filename [+ | -]size",
    .summary = "Grow or shrink the virtual size of an image.",
    .help = "Change the virtual size of the disk image FILENAME as qemu-img resize does,\n"
            "with the same messages and exit status. SIZE sets the new size; +SIZE grows\n"
            "the image by SIZE and -SIZE shrinks it by SIZE (a negative size may follow\n"
            "'--', or stand alone: the size is always the last argument). A QED size\n"
            "must be a multiple of 512 bytes and at most what the image's tables can\n"
            "map (cluster_size * (table_size * cluster_size / 8)^2, 64 TiB for the\n"
            "defaults); a raw file takes any size.\n"
            "\n"
            "Shrinking needs --shrink and deletes everything past the new end. Unlike\n"
            "qemu-img, qed-img shrinks QED images: the data clusters and L2 tables past\n"
            "the new end are freed, the clusters still in use are moved down into the\n"
            "freed space and the file is cut after them, so that the image checks clean\n"
            "without leaks and a later grow reads zeros there. An interruption (a crash,\n"
            "a power loss) at any point leaves the image consistent, with leaked\n"
            "clusters at worst, and every byte inside the new size unchanged.\n"
            "\n"
            "Options:\n"
            "  -f, --format=fmt     the format of the image, 'qed' or 'raw'; probed when\n"
            "                       omitted\n"
            "  --preallocation=prealloc\n"
            "                       how the grown part of a raw file is allocated: 'off'\n"
            "                       (the default, sparse), 'falloc' (space reserved),\n"
            "                       'full' (zeros written); a QED image takes only 'off'\n"
            "  --shrink             allow the new size to be smaller than the current one\n"
            "  -q                   quiet: print nothing but errors\n"
            "  --object objectdef   refused: qed-img has no QEMU objects\n"
            "  --image-opts         refused: name the image file instead\n"
            "  -h, --help           display this help and exit\n"
            "\n"
            "Exit status: 0 when the image has the new size, 1 on any error (an error\n"
            "in the arguments or the sizes leaves the image unchanged).\n"
            "\n"
            "Examples:\n"
            "  qed-img resize disk.qed 20G\n"
            "  qed-img resize disk.qed +1G\n"
            "  qed-img resize --shrink disk.qed -- -512M\n"
            "  qed-img resize -f raw --preallocation=falloc base.raw 4M\n",
};
