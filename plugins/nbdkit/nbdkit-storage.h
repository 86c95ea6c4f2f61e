/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The qed filter's storage: its next layer, as qed-embed.h's callbacks
 * (nbdkit-storage.c).
 */
#ifndef QED_NBDKIT_STORAGE_H
#define QED_NBDKIT_STORAGE_H

#include <nbdkit-filter.h>

#include "qed-embed.h"

typedef struct NbdkitStorage NbdkitStorage;

/* The callbacks; opaque is an NbdkitStorage, freed by .close. */
extern const QedStorageOps nbdkit_storage_ops;

/* Storage over a shared context it opens into the plugin below backend
 * (nbdkit_next_context_open), read-only when read_only. thread_model is
 * the server's, as .get_ready gave it: below NBDKIT_THREAD_MODEL_PARALLEL
 * the storage makes one call into the plugin at a time, else it lets
 * libqed's calls run in parallel. NULL when the context cannot be opened
 * or cannot report its size (nbdkit_error set). Closing the storage closes
 * the context. */
NbdkitStorage *nbdkit_storage_open(nbdkit_backend *backend, bool read_only, int thread_model);

/* The plugin's disk size in bytes, fixed at open. */
uint64_t nbdkit_storage_size(const NbdkitStorage *st);

#endif
