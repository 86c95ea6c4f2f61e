/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "open.h"

#include "image.h"

QedImage *tool_open(const char *name, const QedOpenOptions *opts, GError **errp)
{
    QedOpenOptions o = *opts;
    o.flags |= QED_OPEN_BACKING_REMOTE;
    return qed_open(name, &o, errp);
}

int tool_reopen(QedImage *img, unsigned flags, GError **errp)
{
    return qed_reopen(img, flags | QED_OPEN_BACKING_REMOTE, errp);
}

QedImage *tool_open_backing(const char *referrer, const char *name, const QedOpenOptions *opts,
                            GError **errp)
{
    QedOpenOptions o = *opts;
    o.flags |= QED_OPEN_BACKING_REMOTE;
    return image_open_backing_alone(referrer, name, &o, errp);
}
