/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The byte-addressed storage under an image format ("the file"): a small
 * table of operations with a POSIX file and an in-memory implementation.
 * Format drivers touch storage only through this seam, so tests can put a
 * crash recorder or a fault injector under the real driver.
 */
#ifndef QED_BLK_H
#define QED_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>
#include <sys/stat.h>

#include <glib.h>

#include "qed.h"

/* What a write is for, so that crash and fault tests can aim at one kind of
 * write ("after the L2 write, before the L1 write"). */
typedef enum BlkTag {
    BLK_TAG_DATA,   /* guest data written in place or into a new cluster */
    BLK_TAG_COW,    /* data copied from the backing file into a new cluster */
    BLK_TAG_HEADER, /* the image header */
    BLK_TAG_L1,     /* the L1 table */
    BLK_TAG_L2,     /* an L2 table */
    BLK_TAG_CREATE, /* writes of image creation */
    BLK_TAG_COUNT
} BlkTag;

typedef struct BlkDev BlkDev;

/* The permissions of QEMU's block layer, as bits of the lock sets of
 * blk_lock(); bit i is lock byte 100+i ("in use") and 200+i ("not shared"). */
enum {
    BLK_PERM_CONSISTENT_READ = 1u << 0,
    BLK_PERM_WRITE = 1u << 1,
    BLK_PERM_WRITE_UNCHANGED = 1u << 2,
    BLK_PERM_RESIZE = 1u << 3,
    BLK_PERM_ALL = (1u << 4) - 1,
};

/* All operations return 0 (or a length) on success and -errno on failure.
 * Reads past the end of the device return zeros for the missing part. */
typedef struct BlkOps {
    const char *name;
    int (*pread)(BlkDev *dev, void *buf, size_t len, uint64_t offset);
    int (*pwrite)(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag);
    int (*flush)(BlkDev *dev);
    int64_t (*get_length)(BlkDev *dev);
    int (*truncate)(BlkDev *dev, uint64_t length);
    /* Makes [offset, offset+len) read as zeros, freeing storage where it can;
     * never changes the length. */
    int (*punch_zeroes)(BlkDev *dev, uint64_t offset, uint64_t len);
    /* Bytes of storage the device occupies (st_blocks for a file). */
    int64_t (*allocated_bytes)(BlkDev *dev);
    /* Sets *is_data for the run at offset and its length in *run (at most
     * len): false for a hole that reads as zeros. */
    int (*data_status)(BlkDev *dev, uint64_t offset, uint64_t len, bool *is_data, uint64_t *run);
    /* Reopens the device read-only or read-write (optional). */
    int (*reopen)(BlkDev *dev, bool read_only);
    /* Reserves storage for [offset, offset+len), growing the device when
     * that lies past its end (optional). */
    int (*allocate)(BlkDev *dev, uint64_t offset, uint64_t len);
    /* Takes QEMU's locks for using perm and sharing shared (optional: a
     * device without it takes none); see blk_lock(). */
    int (*lock)(BlkDev *dev, unsigned perm, unsigned shared, QedLocking mode, GError **errp);
    void (*close)(BlkDev *dev);
} BlkOps;

typedef struct BlkStats {
    uint64_t reads, writes, flushes, truncates;
    uint64_t bytes_read, bytes_written;
    uint64_t writes_by_tag[BLK_TAG_COUNT];
} BlkStats;

struct BlkDev {
    const BlkOps *ops;
    char *filename; /* for messages; owned */
    bool read_only;
    uint32_t request_align; /* the smallest write that is atomic and aligned (512 or 4096) */
    /* A container of fixed size (an nbdkit plugin's disk, a block device): its length says
     * nothing about the image in it, and space past the image's end may
     * hold old data rather than zeros. */
    bool fixed_length;
    /* A flush has failed: what reached the disk since the last good flush is
     * unknown, so no later flush may report success and nothing more is
     * written (blk.c fails them with -EIO); reads go on. Only a new open
     * clears it. Set and read atomically. */
    bool failed;
    bool no_flush;  /* cache=unsafe: blk_flush does nothing (set at open) */
    BlkStats stats; /* updated atomically by blk.c */
};

/* Opening. Each returns NULL and sets *errp on failure. Only regular files
 * and block devices are opened; FIFOs, sockets, character devices and
 * directories are refused without being opened (blk-open.c). */
