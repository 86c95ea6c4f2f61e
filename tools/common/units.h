/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sizes as qemu-img and qemu-io print and parse them ("1 MiB", "64k", "1.5G"),
 * shared by the tools so that their output matches QEMU's character for character.
 */
#ifndef QED_TOOLS_UNITS_H
#define QED_TOOLS_UNITS_H

#include <stdint.h>

/* "%0.3g <prefix>B" with binary prefixes, like QEMU's size_to_str().
 * Free with g_free. */
char *units_size_to_str(uint64_t bytes);

/* Parses a size like QEMU's qemu_strtosz(): decimal (or 0x hex) with an
 * optional fraction and an optional suffix B, K/k, M, G, T, P, E (powers of
 * 1024); without a suffix the number is multiplied by default_suffix's value
 * ('B' for bytes). The whole string must be consumed.
 * Returns 0, -EINVAL for a malformed string, or -ERANGE when it overflows. */
int units_parse_size(const char *str, char default_suffix, uint64_t *bytes);

#endif
