/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img info: describes an image (and with --backing-chain every image
 * under it) in the words and layout of `qemu-img info`, as human-readable
 * text or as JSON.
 */
#include "blk/blk.h"
#include "names.h"
#include "open.h"
#include "qed-img.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <qed.h>

#include "units.h"

/* What qemu-img info reports about one image (QEMU's ImageInfo). */
typedef struct ImageInfo {
    char *filename;
    char *format;
    uint64_t virtual_size;
    uint64_t actual_size;          /* bytes allocated on the host */
    uint32_t cluster_size;         /* 0: not reported */
    bool dirty;                    /* NEED_CHECK is set */
    char *backing_filename;        /* as stored in the image, or NULL */
    char *full_backing_filename;   /* where it is found */
    char *backing_filename_format; /* "raw" when stored, or NULL */
} ImageInfo;

static void image_info_free(gpointer p)
{
    ImageInfo *info = p;
    g_free(info->filename);
    g_free(info->format);
    g_free(info->backing_filename);
    g_free(info->full_backing_filename);
    g_free(info->backing_filename_format);
    g_free(info);
}

/* How the images are opened: -U and --locking. */
typedef struct InfoOpen {
    bool force_share;
    QedLocking locking;
} InfoOpen;

/* Opens one image the way qemu-img info does: read-only, without its
 * backing file (which may be missing or untrusted). Each image of the chain
 * is opened alone, so a writer of a QED backing file stops --backing-chain
 * as it stops qemu-img. */
/* Opens filename, or with referrer the backing file that the image
 * referrer names as filename, by the rules of names in headers. */
static ImageInfo *query_image(const char *referrer, const char *filename, const char *fmt,
                              const InfoOpen *how)
{
    QedOpenOptions oopts = {
        .format = fmt,
        .flags = QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING |
                 (how->force_share ? QED_OPEN_FORCE_SHARE : 0),
        .locking = how->locking,
    };
    GError *err = NULL;
    QedInfo qinfo;

    QedImage *img = referrer ? tool_open_backing(referrer, filename, &oopts, &err)
                             : tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        return NULL;
    }
    if (qed_get_info(img, &qinfo, &err) < 0) {
        img_error("%s", err->message);
        g_error_free(err);
        qed_close(img, NULL);
        return NULL;
    }

    ImageInfo *info = g_new0(ImageInfo, 1);
    info->filename = tool_display_name(qinfo.filename);
    info->format = g_strdup(qinfo.format);
    info->virtual_size = qinfo.virtual_size;
    info->actual_size = qinfo.actual_size;
    info->cluster_size = qinfo.cluster_size;
    info->dirty = qinfo.need_check;
    /* An empty name (BACKING_FILE set, name length 0) shows as no backing
     * file, as in qemu-img. */
    if (qinfo.backing_file && qinfo.backing_file[0]) {
        info->backing_filename = g_strdup(qinfo.backing_file);
        /* An image on an NBD server has no directory: QEMU shows no full
         * name for a relative one, and the chain stops there. */
        bool relative = qinfo.backing_file[0] != '/' && !strchr(qinfo.backing_file, ':');
        if (!(blk_nbd_name(filename) && relative)) {
            info->full_backing_filename = qed_backing_path(info->filename, qinfo.backing_file);
        }
        info->backing_filename_format = g_strdup(qinfo.backing_format);
    }
    qed_close(img, NULL);
    return info;
}

/* True, after reporting the loop, when filename was seen before in this
 * chain, by name (as qemu-img checks) or as the same file under another
 * name (which qemu-img follows until the path gets too long). */