enum {
    BLK_OPEN_READ_ONLY = 1u << 0,
    BLK_OPEN_DIRECT = 1u << 1,
    BLK_OPEN_CREATE = 1u << 2,       /* create when missing; never truncates (the caller
                                      * empties the file once it holds the locks) */
    BLK_OPEN_REGULAR_ONLY = 1u << 3, /* refuse block devices too */
    BLK_OPEN_BENEATH = 1u << 4,      /* resolve the path beneath dirfd (openat2
                                      * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS):
                                      * no "..", absolute symlink or magic link
                                      * leads out; -EXDEV when one would */
};
BlkDev *blk_file_open(const char *filename, unsigned flags, GError **errp);
/* Opens path, relative to dirfd (or AT_FDCWD), for the file device with
 * flags BLK_OPEN_*; name is the file's name in messages. Fills *st (the
 * file's type and identity) and returns the descriptor, or -errno with
 * *errp set. Never blocks on the file and never opens one of a refused type. */
int blk_open_fd(int dirfd, const char *path, const char *name, unsigned flags, struct stat *st,
                GError **errp);
/* The file device on fd (owned from here on), opened by blk_open_fd with
 * the same flags; filename is for messages. */
BlkDev *blk_file_new(int fd, const char *filename, unsigned flags);
BlkDev *blk_mem_new(const char *name, const void *contents, size_t len);

/* NBD exports (blk-nbd.c, on libnbd). Does name address an NBD export
 * ("nbd://", "nbd+unix://", "nbds://", "nbds+unix://", "nbd+tcp://" or
 * QEMU's "nbd:HOST:PORT" / "nbd:unix:PATH")? */
bool blk_nbd_name(const char *name);
/* The libnbd URI for such a name (owned by the caller), or NULL with *errp
 * set when it does not parse. */
char *blk_nbd_uri(const char *name, GError **errp);
enum {
    BLK_NBD_UNTRUSTED = 1u << 16, /* the name comes from an image header: it may
                                   * not make libnbd read local files */
};
/* Connects to the export named name, with BLK_OPEN_READ_ONLY and
 * BLK_NBD_UNTRUSTED of flags. The device is a container of fixed length;
 * requests run on a pool of connections (see blk-nbd.c). */
BlkDev *blk_nbd_open(const char *name, unsigned flags, GError **errp);
/* Takes libnbd's message (or "the export's size changed ...") for the last
 * failed request of an NBD device, owned by the caller, and forgets it; NULL
 * for another device or when no failure is pending. */
char *blk_nbd_take_error(BlkDev *dev);

/* The wrappers every caller uses: they count the I/O, then call the ops.
 * Once a flush has failed, blk_flush, blk_pwrite, blk_truncate and
 * blk_punch_zeroes fail with -EIO (BlkDev.failed). */
int blk_pread(BlkDev *dev, void *buf, size_t len, uint64_t offset);
int blk_pwrite(BlkDev *dev, const void *buf, size_t len, uint64_t offset, BlkTag tag);
int blk_flush(BlkDev *dev);
int64_t blk_get_length(BlkDev *dev);
int blk_truncate(BlkDev *dev, uint64_t length);
int blk_punch_zeroes(BlkDev *dev, uint64_t offset, uint64_t len);
/* -ENOTSUP where the device cannot reserve storage. */
int blk_allocate(BlkDev *dev, uint64_t offset, uint64_t len);
/* Writes len zero bytes at offset (allocating them, unlike punch_zeroes),
 * through a bounded buffer. */
int blk_write_zeros(BlkDev *dev, uint64_t offset, uint64_t len, BlkTag tag);
int64_t blk_allocated_bytes(BlkDev *dev);
int blk_data_status(BlkDev *dev, uint64_t offset, uint64_t len, bool *is_data, uint64_t *run);
int blk_reopen(BlkDev *dev, bool read_only);
/* Whether a flush of dev has failed. */
bool blk_failed(BlkDev *dev);
/* Fails dev as a failed flush does (a format's metadata commit failed, so
 * what is on the disk is unknown). */
void blk_set_failed(BlkDev *dev);
void blk_get_stats(BlkDev *dev, BlkStats *stats);
void blk_close(BlkDev *dev);

