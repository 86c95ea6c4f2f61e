/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img compare: whether two images (through their backing chains) read
 * the same, with the verdicts, messages and exit status of `qemu-img
 * compare`: 0 identical, 1 different, 2 an image could not be opened,
 * 3 a block status failed, 4 a read failed.
 *
 * Design notes: the images are walked by block status, as qemu-img does,
 * so that the ranges (and the -p progress steps, and the offsets reported)
 * come out the same: a range that reads as zeros in both is skipped
 * unread; a range allocated in both is read (in pieces of at most
 * COMPARE_BUF bytes) and compared; a range allocated in one only must read
 * as zeros there. A mismatch is reported at the first 512-byte sector that
 * differs. When the sizes differ, the longer image must hold only zeros
 * past the end of the shorter one ("Warning: Image size mismatch!");
 * -s (strict) refuses different sizes and different block status instead.
 */
#include "open.h"
#include "qed-img.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#define COMPARE_BUF (2 * 1024 * 1024) /* qemu-img's IO_BUF_SIZE */
#define SECTOR 512

typedef struct Side {
    const char *filename;
    QedImage *img;
    int64_t size;
} Side;

/* The offset of the first sector of buf (bytes long) that is not all zero,
 * or -1. */
static int64_t find_nonzero(const uint8_t *buf, int64_t bytes)
{
    static const uint8_t zeros[SECTOR];
    for (int64_t i = 0; i < bytes; i += SECTOR) {
        if (memcmp(buf + i, zeros, (size_t)MIN(SECTOR, bytes - i)) != 0) {
            return i;
        }
    }
    return -1;
}

/* The offset of the first sector that differs, or -1. */
static int64_t find_difference(const uint8_t *a, const uint8_t *b, int64_t bytes)
{
    for (int64_t i = 0; i < bytes; i += SECTOR) {
        if (memcmp(a + i, b + i, (size_t)MIN(SECTOR, bytes - i)) != 0) {
            return i;
        }
    }
    return -1;
}

static int read_chunk(const Side *side, uint8_t *buf, int64_t offset, int64_t bytes)
{
    GError *err = NULL;
    int ret = qed_pread(side->img, buf, (size_t)bytes, (uint64_t)offset, &err);
    if (ret < 0) {
        img_error("Error while reading offset %" PRId64 " of %s: %s", offset, side->filename,
                  g_strerror(-ret));
        g_error_free(err);
        return 4;
    }
    return 0;
}

/* 0 when [offset, offset+bytes) of side reads as zeros, 1 (after the
 * message) when it does not, 4 when it cannot be read. */
static int check_empty(const Side *side, uint8_t *buf, int64_t offset, int64_t bytes, bool quiet)
{
    int ret = read_chunk(side, buf, offset, bytes);
    if (ret) {
        return ret;
    }
    int64_t idx = find_nonzero(buf, bytes);
    if (idx >= 0) {
        if (!quiet) {
            printf("Content mismatch at offset %" PRId64 "!\n", offset + idx);
        }
        return 1;
    }
    return 0;
}

static int chain_status(const Side *side, int64_t offset, int64_t bytes, unsigned *status,
                        int64_t *pnum)
{
    GError *err = NULL;
    if (img_chain_status(side->img, offset, bytes, status, pnum, &err) < 0) {
        img_error("Sector allocation test failed for %s", side->filename);
        g_error_free(err);
        return 3;
    }
    return 0;
}

/* The comparison itself; returns the exit status. */
static int compare_images(Side *s1, Side *s2, bool strict, bool quiet)
{
    int64_t total = MIN(s1->size, s2->size);
    int64_t progress_base = MAX(s1->size, s2->size);
    g_autofree uint8_t *buf1 = g_malloc(COMPARE_BUF);
    g_autofree uint8_t *buf2 = g_malloc(COMPARE_BUF);
    int64_t offset = 0;
    int ret;

    img_progress_print(0, 100);
    if (strict && s1->size != s2->size) {
        if (!quiet) {
            printf("Strict mode: Image size mismatch!\n");
        }
        return 1;
    }
    while (offset < total) {
        unsigned st1, st2;
        int64_t pnum1, pnum2;
        ret = chain_status(s1, offset, s1->size - offset, &st1, &pnum1);
        if (ret == 0) {
            ret = chain_status(s2, offset, s2->size - offset, &st2, &pnum2);
        }
        if (ret) {
            return ret;
        }
        bool allocated1 = st1 & IMG_STATUS_ALLOCATED;
        bool allocated2 = st2 & IMG_STATUS_ALLOCATED;
        int64_t chunk = MIN(pnum1, pnum2);

        if (strict && st1 != st2) {
            if (!quiet) {
                printf("Strict mode: Offset %" PRId64 " block status mismatch!\n", offset);
            }
            return 1;
        }
        if ((st1 & IMG_STATUS_ZERO) && (st2 & IMG_STATUS_ZERO)) {
            /* zeros on both sides: nothing to read */
        } else if (allocated1 == allocated2) {
            if (allocated1) {
                chunk = MIN(chunk, COMPARE_BUF);
                ret = read_chunk(s1, buf1, offset, chunk);
                if (ret == 0) {
                    ret = read_chunk(s2, buf2, offset, chunk);
                }
                if (ret) {
                    return ret;
                }
                int64_t idx = find_difference(buf1, buf2, chunk);
                if (idx >= 0) {
                    if (!quiet) {
                        printf("Content mismatch at offset %" PRId64 "!\n", offset + idx);
                    }
                    return 1;
                }
            }
        } else {
            chunk = MIN(chunk, COMPARE_BUF);
            ret = check_empty(allocated1 ? s1 : s2, buf1, offset, chunk, quiet);
            if (ret) {
                return ret;
            }
        }
        offset += chunk;
        img_progress_print((float)chunk / (float)progress_base * 100, 100);
    }

    if (s1->size != s2->size) {
        if (!quiet) {
            printf("Warning: Image size mismatch!\n");
        }
        Side *over = s1->size > s2->size ? s1 : s2;
        while (offset < progress_base) {
            unsigned st;
            int64_t chunk;
            ret = chain_status(over, offset, progress_base - offset, &st, &chunk);
            if (ret) {
                return ret;
            }
            if ((st & IMG_STATUS_ALLOCATED) && !(st & IMG_STATUS_ZERO)) {
                chunk = MIN(chunk, COMPARE_BUF);
                ret = check_empty(over, buf1, offset, chunk, quiet);
                if (ret) {
                    return ret;
                }
            }
            offset += chunk;
            img_progress_print((float)chunk / (float)progress_base * 100, 100);
        }
    }
    if (!quiet) {
        printf("Images are identical.\n");
    }
    return 0;
}

