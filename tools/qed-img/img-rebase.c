/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img rebase: changes the backing file of an image with the options,
 * messages and exit status of `qemu-img rebase`. Safe mode first copies,
 * cluster by cluster, exactly the clusters of the image whose content
 * differs between the old and the new backing file (zeros as zero
 * clusters), so that the image reads the same afterwards; -u only rewrites
 * the header. Everything that could refuse the new name is checked before
 * anything is written.
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <qed.h>

#include "probe-warning.h"

/* The most one comparison step reads from each backing file, in bytes. */
#define REBASE_CHUNK (1u * 1024 * 1024)

/* Reads [pos, pos+len) as img shows it to an image above it: zeros past its
 * end, and everywhere when img is NULL (no backing file). */
static int read_view(QedImage *img, uint8_t *buf, uint64_t len, uint64_t pos, GError **errp)
{
    uint64_t size = img ? qed_get_size(img) : 0;
    uint64_t avail = pos < size ? MIN(len, size - pos) : 0;
    memset(buf + avail, 0, len - avail);
    return avail ? qed_pread(img, buf, avail, pos, errp) : 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
    return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* Rewrites one cluster-sized piece [pos, pos+n) that the image does not hold
 * and whose old and new backing contents differ: as a zero cluster when the
 * old backing file read zeros there (also in an image that has no backing
 * file yet), else with the old data. */
static int preserve(QedImage *img, const uint8_t *old_data, uint64_t n, uint64_t pos,
                    GError **errp)
{
    if (all_zero(old_data, n)) {
        return qed_pwrite_zeroes(img, n, pos, QED_WRITE_ZERO_CLUSTERS, errp);
    }
    return qed_pwrite(img, old_data, n, pos, 0, errp);
}

/* Compares the old and the new backing file over [pos, pos+len), a range
 * the image does not hold, one cluster at a time. */
static int rebase_range(QedImage *img, QedImage *old_b, QedImage *new_b, uint32_t cluster,
                        uint64_t pos, uint64_t len, uint8_t *a, uint8_t *b, GError **errp)
{
    /* Past the end of both backing files both read zeros: nothing differs
     * there, and a large sparse image is not compared megabyte by megabyte. */
    uint64_t end = MAX(old_b ? qed_get_size(old_b) : 0, new_b ? qed_get_size(new_b) : 0);
    len = pos < end ? MIN(len, end - pos) : 0;
    while (len > 0) {
        /* Whole clusters of the image: a comparison step ends on one. */
        uint64_t n = MIN(len, REBASE_CHUNK - pos % cluster);
        int ret = read_view(old_b, a, n, pos, errp);
        if (ret == 0) {
            ret = read_view(new_b, b, n, pos, errp);
        }
        for (uint64_t off = 0; ret == 0 && off < n;) {
            uint64_t piece = MIN(n - off, cluster - (pos + off) % cluster);
            if (memcmp(a + off, b + off, piece) != 0) {
                ret = preserve(img, a + off, piece, pos + off, errp);
            }
            off += piece;
        }
        if (ret < 0) {
            return ret;
        }
        pos += n;
        len -= n;
    }
    return 0;
}

/* The copying of safe mode: every range the image does not hold. */
static int copy_differences(QedImage *img, QedImage *new_b, uint32_t cluster, GError **errp)
{
    QedImage *old_b = qed_get_backing(img);
    uint64_t size = qed_get_size(img);
    g_autofree uint8_t *a = g_malloc(REBASE_CHUNK);
    g_autofree uint8_t *b = g_malloc(REBASE_CHUNK);

    for (uint64_t pos = 0; pos < size;) {
        QedExtent ext;
        int ret = qed_block_status(img, size - pos, pos, &ext, errp);
        if (ret == 0 && ext.type == QED_EXTENT_UNALLOCATED) {
            ret = rebase_range(img, old_b, new_b, cluster, pos, ext.length, a, b, errp);
        }
        if (ret < 0) {
            return ret;
        }
        pos += ext.length;
        img_progress_print((double)ext.length * 100 / (double)size, 100); /* a step */
    }
    return qed_flush(img, errp);
}

/* Opens the new backing file as the image would find it, read-only. */
static QedImage *open_new_backing(const QedInfo *info, const char *name, const char *fmt,
                                  unsigned flags, QedLocking locking)
{
    QedOpenOptions oopts = { .format = fmt,
                             .flags = flags | QED_OPEN_READ_ONLY,
                             .locking = locking };
    GError *err = NULL;
    /* By the rules of header names: the image will name it so. */
    QedImage *b = tool_open_backing(info->filename, name, &oopts, &err);
    if (!b) {
        img_error("Could not open new backing file '%s': %s", name, err->message);
        g_error_free(err);
    }
    return b;
}

/* Whether the file path is the file of an image in the chain from b down.
 * Under -U (or --locking=off) nothing else stops a rebase onto the image
 * itself or onto an image above it, which leaves a backing loop that no
 * reader opens; qemu-img writes it. */
static bool chain_holds(QedImage *b, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        return false;
    }
    for (; b; b = qed_get_backing(b)) {
        QedInfo info;
        struct stat bst;
        if (qed_get_info(b, &info, NULL) == 0 && stat(info.filename, &bst) == 0 &&
            bst.st_dev == st.st_dev && bst.st_ino == st.st_ino) {
            return true;
        }
    }
    return false;
}