/* Image locking (blk-lock.c), at open, reopen and create only. Makes the
 * device hold the lock bytes of "uses perm, shares shared" and no others,
 * after testing that nobody else holds a conflicting byte; dropping
 * permissions never fails on a conflict. A conflict is -EAGAIN with QEMU's
 * message ('Failed to get "write" lock' and 'Is another process using the
 * image [FILE]?'), and the device keeps the locks it had. mode OFF takes
 * no lock; AUTO goes on without locks where the file system has no OFD
 * locks, ON fails there. Devices without a lock operation succeed. */
int blk_lock(BlkDev *dev, unsigned perm, unsigned shared, QedLocking mode, GError **errp);

/* The lock bytes one file descriptor holds (for blk-file.c). Changed only
 * at open, reopen and create, with no request in flight. */
typedef struct BlkLockState {
    unsigned perm;     /* bit i: byte 100+i is held */
    unsigned unshared; /* bit i: byte 200+i is held */
    bool unsupported;  /* AUTO found no OFD locks here: lock nothing from now on */
} BlkLockState;
/* blk_lock() on fd; filename is for the message. */
int blk_lock_fd(int fd, BlkLockState *held, const char *filename, unsigned perm, unsigned shared,
                QedLocking mode, GError **errp);
/* Takes the bytes of held on new_fd too (no test: they are ours already),
 * so that a reopen can close the old descriptor without a moment unlocked. */
int blk_lock_copy(const BlkLockState *held, int new_fd);

/* For implementations: fills the common fields. */
void blk_init(BlkDev *dev, const BlkOps *ops, const char *filename, bool read_only);

/* A recording device for power-loss tests (blk-log.c). */
typedef enum BlkLogKind {
    BLK_LOG_WRITE,
    BLK_LOG_FLUSH,
    BLK_LOG_TRUNCATE,
    BLK_LOG_PUNCH
} BlkLogKind;
typedef struct BlkLogOp {
    BlkLogKind kind;
    uint64_t offset; /* bytes; the new length for a truncate */
    uint64_t len;    /* bytes written or punched */
    uint8_t *data;   /* what a write wrote; owned by the log */
    BlkTag tag;
} BlkLogOp;
/* Passes requests to inner (owned) and records them. */
BlkDev *blk_log_new(BlkDev *inner);
size_t blk_log_count(BlkDev *dev);
const BlkLogOp *blk_log_op(BlkDev *dev, size_t i);
/* The disk after a power loss just before op crash_at completed, starting
 * from base (the contents when the log began): every op up to the last
 * flush before crash_at, then a random subset of the later ones in a random
 * order, some torn at `sector` boundaries. *durable_ops (if not NULL) gets
 * the number of ops that were certainly on the disk. */
GBytes *blk_log_crash_state(BlkDev *dev, GBytes *base, size_t crash_at, GRand *rand,
                            uint32_t sector, size_t *durable_ops);

/* A fault injector for error-path tests (blk-fault.c): passes requests to
 * inner, which it borrows (inner must outlive it, so that a test can look
 * at the bytes after the image on top is closed), and fails the n-th
 * request of one kind by countdown. */
typedef enum BlkFaultKind {
    BLK_FAULT_READ,  /* pread */
    BLK_FAULT_WRITE, /* pwrite, truncate, punch_zeroes: everything that changes the device */
    BLK_FAULT_FLUSH, /* flush */
    BLK_FAULT_KIND_COUNT
} BlkFaultKind;
typedef struct BlkFault {
    BlkFaultKind kind;
    uint64_t nth;    /* fail the nth request of kind counted from arming (1 = the next) */
    int error;       /* the positive errno the request fails with (EIO, ENOSPC) */
    bool persistent; /* every later request of kind fails too; else only the nth */
    bool lands;      /* the failing write still reaches the device (a disk may report
                      * an error for a write it did; never for persistent repeats) */
} BlkFault;
BlkDev *blk_fault_new(BlkDev *inner);
/* Arms f, replacing any fault armed before (nth 0 disarms). */
void blk_fault_arm(BlkDev *dev, const BlkFault *f);
/* Requests of kind seen since the device was made (failed ones included). */
uint64_t blk_fault_calls(BlkDev *dev, BlkFaultKind kind);
/* Requests failed so far. */
uint64_t blk_fault_injected(BlkDev *dev);

/* A copy of the contents of an in-memory device (tests). */
GBytes *blk_mem_contents(BlkDev *dev);

#endif
