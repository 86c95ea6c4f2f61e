/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The blk device over an nbdkit filter's next layer (blk-nbdkit.c).
 */
#ifndef QED_BLK_NBDKIT_H
#define QED_BLK_NBDKIT_H

#include <nbdkit-filter.h>

#include "blk/blk.h"

/* A device over a shared context it opens into the plugin below backend
 * (nbdkit_next_context_open), read-only when read_only or when the plugin
 * cannot write. thread_model is the server's, as .get_ready gave it: below
 * NBDKIT_THREAD_MODEL_PARALLEL the device makes one call into the plugin at
 * a time, else it lets libqed's calls run in parallel. NULL when the
 * context cannot be opened or cannot report its size (nbdkit_error set).
 * Closing the device closes the context. */
BlkDev *blk_nbdkit_open(nbdkit_backend *backend, const char *name, bool read_only,
                        int thread_model);

#endif
