/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QEMU's words for a raw image opened by probing (block/raw-format.c), so
 * that qed-img and qed-io warn exactly where and how its tools do.
 */
#include "probe-warning.h"

#include <stdio.h>

#include <glib.h>

#include "names.h"

void probe_warning_print(QedImage *img, const char *filename)
{
    QedInfo info;
    if (qed_get_info(img, &info, NULL) < 0 || !info.format_probed) {
        return;
    }
    g_autofree char *shown = tool_display_name(filename);
    fprintf(stderr,
            "WARNING: Image format was not specified for '%s' and probing guessed raw.\n"
            "         Automatically detecting the format is dangerous for raw images, write "
            "operations on block 0 will be restricted.\n"
            "         Specify the 'raw' format explicitly to remove the restrictions.\n",
            shown);
}
