/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img snapshot: QED and raw images have no internal snapshots. The
 * command takes qemu-img snapshot's syntax and answers as qemu-img 7.2 does
 * for them: an empty list, and the same errors (and exit status) for
 * creating, applying and deleting one.
 */
#include "open.h"
#include "qed-img.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <qed.h>

#include "probe-warning.h"

enum {
    OPTION_OBJECT = 256,
    OPTION_IMAGE_OPTS,
};

static int img_snapshot(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    char action = 0; /* 'l', 'a', 'c' or 'd' */
    const char *name = NULL;
    bool force_share = false;
    bool image_opts = false;
    int c;

    /* As in qemu-img 7.2, there is no -f: the format is probed. */
    while ((c = img_getopt(&img_snapshot_command, argc, argv, ":la:c:d:hqU", long_options)) !=
           -1) {
        switch (c) {
        case 'l':
        case 'a':
        case 'c':
        case 'd':
            if (action) {
                img_error_exit("Cannot mix '-l', '-a', '-c', '-d'");
            }
            action = (char)c;
            name = optarg;
            break;
        case 'q':
            break; /* nothing is printed but errors anyway */
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            img_refuse_object();
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    const char *filename = argv[optind];
    if (image_opts) {
        img_refuse_image_opts();
    }

    /* Listing reads; the others open the image for writing, as qemu-img. */
    QedOpenOptions oopts = {
        .flags = QED_OPEN_NO_BACKING | (action == 'l' ? QED_OPEN_READ_ONLY : 0) |
                 (force_share ? QED_OPEN_FORCE_SHARE : 0),
    };
    GError *err = NULL;
    QedImage *img = tool_open(filename, &oopts, &err);
    if (!img) {
        img_error("%s", err->message);
        g_error_free(err);
        return 1;
    }
    if (action != 'l') {
        probe_warning_print(img, filename); /* (qemu-img warns on writable opens) */
    }

    int ret = 0;
    switch (action) {
    case 'c':
        img_error("Could not create snapshot '%s': %d (%s)", name, -ENOTSUP, g_strerror(ENOTSUP));
        ret = 1;
        break;
    case 'a':
        /* qemu-img's raw driver reopens the image to apply a snapshot to
         * its file, and warns a second time. */
        probe_warning_print(img, filename);
        img_error("Could not apply snapshot '%s': Block driver does not support snapshots", name);
        ret = 1;
        break;
    case 'd':
        img_error("Could not delete snapshot '%s': snapshot not found", name);
        ret = 1;
        break;
    default:
        break; /* the list is empty: nothing to print */
    }
    if (qed_close(img, &err) < 0) {
        img_error("%s", err->message);
        g_error_free(err);
        ret = 1;
    }
    return ret;
}

const ImgCommand img_snapshot_command = {
    .name = "snapshot",
    .run = img_snapshot,
    .synopsis = "[--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot "
                "| -d snapshot] filename",
    .summary = "Internal snapshots (QED and raw images have none).",
    .help = "QED and raw images have no internal snapshots (QEMU keeps them only in\n"
            "qcow2 images). This command takes the syntax of qemu-img snapshot and\n"
            "answers as qemu-img 7.2 answers for QED and raw images, so that a script\n"
            "sees the same result: -l (also the default) lists nothing and succeeds;\n"
            "-c, -a and -d fail with qemu-img's messages. Use an overlay (qed-img create\n"
            "-b) to keep a point in time instead.\n"
            "\n"
            "The image is opened (read-only for -l, read-write otherwise), so a missing,\n"
            "corrupt or locked image is reported as qemu-img reports it. As in qemu-img\n"
            "7.2, there is no -f: the format is probed.\n"
            "\n"
            "Options:\n"
            "  -l                   list the snapshots (none)\n"
            "  -c snapshot          create one: fails, \"Operation not supported\"\n"
            "  -a snapshot          apply one: fails, the format has no snapshots\n"
            "  -d snapshot          delete one: fails, \"snapshot not found\"\n"
            "  -q                   quiet (errors are printed all the same)\n"
            "  -U, --force-share    let other programs write the image meanwhile (-l\n"
            "                       only)\n"
            "  --object objectdef   refused: qed-img has no QEMU objects\n"
            "  --image-opts         refused: name the image file instead\n"
            "  -h, --help           display this help and exit\n"
            "\n"
            "Exit status: 0 for a list, 1 otherwise.\n"
            "\n"
            "Examples:\n"
            "  qed-img snapshot -l disk.qed\n",
};