static bool seen_before(GHashTable *seen, const char *filename)
{
    struct stat st;
    char *identity = NULL;

    if (stat(filename, &st) == 0) {
        identity = g_strdup_printf("file %ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    }
    char *name = g_strconcat("name ", filename, NULL);
    bool loop = g_hash_table_contains(seen, name) ||
                (identity && g_hash_table_contains(seen, identity));
    if (loop) {
        img_error("Backing file '%s' creates an infinite loop.", filename);
        g_free(name);
        g_free(identity);
        return true;
    }
    g_hash_table_add(seen, name);
    if (identity) {
        g_hash_table_add(seen, identity);
    }
    return false;
}

/* The image, then (with chain) each backing file in turn. NULL on error. */
static GPtrArray *collect_infos(const char *filename, const char *fmt, bool chain,
                                const InfoOpen *how)
{
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GPtrArray) infos = g_ptr_array_new_with_free_func(image_info_free);
    g_autofree char *next = g_strdup(filename);
    g_autofree char *next_fmt = g_strdup(fmt);
    g_autofree char *referrer = NULL; /* the image that names next */

    while (next) {
        g_autofree char *path = referrer ? qed_backing_path(referrer, next) : g_strdup(next);
        if (seen_before(seen, path)) {
            return NULL;
        }
        ImageInfo *info = query_image(referrer, next, next_fmt, how);
        if (!info) {
            return NULL;
        }
        g_ptr_array_add(infos, info);

        /* The next name is read against where this image was found. */
        g_free(referrer);
        referrer = g_steal_pointer(&path);
        g_clear_pointer(&next, g_free);
        g_clear_pointer(&next_fmt, g_free);
        if (chain && info->backing_filename) {
            next = g_strdup(info->backing_filename);
            next_fmt = g_strdup(info->backing_filename_format);
        }
    }
    return g_steal_pointer(&infos);
}

static void print_human(const ImageInfo *info)
{
    g_autofree char *size = units_size_to_str(info->virtual_size);
    /* An NBD export's storage is the server's: QEMU says "unavailable". */
    g_autofree char *disk = info->actual_size == UINT64_MAX ? g_strdup("unavailable")
                                                            : units_size_to_str(info->actual_size);

    printf("image: %s\n"
           "file format: %s\n"
           "virtual size: %s (%" PRId64 " bytes)\n"
           "disk size: %s\n",
           info->filename, info->format, size, (int64_t)info->virtual_size, disk);
    if (info->cluster_size) {
        printf("cluster_size: %" PRIu32 "\n", info->cluster_size);
    }
    if (info->dirty) {
        printf("cleanly shut down: no\n");
    }
    if (info->backing_filename) {
        printf("backing file: %s", info->backing_filename);
        if (info->full_backing_filename &&
            strcmp(info->backing_filename, info->full_backing_filename) != 0) {
            printf(" (actual path: %s)", info->full_backing_filename);
        }
        printf("\n");
        if (info->backing_filename_format) {
            printf("backing file format: %s\n", info->backing_filename_format);
        }
    }
}

/* Members are added in the order of QEMU's ImageInfo; see img-json.c. */
static ImgJson *info_to_json(const ImageInfo *info)
{
    ImgJson *obj = img_json_object();

    img_json_add_string(obj, "filename", info->filename);
    img_json_add_string(obj, "format", info->format);
    /* QEMU leaves out what an NBD export cannot tell: its storage size, and
     * for raw (no format header) the dirty flag. */
    bool remote = info->actual_size == UINT64_MAX;
    if (!remote || strcmp(info->format, "raw") != 0) {
        img_json_add_bool(obj, "dirty-flag", info->dirty);
    }
    if (!remote) {
        img_json_add_int(obj, "actual-size", (int64_t)info->actual_size);
    }
    img_json_add_int(obj, "virtual-size", (int64_t)info->virtual_size);
    if (info->cluster_size) {
        img_json_add_int(obj, "cluster-size", info->cluster_size);
    }
    if (info->backing_filename) {
        img_json_add_string(obj, "backing-filename", info->backing_filename);
        if (info->full_backing_filename) {
            img_json_add_string(obj, "full-backing-filename", info->full_backing_filename);
        }
        if (info->backing_filename_format) {
            img_json_add_string(obj, "backing-filename-format", info->backing_filename_format);
        }
    }
    return obj;
}

static void print_json(GPtrArray *infos, bool as_list)
{
    g_autoptr(ImgJson) json = NULL;

    if (as_list) {
        json = img_json_array();
        for (guint i = 0; i < infos->len; i++) {
            img_json_append(json, info_to_json(g_ptr_array_index(infos, i)));
        }
    } else {
        json = info_to_json(g_ptr_array_index(infos, 0));
    }
    g_autofree char *text = img_json_to_string(json);
    printf("%s\n", text);
}

enum {
    OPTION_OUTPUT = 256,
    OPTION_BACKING_CHAIN,
    OPTION_LOCKING,
    OPTION_OBJECT,
    OPTION_IMAGE_OPTS,
};

static int img_info(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "backing-chain", no_argument, NULL, OPTION_BACKING_CHAIN },
        { "force-share", no_argument, NULL, 'U' },
        { "locking", required_argument, NULL, OPTION_LOCKING },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    const char *output = NULL;
    bool chain = false;
    InfoOpen how = { .locking = QED_LOCKING_AUTO };
    int c;

    while ((c = img_getopt(&img_info_command, argc, argv, ":f:hU", long_options)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'U':
            how.force_share = true;
            break;
        case OPTION_LOCKING:
            if (!img_parse_locking(optarg, &how.locking)) {
                return 1;
            }
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            img_refuse_image_opts();
        case OPTION_OUTPUT:
            output = optarg;
            break;
        case OPTION_BACKING_CHAIN:
            chain = true;
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

    g_autoptr(GPtrArray) infos = collect_infos(filename, fmt, chain, &how);
    if (!infos) {
        return 1;
    }
    if (json) {
        print_json(infos, chain);
    } else {
        for (guint i = 0; i < infos->len; i++) {
            if (i > 0) {
                printf("\n");
            }
            print_human(g_ptr_array_index(infos, i));
        }
    }
    return 0;
}

const ImgCommand img_info_command = {
    .name = "info",
    .run = img_info,
    .synopsis = "[--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] "
                "[-U] [--locking=mode] filename",
    .summary = "Show information about an image.",
    .help = "Describe the disk image FILENAME as qemu-img info does, with the same lines\n"
            "or the same JSON: its format, virtual size, the space it takes on the host\n"
            "(disk size), its cluster size, whether it needs a check because it was not\n"
            "closed cleanly (\"cleanly shut down: no\"), and its backing file, with the path\n"
            "where that file is found when the name is relative, and its format when the\n"
            "image stores one.\n"
            "\n"
            "The image is opened read-only and its backing file is not opened, so info is\n"
            "safe on an untrusted image and works when the backing file is missing.\n"
            "\n"
            "Options:\n"
            "  -f, --format=fmt   the format of the image, 'qed' or 'raw'; probed as QEMU\n"
            "                     probes when omitted (other formats are refused)\n"
            "  --output=ofmt      'human' (the default) or 'json'\n"
            "  --backing-chain    describe the backing file too, and its backing file, down\n"
            "                     the chain; JSON output is then an array. A chain that\n"
            "                     loops back to an image is an error\n"
            "  -U, --force-share  let other programs write the image meanwhile, so that an\n"
            "                     image in use by another program can be inspected\n"
            "  --locking=mode     'auto' (the default) locks the image as QEMU does where\n"
            "                     the file system allows it, 'on' fails where it does not,\n"
            "                     'off' takes no lock and ignores those of others\n"
            "  --object, --image-opts  refused: qed-img has no QEMU objects, and takes\n"
            "                     file names and -f only\n"
            "  -h, --help         display this help and exit\n"
            "\n"
            "Exit status: 0 on success, 1 when an image cannot be opened or read.\n"
            "\n"
            "Examples:\n"
            "  qed-img info disk.qed\n"
            "  qed-img info --output=json --backing-chain overlay.qed\n",
};
