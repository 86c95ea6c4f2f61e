/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cost of address translation: block status (translation alone, no I/O)
 * and 4 KiB reads over every cluster of a fully allocated image, each
 * cluster its own run. Prints nanoseconds per call, best of `rounds`.
 * Built and run by bench/bench-translate.sh against each build it compares.
 *
 *   bench-translate IMAGE ROUNDS
 */
#include <stdio.h>
#include <stdlib.h>

#include "qed.h"

static double now_ns(void)
{
    return (double)g_get_monotonic_time() * 1000.0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench-translate IMAGE ROUNDS\n");
        return 2;
    }
    int rounds = atoi(argv[2]);
    GError *err = NULL;
    QedOpenOptions o = { .flags = QED_OPEN_READ_ONLY | QED_OPEN_NO_BACKING };
    QedImage *img = qed_open(argv[1], &o, &err);
    if (!img) {
        fprintf(stderr, "%s\n", err->message);
        return 1;
    }
    QedInfo info;
    qed_get_info(img, &info, NULL);
    uint64_t size = qed_get_size(img), cs = info.cluster_size;
    uint64_t n = size / cs;
    static char buf[4096];
    double best_status = 1e30, best_read = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        for (uint64_t pos = 0; pos < size;) {
            QedExtent ext;
            if (qed_block_status(img, size - pos, pos, &ext, &err) < 0) {
                fprintf(stderr, "%s\n", err->message);
                return 1;
            }
            pos += ext.length;
        }
        double t1 = now_ns();
        for (uint64_t i = 0; i < n; i++) {
            if (qed_pread(img, buf, sizeof(buf), i * cs, &err) < 0) {
                fprintf(stderr, "%s\n", err->message);
                return 1;
            }
        }
        double t2 = now_ns();
        best_status = MIN(best_status, (t1 - t0) / (double)n);
        best_read = MIN(best_read, (t2 - t1) / (double)n);
    }
    printf("%.1f %.1f\n", best_status, best_read);
    qed_close(img, NULL);
    return 0;
}