/* Whether the header can take the new backing file: an image format with
 * one, a format named where a name is given, a name that fits. Prints
 * qemu-img's error when not. */
static bool can_change(QedImage *img, const QedInfo *info, const char *name, const char *fmt)
{
    if (strcmp(info->format, "qed") != 0) {
        img_error("Could not change the backing file to '%s': %s", name ? name : "",
                  g_strerror(ENOTSUP));
        return false;
    }
    if (name && name[0] && !fmt) {
        img_error("Could not change the backing file to '%s': backing format must be "
                  "specified",
                  name);
        return false;
    }
    size_t len = name ? strlen(name) : 0;
    uint32_t max = qed_get_backing_name_max(img);
    if (len > max) {
        img_error("Could not change the backing file to '%s': No space left in the file "
                  "header (the name is %zu bytes; '%s' holds at most %u)",
                  name, len, info->filename, max);
        return false;
    }
    return true;
}

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_LOCKING,
};

static int img_rebase(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "locking", required_argument, NULL, OPTION_LOCKING },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *name = NULL, *backing_fmt = NULL;
    const char *cache = "writeback", *src_cache = "writeback";
    bool quiet = false, progress = false, unsafe = false, force_share = false;
    QedLocking locking = QED_LOCKING_AUTO;
    int c;

    while ((c = img_getopt(&img_rebase_command, argc, argv, ":hf:F:b:upt:T:qU", long_options)) !=
           -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'F':
            backing_fmt = optarg;
            break;
        case 'b':
            name = optarg;
            break;
        case 'u':
            unsafe = true;
            break;
        case 'p':
            progress = true;
            break;
        case 't':
            cache = optarg;
            break;
        case 'T':
            src_cache = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'U':
            force_share = true;
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
    if (quiet) {
        progress = false;
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    if (!unsafe && !name) {
        img_error_exit("Must specify backing file (-b) or use unsafe mode (-u)");
    }
    const char *filename = argv[optind];
    /* As in qemu-img, -p draws its first line here, before anything else is
     * checked, and every exit from here on ends the line. */
    img_progress_init(progress, 1.0);
    img_progress_print(0, 100);
    unsigned flags, src_flags;
    if (!img_parse_cache(cache, &flags)) {
        img_error("Invalid cache option: %s", cache);
        img_progress_end();
        return 1;
    }
    if (!img_parse_cache(src_cache, &src_flags)) {
        img_error("Invalid source cache option: %s", src_cache);
        img_progress_end();
        return 1;
    }
    if (backing_fmt && strcmp(backing_fmt, "qed") != 0 && strcmp(backing_fmt, "raw") != 0) {
        img_error("Invalid format name: '%s'", backing_fmt);
        img_progress_end();
        return 1;
    }

    /* The old backing chain is read with the source cache mode and shared
     * with writers under -U, as qemu-img opens it; -u opens none. */
    QedOpenOptions oopts = { .format = fmt,
                             .flags = flags | (unsafe ? QED_OPEN_NO_BACKING : 0),
                             .locking = locking };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        img_progress_end();
        return 1;
    }
    probe_warning_print(img, filename);
    QedInfo info;
    int ret = qed_get_info(img, &info, &err);
    if (ret == 0 && !can_change(img, &info, name, backing_fmt)) {
        ret = -EINVAL;
    }
    QedImage *new_b = NULL;
    if (ret == 0 && !unsafe && name && name[0]) {
        unsigned bflags = (src_flags & QED_OPEN_DIRECT) | (force_share ? QED_OPEN_FORCE_SHARE : 0);
        new_b = open_new_backing(&info, name, backing_fmt, bflags, locking);
        ret = new_b ? 0 : -ENOENT;
        if (new_b && chain_holds(new_b, info.filename)) {
            img_error("Could not change the backing file to '%s': Backing file '%s' creates "
                      "an infinite loop",
                      name, info.filename);
            ret = -ELOOP;
        }
    }
    if (ret == 0 && !unsafe) {
        ret = copy_differences(img, new_b, info.cluster_size, &err);
    }
    if (ret == 0) {
        ret = qed_change_backing_file(img, name, backing_fmt, &err);
    }
    if (err) {
        img_error("%s", err->message);
        g_clear_error(&err);
    }
    qed_close(new_b, NULL);
    if (qed_close(img, &err) < 0) {
        img_error("%s", err->message);
        g_clear_error(&err);
        ret = -EIO;
    }
    if (ret == 0) {
        img_progress_print(100, 0);
    }
    img_progress_end();
    return ret < 0 ? 1 : 0;
}

