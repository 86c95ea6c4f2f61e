/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QEMU's warning for an image whose format was guessed as raw and which is
 * open writable, printed by the tools where qemu-img and qemu-io print it.
 */
#ifndef QED_TOOLS_PROBE_WARNING_H
#define QED_TOOLS_PROBE_WARNING_H

#include "qed.h"

/* Prints the warning on stderr when img (opened as filename) is writable
 * and its format was probed as raw: writes that would make its first sector
 * look like another format are refused. */
void probe_warning_print(QedImage *img, const char *filename);

#endif
