/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * qemu-compatible size formatting and parsing for the command-line tools.
 */
#include "units.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

char *units_size_to_str(uint64_t bytes)
{
    static const char *const prefixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
    int exp;

    /* frexp gives floor(log2(x)) + 1; scaling by 1024/1000 moves to the next
     * prefix as soon as the integer part would reach 1000, as QEMU does. */
    frexp(bytes / (1000.0 / 1024.0), &exp);
    int shift = (exp - 1) / 10 * 10;
    if (shift < 0) {
        shift = 0;
    }
    return g_strdup_printf("%0.3g %sB", (double)bytes / (double)(1ull << shift),
                           prefixes[shift / 10]);
}

static int64_t suffix_multiplier(char c)
{
    switch (g_ascii_toupper(c)) {
    case 'B':
        return 1;
    case 'K':
        return 1ll << 10;
    case 'M':
        return 1ll << 20;
    case 'G':
        return 1ll << 30;
    case 'T':
        return 1ll << 40;
    case 'P':
        return 1ll << 50;
    case 'E':
        return 1ll << 60;
    default:
        return -1;
    }
}

int units_parse_size(const char *str, char default_suffix, uint64_t *bytes)
{
    const char *p = str;
    char *end;
    double fraction = 0;

    while (g_ascii_isspace(*p)) {
        p++;
    }
    if (!g_ascii_isdigit(*p)) {
        return -EINVAL; /* also rejects '-' and '+' */
    }
    errno = 0;
    uint64_t val = g_ascii_strtoull(p, &end, 10);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    if (val == 0 && (*end == 'x' || *end == 'X')) {
        errno = 0;
        val = g_ascii_strtoull(p, &end, 16);
        if (errno == ERANGE) {
            return -ERANGE;
        }
        if (*end == '.' || end == p + 2) {
            return -EINVAL;
        }
    } else if (*end == '.') {
        const char *f = end;
        fraction = g_ascii_strtod(f, &end);
        if (end == f + 1) {
            fraction = 0; /* "1." is allowed: no fraction digits */
        } else if (memchr(f, 'e', end - f) || memchr(f, 'E', end - f)) {
            return -EINVAL;
        }
    }

    int64_t mul = suffix_multiplier(*end);
    if (mul > 0) {
        end++;
    } else {
        mul = suffix_multiplier(default_suffix);
    }
    if (*end != '\0') {
        return -EINVAL;
    }
    if (mul == 1) {
        if (fraction != 0) {
            return -EINVAL; /* a fraction needs a scale */
        }
        *bytes = val;
        return 0;
    }
    if (val > UINT64_MAX / (uint64_t)mul) {
        return -ERANGE;
    }
    uint64_t whole = val * (uint64_t)mul;
    /* Round half up, as QEMU does; the fraction is below 1 so it adds less than mul. */
    uint64_t part = (uint64_t)floor(fraction * (double)mul + 0.5);
    if (whole > UINT64_MAX - part) {
        return -ERANGE;
    }
    *bytes = whole + part;
    return 0;
}
