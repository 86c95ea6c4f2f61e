/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img map: the allocation map of an image through its backing chain,
 * with the ranges, depth, flags and offsets of `qemu-img map`, in its human
 * and JSON layouts. How one range is described is img-status.c's job;
 * neighbouring ranges whose every field agrees (and whose offsets follow
 * on) are merged here, as qemu-img does.
 */
#include "names.h"
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#include "units.h"

static bool entry_mergeable(const MapEntry *curr, const MapEntry *next)
{
    if (curr->length == 0 || curr->zero != next->zero || curr->data != next->data ||
        curr->depth != next->depth || curr->present != next->present ||
        curr->has_offset != next->has_offset) {
        return false;
    }
    if (curr->has_offset && (strcmp(curr->filename, next->filename) != 0 ||
                             curr->offset + curr->length != next->offset)) {
        return false;
    }
    return true;
}

/* Prints e (next is the entry after it, or NULL for the last). */
static void dump_entry(bool json, const MapEntry *e, MapEntry *next)
{
    if (!json) {
        if (e->data && !e->zero) {
            /* The file as qemu-img names it (an NBD export respelt). */
            g_autofree char *file = e->has_offset ? tool_display_name(e->filename) : g_strdup("");
            printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", (uint64_t)e->start,
                   (uint64_t)e->length, e->has_offset ? (uint64_t)e->offset : 0, file);
        }
        /* The human layout does not tell zero from unallocated: such
         * neighbours may merge (as in qemu-img). */
        if (next && (!next->data || next->zero)) {
            next->data = false;
            next->zero = true;
        }
        return;
    }
    printf("{ \"start\": %" PRId64 ", \"length\": %" PRId64 ", \"depth\": %" PRId64
           ", \"present\": %s, \"zero\": %s, \"data\": %s",
           e->start, e->length, e->depth, e->present ? "true" : "false",
           e->zero ? "true" : "false", e->data ? "true" : "false");
    if (e->has_offset) {
        printf(", \"offset\": %" PRId64, e->offset);
    }
    putchar('}');
    if (next) {
        puts(",");
    }
}

/* A --start-offset or --max-length value, as qemu-img's cvtnum reads it. */
static bool parse_offset(const char *what, const char *arg, int64_t *value)
{
    uint64_t v;
    int ret = units_parse_size(arg, 'B', &v);
    if (ret == 0 && v > INT64_MAX) {
        ret = -ERANGE;
    }
    if (ret == -ERANGE) {
        img_error("Invalid %s specified. Must be between 0 and %" PRId64 ".", what, INT64_MAX);
        return false;
    }
    if (ret < 0) {
        img_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", what);
        img_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return false;
    }
    *value = (int64_t)v;
    return true;
}

enum {
    OPTION_OUTPUT = 256,
    OPTION_OBJECT,
    OPTION_IMAGE_OPTS,
    OPTION_START_OFFSET,
    OPTION_MAX_LENGTH,
};

static int img_map(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "start-offset", required_argument, NULL, OPTION_START_OFFSET },
        { "max-length", required_argument, NULL, OPTION_MAX_LENGTH },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    const char *output = NULL;
    bool force_share = false;
    bool image_opts = false;
    int64_t start_offset = 0;
    int64_t max_length = -1;
    int c;

    while ((c = img_getopt(&img_map_command, argc, argv, ":f:hU", long_options)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OUTPUT:
            output = optarg;
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_START_OFFSET:
            if (!parse_offset("start offset", optarg, &start_offset)) {
                return 1;
            }
            break;
        case OPTION_MAX_LENGTH:
            if (!parse_offset("max length", optarg, &max_length)) {
                return 1;
            }
            break;
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    const char *filename = argv[optind];
    bool json;
    if (!img_parse_output(output, &json)) {
        return 1;
    }
    if (image_opts) {
        img_refuse_image_opts();
    }

    QedOpenOptions oopts = {
        .format = fmt,
        .flags = QED_OPEN_READ_ONLY | (force_share ? QED_OPEN_FORCE_SHARE : 0),
    };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }

    if (json) {
        printf("[");
    } else {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
    }
    int64_t length = (int64_t)qed_get_size(img);
    if (max_length != -1) {
        /* (Wraps as in qemu-img when the sum passes 2^63.) */
        length = MIN((int64_t)((uint64_t)start_offset + (uint64_t)max_length), length);
    }
    MapEntry curr = { .start = start_offset }, next;
    int ret = 0;
    while (curr.start + curr.length < length) {
        int64_t offset = curr.start + curr.length;
        ret = img_map_status(img, offset, length - offset, &next, &err);
        if (ret < 0) {
            img_error("Could not read file metadata: %s", g_strerror(-ret));
            g_clear_error(&err);
            break;
        }
        if (entry_mergeable(&curr, &next)) {
            curr.length += next.length;
            continue;
        }
        if (curr.length > 0) {
            dump_entry(json, &curr, &next);
        }
        curr = next;
    }
    if (ret == 0) {
        dump_entry(json, &curr, NULL);
        if (json) {
            puts("]");
        }
    }
    qed_close(img, NULL);
    return ret < 0 ? 1 : 0;
}

const ImgCommand img_map_command = {
    .name = "map",
    .run = img_map,
    .synopsis = "[--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] "
                "[--max-length=len] [--output=ofmt] [-U] filename",
    .summary = "Show how the virtual disk maps to the image files.",
    .help = "Print the allocation map of the disk image FILENAME and its backing chain as\n"
            "qemu-img map does, range by range, with the same merging, offsets and\n"
            "words. The image and its backing files are opened read-only.\n"
            "\n"
            "The human layout lists the ranges that hold data, with the offset in the\n"
            "file and the name of the file that holds them; ranges that read as zeros\n"
            "are left out. The JSON layout lists every range with:\n"
            "  start, length  the virtual range, in bytes\n"
            "  depth          how far down the backing chain the range was found (0: in\n"
            "                 FILENAME itself)\n"
            "  present        some image of the chain holds it (false: nothing does,\n"
            "                 and it reads as zeros)\n"
            "  zero           it reads as zeros (a QED zero cluster, a hole of a raw file,\n"
            "                 or nothing)\n"
            "  data           it is stored as data\n"
            "  offset         where it lies in its file (data clusters, and raw files)\n"
            "\n"
            "Options:\n"
            "  -f, --format=fmt     the format of the image, 'qed' or 'raw'; probed when\n"
            "                       omitted\n"
            "  --start-offset=offset\n"
            "                       start the map at this virtual offset (default 0)\n"
            "  --max-length=len     map at most this many bytes\n"
            "  --output=ofmt        'human' (the default) or 'json'\n"
            "  -U, --force-share    let other programs write the image meanwhile\n"
            "  --object objectdef   refused: qed-img has no QEMU objects\n"
            "  --image-opts         refused: name the image file instead\n"
            "  -h, --help           display this help and exit\n"
            "\n"
            "Exit status: 0 on success, 1 on any error.\n"
            "\n"
            "Examples:\n"
            "  qed-img map overlay.qed\n"
            "  qed-img map --output=json --start-offset=512k --max-length=64k overlay.qed\n",
};
