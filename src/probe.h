/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Format probing by QEMU 7.2's rules: which image format QEMU would pick
 * for a file from its first 512 bytes (and, for dmg, its name). Only qed and
 * raw are opened here; every other format QEMU knows is refused by name, so
 * that no foreign image is ever served (or overwritten) as raw.
 */
#ifndef QED_PROBE_H
#define QED_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The bytes QEMU reads to probe (BLOCK_PROBE_BUF_SIZE); a shorter file
 * probes as if padded with zeros. */
#define PROBE_BYTES 512u

/* The name of the format QEMU would choose for a file that starts with
 * buf[0..PROBE_BYTES) and is called filename (NULL: the name is not
 * considered, as QEMU's raw driver checks its first sector). "raw" when no
 * other format claims it. The string is static. */
const char *probe_format(const uint8_t buf[PROBE_BYTES], const char *filename);

/* Is format one of the image formats QEMU knows by its header or name
 * ("qcow2", "vmdk", ...), which this library recognises but cannot open? */
bool probe_is_foreign_format(const char *format);

#endif
