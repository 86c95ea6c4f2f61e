/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img measure: the size of the file that a convert to qed or raw writes
 * (required) and that a fully allocated image takes, with the options,
 * messages and output (human or JSON) of `qemu-img measure`.
 *
 * Design notes: a QED file that convert writes holds the header cluster, the
 * L1 table, one L2 table for each L1 entry with a data cluster under it, and
 * a cluster for each cluster of the disk that holds data in the source's
 * flattened chain (convert leaves zeros out, so it may write less). A raw
 * file is as long as the disk, holes or not.
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#include "units.h"

typedef struct Geometry {
    uint64_t cluster_size;
    uint64_t table_size; /* clusters per table */
} Geometry;

/* The clusters of a QED file with data in nclusters clusters under ntables
 * L2 tables. */
static uint64_t qed_file_size(const Geometry *g, uint64_t nclusters, uint64_t ntables)
{
    return (1 + g->table_size + ntables * g->table_size + nclusters) * g->cluster_size;
}

/* Counts the clusters and L2 tables of a QED target that the data of the
 * flattened chain of img needs. */
static int count_data(QedImage *img, const Geometry *g, uint64_t *nclusters, uint64_t *ntables,
                      GError **errp)
{
    uint64_t size = qed_get_size(img);
    uint64_t per_table = g->cluster_size / 8 * g->table_size * g->cluster_size;
    uint64_t last_cluster = UINT64_MAX, last_table = UINT64_MAX;

    *nclusters = *ntables = 0;
    for (uint64_t pos = 0; pos < size;) {
        QedImage *layer = img;
        uint64_t len = size - pos;
        bool data = false;
        for (;;) {
            QedExtent ext;
            int ret = qed_block_status(layer, len, pos, &ext, errp);
            if (ret < 0) {
                return ret;
            }
            len = MIN(len, ext.length);
            if (ext.type != QED_EXTENT_UNALLOCATED) {
                data = ext.type == QED_EXTENT_DATA;
                break;
            }
            QedImage *backing = qed_get_backing(layer);
            if (!backing || pos >= qed_get_size(backing)) {
                break;
            }
            len = MIN(len, qed_get_size(backing) - pos);
            layer = backing;
        }
        if (data) {
            /* runs come in order: count each cluster and table once */
            uint64_t first = pos / g->cluster_size, last = (pos + len - 1) / g->cluster_size;
            *nclusters += last - first + 1 - (first == last_cluster);
            last_cluster = last;
            uint64_t tfirst = pos / per_table, tlast = (pos + len - 1) / per_table;
            *ntables += tlast - tfirst + 1 - (tfirst == last_table);
            last_table = tlast;
        }
        pos += len;
    }
    return 0;
}

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_OUTPUT,
    OPTION_SIZE,
};

