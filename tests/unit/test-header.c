/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qed.h compiles alone, before any other header. */
#include "qed.h"

int main(void)
{
    QedCreateOptions opts = { 0 };
    return opts.size == 0 && QED_MAGIC == 0x00444551u ? 0 : 1;
}
