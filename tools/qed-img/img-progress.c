/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qed-img -p: the progress line of qemu-img ("    (42.00/100%)" redrawn with
 * a carriage return), printed to stdout as qemu-img prints it, at most once
 * per min_skip percent so that a long copy does not flood a pipe.
 */
#include "qed-img.h"

#include <stdio.h>

static struct {
    bool enabled;
    double current;    /* percent done */
    double last_print; /* percent shown last */
    double min_skip;   /* percent that must pass between two prints */
} progress;

static void progress_draw(void)
{
    printf("    (%3.2f/100%%)\r", progress.current);
    fflush(stdout);
}

void img_progress_init(bool enabled, double min_skip)
{
    progress.enabled = enabled;
    progress.current = 0;
    progress.last_print = 0;
    progress.min_skip = min_skip;
}

void img_progress_print(double delta, double max)
{
    if (!progress.enabled) {
        return;
    }
    double current = max == 0 ? delta : progress.current + delta / 100 * max;
    if (current > 100) {
        current = 100;
    }
    progress.current = current;
    if (current - progress.last_print > progress.min_skip ||
        current < progress.last_print - progress.min_skip || current == 100 || current == 0) {
        progress.last_print = current;
        progress_draw();
    }
}

void img_progress_end(void)
{
    if (progress.enabled) {
        putchar('\n');
        fflush(stdout);
        progress.enabled = false;
    }
}
