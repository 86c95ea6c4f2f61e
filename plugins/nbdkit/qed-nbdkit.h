/*
 * The NBD request handling shared by the qed plugin and the qed filter: each
 * call maps an nbdkit callback onto libqed and reports errors nbdkit's way.
 */
#ifndef QED_NBDKIT_H
#define QED_NBDKIT_H

#include <stdint.h>

#include "qed.h"

struct nbdkit_extents;

/* cache=writeback|writethrough|none -> QED_OPEN_* flags; -1 on a bad value. */
int qed_nbdkit_parse_cache(const char *value, unsigned *flags);

/* Closes *img (flushing it), reporting a failure with nbdkit_error, and
 * sets *img to NULL. */
void qed_nbdkit_close(QedImage **img);

int64_t qed_nbdkit_get_size(QedImage *img);
int qed_nbdkit_pread(QedImage *img, void *buf, uint32_t count, uint64_t offset);
int qed_nbdkit_pwrite(QedImage *img, const void *buf, uint32_t count, uint64_t offset,
                      uint32_t flags);
int qed_nbdkit_zero(QedImage *img, uint32_t count, uint64_t offset, uint32_t flags);
int qed_nbdkit_trim(QedImage *img, uint32_t count, uint64_t offset, uint32_t flags);
int qed_nbdkit_flush(QedImage *img);
/* Data, zero and hole extents, looking down the backing chain where the
 * image itself has nothing allocated. */
int qed_nbdkit_extents(QedImage *img, uint32_t count, uint64_t offset, uint32_t flags,
                       struct nbdkit_extents *extents);

#endif
