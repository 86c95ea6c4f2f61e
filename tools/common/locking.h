/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The --locking=auto|on|off option of the tools (a libqed extension: QEMU
 * spells it file.locking=... in --image-opts), parsed once for both tools.
 */
#ifndef QED_TOOLS_LOCKING_H
#define QED_TOOLS_LOCKING_H

#include <stdbool.h>

#include <qed.h>

/* The mode named by arg ("auto", "on" or "off", as QEMU's file.locking);
 * false when arg is none of them. */
bool locking_parse(const char *arg, QedLocking *mode);

#endif
