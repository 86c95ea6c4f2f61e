/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Opening an image on storage the caller brings, for programs that embed
 * libqed where the image is not a local file. Its one user is the nbdkit
 * qed filter (plugins/nbdkit/), whose image lives in whatever the nbdkit
 * plugin below it serves: a file, memory, another NBD server. The storage
 * is a table of callbacks rather than a BlkDev, so that the embedder needs
 * nothing from src/image.h or src/blk/ and those can change freely (its
 * build sees include/ only). Not installed, and not in libqed.map: the
 * filter links the internal archive. It becomes public API when a second
 * embedder needs it. Implemented in src/qed-embed.c.
 */
#ifndef QED_EMBED_H
#define QED_EMBED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qed.h"

/* Storage of a fixed size that holds the image (a container): it cannot
 * grow, so a write that needs more room fails with ENOSPC before anything
 * refers to it, and the space past the image's end may hold old data.
 * Every call returns 0 or -errno. libqed calls them from many threads at
 * once (the caller's requests and its own threads, such as the cleaner that
 * marks an idle image clean), so they serialize themselves where the
 * storage needs it. */
typedef struct QedStorageOps {
    /* [offset, offset+len) lies within the storage's size. */
    int (*pread)(void *opaque, void *buf, size_t len, uint64_t offset);
    int (*pwrite)(void *opaque, const void *buf, size_t len, uint64_t offset);
    /* NULL when there is nothing to flush. */
    int (*flush)(void *opaque);
    /* Makes [offset, offset+len) read as zeros, freeing space where it can
     * (NULL: libqed writes zeros). */
    int (*zero)(void *opaque, uint64_t offset, uint64_t len);
    /* Switches between read-only and read-write, with no other call in
     * flight (qed_reopen's contract); -EROFS when the storage cannot be
     * written. NULL: the storage stays as opened. */
    int (*reopen)(void *opaque, bool read_only);
    /* Once, when the image closes (or its open fails). */
    void (*close)(void *opaque);
} QedStorageOps;

/* Opens the image in the storage (size bytes; ops and opaque are used until
 * ops->close), as qed_open opens a file with flags (QED_OPEN_*; the
 * storage is read-only with QED_OPEN_READ_ONLY until a qed_reopen).
 * format: "qed", "raw" or NULL to probe. name is the storage's name in
 * messages and what relative backing names are resolved against. On
 * failure ops->close has been called, *errp is set and NULL returned. */
QedImage *qed_open_storage(const QedStorageOps *ops, void *opaque, uint64_t size, const char *name,
                           const char *format, unsigned flags, GError **errp);

/* Opens path (a local file or an NBD address; format "raw", "qed" or NULL
 * to probe) read-only as img's backing image in place of the one its header
 * names: for an image opened with QED_OPEN_NO_BACKING whose backing name
 * means nothing where the storage is. The chain a local path names in turn
 * stays beneath path's directory; an export's chain may name other exports
 * (the caller chose a remote file) but no relative local file. */
int qed_attach_backing(QedImage *img, const char *path, const char *format, GError **errp);

/* Does name address an export on an NBD server (as qed_open reads names:
 * "nbd://", "nbd+unix://", "nbds://", QEMU's "nbd:HOST:PORT", ...)? */
bool qed_name_is_nbd(const char *name);

#endif