static QedImage *open_side(const char *filename, const char *fmt, unsigned flags,
                           QedLocking locking)
{
    QedOpenOptions oopts = { .format = fmt, .flags = flags, .locking = locking };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
    }
    return img;
}

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
    OPTION_LOCKING,
};

static int img_compare(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "locking", required_argument, NULL, OPTION_LOCKING },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt1 = NULL, *fmt2 = NULL;
    const char *cache = "writeback";
    bool progress = false, quiet = false, strict = false, force_share = false;
    bool image_opts = false;
    QedLocking locking = QED_LOCKING_AUTO;
    int c;

    while ((c = img_getopt(&img_compare_command, argc, argv, ":hf:F:T:pqsU", long_options)) !=
           -1) {
        switch (c) {
        case 'f':
            fmt1 = optarg;
            break;
        case 'F':
            fmt2 = optarg;
            break;
        case 'T':
            cache = optarg;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            strict = true;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_LOCKING:
            if (!img_parse_locking(optarg, &locking)) {
                return 1;
            }
            break;
        }
    }
    if (quiet) {
        progress = false; /* as qemu-img: -q wins */
    }
    if (optind != argc - 2) {
        img_error_exit("Expecting two image file names");
    }
    Side s1 = { .filename = argv[optind] };
    Side s2 = { .filename = argv[optind + 1] };

    img_progress_init(progress, 2.0);
    int ret = 2;
    unsigned flags;
    if (!img_parse_cache(cache, &flags)) {
        img_error("Invalid source cache option: %s", cache);
        goto out;
    }
    if (image_opts) {
        img_refuse_image_opts();
    }
    flags |= QED_OPEN_READ_ONLY | (force_share ? QED_OPEN_FORCE_SHARE : 0);
    s1.img = open_side(s1.filename, fmt1, flags, locking);
    if (!s1.img) {
        goto out;
    }
    s2.img = open_side(s2.filename, fmt2, flags, locking);
    if (!s2.img) {
        goto out;
    }
    s1.size = (int64_t)qed_get_size(s1.img);
    s2.size = (int64_t)qed_get_size(s2.img);
    ret = compare_images(&s1, &s2, strict, quiet);
out:
    qed_close(s2.img, NULL);
    qed_close(s1.img, NULL);
    img_progress_end();
    return ret;
}

const ImgCommand img_compare_command = {
    .name = "compare",
    .run = img_compare,
    .synopsis = "[--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] "
                "[-s] [-U] [--locking=mode] filename1 filename2",
    .summary = "Check whether two images have the same contents.",
    .help = "Compare the contents of the disk images FILENAME1 and FILENAME2, each read\n"
            "through its backing chain, as qemu-img compare does: an image of another\n"
            "format or with other allocation may still be identical. Ranges that read as\n"
            "zeros in both images are skipped without reading them.\n"
            "\n"
            "The images are identical when every byte is the same. When one image is\n"
            "longer, its part past the end of the other must read as zeros; the images\n"
            "are then called identical after \"Warning: Image size mismatch!\". Otherwise\n"
            "\"Content mismatch at offset N!\" names the first 512-byte sector that\n"
            "differs.\n"
            "\n"
            "Options:\n"
            "  -f fmt               the format of FILENAME1, 'qed' or 'raw'; probed when\n"
            "                       omitted\n"
            "  -F fmt               the format of FILENAME2\n"
            "  -s                   strict: images of different sizes differ (\"Strict\n"
            "                       mode: Image size mismatch!\"), and so do ranges that\n"
            "                       read the same but are allocated differently (a zero\n"
            "                       cluster and an unallocated one, data and a hole)\n"
            "  -p                   show the progress\n"
            "  -q                   quiet: print nothing but errors (no verdict either:\n"
            "                       read the exit status)\n"
            "  -T src_cache         the cache mode: writeback (default), unsafe,\n"
            "                       writethrough, none, off or directsync\n"
            "  -U, --force-share    let other programs write the images meanwhile\n"
            "  --locking=mode       'auto' (the default), 'on' or 'off', as for check\n"
            "  --object objectdef   refused: qed-img has no QEMU objects\n"
            "  --image-opts         refused: name the image files instead\n"
            "  -h, --help           display this help and exit\n"
            "\n"
            "Exit status: 0 the images are identical, 1 they differ (or the arguments\n"
            "are wrong), 2 an image could not be opened, 3 the allocation of a range\n"
            "could not be found, 4 a read failed.\n"
            "\n"
            "Examples:\n"
            "  qed-img compare overlay.qed base.raw\n"
            "  qed-img compare -q -s -f qed -F qed disk.qed disk.qed\n",
};
