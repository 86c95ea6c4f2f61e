/*
 * The blk device over an nbdkit filter's next layer (blk-nbdkit.c).
 */
#ifndef QED_BLK_NBDKIT_H
#define QED_BLK_NBDKIT_H

#include <nbdkit-filter.h>

#include "blk/blk.h"

/* A device over next (not owned), read-only when read_only or when next
 * cannot write. NULL when next cannot report its size (nbdkit_error set). */
BlkDev *blk_nbdkit_new(nbdkit_next *next, const char *name, bool read_only);

#endif
