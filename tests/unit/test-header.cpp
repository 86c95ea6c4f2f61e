/* SPDX-License-Identifier: LGPL-2.1-or-later */
// qed.h compiles alone in C++.
#include "qed.h"

int main()
{
    QedExtent ext = {};
    return ext.type == QED_EXTENT_DATA ? 0 : 1;
}