static int img_measure(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "size", required_argument, NULL, OPTION_SIZE },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *out_fmt = "raw", *output = NULL, *snapshot = NULL;
    g_autofree char *options = NULL;
    bool force_share = false, image_opts = false, has_size = false;
    uint64_t size = 0;
    int c;

    while ((c = img_getopt(&img_measure_command, argc, argv, ":hf:O:o:l:U", long_options)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'O':
            out_fmt = optarg;
            break;
        case 'o':
            if (!img_opts_accumulate(&options, optarg)) {
                return 1;
            }
            break;
        case 'l':
            snapshot = optarg;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_OUTPUT:
            output = optarg;
            break;
        case OPTION_SIZE: {
            int ret = units_parse_size(optarg, 'B', &size);
            if (ret < 0 && ret != -ERANGE) {
                img_error("Invalid image size specified. You may use "
                          "k, M, G, T, P or E suffixes for");
                img_error("kilobytes, megabytes, gigabytes, terabytes, "
                          "petabytes and exabytes.");
                return 1;
            }
            if (ret == -ERANGE || size > INT64_MAX) {
                img_error("Invalid image size specified. Must be between 0 and %" PRId64 ".",
                          INT64_MAX);
                return 1;
            }
            has_size = true;
            break;
        }
        }
    }
    bool json;
    if (!img_parse_output(output, &json)) {
        return 1;
    }
    if (argc - optind > 1) {
        img_error("At most one filename argument is allowed.");
        return 1;
    }
    const char *filename = argc - optind == 1 ? argv[optind] : NULL;
    if (!filename && (image_opts || fmt || snapshot)) {
        img_error("--image-opts, -f, and -l require a filename argument.");
        return 1;
    }
    if (filename && has_size) {
        img_error("--size N cannot be used together with a filename.");
        return 1;
    }
    if (!filename && !has_size) {
        img_error("Either --size N or one filename must be specified.");
        return 1;
    }
    if (image_opts) {
        img_refuse_image_opts();
    }

    QedImage *img = NULL;
    if (filename) {
        QedOpenOptions oopts = {
            .format = fmt,
            .flags = QED_OPEN_READ_ONLY | (force_share ? QED_OPEN_FORCE_SHARE : 0),
        };
        GError *err = NULL;
        img = tool_open(filename, &oopts, &err);
        if (!img) {
            img_error("%s", err->message);
            g_error_free(err);
            return 1;
        }
        if (snapshot) {
            QedInfo info;
            qed_get_info(img, &info, NULL);
            img_error("Failed to load snapshot: Block format '%s' used by device '' does not "
                      "support temporarily loading internal snapshots",
                      strcmp(info.format, "raw") == 0 ? "file" : info.format);
            qed_close(img, NULL);
            return 1;
        }
        size = qed_get_size(img);
    }

    int status = 1;
    const ImgOptDesc *desc = img_create_options(out_fmt);
    GError *err = NULL;
    g_autoptr(ImgOpts) opts = NULL;
    uint64_t required = 0, full = 0;
    if (!desc) {
        img_error("Unknown file format '%s'", out_fmt);
        goto out;
    }
    opts = img_opts_parse(desc, options, &err);
    if (!opts) {
        img_error("%s", err->message);
        img_error("Invalid options for file format '%s'", out_fmt);
        g_clear_error(&err);
        goto out;
    }
    size = (size + 511) / 512 * 512;
    if (strcmp(out_fmt, "raw") == 0) {
        required = full = size;
    } else {
        Geometry g = {
            .cluster_size = img_opts_get_size(opts, "cluster_size", QED_DEFAULT_CLUSTER_SIZE),
            .table_size = img_opts_get_size(opts, "table_size", QED_DEFAULT_TABLE_SIZE),
        };
        if (g.cluster_size < QED_MIN_CLUSTER_SIZE || g.cluster_size > QED_MAX_CLUSTER_SIZE ||
            (g.cluster_size & (g.cluster_size - 1)) != 0) {
            img_error("QED cluster size must be within range [%u, %u] and power of 2",
                      QED_MIN_CLUSTER_SIZE, QED_MAX_CLUSTER_SIZE);
            goto out;
        }
        if (g.table_size < QED_MIN_TABLE_SIZE || g.table_size > QED_MAX_TABLE_SIZE ||
            (g.table_size & (g.table_size - 1)) != 0) {
            img_error("QED table size must be within range [%u, %u] and power of 2",
                      QED_MIN_TABLE_SIZE, QED_MAX_TABLE_SIZE);
            goto out;
        }
        uint64_t per_table = g.cluster_size / 8 * g.table_size * g.cluster_size;
        uint64_t nclusters = 0, ntables = 0;
        if (img && count_data(img, &g, &nclusters, &ntables, &err) < 0) {
            img_error("%s", err->message);
            g_clear_error(&err);
            goto out;
        }
        required = qed_file_size(&g, nclusters, ntables);
        full = qed_file_size(&g, (size + g.cluster_size - 1) / g.cluster_size,
                             (size + per_table - 1) / per_table);
    }

    if (json) {
        g_autoptr(ImgJson) obj = img_json_object();
        img_json_add_int(obj, "required", (int64_t)required);
        img_json_add_int(obj, "fully-allocated", (int64_t)full);
        g_autofree char *text = img_json_to_string(obj);
        printf("%s\n", text);
    } else {
        printf("required size: %" PRIu64 "\nfully allocated size: %" PRIu64 "\n", required, full);
    }
    status = 0;
out:
    qed_close(img, NULL);
    return status;
}

const ImgCommand img_measure_command = {
    .name = "measure",
    .run = img_measure,
    .synopsis = "[--output=ofmt] [-O output_fmt] [-o options] (--size N | [--object objectdef] "
                "[--image-opts] [-f fmt] [-l snapshot_param] filename)",
    .summary = "Tell how large a converted image will be.",
    .help = "Print the size of the file that 'qed-img convert -O OUTPUT_FMT' writes for\n"
            "FILENAME (\"required size\"), and the size of a fully allocated image of the\n"
            "same virtual size, like qemu-img measure. With --size N, for a new image of N\n"
            "bytes: the required size is then that of an empty image.\n"
            "\n"
            "For qed, the required size counts the header, the L1 table, an L2 table for\n"
            "each one that covers data and a cluster for each cluster that holds data in\n"
            "the flattened backing chain of FILENAME; convert writes no more (less when\n"
            "data clusters hold only zeros). A raw image takes its virtual size in both.\n"
            "qemu-img measures no qed image ('does not support size measurement').\n"
            "\n"
            "Options:\n"
            "  -O output_fmt    the format to measure for: 'raw' (the default) or 'qed'\n"
            "  -o options       the -o options of the image, as for create (cluster_size\n"
            "                   and table_size change what a qed image takes)\n"
            "  --size N         measure a new image of N bytes instead of a file\n"
            "  -f fmt           the format of FILENAME, 'qed' or 'raw' (else probed)\n"
            "  -U               open FILENAME without locking out its writers\n"
            "  --output=ofmt    'human' (the default) or 'json'\n"
            "  -h, --help       display this help and exit\n"
            "Refused: -l (QED and raw have no internal snapshots), --image-opts, --object.\n"
            "\n"
            "Exit status: 0 when the sizes were printed, 1 on any error.\n"
            "\n"
            "Examples:\n"
            "  qed-img measure -O qed --size 10G\n"
            "  qed-img measure -O qed -o cluster_size=1M --output=json disk.raw\n",
};
