/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening images the way qemu-img and qemu-io open them. */
#ifndef QED_TOOLS_OPEN_H
#define QED_TOOLS_OPEN_H

#include "qed.h"

/* qed_open() with opts, plus what the tools allow as qemu-img does: a
 * backing file on an NBD server (QED_OPEN_BACKING_REMOTE). The operator
 * named the image, so its chain may reach the network, as in QEMU; the
 * nbdkit plugin, which serves images it does not trust, does not do this. */
QedImage *tool_open(const char *name, const QedOpenOptions *opts, GError **errp);
/* Opens, alone and with opts, the backing file that the image referrer
 * (named as opened) names as `name`, by the rules the library applies to
 * names in headers: an NBD URI there may not read host files, and an image
 * on an NBD server may not name a relative local file. For walking a chain
 * one image at a time (info --backing-chain) and for checking a name that
 * is about to be written into a header (create -b, rebase -b). */
QedImage *tool_open_backing(const char *referrer, const char *name, const QedOpenOptions *opts,
                            GError **errp);
/* qed_reopen() of an image (or a backing image) tool_open() opened. */
int tool_reopen(QedImage *img, unsigned flags, GError **errp);

#endif