const ImgCommand img_rebase_command = {
    .name = "rebase",
    .run = img_rebase,
    .synopsis = "[--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-t cache] "
                "[-T src_cache] [-p] [-u] [--locking=mode] -b backing_file [-F backing_fmt] "
                "filename",
    .summary = "Change the backing file of an image.",
    .help = "Make BACKING_FILE the backing file of the QED image FILENAME, as qemu-img\n"
            "rebase does.\n"
            "\n"
            "Safe mode (the default) keeps what FILENAME reads: every cluster that\n"
            "FILENAME does not hold itself and whose content differs between the old and\n"
            "the new backing file is first written into FILENAME, with the old content;\n"
            "where the old backing file read zeros, the cluster becomes a zero cluster,\n"
            "never data. Nothing else is copied or allocated. Only then, after a flush,\n"
            "is the header rewritten. BACKING_FILE is found as it will be, relative to the\n"
            "directory of FILENAME. '-b \"\"' removes the backing file: every cluster the\n"
            "old backing file showed (and that is not zeros) is copied first.\n"
            "\n"
            "Unsafe mode (-u) only rewrites the header; the backing files are not opened.\n"
            "Use it when a backing file was renamed or moved.\n"
            "\n"
            "A name longer than the header area of FILENAME holds (its header clusters\n"
            "less 64 bytes, and at most 4095 bytes) is refused before anything is\n"
            "written, as is a missing -F: qemu-img copies first and fails afterwards, or\n"
            "writes a name no QED reader opens. The header is rewritten so that a crash\n"
            "leaves the old or the new name.\n"
            "\n"
            "Options:\n"
            "  -b backing_file  the new backing file ('' for none)\n"
            "  -F backing_fmt   its format, 'qed' or 'raw' (required with a backing file)\n"
            "  -f fmt           the format of FILENAME; probed when omitted\n"
            "  -u               unsafe mode: rewrite the header only\n"
            "  -t cache         the cache mode of FILENAME: writeback (default), unsafe,\n"
            "                   writethrough, none, off or directsync\n"
            "  -T src_cache     the cache mode of the backing files (the same modes)\n"
            "  -U, --force-share  open the backing files without locking out writers\n"
            "  -p               show the progress of the comparison\n"
            "  -q               quiet: print nothing but errors\n"
            "  --locking=mode   'auto' (the default) locks the images as QEMU does where\n"
            "                   the file system allows it, 'on' fails where it does not,\n"
            "                   'off' takes no lock and ignores those of others\n"
            "  --object, --image-opts  refused: qed-img has no objects, and takes file\n"
            "                   names and -f only\n"
            "  -h, --help       display this help and exit\n"
            "\n"
            "Exit status: 0 on success, 1 on any error.\n"
            "\n"
            "Examples:\n"
            "  qed-img rebase -b new-base.qed -F qed overlay.qed\n"
            "  qed-img rebase -u -b moved/base.raw -F raw overlay.qed\n",
};
