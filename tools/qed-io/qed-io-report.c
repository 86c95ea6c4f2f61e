/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Numbers in and out of qed-io, character for character as qemu-io 7.2 parses
 * and prints them: sizes with suffixes, pattern bytes, the two-line I/O
 * report (or its -C form) and the -v hex dump.
 */
#include "qed-io.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "units.h"

/* A non-negative size with an optional suffix, as qemu-io's cvtnum(). */
int io_parse_num(const char *str, int64_t *value)
{
    uint64_t bytes;
    int ret = units_parse_size(str, 'B', &bytes);

    if (ret < 0) {
        return ret;
    }
    if (bytes > INT64_MAX) {
        return -ERANGE;
    }
    *value = (int64_t)bytes;
    return 0;
}

void io_print_num_error(int err, const char *arg)
{
    if (err == -EINVAL) {
        printf("Parsing error: non-numeric argument, or extraneous/unrecognized suffix -- %s\n",
               arg);
    } else if (err == -ERANGE) {
        printf("Parsing error: argument too large -- %s\n", arg);
    } else {
        printf("Parsing error: %s\n", arg);
    }
}

/* A byte value in C notation (12, 0x0c, 014); -1 after printing why not. */
int io_parse_pattern(const char *arg)
{
    char *end;
    long pattern = strtol(arg, &end, 0);

    if (pattern < 0 || pattern > UCHAR_MAX || *end != '\0') {
        printf("%s is not a valid pattern byte\n", arg);
        return -1;
    }
    return (int)pattern;
}

/* "4 KiB", "1.500 MiB", "512 bytes": three decimals, dropped when they are
 * all zero, binary prefixes from 1 KiB up. */
void io_size_str(double value, char *out, size_t size)
{
    static const struct {
        int shift;
        const char *suffix;
    } units[] = {
        { 60, " EiB" }, { 50, " PiB" }, { 40, " TiB" },
        { 30, " GiB" }, { 20, " MiB" }, { 10, " KiB" },
    };
    const char *suffix = " bytes";
    char num[64];
    size_t i;

    snprintf(num, sizeof(num), "%f", value);
    for (i = 0; i < G_N_ELEMENTS(units); i++) {
        double unit = (double)(1ull << units[i].shift);
        if (value >= unit) {
            snprintf(num, sizeof(num), "%.3f", value / unit);
            suffix = units[i].suffix;
            break;
        }
    }
    char *zeros = strstr(num, ".000");
    if (zeros) {
        *zeros = '\0';
    }
    snprintf(out, size, "%s%s", num, suffix);
}

void io_dump_buffer(const uint8_t *buf, int64_t offset, int64_t len)
{
    for (int64_t line = 0; line < len; line += 16) {
        int64_t n = MIN(16, len - line);

        printf("%08" PRIx64 ":  ", (uint64_t)(offset + line));
        for (int64_t i = 0; i < n; i++) {
            printf("%02x ", buf[line + i]);
        }
        printf(" ");
        for (int64_t i = 0; i < n; i++) {
            putchar(g_ascii_isalnum(buf[line + i]) ? buf[line + i] : '.');
        }
        printf("\n");
    }
}

static double seconds_between(const struct timespec *t1, const struct timespec *t2)
{
    return (double)(t2->tv_sec - t1->tv_sec) + (double)(t2->tv_nsec - t1->tv_nsec) / 1e9;
}

/* "SS.ss sec" under a minute, else "H:MM:SS.ss"; always the latter with -C. */
static void elapsed_str(double secs, bool fixed, char *out, size_t size)
{
    unsigned long whole = (unsigned long)secs;
    double frac = secs - (double)whole;

    if (fixed || whole) {
        snprintf(out, size, "%lu:%02lu:%05.2f", whole / 3600, whole % 3600 / 60,
                 (double)(whole % 60) + frac);
    } else {
        snprintf(out, size, "%05.2f sec", frac);
    }
}

void io_print_report(const char *op, const struct timespec *t1, const struct timespec *t2,
                     int64_t offset, int64_t count, int64_t total, int cnt, bool cflag)
{
    double secs = seconds_between(t1, t2);
    char elapsed[64], total_str[64], rate_str[64];

    elapsed_str(secs, cflag, elapsed, sizeof(elapsed));
    if (cflag) {
        printf("%" PRId64 ",%d,%s,%.3f,%.3f\n", total, cnt, elapsed, (double)total / secs,
               (double)cnt / secs);
        return;
    }
    io_size_str((double)total, total_str, sizeof(total_str));
    io_size_str((double)total / secs, rate_str, sizeof(rate_str));
    printf("%s %" PRId64 "/%" PRId64 " bytes at offset %" PRId64 "\n", op, total, count, offset);
    printf("%s, %d ops; %s (%s/sec and %.4f ops/sec)\n", total_str, cnt, elapsed, rate_str,
           (double)cnt / secs);
}
