/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The NBD side shared by the qed plugin and the qed filter: the one image
 * every connection uses (read-only until a connection needs to write), and
 * the requests on it, with libqed errors reported nbdkit's way.
 */
#ifndef QED_NBDKIT_H
#define QED_NBDKIT_H

#include <pthread.h>
#include <stdint.h>

#include "qed.h"

struct nbdkit_extents;

/* nbdkit says whether a connection is read-only (-r) only when it opens,
 * so the image is opened read-only before serving and made writable by the
 * first connection that may write; it then stays writable until cleanup.
 *
 * Lock contract: every request holds `lock` shared for its whole call into
 * libqed; the switch to read-write holds it exclusive, because qed_reopen()
 * needs no request in flight on the handle. The lock prefers writers, so a
 * stream of reads on other connections cannot starve the switch. Requests
 * never take it twice (a recursive shared lock could wait behind a writer). */
typedef struct QedExport {
    QedImage *img;         /* owned; set once before serving, freed at cleanup */
    unsigned open_flags;   /* the flags img was opened with (QED_OPEN_READ_ONLY set) */
    bool stay_read_only;   /* readonly=true, or the storage is read-only: never
                            * switch; after init written with lock held exclusive */
    pthread_rwlock_t lock; /* see above */
    bool writable;         /* img is open read-write; written with lock held exclusive */
} QedExport;

/* Sets up exp (no image yet). */
void qed_export_init(QedExport *exp, bool stay_read_only);

/* Makes img (opened with flags, which include QED_OPEN_READ_ONLY) the image
 * of exp. */
void qed_export_set_image(QedExport *exp, QedImage *img, unsigned flags);

/* For .open: a connection that may write (readonly false) makes the image
 * writable unless it is already or exp stays read-only. When the storage
 * turns out not to be writable (EROFS, EACCES, EPERM: a read-only file
 * system, a file the server's user may not write), exp stays read-only and
 * the client is served read-only, as nbdkit's file plugin does. When the
 * switch fails otherwise (another process holds the image, the repair of an
 * image marked NEED_CHECK failed), reports why with nbdkit_error and returns
 * -1: that connection is refused and the next one tries again. */
int qed_export_connect(QedExport *exp, int readonly);

/* For .can_write, .can_trim and .can_zero: 1 when the image is writable. */
int qed_export_can_write(QedExport *exp);

/* Closes the image, if any (flushing it and marking it clean), reporting a
 * failure with nbdkit_error. The lock lives as long as exp (static). */
void qed_export_close(QedExport *exp);

/* cache=writeback|writethrough|none -> QED_OPEN_* flags; -1 on a bad value. */
int qed_nbdkit_parse_cache(const char *value, unsigned *flags);

/* locking=auto|on|off -> QedLocking; -1 on a bad value. */
int qed_nbdkit_parse_locking(const char *value, QedLocking *locking);

/* The requests: each holds exp->lock shared while it runs. */
int64_t qed_nbdkit_get_size(QedExport *exp);
int qed_nbdkit_pread(QedExport *exp, void *buf, uint32_t count, uint64_t offset);
int qed_nbdkit_pwrite(QedExport *exp, const void *buf, uint32_t count, uint64_t offset,
                      uint32_t flags);
int qed_nbdkit_zero(QedExport *exp, uint32_t count, uint64_t offset, uint32_t flags);
int qed_nbdkit_trim(QedExport *exp, uint32_t count, uint64_t offset, uint32_t flags);
int qed_nbdkit_flush(QedExport *exp);
/* Data, zero and hole extents, looking down the backing chain where the
 * image itself has nothing allocated. */
int qed_nbdkit_extents(QedExport *exp, uint32_t count, uint64_t offset, uint32_t flags,
                       struct nbdkit_extents *extents);

#endif
