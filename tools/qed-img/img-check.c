/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img check: checks the metadata of an image and, with -r, repairs it,
 * with the options, output (human or JSON) and exit status of `qemu-img
 * check`: 0 clean, 1 the check could not run, 2 corruptions, 3 leaks only,
 * 63 a format without metadata (raw).
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#include "probe-warning.h"

/* What qemu-img check reports (QEMU's ImageCheck; only the members that a
 * QED check can set). */
typedef struct ImageCheck {
    const char *filename;
    const char *format;
    QedCheckResult res;
} ImageCheck;

/* -p: the share of the L1 table walked (a repair's own steps come after). */
static void check_progress(void *opaque, uint64_t done, uint64_t total)
{
    img_progress_print(100.0 * (double)done / (double)total, 0);
}

/* Members in the order of QEMU's ImageCheck schema, each optional one only
 * when it is not zero; img-json.c orders them as QEMU prints them. QED
 * checks never report an image end offset or compressed clusters. */
static void print_json(const ImageCheck *check)
{
    const QedCheckResult *r = &check->res;
    g_autoptr(ImgJson) obj = img_json_object();

    img_json_add_string(obj, "filename", check->filename);
    img_json_add_string(obj, "format", check->format);
    img_json_add_int(obj, "check-errors", (int64_t)r->check_errors);
    const struct {
        const char *key;
        uint64_t value;
    } optional[] = {
        { "corruptions", r->corruptions },
        { "leaks", r->leaks },
        { "corruptions-fixed", r->corruptions_fixed },
        { "leaks-fixed", r->leaks_fixed },
        { "total-clusters", r->total_clusters },
        { "allocated-clusters", r->allocated_clusters },
        { "fragmented-clusters", r->fragmented_clusters },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(optional); i++) {
        if (optional[i].value) {
            img_json_add_int(obj, optional[i].key, (int64_t)optional[i].value);
        }
    }
    g_autofree char *text = img_json_to_string(obj);
    printf("%s\n", text);
}

static void print_human(const ImageCheck *check)
{
    const QedCheckResult *r = &check->res;

    if (!(r->corruptions || r->leaks || r->check_errors)) {
        printf("No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            printf("\n%" PRIu64 " errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image may corrupt it.\n",
                   r->corruptions);
        }
        if (r->leaks) {
            printf("\n%" PRIu64 " leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n",
                   r->leaks);
        }
        if (r->check_errors) {
            printf("\n%" PRIu64 " internal errors have occurred during the check.\n",
                   r->check_errors);
        }
    }
    if (r->total_clusters != 0 && r->allocated_clusters != 0) {
        printf("%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, "
               "%0.2f%% compressed clusters\n",
               r->allocated_clusters, r->total_clusters,
               (double)r->allocated_clusters * 100.0 / (double)r->total_clusters,
               (double)r->fragmented_clusters * 100.0 / (double)r->allocated_clusters, 0.0);
    }
}

enum {
    OPTION_OUTPUT = 256,
    OPTION_LOCKING,
    OPTION_OBJECT,
    OPTION_IMAGE_OPTS,
};

