/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The names QEMU's tools print for images. */
#ifndef QED_TOOLS_NAMES_H
#define QED_TOOLS_NAMES_H

/* The name qemu-img and qemu-io show for the image opened as name (owned
 * by the caller): an NBD export's name as QEMU respells it; a local file
 * without a "file:" prefix (the library has taken it off), with "./" in
 * front where it would otherwise read as "protocol:rest". */
char *tool_display_name(const char *name);

#endif
