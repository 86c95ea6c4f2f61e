/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * --locking=auto|on|off for qed-img and qed-io.
 */
#include "locking.h"

#include <string.h>

bool locking_parse(const char *arg, QedLocking *mode)
{
    static const struct {
        const char *name;
        QedLocking mode;
    } modes[] = {
        { "auto", QED_LOCKING_AUTO },
        { "on", QED_LOCKING_ON },
        { "off", QED_LOCKING_OFF },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(modes); i++) {
        if (strcmp(arg, modes[i].name) == 0) {
            *mode = modes[i].mode;
            return true;
        }
    }
    return false;
}