static int img_check(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "repair", required_argument, NULL, 'r' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "force-share", no_argument, NULL, 'U' },
        { "locking", required_argument, NULL, OPTION_LOCKING },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    const char *output = NULL;
    const char *cache = "writeback";
    unsigned fix = 0;
    bool quiet = false;
    bool progress = false;
    bool force_share = false;
    QedLocking locking = QED_LOCKING_AUTO;
    int c;

    while ((c = img_getopt(&img_check_command, argc, argv, ":hf:r:T:pqU", long_options)) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'r':
            if (strcmp(optarg, "leaks") == 0) {
                fix = QED_CHECK_FIX_LEAKS;
            } else if (strcmp(optarg, "all") == 0) {
                fix = QED_CHECK_FIX_LEAKS | QED_CHECK_FIX_ERRORS | QED_CHECK_FIX_COMPACT;
            } else {
                img_error_exit("Unknown option value for -r (expecting 'leaks' or 'all'): %s",
                               optarg);
            }
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
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            img_refuse_image_opts();
        case OPTION_OUTPUT:
            output = optarg;
            break;
        case OPTION_LOCKING:
            if (!img_parse_locking(optarg, &locking)) {
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
    unsigned cache_flags;
    if (!img_parse_cache(cache, &cache_flags)) {
        img_error("Invalid source cache option: %s", cache);
        return 1;
    }

    /* The backing file is not opened: the check looks at this image's
     * metadata only (qemu-img opens it, and fails when it is missing). A
     * repairing open leaves a NEED_CHECK image for the check to repair. */
    QedOpenOptions oopts = {
        .format = fmt,
        .flags = QED_OPEN_NO_BACKING | cache_flags | (fix ? QED_OPEN_CHECK : QED_OPEN_READ_ONLY) |
                 (force_share ? QED_OPEN_FORCE_SHARE : 0),
        .locking = locking,
    };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    if (fix) {
        probe_warning_print(img, filename);
    }

    QedInfo info;
    ImageCheck check = { .filename = filename };
    int ret = qed_get_info(img, &info, &err);
    if (ret == 0) {
        check.format = info.format;
        /* Not with -q, as in qemu-img; not into JSON, which must parse. */
        img_progress_init(progress && !quiet && !json, 1.0);
        img_progress_print(0, 100);
        ret = qed_check_progress(img, fix, &check.res, check_progress, NULL, &err);
        if (ret == 0) {
            img_progress_print(100, 0);
        }
        img_progress_end();
    }
    if (ret == -ENOTSUP) {
        img_error("This image format does not support checks");
        g_clear_error(&err);
        qed_close(img, NULL);
        return 63;
    }
    if (ret == 0 && (check.res.corruptions_fixed || check.res.leaks_fixed)) {
        if (!json && !quiet) {
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %" PRIu64 " leaked clusters\n"
                   "    %" PRIu64 " corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   check.res.leaks_fixed, check.res.corruptions_fixed);
        }
        QedCheckResult fixed = check.res;
        ret = qed_check(img, 0, &check.res, &err);
        check.res.corruptions_fixed = fixed.corruptions_fixed;
        check.res.leaks_fixed = fixed.leaks_fixed;
    }
    if (ret == 0 && !quiet) {
        if (json) {
            print_json(&check);
        } else {
            print_human(&check);
        }
    }

    int status;
    if (ret < 0 || check.res.check_errors) {
        if (ret < 0) {
            img_error("Check failed: %s", g_strerror(-ret));
        } else {
            img_error("Check failed");
        }
        g_clear_error(&err);
        status = 1;
    } else if (check.res.corruptions) {
        status = 2;
    } else if (check.res.leaks) {
        status = 3;
    } else {
        status = 0;
    }
    if (qed_close(img, &err) < 0) {
        img_error("%s", err->message);
        g_error_free(err);
        status = 1;
    }
    return status;
}

const ImgCommand img_check_command = {
    .name = "check",
    .run = img_check,
    .synopsis = "[--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | "
                "all]] [-T src_cache] [-U] [-p] "
                "[--locking=mode] filename",
    .summary = "Check an image for consistency, and repair it.",
    .help = "Check the metadata of the disk image FILENAME as qemu-img check does, with the\n"
            "same output and exit status: every L1 and L2 table and data cluster offset\n"
            "must be cluster aligned, lie past the header and inside the file, and be\n"
            "referenced once (each offset that breaks a rule is a corruption, each\n"
            "cluster referenced again is one more); clusters past the header that nothing\n"
            "references are leaks, which waste space but harm no data. The last line\n"
            "tells how much of the virtual disk is allocated and how fragmented it is.\n"
            "\n"
            "Without -r the image is opened read-only and nothing in the file changes.\n"
            "The backing file is never opened. Repairs keep the image consistent but for\n"
            "leaks after every step, so an interrupted repair loses no data.\n"
            "\n"
            "Options:\n"
            "  -f, --format=fmt     the format of the image, 'qed' or 'raw'; probed when\n"
            "                       omitted. A raw image has nothing to check (status 63)\n"
            "  -r, --repair=leaks   cut the leaked clusters at the end of the file off\n"
            "                       (only when there is no corruption)\n"
            "  -r, --repair=all     also clear invalid and duplicate references (the data\n"
            "                       they pointed to is lost from the disk), and move the\n"
            "                       clusters at the end of the file into the leaked ones,\n"
            "                       so that the file shrinks; then check again\n"
            "  --output=ofmt        'human' (the default) or 'json'\n"
            "  -q                   quiet: print nothing but errors\n"
            "  -p                   show the progress of the check (not with -q or\n"
            "                       --output=json; qemu-img check has no -p)\n"
            "  -T src_cache         the cache mode: writeback (default), unsafe,\n"
            "                       writethrough, none, off or directsync\n"
            "  -U, --force-share    let other programs write the image meanwhile (not\n"
            "                       with -r)\n"
            "  --locking=mode       'auto' (the default) locks the image as QEMU does where\n"
            "                       the file system allows it, 'on' fails where it does\n"
            "                       not, 'off' takes no lock and ignores those of others\n"
            "  --object, --image-opts  refused: qed-img has no QEMU objects, and takes\n"
            "                       file names and -f only\n"
            "  -h, --help           display this help and exit\n"
            "\n"
            "Exit status: 0 the image is consistent, 1 the check could not be run or\n"
            "finished (the image cannot be opened or read), 2 corruptions were found,\n"
            "3 only leaks were found, 63 the format does not support checks. After a\n"
            "repair the status is that of the check that follows it.\n"
            "\n"
            "Examples:\n"
            "  qed-img check disk.qed\n"
            "  qed-img check -r all --output=json disk.qed\n",
};
